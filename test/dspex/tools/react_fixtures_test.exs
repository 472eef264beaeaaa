defmodule DSPex.ReActFixturesTest do
  # Golden fixtures made by the real DSPy 3.3.1 ReAct (tools/gen_react_fixtures.py): the
  # same scripted replies drive DSPex.ReAct, which must send byte-identical prompts, call
  # the tools with the same arguments and end with the same trajectory and outputs.
  use ExUnit.Case, async: true

  import DSPex.Test.DSPyFixtures

  @root Path.expand("../../fixtures/react", __DIR__)
  @paths Path.wildcard(Path.join(@root, "*.json")) |> Enum.sort()
  for p <- @paths, do: @external_resource(p)

  test "there are enough fixtures" do
    assert length(@paths) >= 10
  end

  for path <- @paths do
    name = Path.basename(path, ".json")

    test "ReAct #{name}" do
      run(unquote(path))
    end
  end

  defp run(path) do
    fx = load(path)
    me = self()

    tools = Enum.map(fx["tools"], &tool(&1, me))
    {:ok, script} = Agent.start_link(fn -> fx["script"] end)

    lm =
      DSPex.LM.Scripted.new(fn messages, _params ->
        send(me, {:lm_call, messages})

        case Agent.get_and_update(script, fn [h | t] -> {h, t} end) do
          %{"reply" => text} -> text
          %{"error" => "context_window"} -> {:error, DSPex.Error.new(:context_window, "too long")}
        end
      end)

    opts =
      [tools: tools, lm: lm] ++ if(fx["max_iters"], do: [max_iters: fx["max_iters"]], else: [])

    agent = DSPex.ReAct.new(signature(fx["signature"]), opts)
    inputs = fields(fx["inputs"])

    inputs =
      if fx["call_max_iters"], do: Map.put(inputs, :max_iters, fx["call_max_iters"]), else: inputs

    {:ok, pred} =
      ExUnit.CaptureLog.with_log(fn ->
        DSPex.with_settings([adapter: adapter(fx["adapter"])], fn -> DSPex.call(agent, inputs) end)
      end)
      |> elem(0)

    # every prompt, byte for byte
    calls = collect(:lm_call)
    assert length(calls) == length(fx["calls"])

    for {actual, expected} <- Enum.zip(calls, fx["calls"]) do
      assert length(actual) == length(expected)

      for {a, e} <- Enum.zip(actual, expected) do
        assert a.role == e["role"]
        assert a.content == e["content"]
      end
    end

    # the tools got the arguments DSPy's tools got (plus their defaults)
    received = collect(:tool_call)
    assert length(received) == length(fx["tool_calls"])

    for {{name, args}, [ename, eargs]} <- Enum.zip(received, fx["tool_calls"]) do
      spec = Enum.find(fx["tools"], &(&1["name"] == name))
      assert name == ename

      defaults =
        for p <- spec["params"],
            Map.has_key?(p, "default"),
            into: %{},
            do: {p["name"], result(p["default"])}

      assert args == Map.merge(defaults, result(eargs))
    end

    assert pred.trajectory ==
             Enum.map(fx["trajectory"], fn [k, v] -> {k, result(v)} end)

    for {k, v} <- fx["prediction"] do
      assert Map.fetch!(pred, String.to_existing_atom(k)) == result(v)
    end
  end

  # A tool like the fixture's Python function: same parameters, results in order.
  defp tool(spec, me) do
    {:ok, results} = Agent.start_link(fn -> Enum.map(spec["results"], &value/1) end)
    name = spec["name"]
    keys = Enum.map(spec["params"], & &1["name"])

    respond = fn args ->
      args = Map.new(args, fn {k, v} -> {to_string(k), v} end)
      send(me, {:tool_call, {name, args}})
      Agent.get_and_update(results, fn [h | t] -> {h, t} end)
    end

    fun =
      case keys do
        [] -> fn -> respond.(%{}) end
        [one] -> fn v -> respond.(%{one => v}) end
        _ -> fn args -> respond.(args) end
      end

    args =
      for p <- spec["params"] do
        opts = [type: type(p["type"])]

        opts =
          if Map.has_key?(p, "default"), do: opts ++ [default: value(p["default"])], else: opts

        opts = if p["desc"], do: opts ++ [desc: p["desc"]], else: opts
        {String.to_atom(p["name"]), opts}
      end

    DSPex.Tool.new(fun, name: name, desc: spec["desc"], args: args)
  end

  defp collect(tag, acc \\ []) do
    receive do
      {^tag, x} -> collect(tag, [x | acc])
    after
      0 -> Enum.reverse(acc)
    end
  end
end
