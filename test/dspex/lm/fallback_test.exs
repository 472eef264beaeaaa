defmodule DSPex.LM.FallbackTest do
  # Fallback chains over real HTTP: two loopback providers, the port transport and the
  # real circuit breaker.
  use ExUnit.Case, async: false

  alias DSPex.{CircuitBreaker, TelemetryTest}
  alias DSPex.Test.LoopbackServer

  doctest DSPex.LM.Fallback

  @path "/v1/chat/completions"

  defp completion(text, model) do
    %{
      status: 200,
      headers: [{"content-type", "application/json"}],
      body:
        DSPex.JSON.encode!(%{
          model: model,
          choices: [
            %{index: 0, message: %{role: "assistant", content: text}, finish_reason: "stop"}
          ],
          usage: %{prompt_tokens: 7, completion_tokens: 3, total_tokens: 10}
        })
    }
  end

  defp provider(route) do
    {:ok, srv} = LoopbackServer.start_link(routes: %{@path => route})
    srv
  end

  defp lm(srv, model, opts \\ []) do
    {"openai/" <> model,
     [api_base: LoopbackServer.url(srv, "/v1"), api_key: "sk-test", cache: false, num_retries: 0] ++
       opts}
  end

  defp msgs, do: [%{role: "user", content: "Hi"}]

  test "a rate-limited first provider hands the call to the next; one history entry, its usage" do
    a = provider(%{status: 429, body: ~s({"error":{"message":"slow down"}})})
    b = provider(completion("from B", "b-model"))
    chain = DSPex.LM.new([lm(a, "a-model"), lm(b, "b-model")])

    ref = TelemetryTest.attach_event_handlers(self(), [[:dspex, :lm, :fallback]])

    {{:ok, c}, usage} = DSPex.track_usage(fn -> DSPex.LM.request(chain, msgs()) end)
    TelemetryTest.detach(ref)

    assert hd(c.choices).text == "from B"
    assert Map.keys(usage) == ["openai/b-model"]

    assert_received {[:dspex, :lm, :fallback], ^ref, %{count: 1},
                     %{
                       from: "openai/a-model",
                       to: "openai/b-model",
                       reason: :rate_limit,
                       index: 0
                     }}

    assert LoopbackServer.count(a, @path) == 1
  end

  test "an error type outside fallback_on is returned as is" do
    a = provider(%{status: 400, body: ~s({"error":{"message":"bad"}})})
    b = provider(completion("from B", "b"))
    chain = DSPex.LM.new([lm(a, "a"), lm(b, "b")], fallback_on: [:rate_limit])

    assert {:error, %DSPex.Error{type: :bad_request}} = DSPex.LM.request(chain, msgs())
    assert LoopbackServer.count(b, @path) == 0
  end

  test "when every provider fails, the last error lists the attempts" do
    a = provider(%{status: 500, body: "{}"})
    b = provider(%{status: 503, body: "{}"})
    chain = DSPex.LM.new([lm(a, "a"), lm(b, "b")])

    assert {:error, %DSPex.Error{type: :server, details: %{fallback: tried}}} =
             DSPex.LM.request(chain, msgs())

    assert tried == [%{model: "openai/a", type: :server}, %{model: "openai/b", type: :server}]
  end

  test "the breaker decides: an open breaker skips the provider without a request, a healed one is first again" do
    healthy = :atomics.new(1, [])

    a =
      provider(fn _req ->
        if :atomics.get(healthy, 1) == 1,
          do: completion("from A", "a"),
          else: %{status: 500, body: "{}"}
      end)

    b = provider(completion("from B", "b"))
    breaker = [circuit_breaker: [threshold: 2, cooldown_ms: 300]]
    chain = DSPex.LM.new([lm(a, "a", breaker), lm(b, "b")])
    endpoint = CircuitBreaker.endpoint(LoopbackServer.url(a, "/"))

    # Two 500s open A's breaker; B answers both times.
    for _ <- 1..2, do: assert({:ok, %{model: "openai/b"}} = DSPex.LM.request(chain, msgs()))
    assert CircuitBreaker.state(endpoint) == :open

    # While open: no request reaches A, the chain goes straight to B.
    ref = TelemetryTest.attach_event_handlers(self(), [[:dspex, :lm, :fallback]])
    assert {:ok, %{model: "openai/b"}} = DSPex.LM.request(chain, msgs())
    TelemetryTest.detach(ref)
    assert_received {[:dspex, :lm, :fallback], ^ref, _, %{reason: :circuit_open}}
    assert LoopbackServer.count(a, @path) == 2

    # A heals; after the cooldown its probe succeeds and it answers first again.
    :atomics.put(healthy, 1, 1)

    DSPex.Test.Wait.until(fn ->
      match?({:ok, %{model: "openai/a"}}, DSPex.LM.request(chain, msgs()))
    end)

    assert CircuitBreaker.state(endpoint) == :closed
  end

  defmodule HalfStream do
    @moduledoc false
    # Streams one delta, then fails: a stream that has started cannot fall back.
    @behaviour DSPex.BaseLM
    defstruct model: "half/stream", error: :server

    @impl true
    def forward(lm, _m, _p, %{sink: sink}) do
      if sink, do: sink.({:delta, "partial "})
      {:error, DSPex.Error.new(lm.error, "cut off")}
    end

    @impl true
    def supports?(_lm, f), do: f == :stream
  end

  test "streaming falls back only while nothing has been streamed" do
    b = DSPex.LM.Scripted.new(["whole answer"], chunk_size: 100)
    me = self()
    sink = &send(me, {:delta, &1})

    # A failure before any delta: B streams instead.
    failing_early =
      DSPex.LM.Fallback.new([
        DSPex.LM.Scripted.new(fn _, _ -> {:error, DSPex.Error.new(:timeout, "t")} end),
        b
      ])

    assert {:ok, c} = DSPex.BaseLM.stream(failing_early, msgs(), %{}, sink)
    assert hd(c.choices).text == "whole answer"
    assert_received {:delta, {:delta, "whole answer"}}

    # A failure after a delta: returned as is.
    chain = DSPex.LM.Fallback.new([%HalfStream{}, DSPex.LM.Scripted.new(["unused"])])
    assert {:error, %DSPex.Error{type: :server}} = DSPex.BaseLM.stream(chain, msgs(), %{}, sink)
    assert_received {:delta, {:delta, "partial "}}
  end

  test "a chain is an LM like any other: in a predictor, with named entries" do
    DSPex.LM.Registry.register(:fallback_test_b, DSPex.LM.Scripted.new([%{answer: "Paris"}]))
    on_exit(fn -> DSPex.LM.Registry.unregister(:fallback_test_b) end)

    a = provider(%{status: 503, body: "{}"})
    chain = DSPex.LM.new([lm(a, "a"), :fallback_test_b])
    qa = DSPex.Predict.new("question -> answer", lm: chain)
    assert {:ok, %{answer: "Paris"}} = DSPex.call(qa, question: "?")
  end

  test "options: fallback_on is checked, LM options apply to every model id" do
    assert_raise ArgumentError, ~r/unknown option :fallback_onn/, fn ->
      DSPex.LM.new(["openai/a", "openai/b"], fallback_onn: [:server])
    end

    chain = DSPex.LM.new(["openai/a", {"openai/b", temperature: 0.5}], temperature: 0.1)
    assert Enum.map(chain.lms, & &1.kwargs.temperature) == [0.1, 0.5]
    assert DSPex.BaseLM.supports?(chain, :stream)
    assert DSPex.BaseLM.supports?(chain, :tools)
  end
end
