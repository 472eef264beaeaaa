defmodule DSPex.ToolTypesFixturesTest do
  # Golden fixtures from DSPy 3.3.1 (tools/gen_react_fixtures.py, tool_types/): signatures
  # with list[dspy.Tool] / dspy.Tool inputs and dspy.ToolCalls outputs, rendered and
  # parsed as text, and sent as native function calls (here over a loopback server that
  # speaks OpenAI's wire format, through the real port transport).
  use ExUnit.Case, async: true

  import DSPex.Test.DSPyFixtures

  alias DSPex.Test.ProviderLoopback

  @root Path.expand("../../fixtures/react/tool_types", __DIR__)
  @paths Path.wildcard(Path.join(@root, "*.json")) |> Enum.sort()
  for p <- @paths, do: @external_resource(p)

  test "there are enough fixtures" do
    assert length(@paths) >= 20
  end

  for path <- @paths do
    test "tool types #{Path.basename(path, ".json")}" do
      check(load(unquote(path)))
    end
  end

  defp check(%{"kind" => "render"} = fx) do
    sig = signature(fx["signature"])
    tools = Enum.map(fx["tools"], &tool/1)
    tool_input = if fx["single"], do: hd(tools), else: tools

    demos =
      for d <- fx["demos"] do
        %{
          question: d["question"],
          tools: Enum.map(d["tools"], fn n -> Enum.find(tools, &(&1.name == n)) || tool(n) end),
          answer: d["answer"],
          calls: DSPex.ToolCalls.new!(d["calls"])
        }
      end

    messages =
      adapter(fx["adapter"]).format(
        sig,
        demos,
        %{question: fx["inputs"]["question"], tools: tool_input},
        []
      )

    assert_messages(messages, fx["messages"])
  end

  defp check(%{"kind" => "parse"} = fx) do
    sig = signature(fx["signature"])
    {:ok, %{calls: calls}} = adapter(fx["adapter"]).parse(sig, fx["completion"])
    assert DSPex.ToolCalls.format(calls) == strip_ids(result(fx["outputs"]["calls"]))

    assert Enum.map(calls.tool_calls, & &1.id) ==
             Enum.map(fx["outputs"]["calls"]["tool_calls"], & &1["id"])
  end

  defp check(%{"kind" => "native"} = fx) do
    sig = signature(fx["signature"])
    reply = fx["reply"]

    calls =
      for c <- reply["tool_calls"] do
        %{id: c["id"], name: c["name"], args: DSPex.JSON.decode!(c["arguments"])}
      end

    {:ok, lb} = ProviderLoopback.start_link(:openai, [%{text: reply["reply"], tool_calls: calls}])
    tools = Enum.map(fx["tools"], &tool/1)
    predict = DSPex.Predict.new(sig, lm: ProviderLoopback.lm(lb), adapter: adapter(fx["adapter"]))

    predict =
      if fx["adapter"] == "chat",
        do: %{predict | use_native_function_calling: true},
        else: predict

    {:ok, pred} = DSPex.call(predict, question: fx["inputs"]["question"], tools: tools)

    [body] = ProviderLoopback.bodies(lb)

    assert_messages(
      Enum.map(body["messages"], &%{role: &1["role"], content: &1["content"]}),
      fx["messages"]
    )

    assert body["tools"] == fx["lm_kwargs"]["tools"]

    for {k, v} <- fx["outputs"] do
      actual = Map.fetch!(pred, String.to_existing_atom(k))

      case actual do
        %DSPex.ToolCalls{} = c ->
          assert DSPex.ToolCalls.format(c) == strip_ids(result(v))
          assert Enum.map(c.tool_calls, & &1.id) == Enum.map(v["tool_calls"], & &1["id"])

        other ->
          assert other == result(v)
      end
    end
  end

  defp strip_ids(%{"tool_calls" => calls}),
    do: %{"tool_calls" => Enum.map(calls, &Map.delete(&1, "id"))}

  defp assert_messages(actual, expected) do
    assert length(actual) == length(expected)

    for {a, e} <- Enum.zip(actual, expected) do
      assert a.role == e["role"]
      assert a.content == e["content"]
    end
  end

  defp tool(%{} = spec) do
    args =
      for p <- spec["params"] do
        opts = [type: type(p["type"])]

        opts =
          if Map.has_key?(p, "default"), do: opts ++ [default: value(p["default"])], else: opts

        opts = if p["desc"], do: opts ++ [desc: p["desc"]], else: opts
        {String.to_atom(p["name"]), opts}
      end

    fun =
      case length(args) do
        0 -> fn -> :ok end
        1 -> fn x -> x end
        _ -> fn m -> m end
      end

    DSPex.Tool.new(fun, name: spec["name"], desc: spec["desc"], args: args)
  end

  defp tool(name) when is_binary(name), do: tool(%{"name" => name, "desc" => nil, "params" => []})
end
