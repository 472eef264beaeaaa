defmodule DSPex.Transport.RedactionTest do
  # No API key or prompt in any log, crash report or error when a worker holding
  # requests crashes (issue 8, defect 4). Every byte logged is captured twice: Elixir's
  # console output (capture_log) and an Erlang :logger handler of our own, formatted
  # without depth or size limits, so nothing is hidden by truncation.
  use ExUnit.Case, async: false

  import ExUnit.CaptureLog

  alias DSPex.Error
  alias DSPex.Test.LoopbackServer, as: LS
  alias DSPex.Test.Wait

  doctest DSPex.Transport.Redact

  @key "sk-test-SECRET-4242"
  @prompt "PROMPT-what-is-the-capital-of-atlantis"

  # ------------------------------------------------------------------ :logger handler

  @doc false
  def log(event, %{config: %{pid: pid}, formatter: {mod, fconfig}}) do
    send(pid, {:logged, IO.iodata_to_binary(mod.format(event, fconfig))})
  end

  setup do
    handler = :"redaction_test_#{System.unique_integer([:positive])}"

    :ok =
      :logger.add_handler(handler, __MODULE__, %{
        level: :all,
        config: %{pid: self()},
        formatter:
          {:logger_formatter, %{single_line: false, depth: :unlimited, chars_limit: :unlimited}}
      })

    on_exit(fn -> :logger.remove_handler(handler) end)

    {:ok, srv} = LS.start_link(routes: %{"/hold" => %{delay_ms: 3_000, body: @prompt}})
    pool = :"redaction_pool_#{System.unique_integer([:positive])}"
    start_supervised!({DSPex.Pool, name: pool, size: 1, max_in_flight: 1})
    %{srv: srv, pool: pool, worker: DSPex.Pool.session_worker(:any, pool)}
  end

  defp secret_req(srv) do
    %{
      url: LS.url(srv, "/hold") <> "?key=" <> @key,
      method: "POST",
      headers: [{"authorization", "Bearer " <> @key}, {"x-api-key", @key}],
      body: ~s({"messages":[{"role":"user","content":"#{@prompt}"}]})
    }
  end

  # Starts n callers (one in flight, the rest queued) and returns their tasks.
  defp start_callers(srv, pool, n) do
    tasks =
      for _ <- 1..n do
        Task.async(fn -> DSPex.Pool.request(secret_req(srv), pool: pool, timeout: 20_000) end)
      end

    Wait.until(fn ->
      stats = DSPex.Pool.stats(pool)
      stats.in_flight == 1 and stats.queued == n - 1
    end)

    tasks
  end

  defp logged(acc \\ []) do
    receive do
      {:logged, text} -> logged([text | acc])
    after
      500 -> acc |> Enum.reverse() |> Enum.join("\n")
    end
  end

  defp refute_secrets(text, where) do
    refute text =~ @key, "the API key leaked into #{where}:\n#{text}"
    refute text =~ @prompt, "the prompt leaked into #{where}:\n#{text}"
  end

  test "a worker killed by an exit signal with requests queued", %{
    srv: srv,
    pool: pool,
    worker: worker
  } do
    console =
      capture_log(fn ->
        tasks = start_callers(srv, pool, 4)
        Process.exit(Process.whereis(worker), :boom)
        results = Task.await_many(tasks, 30_000)
        for r <- results, do: refute_secrets(inspect(r), "a caller's result")
        # the pool restarts the worker
        Wait.until(fn -> match?(%{workers: [%{status: :up}]}, DSPex.Pool.stats(pool)) end)
        Logger.flush()
      end)

    erlang = logged()
    if System.get_env("SHOW_LOGS"), do: IO.puts(console <> "\n=====\n" <> erlang)
    assert console =~ "boom", "no crash report was captured:\n#{console}"
    assert erlang =~ "boom"
    refute_secrets(console, "the console log")
    refute_secrets(erlang, "the :logger report")
  end

  test "a worker crashing inside a callback with requests queued", %{
    srv: srv,
    pool: pool,
    worker: worker
  } do
    console =
      capture_log(fn ->
        tasks = start_callers(srv, pool, 3)
        # a frame the worker cannot decode (an atom that does not exist) from its own port
        port = :sys.get_state(worker).port
        send(worker, {port, {:data, <<131, 100, 0, 12, "no_such_atom">>}})
        results = Task.await_many(tasks, 30_000)
        for r <- results, do: refute_secrets(inspect(r), "a caller's result")
        Wait.until(fn -> match?(%{workers: [%{status: :up}]}, DSPex.Pool.stats(pool)) end)
        Logger.flush()
      end)

    erlang = logged()
    if System.get_env("SHOW_LOGS"), do: IO.puts(console <> "\n=====\n" <> erlang)
    assert console =~ "ArgumentError", "no crash report was captured:\n#{console}"
    assert erlang =~ "ArgumentError"
    refute_secrets(console, "the console log")
    refute_secrets(erlang, "the :logger report")
  end

  test "a worker crashing with requests still unread in its mailbox", %{
    srv: srv,
    pool: pool,
    worker: worker
  } do
    console =
      capture_log(fn ->
        pid = Process.whereis(worker)
        port = :sys.get_state(worker).port
        :sys.suspend(pid)
        # the crash comes first, the requests wait behind it in the mailbox
        send(pid, {port, {:data, <<131, 100, 0, 12, "no_such_atom">>}})

        tasks =
          for _ <- 1..3 do
            Task.async(fn ->
              DSPex.Pool.request(secret_req(srv), pool: pool, timeout: 20_000)
            end)
          end

        Wait.until(fn -> Process.info(pid, :message_queue_len) == {:message_queue_len, 4} end)
        :sys.resume(pid)
        results = Task.await_many(tasks, 30_000)

        for r <- results do
          # answered at once: re-dispatched (to the restarted worker) or :port_exited
          assert match?({:ok, %{status: 200}}, r) or match?({:error, %Error{}}, r)
          refute_secrets(inspect(r), "a caller's result")
        end

        Wait.until(fn -> match?(%{workers: [%{status: :up}]}, DSPex.Pool.stats(pool)) end)
        Logger.flush()
      end)

    erlang = logged()
    assert erlang =~ "crasher"
    refute_secrets(console, "the console log")
    refute_secrets(erlang, "the :logger report")
  end

  test ":sys.get_status shows a worker's state redacted", %{srv: srv, pool: pool, worker: worker} do
    tasks = start_callers(srv, pool, 2)
    status = inspect(:sys.get_status(worker), limit: :infinity, printable_limit: :infinity)
    assert status =~ "[REDACTED]"
    refute_secrets(status, ":sys.get_status")
    Enum.each(tasks, &Task.shutdown(&1, :brutal_kill))
  end

  test "a stream started while the worker is busy is a :timeout that quotes nothing", %{
    srv: srv,
    pool: pool,
    worker: worker
  } do
    :sys.suspend(worker)

    try do
      assert {:error, %Error{type: :timeout} = e} =
               DSPex.Pool.stream(secret_req(srv), pool: pool, timeout: 300)

      refute_secrets(inspect(e), "the error")
      refute e.message =~ "GenServer"
    after
      :sys.resume(worker)
    end
  end
end
