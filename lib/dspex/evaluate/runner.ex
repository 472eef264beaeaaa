defmodule DSPex.Evaluate.Runner do
  @moduledoc """
  The coordinator of one evaluation: starts every example as a task on a node, collects
  the outcomes, and applies Evaluate's rules for errors, timeouts, stragglers and lost
  nodes. It runs in its own process (started by `DSPex.Evaluate.run/3`), trapping exits,
  with its tasks linked to it: if the caller dies, the coordinator stops every task.

  Rules (all per example, all observable through telemetry):

    * **Capacity** — each node runs at most `max_concurrency` examples at once; a free
      slot goes to the next example in devset order, on the node with the most free
      slots (ties: the order of `nodes:`).
    * **Errors** — an example whose program or metric fails is finished with its error.
      When `max_errors` examples have failed, the coordinator stops every running task
      and the run ends with what finished so far.
    * **Timeout** — an attempt running longer than `timeout` ms is stopped; if it was
      the example's only attempt, the example fails with a `:timeout` error.
    * **Stragglers** — once no example is waiting to start, an example whose only
      attempt has run longer than `straggler_after` gets one more attempt on a free slot
      (another node when one has room). The first attempt to finish wins and the other
      is stopped. `:auto` means 3 × the median duration of the examples finished so far
      and at least 1 s (and nothing before 5 have finished); `:infinity` turns it off.
    * **Lost nodes** — when a node disconnects, its running examples go back to the
      front of the queue and run on the remaining nodes; no finished result is lost.
      If no node is left, the run ends like a cancelled one.
    * **Built-in metrics** — outcomes that carry `{prediction_text, gold}` are scored
      in batches of up to 128 with one `DSPex.Metrics.batch/3` call (at the latest at
      the next 100 ms tick and at the end).

  Telemetry (all in the evaluation span's `telemetry_span_context`):
  `[:dspex, :evaluate, :example]` once per finished example (measurements `duration`
  in native units and `score` — the metric as a number, `failure_score` for a failed
  example; metadata `index`, `node`, `status` `:ok | :error`, `attempts`) and
  `[:dspex, :evaluate, :retry]` when an example gets another attempt (measurement
  `elapsed` of the attempt it replaces; metadata `index`, `node` of that attempt,
  `reason` `:nodedown | :straggler`).
  """

  require Logger

  alias DSPex.Error
  alias DSPex.Evaluate.{Metric, Nodes, Progress, Score, Worker}

  @tick_ms 100
  @batch_size 128
  @min_finished_for_auto 5
  @min_straggler_ms 1_000

  @typedoc "A finished example."
  @type final ::
          {:ok, term, term, node, pos_integer}
          | {:error, Error.t(), binary | nil, node, pos_integer}

  @doc """
  Runs the evaluation described by `cfg` (built by `DSPex.Evaluate`) and returns
  `{status, %{index => final}}` with `status` `:ok`, `:too_many_errors` or `:no_nodes`.
  """
  @spec run(map) :: {:ok | :too_many_errors | :no_nodes, %{non_neg_integer => final}}
  def run(cfg) do
    Process.flag(:trap_exit, true)
    devset = List.to_tuple(cfg.devset)
    n = tuple_size(devset)

    s = %{
      cfg: cfg,
      devset: devset,
      n: n,
      nodes: Map.new(cfg.nodes, &{&1, %{busy: 0, up: true}}),
      order: cfg.nodes,
      pending: :queue.from_list(Enum.to_list(0..(n - 1)//1)),
      # ref => {index, node, pid, started (native)}
      inflight: %{},
      # index => [ref] of its running attempts
      running: %{},
      launches: %{},
      duplicated: MapSet.new(),
      done: %{},
      # [{index, prediction, pair, node, duration}] awaiting a batch score
      buffer: [],
      buffered: 0,
      errors: 0,
      ok_sum: 0,
      ok_n: 0,
      # durations (ms) of recent successful examples, for the :auto straggler rule
      durations: [],
      n_durations: 0,
      progress: Progress.new(n, cfg.progress),
      next_tick: now_ms() + @tick_ms
    }

    loop(s)
  end

  defp loop(s) do
    s = dispatch(s)
    idle = map_size(s.inflight) == 0 and :queue.is_empty(s.pending)
    s = if idle or s.buffered >= @batch_size, do: flush(s), else: s

    cond do
      too_many_errors?(s) -> finish(:too_many_errors, s)
      map_size(s.done) == s.n -> finish(:ok, s)
      map_size(s.inflight) == 0 and up_nodes(s) == [] -> finish(:no_nodes, s)
      true -> wait(s)
    end
  end

  defp too_many_errors?(%{cfg: %{max_errors: :infinity}}), do: false
  defp too_many_errors?(s), do: s.errors >= s.cfg.max_errors

  defp wait(s) do
    inflight = s.inflight
    caller = s.cfg.caller
    timeout = max(s.next_tick - now_ms(), 0)

    receive do
      {ref, reply} when is_reference(ref) and is_map_key(inflight, ref) ->
        s |> reply(ref, reply) |> maybe_tick() |> loop()

      {:DOWN, ref, :process, _pid, reason} when is_map_key(inflight, ref) ->
        s |> down(ref, reason) |> maybe_tick() |> loop()

      {:EXIT, ^caller, reason} ->
        stop_all(s)
        exit(reason)

      _late ->
        # Replies, exits and monitors of attempts already stopped or finished.
        loop(s)
    after
      timeout -> s |> tick() |> loop()
    end
  end

  # --- starting attempts ----------------------------------------------------------------

  defp dispatch(s) do
    case :queue.peek(s.pending) do
      :empty ->
        s

      {:value, i} ->
        case pick_node(s, nil) do
          nil ->
            s

          node ->
            s = %{s | pending: :queue.drop(s.pending)}
            s |> launch(i, node) |> dispatch()
        end
    end
  end

  defp up_nodes(s), do: Enum.filter(s.order, &s.nodes[&1].up)

  # The up node with the most free slots (first in `nodes:` order on ties), preferring
  # one other than `avoid`; nil when every node is full. One pass, no allocation: it
  # runs after every message.
  defp pick_node(s, avoid) do
    case best_node(s.order, s.nodes, s.cfg.max_concurrency, avoid, nil, 0) do
      nil when avoid != nil -> best_node(s.order, s.nodes, s.cfg.max_concurrency, nil, nil, 0)
      node -> node
    end
  end

  defp best_node([], _nodes, _cap, _avoid, best, _free), do: best

  defp best_node([n | rest], nodes, cap, avoid, best, free) do
    case nodes do
      %{^n => %{up: true, busy: busy}} when n != avoid and cap - busy > free ->
        best_node(rest, nodes, cap, avoid, n, cap - busy)

      _ ->
        best_node(rest, nodes, cap, avoid, best, free)
    end
  end

  defp launch(s, i, node) do
    example = elem(s.devset, i)

    try do
      task = start_task(node, [s.cfg.job, example])
      entry = {i, node, task.pid, :erlang.monotonic_time()}

      %{
        s
        | inflight: Map.put(s.inflight, task.ref, entry),
          running: Map.update(s.running, i, [task.ref], &[task.ref | &1]),
          launches: Map.update(s.launches, i, 1, &(&1 + 1)),
          nodes: Map.update!(s.nodes, node, &%{&1 | busy: &1.busy + 1})
      }
    catch
      :exit, reason ->
        # The node (or its DSPex) is gone: stop using it, the example waits for another.
        s
        |> node_down(node, reason)
        |> requeue(i)
    end
  end

  # On this node the coordinator starts the task itself (linked, like Task.async_stream:
  # no round trip through a supervisor per example); on another node the task runs under
  # that node's DSPex.Evaluate.TaskSupervisor. Both reply {ref, outcome}.
  defp start_task(node, args) when node == node(), do: Task.async(Worker, :run, args)

  defp start_task(node, args),
    do: Task.Supervisor.async({Nodes.supervisor(), node}, Worker, :run, args)

  defp requeue(s, i) do
    if Map.get(s.running, i, []) == [] and not Map.has_key?(s.done, i),
      do: %{s | pending: :queue.in_r(i, s.pending)},
      else: s
  end

  # --- outcomes ---------------------------------------------------------------------------

  defp reply(s, ref, reply) do
    {{i, node, _pid, t0}, s} = forget(s, ref)
    s = stop_attempts(s, i)
    duration = :erlang.monotonic_time() - t0

    case reply do
      {:ok, pred, {:builtin, pair}} ->
        %{s | buffer: [{i, pred, pair, node, duration} | s.buffer], buffered: s.buffered + 1}

      {:ok, pred, score} ->
        finalize(s, i, {:ok, pred, score}, node, duration)

      {:error, %Error{} = err, tb} ->
        finalize(s, i, {:error, err, tb}, node, duration)
    end
  end

  defp down(s, ref, reason) do
    {{i, node, _pid, t0}, s} = forget(s, ref)
    elapsed = :erlang.monotonic_time() - t0

    if reason == :noconnection do
      s = node_down(s, node, reason)
      retry_event(s, i, node, elapsed, :nodedown)
      requeue(s, i)
    else
      if Map.get(s.running, i, []) == [] do
        err =
          Error.new(
            :task_exit,
            "the task of example #{i} exited: #{inspect(reason, limit: 10)}",
            %{
              index: i,
              reason: reason
            }
          )

        finalize(s, i, {:error, err, nil}, node, elapsed)
      else
        s
      end
    end
  end

  # Removes an attempt from the books (its monitor too).
  defp forget(s, ref) do
    {entry, inflight} = Map.pop(s.inflight, ref)
    {i, node, _pid, _t0} = entry
    Process.demonitor(ref, [:flush])

    running =
      case List.delete(Map.get(s.running, i, []), ref) do
        [] -> Map.delete(s.running, i)
        refs -> Map.put(s.running, i, refs)
      end

    nodes =
      case s.nodes do
        %{^node => st} -> Map.put(s.nodes, node, %{st | busy: st.busy - 1})
        _ -> s.nodes
      end

    {entry, %{s | inflight: inflight, running: running, nodes: nodes}}
  end

  # Stops every other running attempt of example i.
  defp stop_attempts(s, i) do
    Enum.reduce(Map.get(s.running, i, []), s, fn ref, s ->
      {{_, _, pid, _}, s} = forget(s, ref)
      Process.exit(pid, :kill)
      s
    end)
  end

  defp stop_all(s) do
    Enum.each(s.inflight, fn {ref, {_, _, pid, _}} ->
      Process.demonitor(ref, [:flush])
      Process.exit(pid, :kill)
    end)

    %{s | inflight: %{}, running: %{}}
  end

  defp node_down(s, node, reason) do
    case s.nodes do
      %{^node => %{up: true} = st} ->
        Logger.warning(
          "DSPex.Evaluate: node #{node} is unavailable (#{inspect(reason, limit: 5)}); " <>
            "its examples run on the other nodes"
        )

        %{s | nodes: Map.put(s.nodes, node, %{st | up: false})}

      _ ->
        s
    end
  end

  defp finalize(s, i, outcome, node, duration) do
    attempts = Map.get(s.launches, i, 1)
    cfg = s.cfg

    {final, score_num, status, s} =
      case outcome do
        {:ok, pred, score} ->
          v = Score.value(score)
          ms = System.convert_time_unit(duration, :native, :millisecond)

          {{:ok, pred, score, node, attempts}, v, :ok,
           add_duration(%{s | ok_sum: s.ok_sum + v, ok_n: s.ok_n + 1}, ms)}

        {:error, err, tb} ->
          err = %{err | details: Map.put(err.details, :index, i)}

          what =
            case err.details[:exception] do
              nil -> inspect(err.type)
              mod -> "#{inspect(err.type)} #{inspect(mod)}"
            end

          # The type only: messages can quote model output, which stays out of logs.
          Logger.warning("DSPex.Evaluate: example #{i} failed (#{what}); see the result's errors")

          {{:error, err, tb, node, attempts}, cfg.failure_score, :error,
           %{s | errors: s.errors + 1}}
      end

    DSPex.Telemetry.execute(
      [:dspex, :evaluate, :example],
      %{duration: duration, score: score_num},
      %{
        index: i,
        node: node,
        status: status,
        attempts: attempts,
        telemetry_span_context: cfg.span_context
      }
    )

    s = %{s | done: Map.put(s.done, i, final)}
    %{s | progress: Progress.update(s.progress, map_size(s.done), s.ok_sum, s.ok_n)}
  end

  # Scores the buffered built-in outcomes with one batch call.
  defp flush(%{buffer: []} = s), do: s

  defp flush(s) do
    items = Enum.reverse(s.buffer)
    s = %{s | buffer: [], buffered: 0}

    scored =
      try do
        scores = Metric.score_batch(s.cfg.job.metric, Enum.map(items, &elem(&1, 2)))

        Enum.zip_with(items, scores, fn {i, pred, _, node, d}, sc ->
          {i, {:ok, pred, sc}, node, d}
        end)
      catch
        kind, reason ->
          err = Worker.to_error(:metric, kind, reason, __STACKTRACE__)
          tb = if s.cfg.job.provide_traceback, do: Worker.traceback(kind, reason, __STACKTRACE__)
          Enum.map(items, fn {i, _pred, _, node, d} -> {i, {:error, err, tb}, node, d} end)
      end

    Enum.reduce(scored, s, fn {i, outcome, node, d}, s -> finalize(s, i, outcome, node, d) end)
  end

  # --- time-driven rules -------------------------------------------------------------------

  defp maybe_tick(s), do: if(now_ms() >= s.next_tick, do: tick(s), else: s)

  defp tick(s) do
    now = :erlang.monotonic_time()

    s
    |> timeouts(now)
    |> stragglers(now)
    |> flush()
    |> then(
      &%{&1 | progress: Progress.update(&1.progress, map_size(&1.done), &1.ok_sum, &1.ok_n)}
    )
    |> Map.put(:next_tick, now_ms() + @tick_ms)
  end

  defp timeouts(%{cfg: %{timeout: :infinity}} = s, _now), do: s

  defp timeouts(s, now) do
    limit = System.convert_time_unit(s.cfg.timeout, :millisecond, :native)

    s.inflight
    |> Enum.filter(fn {_ref, {_, _, _, t0}} -> now - t0 > limit end)
    |> Enum.reduce(s, fn {ref, {i, node, pid, t0}}, s ->
      {_, s} = forget(s, ref)
      Process.exit(pid, :kill)

      if Map.get(s.running, i, []) == [] do
        err =
          Error.new(:timeout, "example #{i} ran longer than #{s.cfg.timeout} ms", %{
            timeout: s.cfg.timeout
          })

        finalize(s, i, {:error, err, nil}, node, now - t0)
      else
        s
      end
    end)
  end

  defp stragglers(s, now) do
    threshold = straggler_threshold(s)

    if threshold == nil or not :queue.is_empty(s.pending) do
      s
    else
      limit = System.convert_time_unit(threshold, :millisecond, :native)

      s.running
      |> Enum.flat_map(fn
        {i, [ref]} ->
          {_, node, _, t0} = s.inflight[ref]

          if now - t0 > limit and not MapSet.member?(s.duplicated, i),
            do: [{t0, i, node}],
            else: []

        _ ->
          []
      end)
      |> Enum.sort()
      |> Enum.reduce(s, fn {t0, i, node}, s ->
        case pick_node(s, node) do
          nil ->
            s

          other ->
            retry_event(s, i, node, now - t0, :straggler)
            s = %{s | duplicated: MapSet.put(s.duplicated, i)}
            launch(s, i, other)
        end
      end)
    end
  end

  defp straggler_threshold(%{cfg: %{straggler_after: :infinity}}), do: nil
  defp straggler_threshold(%{cfg: %{straggler_after: ms}}) when is_integer(ms), do: ms

  defp straggler_threshold(s) do
    if s.n_durations >= @min_finished_for_auto do
      sorted = Enum.sort(s.durations)
      median = Enum.at(sorted, div(length(sorted), 2))
      max(3 * median, @min_straggler_ms)
    end
  end

  # Keeps the last 1000 to 2000 durations: trimmed in bulk so each add is O(1).
  defp add_duration(s, ms) do
    if s.n_durations >= 2000,
      do: %{s | durations: [ms | Enum.take(s.durations, 999)], n_durations: 1000},
      else: %{s | durations: [ms | s.durations], n_durations: s.n_durations + 1}
  end

  defp retry_event(s, i, node, elapsed, reason) do
    DSPex.Telemetry.execute(
      [:dspex, :evaluate, :retry],
      %{elapsed: elapsed},
      %{index: i, node: node, reason: reason, telemetry_span_context: s.cfg.span_context}
    )
  end

  # --- the end ------------------------------------------------------------------------------

  defp finish(status, s) do
    s = s |> stop_all() |> flush()

    # The final line shows the exact (Python) sum of what was scored, in devset order.
    oks = for i <- 0..(s.n - 1)//1, match?({:ok, _, _, _, _}, s.done[i]), do: elem(s.done[i], 2)
    Progress.finish(s.progress, map_size(s.done), Score.sum(oks), length(oks))

    {status, s.done}
  end

  defp now_ms, do: :erlang.monotonic_time(:millisecond)
end
