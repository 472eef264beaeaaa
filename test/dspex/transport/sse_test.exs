defmodule DSPex.SSETest do
  use ExUnit.Case, async: true

  alias DSPex.Test.Wait

  alias DSPex.Error
  alias DSPex.Test.LoopbackServer, as: LS

  @events [
    {"message_start", ~s({"type":"message_start","id":"m1"})},
    {nil, "line one\nline two"},
    {"delta", ~s({"text":"h\\u00e9llo wörld"})},
    {nil, ""},
    {nil, "[DONE]"}
  ]

  setup do
    {:ok, srv} = LS.start_link(routes: %{})
    %{srv: srv}
  end

  defp req(srv, path), do: %{url: LS.url(srv, path), method: "POST", body: "{}"}

  defp collect(ref, acc \\ []) do
    receive do
      {:dspex_http, ^ref, {:sse, evs}} -> collect(ref, acc ++ evs)
      {:dspex_http, ^ref, {:stream_start, status, _h}} -> collect(ref, acc ++ [{:start, status}])
      {:dspex_http, ^ref, {:stream_end, info}} -> {:end, acc, info}
      {:dspex_http, ^ref, {:error, err}} -> {:error, acc, err}
      {:dspex_http, ^ref, {:response, s, h, b}} -> {:response, s, h, b}
    after
      10_000 -> flunk("no terminal stream message")
    end
  end

  test "events arrive in order with stream_start and stream_end", %{srv: srv} do
    LS.set_route(srv, "/s", %{sse: @events})
    {:ok, h} = DSPex.Pool.stream(req(srv, "/s"))
    assert {:end, [{:start, 200} | events], info} = collect(h.ref)
    assert events == @events
    assert info.attempts == 1
    refute_received {:dspex_http, _, _}
  end

  test "reassembly when the body is split at every byte", %{srv: srv} do
    LS.set_route(srv, "/s", %{sse: @events, split: :every_byte, chunk_delay_ms: 0})
    {:ok, h} = DSPex.Pool.stream(req(srv, "/s"))
    assert {:end, [{:start, 200} | events], _} = collect(h.ref)
    assert events == @events
  end

  test "reassembly across random splits, CRLF/CR line endings and comments", %{srv: srv} do
    raw =
      ": keepalive\r\nevent: a\r\ndata: 1\r\n\r\n" <>
        "data: 2\rdata: 3\r\r" <> ": ping\n\n" <> "id: 9\ndata:4\n\n"

    for seed <- 1..10 do
      LS.set_route(srv, "/r", %{sse: [raw], split: {:random, seed}, chunk_delay_ms: 1})
      {:ok, h} = DSPex.Pool.stream(req(srv, "/r"))
      assert {:end, [{:start, 200} | events], _} = collect(h.ref)
      assert events == [{"a", "1"}, {nil, "2\n3"}, {nil, "4"}]
    end
  end

  test "several events in one chunk come batched", %{srv: srv} do
    many = for i <- 1..50, do: {nil, "e#{i}"}
    LS.set_route(srv, "/b", %{sse: many})
    {:ok, h} = DSPex.Pool.stream(req(srv, "/b"))
    assert_receive {:dspex_http, ref, {:stream_start, 200, _}} when ref == h.ref, 5_000
    assert_receive {:dspex_http, ^ref, {:sse, first}}, 5_000
    assert length(first) > 1
    assert {:end, rest, _} = collect(ref)
    assert first ++ rest == many
  end

  test "a non-2xx streamed request is answered with :response (after retries)", %{srv: srv} do
    LS.set_route(srv, "/e", [
      %{status: 503, body: "busy"},
      %{status: 401, body: ~s({"error":"key"})}
    ])

    {:ok, h} = DSPex.Pool.stream(Map.put(req(srv, "/e"), :retry_base_ms, 1))
    assert {:response, 401, _headers, ~s({"error":"key"})} = collect(h.ref)
  end

  test "a stream cut mid-way fails with :network and is not retried", %{srv: srv} do
    # the connection dies before the announced body length was sent
    LS.set_route(srv, "/cut2", %{
      body: "data: one\n\ndata: tw",
      truncate: 100,
      headers: [{"content-type", "text/event-stream"}]
    })

    {:ok, h} = DSPex.Pool.stream(req(srv, "/cut2"))
    assert {:error, events, %Error{type: :network}} = collect(h.ref)
    assert events == [{:start, 200}, {nil, "one"}]
    assert LS.count(srv, "/cut2") == 1
  end

  test "stream idle timeout", %{srv: srv} do
    LS.set_route(srv, "/idle", %{
      sse: [{nil, "a"}, {nil, "b"}],
      split: [11],
      chunk_delay_ms: 1_000
    })

    {:ok, h} = DSPex.Pool.stream(Map.put(req(srv, "/idle"), :idle_timeout_ms, 200))
    assert {:error, _events, %Error{type: :timeout, details: %{timeout: :idle}}} = collect(h.ref)
  end

  test "stream deadline covers the whole stream", %{srv: srv} do
    LS.set_route(srv, "/long", %{
      sse: for(i <- 1..100, do: {nil, "#{i}"}),
      split: :every_byte,
      chunk_delay_ms: 20
    })

    {:ok, h} = DSPex.Pool.stream(req(srv, "/long"), timeout: 300)
    assert {:error, _events, %Error{type: :timeout}} = collect(h.ref)
  end

  test "cancel/1 aborts the transfer and no message follows", %{srv: srv} do
    LS.set_route(srv, "/drip", %{
      sse: for(i <- 1..500, do: {nil, "#{i}"}),
      split: :every_byte,
      chunk_delay_ms: 5
    })

    {:ok, h} = DSPex.Pool.stream(req(srv, "/drip"))
    assert_receive {:dspex_http, ref, {:sse, _}} when ref == h.ref, 5_000
    assert :ok = DSPex.Pool.cancel(h)
    refute_receive {:dspex_http, ^ref, _}, 100
    Wait.until(fn -> LS.aborted(srv, "/drip") == 1 end)
  end

  test "a receiving process that dies cancels its stream", %{srv: srv} do
    LS.set_route(srv, "/drip", %{
      sse: for(i <- 1..500, do: {nil, "#{i}"}),
      split: :every_byte,
      chunk_delay_ms: 5
    })

    parent = self()

    pid =
      spawn(fn ->
        {:ok, h} = DSPex.Pool.stream(req(srv, "/drip"))
        send(parent, {:started, h})
        Process.sleep(:infinity)
      end)

    assert_receive {:started, _h}, 5_000
    Wait.until(fn -> LS.count(srv, "/drip") == 1 end)
    Process.exit(pid, :kill)
    Wait.until(fn -> LS.aborted(srv, "/drip") == 1 end)
  end

  describe "stream_events/2" do
    test "yields {:sse, event, data} and ends", %{srv: srv} do
      LS.set_route(srv, "/s", %{sse: @events, split: {:random, 3}})
      out = srv |> req("/s") |> DSPex.Pool.stream_events() |> Enum.to_list()
      assert out == Enum.map(@events, fn {e, d} -> {:sse, e, d} end)
    end

    test "halting early cancels the request", %{srv: srv} do
      LS.set_route(srv, "/drip", %{
        sse: for(i <- 1..500, do: {nil, "#{i}"}),
        split: :every_byte,
        chunk_delay_ms: 5
      })

      assert [{:sse, nil, "1"}, {:sse, nil, "2"}] =
               srv |> req("/drip") |> DSPex.Pool.stream_events() |> Enum.take(2)

      Wait.until(fn -> LS.aborted(srv, "/drip") == 1 end)
      refute_receive {:dspex_http, _, _}, 50
    end

    test "raises DSPex.Error on a non-2xx response and on transport errors", %{srv: srv} do
      LS.set_route(srv, "/401", %{status: 401, body: "nope"})

      err =
        assert_raise Error, fn ->
          srv |> req("/401") |> DSPex.Pool.stream_events() |> Enum.to_list()
        end

      assert %Error{type: :http_status, details: %{status: 401, body: "nope"}} = err

      {:ok, l} = :gen_tcp.listen(0, ip: {127, 0, 0, 1})
      {:ok, port} = :inet.port(l)
      :gen_tcp.close(l)
      bad = %{url: "http://127.0.0.1:#{port}/", max_retries: 0}

      assert_raise Error, fn ->
        bad |> DSPex.Pool.stream_events(circuit_breaker: false) |> Enum.to_list()
      end
    end
  end
end
