defmodule DSPex.NIFArgsTest do
  # Every public wrapper around a NIF answers bad argument types with an ArgumentError
  # that says what was wrong (or a typed {:error, %DSPex.Error{}}), never a bare :badarg,
  # a FunctionClauseError from deep inside, or a VM crash.
  use ExUnit.Case, async: true

  @sig DSPex.Signature.parse!("q -> a")

  defp deep_list, do: Enum.reduce(1..100_000, 1, fn _, acc -> [acc] end)
  defp deep_map, do: Enum.reduce(1..100_000, 1, fn _, acc -> %{"a" => acc} end)

  defp bad_values do
    [
      1,
      :atom,
      [1 | 2],
      {1, 2},
      self(),
      1.5,
      [300],
      ["a" | "b"],
      %{1 => 2},
      <<1::3>>,
      fn -> :x end,
      deep_list(),
      deep_map()
    ]
  end

  defp calls do
    sig = @sig

    [
      {"JSON.decode", &DSPex.JSON.decode/1},
      {"JSON.decode opts", &DSPex.JSON.decode("1", &1)},
      {"JSON.encode", &DSPex.JSON.encode/1},
      {"JSON.encode opts", &DSPex.JSON.encode(1, &1)},
      {"JSON.repair", &DSPex.JSON.repair/1},
      {"JSON.repair opts", &DSPex.JSON.repair("{", &1)},
      {"JSON.extract", &DSPex.JSON.extract/1},
      {"JSON.extract opts", &DSPex.JSON.extract("{", &1)},
      {"Signature.parse", &DSPex.Signature.parse/1},
      {"Chat.format signature", &DSPex.Adapter.Chat.format(&1, [], %{q: "x"}, [])},
      {"Chat.format demos", &DSPex.Adapter.Chat.format(sig, &1, %{q: "x"}, [])},
      {"Chat.format inputs", &DSPex.Adapter.Chat.format(sig, [], &1, [])},
      {"Chat.format input value", &DSPex.Adapter.Chat.format(sig, [], %{q: &1}, [])},
      {"Chat.format demo value",
       &DSPex.Adapter.Chat.format(sig, [%{q: &1, a: &1}], %{q: "x"}, [])},
      {"JSON adapter format input value", &DSPex.Adapter.JSON.format(sig, [], %{q: &1}, [])},
      {"Chat.parse signature", &DSPex.Adapter.Chat.parse(&1, "[[ ## a ## ]] x")},
      {"Chat.parse text", &DSPex.Adapter.Chat.parse(sig, &1)},
      {"JSON adapter parse text", &DSPex.Adapter.JSON.parse(sig, &1)},
      {"Chat.format_assistant_message value",
       &DSPex.Adapter.Chat.format_assistant_message(sig, %{a: &1})},
      {"Chat.format_assistant_message outputs",
       &DSPex.Adapter.Chat.format_assistant_message(sig, &1)},
      {"Hash.sha256_hex", &DSPex.Hash.sha256_hex/1},
      {"Signature.parse opts", &DSPex.Signature.parse("q -> a", &1)},
      {"Signature.parse atoms", &DSPex.Signature.parse("q -> a", atoms: &1)},
      {"Signature.new fields", &DSPex.Signature.new/1},
      {"Signature.new instructions", &DSPex.Signature.new([], instructions: &1)},
      {"Signature.with_instructions", &DSPex.Signature.with_instructions(sig, &1)},
      {"Signature.update_field type", &DSPex.Signature.update_field(sig, :a, type: &1)},
      {"Signature.insert name", &DSPex.Signature.insert(sig, 0, &1, kind: :input)},
      {"Signature.cleandoc", &DSPex.Signature.cleandoc/1},
      {"Field.new name", &DSPex.Signature.Field.new(&1, :input)},
      {"Field.new type", &DSPex.Signature.Field.new(:x, :output, type: &1)},
      {"Field.new default", &DSPex.Signature.Field.new(:x, :output, type: :int, default: &1)},
      {"Field.new constraint", &DSPex.Signature.Field.new(:x, :output, type: :int, ge: &1)},
      {"Field.normalize_type", &DSPex.Signature.Field.normalize_type/1},
      {"Field.type_name", &DSPex.Signature.Field.type_name/1},
      {"Field.type_string", &DSPex.Signature.Field.type_string/1},
      {"Field.json_schema", &DSPex.Signature.Field.json_schema/1},
      {"Field.py_str", &DSPex.Signature.Field.py_str/1},
      {"Field.infer_prefix", &DSPex.Signature.Field.infer_prefix/1},
      {"Field.constraints_text", &DSPex.Signature.Field.constraints_text/1}
    ]
  end

  # :ok when the call answered properly (a value, a typed error, or an ArgumentError
  # with an actionable message); anything else is described.
  defp outcome(fun, value) do
    case fun.(value) do
      {:error, %DSPex.Error{message: m}} when is_binary(m) and m != "" -> :ok
      {:ok, _} -> :ok
      other when is_binary(other) or is_list(other) -> :ok
      # a value the call accepts (a default may be any term, a name any atom)
      %{__struct__: _} -> :ok
      other -> {:returned, other}
    end
  rescue
    e in ArgumentError ->
      if e.message in [nil, "", "argument error"], do: {:bare_argument_error, e}, else: :ok

    e ->
      {:raised, e}
  catch
    kind, reason -> {kind, reason}
  end

  test "every NIF wrapper rejects bad argument types with a message" do
    failures =
      for {name, fun} <- calls(),
          {value, i} <- Enum.with_index(bad_values()),
          (res = outcome(fun, value)) != :ok do
        {name, i, res}
      end

    summary =
      Enum.map(failures, fn {n, i, r} ->
        {n, i, (is_tuple(r) && elem(r, 0)) || r,
         (is_tuple(r) && is_exception(elem(r, 1)) && Exception.message(elem(r, 1))) ||
           inspect(r, limit: 3)}
      end)

    assert failures == [], inspect(summary, limit: :infinity, printable_limit: 150, pretty: true)
  end

  test "messages say what was wrong" do
    assert_raise ArgumentError, ~r/options must be a keyword list/, fn ->
      DSPex.JSON.decode("1", :pretty)
    end

    assert_raise ArgumentError, ~r/options must be a keyword list/, fn ->
      DSPex.JSON.encode(1, %{pretty: true})
    end

    assert_raise ArgumentError, ~r/repair\/2 options must be a keyword list/, fn ->
      DSPex.JSON.repair("{", :multi)
    end

    assert_raise ArgumentError, ~r/extract\/2 expects a binary/, fn ->
      DSPex.JSON.extract(42)
    end

    assert_raise ArgumentError, ~r/must be maps with atom keys/, fn ->
      DSPex.Adapter.Chat.format(@sig, [], [300], [])
    end

    assert_raise ArgumentError, ~r/must be maps with atom keys/, fn ->
      DSPex.Adapter.Chat.format_assistant_message(@sig, [[[1]]])
    end
  end
end
