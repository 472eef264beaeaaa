defmodule DSPex.Docs.GuidesTest do
  @moduledoc """
  Runs the `iex>` examples of the guides in `docs/guide/` so they cannot drift.

  Rules (as ExUnit doctests, with two additions):

    * each guide is one test; every ```` ```elixir ```` fence in it that holds
      `iex>` lines is run in order, its `iex>` / `...>` lines evaluated with one
      binding shared within the fence;
    * the lines after an expression, up to a blank line or the next `iex>`, are
      its expected value. It is read as a *pattern* when it is one (so a struct or
      map in the expected output may leave out keys, and `_` matches anything),
      otherwise evaluated and compared with `===`; `** (Module) message` expects
      that exception with a message starting with `message`;
    * a fence right after `<!-- not run: reason -->` is skipped (it needs a
      network, a model or a file the test does not have).
  """
  use ExUnit.Case, async: false

  @guides Path.wildcard(Path.expand("../../docs/guide/*.md", __DIR__))

  defmodule Extract do
    @moduledoc false

    @doc "The runnable `iex>` fences of a markdown text: `[{line, [{code, expected, line}]}]`."
    def blocks(text) do
      text
      |> String.split("\n")
      |> Enum.with_index(1)
      |> fences([], nil, false)
      |> Enum.reverse()
      |> Enum.map(fn {line, lines} -> {line, steps(lines)} end)
      |> Enum.reject(fn {_line, steps} -> steps == [] end)
    end

    defp fences([], acc, _open, _skip), do: acc

    defp fences([{l, n} | rest], acc, nil, skip) do
      t = String.trim(l)

      cond do
        t == "```elixir" -> fences(rest, acc, {n, [], skip}, false)
        String.starts_with?(t, "<!-- not run") -> fences(rest, acc, nil, true)
        t == "" -> fences(rest, acc, nil, skip)
        true -> fences(rest, acc, nil, false)
      end
    end

    defp fences([{l, _n} | rest], acc, {start, lines, skip}, _) do
      if String.trim(l) == "```" do
        acc = if skip, do: acc, else: [{start, Enum.reverse(lines)} | acc]
        fences(rest, acc, nil, false)
      else
        fences(rest, acc, {start, [{l, start + length(lines) + 1} | lines], skip}, false)
      end
    end

    # [{code, expected | nil, line}]
    defp steps(lines) do
      lines
      |> Enum.map(fn {l, n} -> {String.trim_leading(l), n} end)
      |> collect([])
    end

    defp collect([], acc), do: Enum.reverse(acc)

    defp collect([{"iex>" <> code, n} | rest], acc) do
      {more, rest} = Enum.split_while(rest, fn {l, _} -> String.starts_with?(l, "...>") end)
      code = Enum.map_join([code | Enum.map(more, fn {"...>" <> c, _} -> c end)], "\n", &strip/1)

      {expected, rest} =
        Enum.split_while(rest, fn {l, _} -> l != "" and not String.starts_with?(l, "iex>") end)

      expected =
        case expected do
          [] -> nil
          lines -> Enum.map_join(lines, "\n", &elem(&1, 0))
        end

      collect(rest, [{code, expected, n} | acc])
    end

    defp collect([_ | rest], acc), do: collect(rest, acc)

    defp strip(" " <> c), do: c
    defp strip(c), do: c
  end

  # One test per guide, its fences in order (a later fence may use a module an earlier
  # one defined); each fence starts with an empty binding.
  for path <- @guides do
    @external_resource path
    blocks = Extract.blocks(File.read!(path))

    if blocks != [] do
      test "iex> examples of docs/guide/#{Path.basename(path)}" do
        for {_line, steps} <- unquote(Macro.escape(blocks)) do
          run_steps(steps, unquote(Path.basename(path)))
        end
      end
    end
  end

  @with_examples ~w(signatures programs lm transport json evaluate metrics fewshot tools numerics)

  test "each of these guides has runnable examples" do
    for name <- @with_examples do
      path = Path.expand("../../docs/guide/#{name}.md", __DIR__)
      assert File.exists?(path), "missing #{path}"
      assert Extract.blocks(File.read!(path)) != [], "#{name}.md has no iex> examples"
    end
  end

  test "every <!-- not run --> marker stands right before an elixir fence" do
    for path <- @guides do
      lines = path |> File.read!() |> String.split("\n")

      for {line, i} <- Enum.with_index(lines), String.starts_with?(line, "<!-- not run") do
        next = lines |> Enum.drop(i + 1) |> Enum.find(&(String.trim(&1) != ""))

        assert String.trim(next || "") == "```elixir",
               "#{Path.basename(path)}:#{i + 1}: marker not followed by an elixir fence"
      end
    end
  end

  defp run_steps(steps, file) do
    Enum.reduce(steps, [], fn {code, expected, line}, binding ->
      where = "#{file}:#{line}: #{code}"
      run_step(code, expected, binding, where)
    end)
  end

  defp run_step(code, "** (" <> _ = expected, binding, where) do
    [_, mod, msg] = Regex.run(~r/\A\*\* \(([\w.]+)\) ?(.*)\z/s, expected)
    exception = Module.concat([mod])

    try do
      Code.eval_string(code, binding, file: "guide")
      flunk("#{where}\nexpected #{mod} to be raised")
    rescue
      e in ExUnit.AssertionError ->
        reraise e, __STACKTRACE__

      e ->
        assert e.__struct__ == exception, "#{where}\nraised #{inspect(e)}"
        actual = Exception.message(e)

        assert String.starts_with?(actual, String.trim(msg)),
               "#{where}\nmessage: #{actual}\nexpected to start with: #{msg}"
    end

    binding
  end

  defp run_step(code, expected, binding, where) do
    {value, binding} = Code.eval_string(code, binding, file: "guide")
    if expected, do: check(value, expected, where)
    binding
  end

  defp check(value, expected, where) do
    matched =
      try do
        {ok, _} =
          Code.eval_string("match?(#{expected}, value__)", [value__: value], file: "expected")

        {:pattern, ok}
      rescue
        _ in [CompileError, ArgumentError] ->
          {exp, _} = Code.eval_string(expected, [], file: "expected")
          {:value, exp === value}
      end

    case matched do
      {_, true} -> :ok
      {how, false} -> flunk("#{where}\nexpected (#{how}): #{expected}\ngot: #{inspect(value)}")
    end
  end
end
