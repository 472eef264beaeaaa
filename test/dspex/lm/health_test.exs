defmodule DSPex.LM.HealthTest do
  # Health probes of LM endpoints over real HTTP (loopback providers, the port
  # transport, the real circuit breaker).
  use ExUnit.Case, async: false

  alias DSPex.CircuitBreaker
  alias DSPex.Test.LoopbackServer

  defp provider(routes) do
    {:ok, srv} = LoopbackServer.start_link(routes: routes)
    srv
  end

  defp openai(srv, opts \\ []),
    do:
      DSPex.LM.new(
        "openai/m",
        [api_base: LoopbackServer.url(srv, "/v1"), api_key: "sk-health-secret"] ++ opts
      )

  test "probe: :models GETs the model list, with the key, and spends no tokens" do
    srv = provider(%{"/v1/models" => %{status: 200, body: ~s({"data":[]})}})
    [report] = DSPex.LM.health(openai(srv))

    assert %{status: :ok, model: "openai/m", breaker: :closed, error: nil} = report
    assert report.endpoint == CircuitBreaker.endpoint(LoopbackServer.url(srv, "/"))
    assert is_integer(report.latency_ms)
    [req] = LoopbackServer.requests(srv, "/v1/models")
    assert req.method == "GET"
    assert {"authorization", "Bearer sk-health-secret"} in req.headers
    assert LoopbackServer.count(srv, "/v1/chat/completions") == 0
    refute inspect(report) =~ "sk-health-secret"
  end

  test "a rejected key and a dead server are reported with their error type" do
    srv = provider(%{"/v1/models" => %{status: 401, body: ~s({"error":{"message":"bad key"}})}})
    assert [%{status: :error, error: %DSPex.Error{type: :auth}}] = DSPex.LM.health(openai(srv))

    dead = DSPex.LM.new("openai/m", api_base: "http://127.0.0.1:1/v1", api_key: "k")

    assert [%{status: :error, error: %DSPex.Error{type: t}}] =
             DSPex.LM.health(dead, timeout: 3_000)

    assert t in [:network, :timeout]
  end

  test "probe: :completion asks the model for one token" do
    body =
      DSPex.JSON.encode!(%{
        choices: [
          %{index: 0, message: %{role: "assistant", content: "p"}, finish_reason: "length"}
        ],
        usage: %{prompt_tokens: 1, completion_tokens: 1, total_tokens: 2}
      })

    srv = provider(%{"/v1/chat/completions" => %{status: 200, body: body}})
    assert [%{status: :ok}] = DSPex.LM.health(openai(srv), probe: :completion)
    [req] = LoopbackServer.requests(srv, "/v1/chat/completions")
    assert DSPex.JSON.decode!(req.body)["max_tokens"] == 1
  end

  test "an open breaker is reported without a request; a successful probe closes a half-open one" do
    srv = provider(%{"/v1/models" => %{status: 200, body: "{}"}})
    lm = openai(srv, circuit_breaker: [threshold: 1, cooldown_ms: 200])
    endpoint = CircuitBreaker.endpoint(LoopbackServer.url(srv, "/"))
    opts = [threshold: 1, cooldown_ms: 200]
    CircuitBreaker.reset(endpoint)
    CircuitBreaker.record(endpoint, :failure, opts)
    assert CircuitBreaker.state(endpoint) == :open

    assert [%{status: :error, breaker: :open, error: %DSPex.Error{type: :circuit_open}}] =
             DSPex.LM.health(lm)

    assert LoopbackServer.count(srv, "/v1/models") == 0

    Process.sleep(250)

    DSPex.Test.Wait.until(fn ->
      match?([%{status: :ok, breaker: :closed}], DSPex.LM.health(lm))
    end)
  end

  test "a chain, names and :all are expanded; in-process LMs have no endpoint" do
    System.delete_env("ANTHROPIC_API_KEY")
    srv = provider(%{"/v1/models" => %{status: 200, body: "{}"}})
    chain = DSPex.LM.new([openai(srv), "anthropic/claude-x"])
    DSPex.LM.Registry.register(:health_test_chain, chain)
    DSPex.LM.Registry.register(:health_test_local, DSPex.LM.Scripted.new([]))

    on_exit(fn ->
      DSPex.LM.Registry.unregister(:health_test_chain)
      DSPex.LM.Registry.unregister(:health_test_local)
    end)

    assert [%{status: :ok}, %{status: :error, error: %{type: :auth}}] =
             DSPex.LM.health(:health_test_chain)

    assert [%{status: :ok, endpoint: nil}] = DSPex.LM.health(:health_test_local)

    assert [%{status: :error, model: "health_test_missing", error: %{type: :unknown_lm}}] =
             DSPex.LM.health(:health_test_missing)

    models = DSPex.LM.health(:all) |> Enum.map(& &1.model)
    assert "openai/m" in models and "scripted" in models
  end

  test "health runs in a [:dspex, :lm, :health] span" do
    ref = DSPex.TelemetryTest.attach_event_handlers(self(), [[:dspex, :lm, :health, :stop]])

    DSPex.LM.health(DSPex.LM.Scripted.new([]))
    DSPex.TelemetryTest.detach(ref)
    assert_received {[:dspex, :lm, :health, :stop], ^ref, _, %{count: 1, ok: 1, error: 0}}
  end
end
