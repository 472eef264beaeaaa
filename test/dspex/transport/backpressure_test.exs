defmodule DSPex.Transport.BackpressureTest do
  # A provider that writes SSE events back to back must not make the port grow, stall
  # its loop, or starve other requests (issue 8, defect 1). Not async: the flood loads
  # the machine.
  use ExUnit.Case, async: false

  alias DSPex.Error
  alias DSPex.Test.LoopbackServer, as: LS

  @moduletag :capture_log
  @moduletag timeout: 120_000

  @event ~s(data: {"choices":[{"index":0,"delta":{"content":"tok"}}]}\n\n)
  @data ~s({"choices":[{"index":0,"delta":{"content":"tok"}}]})
  # A regression must not take the machine with it: the port is killed above this.
  @kill_above_kb 1024 * 1024
  # What the port may reach: its stdout queue bound (8 MiB) + one stream window (1 MiB)
  # + curl's buffers and the binary itself (~10 MiB idle): 64 MiB is generous; before
  # the fix it passed 800 MiB within 5 s.
  @max_rss_kb 64 * 1024

  setup do
    {:ok, srv} = LS.start_link(routes: %{"/ok" => %{body: "ok"}}, record: false)
    pool = :"bp_pool_#{System.unique_integer([:positive])}"
    start_supervised!({DSPex.Pool, name: pool, size: 1})
    [%{os_pid: os_pid}] = DSPex.Pool.stats(pool).workers
    guard = start_rss_guard(os_pid)
    on_exit(fn -> send(guard, :stop) end)
    %{srv: srv, pool: pool, os_pid: os_pid, guard: guard}
  end

  defp stream_req(srv), do: %{url: LS.url(srv, "/flood"), method: "GET"}

  test "a flood nobody reads: pings, other requests and the deadline keep working; RSS stays bounded",
       %{srv: srv, pool: pool, guard: guard} do
    LS.set_route(srv, "/flood", %{flood: @event})

    {:ok, h} =
      DSPex.Pool.stream(stream_req(srv), pool: pool, timeout: 4_000, circuit_breaker: false)

    # the test process is the receiver and reads nothing of the stream meanwhile
    for _ <- 1..10 do
      Process.sleep(100)
      assert :ok = DSPex.Pool.ping(pool, 2_000)

      assert {:ok, %{status: 200, body: "ok"}} =
               DSPex.Pool.request(%{url: LS.url(srv, "/ok"), method: "GET"},
                 pool: pool,
                 timeout: 5_000
               )
    end

    # the stream's total deadline fires (the port's timer ran under load)
    assert_receive {:dspex_http, ref, {:error, %Error{type: :timeout} = e}}
                   when ref == h.ref,
                   8_000

    assert e.details.timeout == :total
    {:message_queue_len, queued} = Process.info(self(), :message_queue_len)
    # the receiver's mailbox is bounded too (acks stop at 500 queued messages)
    assert queued < 2_000
    assert %{peak_kb: peak, killed: false} = rss(guard)
    assert peak < @max_rss_kb, "port RSS reached #{div(peak, 1024)} MiB"
    assert :ok = DSPex.Pool.ping(pool)
  end

  test "a flood read to the end: every event arrives once, in order, through pause/resume",
       %{srv: srv, pool: pool, guard: guard} do
    # 24 MiB of events: many times the stream window and the stdout bound
    total = 24 * 1024 * 1024
    LS.set_route(srv, "/flood", %{flood: @event, flood_bytes: total})
    {:ok, h} = DSPex.Pool.stream(stream_req(srv), pool: pool, timeout: 60_000)
    n = count_events(h.ref, 0)
    per_chunk = div(65_536, byte_size(@event))
    chunks = div(total + per_chunk * byte_size(@event) - 1, per_chunk * byte_size(@event))
    assert n == chunks * per_chunk
    assert %{peak_kb: peak, killed: false} = rss(guard)
    assert peak < @max_rss_kb, "port RSS reached #{div(peak, 1024)} MiB"
  end

  test "a slow reader slows its own stream, not the others", %{srv: srv, pool: pool} do
    total = 4 * 1024 * 1024
    LS.set_route(srv, "/flood", %{flood: @event, flood_bytes: total})
    parent = self()

    slow =
      spawn_link(fn ->
        receive do
          {:go, ref} -> send(parent, {:slow_done, count_events(ref, 0, 2)})
        end
      end)

    {:ok, h} = DSPex.Pool.stream(stream_req(srv), pool: pool, timeout: 60_000, to: slow)
    send(slow, {:go, h.ref})

    # a second stream on the same port, read at full speed, finishes meanwhile
    {:ok, h2} = DSPex.Pool.stream(stream_req(srv), pool: pool, timeout: 60_000)
    n2 = count_events(h2.ref, 0)
    assert_receive {:slow_done, n1}, 60_000
    assert n1 == n2
    assert n1 > 0
  end

  # Events of a stream until its end; `pause_ms` after every message (a slow reader).
  defp count_events(ref, n, pause_ms \\ 0) do
    receive do
      {:dspex_http, ^ref, {:sse, events}} ->
        if pause_ms > 0, do: Process.sleep(pause_ms)
        assert Enum.all?(events, &(&1 == {nil, @data}))
        count_events(ref, n + length(events), pause_ms)

      {:dspex_http, ^ref, {:stream_start, 200, _}} ->
        count_events(ref, n, pause_ms)

      {:dspex_http, ^ref, {:stream_end, _info}} ->
        n

      {:dspex_http, ^ref, other} ->
        flunk("stream ended with #{inspect(other)}")
    after
      30_000 -> flunk("stream stalled after #{n} events")
    end
  end

  # Samples the port's VmRSS every 20 ms, keeps the peak, kills the port above the bound.
  defp start_rss_guard(os_pid) do
    spawn(fn -> guard_loop(os_pid, 0, false) end)
  end

  defp guard_loop(os_pid, peak, killed) do
    receive do
      :stop ->
        :ok

      {:get, from} ->
        send(from, {:rss, %{peak_kb: peak, killed: killed}})
        guard_loop(os_pid, peak, killed)
    after
      20 ->
        kb = vm_rss_kb(os_pid)

        killed =
          if kb > @kill_above_kb and not killed do
            System.cmd("kill", ["-9", Integer.to_string(os_pid)])
            true
          else
            killed
          end

        guard_loop(os_pid, max(peak, kb), killed)
    end
  end

  defp rss(guard) do
    send(guard, {:get, self()})

    receive do
      {:rss, r} -> r
    after
      1_000 -> flunk("RSS guard did not answer")
    end
  end

  defp vm_rss_kb(os_pid) do
    with {:ok, status} <- File.read("/proc/#{os_pid}/status"),
         [_, kb] <- Regex.run(~r/^VmRSS:\s+(\d+) kB/m, status) do
      String.to_integer(kb)
    else
      _ -> 0
    end
  end
end
