defmodule DSPex.Optimize do
  @moduledoc """
  Optimizer runs as supervised, budgeted, resumable jobs.

  Instruction optimizers (`DSPex.Optimizers.MIPROv2`, `DSPex.Optimizers.COPRO`) run for
  many trials and many LM calls. Here each run is a job: its search state lives in the
  optimizer engine inside `dspex_port` (`c_src/core/optim/engine.c`) and every finished
  trial is written to a crash-safe journal before the next one starts. A job survives
  the port being killed (it reopens the journal and carries on), and a job whose whole
  VM died is continued with `resume/4` — no finished trial is run again, no proposer LM
  call is made twice, and with the same seed and LM answers it ends with the same best
  program as an uninterrupted run.

      {:ok, job} = DSPex.Optimize.start(DSPex.Optimizers.MIPROv2, RAG.new(), trainset,
                     metric: &MyApp.Metrics.match/2, auto: :light,
                     max_cost: 2.50, prices: %{"openai/gpt-4o-mini" => %{prompt: 0.15, completion: 0.60}},
                     journal: "runs/rag.journal")
      DSPex.Optimize.status(job)
      #=> %{state: :running, trial: 5, planned: 13, best_score: 64.0, cost: 0.41, eta_ms: 81_000, ...}
      {:ok, result} = DSPex.Optimize.await(job)
      :ok = DSPex.Optimize.Result.save(result, "rag.json")

      # after a crash, a deploy, a closed laptop:
      {:ok, job} = DSPex.Optimize.resume("runs/rag.journal", RAG.new(), trainset,
                     metric: &MyApp.Metrics.match/2, auto: :light)

  Each optimizer module also has the blocking, DSPy-style `compile/3` (a job started
  and awaited, with progress on the terminal).

  ## Job options

  These apply to every optimizer (the optimizer's own options are listed on its
  module):

  #{DSPex.Options.docs(DSPex.Optimize.Options.schema())}

  ## Budgets

  `max_lm_calls`, `max_cost` and `max_wall` are checked before every LM call of the job
  (proposers and trials alike, see `DSPex.Optimize.Meter`); `stop_at_score` after every
  trial. A budget that runs out in the middle of a trial abandons that trial (it is not
  journaled as done), and the job ends cleanly with status `:budget_exhausted` (or
  `:stop_at_score`) and the best program found so far. Budgets are not part of the job's
  identity: resume with larger ones to continue. Calls and cost spent before a resume
  (as journaled) count against them.

  ## Progress and telemetry

  With `progress: true` (the default of `compile/3`) every trial prints one line to the
  terminal (`DSPex.Optimize.Progress`); the job writes an SVG chart next to its journal
  when it ends (`DSPex.Optimize.Chart`). Events:

    * `[:dspex, :optimize, :trial]` — per trial; measurements `score`, `duration`
      (native units), `lm_calls`, `cost`; metadata `job`, `optimizer`, `journal`,
      `trial`, `kind`, `params`, `examples` (count or `:all`), `best_trial`,
      `best_score`;
    * `[:dspex, :optimize, :job, :start]` / `[:dspex, :optimize, :job, :stop]` — the job's
      life (`:telemetry.span/3` shapes; metadata `optimizer`, `journal`, `job`; stop adds
      `status` and `score`).

  ## Results and errors

  `await/2` returns `{:ok, %DSPex.Optimize.Result{}}` for a job that finished or stopped
  at a budget, a target score or a cancel; `{:error, %DSPex.Error{}}` when it failed —
  a full disk (`:disk_full`), a journal that cannot be written (`:io`, `:broken`), the
  engine lost too often (`:engine_lost`), DSPy's "no candidate left"
  (`:no_candidate`), an optimizer crash (`:optimizer_crashed`) — with the best program
  so far in `details.result`. `start/4` and `resume/4` return `{:error, _}` at once for
  a journal that belongs to another job (`:spec_mismatch`, naming the settings that
  differ), is damaged (`:corrupt`), is not a journal (`:not_a_journal`), or is held by a
  running job (`:busy`).
  """

  alias DSPex.Optimize.{Job, Spec}

  @optimizers %{
    "mipro_v2" => DSPex.Optimizers.MIPROv2,
    "copro" => DSPex.Optimizers.COPRO,
    "simba" => DSPex.Optimizers.SIMBA,
    "gepa" => DSPex.Optimizers.GEPA
  }

  @doc """
  Starts an optimizer job under `DSPex.Optimize.Supervisor` and returns `{:ok, job}`
  once its journal is open (a new one, or an existing one whose spec matches: then the
  job resumes it). See the module doc for the options.

  ## Examples

      {:ok, job} = DSPex.Optimize.start(DSPex.Optimizers.COPRO, program, trainset,
                     metric: &MyApp.match/2, breadth: 4, depth: 2)
  """
  @spec start(module, term, [DSPex.Example.t()], keyword) ::
          {:ok, pid} | {:error, DSPex.Error.t()}
  def start(optimizer, program, trainset, opts) when is_atom(optimizer) and is_list(opts) do
    args = prepare(optimizer, program, trainset, opts, "DSPex.Optimize.start/4")

    case DynamicSupervisor.start_child(DSPex.Optimize.Supervisor, {Job, args}) do
      {:ok, pid} ->
        {:ok, pid}

      {:error, {:shutdown, %DSPex.Error{} = e}} ->
        {:error, e}

      {:error, %DSPex.Error{} = e} ->
        {:error, e}

      {:error, other} ->
        {:error,
         DSPex.Error.new(:job_start, "the job did not start: #{DSPex.Error.describe(other)}", %{})}
    end
  end

  @doc """
  Continues the job journaled at `journal`: the program, trainset and options must be
  the ones it started with (budgets, concurrency and `nodes:` may differ). The optimizer
  is read from the journal unless `optimizer:` is given. A finished job's journal gives
  its result back without any LM call.

  ## Examples

      {:ok, job} = DSPex.Optimize.resume("runs/rag.journal", RAG.new(), trainset, metric: &MyApp.match/2)
  """
  @spec resume(Path.t(), term, [DSPex.Example.t()], keyword) ::
          {:ok, pid} | {:error, DSPex.Error.t()}
  def resume(journal, program, trainset, opts) when is_list(opts) do
    {optimizer, opts} = Keyword.pop(opts, :optimizer)

    with :ok <- exists(journal),
         {:ok, mod} <- optimizer_of(journal, optimizer) do
      start(mod, program, trainset, Keyword.put(opts, :journal, journal))
    end
  end

  defp exists(journal) do
    if File.regular?(journal),
      do: :ok,
      else: {:error, DSPex.Error.new(:not_found, "no journal at #{journal}", %{journal: journal})}
  end

  @doc """
  The job's status: `state` (`:running`, or the result's status once done), `phase`,
  `trial` (trials told) of `planned`, `best_score`/`best_trial`, `minibatch_scores` and
  `full_scores` (in trial order), `lm_calls`, `cache_hits`, `prompt_tokens`,
  `completion_tokens`, `cost` (dollars, from the price table), `usage_by_model`
  (`DSPex.Usage` format), `eta_ms` (nil until a trial ran), `elapsed_ms`, `journal`.

  ## Examples

      %{trial: 5, planned: 13, best_score: 64.0} = DSPex.Optimize.status(job)
  """
  @spec status(pid) :: map
  def status(job), do: GenServer.call(job, :status)

  @doc """
  Waits for the job's result (see the module doc). The job process stops
  `keep_ms` after it ends; await it before that or resume its journal.

  ## Examples

      {:ok, %DSPex.Optimize.Result{program: best}} = DSPex.Optimize.await(job)
  """
  @spec await(pid, timeout) :: {:ok, DSPex.Optimize.Result.t()} | {:error, DSPex.Error.t()}
  def await(job, timeout \\ :infinity) do
    GenServer.call(job, :await, timeout)
  catch
    :exit, {:timeout, _} ->
      {:error, DSPex.Error.new(:timeout, "the job did not finish within #{timeout} ms", %{})}

    :exit, {reason, _} when reason in [:noproc, :normal] ->
      {:error,
       DSPex.Error.new(
         :not_found,
         "the job is gone (its result expired); resume its journal to get it",
         %{}
       )}
  end

  @doc """
  Stops the job: no LM call starts after this, the trial in flight is abandoned and
  `await/2` returns `{:ok, result}` with status `:cancelled` and the best program so
  far. Returns `:ok`.

  ## Examples

      :ok = DSPex.Optimize.cancel(job)
  """
  @spec cancel(pid) :: :ok
  def cancel(job), do: GenServer.call(job, :cancel)

  @doc """
  Writes the job's chart (see `DSPex.Optimize.Chart`) to `path` (default: next to the
  journal, `<journal>.svg`). Returns `{:ok, path}`.

  ## Examples

      {:ok, "runs/rag.journal.svg"} = DSPex.Optimize.chart(job)
  """
  @spec chart(pid, Path.t() | nil) :: {:ok, Path.t()} | {:error, DSPex.Error.t()}
  def chart(job, path \\ nil), do: GenServer.call(job, {:chart, path})

  @doc """
  Runs a job to its end and stops it: what each optimizer's `compile/3` does. Progress
  goes to the terminal unless `progress: false`.

  ## Examples

      {:ok, result} = DSPex.Optimize.compile(DSPex.Optimizers.MIPROv2, program, trainset, metric: &match/2)
  """
  @spec compile(module, term, [DSPex.Example.t()], keyword) ::
          {:ok, DSPex.Optimize.Result.t()} | {:error, DSPex.Error.t()}
  def compile(optimizer, program, trainset, opts) do
    opts = Keyword.put_new(opts, :progress, true)

    with {:ok, job} <- start(optimizer, program, trainset, opts) do
      result = await(job)
      Process.exit(job, :normal)
      DynamicSupervisor.terminate_child(DSPex.Optimize.Supervisor, job)
      result
    end
  end

  @doc """
  The optimizer module a journal was written by (from its spec).

  ## Examples

      {:ok, DSPex.Optimizers.MIPROv2} = DSPex.Optimize.optimizer_of("runs/rag.journal")
  """
  @spec optimizer_of(Path.t(), module | nil) :: {:ok, module} | {:error, DSPex.Error.t()}
  def optimizer_of(journal, given \\ nil)
  def optimizer_of(_journal, mod) when is_atom(mod) and mod != nil, do: {:ok, mod}

  def optimizer_of(journal, nil) do
    with {:ok,
          <<"DSPEXJNL", _::binary-size(8), "DXJR", len::little-32, _::binary-size(16),
            spec::binary-size(len),
            _::binary>>} <-
           head(journal),
         {:ok, %{"optimizer" => name}} <- DSPex.JSON.decode(spec),
         {:ok, mod} <- Map.fetch(@optimizers, name) do
      {:ok, mod}
    else
      _ ->
        {:error,
         DSPex.Error.new(
           :not_a_journal,
           "cannot read the optimizer of #{journal}; pass optimizer: Module",
           %{
             journal: journal
           }
         )}
    end
  end

  defp head(path) do
    with {:ok, f} <- File.open(path, [:read, :binary]) do
      data = IO.binread(f, 4_194_304)
      File.close(f)
      if is_binary(data), do: {:ok, data}, else: :error
    end
  end

  # ------------------------------------------------------------------ preparation

  defp prepare(optimizer, program, trainset, opts, context) do
    Code.ensure_loaded(optimizer)

    unless function_exported?(optimizer, :run, 4) and function_exported?(optimizer, :spec, 3) do
      raise ArgumentError,
            "#{inspect(optimizer)} is not a DSPex optimizer (see DSPex.Optimize.Optimizer)"
    end

    check_program!(program)
    check_trainset!(trainset)
    job_keys = DSPex.Optimize.Options.keys()
    {jopts, oopts} = Keyword.split(opts, job_keys -- [:metric])
    jopts = DSPex.Optimize.Options.validate!(Keyword.put(jopts, :metric, opts[:metric]), context)
    oopts = optimizer.validate!(oopts ++ [metric: jopts[:metric]])

    spec =
      optimizer.spec(program, trainset, oopts)
      |> Map.merge(%{
        "optimizer" => optimizer.name(),
        "program" => Spec.program_hash(program),
        "trainset" => Spec.examples_hash(trainset),
        "metric" => Spec.metric_name(jopts[:metric])
      })
      |> Spec.encode()

    journal = Path.expand(jopts[:journal] || default_journal(optimizer.name()))

    %{
      optimizer: optimizer,
      program: program,
      trainset: trainset,
      oopts: oopts,
      jopts: Keyword.put(jopts, :journal, journal),
      journal: journal,
      spec: spec,
      task_lm: oopts[:task_model],
      snapshot: DSPex.Settings.capture()
    }
  end

  defp default_journal(name) do
    stamp = Calendar.strftime(DateTime.utc_now(), "%Y%m%d-%H%M%S")

    Path.join([
      System.tmp_dir!(),
      "dspex_optimize",
      "#{name}-#{stamp}-#{System.unique_integer([:positive])}.journal"
    ])
  end

  defp check_program!(%_{}), do: :ok

  defp check_program!(other),
    do:
      raise(
        ArgumentError,
        "an optimizer needs a program struct (a predictor or a DSPex.Module), got: #{inspect(other, limit: 5)}"
      )

  defp check_trainset!([_ | _] = set) do
    Enum.each(Enum.with_index(set), fn
      {%DSPex.Example{input_keys: keys}, _} when is_list(keys) ->
        :ok

      {%DSPex.Example{}, i} ->
        raise ArgumentError,
              "trainset example #{i} has no input keys: build it with DSPex.Example.with_inputs(example, [:field, ...])"

      {other, i} ->
        raise ArgumentError,
              "trainset element #{i} is not a %DSPex.Example{}: #{inspect(other, limit: 5)}"
    end)
  end

  defp check_trainset!(_),
    do: raise(ArgumentError, "the trainset must be a non-empty list of %DSPex.Example{}")
end
