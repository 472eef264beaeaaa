defmodule DSPex.Optimizers.SIMBA do
  @options DSPex.Options.schema!(
             metric: [
               type: :any,
               required: true,
               doc:
                 "`(example, prediction) -> score` (a number, a boolean, a `%DSPex.Prediction{}` or map with `:score`; anything else or a raise scores 0.0)."
             ],
             bsize: [type: :pos_integer, default: 32, doc: "mini-batch size."],
             num_candidates: [
               type: :pos_integer,
               default: 6,
               doc: "new candidate programs per step (and LM samples per example)."
             ],
             max_steps: [type: :non_neg_integer, default: 8, doc: "optimization steps."],
             max_demos: [
               type: :non_neg_integer,
               default: 4,
               doc: "demos a predictor may hold before some are dropped (0: rules only)."
             ],
             prompt_model: [
               type: {:or, [:struct, nil]},
               doc: "the LM that writes rules (default: the configured LM)."
             ],
             task_model: [
               type: {:or, [:struct, nil]},
               doc: "the LM the programs run with (default: the configured LM)."
             ],
             teacher_settings: [
               type: {:or, [:keyword, :map, nil]},
               doc: "`[lm: teacher]`: the teacher LM is the first of the sampled models."
             ],
             demo_input_field_maxlen: [
               type: :non_neg_integer,
               default: 100_000,
               doc: "input characters kept in a new demo (longer ones are cut)."
             ],
             num_threads: [
               type: {:or, [:pos_integer, nil]},
               doc: "program runs at once (default: the job's `max_concurrency`, else 8)."
             ],
             temperature_for_sampling: [
               type: :number,
               default: 0.2,
               doc: "softmax temperature for picking programs during trajectory sampling."
             ],
             temperature_for_candidates: [
               type: :number,
               default: 0.2,
               doc: "softmax temperature for picking the source of a new candidate."
             ],
             seed: [type: :non_neg_integer, default: 0, doc: "`compile(..., seed=)`."]
           )

  @moduledoc """
  SIMBA (Stochastic Introspective Mini-Batch Ascent), DSPy 3.3.1's `dspy.SIMBA`, as a
  `DSPex.Optimize` job.

  Each of `max_steps` steps takes the next `bsize` training examples (the indices are
  shuffled with `random.Random(seed)` and reshuffled when the next batch would overrun)
  and runs every example `num_candidates` times, each time with a program drawn by a
  softmax over the best programs so far (the baseline always among them) and the task
  LM at `temperature: 1.0` with its own `rollout_id`. Examples whose runs differ most
  (max − min, then max, then max − average) are turned into new candidates: a source
  program is drawn, a Poisson number of its demos dropped (numpy's `default_rng(seed)`,
  reproduced in `DSPex.Optimizers.SIMBA.NumpyRandom`), then either **append a demo** (the
  best run's predictor calls become `augmented` demos) or **append a rule** (the prompt
  model compares the best and the worst run with DSPy's `OfferFeedback` signature and
  its `module_advice` is appended to each predictor's instructions). The new candidates
  are scored on the same batch, the best of them is the step's winner; at the end up to
  `num_candidates + 1` evenly spaced winners are scored on the whole trainset and the
  best is returned.

      {:ok, result} = DSPex.Optimizers.SIMBA.compile(program, trainset,
                        metric: &MyApp.match/2, bsize: 8, num_candidates: 4, max_steps: 4)
      result.program              # the best program
      result.candidate_programs   # [%{score:, program:}], best first
      result.score                # its trainset average (0.0..1.0, DSPy's scale)

  With the same seed, data and LM answers DSPex draws the same programs, demos and
  strategies, sends the same `OfferFeedback` prompts (but the program's source) and
  returns the same program as DSPy (golden-checked with `tools/gen_simba_traces.py`).

  ## As a job

  A step is two kinds of trials of the engine's QUEUE mode: one *sampling* trial (all
  `num_candidates × bsize` runs and the new candidates built from them — its journaled
  record carries the candidates and both random states) and one trial per new candidate
  on the batch; the final evaluations are one trial each on `:all`. A resume redoes no
  finished trial and makes no rule call of a finished step again. The sampling trial's
  score is the batch's average; `stop_at_score` compares any trial's score (mini-batch
  averages included). A job stopped early (budget, cancel, target) returns the
  mini-batch-best winner so far (`result.extra.stopped_at_step`), not a full-trainset
  pick.

  Where DSPex differs from DSPy: the runs go through `DSPex.Settings.async_stream`
  (`num_threads` at once; not `nodes:`); `OfferFeedback` is shown the Elixir module's
  source as `program_code`; the trajectories' input and output fields are in signature
  order (DSPy: call order, the same for DSPex's own modules).

  ## Options

  #{DSPex.Options.docs(@options)}

  and the job options of `DSPex.Optimize` (budgets, journal, progress).
  """

  @behaviour DSPex.Optimize.Optimizer

  alias DSPex.Optimize.{Meter, Run}
  alias DSPex.Optimizers.SIMBA.{NumpyRandom, OfferFeedback}
  alias DSPex.{Module, Signature}

  @doc false
  def options, do: @options

  @impl true
  def name, do: "simba"

  @impl true
  def validate!(opts), do: DSPex.Options.validate!(opts, @options, "DSPex.Optimizers.SIMBA")

  @impl true
  def spec(_program, trainset, opts) do
    if length(trainset) < opts[:bsize],
      do: raise(ArgumentError, "Trainset too small: #{length(trainset)} < #{opts[:bsize]}")

    %{
      "seed" => opts[:seed],
      "options" => %{
        "bsize" => opts[:bsize],
        "num_candidates" => opts[:num_candidates],
        "max_steps" => opts[:max_steps],
        "max_demos" => opts[:max_demos],
        "demo_input_field_maxlen" => opts[:demo_input_field_maxlen],
        "temperature_for_sampling" => opts[:temperature_for_sampling] * 1.0,
        "temperature_for_candidates" => opts[:temperature_for_candidates] * 1.0,
        "teacher" => opts[:teacher_settings] != nil
      }
    }
  end

  @doc """
  Runs SIMBA as a blocking job and returns `{:ok, %DSPex.Optimize.Result{}}` (DSPy's
  `SIMBA(metric=..., ...).compile(student, trainset=..., seed=...)`; see
  `DSPex.Optimize` for budgets, journal and progress).

  ## Examples

      {:ok, result} = DSPex.Optimizers.SIMBA.compile(qa, trainset, metric: &match/2, bsize: 4, max_steps: 2)
  """
  @spec compile(term, [DSPex.Example.t()], keyword) ::
          {:ok, DSPex.Optimize.Result.t()} | {:error, DSPex.Error.t()}
  def compile(program, trainset, opts),
    do: DSPex.Optimize.compile(__MODULE__, program, trainset, opts)

  # ------------------------------------------------------------------ the search

  @impl true
  def run(%Run{} = run, program, trainset, opts) do
    n = length(trainset)

    student = Module.assign_names(program)
    steps = opts[:max_steps]
    nc = opts[:num_candidates]
    run = %{run | plan: steps * (nc + 2) + nc + 1}
    rng = DSPex.Random.new(opts[:seed])
    {data, rng} = DSPex.Random.shuffle(rng, Enum.to_list(0..(n - 1)))

    st = %{
      opts: opts,
      trainset: List.to_tuple(trainset),
      n: n,
      student: student,
      rng: rng,
      np: NumpyRandom.new(opts[:seed]),
      programs: [0],
      by_idx: %{0 => student},
      scores: %{0 => []},
      next_idx: 0,
      winners: [student],
      data: data,
      pos: 0,
      batch: 0,
      trial_logs: %{},
      best: nil
    }

    case Run.setup(run, fn -> {%{mode: :queue}, %{optimizer: "simba"}} end) do
      {:ok, _, run} -> step(run, st, 0)
      {:stop, reason, run} -> finish(run, st, :stop, reason)
      {:error, e, run} -> finish(run, st, :error, e)
    end
  end

  defp step(run, st, s) do
    if s >= st.opts[:max_steps], do: final(run, st), else: do_step(run, st, s)
  end

  defp do_step(run, st, s) do
    bsize = st.opts[:bsize]

    st =
      if st.pos + bsize > st.n do
        {data, rng} = DSPex.Random.shuffle(st.rng, st.data)
        %{st | data: data, rng: rng, pos: 0}
      else
        st
      end

    batch = Enum.slice(st.data, st.pos, bsize)
    st = %{st | pos: st.pos + bsize, trial_logs: Map.put(st.trial_logs, s, %{})}

    with {:ok, _, run} <-
           Run.batch(run, st.batch, fn -> {1, batch, %{step: s, kind: :sample}} end),
         st = %{st | batch: st.batch + 1},
         {:ok, sampled, run} <- sample_trial(run, st, s, batch) do
      st = %{st | rng: sampled.rng, np: sampled.np}
      cands = Enum.map(sampled.candidates, &apply_candidate(st.student, &1))
      st = put_log(st, s, %{batch_mean: sampled.mean, p10: sampled.p10, p90: sampled.p90})

      if cands == [] do
        step(run, st, s + 1)
      else
        score_candidates(run, st, s, batch, cands)
      end
    else
      {:stop, reason, run} -> finish(run, st, :stop, reason)
      {:error, e, run} -> finish(run, st, :error, e)
    end
  end

  defp put_log(st, s, m),
    do: %{st | trial_logs: Map.update(st.trial_logs, s, m, &Map.merge(&1, m))}

  # ------------------------------------------------------------------ step 1-4: sampling

  # The sampling trial: runs, buckets, new candidates. Its journaled tail holds what
  # the rest of the step needs (candidates, both generators' states).
  defp sample_trial(run, st, s, batch) do
    case next_trial(run, st.batch - 1, 0) do
      {:replayed, _trial, told, run} ->
        {:ok, told.tail, run}

      {:trial, trial, run} ->
        case Run.execute_trial(run, trial, length(batch), fn ->
               sample_and_build(run, st, s, batch)
             end) do
          {:ok, outcome, run} ->
            case Run.tell(run, trial, outcome, outcome.tail) do
              {:ok, _status, run} -> {:ok, outcome.tail, run}
              {:error, e, run} -> {:error, e, run}
            end

          other ->
            other
        end

      other ->
        other
    end
  end

  defp sample_and_build(run, st, _s, batch) do
    opts = st.opts
    nc = opts[:num_candidates]
    bsize = length(batch)
    models = models(run, st)
    top = top_k_plus_baseline(st, nc)

    {pairs, rng} =
      for {lm, params} <- models, i <- batch, reduce: {[], st.rng} do
        {acc, rng} ->
          {idx, rng} = softmax_sample(st, rng, top, opts[:temperature_for_sampling])
          prog = Module.set_lm(Map.fetch!(st.by_idx, idx), lm)
          {[{prog, params, i} | acc], rng}
      end

    pairs = Enum.reverse(pairs)
    outputs = List.to_tuple(exec(st, pairs))
    nums = for o <- Tuple.to_list(outputs), do: num(o.score)
    p10 = percentile(nums, 10)
    p90 = percentile(nums, 90)
    mean = Enum.sum(nums) / length(nums)

    buckets =
      for e <- 0..(bsize - 1) do
        bucket =
          for(m <- 0..(length(models) - 1), do: elem(outputs, m * bsize + e))
          |> sort_desc(&{num(&1.score)})

        mx = num(hd(bucket).score) * 1.0
        mn = num(List.last(bucket).score) * 1.0
        avg = Enum.sum(Enum.map(bucket, &num(&1.score))) / length(bucket)
        {bucket, {mx - mn, mx, mx - avg}}
      end
      |> sort_desc(&elem(&1, 1))

    st = %{st | rng: rng}
    {cands, st} = build(run, st, buckets, p10, p90, [])

    %{
      score: mean,
      tail: %{
        candidates: Enum.map(cands, &candidate_state/1),
        rng: st.rng,
        np: st.np,
        mean: mean,
        scores: for(o <- Tuple.to_list(outputs), do: o.score),
        p10: p10,
        p90: p90
      }
    }
  end

  # prepare_models_for_resampling: num_candidates copies of the baseline's LM at
  # temperature 1.0 with rollout ids start.. (the teacher first when there is one).
  defp models(run, st) do
    lm = Module.get_lm(st.student) || st.opts[:task_model] || DSPex.Settings.get(:lm)
    start = rollout_id(lm)
    ids = Enum.map(0..(st.opts[:num_candidates] - 1), &(start + &1))
    metered = Run.metered(run, lm)

    case teacher(st.opts[:teacher_settings], lm) do
      nil ->
        for r <- ids, do: {metered, %{rollout_id: r, temperature: 1.0}}

      t ->
        [r0 | rest] = ids

        [{Run.metered(run, t), %{rollout_id: r0}}] ++
          for r <- rest, do: {metered, %{rollout_id: r, temperature: 1.0}}
    end
  end

  defp teacher(nil, _lm), do: nil
  defp teacher(settings, lm) when is_list(settings), do: settings[:lm] || lm
  defp teacher(settings, lm), do: settings[:lm] || settings["lm"] || lm

  defp rollout_id(%{kwargs: %{} = kw}), do: Map.get(kw, :rollout_id) || 0
  defp rollout_id(_), do: 0

  defp calc_average(st, idx) do
    case Map.get(st.scores, idx, []) do
      [] -> 0.0
      scores -> Enum.sum(Enum.map(scores, &num/1)) / length(scores)
    end
  end

  defp top_k_plus_baseline(st, k) do
    top =
      st.programs
      |> sort_desc(&{calc_average(st, &1)})
      |> Enum.take(k)

    top =
      if 0 in top or top == [],
        do: top,
        else: List.replace_at(top, -1, 0)

    Enum.uniq(top)
  end

  defp softmax_sample(st, rng, idxs, temperature) do
    exps = for i <- idxs, do: :math.exp(calc_average(st, i) / temperature)
    total = Enum.reduce(exps, 0, &(&2 + &1))

    if total <= 0 do
      DSPex.Random.choice(rng, idxs)
    else
      probs = for e <- exps, do: e / total
      {[picked], rng} = DSPex.Random.choices(rng, idxs, weights: probs, k: 1)
      {picked, rng}
    end
  end

  # Step 4: walk the buckets until num_candidates + 1 new programs.
  defp build(_run, st, [], _p10, _p90, acc), do: {Enum.reverse(acc), st}

  defp build(run, st, [{bucket, _stats} | rest], p10, p90, acc) do
    opts = st.opts
    top = top_k_plus_baseline(st, opts[:num_candidates])
    {src, rng} = softmax_sample(st, st.rng, top, opts[:temperature_for_candidates])
    cand = Map.fetch!(st.by_idx, src)
    md = if opts[:max_demos] > 0, do: opts[:max_demos], else: 3
    d = cand |> Module.predictors() |> Enum.map(&length(&1.demos)) |> Enum.max(fn -> 0 end)
    {k, np} = NumpyRandom.poisson(st.np, d / md)
    drop = min(max(k, if(d >= md, do: 1, else: 0)), d)

    {drops, rng} =
      Enum.map_reduce(List.duplicate(nil, drop), rng, fn _, rng ->
        DSPex.Random.randrange(rng, d)
      end)

    cand =
      Module.map_predictors(cand, fn _name, p ->
        demos = for {demo, i} <- Enum.with_index(p.demos), i not in drops, do: demo

        %{p | demos: demos}
      end)

    strategies =
      if opts[:max_demos] > 0, do: [:append_a_demo, :append_a_rule], else: [:append_a_rule]

    {strategy, rng} = DSPex.Random.choice(rng, strategies)
    st = %{st | rng: rng, np: np}

    # DSPy keeps the candidate when a strategy declines (returns False) and drops it
    # only when the strategy raises
    case apply_strategy(strategy, run, st, bucket, cand, p10, p90) do
      {:ok, cand} ->
        acc = [cand | acc]

        if length(acc) >= opts[:num_candidates] + 1,
          do: {Enum.reverse(acc), st},
          else: build(run, st, rest, p10, p90, acc)

      :declined ->
        acc = [cand | acc]

        if length(acc) >= opts[:num_candidates] + 1,
          do: {Enum.reverse(acc), st},
          else: build(run, st, rest, p10, p90, acc)

      :failed ->
        build(run, st, rest, p10, p90, acc)
    end
  end

  defp apply_strategy(:append_a_demo, _run, st, [good | _], cand, p10, _p90) do
    if num(good.score) <= p10 do
      :declined
    else
      maxlen = st.opts[:demo_input_field_maxlen]

      by_name =
        Enum.reduce(good.trace, %{}, fn {name, inputs, outputs}, acc ->
          outputs = Map.new(outputs)

          inputs =
            Map.new(inputs, fn {k, v} ->
              text = if is_binary(v), do: v, else: to_string_py(v)
              cps = String.codepoints(text)

              if maxlen > 0 and length(cps) > maxlen,
                do: {k, Enum.join(Enum.take(cps, maxlen)) <> "\n\t\t... <TRUNCATED FOR BREVITY>"},
                else: {k, v}
            end)

          Map.put(acc, name, inputs |> Map.merge(outputs) |> Map.put(:augmented, true))
        end)

      {:ok,
       Module.map_predictors(cand, fn name, p ->
         case Map.fetch(by_name, name) do
           {:ok, demo} -> %{p | demos: p.demos ++ [demo]}
           :error -> p
         end
       end)}
    end
  end

  defp apply_strategy(:append_a_rule, run, st, bucket, cand, p10, p90) do
    good = hd(bucket)
    bad = List.last(bucket)

    cond do
      num(good.score) <= p10 or num(bad.score) >= p90 ->
        :declined

      true ->
        {good, bad} =
          if num(good.score) <= num(bad.score) do
            masked = %{trace: [], score: "N/A", prediction: [{"N/A", "Prediction not available"}]}

            if num(good.score) > p90,
              do: {good, Map.merge(bad, masked)},
              else: {Map.merge(good, masked), bad}
          else
            {good, bad}
          end

        rule(run, st, good, bad, cand)
    end
  end

  # dict(None) raises in DSPy: the strategy fails
  defp rule(_run, _st, %{prediction: nil}, _bad, _cand), do: :failed

  defp rule(run, st, good, bad, cand) do
    names = for {name, _} <- Module.named_predictors(cand), do: name
    ex = elem(st.trainset, good.example)

    args = %{
      program_code: OfferFeedback.program_code(cand),
      modules_defn: DSPex.Refine.inspect_modules(cand),
      program_inputs: OfferFeedback.dump(ordered_fields(DSPex.Example.inputs(ex), ex)),
      oracle_metadata: OfferFeedback.dump(ordered_fields(DSPex.Example.labels(ex), ex)),
      better_program_trajectory: OfferFeedback.dump(trajectory(good.trace)),
      better_program_outputs: OfferFeedback.dump({:ordered, good.prediction}),
      worse_program_trajectory: OfferFeedback.dump(trajectory(bad.trace)),
      worse_program_outputs: OfferFeedback.dump({:ordered, bad.prediction || []}),
      worse_reward_value: OfferFeedback.dump(bad.score),
      better_reward_value: OfferFeedback.dump(good.score),
      worse_reward_info: OfferFeedback.dump({:ordered, bad.meta}),
      better_reward_info: OfferFeedback.dump({:ordered, good.meta}),
      module_names: OfferFeedback.dump(names)
    }

    lm = Run.metered(run, st.opts[:prompt_model] || DSPex.Settings.get(:lm))
    advisor = DSPex.Predict.new(OfferFeedback.signature(), lm: lm)

    {result, _trace} = DSPex.Trace.with_trace(fn -> DSPex.Predict.call(advisor, args) end)

    case result do
      {:ok, %{module_advice: advice}} when is_map(advice) ->
        advice = Map.new(advice, fn {k, v} -> {to_string(k), v} end)

        {:ok,
         Module.map_predictors(cand, fn name, p ->
           case Map.fetch(advice, name) do
             {:ok, text} ->
               sig = p.signature
               instr = (sig.instructions || "") <> "\n\n" <> to_string_py(text)
               %{p | signature: Signature.with_instructions(sig, instr)}

             :error ->
               p
           end
         end)}

      # DSPy logs the failed strategy and skips the bucket
      _ ->
        :failed
    end
  end

  defp trajectory(trace) do
    for {name, i, o} <- trace,
        do:
          {:ordered,
           [{"module_name", name}, {"inputs", {:ordered, i}}, {"outputs", {:ordered, o}}]}
  end

  # an example's fields in a stable order: its input keys' order, then the rest sorted
  defp ordered_fields(map, ex) do
    keys = Enum.filter(ex.input_keys || [], &Map.has_key?(map, &1))
    rest = map |> Map.keys() |> Kernel.--(keys) |> Enum.sort_by(&to_string/1)
    {:ordered, for(k <- keys ++ rest, do: {to_string(k), Map.fetch!(map, k)})}
  end

  # ------------------------------------------------------------------ executing programs

  # wrap_program over pairs {program, lm_params, example_index}: every failure scores
  # 0.0, results in pair order.
  defp exec(st, pairs) do
    threads = st.opts[:num_threads] || 8
    metric = st.opts[:metric]
    base = Map.new(DSPex.Settings.get(:lm_params, %{}))

    pairs
    |> DSPex.Settings.async_stream(
      fn {prog, params, i} ->
        ex = elem(st.trainset, i)
        run_one(prog, Map.merge(base, params), ex, i, metric)
      end,
      max_concurrency: threads,
      timeout: :infinity,
      ordered: true
    )
    |> Enum.zip(pairs)
    |> Enum.map(fn
      {{:ok, out}, _} ->
        out

      {{:exit, _}, {_, _, i}} ->
        %{prediction: nil, trace: [], score: 0.0, meta: [], example: i}
    end)
  end

  defp run_one(prog, params, ex, i, metric) do
    names = Map.new(Module.named_predictors(prog), fn {name, p} -> {p.name, {name, p}} end)

    {result, trace} =
      DSPex.Settings.with_settings([lm_params: params], fn ->
        DSPex.Trace.with_trace(fn ->
          try do
            DSPex.call(prog, ex)
          rescue
            e -> {:error, e}
          catch
            kind, reason -> {:error, {kind, reason}}
          end
        end)
      end)

    pred = with {:ok, p} <- result, do: p, else: (_ -> nil)

    trace =
      for {rname, inputs, outputs} <- trace, Map.has_key?(names, rname) do
        {name, p} = Map.fetch!(names, rname)
        {name, in_order(inputs, p.signature.inputs), in_order(outputs, p.signature.outputs)}
      end

    {score, meta} = score(metric, ex, pred)

    %{
      prediction: pred_fields(pred),
      trace: trace,
      score: score,
      meta: meta,
      example: i
    }
  end

  defp in_order(map, fields) do
    keys = for f <- fields, Map.has_key?(map, f.name), do: f.name
    rest = map |> Map.keys() |> Kernel.--(keys) |> Enum.sort_by(&to_string/1)
    for k <- keys ++ rest, do: {k, Map.fetch!(map, k)}
  end

  defp pred_fields(nil), do: nil
  defp pred_fields(%DSPex.Prediction{} = p), do: DSPex.Prediction.to_list(p)

  defp pred_fields(m) when is_map(m),
    do: m |> Map.to_list() |> Enum.sort_by(&to_string(elem(&1, 0)))

  defp pred_fields(_), do: nil

  defp score(metric, ex, pred) do
    out =
      cond do
        is_function(metric, 2) -> metric.(ex, pred)
        is_function(metric, 3) -> metric.(ex, pred, nil)
        true -> nil
      end

    case out do
      v when is_number(v) or is_boolean(v) ->
        {v, []}

      %DSPex.Prediction{} = p ->
        fields = DSPex.Prediction.to_list(p)

        case List.keyfind(fields, :score, 0) do
          {:score, s} when is_number(s) or is_boolean(s) ->
            {s, List.keydelete(fields, :score, 0)}

          _ ->
            {0.0, []}
        end

      %{score: s} = m when is_number(s) or is_boolean(s) ->
        {s, m |> Map.delete(:score) |> Map.to_list() |> Enum.sort_by(&to_string(elem(&1, 0)))}

      _ ->
        {0.0, []}
    end
  rescue
    _ -> {0.0, []}
  catch
    _, _ -> {0.0, []}
  end

  # ------------------------------------------------------------------ step 5-8: candidates

  defp score_candidates(run, st, s, batch, cands) do
    bi = st.batch
    state = Enum.map(cands, &candidate_state/1)

    case Run.batch(run, bi, fn -> {length(cands), batch, %{step: s, candidates: state}} end) do
      {:ok, _, run} ->
        st = %{st | batch: bi + 1}
        score_each(run, st, s, batch, bi, cands, 0, [])

      {:stop, reason, run} ->
        finish(run, st, :stop, reason)

      {:error, e, run} ->
        finish(run, st, :error, e)
    end
  end

  defp score_each(run, st, s, _batch, _bi, cands, ci, acc) when ci >= length(cands) do
    results = Enum.reverse(acc)
    avgs = for {_prog, _scores, avg} <- results, do: avg
    best_avg = Enum.max(avgs)
    best_i = Enum.find_index(avgs, &(&1 == best_avg))
    {best_prog, _, _} = Enum.at(results, best_i)
    st = %{st | winners: st.winners ++ [best_prog]}
    st = put_log(st, s, %{candidate_scores: avgs})

    st =
      Enum.reduce(results, st, fn {prog, scores, _}, st ->
        idx = st.next_idx + 1

        %{
          st
          | next_idx: idx,
            programs: st.programs ++ [idx],
            by_idx: Map.put(st.by_idx, idx, prog),
            scores: Map.put(st.scores, idx, scores)
        }
      end)

    st =
      if st.best == nil or best_avg > st.best.score,
        do: %{st | best: %{score: best_avg, program: best_prog, full: false}},
        else: st

    step(run, st, s + 1)
  end

  defp score_each(run, st, s, batch, bi, cands, ci, acc) do
    prog = Enum.at(cands, ci)

    case eval_trial(run, st, bi, ci, prog, batch) do
      {:ok, scores, avg, run} ->
        score_each(run, st, s, batch, bi, cands, ci + 1, [{prog, scores, avg} | acc])

      {:stop, reason, run} ->
        finish(run, st, :stop, reason)

      {:error, e, run} ->
        finish(run, st, :error, e)
    end
  end

  # One candidate on a list of example indices: a trial whose tail is the raw scores.
  defp eval_trial(run, st, bi, ci, prog, indices) do
    case next_trial(run, bi, ci) do
      {:replayed, _trial, told, run} ->
        {:ok, told.tail, avg(told.tail), run}

      {:trial, trial, run} ->
        fun = fn ->
          # each predictor keeps its own LM (metered); the others run with the task model
          default = Run.metered(run, st.opts[:task_model] || DSPex.Settings.get(:lm))

          prog =
            Module.map_predictors(prog, fn p ->
              %{p | lm: Meter.wrap(run.meter, p.lm) || default}
            end)

          outs = exec(st, for(i <- indices, do: {prog, %{}, i}))
          scores = for o <- outs, do: o.score
          %{score: avg(scores), tail: scores}
        end

        with {:ok, outcome, run} <- Run.execute_trial(run, trial, length(indices), fun),
             {:ok, _status, run} <- Run.tell(run, trial, outcome, outcome.tail) do
          {:ok, outcome.tail, outcome.score, run}
        end

      other ->
        other
    end
  end

  defp avg([]), do: 0.0
  defp avg(scores), do: Enum.sum(Enum.map(scores, &num/1)) / length(scores)

  defp next_trial(run, bi, ci) do
    case Run.next(run) do
      {:replayed, %{params: [^bi, ^ci]}, _told, _run} = r ->
        r

      {:trial, %{params: [^bi, ^ci]}, _run} = r ->
        r

      {:trial, trial, run} ->
        {:error, sequence(trial, bi, ci), run}

      {:replayed, trial, _told, run} ->
        {:error, sequence(trial, bi, ci), run}

      {:need, run} ->
        {:error, DSPex.Error.new(:sequence, "the engine has no trial #{ci} of batch #{bi}", %{}),
         run}

      {:done, run} ->
        {:error, DSPex.Error.new(:sequence, "the engine ended before batch #{bi}", %{}), run}

      other ->
        other
    end
  end

  defp sequence(trial, bi, ci),
    do:
      DSPex.Error.new(
        :sequence,
        "the journal's trial #{trial.number} is #{inspect(trial.params)}, SIMBA expected [#{bi}, #{ci}]",
        %{}
      )

  # ------------------------------------------------------------------ final selection

  defp final(run, st) do
    m = length(st.winners) - 1
    nn = st.opts[:num_candidates] + 1

    idxs =
      if m < 1,
        do: List.duplicate(0, nn),
        else: for(i <- 0..(nn - 1), do: py_round_half_even(i * m / (nn - 1)))

    idxs = Enum.uniq(idxs)
    progs = Enum.map(idxs, &Enum.at(st.winners, &1))
    bi = st.batch
    state = Enum.map(progs, &candidate_state/1)

    case Run.batch(run, bi, fn -> {length(progs), :all, %{final: true, candidates: state}} end) do
      {:ok, _, run} ->
        all = Enum.to_list(0..(st.n - 1))
        final_each(run, %{st | batch: bi + 1}, bi, progs, all, 0, [])

      {:stop, reason, run} ->
        finish(run, st, :stop, reason)

      {:error, e, run} ->
        finish(run, st, :error, e)
    end
  end

  defp final_each(run, st, _bi, progs, _all, ci, acc) when ci >= length(progs) do
    scores = Enum.reverse(acc)

    st =
      scores
      |> Enum.with_index()
      |> Enum.reduce(st, fn
        {_s, 0}, st -> st
        {s, i}, st -> put_log(st, i - 1, %{train_score: s})
      end)

    best = Enum.max(scores)
    bi = Enum.find_index(scores, &(&1 == best))
    cands = progs |> Enum.zip(scores) |> Enum.map(fn {p, s} -> %{score: s, program: p} end)
    cands = sort_desc(cands, &{&1.score})
    program = Enum.at(progs, bi)

    run =
      case Run.note_best(run, run.told, best, program, false) do
        {:ok, run} -> run
        {:error, _, run} -> run
      end

    st = %{st | best: %{score: best, program: program, full: true}}
    finish(run, st, :done, nil, cands)
  end

  defp final_each(run, st, bi, progs, all, ci, acc) do
    case eval_trial(run, st, bi, ci, Enum.at(progs, ci), all) do
      {:ok, _scores, avg, run} -> final_each(run, st, bi, progs, all, ci + 1, [avg | acc])
      {:stop, reason, run} -> finish(run, st, :stop, reason)
      {:error, e, run} -> finish(run, st, :error, e)
    end
  end

  defp finish(run, st, how, why, cands \\ nil) do
    {program, score} =
      case st.best do
        nil -> {st.student, nil}
        b -> {b.program, b.score}
      end

    fields = %{
      program: program,
      score: score,
      candidate_programs: cands || [],
      trial_logs: Run.trial_logs(run, fn told -> %{scores: trial_scores(told.tail)} end),
      extra: %{
        simba_trial_logs: st.trial_logs,
        winners: length(st.winners) - 1,
        stopped_at_step: if(how == :done, do: nil, else: map_size(st.trial_logs) - 1)
      }
    }

    Run.finish(how, why, fields, run)
  end

  defp trial_scores(%{scores: scores}), do: scores
  defp trial_scores(scores) when is_list(scores), do: scores
  defp trial_scores(_), do: nil

  # ------------------------------------------------------------------ helpers

  # A candidate as data (journal-safe): per predictor, instructions and demos.
  defp candidate_state(prog) do
    for {name, p} <- Module.named_predictors(prog),
        into: %{},
        do: {name, %{instructions: p.signature.instructions, demos: p.demos}}
  end

  defp apply_candidate(student, state) do
    Module.map_predictors(student, fn name, p ->
      case Map.fetch(state, name) do
        {:ok, %{instructions: i, demos: d}} ->
          %{p | demos: d, signature: Signature.with_instructions(p.signature, i)}

        :error ->
          p
      end
    end)
  end

  defp num(true), do: 1
  defp num(false), do: 0
  defp num(n) when is_number(n), do: n
  defp num(_), do: 0.0

  defp to_string_py(v) when is_binary(v), do: v
  defp to_string_py(v) when is_float(v), do: DSPex.Evaluate.Score.py_str(v)
  defp to_string_py(v), do: to_string(v)

  # Python's list.sort(key=..., reverse=True): stable, equal keys keep their order.
  defp sort_desc(list, key) do
    list
    |> Enum.with_index()
    |> Enum.sort(fn {a, i}, {b, j} ->
      case cmp(key.(a), key.(b)) do
        :gt -> true
        :lt -> false
        :eq -> i <= j
      end
    end)
    |> Enum.map(&elem(&1, 0))
  end

  defp cmp(a, b) when is_tuple(a), do: cmp(Tuple.to_list(a), Tuple.to_list(b))
  defp cmp([], []), do: :eq

  defp cmp([x | xs], [y | ys]) do
    cond do
      x > y -> :gt
      x < y -> :lt
      true -> cmp(xs, ys)
    end
  end

  defp cmp(x, y) when x > y, do: :gt
  defp cmp(x, y) when x < y, do: :lt
  defp cmp(_, _), do: :eq

  # numpy.percentile(a, q), method "linear"
  @doc false
  def percentile(values, q) do
    a = values |> Enum.map(&(&1 * 1.0)) |> Enum.sort() |> List.to_tuple()
    n = tuple_size(a)
    qq = q / 100
    v = n * qq + (1 + qq * (1 - 1 - 1)) - 1
    v = min(max(v, 0.0), (n - 1) * 1.0)
    lo = floor(v)
    hi = min(lo + 1, n - 1)
    g = v - lo
    x = elem(a, lo)
    y = elem(a, hi)
    d = y - x
    if g >= 0.5, do: y - d * (1 - g), else: x + d * g
  end

  defp py_round_half_even(x) do
    f = Float.floor(x)
    diff = x - f

    cond do
      diff > 0.5 -> trunc(f) + 1
      diff < 0.5 -> trunc(f)
      rem(trunc(f), 2) == 0 -> trunc(f)
      true -> trunc(f) + 1
    end
  end
end
