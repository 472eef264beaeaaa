defmodule DSPex.Optimize.Run do
  @moduledoc """
  What an optimizer's search runs on: the engine, the job's meter and budgets,
  evaluation, progress and telemetry. `DSPex.Optimize` builds one per (re)start of a
  job and hands it to the optimizer's `run/4` (see `DSPex.Optimize.Optimizer`).

  ## Resume by re-execution

  An optimizer is written as if it ran from the start every time. When the job resumes
  from a journal, the journal's records are served back in order instead of being
  redone:

    * `setup/2` returns the journaled setup (the proposals) instead of calling its
      function (no proposer LM call is made twice);
    * `batch/5` returns a journaled batch instead of calling its function;
    * `next/1` returns the journaled trials, with their scores (`{:replayed, trial,
      told, run}`), before it asks the engine for new ones.

  So the optimizer's own state (best program, candidate lists, trial logs) is rebuilt
  by the same code that built it, from the same inputs, and cannot drift from the
  journal. A trial that was asked but not told before the crash comes back from
  `next/1` as a new trial (same number, parameters and examples) and is evaluated
  again — unless its result reached this job before the engine was lost, in which case
  it is reused.

  ## Stopping

  `next/1` returns `{:stop, reason, run}` at a trial boundary when a budget is spent
  (`{:max_lm_calls, n}`, `{:max_cost, dollars}`, `{:max_wall, ms}`), when the best
  score reached `stop_at_score` (`{:stop_at_score, score}`) or when the job was
  cancelled (`:cancelled`); `evaluate/3` returns `{:stop, reason, run}` when such a
  limit refused an LM call in the middle of the trial — that trial is abandoned (not
  told), so a later resume with a larger budget runs it in full.
  """

  alias DSPex.Optimize.{Engine, Meter, Progress}

  defstruct [
    :job,
    :engine,
    :meter,
    :optimizer,
    :journal,
    :metric,
    :task_lm,
    :opts,
    :started,
    setup: nil,
    batches: %{},
    replay: [],
    reuse: %{},
    best_number: nil,
    best_score: nil,
    planned: nil,
    plan: nil,
    prefetched: nil,
    told: 0,
    search_us: 0,
    search_examples: 0,
    engine_us: 0,
    trials: []
  ]

  @type t :: %__MODULE__{}

  @typedoc "A trial handed out by the engine (see `DSPex.Optimize.Engine.ask/1`)."
  @type trial :: %{
          number: pos_integer,
          kind: :default | :objective | :full_eval | :candidate,
          params: [non_neg_integer],
          examples: :all | [non_neg_integer],
          counts_for_best: boolean
        }

  @typedoc "A trial's outcome: its score, spending and a term kept in the journal."
  @type told :: %{score: number | :failed, usage: map, tail: term}

  @doc false
  # Built by DSPex.Optimize.Job from an opened engine and its replayed events.
  def new(fields, events, status) do
    run = struct!(__MODULE__, fields)
    trials = pair_trials(events)

    %{
      run
      | setup: Enum.find_value(events, fn e -> match?({:setup, _, _}, e) && elem(e, 2) end),
        batches: for({:batch, i, _n, blob} <- events, into: %{}, do: {i, blob}),
        replay: trials,
        best_number: status.best_number,
        best_score: status.best_score,
        planned: status.planned,
        told: status.told,
        started: System.monotonic_time(:microsecond)
    }
  end

  # Asked trials in order, each with its TOLD record when there is one.
  defp pair_trials(events) do
    told =
      for {:told, n, score, usage, tail} <- events,
          into: %{},
          do: {n, %{score: score, usage: usage, tail: tail}}

    for {:asked, t} <- events, do: {t, Map.get(told, t.number)}
  end

  # ------------------------------------------------------------------ setup and batches

  @doc """
  The job's setup: the journaled one on a resume, else `fun.()` → `{config, proposals}`
  (LM calls allowed), recorded with `DSPex.Optimize.Engine.setup/3`. Returns
  `{:ok, proposals, run}`, `{:stop, reason, run}` when a budget refused a proposer call,
  or `{:error, error, run}`.

  `config` is the engine's (see `DSPex.Optimize.Engine.setup/3`); its `usage` is filled
  in here with what the setup spent.
  """
  @spec setup(t, (() -> {map, term} | {:error, DSPex.Error.t()})) ::
          {:ok, term, t} | {:stop, term, t} | {:error, DSPex.Error.t(), t}
  def setup(%__MODULE__{setup: nil} = run, fun) do
    before = Meter.totals(run.meter)
    made = fun.()
    after_ = Meter.totals(run.meter)

    cond do
      after_.refused > before.refused ->
        {:stop, refusal(run), run}

      match?({:error, %DSPex.Error{}}, made) ->
        {:error, elem(made, 1), run}

      true ->
        {config, proposals} = made
        config = Map.put(config, :usage, usage_diff(after_, before))

        case timed(run, fn -> Engine.setup(run.engine, config, proposals) end) do
          {:ok, run} ->
            {:ok, status} = Engine.status(run.engine)
            {:ok, proposals, %{run | setup: proposals, planned: status.planned}}

          {{:error, e}, run} ->
            {:error, e, run}
        end
    end
  end

  def setup(%__MODULE__{setup: proposals} = run, _fun), do: {:ok, proposals, run}

  @doc """
  QUEUE jobs: batch `index` — the journaled one, or `fun.()` → `{n, examples, term}`
  (LM calls allowed) added to the engine. Returns `{:ok, term, run}`, `{:stop, reason,
  run}` or `{:error, error, run}`.
  """
  @spec batch(t, non_neg_integer, (() -> {pos_integer, :all | [non_neg_integer], term})) ::
          {:ok, term, t} | {:stop, term, t} | {:error, DSPex.Error.t(), t}
  def batch(%__MODULE__{} = run, index, fun) do
    case Map.fetch(run.batches, index) do
      {:ok, term} ->
        {:ok, term, run}

      :error ->
        with nil <- stop_reason(run) do
          before = Meter.totals(run.meter)
          {n, examples, term} = fun.()

          if Meter.refused?(run.meter, before.refused) do
            {:stop, refusal(run), run}
          else
            case timed(run, fn -> Engine.add_batch(run.engine, n, examples, term) end) do
              {{:ok, ^index}, run} ->
                # a :need fetched with the last tell is stale now
                {:ok, term, %{run | batches: Map.put(run.batches, index, term), prefetched: nil}}

              {{:ok, other}, run} ->
                {:error, bad_index(index, other), run}

              {{:error, e}, run} ->
                {:error, e, run}
            end
          end
        else
          reason -> {:stop, reason, run}
        end
    end
  end

  defp bad_index(want, got),
    do: DSPex.Error.new(:sequence, "the engine numbered batch #{want} as #{got}", %{})

  # ------------------------------------------------------------------ trials

  @doc """
  The next trial: `{:replayed, trial, told, run}` (from the journal),
  `{:trial, trial, run}` (evaluate it, then `tell/4`), `{:need, run}` (QUEUE: add a
  batch), `{:done, run}` (every planned trial told), `{:stop, reason, run}` or
  `{:error, error, run}`.
  """
  @spec next(t) ::
          {:replayed, trial, told, t}
          | {:trial, trial, t}
          | {:need, t}
          | {:done, t}
          | {:stop, term, t}
          | {:error, DSPex.Error.t(), t}
  def next(%__MODULE__{replay: [{trial, %{} = told} | rest]} = run) do
    if run.job, do: send(run.job, {:dspex_optimize_replayed, trial, told.score})
    {:replayed, trial, told, %{run | replay: rest, trials: [{trial, told} | run.trials]}}
  end

  def next(%__MODULE__{} = run) do
    # an asked-but-not-told trial from the journal is the engine's outstanding one
    run = %{run | replay: []}

    case stop_reason(run) do
      nil ->
        # the last tell usually brought the next trial along (Engine.tell_ask/5)
        {next, run} =
          case run.prefetched do
            nil -> timed(run, fn -> Engine.ask(run.engine) end)
            next -> {{:ok, next}, %{run | prefetched: nil}}
          end

        case next do
          {:ok, {:trial, t}} -> {:trial, t, run}
          {:ok, :need} -> {:need, run}
          {:ok, :done} -> {:done, run}
          {:ok, {:error, e}} -> {:error, e, run}
          {:error, e} -> {:error, e, run}
        end

      reason ->
        # a search that is over is done, whatever the budget says now
        case Engine.status(run.engine) do
          {:ok, %{finished: true}} -> {:done, run}
          _ -> {:stop, reason, run}
        end
    end
  end

  @doc """
  Evaluates `program` on `devset` for `trial` through `DSPex.Evaluate` (the job's
  metric, task LM, concurrency, `max_errors` and `nodes:`), with every LM metered.
  Returns `{:ok, outcome, run}` with `outcome = %{score:, result:, usage:, us:}`
  (`score` DSPy's: the Evaluate score, or 0.0 when the evaluation failed as a whole),
  or `{:stop, reason, run}` when a budget or a cancel refused an LM call meanwhile.
  """
  @spec evaluate(t, trial, term, [DSPex.Example.t()]) :: {:ok, map, t} | {:stop, term, t}
  def evaluate(%__MODULE__{} = run, trial, program, devset) do
    case Map.fetch(run.reuse, trial.number) do
      {:ok, {^trial, outcome}} ->
        {:ok, outcome, %{run | reuse: Map.delete(run.reuse, trial.number)}}

      _ ->
        progress(run, {:trial_start, trial, length(devset)})
        before = Meter.totals(run.meter)
        t0 = System.monotonic_time(:microsecond)
        result = evaluate_program(run, program, devset)
        us = System.monotonic_time(:microsecond) - t0
        after_ = Meter.totals(run.meter)

        if after_.refused > before.refused do
          {:stop, refusal(run), run}
        else
          score =
            case result do
              {:ok, r} -> r.score
              # DSPy's eval_candidate_program: any exception scores 0.0
              {:error, _} -> 0.0
            end

          outcome = %{score: score, result: result, usage: usage_diff(after_, before), us: us}
          {:ok, outcome, run}
        end
    end
  end

  @doc """
  Runs `program` on `devset` with the job's metric and settings (metered), outside any
  trial (a proposer's check, a bootstrap). Returns what `DSPex.Evaluate.run/3` returns.
  """
  @spec evaluate_program(t, term, [DSPex.Example.t()]) ::
          {:ok, DSPex.Evaluate.Result.t()} | {:error, DSPex.Error.t()}
  def evaluate_program(%__MODULE__{} = run, program, devset) do
    metered = Meter.wrap_program(run.meter, program)

    DSPex.Evaluate.run(metered, devset,
      metric: run.metric,
      lm: task_lm(run),
      max_concurrency: run.opts[:max_concurrency],
      max_errors: run.opts[:max_errors],
      nodes: run.opts[:nodes],
      provide_traceback: run.opts[:provide_traceback] || false,
      display_progress: false
    )
  end

  @doc "The job's task LM, metered (the `task_model`, else the configured LM)."
  @spec task_lm(t) :: struct | nil
  def task_lm(%__MODULE__{} = run),
    do: Meter.wrap(run.meter, run.task_lm || DSPex.Settings.get(:lm))

  @doc "Any LM, metered by this job (for proposers)."
  @spec metered(t, struct | nil) :: struct | nil
  def metered(%__MODULE__{} = run, lm), do: Meter.wrap(run.meter, lm)

  @doc """
  Tells the engine `trial`'s outcome (synced to the journal before it returns), then
  reports progress and telemetry. `tail` is kept in the journal (per-example scores,
  feedback). Returns `{:ok, status, run}` (the engine's status, see
  `DSPex.Optimize.Engine.status/1`) or `{:error, error, run}`; when the engine was lost
  the job restarts from the journal and reuses this outcome.
  """
  @spec tell(t, trial, map, term) :: {:ok, map, t} | {:error, DSPex.Error.t(), t}
  def tell(%__MODULE__{} = run, trial, outcome, tail \\ nil) do
    usage = Map.take(outcome.usage, [:lm_calls, :prompt_tokens, :completion_tokens, :cost])

    case timed(run, fn ->
           Engine.tell_ask(run.engine, trial.number, outcome.score, usage, tail)
         end) do
      {{:ok, status, next}, run} ->
        run = %{run | prefetched: next}
        told = %{score: outcome.score, usage: usage, tail: tail}

        run = %{
          run
          | best_number: status.best_number,
            best_score: status.best_score,
            planned: status.planned,
            told: status.told,
            search_us: run.search_us + outcome.us,
            search_examples: run.search_examples + examples_count(trial, outcome),
            trials: [{trial, told} | run.trials]
        }

        progress(run, {:trial_end, trial, outcome, status})
        telemetry(run, trial, outcome, status)
        {:ok, status, run}

      {{:error, %DSPex.Error{type: :engine_lost} = e}, _run} ->
        throw({:dspex_engine_lost, e, %{trial.number => {trial, outcome}}})

      {{:error, e}, run} ->
        {:error, e, run}
    end
  end

  defp examples_count(_trial, %{result: {:ok, r}}), do: r.total
  defp examples_count(%{examples: :all}, _), do: 0
  defp examples_count(%{examples: ex}, _), do: length(ex)

  @doc """
  Journals a new best program (its DSPy JSON, so the journal alone gives it back) and
  hands it to the job, which returns it if the search ends early (cancel, crash).
  Replayed trials only hand it over.
  """
  @spec note_best(t, pos_integer, number, term, boolean) ::
          {:ok, t} | {:error, DSPex.Error.t(), t}
  def note_best(%__MODULE__{} = run, number, score, program, replayed \\ false) do
    if run.job,
      do: send(run.job, {:dspex_optimize_best, %{trial: number, score: score, program: program}})

    if replayed do
      {:ok, run}
    else
      json = program |> DSPex.Program.dump_state() |> DSPex.JSON.encode!()
      note_best_term(run, %{trial: number, score: score, program: json})
    end
  end

  defp note_best_term(run, term) do
    case timed(run, fn -> Engine.note(run.engine, :best, term) end) do
      {:ok, run} -> {:ok, run}
      {{:error, %DSPex.Error{type: :engine_lost} = e}, _} -> throw({:dspex_engine_lost, e, %{}})
      {{:error, e}, run} -> {:error, e, run}
    end
  end

  @doc false
  def note_done(%__MODULE__{} = run, term) do
    _ = Engine.note(run.engine, :done, term)
    :ok
  end

  # Why the meter refused a call (a cancel reads :cancelled).
  defp refusal(run) do
    case Meter.exhausted(run.meter) do
      {:stopped, :cancelled} -> :cancelled
      nil -> {:stopped, :budget}
      other -> other
    end
  end

  @doc """
  Why the job should stop now (budgets, `stop_at_score`, cancel), or `nil`.
  """
  @spec stop_reason(t) :: term | nil
  def stop_reason(%__MODULE__{} = run) do
    target = run.opts[:stop_at_score]

    cond do
      target != nil and is_number(run.best_score) and run.best_score >= target ->
        {:stop_at_score, target}

      true ->
        case Meter.exhausted(run.meter) do
          {:stopped, :cancelled} -> :cancelled
          other -> other
        end
    end
  end

  # ------------------------------------------------------------------ progress

  @doc false
  # Tells the job process (status, chart) and prints the TTY line.
  def progress(%__MODULE__{job: job} = run, event) do
    info = %{
      best_number: run.best_number,
      best_score: run.best_score,
      planned: run.plan || run.planned,
      told: run.told,
      eta_ms: eta_ms(run, event),
      totals: Meter.totals(run.meter)
    }

    if job, do: send(job, {:dspex_optimize_progress, event, info})
    Progress.print(run.opts[:progress], event, info)
    :ok
  end

  # Time per evaluated example so far, times the examples the remaining trials need
  # (the optimizer's estimate; a default of the mean trial size otherwise).
  defp eta_ms(run, _event) do
    with true <- run.search_examples > 0,
         planned when is_integer(planned) <- run.planned,
         fun when is_function(fun, 1) <- run.opts[:remaining_examples] do
      us_per = run.search_us / run.search_examples
      round(us_per * fun.(run) / 1000)
    else
      _ -> nil
    end
  end

  defp telemetry(run, trial, outcome, status) do
    DSPex.Telemetry.execute(
      [:dspex, :optimize, :trial],
      %{
        score: if(is_number(outcome.score), do: outcome.score, else: nil),
        duration: System.convert_time_unit(outcome.us, :microsecond, :native),
        lm_calls: outcome.usage.lm_calls,
        cost: outcome.usage.cost
      },
      %{
        job: run.job,
        optimizer: run.optimizer,
        journal: run.journal,
        trial: trial.number,
        kind: trial.kind,
        params: trial.params,
        examples: if(trial.examples == :all, do: :all, else: length(trial.examples)),
        best_trial: status.best_number,
        best_score: status.best_score
      }
    )
  end

  # ------------------------------------------------------------------ helpers

  defp timed(run, fun) do
    t0 = System.monotonic_time(:microsecond)
    result = fun.()
    us = System.monotonic_time(:microsecond) - t0
    {result, %{run | engine_us: run.engine_us + us}}
  end

  @doc false
  def usage_diff(a, b) do
    %{
      lm_calls: a.lm_calls - b.lm_calls,
      prompt_tokens: a.prompt_tokens - b.prompt_tokens,
      completion_tokens: a.completion_tokens - b.completion_tokens,
      cost: a.cost - b.cost
    }
  end

  # ------------------------------------------------------------------ QUEUE-mode optimizers

  @doc false
  # The result status a stop reason maps to (DSPex.Optimize.Result's `status`).
  @spec stop_status(term) :: :cancelled | :stop_at_score | :failed | :budget_exhausted
  def stop_status(:cancelled), do: :cancelled
  def stop_status({:stop_at_score, _}), do: :stop_at_score
  def stop_status(%DSPex.Error{}), do: :failed
  def stop_status(_), do: :budget_exhausted

  @doc false
  # How a QUEUE-mode optimizer ends: `how` is `:done`, `:stop` (`why` a stop reason) or
  # `:error` (`why` the error); `fields` are its result fields but status and reason.
  @spec finish(:done | :stop | :error, term, map, t) ::
          {:ok, map, t} | {:error, term, map, t}
  def finish(how, why, fields, %__MODULE__{} = run) do
    {status, reason} =
      case how do
        :done -> {:finished, nil}
        :stop -> {stop_status(why), why}
        :error -> {:failed, why}
      end

    fields = Map.merge(fields, %{status: status, reason: reason})
    if how == :error, do: {:error, why, fields, run}, else: {:ok, fields, run}
  end

  @doc false
  # Runs `fun` (which scores `trial` on `n_examples` examples and returns a map) with
  # budget accounting, what evaluate/4 does for a DSPex.Evaluate run; a trial replayed
  # from the journal on resume comes back without running. `{:ok, outcome, run}` (the
  # map plus `usage` and `us`) or `{:stop, reason, run}` when the meter refused a call.
  @spec execute_trial(t, map, non_neg_integer, (() -> map)) ::
          {:ok, map, t} | {:stop, term, t}
  def execute_trial(%__MODULE__{} = run, trial, n_examples, fun) do
    case Map.fetch(run.reuse, trial.number) do
      {:ok, {^trial, outcome}} ->
        {:ok, outcome, %{run | reuse: Map.delete(run.reuse, trial.number)}}

      _ ->
        progress(run, {:trial_start, trial, n_examples})
        before = Meter.totals(run.meter)
        t0 = System.monotonic_time(:microsecond)
        made = fun.()
        us = System.monotonic_time(:microsecond) - t0
        after_ = Meter.totals(run.meter)

        if after_.refused > before.refused do
          {:stop, stop_reason(run) || {:stopped, :budget}, run}
        else
          {:ok, Map.merge(made, %{usage: usage_diff(after_, before), us: us}), run}
        end
    end
  end

  @doc false
  # The journaled trials in order, each a map of its number, kind, params, examples and
  # score, plus what `told_fields` takes from its told record (per-example scores, usage).
  @spec trial_logs(t, (map -> map)) :: [map]
  def trial_logs(%__MODULE__{} = run, told_fields) do
    run.trials
    |> Enum.reverse()
    |> Enum.map(fn {t, told} ->
      Map.merge(
        %{
          number: t.number,
          kind: t.kind,
          params: t.params,
          examples: t.examples,
          score: told.score
        },
        told_fields.(told)
      )
    end)
  end
end
