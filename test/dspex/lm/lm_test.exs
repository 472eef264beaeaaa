defmodule DSPex.LMTest do
  # Real HTTP over 127.0.0.1 through the port transport, against a loopback server that
  # speaks each provider's wire format. Not async: the cache configuration is global.
  use ExUnit.Case, async: false

  alias DSPex.Test.Wait

  alias DSPex.LM
  alias DSPex.Test.LoopbackServer

  doctest DSPex.LM
  doctest DSPex.LM.Pipeline

  @secret "sk-SECRET-do-not-leak-7f3a"
  @answer "[[ ## answer ## ]]\nParis\n\n[[ ## completed ## ]]"

  setup_all do
    dir = Path.join(System.tmp_dir!(), "dspex_lm_test_#{System.unique_integer([:positive])}")
    old = DSPex.LM.Cache.config()
    DSPex.LM.Cache.configure(dir: dir)
    DSPex.LM.Cache.clear()

    on_exit(fn ->
      DSPex.LM.Cache.configure(dir: old.dir)
      File.rm_rf(dir)
    end)

    :ok
  end

  # --- provider wire formats (scripted replies) -----------------------------------

  defp openai_body(text, usage \\ %{prompt_tokens: 11, completion_tokens: 7, total_tokens: 18}) do
    DSPex.JSON.encode!(%{
      id: "chatcmpl-1",
      model: "gpt-test-2025",
      choices: [%{index: 0, message: %{role: "assistant", content: text}, finish_reason: "stop"}],
      usage: usage
    })
  end

  defp anthropic_body(text) do
    DSPex.JSON.encode!(%{
      id: "msg_1",
      type: "message",
      role: "assistant",
      model: "claude-test",
      content: [%{type: "text", text: text}],
      stop_reason: "end_turn",
      usage: %{input_tokens: 12, output_tokens: 6}
    })
  end

  defp gemini_body(text) do
    DSPex.JSON.encode!(%{
      candidates: [
        %{index: 0, finishReason: "STOP", content: %{role: "model", parts: [%{text: text}]}}
      ],
      usageMetadata: %{promptTokenCount: 9, candidatesTokenCount: 5, totalTokenCount: 14},
      modelVersion: "gemini-test"
    })
  end

  # SSE events of each provider for `pieces` of text.
  defp openai_sse(pieces) do
    Enum.map(pieces, fn p ->
      {nil, DSPex.JSON.encode!(%{choices: [%{index: 0, delta: %{content: p}}]})}
    end) ++
      [
        {nil, DSPex.JSON.encode!(%{choices: [%{index: 0, delta: %{}, finish_reason: "stop"}]})},
        {nil,
         DSPex.JSON.encode!(%{
           choices: [],
           usage: %{prompt_tokens: 5, completion_tokens: 4, total_tokens: 9}
         })},
        {nil, "[DONE]"}
      ]
  end

  defp anthropic_sse(pieces) do
    [
      {"message_start",
       DSPex.JSON.encode!(%{
         type: "message_start",
         message: %{model: "claude-test", usage: %{input_tokens: 5, output_tokens: 1}}
       })},
      {"content_block_start",
       DSPex.JSON.encode!(%{
         type: "content_block_start",
         index: 0,
         content_block: %{type: "text", text: ""}
       })}
    ] ++
      Enum.map(pieces, fn p ->
        {"content_block_delta",
         DSPex.JSON.encode!(%{
           type: "content_block_delta",
           index: 0,
           delta: %{type: "text_delta", text: p}
         })}
      end) ++
      [
        {"content_block_stop", ~s({"type":"content_block_stop","index":0})},
        {"message_delta",
         ~s({"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":4}})},
        {"message_stop", ~s({"type":"message_stop"})}
      ]
  end

  defp gemini_sse(pieces) do
    n = length(pieces)

    pieces
    |> Enum.with_index(1)
    |> Enum.map(fn {p, i} ->
      cand = %{index: 0, content: %{role: "model", parts: [%{text: p}]}}
      cand = if i == n, do: Map.put(cand, :finishReason, "STOP"), else: cand

      {nil,
       DSPex.JSON.encode!(%{
         candidates: [cand],
         usageMetadata: %{promptTokenCount: 5, candidatesTokenCount: i, totalTokenCount: 5 + i}
       })}
    end)
  end

  @providers [:openai, :anthropic, :gemini]

  defp paths(:openai), do: {"/v1/chat/completions", "/v1/chat/completions"}
  defp paths(:anthropic), do: {"/v1/messages", "/v1/messages"}

  defp paths(:gemini),
    do:
      {"/v1beta/models/gemini-test:generateContent",
       "/v1beta/models/gemini-test:streamGenerateContent"}

  defp reply(:openai, text), do: openai_body(text)
  defp reply(:anthropic, text), do: anthropic_body(text)
  defp reply(:gemini, text), do: gemini_body(text)

  defp sse(:openai, pieces), do: openai_sse(pieces)
  defp sse(:anthropic, pieces), do: anthropic_sse(pieces)
  defp sse(:gemini, pieces), do: gemini_sse(pieces)

  defp lm_for(:openai, srv, opts),
    do:
      LM.new(
        "openai/gpt-test",
        [api_base: LoopbackServer.url(srv, "/v1"), api_key: @secret] ++ opts
      )

  defp lm_for(:anthropic, srv, opts),
    do:
      LM.new(
        "anthropic/claude-test",
        [api_base: LoopbackServer.url(srv, ""), api_key: @secret] ++ opts
      )

  defp lm_for(:gemini, srv, opts),
    do:
      LM.new(
        "gemini/gemini-test",
        [api_base: LoopbackServer.url(srv, "/v1beta"), api_key: @secret] ++ opts
      )

  defp start_server(routes) do
    {:ok, srv} = LoopbackServer.start_link(routes: routes)
    srv
  end

  defp json_route(status, body),
    do: %{status: status, headers: [{"content-type", "application/json"}], body: body}

  defp server_for(provider, text) do
    {sync, stream} = paths(provider)

    routes =
      if sync == stream do
        %{
          sync => fn req ->
            if String.contains?(req.body, ~s("stream":true)),
              do: %{sse: sse(provider, chunks_of(text)), split: :every_byte},
              else: json_route(200, reply(provider, text))
          end
        }
      else
        %{
          sync => json_route(200, reply(provider, text)),
          stream => %{sse: sse(provider, chunks_of(text)), split: :every_byte}
        }
      end

    start_server(routes)
  end

  defp chunks_of(text), do: Regex.split(~r/(?<=\s)/, text)

  defp user(text), do: [%{role: "user", content: text}]

  # --- tests ------------------------------------------------------------------------

  for provider <- @providers do
    @provider provider

    test "#{provider}: request/3 over the port returns a contract completion" do
      srv = server_for(@provider, "Hello there")
      lm = lm_for(@provider, srv, cache: false)
      assert {:ok, c} = LM.request(lm, user("Hi"), %{temperature: 0.0, max_tokens: 50})
      assert [%{text: "Hello there", finish_reason: "stop"}] = c.choices
      assert c.usage.total_tokens > 0
      assert c.model == lm.model
      {path, _} = paths(@provider)
      [req] = LoopbackServer.requests(srv, path)
      headers = Map.new(req.headers)
      assert Enum.any?(Map.values(headers), &String.contains?(&1, @secret))
      body = DSPex.JSON.decode!(req.body)
      refute Map.has_key?(body, "cache")
    end

    test "#{provider}: DSPex.call with a real Predict (sync)" do
      srv = server_for(@provider, @answer)
      lm = lm_for(@provider, srv, cache: false)
      qa = DSPex.Predict.new("question -> answer", lm: lm)
      assert {:ok, pred} = DSPex.call(qa, question: "Capital of France?")
      assert pred.answer == "Paris"
    end

    test "#{provider}: DSPex.stream with a real Predict" do
      srv = server_for(@provider, @answer)
      lm = lm_for(@provider, srv, cache: false)
      qa = DSPex.Predict.new("question -> answer", lm: lm)
      items = DSPex.stream(qa, question: "Capital of France?") |> Enum.to_list()
      {chunks, [pred]} = Enum.split(items, -1)
      assert pred.answer == "Paris"
      assert chunks != []
      assert Enum.all?(chunks, &match?(%DSPex.StreamChunk{predictor: "self", field: :answer}, &1))
      assert Enum.map_join(chunks, & &1.text) == "Paris"
      assert List.last(chunks).last?
    end

    test "#{provider}: stream/4 sends deltas and assembles usage" do
      srv = server_for(@provider, "one two three")
      lm = lm_for(@provider, srv, cache: false)
      me = self()
      assert {:ok, c} = LM.stream(lm, user("count"), %{}, fn ev -> send(me, {:ev, ev}) end)
      assert [%{text: "one two three"}] = c.choices
      assert c.usage.total_tokens > 0
      deltas = collect_deltas([])
      assert Enum.join(deltas) == "one two three"
      assert length(deltas) == 3
    end
  end

  test "JSONAdapter output streams per JSON key (Gemini)" do
    text = ~s({\n  "reasoning": "France's capital is \\"Paris\\".",\n  "answer": "Paris"\n})
    srv = server_for(:gemini, text)
    lm = lm_for(:gemini, srv, cache: false)
    cot = DSPex.Predict.new("question -> reasoning, answer", lm: lm, adapter: DSPex.Adapter.JSON)
    items = DSPex.stream(cot, question: "Capital of France?") |> Enum.to_list()
    {chunks, [pred]} = Enum.split(items, -1)
    assert pred.answer == "Paris"

    by_field =
      Enum.group_by(chunks, & &1.field, & &1.text) |> Map.new(fn {k, v} -> {k, Enum.join(v)} end)

    assert by_field == %{reasoning: ~s(France's capital is "Paris".), answer: "Paris"}
  end

  test "halting DSPex.stream early cancels the HTTP request" do
    pieces = ["[[ ## answer ## ]]\n", "Paris"] ++ List.duplicate(" and more", 200)
    srv = start_server(%{"/v1/chat/completions" => %{sse: openai_sse(pieces), drip_ms: 5}})
    lm = LM.new("openai/gpt-test", api_base: LoopbackServer.url(srv, "/v1"), cache: false)
    qa = DSPex.Predict.new("question -> answer", lm: lm)

    assert [%DSPex.StreamChunk{field: :answer, text: "Paris"}] =
             DSPex.stream(qa, question: "q") |> Enum.take(1)

    # The request leaves the pool (cancelled), long before the ~40 s drip would end.
    assert Wait.until(fn -> DSPex.Pool.stats().in_flight == 0 end)
  end

  defp collect_deltas(acc) do
    receive do
      {:ev, {:delta, d}} -> collect_deltas([d | acc])
    after
      0 -> Enum.reverse(acc)
    end
  end

  describe "errors" do
    test "HTTP statuses map to typed errors with the provider's message" do
      srv =
        start_server(%{
          "/auth/chat/completions" =>
            json_route(
              401,
              ~s({"error":{"message":"Incorrect API key provided: sk-SECRET-do-not-leak-7f3a","code":"invalid_api_key"}})
            ),
          "/rate/chat/completions" =>
            json_route(
              429,
              ~s({"error":{"message":"Rate limit reached","code":"rate_limit_exceeded"}})
            ),
          "/ctx/chat/completions" =>
            json_route(
              400,
              ~s({"error":{"message":"This model's maximum context length is 8192 tokens","code":"context_length_exceeded"}})
            ),
          "/bad/chat/completions" =>
            json_route(400, ~s({"error":{"message":"Unknown parameter: 'foo'"}})),
          "/srv/chat/completions" => json_route(503, ~s({"error":{"message":"overloaded"}})),
          "/v1/messages" =>
            json_route(
              400,
              ~s({"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long: 300000 tokens > 200000 maximum"}})
            )
        })

      for {prefix, type} <- [
            auth: :auth,
            rate: :rate_limit,
            ctx: :context_window,
            bad: :bad_request,
            srv: :server
          ] do
        lm =
          LM.new("openai/gpt-test",
            api_base: LoopbackServer.url(srv, "/#{prefix}"),
            api_key: @secret,
            cache: false,
            num_retries: 0
          )

        assert {:error, %DSPex.Error{type: ^type} = e} = LM.request(lm, user("x"))
        refute e.message =~ @secret
        assert e.details.status in [400, 401, 429, 503]
      end

      lm =
        LM.new("anthropic/claude-test",
          api_base: LoopbackServer.url(srv, ""),
          api_key: @secret,
          cache: false
        )

      assert {:error, %DSPex.Error{type: :context_window, message: msg}} =
               LM.request(lm, user("x"))

      assert msg =~ "prompt is too long"
    end

    test "retries 5xx then succeeds (transport retries)" do
      srv =
        start_server(%{
          "/v1/chat/completions" => [json_route(500, "{}"), json_route(200, openai_body("ok"))]
        })

      lm =
        LM.new("openai/gpt-test",
          api_base: LoopbackServer.url(srv, "/v1"),
          cache: false,
          num_retries: 2,
          retry_base_ms: 1
        )

      assert {:ok, %{choices: [%{text: "ok"}]}} = LM.request(lm, user("x"))
      assert LoopbackServer.count(srv, "/v1/chat/completions") == 2
    end

    test "network error and timeout" do
      {:ok, sock} = :gen_tcp.listen(0, ip: {127, 0, 0, 1})
      {:ok, port} = :inet.port(sock)
      :gen_tcp.close(sock)

      lm =
        LM.new("openai/gpt-test",
          api_base: "http://127.0.0.1:#{port}/v1",
          cache: false,
          num_retries: 0,
          circuit_breaker: false
        )

      assert {:error, %DSPex.Error{type: :network}} = LM.request(lm, user("x"))

      srv =
        start_server(%{
          "/v1/chat/completions" =>
            Map.put(json_route(200, openai_body("late")), :delay_ms, 2_000)
        })

      lm =
        LM.new("openai/gpt-test",
          api_base: LoopbackServer.url(srv, "/v1"),
          cache: false,
          num_retries: 0,
          timeout: 200
        )

      assert {:error, %DSPex.Error{type: :timeout}} = LM.request(lm, user("x"))
    end

    test "a non-2xx reply to a streamed request is a typed error" do
      srv =
        start_server(%{
          "/v1/chat/completions" => json_route(401, ~s({"error":{"message":"bad key"}}))
        })

      lm =
        LM.new("openai/gpt-test",
          api_base: LoopbackServer.url(srv, "/v1"),
          api_key: @secret,
          cache: false
        )

      assert {:error, %DSPex.Error{type: :auth}} = LM.stream(lm, user("x"), %{}, fn _ -> :ok end)

      qa = DSPex.Predict.new("question -> answer", lm: lm)
      err = assert_raise DSPex.Error, fn -> DSPex.stream(qa, question: "q") |> Enum.to_list() end
      assert err.type == :auth
      refute Exception.message(err) =~ @secret

      assert [{:error, %DSPex.Error{type: :auth}}] =
               DSPex.stream(qa, [question: "q"], on_error: :yield) |> Enum.to_list()
    end
  end

  describe "cache, usage, telemetry and secrets" do
    test "cache hit is marked, has zero usage, and skips the server; rollout_id splits entries" do
      srv = server_for(:openai, "cached answer")
      lm = lm_for(:openai, srv, [])
      msgs = user("cache me #{System.unique_integer()}")

      assert {:ok, c1} = LM.request(lm, msgs, %{temperature: 0.0})
      refute Map.get(c1, :cache_hit)
      assert {:ok, c2} = LM.request(lm, msgs, %{temperature: 0.0})
      assert c2.cache_hit
      assert c2.usage.total_tokens == 0
      assert c2.choices == c1.choices
      assert LoopbackServer.count(srv, "/v1/chat/completions") == 1

      # a different key does not change the cache key; rollout_id does (and is not sent)
      assert {:ok, %{cache_hit: true}} =
               LM.request(%{lm | api_key: "sk-other"}, msgs, %{temperature: 0.0})

      assert {:ok, c3} = LM.request(lm, msgs, %{temperature: 0.0, rollout_id: 1})
      refute Map.get(c3, :cache_hit)
      assert LoopbackServer.count(srv, "/v1/chat/completions") == 2
      last = srv |> LoopbackServer.requests("/v1/chat/completions") |> List.last()
      refute last.body =~ "rollout_id"

      # cache: false per call
      assert {:ok, c4} = LM.request(lm, msgs, %{temperature: 0.0, cache: false})
      refute Map.get(c4, :cache_hit)
      assert LoopbackServer.count(srv, "/v1/chat/completions") == 3
    end

    test "usage is tracked per model; cache hits add nothing" do
      srv = server_for(:openai, "counted")
      lm = lm_for(:openai, srv, [])
      msgs = user("usage #{System.unique_integer()}")

      {_, usage} =
        DSPex.track_usage(fn ->
          {:ok, _} = LM.request(lm, msgs)
          {:ok, %{cache_hit: true}} = LM.request(lm, msgs)
        end)

      assert usage == %{
               "openai/gpt-test" => %{
                 prompt_tokens: 11,
                 completion_tokens: 7,
                 total_tokens: 18,
                 cached_tokens: 0,
                 reasoning_tokens: 0
               }
             }
    end

    test "DSPex.call with a provider LM counts its usage once; the key stays out of history" do
      srv = server_for(:openai, @answer)
      lm = lm_for(:openai, srv, cache: false)
      qa = DSPex.Predict.new("question -> answer", lm: lm)
      question = "Capital of France? #{System.unique_integer([:positive])}"
      once = %{prompt_tokens: 11, completion_tokens: 7, total_tokens: 18}

      {{:ok, pred}, usage} = DSPex.track_usage(fn -> DSPex.call(qa, question: question) end)

      assert pred.answer == "Paris"
      assert LoopbackServer.count(srv, "/v1/chat/completions") == 1

      assert usage == %{
               "openai/gpt-test" => Map.merge(once, %{cached_tokens: 0, reasoning_tokens: 0})
             }

      assert %{"openai/gpt-test" => %{total_tokens: 18}} = DSPex.Prediction.usage(pred)

      # nested scopes each see the call once
      {{{:ok, _}, inner}, outer} =
        DSPex.track_usage(fn ->
          DSPex.track_usage(fn -> DSPex.call(qa, question: question <> "!") end)
        end)

      assert inner == usage
      assert outer == usage

      entry =
        Enum.find(DSPex.LM.History.last(50), fn e ->
          Enum.any?(e.messages, &(is_binary(&1.content) and &1.content =~ question))
        end)

      assert %{model: "openai/gpt-test", usage: %{total_tokens: 18}} = entry
      refute inspect(entry, limit: :infinity, printable_limit: :infinity) =~ @secret
      {:ok, dev} = StringIO.open("")
      DSPex.inspect_history(5, device: dev, colors: false)
      {_, printed} = StringIO.contents(dev)
      assert printed =~ "Paris"
      refute printed =~ @secret
    end

    test "the key never appears in telemetry, inspect, errors, cache files or saved state" do
      me = self()
      id = "lm-secret-test-#{System.unique_integer()}"

      DSPex.Telemetry.attach_many(
        id,
        [
          [:dspex, :lm, :request, :start],
          [:dspex, :lm, :request, :stop],
          [:dspex, :lm, :request, :exception]
        ],
        fn ev, meas, meta, _ -> send(me, {:tel, ev, meas, meta}) end,
        nil
      )

      srv = server_for(:openai, "secret-free")
      lm = lm_for(:openai, srv, [])
      msgs = user("hygiene #{System.unique_integer()}")
      {:ok, _} = LM.request(lm, msgs)
      {:ok, _} = LM.request(lm, msgs)
      DSPex.Telemetry.detach(id)

      events = collect_tel([])
      assert length(events) == 4
      refute inspect(events, limit: :infinity, printable_limit: :infinity) =~ @secret
      stops = for {[:dspex, :lm, :request, :stop], _, meta} <- events, do: meta

      assert [
               %{http_status: 200, cache_hit: false, provider: "openai", model: "openai/gpt-test"} =
                 first,
               %{cache_hit: true}
             ] = stops

      assert first.usage.total_tokens == 18
      assert is_integer(first.request_id)

      refute inspect(lm) =~ @secret
      refute inspect(LM.dump_state(lm)) =~ @secret
      refute DSPex.JSON.encode!(LM.dump_state(lm)) =~ @secret

      dir = DSPex.LM.Cache.config().dir

      for f <- Path.wildcard(Path.join([dir, "**", "*"])), File.regular?(f) do
        refute File.read!(f) =~ @secret
      end
    end
  end

  describe "options" do
    test "unknown options raise with the valid ones; provider fields go in kwargs:" do
      err = assert_raise ArgumentError, fn -> LM.new("openai/x", max_token: 5) end

      assert err.message =~
               "unknown option :max_token for DSPex.LM.new/2 (did you mean :max_tokens?)"

      assert_raise ArgumentError, ~r/:timeout of DSPex.LM.new\/2: expected a timeout/, fn ->
        LM.new("openai/x", timeout: -1)
      end

      assert_raise ArgumentError, ~r/unknown option :tempreature for DSPex.LM.copy\/2/, fn ->
        LM.copy(LM.new("openai/x"), tempreature: nil)
      end

      # a bad key value is never echoed
      err = assert_raise ArgumentError, fn -> LM.new("openai/x", api_key: {:key, @secret}) end
      refute err.message =~ @secret

      srv = server_for(:openai, "ok")

      lm =
        LM.new("openai/gpt-test",
          api_base: LoopbackServer.url(srv, "/v1"),
          cache: false,
          temperature: 0.5,
          kwargs: [logit_bias: %{"50256" => -100}, parallel_tool_calls: false]
        )

      assert lm.kwargs == %{
               temperature: 0.5,
               logit_bias: %{"50256" => -100},
               parallel_tool_calls: false
             }

      assert {:ok, _} = LM.request(lm, user("hi"))
      [req] = LoopbackServer.requests(srv, "/v1/chat/completions")

      assert %{
               "temperature" => 0.5,
               "logit_bias" => %{"50256" => -100},
               "parallel_tool_calls" => false
             } = DSPex.JSON.decode!(req.body)
    end

    test "local/ builds an in-process LM (DSPex.LM.Local), not a remote provider" do
      assert %DSPex.Error{type: :model_not_found} =
               catch_error(LM.new("local/no-such-model.gguf"))

      path = Path.expand("../local/fixtures/qwen2-qwen2-q4_0-mha-tied.gguf", __DIR__)
      assert %DSPex.LM.Local{model: "local/" <> _} = LM.new("local/" <> path, max_tokens: 2)
    end

    test "copy changes only what it is given" do
      lm =
        LM.new("openai/x", api_key: @secret, timeout: 1_000, temperature: 0.1, retry_base_ms: 5)

      copy = LM.copy(lm, max_tokens: 9, base_url: "http://h/v1", retry_base_ms: nil, api_key: nil)
      assert copy.kwargs == %{temperature: 0.1, max_tokens: 9}
      assert {copy.timeout, copy.api_base, copy.api_key} == {1_000, "http://h/v1", nil}
      refute Keyword.has_key?(copy.options, :retry_base_ms)
      assert LM.resolve_key(LM.copy(lm, [])).api_key == @secret
    end
  end

  defp collect_tel(acc) do
    receive do
      {:tel, ev, meas, meta} -> collect_tel([{ev, meas, meta} | acc])
    after
      0 -> Enum.reverse(acc)
    end
  end
end
