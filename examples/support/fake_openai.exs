# A fake OpenAI server for the examples and the README's first session: real HTTP on
# 127.0.0.1 (the loopback server the tests and `make demo` use), answering chat
# completions the way a model following DSPy's ChatAdapter prompt would.
#
#     Code.require_file("examples/support/fake_openai.exs")
#     fake = DSPex.Examples.FakeOpenAI.start(answers: %{"answer" => "Paris"})
#     lm = DSPex.LM.new("openai/gpt-4o-mini", api_base: fake.url, api_key: "sk-local")

unless Code.ensure_loaded?(DSPex.Test.LoopbackServer) do
  Code.require_file("../../test/support/loopback_server.ex", __DIR__)
end

defmodule DSPex.Examples.FakeOpenAI do
  @moduledoc """
  An OpenAI-compatible `/v1/chat/completions` (and `/v1/models`, for health probes) on
  127.0.0.1 for examples.

  It reads the output fields from the ChatAdapter system prompt ("Your output fields
  are: 1. `answer` (str) ...") and replies `[[ ## answer ## ]]` blocks: the value of
  `answers[field]` when given (a value, or `fn user_text -> value end`), else a
  placeholder of the field's type. `"stream": true` gets server-sent events. Usage:
  bytes / 4.
  """

  alias DSPex.Test.LoopbackServer

  @doc """
  Starts the server. Options: `answers:` (`%{"field" => value | fun}`), `delay_ms:`
  (per reply). Returns `%{url: "http://127.0.0.1:PORT/v1", server: pid}`.
  """
  def start(opts \\ []) do
    answers = Map.new(Keyword.get(opts, :answers, %{}), fn {k, v} -> {to_string(k), v} end)
    delay = Keyword.get(opts, :delay_ms, 0)

    {:ok, srv} =
      LoopbackServer.start_link(
        routes: %{
          "/v1/chat/completions" => &reply(&1, answers, delay),
          "/v1/models" => %{
            status: 200,
            headers: [{"content-type", "application/json"}],
            body: ~s({"object":"list","data":[{"id":"gpt-4o-mini","object":"model"}]})
          }
        },
        record: false
      )

    # Not linked to the caller: it outlives an iex expression that raises.
    Process.unlink(srv)
    %{url: LoopbackServer.url(srv, "/v1"), server: srv}
  end

  @doc "Requests served so far."
  def count(%{server: srv}), do: LoopbackServer.count(srv, "/v1/chat/completions")

  defp reply(req, answers, delay) do
    if delay > 0, do: Process.sleep(delay)
    body = DSPex.JSON.decode!(req.body)
    messages = body["messages"] || []
    system = Enum.find_value(messages, "", &(&1["role"] == "system" && text(&1["content"])))
    user = messages |> Enum.filter(&(&1["role"] == "user")) |> List.last() |> Kernel.||(%{})
    user_text = text(user["content"])

    content =
      case output_fields(system) do
        [] ->
          "OK"

        fields ->
          blocks =
            for {name, type} <- fields do
              "[[ ## #{name} ## ]]\n" <> render(value(answers, name, type, user_text))
            end

          Enum.join(blocks ++ ["[[ ## completed ## ]]"], "\n\n")
      end

    prompt_tokens = div(byte_size(Enum.map_join(messages, &text(&1["content"]))), 4)
    completion_tokens = max(div(byte_size(content), 4), 1)

    usage = %{
      prompt_tokens: prompt_tokens,
      completion_tokens: completion_tokens,
      total_tokens: prompt_tokens + completion_tokens
    }

    if body["stream"] == true do
      chunk = fn delta, finish ->
        {nil,
         DSPex.JSON.encode!(%{
           id: "chatcmpl-fake",
           object: "chat.completion.chunk",
           model: body["model"],
           choices: [%{index: 0, delta: delta, finish_reason: finish}]
         })}
      end

      pieces = for <<p::binary-size(8) <- content>>, do: p
      tail = binary_part(content, length(pieces) * 8, byte_size(content) - length(pieces) * 8)

      %{
        sse:
          Enum.map(pieces ++ [tail], &chunk.(%{content: &1}, nil)) ++
            [chunk.(%{}, "stop"), {nil, "[DONE]"}]
      }
    else
      %{
        status: 200,
        headers: [{"content-type", "application/json"}],
        body:
          DSPex.JSON.encode!(%{
            id: "chatcmpl-fake",
            object: "chat.completion",
            model: body["model"],
            choices: [
              %{index: 0, message: %{role: "assistant", content: content}, finish_reason: "stop"}
            ],
            usage: usage
          })
      }
    end
  end

  defp text(content) when is_binary(content), do: content

  defp text(parts) when is_list(parts),
    do: Enum.map_join(parts, &((is_map(&1) && &1["text"]) || ""))

  defp text(_), do: ""

  # `[{name, type}]` from "Your output fields are:\n1. `name` (type): ..." lines.
  defp output_fields(system) do
    case String.split(system, "Your output fields are:", parts: 2) do
      [_, rest] ->
        section = rest |> String.split("All interactions will be structured") |> hd()

        for [_, name, type] <- Regex.scan(~r/^\d+\. `([^`]+)` \(([^)]*)\)/m, section),
            do: {name, type}

      _ ->
        []
    end
  end

  defp value(answers, name, type, user_text) do
    case Map.fetch(answers, name) do
      {:ok, f} when is_function(f, 1) -> f.(user_text)
      {:ok, v} -> v
      :error -> placeholder(type)
    end
  end

  defp placeholder("int"), do: 0
  defp placeholder("float"), do: 0.5
  defp placeholder("bool"), do: true
  defp placeholder("list" <> _), do: []
  defp placeholder("dict" <> _), do: %{}

  defp placeholder("Literal[" <> rest) do
    rest |> String.split(",") |> hd() |> String.trim() |> String.trim("]") |> String.trim("'")
  end

  defp placeholder(_), do: "(placeholder)"

  defp render(v) when is_binary(v), do: v
  defp render(v), do: DSPex.JSON.encode!(v)
end
