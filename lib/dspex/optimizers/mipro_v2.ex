defmodule DSPex.Optimizers.MIPROv2 do
  @options DSPex.Options.schema!(
             metric: [type: :any, required: true, doc: "the metric (see `DSPex.Optimize`)."],
             prompt_model: [
               type: {:or, [:struct, nil]},
               doc: "the LM that proposes instructions (default: the configured LM)."
             ],
             task_model: [
               type: {:or, [:struct, nil]},
               doc: "the LM the program runs with while optimizing (default: the configured LM)."
             ],
             teacher: [
               type: {:or, [:struct, nil]},
               doc: "the program that bootstraps demos (default: the student)."
             ],
             teacher_settings: [
               type: :keyword,
               default: [],
               doc: "settings overrides while bootstrapping."
             ],
             max_bootstrapped_demos: [
               type: :non_neg_integer,
               default: 4,
               doc: "bootstrapped demos per set."
             ],
             max_labeled_demos: [
               type: :non_neg_integer,
               default: 4,
               doc: "labeled demos per set."
             ],
             auto: [
               type: {:or, [{:in, [:light, :medium, :heavy]}, nil]},
               default: :light,
               doc:
                 "DSPy's presets: `:light` (6 candidates, valset ≤ 100), `:medium` (12, 300), " <>
                   "`:heavy` (18, 1000); `nil` to give `num_candidates` and `num_trials`."
             ],
             num_candidates: [
               type: {:or, [:pos_integer, nil]},
               doc: "instruction and demo-set candidates (auto: nil)."
             ],
             num_trials: [type: {:or, [:non_neg_integer, nil]}, doc: "search trials (auto: nil)."],
             seed: [
               type: :non_neg_integer,
               default: 9,
               doc:
                 "the seed of the search (0 means 9 with `dspy_quirks`, as DSPy's `seed or self.seed`)."
             ],
             init_temperature: [type: :number, default: 1.0, doc: "the proposals' temperature."],
             track_stats: [
               type: :boolean,
               default: true,
               doc: "keep trial logs and candidate programs."
             ],
             metric_threshold: [type: {:or, [:number, nil]}, doc: "bootstrapping's pass mark."],
             valset: [
               type: {:or, [:list, nil]},
               doc: "validation examples (default: the last 80% of the trainset)."
             ],
             minibatch: [
               type: :boolean,
               default: true,
               doc: "score trials on minibatches (auto: valset > 50)."
             ],
             minibatch_size: [type: :pos_integer, default: 35, doc: "examples per minibatch."],
             minibatch_full_eval_steps: [
               type: :pos_integer,
               default: 5,
               doc: "a full evaluation every this many minibatch trials."
             ],
             program_aware_proposer: [
               type: :boolean,
               default: true,
               doc: "describe the program to the proposer."
             ],
             data_aware_proposer: [
               type: :boolean,
               default: true,
               doc: "summarize the dataset for the proposer."
             ],
             view_data_batch_size: [
               type: :pos_integer,
               default: 10,
               doc: "examples per summary call."
             ],
             tip_aware_proposer: [
               type: :boolean,
               default: true,
               doc: "a random prompting tip per proposal."
             ],
             fewshot_aware_proposer: [
               type: :boolean,
               default: true,
               doc: "show bootstrapped demos to the proposer."
             ],
             dspy_quirks: [
               type: :boolean,
               default: true,
               doc: "keep DSPy 3.3.1's behaviour where it is a bug (see \"DSPy's quirks\" above)."
             ]
           )

  @moduledoc """
  MIPROv2, DSPy's instruction and demo optimizer (`dspy.MIPROv2`), as a
  `DSPex.Optimize` job: budgeted, journaled, resumable, with the search in the C engine.

  The three steps are DSPy's:

    1. **demo candidates** — `num_candidates` few-shot demo sets per predictor
       (`DSPex.Optimizers.BootstrapFewShot.demo_candidates/3`: empty, labeled,
       bootstrapped, shuffled bootstraps, on MIPROv2's shared generator);
    2. **instruction candidates** — `DSPex.Optimizers.GroundedProposer` (dataset
       summary, program summary, task demos, tips) with DSPy's prompts; candidate 0 is
       the predictor's own instruction;
    3. **search** — optuna's `TPESampler(seed, multivariate=True)` over the per-predictor
       instruction and demo-set indices, run by the engine (`c_src/core/optim/engine.c`):
       the default program on the whole valset first, then `num_trials` trials on
       `rng.sample` minibatches of `minibatch_size` with a full evaluation of the best
       mean combination every `minibatch_full_eval_steps + 1` trials and at the end; the
       best full-valset score wins.

  With the same seed, data and LM answers, DSPex proposes the same instructions, builds
  the same demo sets, runs the same trials (parameters and minibatch examples) and
  returns the same program as DSPy 3.3.1 + optuna — golden traces of real runs in
  `test/fixtures/mipro/traces.json` (`tools/gen_mipro_traces.py`) prove it. `auto`
  numbers are DSPy's: `:light` 6 candidates / valset 100, `:medium` 12 / 300, `:heavy`
  18 / 1000; instruction candidates `n / 2` (few-shot) or `n` (zero-shot,
  `max_bootstrapped_demos: 0, max_labeled_demos: 0`); trials
  `int(max(2·V·log2 n, 1.5·n))` with V = predictors × (2 few-shot, 1 zero-shot).

      {:ok, result} = DSPex.Optimizers.MIPROv2.compile(RAG.new(), trainset,
                        metric: &MyApp.Metrics.match/2, auto: :light,
                        prompt_model: big_lm, task_model: small_lm,
                        max_cost: 5.0, prices: prices, journal: "runs/rag.journal")
      result.program              # the best program (save it with DSPex.Program.save/2)
      result.candidate_programs   # full evaluations, best first: %{score:, program:, full_eval: true}
      result.trial_logs           # per trial: params, minibatch or full score, calls so far

  ## DSPy's quirks (kept by default, `dspy_quirks: false` to fix)

    * **`seed: 0` becomes 9** (DSPy's `seed = seed or self.seed`). Fixed: 0 is 0.
    * **The proposal for demo set 0 is made and thrown away**: DSPy asks the prompt
      model for an instruction for set 0 and then replaces it with the predictor's own
      instruction. Fixed: that call is not made (its random draws still are, so the
      other proposals stay DSPy's).
    * **`total_calls` and `prompt_model_total_calls` are 0** (DSPy never counts them).
      Fixed: the evaluated examples and the prompt model's calls.

  Where DSPex differs from DSPy on purpose: DSPy's "no candidate left for a full
  evaluation" `ValueError` ends the job with `{:error, %DSPex.Error{type:
  :no_candidate}}` holding the best program so far; the proposer's program code is
  Elixir (see `DSPex.Optimizers.GroundedProposer`).

  ## Options

  #{DSPex.Options.docs(@options)}

  and the job options of `DSPex.Optimize` (budgets, journal, progress, `nodes:`,
  `max_concurrency`, `max_errors`).
  """

  @behaviour DSPex.Optimize.Optimizer

  alias DSPex.{Module, Random, Signature}
  alias DSPex.Optimize.{Run, Spec}
  alias DSPex.Optimizers.{BootstrapFewShot, GroundedProposer}

  @auto %{light: {6, 100}, medium: {12, 300}, heavy: {18, 1000}}
  # DSPy's BOOTSTRAPPED_FEWSHOT_EXAMPLES_IN_CONTEXT and MIN_MINIBATCH_SIZE
  @zeroshot_bootstrapped 3
  @min_minibatch 50

  @doc false
  def options, do: @options

  @impl true
  def name, do: "mipro_v2"

  @impl true
  def validate!(opts), do: DSPex.Options.validate!(opts, @options, "DSPex.Optimizers.MIPROv2")

  @doc """
  Runs MIPROv2 as a blocking job and returns `{:ok, %DSPex.Optimize.Result{}}`.

  ## Examples

      {:ok, result} = DSPex.Optimizers.MIPROv2.compile(qa, trainset, metric: &match/2, auto: :light)
  """
  @spec compile(term, [DSPex.Example.t()], keyword) ::
          {:ok, DSPex.Optimize.Result.t()} | {:error, DSPex.Error.t()}
  def compile(program, trainset, opts),
    do: DSPex.Optimize.compile(__MODULE__, program, trainset, opts)

  @impl true
  def spec(program, trainset, opts) do
    check_counts!(program, opts)
    {_train, val} = split(trainset, opts[:valset])
    zeroshot = zeroshot?(opts)

    case opts[:auto] do
      nil ->
        if opts[:minibatch] and opts[:minibatch_size] > length(val),
          do:
            raise(
              ArgumentError,
              "Minibatch size cannot exceed the size of the valset. Valset size: #{length(val)}."
            )

      auto ->
        {_n, val_size} = @auto[auto]
        size = min(val_size, length(val))

        if size > @min_minibatch and opts[:minibatch_size] > size,
          do:
            raise(
              ArgumentError,
              "Minibatch size cannot exceed the size of the valset. Valset size: #{size}."
            )
    end

    %{
      "seed" => seed(opts),
      "valset" => Spec.examples_hash(opts[:valset]),
      "options" =>
        Map.new(
          [
            auto: opts[:auto] && Atom.to_string(opts[:auto]),
            zeroshot: zeroshot,
            teacher: opts[:teacher] && Spec.program_hash(opts[:teacher])
          ] ++
            Keyword.take(opts, [
              :num_candidates,
              :num_trials,
              :max_bootstrapped_demos,
              :max_labeled_demos,
              :minibatch,
              :minibatch_size,
              :minibatch_full_eval_steps,
              :program_aware_proposer,
              :data_aware_proposer,
              :view_data_batch_size,
              :tip_aware_proposer,
              :fewshot_aware_proposer,
              :init_temperature,
              :metric_threshold,
              :dspy_quirks
            ]),
          fn {k, v} -> {Atom.to_string(k), v} end
        )
    }
  end

  # DSPy's checks of auto / num_candidates / num_trials (its messages).
  defp check_counts!(program, opts) do
    cond do
      opts[:auto] == nil and opts[:num_candidates] != nil and opts[:num_trials] == nil ->
        raise ArgumentError,
              "If auto is None, num_trials must also be provided. Given num_candidates=#{opts[:num_candidates]}, " <>
                "we'd recommend setting num_trials to ~#{num_trials(program, zeroshot?(opts), opts[:num_candidates])}."

      opts[:auto] == nil and (opts[:num_candidates] == nil or opts[:num_trials] == nil) ->
        raise ArgumentError, "If auto is None, num_candidates must also be provided."

      opts[:auto] != nil and (opts[:num_candidates] != nil or opts[:num_trials] != nil) ->
        raise ArgumentError,
              "If auto is not None, num_candidates and num_trials cannot be set, since they would be " <>
                "overridden by the auto settings. Please either set auto to None, or do not specify " <>
                "num_candidates and num_trials."

      true ->
        :ok
    end
  end

  defp zeroshot?(opts), do: opts[:max_bootstrapped_demos] == 0 and opts[:max_labeled_demos] == 0

  defp seed(opts) do
    if opts[:dspy_quirks] and opts[:seed] == 0, do: 9, else: opts[:seed]
  end

  @doc false
  # int(max(2 * V * log2(n), 1.5 * n)), V = predictors x (1 zero-shot, 2 few-shot)
  def num_trials(program, zeroshot, n) do
    v = length(Module.predictors(program)) * if(zeroshot, do: 1, else: 2)
    trunc(max(2 * v * :math.log2(n), 1.5 * n))
  end

  # No valset: the last min(1000, max(1, int(0.8 n))) examples (DSPy needs >= 2).
  defp split(trainset, nil) do
    if length(trainset) < 2,
      do: raise(ArgumentError, "Trainset must have at least 2 examples if no valset specified.")

    size = min(1000, max(1, trunc(length(trainset) * 0.8)))
    Enum.split(trainset, length(trainset) - size)
  end

  defp split(_trainset, []),
    do: raise(ArgumentError, "Validation set must have at least 1 example.")

  defp split(trainset, valset), do: {trainset, valset}

  # ------------------------------------------------------------------ the run

  @impl true
  def run(%Run{} = run, program, trainset, opts) do
    {train, val_pool} = split(trainset, opts[:valset])
    zeroshot = zeroshot?(opts)
    rng = Random.new(seed(opts))

    # the search's settings; auto mode samples the valset with the shared rng (draw 1)
    {val_idx, rng, minibatch, n_instr, n_demos, n_trials} =
      case opts[:auto] do
        nil ->
          n = opts[:num_candidates]

          {Enum.to_list(0..(length(val_pool) - 1)), rng, opts[:minibatch], n, n,
           opts[:num_trials]}

        auto ->
          {n, val_size} = @auto[auto]

          {idx, rng} =
            Random.sample(rng, 0..(length(val_pool) - 1), min(val_size, length(val_pool)))

          n_instr = if zeroshot, do: n, else: trunc(n * 0.5)
          {idx, rng, length(idx) > @min_minibatch, n_instr, n, num_trials(program, zeroshot, n)}
      end

    setup = fn ->
      Run.progress(run, {:phase, "bootstrapping #{n_demos} demo sets"})
      task_lm = Run.task_lm(run)

      max_errors = run.opts[:max_errors]

      demo_result =
        DSPex.Settings.with_settings([lm: task_lm], fn ->
          BootstrapFewShot.demo_candidates(
            program,
            train,
            [
              num_candidate_sets: n_demos,
              max_labeled_demos: if(zeroshot, do: 0, else: opts[:max_labeled_demos]),
              max_bootstrapped_demos:
                if(zeroshot, do: @zeroshot_bootstrapped, else: opts[:max_bootstrapped_demos]),
              metric: bootstrap_metric(opts[:metric]),
              metric_threshold: opts[:metric_threshold],
              teacher: opts[:teacher],
              teacher_settings: opts[:teacher_settings],
              rng: rng
            ] ++ if(is_integer(max_errors), do: [max_errors: max_errors], else: [])
          )
        end)

      with {:ok, %{demo_candidates: sets, rng: rng}} <- demo_result do
        demo_candidates = sets |> Enum.with_index() |> Map.new(fn {set, i} -> {i, set} end)
        Run.progress(run, {:phase, "proposing #{n_instr} instructions per predictor"})
        prompt_lm = Run.metered(run, opts[:prompt_model] || DSPex.Settings.get(:lm))
        calls_before = DSPex.Optimize.Meter.totals(run.meter).lm_calls

        {instr, rng} =
          GroundedProposer.propose(program,
            prompt_model: prompt_lm,
            trainset: train,
            demo_candidates: demo_candidates,
            n: n_instr,
            rng: rng,
            program_aware: opts[:program_aware_proposer],
            use_dataset_summary: opts[:data_aware_proposer],
            use_task_demos: opts[:fewshot_aware_proposer],
            use_tip: opts[:tip_aware_proposer],
            set_tip_randomly: opts[:tip_aware_proposer],
            view_data_batch_size: opts[:view_data_batch_size],
            init_temperature: opts[:init_temperature],
            skip_set0: not opts[:dspy_quirks]
          )

        prompt_calls = DSPex.Optimize.Meter.totals(run.meter).lm_calls - calls_before

        instr =
          for {p, i} <- Enum.with_index(Module.predictors(program)), into: %{} do
            {i, List.replace_at(Map.fetch!(instr, i), 0, p.signature.instructions)}
          end

        demo_candidates = if zeroshot, do: nil, else: demo_candidates

        params =
          for i <- 0..(map_size(instr) - 1), reduce: [] do
            acc ->
              acc ++
                [{"#{i}_predictor_instruction", length(instr[i])}] ++
                if(demo_candidates,
                  do: [{"#{i}_predictor_demos", length(demo_candidates[i])}],
                  else: []
                )
          end

        config = %{
          mode: :tpe,
          params: params,
          seed: seed(opts),
          num_trials: n_trials,
          valset_size: length(val_idx),
          minibatch: minibatch,
          minibatch_size: opts[:minibatch_size],
          full_eval_steps: opts[:minibatch_full_eval_steps],
          rng_state: rng.state
        }

        {config,
         %{
           instruction_candidates: instr,
           demo_candidates: demo_candidates,
           valset: val_idx,
           minibatch: minibatch,
           num_trials: n_trials,
           prompt_calls: prompt_calls
         }}
      end
    end

    case Run.setup(run, setup) do
      {:ok, blob, run} ->
        search(run, program, blob, val_pool, opts)

      {:stop, reason, run} ->
        {:ok, stopped(program, reason, nil), run}

      {:error, e, run} ->
        {:error, e, stopped(program, e, nil) |> Map.put(:status, :failed), run}
    end
  end

  # BootstrapFewShot takes metric functions; a built-in metric spec becomes one.
  defp bootstrap_metric(metric) when is_function(metric), do: metric

  defp bootstrap_metric(spec) do
    m = DSPex.Evaluate.Metric.new!(spec)

    if m.builtin,
      do: fn ex, pred ->
        hd(DSPex.Evaluate.Metric.score_batch(m, [DSPex.Evaluate.Metric.extract(m, ex, pred)]))
      end,
      else: m.fun
  end

  defp stopped(program, reason, score) do
    %{program: program, score: score, status: Run.stop_status(reason), reason: reason}
  end

  # ------------------------------------------------------------------ step 3

  defp search(run, program, blob, val_pool, opts) do
    val = List.to_tuple(Enum.map(blob.valset, &Enum.at(val_pool, &1)))
    n_val = tuple_size(val)
    mb_size = opts[:minibatch_size]
    steps = opts[:minibatch_full_eval_steps]

    # ETA: examples the remaining trials will score
    remaining = fn r ->
      planned = r.planned || 0
      left = max(planned - r.told, 0)
      fulls = if blob.minibatch, do: div(blob.num_trials, steps) + 1, else: 0
      done_fulls = Enum.count(r.trials, fn {t, _} -> t.examples == :all end)
      left_fulls = max(fulls + 1 - done_fulls, 0)
      batch = if blob.minibatch, do: mb_size, else: n_val
      max(left - left_fulls, 0) * batch + min(left, left_fulls) * n_val
    end

    run = %{run | opts: Keyword.put(run.opts, :remaining_examples, remaining)}

    st = %{
      program: program,
      blob: blob,
      val: val,
      n_val: n_val,
      mb_size: mb_size,
      by_number: %{},
      score_data: [],
      logs: [],
      total_eval_calls: 0,
      best_number: nil,
      opts: opts
    }

    loop(run, st)
  end

  defp loop(run, st) do
    case Run.next(run) do
      {:replayed, trial, told, run} ->
        st = record(st, trial, told.score)
        # the journal's best (its trial may come later in the replay)
        {run, st} =
          if Map.has_key?(st.by_number, run.best_number),
            do: best_changed(run, st, run.best_number, true),
            else: {run, st}

        loop(run, st)

      {:trial, trial, run} ->
        program = candidate(st, trial)

        with {:ok, out, run} <- Run.evaluate(run, trial, program, devset(st, trial)),
             {:ok, status, run} <- Run.tell(run, trial, out, %{examples: out_examples(out)}) do
          st = record(st, trial, out.score)
          {run, st} = best_changed(run, st, status.best_number, false)
          loop(run, st)
        else
          {:stop, reason, run} -> finish(run, st, {:stop, reason})
          {:error, e, run} -> finish(run, st, {:error, e})
        end

      {:done, run} ->
        finish(run, st, :done)

      {:stop, reason, run} ->
        finish(run, st, {:stop, reason})

      {:error, e, run} ->
        finish(run, st, {:error, e})

      {:need, run} ->
        finish(run, st, {:error, DSPex.Error.new(:sequence, "a TPE job asked for a batch", %{})})
    end
  end

  defp out_examples(%{result: {:ok, r}}), do: %{total: r.total, errors: length(r.errors)}
  defp out_examples(_), do: %{failed: true}

  # The program a trial runs: the default program (trial 1) is the student as it is.
  defp candidate(st, %{kind: :default}), do: st.program

  defp candidate(st, %{params: params}) do
    instr = st.blob.instruction_candidates
    demos = st.blob.demo_candidates
    per = if demos, do: 2, else: 1

    st.program
    |> Module.predictors()
    |> Enum.with_index()
    |> Enum.reduce(st.program, fn {_p, i}, prog ->
      ins_idx = Enum.at(params, i * per)
      name = prog |> Module.named_predictors() |> Enum.at(i) |> elem(0)

      Module.update_predictor(prog, name, fn p ->
        p = %{p | signature: Signature.with_instructions(p.signature, Enum.at(instr[i], ins_idx))}
        if demos, do: %{p | demos: Enum.at(demos[i], Enum.at(params, i * per + 1))}, else: p
      end)
    end)
  end

  defp devset(st, %{examples: :all}), do: Tuple.to_list(st.val)
  defp devset(st, %{examples: idx}), do: Enum.map(idx, &elem(st.val, &1))

  # score_data and trial_logs, as DSPy keeps them.
  defp record(st, trial, score) do
    full = trial.examples == :all
    batch = if full, do: st.n_val, else: length(trial.examples)
    total = st.total_eval_calls + batch

    log =
      case trial.kind do
        k when k in [:default, :full_eval] ->
          %{"full_eval_score" => score, "total_eval_calls_so_far" => total}

        :objective ->
          chosen = chosen_params(st, trial.params)
          key = if full, do: "full_eval_score", else: "mb_score"
          Map.merge(chosen, %{key => score, "total_eval_calls_so_far" => total})
      end
      |> Map.merge(%{
        number: trial.number,
        kind: trial.kind,
        params: trial.params,
        examples: trial.examples,
        score: score
      })

    program = candidate(st, trial)

    %{
      st
      | total_eval_calls: total,
        by_number: Map.put(st.by_number, trial.number, {trial, program}),
        score_data: st.score_data ++ [%{score: score, program: program, full_eval: full}],
        logs: [log | st.logs]
    }
  end

  defp chosen_params(st, params) do
    per = if st.blob.demo_candidates, do: 2, else: 1

    for {v, j} <- Enum.with_index(params), into: %{} do
      i = div(j, per)

      if rem(j, per) == 0,
        do: {"#{i}_predictor_instruction", v},
        else: {"#{i}_predictor_demos", v}
    end
  end

  defp best_changed(run, st, number, replayed) when number != nil and number != st.best_number do
    {trial, program} = Map.fetch!(st.by_number, number)
    score = Enum.find_value(st.logs, fn l -> if l.number == trial.number, do: l.score end)

    case Run.note_best(run, number, score, program, replayed) do
      {:ok, run} -> {run, %{st | best_number: number}}
      {:error, _e, run} -> {run, %{st | best_number: number}}
    end
  end

  defp best_changed(run, st, _number, _replayed), do: {run, st}

  defp finish(run, st, how) do
    {program, score} =
      case st.best_number && Map.get(st.by_number, st.best_number) do
        {trial, program} ->
          {program, Enum.find_value(st.logs, &if(&1.number == trial.number, do: &1.score))}

        _ ->
          {st.program, nil}
      end

    # sorted(score_data, key=score, reverse=True): stable
    sorted =
      st.score_data
      |> Enum.with_index()
      |> Enum.sort_by(fn {e, i} -> {-e.score, i} end)
      |> Enum.map(&elem(&1, 0))

    quirks = st.opts[:dspy_quirks]

    fields = %{
      program: program,
      score: score,
      trial_logs: Enum.reverse(st.logs),
      candidate_programs: Enum.filter(sorted, & &1.full_eval),
      mb_candidate_programs: Enum.reject(sorted, & &1.full_eval),
      total_calls: if(quirks, do: 0, else: st.total_eval_calls),
      prompt_model_total_calls: if(quirks, do: 0, else: st.blob[:prompt_calls] || 0)
    }

    case how do
      :done ->
        {:ok, Map.merge(fields, %{status: :finished, reason: nil}), run}

      {:stop, reason} ->
        {:ok, Map.merge(fields, %{status: Run.stop_status(reason), reason: reason}), run}

      {:error, e} ->
        {:error, e, Map.merge(fields, %{status: :failed, reason: e}), run}
    end
  end
end
