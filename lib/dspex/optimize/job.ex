defmodule DSPex.Optimize.Job do
  @moduledoc """
  One optimizer job: a process under `DSPex.Optimize.Supervisor` that owns the job's
  engine (journal), its LM meter and the runner process doing the search, and keeps
  the status, the best program so far and, at the end, the result.

  Use it through `DSPex.Optimize` (`start/4`, `status/1`, `await/2`, `cancel/1`,
  `resume/4`). What it guarantees:

    * the engine is opened (and the journal replayed and checked against the job's
      spec) before `start/4` returns, so a journal from another job is an error there;
    * when the engine's port dies (`kill -9`), the job reopens the journal and restarts
      the search from it (at most 3 times in a row without a trial told in between),
      reusing the outcome of a trial that finished but was not yet journaled;
    * whatever ends the job — the search finishing, a budget, a cancel, an error, even
      the runner crashing — the result holds the best program found so far (the student
      when none was scored);
    * the finished job stays for `keep_ms` (default 5 minutes) so `await/2` can collect
      its result, then stops; the journal keeps everything (resuming a finished journal
      returns its result at once, without LM calls).

  Telemetry: `[:dspex, :optimize, :job, :start]` when the job starts and
  `[:dspex, :optimize, :job, :stop]` when it ends (`:telemetry.span/3` shapes; metadata
  `optimizer`, `journal`, `job`; stop adds `status`, `score`), plus one
  `[:dspex, :optimize, :trial]` per trial (see `DSPex.Optimize.Run`).
  """

  use GenServer, restart: :temporary
  require Logger

  alias DSPex.Optimize.{Chart, Engine, Meter, Result, Run}

  @max_restarts 3

  @doc false
  def start_link(args), do: GenServer.start_link(__MODULE__, args)

  @impl true
  def init(args) do
    Process.flag(:trap_exit, true)
    jopts = args.jopts

    case :timer.tc(fn -> open_engine(args) end) do
      {open_us, {:ok, engine, replay, status}} ->
        {:ok, meter} =
          Meter.start_link(
            max_lm_calls: jopts[:max_lm_calls],
            max_cost: jopts[:max_cost],
            max_wall: jopts[:max_wall],
            prices: jopts[:prices]
          )

        :ok = Meter.carry(meter, status.usage)
        t0 = System.monotonic_time()

        meta = %{optimizer: args.optimizer.name(), journal: args.journal, job: self()}

        DSPex.Telemetry.execute(
          [:dspex, :optimize, :job, :start],
          %{monotonic_time: t0, system_time: System.system_time()},
          meta
        )

        st = %{
          args: args,
          engine: engine,
          meter: meter,
          runner: nil,
          restarts: 0,
          t0: t0,
          meta: meta,
          open_us: open_us,
          started_at: DateTime.utc_now(),
          phase: :starting,
          info: %{
            told: status.told,
            planned: status.planned,
            best_score: status.best_score,
            best_number: status.best_number,
            eta_ms: nil
          },
          points: [],
          last: nil,
          best: nil,
          result: nil,
          waiters: [],
          stop_timer: nil,
          kill_timer: nil
        }

        {:ok, spawn_runner(st, replay, status, %{})}

      {_, {:error, %DSPex.Error{} = e}} ->
        {:stop, {:shutdown, e}}
    end
  end

  defp open_engine(args) do
    run_info = %{
      started_at: DateTime.to_iso8601(DateTime.utc_now()),
      node: node(),
      budgets: budgets(args.jopts)
    }

    with {:ok, engine, replay} <-
           Engine.open(args.journal, args.spec, run_info, port_path: args.jopts[:port_path]),
         {:ok, status} <- Engine.status(engine) do
      {:ok, engine, replay, status}
    end
  end

  defp budgets(jopts),
    do: Map.new(Keyword.take(jopts, [:max_lm_calls, :max_cost, :max_wall, :stop_at_score]))

  defp spawn_runner(st, replay, status, reuse) do
    job = self()
    args = st.args

    fields = %{
      job: job,
      engine: st.engine,
      meter: st.meter,
      optimizer: args.optimizer.name(),
      journal: args.journal,
      metric: args.jopts[:metric],
      task_lm: args.task_lm,
      opts: args.jopts,
      reuse: reuse,
      # the engine's time includes opening (replaying) the journal
      engine_us: st.open_us
    }

    pid =
      spawn_link(fn ->
        DSPex.Settings.restore(args.snapshot)
        run = Run.new(fields, replay.events, status)
        done = Enum.count(run.replay, fn {_t, told} -> told != nil end)
        if done > 0, do: Run.progress(run, {:resumed, done})

        outcome =
          try do
            args.optimizer.run(run, args.program, args.trainset, args.oopts)
          catch
            :throw, {:dspex_engine_lost, e, pending} ->
              {:lost, e, pending}

            # a crash report would print the programs and examples in the stack's
            # arguments: describe it without data instead (DSPex.Error.describe/1)
            kind, reason ->
              what =
                DSPex.Error.describe(
                  if kind == :error,
                    do: Exception.normalize(kind, reason, __STACKTRACE__),
                    else: {kind, reason}
                )

              Logger.error(
                "optimizer job #{args.journal}: the optimizer's run crashed: #{what}\n" <>
                  frames(__STACKTRACE__)
              )

              {:crashed, what}
          end

        send(job, {:dspex_optimize_runner, outcome})
      end)

    %{st | runner: pid, phase: :running}
  end

  # Stack frames with arities, never arguments.
  defp frames(stack) do
    stack
    |> Enum.map(fn
      {m, f, args, loc} when is_list(args) -> {m, f, length(args), loc}
      frame -> frame
    end)
    |> Exception.format_stacktrace()
  end

  @doc false
  # OTP 25 calls this for crash reports and :sys.get_status/1: the programs, examples,
  # LMs and results of a job are shown as counts, never as data.
  def format_status(status) do
    Map.update(status, :state, nil, fn
      %{args: args} = st ->
        %{
          optimizer: args.optimizer,
          journal: args.journal,
          trainset: "<#{length(args.trainset)} examples>",
          phase: st.phase,
          restarts: st.restarts,
          done: st.result != nil
        }

      other ->
        other
    end)
  end

  # ------------------------------------------------------------------ API

  @impl true
  def handle_call(:status, _from, st), do: {:reply, status_map(st), st}

  def handle_call(:await, from, %{result: nil} = st),
    do: {:noreply, %{st | waiters: [from | st.waiters]}}

  def handle_call(:await, _from, st), do: {:reply, st.result, st}

  def handle_call(:cancel, _from, %{result: nil} = st) do
    Meter.stop(st.meter, :cancelled)
    grace = st.args.jopts[:cancel_grace_ms] || 5_000
    timer = Process.send_after(self(), :cancel_timeout, grace)
    {:reply, :ok, %{st | kill_timer: timer}}
  end

  def handle_call(:cancel, _from, st), do: {:reply, :ok, st}

  def handle_call({:chart, path}, _from, st) do
    path = path || chart_path(st)
    {:reply, with(:ok <- write_chart(st, path), do: {:ok, path}), st}
  end

  # ------------------------------------------------------------------ runner messages

  @impl true
  def handle_info({:dspex_optimize_progress, event, info}, st) do
    st = %{st | info: Map.merge(st.info, Map.drop(info, [:totals]))}

    st =
      case event do
        {:phase, text} ->
          %{st | phase: text}

        {:trial_start, trial, _n} ->
          %{st | phase: :searching, last: {:running, trial}}

        {:trial_end, trial, outcome, _status} ->
          add_point(%{st | last: {:told, trial, outcome.score}}, trial, outcome.score)

        _ ->
          st
      end

    {:noreply, st}
  end

  def handle_info({:dspex_optimize_replayed, trial, score}, st),
    do: {:noreply, add_point(st, trial, score)}

  def handle_info({:dspex_optimize_best, best}, st), do: {:noreply, %{st | best: best}}

  def handle_info({:dspex_optimize_runner, {:lost, e, pending}}, st) do
    # The engine's port died: reopen the journal and start the search again from it.
    Engine.close(st.engine)

    if st.restarts >= @max_restarts do
      {:noreply, finish(st, {:error, e, fallback(st, :failed, e)})}
    else
      Logger.warning("optimizer job #{st.args.journal}: #{e.message}; resuming from the journal")

      case :timer.tc(fn -> open_engine(st.args) end) do
        {open_us, {:ok, engine, replay, status}} ->
          st = %{st | engine: engine, restarts: st.restarts + 1, points: [], open_us: open_us}
          {:noreply, spawn_runner(st, replay, status, pending)}

        {_, {:error, e2}} ->
          {:noreply, finish(st, {:error, e2, fallback(st, :failed, e2)})}
      end
    end
  end

  def handle_info({:dspex_optimize_runner, {:crashed, what}}, st) do
    e = DSPex.Error.new(:optimizer_crashed, "the optimizer's run crashed: #{what}", %{})
    {:noreply, finish(st, {:error, e, fallback(st, :failed, e)})}
  end

  def handle_info({:dspex_optimize_runner, {:ok, fields, run}}, st) do
    {:noreply, finish(st, {:ok, fields, run})}
  end

  def handle_info({:dspex_optimize_runner, {:error, e, fields, run}}, st) do
    {:noreply, finish(st, {:error, e, fields, run})}
  end

  def handle_info({:EXIT, pid, reason}, %{runner: pid} = st) do
    st = %{st | runner: nil}

    cond do
      st.result != nil or reason == :normal ->
        {:noreply, st}

      true ->
        e =
          DSPex.Error.new(
            :optimizer_crashed,
            "the optimizer's run crashed: #{DSPex.Error.describe(reason)}",
            %{}
          )

        {:noreply, finish(st, {:error, e, fallback(st, :failed, e)})}
    end
  end

  def handle_info({:EXIT, _pid, _reason}, st), do: {:noreply, st}

  def handle_info(:cancel_timeout, %{result: nil} = st) do
    # the runner did not stop within the grace period (a metric stuck, ...): end it
    if st.runner, do: Process.exit(st.runner, :kill)
    {:noreply, finish(st, {:ok, fallback(st, :cancelled, :cancelled)})}
  end

  def handle_info(:cancel_timeout, st), do: {:noreply, st}
  def handle_info(:expire, st), do: {:stop, :normal, st}
  def handle_info(_msg, st), do: {:noreply, st}

  @impl true
  def terminate(_reason, st) do
    if st.runner, do: Process.exit(st.runner, :kill)
    if st.result == nil, do: Engine.close(st.engine)
    :ok
  end

  # ------------------------------------------------------------------ ending

  defp finish(%{result: r} = st, _) when r != nil, do: st

  defp finish(st, outcome) do
    {reply, result} =
      case outcome do
        {:ok, fields, %Run{} = run} -> {:ok, build(st, fields, run)}
        {:error, e, fields, %Run{} = run} -> {:error, e, build(st, fields, run)}
        {:ok, %Result{} = r} -> {:ok, r}
        {:error, e, %Result{} = r} -> {:error, e, r}
      end
      |> case do
        {:ok, r} -> {{:ok, r}, r}
        {:error, e, r} -> {{:error, %{e | details: Map.put(e.details, :result, r)}}, r}
      end

    # a DONE record, unless the journal itself is what failed
    done_us =
      if match?({:error, %{type: t}} when t in [:disk_full, :broken, :engine_lost, :io], reply) do
        0
      else
        done = %{status: result.status, reason: inspect(result.reason), score: result.score}
        {us, _} = :timer.tc(fn -> Engine.note(st.engine, :done, done) end)
        us
      end

    result =
      case result.extra do
        %{engine_us: us} = extra -> %{result | extra: %{extra | engine_us: us + done_us}}
        _ -> result
      end

    chart =
      if st.args.jopts[:chart] != false do
        path = chart_path(st)
        if write_chart(st, path) == :ok, do: path
      end

    result = %{result | chart: chart}

    reply =
      case reply do
        {:ok, _} -> {:ok, result}
        {:error, e} -> {:error, %{e | details: Map.put(e.details, :result, result)}}
      end

    Engine.close(st.engine)
    if st.kill_timer, do: Process.cancel_timer(st.kill_timer)
    Enum.each(st.waiters, &GenServer.reply(&1, reply))

    DSPex.Telemetry.execute(
      [:dspex, :optimize, :job, :stop],
      %{duration: System.monotonic_time() - st.t0, monotonic_time: System.monotonic_time()},
      Map.merge(st.meta, %{status: result.status, score: result.score})
    )

    print_end(st, result)
    timer = Process.send_after(self(), :expire, st.args.jopts[:keep_ms] || 300_000)
    %{st | result: reply, waiters: [], stop_timer: timer, phase: :done}
  end

  # The TTY line that says how the job ended.
  defp print_end(st, %Result{status: status, reason: reason}) when status != :finished do
    DSPex.Optimize.Progress.print(st.args.jopts[:progress], {:stopped, reason}, %{})
  end

  defp print_end(_st, _result), do: :ok

  defp build(st, fields, run) do
    totals = Meter.totals(st.meter)

    struct!(
      Result,
      Map.merge(
        %{
          optimizer: st.args.optimizer.name(),
          journal: st.args.journal,
          usage:
            Map.take(totals, [
              :lm_calls,
              :cache_hits,
              :prompt_tokens,
              :completion_tokens,
              :cost,
              :by_model
            ]),
          extra:
            Map.merge(
              %{engine_us: run.engine_us, search_us: run.search_us},
              engine_times(st.engine)
            )
        },
        Map.take(fields, Map.keys(%Result{}) -- [:__struct__])
      )
    )
  end

  # Time inside the port on this job's commands, and in fdatasync (DSPex.Optimize.Run
  # measures the whole round trips: engine_us).
  defp engine_times(engine) do
    case Engine.status(engine) do
      {:ok, %{sync_us: s, port_us: p}} -> %{sync_us: s, port_us: p}
      _ -> %{sync_us: nil, port_us: nil}
    end
  end

  # The result when the runner cannot give one: the best program reported so far.
  defp fallback(st, status, reason) do
    totals = Meter.totals(st.meter)

    {program, score} =
      if st.best, do: {st.best.program, st.best.score}, else: {st.args.program, nil}

    %Result{
      program: program,
      score: score,
      status: status,
      reason: reason,
      optimizer: st.args.optimizer.name(),
      journal: st.args.journal,
      usage:
        Map.take(totals, [
          :lm_calls,
          :cache_hits,
          :prompt_tokens,
          :completion_tokens,
          :cost,
          :by_model
        ])
    }
  end

  # ------------------------------------------------------------------ status and chart

  defp add_point(st, trial, score) do
    point = %{
      number: trial.number,
      kind: trial.kind,
      score: score,
      full: trial.examples == :all,
      counts_for_best: trial.counts_for_best
    }

    %{st | points: [point | Enum.reject(st.points, &(&1.number == trial.number))]}
  end

  defp status_map(st) do
    totals = Meter.totals(st.meter)
    points = Enum.sort_by(st.points, & &1.number)
    {full, mb} = Enum.split_with(points, & &1.full)

    state =
      case st.result do
        nil -> :running
        {:ok, r} -> r.status
        {:error, %{details: %{result: r}}} -> r.status
      end

    %{
      state: state,
      optimizer: st.args.optimizer.name(),
      journal: st.args.journal,
      phase: st.phase,
      trial: st.info.told,
      planned: st.info.planned,
      running: match?({:running, _}, st.last),
      best_score: st.info.best_score,
      best_trial: st.info.best_number,
      minibatch_scores: Enum.map(mb, & &1.score),
      full_scores: Enum.map(full, & &1.score),
      lm_calls: totals.lm_calls,
      cache_hits: totals.cache_hits,
      prompt_tokens: totals.prompt_tokens,
      completion_tokens: totals.completion_tokens,
      cost: totals.cost,
      usage_by_model: totals.by_model,
      eta_ms: st.info.eta_ms,
      started_at: st.started_at,
      elapsed_ms:
        System.convert_time_unit(System.monotonic_time() - st.t0, :native, :millisecond),
      restarts: st.restarts,
      engine_os_pid: st.engine.os_pid
    }
  end

  defp chart_path(st), do: st.args.journal <> ".svg"

  defp write_chart(st, path) do
    points = Enum.sort_by(st.points, & &1.number)

    Chart.write(path, points,
      title: "#{st.args.optimizer.name()} — score per trial",
      subtitle: Path.basename(st.args.journal)
    )
  end
end
