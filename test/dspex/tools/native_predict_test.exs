defmodule DSPex.NativePredictTest do
  # A predictor with `tools: list[Tool] -> calls: ToolCalls` and native function calling,
  # against each provider's wire format (loopback servers, real port transport): the
  # tools go out as native definitions, the calls come back as %DSPex.ToolCalls{}, they
  # run through the registry, and a streamed call yields DSPex.ToolCallChunk pieces.
  use ExUnit.Case, async: true

  alias DSPex.{Tool, ToolCalls}
  alias DSPex.Test.ProviderLoopback

  defp weather,
    do:
      Tool.new(fn city -> "Sunny in #{city}" end,
        name: "get_weather",
        desc: "The weather in a city.",
        args: [city: :string]
      )

  @sig "question, tools: list[Tool] -> calls: ToolCalls"

  for format <- [:openai, :anthropic, :gemini] do
    test "#{format}: native tool calls in, ToolCalls out, executed" do
      {:ok, lb} =
        ProviderLoopback.start_link(unquote(format), [
          %{tool_calls: [%{id: "c1", name: "get_weather", args: %{"city" => "Lima"}}]}
        ])

      p = DSPex.Predict.new(@sig, lm: ProviderLoopback.lm(lb), use_native_function_calling: true)
      {:ok, pred} = DSPex.call(p, question: "Weather in Lima?", tools: [weather()])

      assert %ToolCalls{
               tool_calls: [%DSPex.ToolCall{name: "get_weather", args: %{"city" => "Lima"}}]
             } = pred.calls

      assert [%{result: {:ok, "Sunny in Lima"}}] = ToolCalls.execute(pred.calls, [weather()])

      [body] = ProviderLoopback.bodies(lb)
      sent = inspect(body)
      # the tools went as native definitions, not into the prompt
      assert sent =~ "get_weather"
      refute sent =~ "It takes arguments"
    end

    test "#{format}: streamed tool-call pieces" do
      {:ok, lb} =
        ProviderLoopback.start_link(unquote(format), [
          %{tool_calls: [%{id: "c9", name: "get_weather", args: %{"city" => "Buenos Aires"}}]}
        ])

      p = DSPex.Predict.new(@sig, lm: ProviderLoopback.lm(lb), use_native_function_calling: true)
      items = DSPex.stream(p, question: "?", tools: [weather()]) |> Enum.to_list()

      chunks = for %DSPex.ToolCallChunk{} = c <- items, do: c
      assert [%{name: "get_weather", predictor: "self"} | _] = chunks

      assert chunks |> Enum.map(& &1.arguments) |> Enum.join() |> DSPex.JSON.decode!() == %{
               "city" => "Buenos Aires"
             }

      assert %DSPex.Prediction{} = pred = List.last(items)
      assert [%DSPex.ToolCall{args: %{"city" => "Buenos Aires"}}] = pred.calls.tool_calls
    end
  end

  test "without native function calling the tools are rendered and the calls parsed from text" do
    lm =
      DSPex.LM.Scripted.new([
        ~s([[ ## calls ## ]]\n{"tool_calls": [{"name": "get_weather", "args": {"city": "Quito"}}]}\n\n[[ ## completed ## ]])
      ])

    p = DSPex.Predict.new(@sig, lm: lm)
    {:ok, pred} = DSPex.call(p, question: "?", tools: [weather()], config: %{tools: ["dropped"]})
    assert [%{result: {:ok, "Sunny in Quito"}}] = ToolCalls.execute(pred.calls, [weather()])
    [req] = DSPex.LM.Scripted.requests(lm)
    refute Map.has_key?(req.params, :tools)
    assert List.last(req.messages).content =~ "It takes arguments {'city': {'type': 'string'}}"
  end

  test "a ToolCalls output needs a tools input" do
    assert_raise ArgumentError, ~r/did not provide any tools as the input/, fn ->
      p =
        DSPex.Predict.new("question -> calls: ToolCalls",
          lm: DSPex.LM.new("openai/x"),
          use_native_function_calling: true
        )

      DSPex.call(p, question: "?")
    end
  end
end
