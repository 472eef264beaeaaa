defmodule DSPex.Test.OpenAILoopback do
  @moduledoc """
  An OpenAI-compatible chat-completions server on 127.0.0.1 (a
  `DSPex.Test.LoopbackServer` route) that answers DSPy Chat-adapter prompts with one
  output field. Used by the Evaluate tests and by `bench/evaluate.exs`, where DSPex and
  Python DSPy both call it.

      {:ok, srv} = DSPex.Test.OpenAILoopback.start_link(answer: fn q -> String.upcase(q) end, delay_ms: 50)
      lm = DSPex.LM.new("openai/loopback", api_base: DSPex.Test.OpenAILoopback.api_base(srv), cache: false)

  Options: `answer:` (`fn question -> answer end`, default echoes the question),
  `input:` / `output:` (field names, default `"question"` / `"answer"`), `delay_ms:`
  (before each reply, default 0). The question is read from the last user message
  (`[[ ## question ## ]]` block).
  """

  alias DSPex.Test.LoopbackServer

  @path "/v1/chat/completions"

  @doc "Starts the server (linked)."
  def start_link(opts \\ []) do
    answer = Keyword.get(opts, :answer, & &1)
    input = Keyword.get(opts, :input, "question")
    output = Keyword.get(opts, :output, "answer")
    delay = Keyword.get(opts, :delay_ms, 0)
    marker = Regex.compile!("\\[\\[ ## #{input} ## \\]\\]\\n(.*?)(?:\\n\\n|\\z)", "s")

    route = fn req ->
      body = DSPex.JSON.decode!(req.body)

      content =
        body["messages"]
        |> Enum.reverse()
        |> Enum.find_value("", fn m -> if m["role"] == "user", do: m["content"] end)

      question =
        case Regex.run(marker, content) do
          [_, q] -> q
          _ -> ""
        end

      text = "[[ ## #{output} ## ]]\n#{answer.(question)}\n\n[[ ## completed ## ]]"

      %{
        status: 200,
        delay_ms: if(delay > 0, do: delay),
        headers: [{"content-type", "application/json"}],
        body: reply(body["model"] || "loopback", text)
      }
    end

    LoopbackServer.start_link(routes: %{@path => route}, record: false)
  end

  @doc "The `api_base` to give an OpenAI LM (DSPex or litellm)."
  def api_base(srv), do: LoopbackServer.url(srv, "/v1")

  @doc "Chat completions served so far."
  def count(srv), do: LoopbackServer.count(srv, @path)

  defp reply(model, text) do
    DSPex.JSON.encode!(%{
      id: "chatcmpl-loopback",
      object: "chat.completion",
      created: 0,
      model: model,
      choices: [
        %{index: 0, message: %{role: "assistant", content: text}, finish_reason: "stop"}
      ],
      usage: %{prompt_tokens: 10, completion_tokens: 5, total_tokens: 15}
    })
  end
end
