defmodule DSPex.Port do
  @moduledoc """
  A GenServer owning one `priv/dspex_port` process (libuv + libcurl multi).

  The port speaks the protocol in `docs/port-protocol.md`: `{packet, 4}` frames of
  external term format, one request id per HTTP request. This process keeps the map of
  in-flight requests (id → caller), monitors callers (a caller that dies has its
  requests cancelled in the port), enforces every caller's deadline with its own timer
  (so nobody waits on a hung port), queues requests beyond `max_in_flight`, and
  restarts the port with exponential backoff when it exits. When the port dies, every
  in-flight request is answered at once: `{:error, %DSPex.Error{type: :port_exited}}`,
  or `{:retry, :port_exited}` for callers that asked for a re-dispatch (see
  `DSPex.Pool`).

  Use `DSPex.Pool` rather than this module directly; it picks workers, retries on port
  exit and applies the circuit breaker. A standalone worker works too:

      {:ok, w} = DSPex.Port.start_link([])
      {:ok, %{status: 200}} = DSPex.Port.request(w, %{url: "http://127.0.0.1:4000/", method: "GET"})

  Options are listed at `start_link/1`; unknown options raise `ArgumentError` listing
  the valid ones.

  ## Flow control

  A stream's events are acknowledged to the port (`{:ack, id, bytes}`) once handed to
  the receiving process, in steps of 256 KiB; the port pauses a transfer that has 1 MiB
  unacknowledged. An ack is held back while the receiver has more than 500 messages
  queued, so a receiver that cannot keep up slows its own stream (TCP then slows the
  server) instead of growing its mailbox, this worker's, or the port's memory.

  ## Logs and crash reports

  The port's diagnostics arrive as `{:log, level, message}` frames and go to `Logger`
  (so `capture_log` sees them). `format_status/1` passes state, last message and exit
  reason through `DSPex.Transport.Redact`: a crash report never shows a request's
  headers (API keys), body (prompts) or a response body, and a crash inside a callback
  stops the worker with a redacted reason (the supervisor logs the reason too).
  """
  use GenServer
  require Logger

  alias DSPex.CircuitBreaker
  alias DSPex.Transport.Redact

  # Atoms the port sends; listed so they exist before binary_to_term(_, [:safe]).
  @port_atoms [:pong, :response, :stream_start, :sse, :stream_end, :error, :attempts, :elapsed_us] ++
                [:retry_after_ms, :timeout, :connect, :first_byte, :idle, :total, :network] ++
                [:cancelled, :bad_request, :response_too_large, :log, :warning, :info, nil]
  @down_load 1_000_000_000
  @timer_grace_ms 100

  # Flow control (the port's side: DP_STREAM_WINDOW in c_src/port/port.h, 1 MiB).
  # Acking every quarter window keeps the port from ever waiting on an ack that is not
  # on its way; 500 queued messages (~8 MiB of 16 KiB frames) is where a receiver is
  # taken to be falling behind, far above what a live consumer ever has queued.
  @ack_bytes 262_144
  @consumer_max_queue 500
  @ack_recheck_ms 5

  @options DSPex.Options.schema!(
             name: [type: :any, doc: "The registered name."],
             pool: [type: :any, doc: "Set by `DSPex.Pool`: the pool's name."],
             index: [type: :pos_integer, default: 1, doc: "Set by `DSPex.Pool`: 1-based index."],
             load: [type: :any, doc: "Set by `DSPex.Pool`: the `:atomics` load table."],
             max_in_flight: [
               type: :pos_integer,
               default: 256,
               doc:
                 "Requests sent to the port at once; more wait in this worker's queue until their deadline."
             ],
             max_queue: [
               type: :non_neg_integer,
               default: 10_000,
               doc: "Beyond it requests fail with `:overloaded`."
             ],
             restart_backoff_ms: [
               type: :any,
               default: {50, 5_000},
               doc: "`{min, max}` port restart backoff bounds in ms."
             ],
             health_timeout_ms: [
               type: :pos_integer,
               default: 2_000,
               doc:
                 "When the port misses a deadline it enforces itself, it is pinged; no pong within this time and it is killed and restarted."
             ],
             port_path: [
               type: {:or, [:string, nil]},
               doc:
                 "The executable (default: `$DSPEX_PORT_PATH` if set, else `priv/dspex_port` of `:dspex`; the variable is handy to run a sanitizer build)."
             ]
           )
  @request_options DSPex.Options.schema!(
                     timeout: [type: :timeout, default: 600_000, doc: "Deadline in ms."],
                     retry_on_port_exit: [
                       type: :boolean,
                       default: false,
                       doc:
                         "Answer `{:retry, :port_exited}` instead of an error when the port dies (`DSPex.Pool` re-dispatches)."
                     ]
                   )

  @type request_map :: %{required(:url) => binary, optional(atom) => term}
  @type response :: %{
          status: non_neg_integer,
          headers: [{binary, binary}],
          body: binary,
          info: map
        }
  @type worker_opts :: %{
          required(:deadline) => integer,
          optional(:retry_on_port_exit) => boolean,
          optional(:endpoint) => binary | nil,
          optional(:cb) => keyword | nil
        }

  @doc false
  def port_atoms, do: @port_atoms

  @doc """
  Starts a worker (and its port) linked to the caller.

  ## Options

  #{DSPex.Options.docs(@options)}

  ## Examples

      {:ok, pid} = DSPex.Port.start_link(max_in_flight: 64)
  """
  @spec start_link(keyword) :: GenServer.on_start()
  def start_link(opts \\ []) do
    opts = DSPex.Options.validate!(opts, @options, "DSPex.Port.start_link/1")

    case Keyword.get(opts, :name) do
      nil -> GenServer.start_link(__MODULE__, opts)
      name -> GenServer.start_link(__MODULE__, opts, name: name)
    end
  end

  @doc """
  Sends one HTTP request through this worker and waits for the final response.

  Returns `{:ok, response}`,
  `{:error, %DSPex.Error{}}`, or `{:retry, :port_exited}` when the port died and
  `retry_on_port_exit: true` was given.

  ## Options

  #{DSPex.Options.docs(@request_options)}

  ## Examples

      {:ok, resp} = DSPex.Port.request(worker, %{url: url, method: "GET"}, timeout: 5_000)
      resp.status
  """
  @spec request(GenServer.server(), request_map, keyword) ::
          {:ok, response} | {:error, DSPex.Error.t()} | {:retry, :port_exited}
  def request(server, req, opts \\ []) do
    opts = DSPex.Options.validate!(opts, @request_options, "DSPex.Port.request/3")
    deadline = now_ms() + opts[:timeout]

    wopts = %{
      deadline: deadline,
      retry_on_port_exit: opts[:retry_on_port_exit],
      endpoint: nil,
      cb: nil
    }

    call_request(server, req, wopts)
  end

  @doc false
  # Used by DSPex.Pool: `req` is already normalized, `wopts` carries the deadline.
  @spec call_request(GenServer.server(), request_map, worker_opts) ::
          {:ok, response} | {:error, DSPex.Error.t()} | {:retry, atom}
  def call_request(server, req, %{deadline: deadline} = wopts) do
    remaining = deadline - now_ms()

    if remaining <= 0 do
      {:error, DSPex.Error.new(:timeout, "deadline reached before dispatch", %{timeout: :total})}
    else
      try do
        GenServer.call(server, {:request, req, wopts}, remaining)
      catch
        :exit, {:timeout, _} ->
          {:error,
           DSPex.Error.new(:timeout, "no response within #{remaining} ms", %{timeout: :total})}

        :exit, {:noproc, _} ->
          {:retry, :noproc}

        :exit, {reason, _} when reason in [:normal, :shutdown] ->
          {:retry, :port_exited}

        :exit, {{:shutdown, _}, _} ->
          {:retry, :port_exited}

        :exit, {reason, _} ->
          {:error, DSPex.Error.new(:port_exited, "worker exited (#{exit_kind(reason)})", %{})}
      end
    end
  end

  # An exit reason fit for a message: the exit's term can hold the call (the request).
  defp exit_kind(reason) when is_atom(reason), do: inspect(reason)
  defp exit_kind({:shutdown, _}), do: "shutdown"
  defp exit_kind(_), do: "crashed"

  @doc false
  # Starts a streamed request; messages go to `to` tagged with `ref`.
  @spec call_stream(GenServer.server(), request_map, worker_opts, pid, reference) ::
          {:ok, non_neg_integer} | {:error, DSPex.Error.t()}
  def call_stream(server, req, wopts, to, ref) do
    wait = min(max(wopts.deadline - now_ms(), 1), 5_000)

    try do
      GenServer.call(server, {:stream, req, wopts, to, ref}, wait)
    catch
      :exit, {:noproc, _} ->
        {:error, DSPex.Error.new(:port_exited, "worker is not running", %{reason: :noproc})}

      :exit, {:timeout, _} ->
        {:error,
         DSPex.Error.new(:timeout, "worker did not accept the stream within #{wait} ms", %{
           timeout: :total
         })}

      :exit, {reason, _} ->
        {:error, DSPex.Error.new(:port_exited, "worker unavailable (#{exit_kind(reason)})", %{})}
    end
  end

  @doc false
  @spec cancel(GenServer.server(), non_neg_integer) :: :ok
  def cancel(server, id) do
    GenServer.call(server, {:cancel, id}, 5_000)
  catch
    :exit, _ -> :ok
  end

  @doc """
  Round trip through the port. Returns `:ok` or `{:error, %DSPex.Error{}}`.

  ## Examples

      :ok = DSPex.Port.ping(worker)
  """
  @spec ping(GenServer.server(), timeout) :: :ok | {:error, DSPex.Error.t()}
  def ping(server, timeout \\ 5_000) do
    GenServer.call(server, {:ping, now_ms() + timeout}, timeout + @timer_grace_ms * 2)
  catch
    :exit, {:timeout, _} ->
      {:error, DSPex.Error.new(:timeout, "no pong within #{timeout} ms", %{})}

    :exit, {reason, _} ->
      {:error, DSPex.Error.new(:port_exited, "ping failed (#{exit_kind(reason)})", %{})}
  end

  @doc """
  The OS pid of the current port process (`nil` while it is restarting).

  ## Examples

      pid = DSPex.Port.os_pid(worker)
  """
  @spec os_pid(GenServer.server()) :: non_neg_integer | nil
  def os_pid(server), do: GenServer.call(server, :os_pid)

  @doc """
  Counters of this worker: `%{index, pid, os_pid, status, in_flight, queued, restarts,
  requests, port_exits, queue_timeouts}`.

  ## Examples

      %{status: :up} = DSPex.Port.stats(worker)
  """
  @spec stats(GenServer.server()) :: map
  def stats(server), do: GenServer.call(server, :stats)

  # ------------------------------------------------------------------ server

  @impl true
  def init(opts) do
    Process.flag(:trap_exit, true)
    opts = DSPex.Options.validate!(opts, @options, "DSPex.Port.start_link/1")
    load = opts[:load]
    index = opts[:index]
    if load, do: :atomics.put(load, index, 0)
    {bmin, bmax} = opts[:restart_backoff_ms]

    state = %{
      pool: Keyword.get(opts, :pool),
      index: index,
      load: load,
      down_offset: false,
      max_in_flight: opts[:max_in_flight],
      max_queue: opts[:max_queue],
      port_path: opts[:port_path] || default_port_path(),
      backoff: {bmin, bmax},
      next_backoff: bmin,
      port: nil,
      os_pid: nil,
      up_since: nil,
      status: :down,
      next_id: 1,
      pending: %{},
      monitors: %{},
      queue: :queue.new(),
      queued: %{},
      next_qid: 1,
      restarts: 0,
      requests: 0,
      port_exits: 0,
      queue_timeouts: 0,
      health: nil,
      health_timeout_ms: opts[:health_timeout_ms]
    }

    {:ok, open_port(state)}
  end

  @impl true
  def handle_call(msg, from, state), do: guarded(state, fn -> do_call(msg, from, state) end)

  @impl true
  def handle_info(msg, state), do: guarded(state, fn -> do_info(msg, state) end)

  # A crash inside a callback stops the worker with a redacted reason: the raw one
  # (an exception's stack frame can hold the state, a badmatch the request) would be
  # printed by the supervisor and linked processes, which format_status/1 cannot reach.
  defp guarded(state, fun) do
    fun.()
  catch
    :error, reason ->
      {:stop,
       {Redact.term(Exception.normalize(:error, reason, __STACKTRACE__)),
        Redact.stacktrace(__STACKTRACE__)}, state}

    kind, reason ->
      {:stop, {kind, Redact.term(reason)}, state}
  end

  @doc false
  # OTP 25's gen_server calls this for crash reports and :sys.get_status/1.
  def format_status(status) do
    Map.new(status, fn
      {:reason, {e, st}} when is_list(st) -> {:reason, {Redact.term(e), Redact.stacktrace(st)}}
      {key, value} -> {key, Redact.term(value)}
    end)
  end

  defp do_call({:request, req, wopts}, {pid, _} = from, state) do
    # a call gets one final reply; streaming is call_stream/5's business
    item = %{kind: :call, from: from, pid: pid, req: Map.delete(req, :stream), wopts: wopts}
    {:noreply, admit(item, state)}
  end

  defp do_call({:stream, req, wopts, to, ref}, _from, state) do
    item = %{
      kind: :stream,
      to: to,
      pid: to,
      ref: ref,
      req: Map.put(req, :stream, true),
      wopts: wopts
    }

    if map_size(state.queued) >= state.max_queue do
      {:reply, {:error, overloaded()}, release(state)}
    else
      {id, state} = reserve_id(state)
      {:reply, {:ok, id}, admit(Map.put(item, :id, id), state)}
    end
  end

  defp do_call({:cancel, id}, _from, state) do
    state =
      case Map.fetch(state.pending, id) do
        {:ok, entry} ->
          port_send(state, {:cancel, id})
          complete(state, id, entry)

        :error ->
          drop_queued_id(state, id)
      end

    {:reply, :ok, state}
  end

  defp do_call({:ping, deadline}, from, %{status: :up} = state) do
    {id, state} = reserve_id(state)
    port_send(state, {:ping, id})
    timer = :erlang.start_timer(deadline, self(), {:deadline, id}, abs: true)
    entry = %{kind: :ping, from: from, timer: timer, mon: nil, wopts: %{}}
    {:noreply, %{state | pending: Map.put(state.pending, id, entry)}}
  end

  defp do_call({:ping, _}, _from, state) do
    {:reply, {:error, DSPex.Error.new(:port_exited, "port is restarting", %{})}, state}
  end

  defp do_call(:os_pid, _from, state), do: {:reply, state.os_pid, state}

  defp do_call(:stats, _from, state) do
    stats = %{
      index: state.index,
      pid: self(),
      os_pid: state.os_pid,
      status: state.status,
      in_flight: map_size(state.pending),
      queued: map_size(state.queued),
      restarts: state.restarts,
      requests: state.requests,
      port_exits: state.port_exits,
      queue_timeouts: state.queue_timeouts
    }

    {:reply, stats, state}
  end

  defp do_call(_unknown, _from, state) do
    {:reply, {:error, DSPex.Error.new(:bad_request, "unknown call to DSPex.Port")}, state}
  end

  defp do_info({port, {:data, bin}}, %{port: port} = state) do
    state =
      case :erlang.binary_to_term(bin, [:safe]) do
        {:sse, id, events} -> handle_sse(state, id, events, byte_size(bin))
        reply -> handle_reply(reply, state)
      end

    {:noreply, state}
  end

  defp do_info({port, {:exit_status, status}}, %{port: port} = state) do
    {:noreply, port_down(state, status)}
  end

  defp do_info({:timeout, tref, {:deadline, id}}, state) do
    state =
      case Map.fetch(state.pending, id) do
        {:ok, %{timer: ^tref, kind: :ping} = entry} ->
          deliver(entry, {:error, DSPex.Error.new(:timeout, "no pong from the port", %{})})
          complete(state, id, entry)

        {:ok, %{timer: ^tref} = entry} ->
          # The port enforces this deadline itself, a little earlier: getting here means
          # it did not answer in time. Cancel, answer, and check the port is not wedged.
          port_send(state, {:cancel, id})
          err = DSPex.Error.new(:timeout, "deadline exceeded", %{timeout: :total})
          record_cb(entry, :failure)
          deliver(entry, {:error, err})
          state |> complete(id, entry) |> health_check()

        _ ->
          state
      end

    {:noreply, state}
  end

  defp do_info({:timeout, _tref, {:health, id}}, %{health: {id, _}} = state) do
    Logger.error(
      "dspex_port (worker #{state.index}, os pid #{inspect(state.os_pid)}) did not answer a ping " <>
        "within #{state.health_timeout_ms} ms; killing it"
    )

    if state.os_pid,
      do: System.cmd("kill", ["-KILL", Integer.to_string(state.os_pid)], stderr_to_stdout: true)

    # its {:exit_status, 137} then fails the in-flight requests and restarts it
    {:noreply, %{state | health: nil}}
  end

  defp do_info({:timeout, _tref, {:health, _}}, state), do: {:noreply, state}

  defp do_info({:timeout, _tref, {:queue_deadline, qid}}, state) do
    state =
      case Map.pop(state.queued, qid) do
        {nil, _} ->
          state

        {item, queued} ->
          err =
            DSPex.Error.new(:timeout, "deadline reached while queued", %{
              timeout: :total,
              queued: true
            })

          deliver_item(item, {:error, err})
          release(%{state | queued: queued, queue_timeouts: state.queue_timeouts + 1})
      end

    {:noreply, state}
  end

  defp do_info({:DOWN, mref, :process, _pid, _reason}, state) do
    state =
      case Map.pop(state.monitors, mref) do
        {nil, _} ->
          state

        {id, monitors} ->
          state = %{state | monitors: monitors}

          case Map.fetch(state.pending, id) do
            {:ok, entry} ->
              port_send(state, {:cancel, id})
              complete(%{state | monitors: Map.put(monitors, mref, id)}, id, entry)

            :error ->
              state
          end
      end

    {:noreply, state}
  end

  defp do_info(:restart_port, state), do: {:noreply, open_port(state)}

  defp do_info({:EXIT, port, _reason}, %{port: port} = state) do
    # exit_status normally arrives first; this covers a port closed without one
    {:noreply, port_down(state, nil)}
  end

  defp do_info({:EXIT, port, _reason}, state) when is_port(port), do: {:noreply, state}

  defp do_info({:EXIT, _other, reason}, state) when reason in [:normal, :shutdown] do
    {:noreply, state}
  end

  defp do_info({:EXIT, _other, reason}, state), do: {:stop, Redact.term(reason), state}

  defp do_info({:ack_check, id}, state) do
    state =
      case Map.fetch(state.pending, id) do
        {:ok, entry} -> maybe_ack(state, id, %{entry | ack_wait: false})
        :error -> state
      end

    {:noreply, state}
  end

  defp do_info(_msg, state), do: {:noreply, state}

  @impl true
  def terminate(_reason, state) do
    if state.port do
      try do
        Port.close(state.port)
      catch
        _, _ -> :ok
      end
    end

    # Unregister first: a caller told to retry must not reach this process by name again.
    case Process.info(self(), :registered_name) do
      {:registered_name, name} when is_atom(name) -> Process.unregister(name)
      _ -> :ok
    end

    fail_all(state, fn _entry -> :port_exited end)
    Enum.each(state.queued, fn {_qid, item} -> deliver_item(item, stopped(item.wopts)) end)
    answer_mailbox()
    :ok
  end

  # Queued requests never reached the port: callers that allow it are re-dispatched.
  defp stopped(%{retry_on_port_exit: true}), do: {:retry, :port_exited}
  defp stopped(_), do: {:error, DSPex.Error.new(:port_exited, "the worker stopped", %{})}

  # Requests still unread in the mailbox are answered now: their callers need not wait
  # for the exit signal, and the crash report's list of unread messages (which
  # format_status/1 does not cover) holds no request.
  defp answer_mailbox do
    receive do
      {:"$gen_call", from, {:request, _req, wopts}} ->
        GenServer.reply(from, stopped(wopts))
        answer_mailbox()

      {:"$gen_call", from, {:stream, _req, _wopts, _to, _ref}} ->
        GenServer.reply(from, stopped(%{}))
        answer_mailbox()
    after
      0 -> :ok
    end
  end

  # One ping at a time; a port that does not answer within health_timeout_ms is killed.
  defp health_check(%{health: nil, status: :up} = state) do
    {id, state} = reserve_id(state)
    port_send(state, {:ping, id})
    tref = :erlang.start_timer(state.health_timeout_ms, self(), {:health, id})
    %{state | health: {id, tref}}
  end

  defp health_check(state), do: state

  # ------------------------------------------------------------------ port lifecycle

  defp default_port_path do
    case System.get_env("DSPEX_PORT_PATH") do
      nil -> priv_port_path()
      "" -> priv_port_path()
      path -> path
    end
  end

  defp priv_port_path do
    case :code.priv_dir(:dspex) do
      {:error, _} -> Path.expand("priv/dspex_port")
      dir -> Path.join(to_string(dir), "dspex_port")
    end
  end

  defp open_port(state) do
    port =
      Port.open({:spawn_executable, state.port_path}, [
        :binary,
        {:packet, 4},
        :exit_status,
        :use_stdio,
        :hide
      ])

    os_pid =
      case Port.info(port, :os_pid) do
        {:os_pid, p} -> p
        _ -> nil
      end

    DSPex.Telemetry.execute([:dspex, :port, :start], %{restarts: state.restarts}, %{
      pool: state.pool,
      worker: state.index,
      os_pid: os_pid
    })

    state = set_status(%{state | port: port, os_pid: os_pid, up_since: now_ms()}, :up)
    drain_queue(state)
  rescue
    e ->
      Logger.error("DSPex.Port could not start #{state.port_path}: #{Exception.message(e)}")
      schedule_restart(set_status(%{state | port: nil, os_pid: nil}, :down))
  end

  defp port_down(state, exit_status) do
    in_flight = map_size(state.pending)

    DSPex.Telemetry.execute([:dspex, :port, :exit], %{in_flight: in_flight}, %{
      pool: state.pool,
      worker: state.index,
      os_pid: state.os_pid,
      exit_status: exit_status
    })

    if exit_status not in [0, nil] do
      Logger.warning(
        "dspex_port (worker #{state.index}, os pid #{inspect(state.os_pid)}) exited with status " <>
          "#{exit_status}; #{in_flight} request(s) in flight"
      )
    end

    state =
      fail_all(state, fn
        %{kind: :call, wopts: %{retry_on_port_exit: true}} -> :retry
        _ -> :port_exited
      end)

    state = %{state | port: nil, os_pid: nil, port_exits: state.port_exits + 1, health: nil}
    schedule_restart(set_status(state, :down))
  end

  defp schedule_restart(state) do
    {bmin, bmax} = state.backoff
    lived = if state.up_since, do: now_ms() - state.up_since, else: 0
    delay = if lived > 10_000, do: bmin, else: state.next_backoff
    Process.send_after(self(), :restart_port, delay)
    %{state | next_backoff: min(delay * 2, bmax), restarts: state.restarts + 1, up_since: nil}
  end

  defp fail_all(state, decide) do
    Enum.each(state.pending, fn {_id, entry} ->
      if entry.timer, do: :erlang.cancel_timer(entry.timer, async: true, info: false)
      if entry.mon, do: Process.demonitor(entry.mon, [:flush])

      if entry.kind != :ping, do: release(state)

      case decide.(entry) do
        :retry ->
          deliver(entry, {:retry, :port_exited})

        :port_exited ->
          deliver(entry, {:error, DSPex.Error.new(:port_exited, "the port process exited", %{})})
      end
    end)

    %{state | pending: %{}, monitors: %{}}
  end

  # ------------------------------------------------------------------ admission

  defp reserve_id(state), do: {state.next_id, %{state | next_id: state.next_id + 1}}

  defp admit(item, state) do
    cond do
      state.status == :up and map_size(state.pending) < state.max_in_flight and
          map_size(state.queued) == 0 ->
        dispatch(item, state)

      map_size(state.queued) >= state.max_queue ->
        deliver_item(item, {:error, overloaded()})
        release(state)

      true ->
        enqueue(item, state)
    end
  end

  defp overloaded do
    DSPex.Error.new(:overloaded, "worker queue is full", %{})
  end

  defp enqueue(item, state) do
    qid = state.next_qid
    timer = :erlang.start_timer(item.wopts.deadline, self(), {:queue_deadline, qid}, abs: true)
    item = item |> Map.put(:qtimer, timer) |> Map.put(:enqueued_at, System.monotonic_time())

    %{
      state
      | next_qid: qid + 1,
        queue: :queue.in(qid, state.queue),
        queued: Map.put(state.queued, qid, item)
    }
  end

  defp drain_queue(state) do
    if state.status == :up and map_size(state.pending) < state.max_in_flight do
      case :queue.out(state.queue) do
        {:empty, _} ->
          state

        {{:value, qid}, q} ->
          state = %{state | queue: q}

          case Map.pop(state.queued, qid) do
            {nil, _} ->
              drain_queue(state)

            {item, queued} ->
              :erlang.cancel_timer(item.qtimer, async: true, info: false)
              state = %{state | queued: queued}

              DSPex.Telemetry.execute(
                [:dspex, :pool, :queue],
                %{
                  queue_length: map_size(queued),
                  wait_time: System.monotonic_time() - item.enqueued_at
                },
                %{pool: state.pool, worker: state.index}
              )

              state = if Process.alive?(item.pid), do: dispatch(item, state), else: release(state)
              drain_queue(state)
          end
      end
    else
      state
    end
  end

  defp drop_queued_id(state, id) do
    case Enum.find(state.queued, fn {_qid, item} -> Map.get(item, :id) == id end) do
      {qid, item} ->
        :erlang.cancel_timer(item.qtimer, async: true, info: false)
        release(%{state | queued: Map.delete(state.queued, qid)})

      nil ->
        state
    end
  end

  defp dispatch(item, state) do
    {id, state} =
      case item do
        %{id: id} -> {id, state}
        _ -> reserve_id(state)
      end

    remaining = item.wopts.deadline - now_ms()

    if remaining <= 0 do
      deliver_item(
        item,
        {:error,
         DSPex.Error.new(:timeout, "deadline reached before dispatch", %{timeout: :total})}
      )

      release(state)
    else
      # the port's own deadline fires a little earlier so its structured error wins
      total = if remaining > 20, do: remaining - min(50, div(remaining, 10)), else: remaining
      req = Map.put(item.req, :total_timeout_ms, total)
      port_send(state, {:http, id, req})
      mon = Process.monitor(item.pid)

      timer =
        :erlang.start_timer(item.wopts.deadline + @timer_grace_ms, self(), {:deadline, id},
          abs: true
        )

      entry =
        item
        |> Map.drop([:req, :qtimer, :enqueued_at])
        |> Map.merge(%{mon: mon, timer: timer, started: false, unacked: 0, ack_wait: false})

      %{
        state
        | pending: Map.put(state.pending, id, entry),
          monitors: Map.put(state.monitors, mon, id),
          requests: state.requests + 1
      }
    end
  end

  defp port_send(%{port: nil}, _term), do: :ok

  defp port_send(%{port: port}, term) do
    Port.command(port, :erlang.term_to_binary(term))
    :ok
  rescue
    ArgumentError -> :ok
  end

  # ------------------------------------------------------------------ replies

  defp handle_reply({:response, id, status, headers, body, info}, state) do
    with_entry(state, id, fn entry ->
      record_cb(entry, if(status >= 500, do: :failure, else: :success))

      case entry.kind do
        :call ->
          deliver(entry, {:ok, %{status: status, headers: headers, body: body, info: info}})

        :stream ->
          deliver(entry, {:response, status, headers, body})

        _ ->
          :ok
      end

      complete(state, id, entry)
    end)
  end

  defp handle_reply({:stream_start, id, status, headers, _info}, state) do
    case Map.fetch(state.pending, id) do
      {:ok, entry} ->
        deliver(entry, {:stream_start, status, headers})
        %{state | pending: Map.put(state.pending, id, %{entry | started: true})}

      :error ->
        state
    end
  end

  defp handle_reply({:log, level, message}, state) when level in [:error, :warning, :info] do
    Logger.log(level, "dspex_port (worker #{state.index}, os pid #{state.os_pid}): #{message}")
    state
  end

  defp handle_reply({:stream_end, id, info}, state) do
    with_entry(state, id, fn entry ->
      record_cb(entry, :success)
      deliver(entry, {:stream_end, info})
      complete(state, id, entry)
    end)
  end

  defp handle_reply({:error, id, type, message, info}, state) do
    with_entry(state, id, fn entry ->
      if type in [:timeout, :network], do: record_cb(entry, :failure)
      details = %{info: info, timeout: Map.get(info, :timeout)}
      deliver(entry, {:error, DSPex.Error.new(type, message, details)})
      complete(state, id, entry)
    end)
  end

  defp handle_reply({:pong, id}, %{health: {id, tref}} = state) do
    :erlang.cancel_timer(tref, async: true, info: false)
    %{state | health: nil}
  end

  defp handle_reply({:pong, id}, state) do
    with_entry(state, id, fn entry ->
      deliver(entry, :ok)
      complete(state, id, entry)
    end)
  end

  defp handle_reply(other, state) do
    tag = if is_tuple(other) and tuple_size(other) > 0, do: elem(other, 0), else: :none
    Logger.warning("DSPex.Port: unexpected frame from the port (tag #{inspect(tag)})")
    state
  end

  # {:sse, id, events}: hand the events over, then give the port credit back (below).
  defp handle_sse(state, id, events, bytes) do
    case Map.fetch(state.pending, id) do
      {:ok, entry} ->
        deliver(entry, {:sse, events})
        maybe_ack(state, id, %{entry | unacked: entry.unacked + bytes})

      :error ->
        state
    end
  end

  # Acks in steps of @ack_bytes, and only while the receiver keeps up; otherwise it is
  # checked again in @ack_recheck_ms (the port has paused the transfer meanwhile).
  defp maybe_ack(state, id, %{unacked: n} = entry) when n >= @ack_bytes do
    cond do
      consumer_keeps_up?(entry[:to]) ->
        port_send(state, {:ack, id, n})
        put_entry(state, id, %{entry | unacked: 0})

      entry.ack_wait ->
        put_entry(state, id, entry)

      true ->
        Process.send_after(self(), {:ack_check, id}, @ack_recheck_ms)
        put_entry(state, id, %{entry | ack_wait: true})
    end
  end

  defp maybe_ack(state, id, entry), do: put_entry(state, id, entry)

  defp put_entry(state, id, entry), do: %{state | pending: Map.put(state.pending, id, entry)}

  defp consumer_keeps_up?(nil), do: true

  defp consumer_keeps_up?(pid) do
    case Process.info(pid, :message_queue_len) do
      {:message_queue_len, n} -> n <= @consumer_max_queue
      nil -> true
    end
  end

  defp with_entry(state, id, fun) do
    case Map.fetch(state.pending, id) do
      {:ok, entry} -> fun.(entry)
      :error -> state
    end
  end

  defp complete(state, id, entry) do
    if entry.timer, do: :erlang.cancel_timer(entry.timer, async: true, info: false)
    monitors = if entry.mon, do: Map.delete(state.monitors, entry.mon), else: state.monitors
    if entry.mon, do: Process.demonitor(entry.mon, [:flush])
    state = %{state | pending: Map.delete(state.pending, id), monitors: monitors}
    state = if entry.kind != :ping, do: release(state), else: state
    if map_size(state.queued) > 0, do: drain_queue(state), else: state
  end

  # Calls get a GenServer reply; streams and pings messages.
  defp deliver(%{kind: :call, from: from}, {:error, _} = msg), do: GenServer.reply(from, msg)
  defp deliver(%{kind: :call, from: from}, {:ok, _} = msg), do: GenServer.reply(from, msg)
  defp deliver(%{kind: :call, from: from}, {:retry, _} = msg), do: GenServer.reply(from, msg)
  defp deliver(%{kind: :ping, from: from}, msg), do: GenServer.reply(from, msg)
  defp deliver(%{kind: :stream, to: to, ref: ref}, msg), do: send(to, {:dspex_http, ref, msg})
  defp deliver(_, _), do: :ok

  defp deliver_item(%{kind: :call, from: from}, msg), do: GenServer.reply(from, msg)

  defp deliver_item(%{kind: :stream, to: to, ref: ref}, msg),
    do: send(to, {:dspex_http, ref, msg})

  defp record_cb(%{wopts: %{cb: cb, endpoint: ep}}, outcome) when is_list(cb) and is_binary(ep) do
    CircuitBreaker.record(ep, outcome, cb)
  end

  defp record_cb(_, _), do: :ok

  # The pool's load counter of this worker: callers add 1 when they pick this worker,
  # the worker subtracts 1 when the item leaves (answered, expired, rejected), and a
  # large offset marks a worker whose port is down.
  defp release(%{load: nil} = state), do: state

  defp release(%{load: load, index: i} = state) do
    :atomics.sub(load, i, 1)
    state
  end

  defp set_status(state, status) do
    state = %{state | status: status}

    case {state.load, status, state.down_offset} do
      {nil, _, _} ->
        state

      {load, :down, false} ->
        :atomics.add(load, state.index, @down_load)
        %{state | down_offset: true}

      {load, :up, true} ->
        :atomics.sub(load, state.index, @down_load)
        %{state | down_offset: false}

      _ ->
        state
    end
  end

  defp now_ms, do: System.monotonic_time(:millisecond)
end
