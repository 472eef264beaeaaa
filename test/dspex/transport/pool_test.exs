defmodule DSPex.PoolTest do
  use ExUnit.Case, async: true

  alias DSPex.Test.Wait

  alias DSPex.Error
  alias DSPex.Test.LoopbackServer, as: LS

  @moduletag :capture_log

  setup do
    {:ok, srv} =
      LS.start_link(
        routes: %{
          "/ok" => %{body: "ok"},
          "/hold" => %{delay_ms: 400, body: "held"},
          "/hold_long" => %{delay_ms: 2_000, body: "held"},
          "/echo" => fn r -> %{body: r.body} end
        }
      )

    %{srv: srv}
  end

  defp new_pool(opts) do
    name = :"pool_test_#{System.unique_integer([:positive])}"
    start_supervised!({DSPex.Pool, [name: name] ++ opts}, id: name)
    name
  end

  defp get(srv, path), do: %{url: LS.url(srv, path), method: "GET"}

  test "the default pool runs under the application", %{srv: srv} do
    assert %{name: DSPex.Pool, size: size, workers: workers} = DSPex.Pool.stats()
    assert size == System.schedulers_online()
    assert length(workers) == size
    assert :ok = DSPex.Pool.ping()
    assert {:ok, %{status: 200, body: "ok"}} = DSPex.Pool.request(get(srv, "/ok"))
    assert %{status: 200} = DSPex.Pool.request!(get(srv, "/ok"))
  end

  test "child_spec and stats of a custom pool", %{srv: srv} do
    assert %{id: {DSPex.Pool, :x}, type: :supervisor} = DSPex.Pool.child_spec(name: :x, size: 3)
    pool = new_pool(size: 3, max_in_flight: 8)
    for _ <- 1..9, do: {:ok, _} = DSPex.Pool.request(get(srv, "/ok"), pool: pool)
    stats = DSPex.Pool.stats(pool)
    assert %{size: 3, max_in_flight: 8, in_flight: 0, queued: 0, requests: 9, restarts: 0} = stats
    assert Enum.all?(stats.workers, &(&1.status == :up and is_integer(&1.os_pid)))
  end

  test "requests spread over workers", %{srv: srv} do
    pool = new_pool(size: 3)

    tasks =
      for _ <- 1..60, do: Task.async(fn -> DSPex.Pool.request(get(srv, "/hold"), pool: pool) end)

    Task.await_many(tasks, 10_000)
    per_worker = Enum.map(DSPex.Pool.stats(pool).workers, & &1.requests)
    assert Enum.sum(per_worker) == 60
    assert Enum.all?(per_worker, &(&1 > 0))
  end

  test "session affinity sends a session's requests to one worker", %{srv: srv} do
    pool = new_pool(size: 4)

    for _ <- 1..20 do
      {:ok, _} = DSPex.Pool.request(get(srv, "/ok"), pool: pool, session: "user-42")
    end

    counts = Enum.map(DSPex.Pool.stats(pool).workers, & &1.requests)
    assert Enum.sort(counts) == [0, 0, 0, 20]
    worker = DSPex.Pool.session_worker("user-42", pool)
    assert DSPex.Port.stats(worker).requests == 20
  end

  test "requests beyond max_in_flight queue, report stats and queue telemetry", %{srv: srv} do
    pool = new_pool(size: 1, max_in_flight: 2)
    parent = self()
    id = "queue-#{pool}"

    DSPex.Telemetry.attach(
      id,
      [:dspex, :pool, :queue],
      fn _, m, meta, _ -> send(parent, {:queue, m, meta}) end,
      nil
    )

    on_exit(fn -> DSPex.Telemetry.detach(id) end)

    tasks =
      for _ <- 1..6,
          do: Task.async(fn -> DSPex.Pool.request(get(srv, "/hold_long"), pool: pool) end)

    Wait.until(fn -> match?(%{in_flight: 2, queued: 4}, DSPex.Pool.stats(pool)) end)
    results = Task.await_many(tasks, 10_000)
    assert Enum.all?(results, &match?({:ok, %{body: "held"}}, &1))
    assert_receive {:queue, %{queue_length: _, wait_time: wait}, %{pool: ^pool, worker: 1}}
    assert wait > 0
    assert %{in_flight: 0, queued: 0} = DSPex.Pool.stats(pool)
  end

  test "a queued request still honours its deadline", %{srv: srv} do
    pool = new_pool(size: 1, max_in_flight: 1)
    t = Task.async(fn -> DSPex.Pool.request(get(srv, "/hold_long"), pool: pool) end)
    Wait.until(fn -> DSPex.Pool.stats(pool).in_flight == 1 end)

    assert {:error, %Error{type: :timeout}} =
             DSPex.Pool.request(get(srv, "/ok"), pool: pool, timeout: 100)

    assert {:ok, _} = Task.await(t)
    Wait.until(fn -> match?(%{queued: 0, in_flight: 0}, DSPex.Pool.stats(pool)) end)
  end

  test "a full queue answers :overloaded", %{srv: srv} do
    pool = new_pool(size: 1, max_in_flight: 1, max_queue: 1)
    t1 = Task.async(fn -> DSPex.Pool.request(get(srv, "/hold_long"), pool: pool) end)
    Wait.until(fn -> DSPex.Pool.stats(pool).in_flight == 1 end)
    t2 = Task.async(fn -> DSPex.Pool.request(get(srv, "/hold_long"), pool: pool) end)
    Wait.until(fn -> DSPex.Pool.stats(pool).queued == 1 end)
    assert {:error, %Error{type: :overloaded}} = DSPex.Pool.request(get(srv, "/ok"), pool: pool)
    assert [{:ok, _}, {:ok, _}] = Task.await_many([t1, t2])
  end

  test "no caller waits past its deadline even when the port hangs", %{srv: srv} do
    pool = new_pool(size: 1)
    [%{os_pid: os_pid}] = DSPex.Pool.stats(pool).workers
    # never leave a stopped process behind, whatever happens to this test
    on_exit(fn -> System.cmd("kill", ["-CONT", "#{os_pid}"], stderr_to_stdout: true) end)
    {_, 0} = System.cmd("kill", ["-STOP", "#{os_pid}"])

    try do
      t0 = System.monotonic_time(:millisecond)

      assert {:error, %Error{type: :timeout}} =
               DSPex.Pool.request(get(srv, "/ok"), pool: pool, timeout: 200)

      assert System.monotonic_time(:millisecond) - t0 < 200 + 50
    after
      System.cmd("kill", ["-CONT", "#{os_pid}"])
    end

    assert {:ok, _} = DSPex.Pool.request(get(srv, "/ok"), pool: pool)
  end

  test "a wedged port is detected, killed and restarted", %{srv: srv} do
    pool = new_pool(size: 1, health_timeout_ms: 200, restart_backoff_ms: {10, 100})
    [%{os_pid: os_pid}] = DSPex.Pool.stats(pool).workers
    # never leave a stopped process behind, whatever happens to this test
    on_exit(fn -> System.cmd("kill", ["-CONT", "#{os_pid}"], stderr_to_stdout: true) end)
    {_, 0} = System.cmd("kill", ["-STOP", "#{os_pid}"])

    assert {:error, %Error{type: :timeout}} =
             DSPex.Pool.request(get(srv, "/ok"), pool: pool, timeout: 100, circuit_breaker: false)

    Wait.until(fn -> match?([%{status: :up, restarts: 1}], DSPex.Pool.stats(pool).workers) end)
    assert [%{os_pid: new_pid}] = DSPex.Pool.stats(pool).workers
    assert new_pid != os_pid
    assert {:ok, %{body: "ok"}} = DSPex.Pool.request(get(srv, "/ok"), pool: pool)
  end

  test "a port that dies is restarted with telemetry and counted", %{srv: srv} do
    pool = new_pool(size: 1, restart_backoff_ms: {10, 100})
    parent = self()
    id = "restart-#{pool}"

    DSPex.Telemetry.attach_many(
      id,
      [[:dspex, :port, :exit], [:dspex, :port, :start]],
      fn e, m, meta, _ ->
        if meta.pool == pool, do: send(parent, {List.last(e), m, meta})
      end,
      nil
    )

    on_exit(fn -> DSPex.Telemetry.detach(id) end)
    [%{os_pid: os_pid}] = DSPex.Pool.stats(pool).workers
    System.cmd("kill", ["-9", "#{os_pid}"])
    assert_receive {:exit, %{in_flight: 0}, %{exit_status: 137, os_pid: ^os_pid}}, 5_000
    assert_receive {:start, %{restarts: 1}, %{os_pid: new_pid}}, 5_000
    assert new_pid != os_pid
    assert {:ok, _} = DSPex.Pool.request(get(srv, "/ok"), pool: pool)
    assert %{restarts: 1, port_exits: 1} = DSPex.Pool.stats(pool)
  end

  test "a missing port binary keeps retrying without crashing the pool", %{srv: _srv} do
    pool = new_pool(size: 1, port_path: "/nonexistent/dspex_port", restart_backoff_ms: {10, 50})
    assert [%{status: :down}] = DSPex.Pool.stats(pool).workers

    assert {:error, %Error{type: :timeout}} =
             DSPex.Pool.request(%{url: "http://127.0.0.1:1/"}, pool: pool, timeout: 100)
  end

  test "badly shaped requests raise ArgumentError before dispatch, without quoting them" do
    assert_raise ArgumentError, ~r/:url/, fn -> DSPex.Pool.request(%{method: "GET"}) end

    assert_raise ArgumentError, ~r/headers/, fn ->
      DSPex.Pool.request(%{url: "http://x/", headers: [:bad]})
    end

    e =
      assert_raise ArgumentError, fn ->
        DSPex.Pool.request(%{url: "http://x/", headers: [{"authorization", ["sk-secret"]}]})
      end

    refute e.message =~ "sk-secret"
  end

  test "a URL that is not http(s) is a :bad_request from the port" do
    assert {:error, %Error{type: :bad_request, message: msg}} =
             DSPex.Pool.request(%{url: "ftp://x"})

    assert msg =~ "http://"
  end

  test "iodata bodies and atom methods are normalized", %{srv: srv} do
    assert {:ok, %{body: "abc"}} =
             DSPex.Pool.request(%{
               url: LS.url(srv, "/echo"),
               method: :post,
               body: ["a", [?b], "c"]
             })
  end

  test "unknown options raise ArgumentError listing the valid ones" do
    e = assert_raise ArgumentError, fn -> DSPex.Pool.start_link(name: :x, sise: 2) end
    assert e.message =~ ":sise"
    assert e.message =~ ":max_in_flight"
    assert_raise ArgumentError, ~r/:size/, fn -> DSPex.Pool.child_spec(name: :x, bogus: 1) end

    for call <- [&DSPex.Pool.request/2, &DSPex.Pool.stream/2] do
      e = assert_raise ArgumentError, fn -> call.(%{url: "http://x/"}, timout: 5) end
      assert e.message =~ ":timout"
      assert e.message =~ ":timeout"
    end

    assert_raise ArgumentError, ~r/:retry_on_port_exit/, fn ->
      DSPex.Pool.stream_events(%{url: "http://x/"}, to: self())
    end
  end

  test "an unknown pool is an error" do
    assert {:error, %Error{type: :port_exited}} =
             DSPex.Pool.request(%{url: "http://x/"}, pool: :no_such_pool)
  end
end
