defmodule DSPex.AdapterFixturesTest do
  # Golden fixtures rendered and parsed by Python DSPy 3.3.1
  # (tools/gen_dspy_fixtures.py); DSPex must match them byte for byte.
  use ExUnit.Case, async: true

  import DSPex.Test.DSPyFixtures

  alias DSPex.Adapter.Chat
  alias DSPex.Signature
  alias DSPex.Signature.Field

  @root Path.expand("../../fixtures/dspy", __DIR__)
  @render Path.wildcard(Path.join(@root, "render/*.json")) |> Enum.sort()
  @parse Path.wildcard(Path.join(@root, "parse/*.json")) |> Enum.sort()

  for f <- @render ++ @parse, do: @external_resource(f)

  test "there are enough fixtures" do
    assert length(@render) >= 60
    assert length(@parse) >= 30
  end

  # ------------------------------------------------------------------ render
  for path <- @render do
    fx = path |> File.read!() |> DSPex.JSON.decode!()

    test "render #{fx["name"]}" do
      fx = load(unquote(path))
      mod = adapter(fx["adapter"])
      sig = signature(fx["signature"])
      demos = Enum.map(fx["demos"], &fields/1)
      inputs = fields(fx["inputs"])
      expected = Enum.map(fx["messages"], fn m -> %{role: m["role"], content: m["content"]} end)
      actual = mod.format(sig, demos, inputs, [])
      assert length(actual) == length(expected)

      for {a, e} <- Enum.zip(actual, expected) do
        assert a.role == e.role
        assert a.content == e.content
      end

      if fx["assistant"] do
        assert mod.format_assistant_message(sig, fields(fx["outputs"])) == fx["assistant"]
      end
    end
  end

  # ------------------------------------------------------------------ parse
  for path <- @parse do
    fx = path |> File.read!() |> DSPex.JSON.decode!()

    test "parse #{fx["name"]}" do
      fx = load(unquote(path))
      mod = adapter(fx["adapter"])
      sig = signature(fx["signature"])

      case fx do
        %{"result" => expected} ->
          assert {:ok, actual} = mod.parse(sig, fx["completion"])

          assert actual === Map.new(expected, fn {k, v} -> {String.to_atom(k), result(v)} end)

        %{"error" => err} ->
          assert {:error, %DSPex.Error{type: :adapter_parse} = e} =
                   mod.parse(sig, fx["completion"])

          if err["missing_fields"], do: assert(e.message == err["message"])
      end
    end
  end

  # ------------------------------------------------------------------ parse_value matrix
  # Known, documented divergences from DSPy's json_repair heuristics:
  #   * prose containing an unbalanced or bareword "{...}" fragment, which json_repair
  #     turns into odd values ("text with {braces} inside" -> ["braces} inside"],
  #     "{x}" -> ["x}"]);
  #   * objects missing a value or a colon ({"a": }, {"a" 1}): json_repair fills "",
  #     DSPex's repair fills null / keeps the value.
  @matrix Path.join(@root, "values/parse_value_matrix.json")
  @external_resource @matrix

  test "parse_value matrix matches DSPy's parse_value" do
    rows = load(@matrix)

    mismatches =
      for r <- rows, not divergent?(r["text"]), reduce: [] do
        acc ->
          t = type(r["type"])
          got = DSPex.Adapter.Native.parse_value(t, r["text"])

          ok =
            case {r["ok"], got} do
              {true, {:ok, v}} -> v === value_result(r["value"])
              {false, {:error, %DSPex.Error{type: :adapter_parse}}} -> true
              _ -> false
            end

          if ok, do: acc, else: [{r["type"], r["text"], r, got} | acc]
      end

    assert mismatches == []
    assert length(rows) > 1000
  end

  defp value_result(%{"__set__" => l}), do: MapSet.new(l, &value_result/1)
  defp value_result(v), do: result(v)

  defp divergent?(text) do
    text =~ ~r/^text with \{/ or
      text in ["{x}", ~s|{"a": }|, ~s|{"a" 1}|]
  end

  # The signature parser produces the same type terms these fixtures use, so signatures
  # written as strings render identically.
  test "type terms round-trip through the signature string parser" do
    types =
      for path <- @render ++ @parse,
          fx = load(path),
          f <- fx["signature"]["inputs"] ++ fx["signature"]["outputs"],
          t = type(f["type"]),
          not has_enum?(t),
          uniq: true,
          do: t

    for t <- types do
      assert Field.normalize_type!(Field.type_string(t)) == Field.normalize_type!(t)
    end
  end

  test "a parsed string signature renders like DSPy" do
    fx = load(Path.join(@root, "render/optional_union_chat.json"))
    hand = signature(fx["signature"])

    text =
      Enum.map_join(hand.inputs, ", ", &"#{&1.name}: #{Field.type_string(&1.type)}") <>
        " -> " <> Enum.map_join(hand.outputs, ", ", &"#{&1.name}: #{Field.type_string(&1.type)}")

    sig = Signature.parse!(text) |> Signature.with_instructions(hand.instructions)
    expected = Enum.map(fx["messages"], fn m -> %{role: m["role"], content: m["content"]} end)
    assert Chat.format(sig, [], fields(fx["inputs"]), []) == expected
  end

  test "default instructions of a string signature match DSPy's" do
    for name <- ["default_instructions_chat", "default_instructions_json"] do
      fx = load(Path.join(@root, "render/#{name}.json"))
      sig = Signature.parse!("question, context -> answer")
      expected = Enum.map(fx["messages"], fn m -> %{role: m["role"], content: m["content"]} end)
      assert adapter(fx["adapter"]).format(sig, [], fields(fx["inputs"]), []) == expected
    end
  end

  defp has_enum?({:enum, _, _}), do: true
  defp has_enum?(t) when is_tuple(t), do: t |> Tuple.to_list() |> Enum.any?(&has_enum?/1)
  defp has_enum?(l) when is_list(l), do: Enum.any?(l, &has_enum?/1)
  defp has_enum?(_), do: false
end
