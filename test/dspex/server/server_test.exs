defmodule DSPex.ServerTest do
  # Real HTTP over 127.0.0.1 with :httpc and curl against a real DSPex.Server (httpd).
  use ExUnit.Case, async: false

  alias DSPex.Test.{HTTP, ServerPrograms}

  doctest DSPex.Server
  doctest DSPex.Server.Keys
  doctest DSPex.Server.Response
  doctest DSPex.Server.Metrics
  doctest DSPex.Server.Router
  doctest DSPex.Server.Programs

  @key "dsx_test-key-0123456789abcdef"

  defp start(opts) do
    name = :"server_test_#{System.unique_integer([:positive])}"
    start_supervised!({DSPex.Server, Keyword.merge([name: name, port: 0], opts)})
    %{name: name, url: DSPex.Server.url(name)}
  end

  defp auth(key \\ @key), do: [headers: [{"authorization", "Bearer " <> key}]]

  defp qa_server(opts \\ []) do
    lm = Keyword.get_lazy(opts, :lm, fn -> ServerPrograms.lm(%{answer: "Paris"}) end)

    start(
      Keyword.merge(
        [
          lm: lm,
          programs: %{
            "qa" => {DSPex.Predict, "question -> answer"},
            "rewrite" => DSPex.Test.ServerPrograms.Rewrite
          },
          api_keys: [[id: "team-a", key: @key]]
        ],
        Keyword.delete(opts, :lm)
      )
    )
  end

  describe "POST /v1/programs/:name" do
    test "inputs JSON in, prediction JSON out (:httpc)" do
      %{url: url} = qa_server()

      {200, body} =
        HTTP.post_json(url <> "/v1/programs/qa", %{question: "Capital of France?"}, auth())

      assert body["prediction"] == %{"answer" => "Paris"}
      assert body["program"] == "qa"
      assert is_binary(body["version"])

      assert %{"scripted/test" => %{"prompt_tokens" => p, "completion_tokens" => c}} =
               body["usage"]

      assert p > 0 and c > 0
    end

    test "a composed program (use DSPex.Module) takes its predictors' inputs" do
      lm = ServerPrograms.lm(%{query: "france capital", answer: "Paris"})
      %{url: url} = qa_server(lm: lm)

      {200, body} = HTTP.post_json(url <> "/v1/programs/rewrite", %{question: "Capital?"}, auth())

      assert body["prediction"]["answer"] == "Paris"
    end

    @tag :curl
    test "curl gets the same" do
      if HTTP.curl?() do
        %{url: url} = qa_server()

        {out, 0} =
          HTTP.curl([
            "-H",
            "authorization: Bearer " <> @key,
            "-H",
            "content-type: application/json",
            "-d",
            ~s({"question": "Capital of France?"}),
            url <> "/v1/programs/qa"
          ])

        assert DSPex.JSON.decode!(out)["prediction"] == %{"answer" => "Paris"}
      end
    end

    test "unknown input names are refused, and no atom is made from them" do
      %{url: url} = qa_server()
      # Warm up the code paths of a refused request.
      {400, _} = HTTP.post_json(url <> "/v1/programs/qa", %{"warm_up_key" => 1}, auth())

      keys = for i <- 1..200, into: %{}, do: {"attacker_key_#{i}_#{System.unique_integer()}", i}
      before = :erlang.system_info(:atom_count)
      {400, body} = HTTP.post_json(url <> "/v1/programs/qa", keys, auth())
      grown = :erlang.system_info(:atom_count) - before

      assert body["error"]["type"] == "invalid_input"
      assert body["error"]["message"] =~ "its inputs are: question"
      assert grown < 50
    end

    test "bad JSON, a non-object body, missing inputs, unknown programs: JSON errors with a type" do
      %{url: url} = qa_server()

      assert {400, %{"error" => %{"type" => "invalid_json"}}} =
               HTTP.post_json(url <> "/v1/programs/qa", "{not json", auth())

      assert {400, %{"error" => %{"type" => "invalid_input"}}} =
               HTTP.post_json(url <> "/v1/programs/qa", [1, 2], auth())

      assert {400, %{"error" => %{"type" => "missing_inputs"}}} =
               HTTP.post_json(url <> "/v1/programs/qa", %{}, auth())

      assert {404, %{"error" => %{"type" => "program_not_found"}}} =
               HTTP.post_json(url <> "/v1/programs/nope", %{}, auth())

      assert {404, %{"error" => %{"type" => "not_found"}}} = HTTP.get_json(url <> "/nowhere")

      assert {405, %{"error" => %{"type" => "method_not_allowed"}}} =
               HTTP.get_json(url <> "/v1/programs/qa", auth())
    end

    test "an LM failure is a JSON error with its type" do
      lm = ServerPrograms.lm(fn _ -> {:error, DSPex.Error.new(:server, "upstream 500")} end)
      %{url: url} = qa_server(lm: lm)

      assert {502, %{"error" => %{"type" => "server", "message" => msg}}} =
               HTTP.post_json(url <> "/v1/programs/qa", %{question: "?"}, auth())

      assert msg =~ "upstream 500"
    end

    test "a program past the deadline answers 504" do
      %{url: url} =
        qa_server(
          lm: ServerPrograms.lm(%{answer: "late"}, delay_ms: 2_000),
          request_timeout_ms: 200
        )

      assert {504, %{"error" => %{"type" => "timeout"}}} =
               HTTP.post_json(url <> "/v1/programs/qa", %{question: "?"}, auth())
    end

    test "streaming: chunk events, then the prediction" do
      %{url: url} = qa_server(lm: ServerPrograms.lm(%{answer: "Paris is the capital"}))

      {200, headers, body} =
        HTTP.request(
          :post,
          url <> "/v1/programs/qa?stream=true",
          auth() |> Keyword.put(:body, ~s({"question": "?"}))
        )

      assert {"content-type", "text/event-stream"} in headers
      events = HTTP.sse_events(body)
      chunks = for {"chunk", d} <- events, do: DSPex.JSON.decode!(d)
      assert Enum.map_join(chunks, & &1["text"]) == "Paris is the capital"
      assert Enum.all?(chunks, &(&1["field"] == "answer"))
      assert {"prediction", final} = List.last(events)
      assert DSPex.JSON.decode!(final)["prediction"] == %{"answer" => "Paris is the capital"}
    end

    test "a client that leaves mid-stream gives its key's slot back" do
      %{url: url} =
        qa_server(
          lm: ServerPrograms.lm(%{answer: String.duplicate("long answer ", 50)}, delay_ms: 300),
          api_keys: [[id: "one", key: @key, max_concurrency: 1]]
        )

      sock = HTTP.connect(url)
      body = ~s({"question": "?"})

      :ok =
        :gen_tcp.send(
          sock,
          "POST /v1/programs/qa?stream=true HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer #{@key}\r\n" <>
            "Content-Type: application/json\r\nContent-Length: #{byte_size(body)}\r\n\r\n" <> body
        )

      DSPex.Test.Wait.until(fn -> in_flight(url) == 1 end)
      :gen_tcp.close(sock)
      DSPex.Test.Wait.until(fn -> in_flight(url) == 0 end)

      assert {200, _} = HTTP.post_json(url <> "/v1/programs/qa", %{question: "?"}, auth())
    end

    test "streaming an error ends the stream with an error event" do
      lm = ServerPrograms.lm(fn _ -> {:error, DSPex.Error.new(:rate_limit, "slow down")} end)
      %{url: url} = qa_server(lm: lm)

      {200, _, body} =
        HTTP.request(
          :post,
          url <> "/v1/programs/qa",
          headers: [{"authorization", "Bearer " <> @key}, {"accept", "text/event-stream"}],
          body: ~s({"question": "?"})
        )

      assert {"error", data} = List.last(HTTP.sse_events(body))
      assert DSPex.JSON.decode!(data)["error"]["type"] == "rate_limit"
    end
  end

  describe "API keys" do
    test "no key or a wrong key: 401; health and metrics are public" do
      %{url: url} = qa_server()

      assert {401, %{"error" => %{"type" => "unauthorized"}}} =
               HTTP.post_json(url <> "/v1/programs/qa", %{question: "?"})

      assert {401, _} =
               HTTP.post_json(url <> "/v1/programs/qa", %{question: "?"}, auth("dsx_wrong"))

      assert {200, _} =
               HTTP.post_json(url <> "/v1/programs/qa", %{question: "?"},
                 headers: [{"x-api-key", @key}]
               )

      # An unknown client learns nothing about what is served.
      assert {401, _} = HTTP.post_json(url <> "/v1/programs/nope", %{})
      assert {200, %{"status" => "ok"}} = HTTP.get_json(url <> "/health")
      assert {200, text} = HTTP.get_json(url <> "/metrics")
      assert text =~ ~s(dspex_server_rejected_total{reason="unauthorized"} 3)
    end

    test "keys can be given hashed; public: [] guards health too" do
      %{url: url} =
        start(
          lm: ServerPrograms.lm(%{answer: "x"}),
          programs: %{"qa" => {DSPex.Predict, "question -> answer"}},
          api_keys: [%{id: "hashed", hash: DSPex.Server.Keys.hash(@key)}],
          public: []
        )

      assert {401, _} = HTTP.get_json(url <> "/health")
      assert {200, _} = HTTP.get_json(url <> "/health", auth())

      assert {200, %{"programs" => [%{"name" => "qa"}]}} =
               HTTP.get_json(url <> "/v1/programs", auth())
    end

    test "a key over its rate gets 429 with Retry-After" do
      %{url: url} = qa_server(rate: 0.5, burst: 2)

      ok = fn ->
        HTTP.request(
          :post,
          url <> "/v1/programs/qa",
          auth() |> Keyword.put(:body, ~s({"question":"?"}))
        )
      end

      assert {200, _, _} = ok.()
      assert {200, _, _} = ok.()
      assert {429, headers, body} = ok.()
      assert DSPex.JSON.decode!(body)["error"]["type"] == "rate_limited"
      assert {_, retry} = List.keyfind(headers, "retry-after", 0)
      assert String.to_integer(retry) >= 1
    end

    test "a key over its concurrency cap gets 429 while others are served" do
      %{url: url} =
        qa_server(
          lm: ServerPrograms.lm(%{answer: "slow"}, delay_ms: 800),
          api_keys: [[id: "one", key: @key, max_concurrency: 1], [id: "two", key: @key <> "2"]]
        )

      post = fn key ->
        Task.async(fn -> HTTP.post_json(url <> "/v1/programs/qa", %{question: "?"}, auth(key)) end)
      end

      first = post.(@key)
      DSPex.Test.Wait.until(fn -> in_flight(url) >= 1 end)
      second = post.(@key)
      other = post.(@key <> "2")

      assert {429, %{"error" => %{"type" => "concurrency_limited"}}} = Task.await(second, 10_000)
      assert {200, _} = Task.await(first, 10_000)
      assert {200, _} = Task.await(other, 10_000)
    end
  end

  defp in_flight(url) do
    {200, text} = HTTP.get_json(url <> "/metrics")
    [_, n] = Regex.run(~r/^dspex_server_requests_in_flight (\d+)$/m, text)
    # The /metrics request itself is in flight while it renders.
    String.to_integer(n) - 1
  end

  describe "POST /v1/programs/:name/batch" do
    test "bounded concurrency, results in order, per-item errors" do
      gauge = :atomics.new(2, [])

      lm =
        ServerPrograms.lm(
          fn call -> %{answer: "ok #{call.predictor}"} end,
          delay_ms: 100,
          gauge: gauge
        )

      %{url: url} = qa_server(lm: lm, batch_concurrency: 2, rate: 100, burst: 100)

      items = [
        %{question: "a"},
        %{question: "b"},
        %{qustion: "typo"},
        %{question: "c"},
        %{question: "d"},
        %{question: "e"}
      ]

      {200, body} = HTTP.post_json(url <> "/v1/programs/qa/batch", %{inputs: items}, auth())
      results = body["results"]

      assert length(results) == 6
      assert body["errors"] == 1
      assert Enum.at(results, 2)["error"]["type"] == "invalid_input"
      assert Enum.at(results, 0)["prediction"]["answer"] == "ok self"
      assert :atomics.get(gauge, 2) == 2
    end

    test "a batch over the item limit is refused whole" do
      %{url: url} = qa_server(batch_max_items: 3)
      items = for q <- ~w(a b c d), do: %{question: q}

      assert {413, %{"error" => %{"type" => "payload_too_large"}}} =
               HTTP.post_json(url <> "/v1/programs/qa/batch", items, auth())
    end

    test "a batch costs one rate token per item" do
      %{url: url} = qa_server(rate: 0.1, burst: 3)
      items = for q <- ~w(a b c d), do: %{question: q}

      assert {429, %{"error" => %{"type" => "rate_limited"}}} =
               HTTP.post_json(url <> "/v1/programs/qa/batch", items, auth())

      assert {200, %{"errors" => 0}} =
               HTTP.post_json(url <> "/v1/programs/qa/batch", Enum.take(items, 3), auth())
    end
  end

  describe "GET /health and /metrics" do
    test "health lists programs and served models" do
      %{url: url} = qa_server(models: %{"echo" => ServerPrograms.lm("hi")})
      {200, body} = HTTP.get_json(url <> "/health")

      assert body["status"] == "ok"
      assert Map.keys(body["programs"]) == ["qa", "rewrite"]
      assert body["models"] == ["echo"]
    end

    test "metrics: requests, latency histogram, LM calls and tokens, in Prometheus text" do
      %{url: url} = qa_server()
      {200, _} = HTTP.post_json(url <> "/v1/programs/qa", %{question: "?"}, auth())
      {200, _, text} = HTTP.request(:get, url <> "/metrics")

      assert text =~ ~s(dspex_server_requests_total{route="/v1/programs/:name",status="200"} 1)

      assert text =~
               ~s(dspex_server_request_duration_seconds_count{route="/v1/programs/:name"} 1)

      assert text =~ ~r/dspex_lm_calls_total\{model="scripted\/test",outcome="ok"\} \d+/
      assert text =~ ~r/dspex_lm_tokens_total\{model="scripted\/test",kind="prompt"\} [1-9]/
      assert text =~ ~s(dspex_server_programs{status="loaded"} 2)
      # Every line is a comment or `name{labels} value`.
      for line <- String.split(text, "\n", trim: true) do
        assert line =~ ~r/^(# (HELP|TYPE) .+|[a-z_]+(\{[^}]*\})? [0-9.e+-]+)$/
      end
    end

    test "each request is a [:dspex, :server, :request] span with the route template and key id" do
      %{url: url, name: name} = qa_server()

      ref =
        DSPex.TelemetryTest.attach_event_handlers(self(), [
          [:dspex, :server, :request, :start],
          [:dspex, :server, :request, :stop]
        ])

      {200, _} = HTTP.post_json(url <> "/v1/programs/qa", %{question: "?"}, auth())
      DSPex.TelemetryTest.detach(ref)

      assert_received {[:dspex, :server, :request, :start], ^ref, %{system_time: _},
                       %{route: "/v1/programs/:name", server: ^name}}

      assert_received {[:dspex, :server, :request, :stop], ^ref, %{duration: d},
                       %{status: 200, key_id: "team-a", route: "/v1/programs/:name"} = meta}

      assert d > 0
      refute inspect(meta) =~ @key
    end
  end

  defmodule Raising do
    @moduledoc false
    use DSPex.Module
    predictor :p, "question -> answer"

    @impl DSPex.Module
    def forward(_program, %{question: q}), do: raise("boom on #{q}")
  end

  test "API keys never reach a log, an error, a metric or telemetry, even when a program crashes" do
    me = self()
    handler = :"server_test_raw_#{System.unique_integer([:positive])}"

    :ok =
      :logger.add_handler(handler, DSPex.ServerTest.RawHandler, %{config: %{pid: me}, level: :all})

    on_exit(fn -> :logger.remove_handler(handler) end)

    log =
      ExUnit.CaptureLog.capture_log([level: :debug], fn ->
        %{url: url} =
          qa_server(
            programs: %{"raising" => Raising, "qa" => {DSPex.Predict, "question -> answer"}}
          )

        assert {500, %{"error" => %{"type" => "internal", "message" => msg}}} =
                 HTTP.post_json(url <> "/v1/programs/raising", %{question: "x"}, auth())

        refute msg =~ @key
        {401, _} = HTTP.post_json(url <> "/v1/programs/qa", %{}, auth(@key <> "-wrong"))
        {200, _} = HTTP.post_json(url <> "/v1/programs/qa", %{question: "?"}, auth())
        {200, metrics} = HTTP.get_json(url <> "/metrics")
        refute metrics =~ @key
        refute metrics =~ DSPex.Server.Keys.hash(@key)
      end)

    refute log =~ @key
    refute_received {:raw_log, _}
  end

  defmodule RawHandler do
    @moduledoc false
    # A raw :logger handler: forwards any event that mentions the test key.
    def log(event, %{config: %{pid: pid}}) do
      text = inspect(event, limit: :infinity, printable_limit: :infinity)
      if text =~ "dsx_test-key", do: send(pid, {:raw_log, text})
    end
  end

  test "start_link checks its options" do
    assert_raise ArgumentError, ~r/unknown option :prot .*did you mean :port/, fn ->
      DSPex.Server.start_link(prot: 1)
    end

    assert_raise ArgumentError, ~r/give exactly one of key: or hash:/, fn ->
      DSPex.Server.start_link(name: :bad_keys, port: 0, api_keys: [[id: "x"]])
    end
  end
end
