defmodule DSPex.Transport.ProviderRepliesTest do
  # What reaches a prediction from a provider's reply, through the real transport:
  # text is always valid UTF-8 (issue 8, defect 9), a 429 asking for a long wait comes
  # back at once as :rate_limit (defect 6), and the timeout defaults the LM gives the
  # port (defect 10).
  use ExUnit.Case, async: true

  alias DSPex.Error
  alias DSPex.LM
  alias DSPex.Test.LoopbackServer, as: LS

  @moduletag :capture_log

  @user [%{role: "user", content: "hi"}]

  setup do
    {:ok, srv} = LS.start_link(routes: %{})
    lm = LM.new("openai/test", api_base: LS.url(srv, "/v1"), api_key: "sk-x", cache: false)
    %{srv: srv, lm: lm}
  end

  defp completion(content_json) do
    ~s({"id":"c1","object":"chat.completion","model":"test","choices":[{"index":0,) <>
      ~s("message":{"role":"assistant","content":#{content_json}},"finish_reason":"stop"}],) <>
      ~s("usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}})
  end

  defp text({:ok, %{choices: [%{text: t} | _]}}), do: t

  describe "reply text is valid UTF-8" do
    test "a lone surrogate escape (Python's json.dumps of half an emoji) becomes U+FFFD", %{
      srv: srv,
      lm: lm
    } do
      LS.set_route(srv, "/v1/chat/completions", %{
        body: completion(~S("smile \ud83d then \ude00 pair \ud83d\ude00 done"))
      })

      t = text(LM.request(lm, @user))
      assert t == "smile \uFFFD then \uFFFD pair 😀 done"
      assert String.valid?(t)
    end

    test "raw invalid UTF-8 bytes become U+FFFD", %{srv: srv, lm: lm} do
      body = completion(<<"\"caf", 0xE9, " ", 0xF0, 0x9F, " ok\"">>)
      LS.set_route(srv, "/v1/chat/completions", %{body: body})
      t = text(LM.request(lm, @user))
      # One U+FFFD per maximal ill-formed subpart, as browsers decode: the truncated
      # 4-byte sequence F0 9F is one replacement.
      assert t == "caf\uFFFD \uFFFD ok"
      assert String.valid?(t)
    end

    test "an escaped backslash before 'ud83d' is text, not a surrogate", %{srv: srv, lm: lm} do
      LS.set_route(srv, "/v1/chat/completions", %{body: completion(~S("a\\ud83d \ud83d"))})
      assert text(LM.request(lm, @user)) == "a\\ud83d \uFFFD"
    end

    test "streamed deltas too", %{srv: srv, lm: lm} do
      chunk = fn content ->
        {nil,
         ~s({"id":"c1","object":"chat.completion.chunk","model":"test","choices":[{"index":0,) <>
           ~s("delta":{"content":#{content}},"finish_reason":null}]})}
      end

      LS.set_route(srv, "/v1/chat/completions", %{
        sse: [chunk.(~S("a\ud83d")), chunk.(<<"\"b", 0xFF, "\"">>), {nil, "[DONE]"}]
      })

      me = self()
      assert {:ok, c} = LM.stream(lm, @user, %{}, fn ev -> send(me, ev) end)
      assert text({:ok, c}) == "a\uFFFDb\uFFFD"
      assert_received {:delta, "a\uFFFD"}
      assert_received {:delta, "b\uFFFD"}
    end

    test "a reply that is not JSON at all is still a :server error", %{srv: srv, lm: lm} do
      LS.set_route(srv, "/v1/chat/completions", %{body: "<html>oops</html>"})
      assert {:error, %Error{type: :server}} = LM.request(lm, @user)
    end
  end

  test "a 429 asking for an hour comes back at once as :rate_limit with retry_after_ms", %{
    srv: srv,
    lm: lm
  } do
    LS.set_route(srv, "/v1/chat/completions", %{
      status: 429,
      retry_after: 3600,
      body: ~s({"error":{"message":"Rate limit reached","type":"requests"}})
    })

    task = Task.async(fn -> LM.request(LM.copy(lm, timeout: :infinity), @user) end)
    assert {:ok, {:error, %Error{type: :rate_limit} = e}} = Task.yield(task, 15_000)
    assert e.details.retry_after_ms == 3_600_000
    assert LS.count(srv, "/v1/chat/completions") == 1
  end

  describe "timeout defaults the LM gives the port" do
    # A stand-in worker: a pool whose only worker records the request map it is given.
    setup do
      pool = :"capture_pool_#{System.unique_integer([:positive])}"
      worker = Module.concat(pool, "Worker1")
      me = self()
      pid = spawn_link(fn -> capture_worker(me) end)
      Process.register(pid, worker)

      :persistent_term.put({DSPex.Pool, pool}, %{
        name: pool,
        size: 1,
        names: {worker},
        load: :atomics.new(1, signed: true),
        max_in_flight: 10,
        cb: false
      })

      on_exit(fn -> :persistent_term.erase({DSPex.Pool, pool}) end)
      %{pool: pool}
    end

    defp capture_worker(test) do
      receive do
        {:"$gen_call", from, {:request, req, _wopts}} ->
          send(test, {:req, req})
          body = completion(~S("ok"))
          GenServer.reply(from, {:ok, %{status: 200, headers: [], body: body, info: %{}}})

        {:"$gen_call", from, {:stream, req, _wopts, to, ref}} ->
          send(test, {:req, req})
          GenServer.reply(from, {:ok, 1})
          send(to, {:dspex_http, ref, {:stream_end, %{attempts: 1}}})
      end

      capture_worker(test)
    end

    test "non-streamed: 120 s to the first byte, 60 s idle, the deadline 600 s", %{pool: pool} do
      lm = LM.new("openai/gpt-4o-mini", api_key: "k", cache: false, pool: pool)
      {:ok, _} = LM.request(lm, @user)
      assert_received {:req, req}
      assert %{first_byte_timeout_ms: 120_000, idle_timeout_ms: 60_000} = req
      assert lm.timeout == 600_000
    end

    test "streamed: 60 s to the first byte and between chunks", %{pool: pool} do
      lm = LM.new("openai/gpt-4o-mini", api_key: "k", cache: false, pool: pool)
      LM.stream(lm, @user, %{}, fn _ -> :ok end)
      assert_received {:req, %{first_byte_timeout_ms: 60_000, idle_timeout_ms: 60_000}}
    end

    test "reasoning models may think silently until the deadline", %{pool: pool} do
      lm = LM.new("openai/o3-mini", api_key: "k", cache: false, pool: pool, timeout: 300_000)
      {:ok, _} = LM.request(lm, @user)
      assert_received {:req, %{first_byte_timeout_ms: 300_000, idle_timeout_ms: 300_000}}
    end

    test "explicit options win", %{pool: pool} do
      lm =
        LM.new("openai/gpt-4o-mini",
          api_key: "k",
          cache: false,
          pool: pool,
          first_byte_timeout_ms: 5_000,
          idle_timeout_ms: 7_000,
          max_response_bytes: 1_000
        )

      {:ok, _} = LM.request(lm, @user)

      assert_received {:req,
                       %{
                         first_byte_timeout_ms: 5_000,
                         idle_timeout_ms: 7_000,
                         max_response_bytes: 1_000
                       }}
    end
  end
end
