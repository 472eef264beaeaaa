defmodule DSPex.Test.ProviderLoopback do
  @moduledoc """
  A loopback LM server (a `DSPex.Test.LoopbackServer` route) that speaks one provider's
  wire format — OpenAI Chat Completions, Anthropic Messages or Gemini generateContent —
  plain and streamed (SSE), with text and native tool calls. For tests of native
  function calling through the real port transport.

      {:ok, lb} = DSPex.Test.ProviderLoopback.start_link(:anthropic, [
        %{tool_calls: [%{id: "t1", name: "get_weather", args: %{"city" => "Paris"}}]},
        %{text: "It is sunny."}
      ])
      lm = DSPex.Test.ProviderLoopback.lm(lb)
      DSPex.Test.ProviderLoopback.bodies(lb)   # decoded request bodies, oldest first

  Replies: the nth request gets the nth reply (the last one repeats), or give a
  function `fn decoded_request_body -> reply end`. A reply is
  `%{text: binary | nil, tool_calls: [%{id:, name:, args: map}]}`; streamed replies cut
  texts and tool-call arguments into pieces of `piece:` bytes (default 5) — Gemini
  sends each call whole, as the real API does.
  """

  alias DSPex.Test.LoopbackServer

  defstruct [:srv, :format, :counter]

  @doc "Starts the server (linked). `format` is `:openai`, `:anthropic` or `:gemini`."
  def start_link(format, replies, opts \\ []) when format in [:openai, :anthropic, :gemini] do
    {:ok, counter} = Agent.start_link(fn -> 0 end)
    piece = Keyword.get(opts, :piece, 5)

    route = fn req ->
      body = DSPex.JSON.decode!(req.body)
      n = Agent.get_and_update(counter, &{&1, &1 + 1})

      reply =
        case replies do
          f when is_function(f, 1) -> f.(body)
          list -> Enum.at(list, n) || List.last(list)
        end

      reply = Map.merge(%{text: nil, tool_calls: []}, reply)

      if streamed?(format, req, body),
        do: %{
          status: 200,
          headers: [{"content-type", "text/event-stream"}],
          sse: sse(format, reply, piece)
        },
        else: %{
          status: 200,
          headers: [{"content-type", "application/json"}],
          body: json(format, reply)
        }
    end

    {:ok, srv} = LoopbackServer.start_link(routes: %{:default => route})
    {:ok, %__MODULE__{srv: srv, format: format, counter: counter}}
  end

  @doc "A `DSPex.LM` that talks to this server (`cache: false`); `opts` go to `DSPex.LM.new/2`."
  def lm(%__MODULE__{} = lb, opts \\ []) do
    {model, base} =
      case lb.format do
        :openai -> {"openai/gpt-loopback", LoopbackServer.url(lb.srv, "/v1")}
        :anthropic -> {"anthropic/claude-loopback", LoopbackServer.url(lb.srv, "")}
        :gemini -> {"gemini/gemini-loopback", LoopbackServer.url(lb.srv, "/v1beta")}
      end

    DSPex.LM.new(model, Keyword.merge([api_base: base, api_key: "test-key", cache: false], opts))
  end

  @doc "The decoded bodies of every request so far, oldest first."
  def bodies(%__MODULE__{srv: srv}) do
    srv
    |> all_requests()
    |> Enum.sort_by(& &1.at_ms)
    |> Enum.map(&DSPex.JSON.decode!(&1.body))
  end

  @doc "The recorded requests (with `path` and `query`), oldest first."
  def requests(%__MODULE__{srv: srv}), do: srv |> all_requests() |> Enum.sort_by(& &1.at_ms)

  defp all_requests(srv) do
    paths = ["/v1/chat/completions", "/v1/messages"]

    gemini =
      for m <- ["gemini-loopback"],
          verb <- ["generateContent", "streamGenerateContent"],
          do: "/v1beta/models/#{m}:#{verb}"

    Enum.flat_map(paths ++ gemini, &LoopbackServer.requests(srv, &1))
  end

  defp streamed?(:gemini, req, _body), do: String.contains?(req.path, "streamGenerateContent")
  defp streamed?(_format, _req, body), do: body["stream"] == true

  defp pieces(nil, _n), do: []
  defp pieces("", _n), do: []

  defp pieces(text, n) do
    case text do
      <<p::binary-size(n), rest::binary>> when rest != "" -> [p | pieces(rest, n)]
      _ -> [text]
    end
  end

  defp enc(term), do: DSPex.JSON.encode!(term)

  # --- OpenAI -----------------------------------------------------------------------

  defp json(:openai, r) do
    calls =
      for c <- r.tool_calls,
          do: %{id: c.id, type: "function", function: %{name: c.name, arguments: enc(c.args)}}

    message = %{role: "assistant", content: r.text}
    message = if calls == [], do: message, else: Map.put(message, :tool_calls, calls)

    enc(%{
      id: "chatcmpl-loop",
      object: "chat.completion",
      model: "gpt-loopback",
      choices: [
        %{
          index: 0,
          message: message,
          finish_reason: if(calls == [], do: "stop", else: "tool_calls")
        }
      ],
      usage: %{prompt_tokens: 11, completion_tokens: 7, total_tokens: 18}
    })
  end

  defp json(:anthropic, r) do
    blocks =
      if(r.text, do: [%{type: "text", text: r.text}], else: []) ++
        for c <- r.tool_calls, do: %{type: "tool_use", id: c.id, name: c.name, input: c.args}

    enc(%{
      id: "msg_loop",
      type: "message",
      role: "assistant",
      model: "claude-loopback",
      content: blocks,
      stop_reason: if(r.tool_calls == [], do: "end_turn", else: "tool_use"),
      usage: %{input_tokens: 11, output_tokens: 7}
    })
  end

  defp json(:gemini, r) do
    parts =
      if(r.text, do: [%{text: r.text}], else: []) ++
        for c <- r.tool_calls, do: %{functionCall: %{name: c.name, args: c.args}}

    enc(%{
      candidates: [%{content: %{role: "model", parts: parts}, finishReason: "STOP", index: 0}],
      usageMetadata: %{promptTokenCount: 11, candidatesTokenCount: 7, totalTokenCount: 18},
      modelVersion: "gemini-loopback"
    })
  end

  defp sse(:openai, r, n) do
    chunk = fn delta, finish ->
      {nil,
       enc(%{
         id: "chatcmpl-loop",
         object: "chat.completion.chunk",
         model: "gpt-loopback",
         choices: [%{index: 0, delta: delta, finish_reason: finish}]
       })}
    end

    text = for p <- pieces(r.text, n), do: chunk.(%{content: p}, nil)

    calls =
      r.tool_calls
      |> Enum.with_index()
      |> Enum.flat_map(fn {c, i} ->
        first =
          chunk.(
            %{
              tool_calls: [
                %{index: i, id: c.id, type: "function", function: %{name: c.name, arguments: ""}}
              ]
            },
            nil
          )

        rest =
          for p <- pieces(enc(c.args), n),
              do: chunk.(%{tool_calls: [%{index: i, function: %{arguments: p}}]}, nil)

        [first | rest]
      end)

    finish = chunk.(%{}, if(r.tool_calls == [], do: "stop", else: "tool_calls"))

    usage =
      {nil,
       enc(%{
         id: "chatcmpl-loop",
         object: "chat.completion.chunk",
         choices: [],
         usage: %{prompt_tokens: 11, completion_tokens: 7, total_tokens: 18}
       })}

    [chunk.(%{role: "assistant", content: ""}, nil)] ++
      text ++ calls ++ [finish, usage, {nil, "[DONE]"}]
  end

  defp sse(:anthropic, r, n) do
    ev = fn type, data -> {type, enc(Map.put(data, :type, type))} end

    start =
      ev.("message_start", %{
        message: %{
          id: "msg_loop",
          type: "message",
          role: "assistant",
          model: "claude-loopback",
          content: [],
          stop_reason: nil,
          usage: %{input_tokens: 11, output_tokens: 1}
        }
      })

    {text_events, next} =
      if r.text do
        events =
          [ev.("content_block_start", %{index: 0, content_block: %{type: "text", text: ""}})] ++
            for(
              p <- pieces(r.text, n),
              do: ev.("content_block_delta", %{index: 0, delta: %{type: "text_delta", text: p}})
            ) ++ [ev.("content_block_stop", %{index: 0})]

        {events, 1}
      else
        {[], 0}
      end

    call_events =
      r.tool_calls
      |> Enum.with_index(next)
      |> Enum.flat_map(fn {c, i} ->
        [
          ev.("content_block_start", %{
            index: i,
            content_block: %{type: "tool_use", id: c.id, name: c.name, input: %{}}
          })
        ] ++
          for(
            p <- pieces(enc(c.args), n),
            do:
              ev.("content_block_delta", %{
                index: i,
                delta: %{type: "input_json_delta", partial_json: p}
              })
          ) ++ [ev.("content_block_stop", %{index: i})]
      end)

    stop =
      ev.("message_delta", %{
        delta: %{stop_reason: if(r.tool_calls == [], do: "end_turn", else: "tool_use")},
        usage: %{output_tokens: 7}
      })

    [start, {"ping", ~s({"type": "ping"})}] ++
      text_events ++ call_events ++ [stop, ev.("message_stop", %{})]
  end

  defp sse(:gemini, r, n) do
    chunk = fn parts, extra ->
      {nil,
       enc(
         Map.merge(
           %{
             candidates: [%{content: %{role: "model", parts: parts}, index: 0}],
             modelVersion: "gemini-loopback"
           },
           extra
         )
       )}
    end

    text = for p <- pieces(r.text, n), do: chunk.([%{text: p}], %{})

    calls =
      for c <- r.tool_calls, do: chunk.([%{functionCall: %{name: c.name, args: c.args}}], %{})

    last =
      {nil,
       enc(%{
         candidates: [
           %{content: %{role: "model", parts: [%{text: ""}]}, finishReason: "STOP", index: 0}
         ],
         usageMetadata: %{promptTokenCount: 11, candidatesTokenCount: 7, totalTokenCount: 18},
         modelVersion: "gemini-loopback"
       })}

    text ++ calls ++ [last]
  end
end
