defmodule DSPex.TransportFaultsTest do
  # Not async: the SIGKILL tests load the machine with 500 concurrent requests.
  use ExUnit.Case, async: false

  alias DSPex.Test.Wait

  alias DSPex.Error
  alias DSPex.Test.LoopbackServer, as: LS

  @moduletag timeout: 120_000
  # port exits (status 137) are logged as warnings: keep them out of the console
  @moduletag :capture_log

  setup do
    {:ok, srv} = LS.start_link(routes: %{"/ok" => %{body: "ok"}})
    pool = :"faults_pool_#{System.unique_integer([:positive])}"
    start_supervised!({DSPex.Pool, name: pool, size: 2, restart_backoff_ms: {20, 200}})
    %{srv: srv, pool: pool}
  end

  defp req(srv, path, extra \\ %{}),
    do: Map.merge(%{url: LS.url(srv, path), method: "GET"}, extra)

  describe "retries" do
    test "429 with Retry-After (seconds) is retried after the announced delay", %{
      srv: srv,
      pool: pool
    } do
      LS.set_route(srv, "/rl", [
        %{status: 429, retry_after: 1, body: "slow down"},
        %{status: 200, body: "done"}
      ])

      assert {:ok, %{status: 200, body: "done", info: info}} =
               DSPex.Pool.request(req(srv, "/rl"), pool: pool)

      assert info.attempts == 2
      [first, second] = LS.requests(srv, "/rl")
      assert second.at_ms - first.at_ms >= 1_000
    end

    test "Retry-After as an HTTP date is honoured", %{srv: srv, pool: pool} do
      date = fn ->
        {{y, mo, d}, {h, mi, s}} =
          :calendar.universal_time()
          |> :calendar.datetime_to_gregorian_seconds()
          |> Kernel.+(2)
          |> :calendar.gregorian_seconds_to_datetime()

        day = Enum.at(~w(Mon Tue Wed Thu Fri Sat Sun), :calendar.day_of_the_week(y, mo, d) - 1)
        mon = Enum.at(~w(Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec), mo - 1)

        :io_lib.format("~s, ~2..0B ~s ~4..0B ~2..0B:~2..0B:~2..0B GMT", [day, d, mon, y, h, mi, s])
        |> to_string()
      end

      LS.set_route(srv, "/rl", fn
        %{n: 1} -> %{status: 503, headers: [{"retry-after", date.()}]}
        _ -> %{status: 200, body: "ok"}
      end)

      assert {:ok, %{status: 200, info: %{attempts: 2}}} =
               DSPex.Pool.request(req(srv, "/rl"), pool: pool)

      [first, second] = LS.requests(srv, "/rl")
      assert second.at_ms - first.at_ms >= 900
    end

    test "a Retry-After beyond the deadline returns the 429 at once", %{srv: srv, pool: pool} do
      LS.set_route(srv, "/rl", %{status: 429, retry_after: 60})

      assert {:ok, %{status: 429, info: info}} =
               DSPex.Pool.request(req(srv, "/rl"), pool: pool, timeout: 5_000)

      assert info.attempts == 1
      assert info.retry_after_ms == 60_000
      assert LS.count(srv, "/rl") == 1
    end

    test "a Retry-After above retry_max_ms returns the 429 at once, even with a long deadline",
         %{srv: srv, pool: pool} do
      LS.set_route(srv, "/rl", %{status: 429, retry_after: 3600, body: "slow down"})

      # the caller's deadline is a day: before the cap it waited the whole hour
      task =
        Task.async(fn -> DSPex.Pool.request(req(srv, "/rl"), pool: pool, timeout: :infinity) end)

      assert {:ok, {:ok, %{status: 429, body: "slow down", info: info}}} =
               Task.yield(task, 15_000)

      assert info.attempts == 1
      assert info.retry_after_ms == 3_600_000
      assert LS.count(srv, "/rl") == 1
    end

    test "retry_max_ms sets the longest Retry-After honoured", %{srv: srv, pool: pool} do
      LS.set_route(srv, "/rl", [%{status: 503, retry_after: 2}, %{status: 200, body: "ok"}])

      assert {:ok, %{status: 503, info: %{attempts: 1, retry_after_ms: 2_000}}} =
               DSPex.Pool.request(req(srv, "/rl", %{retry_max_ms: 1_000}), pool: pool)

      LS.set_route(srv, "/rl", [%{status: 503, retry_after: 1}, %{status: 200, body: "ok"}])

      assert {:ok, %{status: 200, info: %{attempts: 2}}} =
               DSPex.Pool.request(req(srv, "/rl", %{retry_max_ms: 1_000}), pool: pool)
    end

    test "500 then success", %{srv: srv, pool: pool} do
      LS.set_route(srv, "/f", [%{status: 500}, %{status: 502}, %{status: 200, body: "fine"}])
      r = req(srv, "/f", %{retry_base_ms: 1})

      assert {:ok, %{status: 200, body: "fine", info: %{attempts: 3}}} =
               DSPex.Pool.request(r, pool: pool)
    end

    test "connection closed without a response, then success", %{srv: srv, pool: pool} do
      LS.set_route(srv, "/c", [%{close: true}, %{status: 200, body: "back"}])

      assert {:ok, %{status: 200, body: "back"}} =
               DSPex.Pool.request(req(srv, "/c", %{retry_base_ms: 1}), pool: pool)

      assert LS.count(srv, "/c") == 2
    end

    test "connection reset mid-body, then success", %{srv: srv, pool: pool} do
      LS.set_route(srv, "/r", [%{body: "hello world", reset_after: 3}, %{body: "hello world"}])

      assert {:ok, %{body: "hello world"}} =
               DSPex.Pool.request(req(srv, "/r", %{retry_base_ms: 1}), pool: pool)
    end

    test "a reset mid-body says \"connection reset by peer\"", %{srv: srv, pool: pool} do
      LS.set_route(srv, "/r", %{body: String.duplicate("b", 100_000), reset_after: 3})

      assert {:error, %Error{type: :network, message: msg}} =
               DSPex.Pool.request(req(srv, "/r", %{max_retries: 0}),
                 pool: pool,
                 circuit_breaker: false
               )

      assert msg =~ ~r/connection reset by peer/i
      refute msg =~ "select/poll"
    end

    test "max_retries is respected and 4xx is not retried", %{srv: srv, pool: pool} do
      LS.set_route(srv, "/e", %{status: 500, body: "boom"})
      r = req(srv, "/e", %{max_retries: 2, retry_base_ms: 1})

      assert {:ok, %{status: 500, body: "boom", info: %{attempts: 3}}} =
               DSPex.Pool.request(r, pool: pool, circuit_breaker: false)

      assert LS.count(srv, "/e") == 3

      LS.set_route(srv, "/bad", %{status: 400})

      assert {:ok, %{status: 400, info: %{attempts: 1}}} =
               DSPex.Pool.request(req(srv, "/bad"), pool: pool)

      assert LS.count(srv, "/bad") == 1
    end

    test "truncated body fails with :network after retries", %{srv: srv, pool: pool} do
      LS.set_route(srv, "/t", %{body: "short", truncate: 10})
      r = req(srv, "/t", %{max_retries: 1, retry_base_ms: 1})

      assert {:error, %Error{type: :network, details: %{info: %{attempts: 2}}}} =
               DSPex.Pool.request(r, pool: pool)
    end
  end

  describe "timeouts" do
    test "connection refused → :network", %{pool: pool} do
      {:ok, l} = :gen_tcp.listen(0, ip: {127, 0, 0, 1})
      {:ok, port} = :inet.port(l)
      :gen_tcp.close(l)
      r = %{url: "http://127.0.0.1:#{port}/", method: "GET", max_retries: 1, retry_base_ms: 1}

      assert {:error, %Error{type: :network, details: %{info: %{attempts: 2}}}} =
               DSPex.Pool.request(r, pool: pool)
    end

    test "first byte timeout", %{srv: srv, pool: pool} do
      LS.set_route(srv, "/slow", %{delay_ms: 3_000, body: "late"})
      r = req(srv, "/slow", %{first_byte_timeout_ms: 100})

      assert {:error, %Error{type: :timeout, details: %{timeout: :first_byte}}} =
               DSPex.Pool.request(r, pool: pool)
    end

    test "idle timeout on a slow drip", %{srv: srv, pool: pool} do
      LS.set_route(srv, "/drip", %{body: "abcdefgh", drip_ms: 400})
      r = req(srv, "/drip", %{idle_timeout_ms: 100})

      assert {:error, %Error{type: :timeout, details: %{timeout: :idle}}} =
               DSPex.Pool.request(r, pool: pool)
    end

    test "total deadline with data still trickling in", %{srv: srv, pool: pool} do
      LS.set_route(srv, "/drip", %{body: :binary.copy("z", 200), drip_ms: 20})
      t0 = System.monotonic_time(:millisecond)

      assert {:error, %Error{type: :timeout}} =
               DSPex.Pool.request(req(srv, "/drip"), pool: pool, timeout: 300)

      assert System.monotonic_time(:millisecond) - t0 < 300 + 50
    end

    test "retries stop at the deadline", %{srv: srv, pool: pool} do
      LS.set_route(srv, "/e", %{status: 503})
      r = req(srv, "/e", %{max_retries: 100, retry_base_ms: 50, retry_max_ms: 50})
      t0 = System.monotonic_time(:millisecond)

      # the last 503 when the next backoff would pass the deadline, or a timeout when the
      # deadline falls inside an attempt; never a wait past the deadline
      case DSPex.Pool.request(r, pool: pool, timeout: 400, circuit_breaker: false) do
        {:ok, %{status: 503, info: %{attempts: n}}} -> assert n > 1 and n < 100
        {:error, %Error{type: :timeout}} -> :ok
      end

      assert System.monotonic_time(:millisecond) - t0 < 400 + 50
      assert LS.count(srv, "/e") > 1
    end
  end

  describe "cancellation" do
    test "a caller killed mid-request cancels the transfer in the port", %{srv: srv, pool: pool} do
      LS.set_route(srv, "/drip", %{body: :binary.copy("d", 2_000), drip_ms: 5})
      caller = spawn(fn -> DSPex.Pool.request(req(srv, "/drip"), pool: pool) end)
      Wait.until(fn -> LS.count(srv, "/drip") == 1 end)
      Process.exit(caller, :kill)
      # the port aborts the transfer: the server sees its writes fail
      Wait.until(fn -> LS.aborted(srv, "/drip") == 1 end)
      Wait.until(fn -> DSPex.Pool.stats(pool).in_flight == 0 end)
    end
  end

  describe "circuit breaker" do
    test "opens after N failures, rejects, half-opens after cooldown and closes on success",
         %{srv: srv, pool: pool} do
      parent = self()
      id = "cb-test-#{inspect(pool)}"

      DSPex.Telemetry.attach_many(
        id,
        [
          [:dspex, :circuit_breaker, :opened],
          [:dspex, :circuit_breaker, :half_open],
          [:dspex, :circuit_breaker, :closed]
        ],
        fn event, _m, meta, _ -> send(parent, {:cb, List.last(event), meta.endpoint}) end,
        nil
      )

      on_exit(fn -> DSPex.Telemetry.detach(id) end)
      ep = DSPex.CircuitBreaker.endpoint(LS.url(srv, "/"))
      cb = [threshold: 3, cooldown_ms: 300]
      LS.set_route(srv, "/down", %{status: 500})
      r = req(srv, "/down", %{max_retries: 0})

      # 4xx never count
      LS.set_route(srv, "/nf", %{status: 404})

      for _ <- 1..5,
          do:
            {:ok, %{status: 404}} =
              DSPex.Pool.request(req(srv, "/nf"), pool: pool, circuit_breaker: cb)

      assert DSPex.CircuitBreaker.state(ep) == :closed

      for _ <- 1..3,
          do: {:ok, %{status: 500}} = DSPex.Pool.request(r, pool: pool, circuit_breaker: cb)

      assert_receive {:cb, :opened, ^ep}
      assert DSPex.CircuitBreaker.state(ep) == :open

      assert {:error, %Error{type: :circuit_open}} =
               DSPex.Pool.request(r, pool: pool, circuit_breaker: cb)

      assert LS.count(srv, "/down") == 3

      Process.sleep(350)
      # half-open: exactly one probe goes through while it is in flight
      LS.set_route(srv, "/down", %{status: 200, delay_ms: 300})
      probe = Task.async(fn -> DSPex.Pool.request(r, pool: pool, circuit_breaker: cb) end)
      assert_receive {:cb, :half_open, ^ep}

      assert {:error, %Error{type: :circuit_open}} =
               DSPex.Pool.request(r, pool: pool, circuit_breaker: cb)

      assert {:ok, %{status: 200}} = Task.await(probe)
      assert_receive {:cb, :closed, ^ep}
      assert DSPex.CircuitBreaker.state(ep) == :closed
    end

    test "network errors and timeouts count as failures", %{pool: pool} do
      {:ok, l} = :gen_tcp.listen(0, ip: {127, 0, 0, 1})
      {:ok, port} = :inet.port(l)
      :gen_tcp.close(l)
      url = "http://127.0.0.1:#{port}/"
      cb = [threshold: 2, cooldown_ms: 60_000]
      r = %{url: url, method: "GET", max_retries: 0}

      assert {:error, %Error{type: :network}} =
               DSPex.Pool.request(r, pool: pool, circuit_breaker: cb)

      assert {:error, %Error{type: :network}} =
               DSPex.Pool.request(r, pool: pool, circuit_breaker: cb)

      assert {:error, %Error{type: :circuit_open}} =
               DSPex.Pool.request(r, pool: pool, circuit_breaker: cb)

      DSPex.CircuitBreaker.reset(DSPex.CircuitBreaker.endpoint(url))
    end
  end

  describe "port SIGKILL with 500 calls in flight" do
    @tag timeout: 120_000
    test "retry_on_port_exit: every call succeeds on another worker within its deadline", %{
      srv: srv,
      pool: pool
    } do
      run_sigkill(srv, pool, true)
    end

    test "retry_on_port_exit: false: calls on the killed port fail at once with :port_exited", %{
      srv: srv,
      pool: pool
    } do
      run_sigkill(srv, pool, false)
    end
  end

  defp run_sigkill(srv, pool, retry?) do
    parent = self()
    tid = "exit-#{retry?}-#{inspect(pool)}"

    DSPex.Telemetry.attach(
      tid,
      [:dspex, :port, :exit],
      fn _, m, meta, _ -> send(parent, {:port_exit, m, meta}) end,
      nil
    )

    on_exit(fn -> DSPex.Telemetry.detach(tid) end)

    LS.set_route(srv, "/hold", %{delay_ms: 3_000, body: "held"})
    deadline_ms = 15_000

    tasks =
      for _ <- 1..500 do
        Task.async(fn ->
          t0 = System.monotonic_time(:millisecond)

          res =
            DSPex.Pool.request(req(srv, "/hold"),
              pool: pool,
              timeout: deadline_ms,
              retry_on_port_exit: retry?,
              circuit_breaker: false
            )

          {res, System.monotonic_time(:millisecond) - t0}
        end)
      end

    Wait.until(fn -> DSPex.Pool.stats(pool).in_flight == 500 end, 10_000)
    victim = Enum.max_by(DSPex.Pool.stats(pool).workers, & &1.in_flight)
    assert victim.in_flight > 0
    System.cmd("kill", ["-9", Integer.to_string(victim.os_pid)])
    assert_receive {:port_exit, %{in_flight: killed}, %{pool: ^pool, exit_status: 137}}, 5_000

    results = Task.await_many(tasks, deadline_ms + 2_000)
    assert length(results) == 500
    for {_res, elapsed} <- results, do: assert(elapsed <= deadline_ms + 50)

    oks = Enum.count(results, &match?({{:ok, %{status: 200, body: "held"}}, _}, &1))
    exited = Enum.count(results, &match?({{:error, %Error{type: :port_exited}}, _}, &1))

    if retry? do
      assert oks == 500
    else
      assert exited == killed
      assert oks == 500 - killed
      # those failed at once, not at their deadline nor after the held response
      for {{:error, %Error{type: :port_exited}}, elapsed} <- results, do: assert(elapsed < 3_000)
    end

    Wait.until(fn -> Enum.all?(DSPex.Pool.stats(pool).workers, &(&1.status == :up)) end)
    assert DSPex.Pool.stats(pool).port_exits == 1
    assert :ok = DSPex.Pool.ping(pool)
  end
end
