defmodule DSPex.ProvidersTest do
  use ExUnit.Case, async: true

  alias DSPex.LM
  alias DSPex.LM.Provider
  alias DSPex.LM.Providers.{Anthropic, Gemini, OpenAI}

  doctest DSPex.LM.Provider
  doctest DSPex.LM.Providers.OpenAI

  @msgs [
    %{role: "system", content: "Be brief."},
    %{role: "user", content: "Capital of France?"}
  ]

  defp build(lm, msgs \\ @msgs, params \\ %{}, stream? \\ false) do
    {:ok, req} = lm.provider_module.build(lm, msgs, Provider.stringify(params), stream?)
    req
  end

  describe "OpenAI request" do
    test "chat completions body, url and auth header" do
      lm = LM.new("openai/gpt-4o-mini", api_key: "sk-test", api_base: "http://h:1/v1/")
      req = build(lm, @msgs, %{temperature: 0.0, max_tokens: 100, n: 2, stop: ["\n"], seed: 7})
      assert req.url == "http://h:1/v1/chat/completions"
      assert {"authorization", "Bearer sk-test"} in req.headers
      assert req.body["model"] == "gpt-4o-mini"

      assert req.body["messages"] == [
               %{"role" => "system", "content" => "Be brief."},
               %{"role" => "user", "content" => "Capital of France?"}
             ]

      assert %{"temperature" => 0.0, "max_tokens" => 100, "n" => 2, "stop" => ["\n"], "seed" => 7} =
               req.body
    end

    test "no key, no authorization header (local servers)" do
      lm = LM.new("openai/qwen", api_base: "http://127.0.0.1:8000/v1")
      req = build(%{lm | api_key: nil})
      refute Enum.any?(req.headers, fn {k, _} -> k == "authorization" end)
    end

    test "response_format, tools and logprobs pass through" do
      lm = LM.new("openai/gpt-4o")

      rf = %{
        type: "json_schema",
        json_schema: %{name: "out", strict: true, schema: %{type: "object"}}
      }

      tools = [%{type: "function", function: %{name: "f", parameters: %{type: "object"}}}]

      req =
        build(lm, @msgs, %{
          response_format: rf,
          tools: tools,
          tool_choice: "auto",
          logprobs: true,
          top_logprobs: 2
        })

      assert req.body["response_format"]["json_schema"]["name"] == "out"
      assert [%{"function" => %{"name" => "f"}}] = req.body["tools"]
      assert req.body["tool_choice"] == "auto"
      assert req.body["logprobs"] == true
    end

    test "reasoning models send max_completion_tokens and validate params" do
      lm = LM.new("openai/o3-mini", temperature: 1.0, max_tokens: 20_000)
      req = build(lm, @msgs, %{temperature: 1.0, max_tokens: 20_000})
      assert req.body["max_completion_tokens"] == 20_000
      refute Map.has_key?(req.body, "max_tokens")

      assert {:error, %DSPex.Error{type: :bad_request}} =
               OpenAI.build(lm, @msgs, %{"max_tokens" => 1000}, false)

      assert_raise ArgumentError, ~r/reasoning models/, fn ->
        LM.new("openai/gpt-5", temperature: 0.0)
      end

      assert_raise ArgumentError, ~r/16000/, fn -> LM.new("openai/o1", max_tokens: 100) end
      assert %LM{} = LM.new("openai/gpt-5-chat-latest", temperature: 0.0, max_tokens: 10)
    end

    test "stream flag asks for usage" do
      req = build(LM.new("openai/gpt-4o"), @msgs, %{}, true)
      assert req.body["stream"] == true
      assert req.body["stream_options"] == %{"include_usage" => true}
    end

    test "text model type uses /completions with DSPy's prompt" do
      lm = LM.new("openai/gpt-3.5-turbo-instruct", model_type: "text")
      req = build(lm)
      assert req.url =~ ~r{/completions$}
      refute req.url =~ "chat"
      assert req.body["prompt"] == "Be brief.\n\nCapital of France?\n\nBEGIN RESPONSE:"
    end
  end

  describe "OpenAI response" do
    test "choices, tool calls, usage details" do
      body = %{
        "model" => "gpt-4o-mini-2024-07-18",
        "choices" => [
          %{"index" => 1, "message" => %{"content" => "b"}, "finish_reason" => "stop"},
          %{
            "index" => 0,
            "message" => %{
              "content" => nil,
              "tool_calls" => [
                %{
                  "id" => "c1",
                  "type" => "function",
                  "function" => %{"name" => "f", "arguments" => "{\"x\":1}"}
                }
              ]
            },
            "finish_reason" => "tool_calls"
          }
        ],
        "usage" => %{
          "prompt_tokens" => 10,
          "completion_tokens" => 5,
          "total_tokens" => 15,
          "prompt_tokens_details" => %{"cached_tokens" => 4},
          "completion_tokens_details" => %{"reasoning_tokens" => 2}
        }
      }

      lm = LM.new("openai/gpt-4o-mini")
      assert {:ok, c} = OpenAI.parse(body, lm)
      assert c.model == "openai/gpt-4o-mini"
      assert [first, second] = c.choices
      assert first.text == nil

      assert [%{id: "c1", type: "function", function: %{name: "f", arguments: "{\"x\":1}"}}] =
               first.tool_calls

      assert second.text == "b"

      assert c.usage == %{
               prompt_tokens: 10,
               completion_tokens: 5,
               total_tokens: 15,
               cached_tokens: 4,
               reasoning_tokens: 2
             }
    end
  end

  describe "Anthropic request" do
    test "system split out, default max_tokens, headers, stop_sequences" do
      lm = LM.new("anthropic/claude-3-5-haiku-latest", api_key: "ak")
      req = build(lm, @msgs, %{temperature: 0.5, stop: "END"})
      assert req.url == "https://api.anthropic.com/v1/messages"
      assert {"x-api-key", "ak"} in req.headers
      assert {"anthropic-version", "2023-06-01"} in req.headers
      assert req.body["system"] == "Be brief."
      assert req.body["messages"] == [%{"role" => "user", "content" => "Capital of France?"}]
      assert req.body["max_tokens"] == 4096
      assert req.body["stop_sequences"] == ["END"]
      assert req.body["temperature"] == 0.5
    end

    test "tools, tool history and images are converted" do
      lm = LM.new("anthropic/claude-sonnet-4-5")

      msgs = [
        %{
          role: "user",
          content: [
            %{type: "text", text: "look"},
            %{type: "image_url", image_url: %{url: "data:image/png;base64,AAAA"}}
          ]
        },
        %{
          role: "assistant",
          content: "",
          tool_calls: [
            %{id: "t1", type: "function", function: %{name: "f", arguments: "{\"q\":1}"}}
          ]
        },
        %{role: "tool", tool_call_id: "t1", content: "42"},
        %{role: "user", content: "and?"}
      ]

      tools = [
        %{
          type: "function",
          function: %{name: "f", description: "d", parameters: %{type: "object"}}
        }
      ]

      req = build(lm, msgs, %{tools: tools, tool_choice: "required"})

      assert [%{"name" => "f", "description" => "d", "input_schema" => %{"type" => "object"}}] =
               req.body["tools"]

      assert req.body["tool_choice"] == %{"type" => "any"}
      [u1, a1, u2] = req.body["messages"]

      assert [
               %{"type" => "text"},
               %{
                 "type" => "image",
                 "source" => %{"type" => "base64", "media_type" => "image/png"}
               }
             ] = u1["content"]

      assert [%{"type" => "tool_use", "id" => "t1", "name" => "f", "input" => %{"q" => 1}}] =
               a1["content"]

      # tool result and the next user turn are merged into one user message
      assert [
               %{"type" => "tool_result", "tool_use_id" => "t1", "content" => "42"},
               %{"type" => "text", "text" => "and?"}
             ] = u2["content"]
    end

    test "n > 1 is refused" do
      assert {:error, %DSPex.Error{type: :bad_request}} =
               Anthropic.build(LM.new("anthropic/claude-x"), @msgs, %{"n" => 2}, false)
    end
  end

  describe "Anthropic response" do
    test "text, tool_use, thinking and usage" do
      body = %{
        "model" => "claude-x",
        "stop_reason" => "tool_use",
        "content" => [
          %{"type" => "thinking", "thinking" => "hmm"},
          %{"type" => "text", "text" => "Calling."},
          %{"type" => "tool_use", "id" => "tu1", "name" => "f", "input" => %{"a" => 1}}
        ],
        "usage" => %{
          "input_tokens" => 10,
          "output_tokens" => 3,
          "cache_read_input_tokens" => 5,
          "cache_creation_input_tokens" => 1
        }
      }

      {:ok, c} = Anthropic.parse(body, LM.new("anthropic/claude-x"))
      [ch] = c.choices
      assert ch.text == "Calling."
      assert ch.reasoning_content == "hmm"
      assert ch.finish_reason == "tool_calls"
      assert [%{id: "tu1", function: %{name: "f", arguments: args}}] = ch.tool_calls
      assert DSPex.JSON.decode!(args) == %{"a" => 1}

      assert %{prompt_tokens: 16, completion_tokens: 3, total_tokens: 19, cached_tokens: 5} =
               c.usage
    end
  end

  describe "Gemini request" do
    test "contents, systemInstruction, generationConfig, key header, url" do
      lm = LM.new("gemini/gemini-2.5-flash", api_key: "gk")
      msgs = @msgs ++ [%{role: "assistant", content: "Paris"}, %{role: "user", content: "Sure?"}]
      rf = %{type: "json_schema", json_schema: %{name: "o", schema: %{type: "object"}}}

      req =
        build(lm, msgs, %{
          temperature: 0.1,
          max_tokens: 50,
          n: 2,
          stop: "X",
          seed: 3,
          response_format: rf
        })

      assert req.url ==
               "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent"

      assert {"x-goog-api-key", "gk"} in req.headers
      refute req.url =~ "gk"
      assert req.body["systemInstruction"] == %{"parts" => [%{"text" => "Be brief."}]}

      assert req.body["contents"] == [
               %{"role" => "user", "parts" => [%{"text" => "Capital of France?"}]},
               %{"role" => "model", "parts" => [%{"text" => "Paris"}]},
               %{"role" => "user", "parts" => [%{"text" => "Sure?"}]}
             ]

      assert req.body["generationConfig"] == %{
               "temperature" => 0.1,
               "maxOutputTokens" => 50,
               "candidateCount" => 2,
               "stopSequences" => ["X"],
               "seed" => 3,
               "responseMimeType" => "application/json",
               "responseJsonSchema" => %{"type" => "object"}
             }

      sreq = build(lm, @msgs, %{}, true)
      assert sreq.url =~ ":streamGenerateContent?alt=sse"
    end

    test "tools and tool_choice" do
      tools = [
        %{
          type: "function",
          function: %{name: "f", description: "d", parameters: %{type: "object"}}
        }
      ]

      req =
        build(LM.new("gemini/g"), @msgs, %{
          tools: tools,
          tool_choice: %{type: "function", function: %{name: "f"}}
        })

      assert [
               %{
                 "functionDeclarations" => [
                   %{"name" => "f", "parametersJsonSchema" => %{"type" => "object"}}
                 ]
               }
             ] = req.body["tools"]

      assert req.body["toolConfig"] == %{
               "functionCallingConfig" => %{"mode" => "ANY", "allowedFunctionNames" => ["f"]}
             }
    end
  end

  describe "Gemini response" do
    test "candidates, thoughts, function calls and usageMetadata" do
      body = %{
        "modelVersion" => "gemini-2.5-flash",
        "candidates" => [
          %{
            "index" => 0,
            "finishReason" => "STOP",
            "content" => %{
              "role" => "model",
              "parts" => [
                %{"text" => "think", "thought" => true},
                %{"text" => "Par"},
                %{"text" => "is"}
              ]
            }
          },
          %{
            "index" => 1,
            "finishReason" => "STOP",
            "content" => %{
              "parts" => [%{"functionCall" => %{"name" => "f", "args" => %{"x" => 2}}}]
            }
          }
        ],
        "usageMetadata" => %{
          "promptTokenCount" => 8,
          "candidatesTokenCount" => 4,
          "thoughtsTokenCount" => 2,
          "totalTokenCount" => 14,
          "cachedContentTokenCount" => 3
        }
      }

      {:ok, c} = Gemini.parse(body, LM.new("gemini/gemini-2.5-flash"))
      [a, b] = c.choices
      assert a.text == "Paris"
      assert a.reasoning_content == "think"
      assert a.finish_reason == "stop"
      assert b.finish_reason == "tool_calls"
      assert [%{function: %{name: "f"}}] = b.tool_calls

      assert c.usage == %{
               prompt_tokens: 8,
               completion_tokens: 6,
               total_tokens: 14,
               cached_tokens: 3,
               reasoning_tokens: 2
             }
    end

    test "blocked prompt is an error" do
      assert {:error, %DSPex.Error{type: :bad_request}} =
               Gemini.parse(
                 %{"promptFeedback" => %{"blockReason" => "SAFETY"}},
                 LM.new("gemini/g")
               )
    end
  end

  describe "error mapping" do
    test "statuses and context-window messages per provider" do
      cases = [
        {OpenAI, 401,
         ~s({"error":{"message":"Incorrect API key provided","type":"invalid_request_error","code":"invalid_api_key"}}),
         :auth},
        {OpenAI, 429, ~s({"error":{"message":"Rate limit reached","code":"rate_limit_exceeded"}}),
         :rate_limit},
        {OpenAI, 400,
         ~s({"error":{"message":"This model's maximum context length is 128000 tokens.","code":"context_length_exceeded"}}),
         :context_window},
        {OpenAI, 400,
         ~s({"error":{"message":"the request exceeds the available context size","type":"exceed_context_size_error"}}),
         :context_window},
        {OpenAI, 400, ~s({"error":{"message":"Invalid value: 'tool_choice'"}}), :bad_request},
        {OpenAI, 500, "upstream broke", :server},
        {Anthropic, 400,
         ~s({"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long: 210000 tokens > 200000 maximum"}}),
         :context_window},
        {Anthropic, 403, ~s({"type":"error","error":{"type":"permission_error","message":"no"}}),
         :auth},
        {Anthropic, 529,
         ~s({"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}),
         :server},
        {Gemini, 400,
         ~s|{"error":{"code":400,"message":"The input token count (1200000) exceeds the maximum number of tokens allowed (1048576).","status":"INVALID_ARGUMENT"}}|,
         :context_window},
        {Gemini, 429,
         ~s({"error":{"code":429,"message":"Resource exhausted","status":"RESOURCE_EXHAUSTED"}}),
         :rate_limit},
        {Gemini, 404,
         ~s({"error":{"code":404,"message":"models/x is not found","status":"NOT_FOUND"}}),
         :bad_request}
      ]

      for {mod, status, body, type} <- cases do
        err = Provider.http_error(mod, "p", status, body)
        assert err.type == type, "#{inspect(mod)} #{status} #{body}: got #{err.type}"
        assert err.details.status == status
      end

      err =
        Provider.http_error(
          OpenAI,
          "openai",
          401,
          ~s({"error":{"message":"Incorrect API key provided"}})
        )

      assert err.message == "openai returned HTTP 401: Incorrect API key provided"
    end
  end

  describe "streaming events" do
    defp run_events(mod, lm, events) do
      st = mod.stream_init(lm)

      {deltas, st} =
        Enum.reduce(events, {[], st}, fn {ev, data}, {ds, st} ->
          case mod.stream_event(st, ev, data) do
            {tag, d, st} when tag in [:ok, :done] -> {ds ++ d, st}
          end
        end)

      {:ok, c} = mod.stream_finish(st)
      {deltas, c}
    end

    test "OpenAI deltas, tool call fragments and the usage chunk" do
      events = [
        {nil,
         ~s({"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":""}}]})},
        {nil, ~s({"choices":[{"index":0,"delta":{"content":"Hel"}}]})},
        {nil, ~s({"choices":[{"index":0,"delta":{"content":"lo"}}]})},
        {nil,
         ~s({"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"c1","function":{"name":"f","arguments":"{\\"a\\""}}]}}]})},
        {nil,
         ~s({"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":":1}"}}]}}]})},
        {nil, ~s({"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]})},
        {nil,
         ~s({"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}})},
        {nil, "[DONE]"}
      ]

      {deltas, c} = run_events(OpenAI, LM.new("openai/m"), events)

      assert deltas == [
               "Hel",
               "lo",
               {:tool_call, %{index: 0, id: "c1", name: "f", arguments: ~s({"a")}},
               {:tool_call, %{index: 0, id: nil, name: nil, arguments: ":1}"}}
             ]

      [ch] = c.choices
      assert ch.text == "Hello"
      assert ch.finish_reason == "stop"
      assert [%{id: "c1", function: %{name: "f", arguments: ~s({"a":1})}}] = ch.tool_calls
      assert c.usage.total_tokens == 5
    end

    test "Anthropic content_block_delta events" do
      events = [
        {"message_start",
         ~s({"type":"message_start","message":{"model":"claude-x","usage":{"input_tokens":7,"output_tokens":1}}})},
        {"content_block_start",
         ~s({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}})},
        {"ping", ~s({"type":"ping"})},
        {"content_block_delta",
         ~s({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}})},
        {"content_block_delta",
         ~s({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":" there"}})},
        {"content_block_stop", ~s({"type":"content_block_stop","index":0})},
        {"message_delta",
         ~s({"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":4}})},
        {"message_stop", ~s({"type":"message_stop"})}
      ]

      {deltas, c} = run_events(Anthropic, LM.new("anthropic/claude-x"), events)
      assert deltas == ["Hi", " there"]
      assert [%{text: "Hi there", finish_reason: "stop"}] = c.choices
      assert %{prompt_tokens: 7, completion_tokens: 4, total_tokens: 11} = c.usage
    end

    test "Anthropic error event" do
      st = Anthropic.stream_init(LM.new("anthropic/x"))

      assert {:error, %DSPex.Error{type: :server}} =
               Anthropic.stream_event(
                 st,
                 "error",
                 ~s({"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}})
               )
    end

    test "Gemini SSE chunks" do
      events = [
        {nil,
         ~s({"candidates":[{"content":{"role":"model","parts":[{"text":"Bon"}]},"index":0}],"usageMetadata":{"promptTokenCount":4}})},
        {nil,
         ~s({"candidates":[{"content":{"role":"model","parts":[{"text":"jour"}]},"finishReason":"STOP","index":0}],"usageMetadata":{"promptTokenCount":4,"candidatesTokenCount":2,"totalTokenCount":6},"modelVersion":"g"})}
      ]

      {deltas, c} = run_events(Gemini, LM.new("gemini/g"), events)
      assert deltas == ["Bon", "jour"]
      assert [%{text: "Bonjour", finish_reason: "stop"}] = c.choices
      assert c.usage.total_tokens == 6
    end
  end
end
