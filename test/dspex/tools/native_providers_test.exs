defmodule DSPex.NativeProvidersTest do
  # Native function calling on the wire: each provider format, plain and streamed,
  # through the real pool, port program and HTTP, against loopback servers.
  use ExUnit.Case, async: true

  alias DSPex.{Tool, ToolCalls}
  alias DSPex.Test.ProviderLoopback

  defp weather do
    Tool.new(fn city -> "Sunny in #{city}" end,
      name: "get_weather",
      desc: "The weather in a city.",
      args: [city: [type: :string, desc: "City name"]]
    )
  end

  # the OpenAI function definition every provider converts from
  @tool_def %{
    type: "function",
    function: %{
      name: "get_weather",
      description: "The weather in a city.",
      parameters: %{
        type: "object",
        properties: %{city: %{type: "string", description: "City name"}},
        required: ["city"]
      }
    }
  }

  @user [%{role: "user", content: "Weather in Paris?"}]
  @call %{id: "call_7", name: "get_weather", args: %{"city" => "Paris"}}

  for format <- [:openai, :anthropic, :gemini] do
    describe "#{format}" do
      test "a tool call, its execution and the follow-up turn" do
        {:ok, lb} =
          ProviderLoopback.start_link(unquote(format), [
            %{text: nil, tool_calls: [@call]},
            %{text: "It is sunny in Paris."}
          ])

        lm = ProviderLoopback.lm(lb)

        {:ok, c1} = DSPex.LM.request(lm, @user, %{tools: [@tool_def], tool_choice: "auto"})
        [choice] = c1.choices
        assert choice.finish_reason == "tool_calls"
        calls = ToolCalls.from_provider(choice.tool_calls)

        assert [%DSPex.ToolCall{name: "get_weather", args: %{"city" => "Paris"}} = call] =
                 calls.tool_calls

        results = ToolCalls.execute(calls, [weather()])
        assert [%{result: {:ok, "Sunny in Paris"}}] = results

        {:ok, c2} =
          DSPex.LM.request(lm, @user ++ ToolCalls.messages(calls, results), %{tools: [@tool_def]})

        assert hd(c2.choices).text == "It is sunny in Paris."
        assert [first, second] = ProviderLoopback.bodies(lb)
        check_request(unquote(format), first, second, call.id)
      end

      test "streamed tool-call deltas reassemble into the calls" do
        two = [@call, %{id: "call_8", name: "get_weather", args: %{"city" => "Kyiv, Ukraine"}}]

        {:ok, lb} =
          ProviderLoopback.start_link(unquote(format), [%{text: "Checking.", tool_calls: two}])

        me = self()

        {:ok, c} =
          DSPex.LM.stream(
            lm = ProviderLoopback.lm(lb),
            @user,
            %{tools: [@tool_def]},
            &send(me, {:ev, &1})
          )

        _ = lm
        events = collect()
        text = for {:delta, t} <- events, into: "", do: t
        assert text == "Checking."

        pieces = for {:tool_call_delta, p} <- events, do: p
        by_call = Enum.group_by(pieces, & &1.index)
        assert Map.keys(by_call) == [0, 1]

        for {i, ps} <- by_call do
          [first | _] = ps
          assert first.name == "get_weather"
          assert is_binary(first.id)
          assert Enum.all?(tl(ps), &(&1.name == nil))
          args = ps |> Enum.map(& &1.arguments) |> Enum.join() |> DSPex.JSON.decode!()
          assert args == Enum.at(two, i).args
        end

        if unquote(format) != :gemini do
          # pieces of the arguments arrived apart (Gemini sends each call whole)
          assert length(pieces) > 2
        end

        [choice] = c.choices
        assert choice.text == "Checking."
        calls = ToolCalls.from_provider(choice.tool_calls)
        assert Enum.map(calls.tool_calls, & &1.args) == Enum.map(two, & &1.args)

        assert Enum.map(calls.tool_calls, & &1.id) ==
                 Enum.map(by_call[0] ++ by_call[1], & &1.id) |> Enum.reject(&is_nil/1)
      end
    end
  end

  defp collect(acc \\ []) do
    receive do
      {:ev, e} -> collect([e | acc])
    after
      0 -> Enum.reverse(acc)
    end
  end

  defp check_request(:openai, first, second, id) do
    assert first["tools"] == [DSPex.LM.Provider.stringify(@tool_def)]
    assert first["tool_choice"] == "auto"
    [_user, assistant, tool] = second["messages"]

    assert [%{"id" => ^id, "function" => %{"name" => "get_weather", "arguments" => args}}] =
             assistant["tool_calls"]

    assert DSPex.JSON.decode!(args) == %{"city" => "Paris"}

    assert tool == %{
             "role" => "tool",
             "tool_call_id" => id,
             "name" => "get_weather",
             "content" => "Sunny in Paris"
           }
  end

  defp check_request(:anthropic, first, second, id) do
    assert [
             %{
               "name" => "get_weather",
               "description" => "The weather in a city.",
               "input_schema" => schema
             }
           ] = first["tools"]

    assert schema["properties"]["city"] == %{"type" => "string", "description" => "City name"}
    assert first["tool_choice"] == %{"type" => "auto"}

    [_user, assistant, results] = second["messages"]

    assert assistant["content"] == [
             %{
               "type" => "tool_use",
               "id" => id,
               "name" => "get_weather",
               "input" => %{"city" => "Paris"}
             }
           ]

    assert results == %{
             "role" => "user",
             "content" => [
               %{"type" => "tool_result", "tool_use_id" => id, "content" => "Sunny in Paris"}
             ]
           }
  end

  defp check_request(:gemini, first, second, _id) do
    assert [%{"functionDeclarations" => [decl]}] = first["tools"]
    assert decl["name"] == "get_weather"
    assert decl["parametersJsonSchema"]["required"] == ["city"]
    assert first["toolConfig"] == %{"functionCallingConfig" => %{"mode" => "AUTO"}}

    [_user, model, fn_response] = second["contents"]

    assert model == %{
             "role" => "model",
             "parts" => [
               %{"functionCall" => %{"name" => "get_weather", "args" => %{"city" => "Paris"}}}
             ]
           }

    assert fn_response == %{
             "role" => "user",
             "parts" => [
               %{
                 "functionResponse" => %{
                   "name" => "get_weather",
                   "response" => %{"content" => "Sunny in Paris"}
                 }
               }
             ]
           }
  end
end
