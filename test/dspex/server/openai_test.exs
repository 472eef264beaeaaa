defmodule DSPex.Server.OpenAITest do
  # The OpenAI-compatible endpoints, called with :httpc, curl and DSPex's own remote LM
  # (through the port transport): a DSPex.LM pointed at a DSPex.Server.
  use ExUnit.Case, async: false

  alias DSPex.Test.{HTTP, LoopbackServer, ServerPrograms}

  @key "dsx_openai-test-key-42"

  defp start(opts) do
    name = :"openai_test_#{System.unique_integer([:positive])}"

    start_supervised!(
      {DSPex.Server, Keyword.merge([name: name, port: 0, api_keys: [[id: "t", key: @key]]], opts)}
    )

    DSPex.Server.url(name)
  end

  defp auth, do: [headers: [{"authorization", "Bearer " <> @key}]]

  defp chat(url, body), do: HTTP.post_json(url <> "/v1/chat/completions", body, auth())

  test "GET /v1/models lists the served names" do
    url = start(models: %{"echo" => ServerPrograms.lm("hi"), "other" => ServerPrograms.lm("x")})

    assert {200, %{"object" => "list", "data" => data}} =
             HTTP.get_json(url <> "/v1/models", auth())

    assert Enum.map(data, & &1["id"]) == ["echo", "other"]
    assert Enum.all?(data, &(&1["object"] == "model"))
  end

  test "a chat completion, OpenAI's shape" do
    url = start(models: %{"echo" => ServerPrograms.lm("Hello there")})

    {200, body} =
      chat(url, %{
        model: "echo",
        messages: [%{role: "system", content: "Be brief."}, %{role: "user", content: "Hi"}],
        temperature: 0.2,
        max_completion_tokens: 20
      })

    assert body["object"] == "chat.completion"
    assert body["model"] == "echo"
    assert "chatcmpl-" <> _ = body["id"]

    assert [%{"index" => 0, "message" => %{"role" => "assistant", "content" => "Hello there"}}] =
             body["choices"]

    assert %{"prompt_tokens" => _, "completion_tokens" => _, "total_tokens" => _} = body["usage"]
  end

  test "named LMs are served by name (models: :registry)" do
    DSPex.LM.Registry.register(:openai_test_named, ServerPrograms.lm("from the registry"))
    on_exit(fn -> DSPex.LM.Registry.unregister(:openai_test_named) end)
    url = start([])

    {200, body} =
      chat(url, %{model: "openai_test_named", messages: [%{role: "user", content: "Hi"}]})

    assert hd(body["choices"])["message"]["content"] == "from the registry"
  end

  test "errors: unknown model, bad params, bad messages" do
    url = start(models: %{"echo" => ServerPrograms.lm("x")})
    msgs = [%{role: "user", content: "Hi"}]

    assert {404, %{"error" => %{"type" => "model_not_found"}}} =
             chat(url, %{model: "gpt-9", messages: msgs})

    assert {400, %{"error" => %{"type" => "invalid_request", "message" => m}}} =
             chat(url, %{model: "echo", messages: msgs, temperature: "hot"})

    assert m =~ "temperature"

    assert {400, %{"error" => %{"type" => "invalid_request"}}} =
             chat(url, %{model: "echo", messages: []})

    assert {400, %{"error" => %{"type" => "invalid_request"}}} =
             chat(url, %{model: "echo", messages: [%{content: "no role"}]})
  end

  test "streaming: chat.completion.chunk events, usage on request, then [DONE]" do
    url = start(models: %{"echo" => ServerPrograms.lm("streamed reply text")})

    {200, headers, body} =
      HTTP.request(
        :post,
        url <> "/v1/chat/completions",
        auth()
        |> Keyword.put(
          :body,
          DSPex.JSON.encode!(%{
            model: "echo",
            stream: true,
            stream_options: %{include_usage: true},
            messages: [%{role: "user", content: "Hi"}]
          })
        )
      )

    assert {"content-type", "text/event-stream"} in headers
    events = HTTP.sse_events(body)
    assert List.last(events) == {nil, "[DONE]"}
    chunks = for {nil, d} <- events, d != "[DONE]", do: DSPex.JSON.decode!(d)
    assert Enum.all?(chunks, &(&1["object"] == "chat.completion.chunk"))

    text =
      chunks
      |> Enum.flat_map(& &1["choices"])
      |> Enum.map_join(&(get_in(&1, ["delta", "content"]) || ""))

    assert text == "streamed reply text"
    assert Enum.any?(chunks, &match?(%{"choices" => [%{"finish_reason" => "stop"}]}, &1))
    assert %{"usage" => %{"total_tokens" => t}} = List.last(chunks)
    assert t > 0
  end

  @tag :curl
  test "curl -N streams it too" do
    if HTTP.curl?() do
      url = start(models: %{"echo" => ServerPrograms.lm("abc")})

      {out, 0} =
        HTTP.curl([
          "-N",
          "-H",
          "authorization: Bearer " <> @key,
          "-d",
          ~s({"model":"echo","stream":true,"messages":[{"role":"user","content":"x"}]}),
          url <> "/v1/chat/completions"
        ])

      assert out =~ "data: [DONE]"
    end
  end

  describe "DSPex's own LM against a DSPex.Server (through the port transport)" do
    test "a predictor whose LM is the server: request and stream" do
      url = start(models: %{"qa-model" => ServerPrograms.lm(%{answer: "Paris"})})

      lm = DSPex.LM.new("openai/qa-model", api_base: url <> "/v1", api_key: @key, cache: false)

      qa = DSPex.Predict.new("question -> answer", lm: lm)
      assert {:ok, pred} = DSPex.call(qa, question: "Capital of France?")
      assert pred.answer == "Paris"

      final =
        qa
        |> DSPex.stream([question: "Capital of France?"], [])
        |> Enum.to_list()
        |> List.last()

      assert final.answer == "Paris"
    end

    test "a wrong key is an :auth error for the client" do
      url = start(models: %{"m" => ServerPrograms.lm("x")})
      lm = DSPex.LM.new("openai/m", api_base: url <> "/v1", api_key: "dsx_wrong", cache: false)

      assert {:error, %DSPex.Error{type: :auth}} =
               DSPex.LM.request(lm, [%{role: "user", content: "hi"}])
    end
  end

  test "a fallback chain served as one model: the second provider answers when the first is down" do
    reply =
      DSPex.JSON.encode!(%{
        choices: [
          %{index: 0, message: %{role: "assistant", content: "from B"}, finish_reason: "stop"}
        ],
        usage: %{prompt_tokens: 3, completion_tokens: 2, total_tokens: 5},
        model: "b-model"
      })

    {:ok, a} =
      LoopbackServer.start_link(routes: %{"/v1/chat/completions" => %{status: 503, body: "{}"}})

    {:ok, b} =
      LoopbackServer.start_link(
        routes: %{
          "/v1/chat/completions" => %{
            status: 200,
            headers: [{"content-type", "application/json"}],
            body: reply
          }
        }
      )

    chain =
      DSPex.LM.new(
        [
          {"openai/a-model", api_base: LoopbackServer.url(a, "/v1")},
          {"openai/b-model", api_base: LoopbackServer.url(b, "/v1")}
        ],
        api_key: "sk-upstream",
        num_retries: 0,
        cache: false
      )

    url = start(models: %{"robust" => chain})
    {200, body} = chat(url, %{model: "robust", messages: [%{role: "user", content: "Hi"}]})
    assert hd(body["choices"])["message"]["content"] == "from B"
    assert LoopbackServer.count(a, "/v1/chat/completions") == 1

    {200, text} = HTTP.get_json(url <> "/metrics")

    assert text =~
             ~s(dspex_lm_fallbacks_total{from="openai/a-model",to="openai/b-model",reason="server"} 1)

    # /health?lm=1 probes both endpoints of the served chain (their model lists).
    LoopbackServer.set_route(b, "/v1/models", %{status: 200, body: ~s({"data":[]})})
    {200, health} = HTTP.get_json(url <> "/health?lm=1")
    assert [%{"name" => "robust", "endpoints" => [ea, eb]}] = health["lms"]
    assert {ea["status"], eb["status"]} == {"error", "ok"}
    refute inspect(health) =~ "sk-upstream"
  end
end
