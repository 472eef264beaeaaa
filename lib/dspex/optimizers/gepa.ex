defmodule DSPex.Optimizers.GEPA do
  @options DSPex.Options.schema!(
             metric: [
               type: :any,
               required: true,
               doc:
                 "`(gold, pred, trace, pred_name, pred_trace)` (arity 2 to 5) → a score, or `%{score:, feedback:}` / a `%DSPex.Prediction{}` with `score` and `feedback`."
             ],
             reflection_lm: [
               type: {:or, [:struct, nil]},
               doc: "the LM that writes new instructions (required)."
             ],
             task_model: [
               type: {:or, [:struct, nil]},
               doc: "the LM the program runs with (default: the configured LM)."
             ],
             valset: [
               type: {:or, [:list, nil]},
               doc: "the Pareto (validation) examples (default: the trainset)."
             ],
             auto: [
               type: {:in, [nil, :light, :medium, :heavy]},
               doc: "budget preset (DSPy's `auto_budget`, n = 6 / 12 / 18)."
             ],
             max_full_evals: [
               type: {:or, [:pos_integer, nil]},
               doc: "budget: this many × (|train| + |val|) metric calls."
             ],
             max_metric_calls: [type: {:or, [:pos_integer, nil]}, doc: "budget: metric calls."],
             reflection_minibatch_size: [
               type: :pos_integer,
               default: 3,
               doc: "training examples per reflection."
             ],
             candidate_selection_strategy: [
               type: {:in, [:pareto, :current_best]},
               default: :pareto,
               doc: "how the parent of a mutation is chosen."
             ],
             skip_perfect_score: [
               type: :boolean,
               default: true,
               doc: "no reflection when the parent is perfect on the minibatch."
             ],
             add_format_failure_as_feedback: [
               type: :boolean,
               default: false,
               doc: "show parse failures to the reflection LM."
             ],
             component_selector: [
               type: {:in, [:round_robin, :all]},
               default: :round_robin,
               doc: "which predictors a reflection updates."
             ],
             use_merge: [type: :boolean, default: true, doc: "system-aware merges of candidates."],
             max_merge_invocations: [
               type: :non_neg_integer,
               default: 5,
               doc: "merges tried at most."
             ],
             num_threads: [
               type: {:or, [:pos_integer, nil]},
               doc: "program runs at once (default 8)."
             ],
             failure_score: [
               type: :number,
               default: 0.0,
               doc: "score of a run that failed (raised, unparsable)."
             ],
             perfect_score: [
               type: :number,
               default: 1.0,
               doc: "the best score an example can get."
             ],
             track_stats: [
               type: :boolean,
               default: false,
               doc: "put `detailed_results` in `result.extra`."
             ],
             seed: [type: :non_neg_integer, default: 0, doc: "the seed of both random streams."]
           )

  @moduledoc """
  GEPA (reflective prompt evolution), DSPy 3.3.1's `dspy.GEPA` with its engine, the
  `gepa` package 0.1.4, as a `DSPex.Optimize` job.

  GEPA keeps a pool of candidates (an instruction per predictor) and, for every
  validation example, the candidates that score best on it (its Pareto front). Each
  iteration picks a parent from the fronts (non-dominated candidates, weighted by how
  many fronts they are on), runs it on the next `reflection_minibatch_size` training
  examples (epoch-shuffled), shows the **reflection LM** each example's inputs, outputs
  and the metric's textual **feedback** for one predictor (round robin), and asks for a
  better instruction with gepa's exact prompt. The child is scored on the same
  minibatch and, only when its sum is strictly higher, on the whole valset and added to
  the pool. With `use_merge`, after a success GEPA may merge two candidates that share
  an ancestor, predictor by predictor. The run stops once the metric calls reach the
  budget; the result is the candidate with the best validation average.

      metric = fn gold, pred, _trace, _pred_name, _pred_trace ->
        ok = gold[:answer] == pred.answer
        %{score: if(ok, do: 1.0, else: 0.0),
          feedback: if(ok, do: "Correct.", else: "Expected \#{gold[:answer]}.")}
      end

      {:ok, result} = DSPex.Optimizers.GEPA.compile(program, trainset,
                        metric: metric, reflection_lm: big_lm, auto: :light)
      result.program          # the best candidate
      result.score            # its validation average

  Budgets (exactly one): `auto:` (`:light | :medium | :heavy`, DSPy's `auto_budget`
  formula), `max_full_evals:` (× (|train| + |val|)), `max_metric_calls:`. The job's own
  budgets (`max_lm_calls`, `max_cost`, `max_wall`, `stop_at_score`) apply on top.

  The metric may return a number (feedback then reads `This trajectory got a score of
  <score>.`) or `%{score:, feedback:}` / a `%DSPex.Prediction{}` with those fields. It is
  called with as many of `(gold, pred, trace, pred_name, pred_trace)` as its arity
  takes: with `pred_name` and `pred_trace` (`[{name, inputs, outputs}]`) when GEPA asks
  for one predictor's feedback.

  With the same seed, data, metric and LM answers DSPex picks the same parents,
  minibatches and merges, sends the same reflection prompts and returns the same
  program as DSPy (golden-checked with `tools/gen_gepa_traces.py`).

  ## As a job

  Every evaluation is a trial of the engine's QUEUE mode: *reflect* (the parent on the
  minibatch, the reflective dataset and the reflection LM call — its journaled record
  carries the proposal), *child* (the child on the minibatch), *merge* (a merged
  candidate on its subsample) and *full* (a candidate on the valset). A resume redoes no
  finished trial and asks the reflection LM nothing it already answered. Trial scores
  are averages over the trial's examples; `stop_at_score` compares any trial's score.
  `result.extra.detailed_results` (with `track_stats: true`) holds the candidates,
  parents, validation scores, fronts and metric-call counts (DSPy's
  `DspyGEPAResult`).

  ## Where DSPex differs from DSPy

    * A run that fails as a whole (an LM error, a crash) scores `failure_score` and
      keeps its place. DSPy's trace collection drops such an example from the
      trajectory list, which misaligns the scores of the examples after it.
    * A predictor's trace entries are matched by predictor name (DSPy: by signature
      equality, which can also match another predictor with an identical signature).
    * Merges walk a candidate's predictors in name order; DSPy walks a Python `set` of
      names, whose order depends on `PYTHONHASHSEED` (the golden runs pin one whose
      order is the sorted one).
    * A merge whose ancestors all have a zero score is skipped; DSPy's
      `random.choices` raises there and ends the run.
    * `dspy.Flex` code components, custom instruction proposers, experiment tracking
      and `frontier_type`s other than `instance` are not supported.

  ## Options

  #{DSPex.Options.docs(@options)}

  and the job options of `DSPex.Optimize` (budgets, journal, progress).
  """

  @behaviour DSPex.Optimize.Optimizer

  alias DSPex.Optimize.{Meter, Run}
  alias DSPex.Optimizers.GEPA.{InstructionProposal, Pareto, PySet}
  alias DSPex.{Module, Signature}

  @auto %{light: 6, medium: 12, heavy: 18}

  @doc false
  def options, do: @options

  @impl true
  def name, do: "gepa"

  @impl true
  def validate!(opts) do
    opts = DSPex.Options.validate!(opts, @options, "DSPex.Optimizers.GEPA")
    set = Enum.count([opts[:auto], opts[:max_full_evals], opts[:max_metric_calls]], &(&1 != nil))

    if set != 1 do
      raise ArgumentError,
            "Exactly one of max_metric_calls, max_full_evals, auto must be set. " <>
              "You set max_metric_calls=#{inspect(opts[:max_metric_calls])}, " <>
              "max_full_evals=#{inspect(opts[:max_full_evals])}, auto=#{inspect(opts[:auto])}."
    end

    if opts[:reflection_lm] == nil,
      do: raise(ArgumentError, "GEPA requires a reflection language model (reflection_lm:)")

    opts
  end

  @impl true
  def spec(program, trainset, opts) do
    %{
      "seed" => opts[:seed],
      "options" => %{
        "max_metric_calls" => budget(program, trainset, opts),
        "reflection_minibatch_size" => opts[:reflection_minibatch_size],
        "candidate_selection_strategy" => to_string(opts[:candidate_selection_strategy]),
        "skip_perfect_score" => opts[:skip_perfect_score],
        "add_format_failure_as_feedback" => opts[:add_format_failure_as_feedback],
        "component_selector" => to_string(opts[:component_selector]),
        "use_merge" => opts[:use_merge],
        "max_merge_invocations" => opts[:max_merge_invocations],
        "failure_score" => opts[:failure_score] * 1.0,
        "perfect_score" => opts[:perfect_score] * 1.0,
        "valset" =>
          if(opts[:valset], do: DSPex.Optimize.Spec.examples_hash(opts[:valset]), else: nil)
      }
    }
  end

  @doc """
  Runs GEPA as a blocking job and returns `{:ok, %DSPex.Optimize.Result{}}` (DSPy's
  `GEPA(metric=..., ...).compile(student, trainset=..., valset=...)`; see
  `DSPex.Optimize` for budgets, journal and progress).

  ## Examples

      {:ok, result} = DSPex.Optimizers.GEPA.compile(qa, trainset,
                        metric: &feedback_metric/5, reflection_lm: lm, max_metric_calls: 200)
  """
  @spec compile(term, [DSPex.Example.t()], keyword) ::
          {:ok, DSPex.Optimize.Result.t()} | {:error, DSPex.Error.t()}
  def compile(program, trainset, opts),
    do: DSPex.Optimize.compile(__MODULE__, program, trainset, opts)

  @doc """
  DSPy's `GEPA.auto_budget(num_preds, num_candidates, valset_size)`: the metric calls
  an `auto` preset allows.

  ## Examples

      iex> DSPex.Optimizers.GEPA.auto_budget(1, 6, 10)
      420
  """
  @spec auto_budget(pos_integer, pos_integer, non_neg_integer, pos_integer, pos_integer) ::
          non_neg_integer
  def auto_budget(
        num_preds,
        num_candidates,
        valset_size,
        minibatch_size \\ 35,
        full_eval_steps \\ 5
      ) do
    n = trunc(max(2 * (num_preds * 2) * :math.log2(num_candidates), 1.5 * num_candidates))

    total = valset_size + num_candidates * 5 + n * minibatch_size

    if n == 0 do
      total
    else
      periodic = div(n + 1, full_eval_steps) + 1
      extra = if n < full_eval_steps, do: 1, else: 0
      total + (periodic + extra) * valset_size
    end
  end

  defp budget(program, trainset, opts) do
    valset = opts[:valset]

    cond do
      opts[:auto] ->
        n = max(length(Module.named_predictors(program)), 1)
        auto_budget(n, @auto[opts[:auto]], length(valset || trainset))

      opts[:max_full_evals] ->
        opts[:max_full_evals] * (length(trainset) + length(valset || []))

      true ->
        opts[:max_metric_calls]
    end
  end

  # ------------------------------------------------------------------ the search

  @impl true
  def run(%Run{} = run, program, trainset, opts) do
    program = Module.assign_names(program)
    valset = opts[:valset] || trainset
    names = for {name, _} <- Module.named_predictors(program), do: name

    seed =
      Map.new(Module.named_predictors(program), fn {n, p} -> {n, p.signature.instructions} end)

    max_calls = budget(program, trainset, opts)

    st = %{
      opts: opts,
      program: program,
      train: List.to_tuple(trainset),
      val: List.to_tuple(valset),
      val_ids: Enum.to_list(0..(length(valset) - 1)),
      names: names,
      max_calls: max_calls,
      rng: DSPex.Random.new(opts[:seed]),
      arng: DSPex.Random.new(opts[:seed]),
      batch: 0,
      # gepa's state
      cands: [seed],
      parents: [[nil]],
      subscores: [],
      front_score: %{},
      fronts: [],
      next_pred: [0],
      discovery: [0],
      i: -1,
      total: 0,
      full_evals: 0,
      # the batch sampler
      shuffled: [],
      epoch: -1,
      # the merge proposer
      merges_due: 0,
      merges_tested: 0,
      merges_done: {[], []},
      last_found: false,
      best_noted: nil
    }

    run = %{run | plan: nil}

    case Run.setup(run, fn -> {%{mode: :queue}, %{optimizer: "gepa"}} end) do
      {:ok, _, run} -> seed_eval(run, st)
      {:stop, reason, run} -> finish(run, st, :stop, reason)
      {:error, e, run} -> finish(run, st, :error, e)
    end
  end

  defp seed_eval(run, st) do
    cand = hd(st.cands)

    case unit(run, st, :all, :full, fn run -> full_eval_work(run, st, cand, false) end) do
      {:ok, tail, run, st} ->
        scores = Map.new(Enum.zip(st.val_ids, tail.scores))

        st = %{
          st
          | subscores: [scores],
            front_score: scores,
            fronts: for(v <- st.val_ids, do: {v, PySet.new([0])}),
            total: map_size(scores),
            full_evals: 1
        }

        {run, st} = note_best(run, st)
        loop(run, st)

      {:stop, reason, run, st} ->
        finish(run, st, :stop, reason)

      {:error, e, run, st} ->
        finish(run, st, :error, e)
    end
  end

  defp loop(run, st) do
    if st.total >= st.max_calls do
      finish(run, st, :done, nil)
    else
      st = %{st | i: st.i + 1}

      result =
        if st.opts[:use_merge] and st.merges_due > 0 and st.last_found do
          merge_iteration(run, %{st | last_found: false})
        else
          reflect_iteration(run, %{st | last_found: false})
        end

      case result do
        {:ok, run, st} -> loop(run, st)
        {:stop, reason, run, st} -> finish(run, st, :stop, reason)
        {:error, e, run, st} -> finish(run, st, :error, e)
      end
    end
  end

  # ------------------------------------------------------------------ reflective mutation

  defp reflect_iteration(run, st) do
    {parent, st} = select_parent(st)
    {mb, st} = next_minibatch(st)
    parent_cand = Enum.at(st.cands, parent)
    {components, st_after} = components(st, parent, parent_cand)

    work = fn run ->
      outs = exec(run, st, parent_cand, st.train, mb, true)
      scores = Enum.map(outs, & &1.score)

      perfect =
        st.opts[:skip_perfect_score] and Enum.all?(scores, &(num(&1) >= st.opts[:perfect_score]))

      {texts, arng, prompts} =
        if perfect do
          {nil, st.arng, []}
        else
          propose(run, st, parent_cand, outs, components)
        end

      %{
        score: avg(scores),
        tail: %{scores: scores, texts: texts, arng: arng, prompts: prompts, perfect: perfect}
      }
    end

    case unit(run, st, mb, :reflect, work) do
      {:ok, tail, run, st} ->
        st = %{st | total: st.total + length(mb), arng: tail.arng}
        # the component selector runs only for a parent that is not perfect
        st = if tail.perfect, do: st, else: %{st | next_pred: st_after.next_pred}

        case tail.texts do
          nil ->
            {:ok, run, st}

          texts when map_size(texts) == 0 ->
            {:ok, run, st}

          texts ->
            child = Map.merge(parent_cand, texts)
            child_iteration(run, st, parent, child, mb, tail.scores)
        end

      other ->
        other
    end
  end

  defp child_iteration(run, st, parent, child, mb, before) do
    work = fn run ->
      scores = run |> exec(st, child, st.train, mb, false) |> Enum.map(& &1.score)
      %{score: avg(scores), tail: %{scores: scores}}
    end

    case unit(run, st, mb, :child, work) do
      {:ok, tail, run, st} ->
        st = %{st | total: st.total + length(mb)}

        if sum(tail.scores) > sum(before) do
          case add_program(run, st, child, [parent]) do
            {:ok, run, st} ->
              st = %{st | last_found: true}

              st =
                if st.merges_tested < st.opts[:max_merge_invocations],
                  do: %{st | merges_due: st.merges_due + 1},
                  else: st

              {:ok, run, st}

            other ->
              other
          end
        else
          {:ok, run, st}
        end

      other ->
        other
    end
  end

  defp select_parent(st) do
    case st.opts[:candidate_selection_strategy] do
      :current_best ->
        scores = tracked_scores(st)
        {Enum.find_index(scores, &(&1 == Enum.max(scores))), st}

      :pareto ->
        {p, rng} = Pareto.select(st.fronts, tracked_scores(st), st.rng)
        {p, %{st | rng: rng}}
    end
  end

  # EpochShuffledBatchSampler.next_minibatch_ids (one call per iteration)
  defp next_minibatch(st) do
    size = st.opts[:reflection_minibatch_size]
    n = tuple_size(st.train)
    base = st.i * size
    epoch = if st.epoch == -1, do: 0, else: div(base, max(length(st.shuffled), 1))

    st =
      if st.shuffled == [] or epoch > st.epoch do
        {ids, rng} = DSPex.Random.shuffle(st.rng, Enum.to_list(0..(n - 1)))
        %{st | shuffled: pad(ids, size), rng: rng, epoch: epoch}
      else
        st
      end

    start = rem(base, length(st.shuffled))
    {Enum.slice(st.shuffled, start, size), st}
  end

  # pad with the least used id (the last such in shuffled order), one at a time
  defp pad(ids, size) do
    m = rem(length(ids), size)
    if m == 0, do: ids, else: pad_n(ids, size - m)
  end

  defp pad_n(ids, 0), do: ids

  defp pad_n(ids, k) do
    freq = Enum.frequencies(ids)
    order = Enum.uniq(ids)
    low = freq |> Map.values() |> Enum.min()
    pick = order |> Enum.filter(&(freq[&1] == low)) |> List.last()
    pad_n(ids ++ [pick], k - 1)
  end

  defp components(st, parent, cand) do
    case st.opts[:component_selector] do
      :all ->
        {Enum.filter(st.names, &Map.has_key?(cand, &1)), st}

      :round_robin ->
        pid = Enum.at(st.next_pred, parent)
        next = List.replace_at(st.next_pred, parent, rem(pid + 1, length(st.names)))
        {[Enum.at(st.names, pid)], %{st | next_pred: next}}
    end
  end

  # make_reflective_dataset + the reflection LM: {texts | nil, adapter rng, prompts}
  defp propose(run, st, cand, outs, components) do
    program = build(st.program, cand)

    {dataset, arng} =
      Enum.reduce(components, {[], st.arng}, fn name, {acc, arng} ->
        {items, arng} = reflective_items(st, program, name, outs, arng)
        if items == [], do: {acc, arng}, else: {acc ++ [{name, items}], arng}
      end)

    if dataset == [] do
      # "No valid predictions found for any module."
      {nil, arng, []}
    else
      lm = Run.metered(run, st.opts[:reflection_lm])

      result =
        Enum.reduce_while(dataset, {%{}, []}, fn {name, items}, {texts, prompts} ->
          prompt = InstructionProposal.prompt(Map.fetch!(cand, name), items)

          case DSPex.BaseLM.request(lm, [%{role: "user", content: prompt}], %{}) do
            {:ok, %{choices: [%{text: text} | _]}} when is_binary(text) ->
              {:cont,
               {Map.put(texts, name, InstructionProposal.extract(text)), prompts ++ [prompt]}}

            _ ->
              {:halt, :failed}
          end
        end)

      case result do
        :failed -> {nil, arng, []}
        {texts, prompts} -> {texts, arng, prompts}
      end
    end
  end

  defp reflective_items(st, program, name, outs, arng) do
    pred = Module.get_predictor(program, name)

    Enum.reduce(outs, {[], arng}, fn out, {items, arng} ->
      instances = for {^name, _i, _o} = t <- out.trace, do: t

      cond do
        instances == [] or out.failed ->
          {items, arng}

        true ->
          {{_, inputs, outputs}, arng} = DSPex.Random.choice(arng, instances)
          ex = elem(st.train, out.example)
          fb = feedback(st, ex, out, name, {name, inputs, outputs})

          item = [
            {"Inputs",
             {:ordered, for({k, v} <- ordered(inputs, pred.signature.inputs), do: {k, py_str(v)})}},
            {"Generated Outputs",
             {:ordered,
              for({k, v} <- ordered(outputs, pred.signature.outputs), do: {k, py_str(v)})}},
            {"Feedback", fb}
          ]

          {items ++ [item], arng}
      end
    end)
  end

  defp feedback(st, ex, out, name, entry) do
    metric = st.opts[:metric]

    value =
      try do
        call_metric(metric, ex, out.prediction, out.trace, name, [entry])
      rescue
        _ -> nil
      catch
        _, _ -> nil
      end

    case value do
      %DSPex.Prediction{} = p ->
        text = DSPex.Prediction.get(p, :feedback)

        if text == nil,
          do: default_feedback(DSPex.Prediction.get(p, :score)),
          else: to_string(text)

      %{feedback: text} = m ->
        if text == nil, do: default_feedback(m[:score]), else: to_string(text)

      %{score: s} ->
        default_feedback(s)

      other ->
        default_feedback(other)
    end
  end

  defp default_feedback(score), do: "This trajectory got a score of #{py_str(score)}."

  # ------------------------------------------------------------------ merge

  defp merge_iteration(run, st) do
    case merge_propose(st) do
      {nil, st} ->
        reflect_iteration(run, st)

      {{cand, id1, id2, _ancestor, ids}, st} ->
        s1 = Enum.map(ids, &Map.fetch!(Enum.at(st.subscores, id1), &1))
        s2 = Enum.map(ids, &Map.fetch!(Enum.at(st.subscores, id2), &1))

        work = fn run ->
          scores = run |> exec(st, cand, st.val, ids, false) |> Enum.map(& &1.score)
          %{score: avg(scores), tail: %{scores: scores}}
        end

        case unit(run, st, ids, :merge, work) do
          {:ok, tail, run, st} ->
            st = %{st | total: st.total + length(ids)}

            if sum(tail.scores) >= max(sum(s1), sum(s2)) do
              case add_program(run, st, cand, [id1, id2]) do
                {:ok, run, st} ->
                  {:ok, run,
                   %{st | merges_due: st.merges_due - 1, merges_tested: st.merges_tested + 1}}

                other ->
                  other
              end
            else
              {:ok, run, st}
            end

          other ->
            other
        end
    end
  end

  defp merge_propose(st) do
    scores = tracked_scores(st)
    candidates = Pareto.dominators(st.fronts, scores)

    if length(candidates) < 2 or length(st.parents) < 3 do
      {nil, st}
    else
      attempt_merge(st, scores, candidates, 10)
    end
  end

  defp attempt_merge(st, _scores, _candidates, 0), do: {nil, st}

  defp attempt_merge(st, scores, candidates, left) do
    case common_ancestor_pair(st, scores, candidates, 10) do
      {nil, st} ->
        attempt_merge(st, scores, candidates, left - 1)

      {{id1, id2, anc}, st} ->
        {done_triplets, done_descs} = st.merges_done

        if {id1, id2, anc} in done_triplets do
          attempt_merge(st, scores, candidates, left - 1)
        else
          {cand, desc, st} = merged(st, scores, id1, id2, anc)

          overlap =
            MapSet.size(
              MapSet.intersection(
                MapSet.new(Map.keys(Enum.at(st.subscores, id1))),
                MapSet.new(Map.keys(Enum.at(st.subscores, id2)))
              )
            ) >= 5

          cond do
            {id1, id2, desc} in done_descs ->
              attempt_merge(st, scores, candidates, left - 1)

            not overlap ->
              attempt_merge(st, scores, candidates, left - 1)

            true ->
              st = %{
                st
                | merges_done:
                    {done_triplets ++ [{id1, id2, anc}], done_descs ++ [{id1, id2, desc}]}
              }

              {ids, st} = merge_subsample(st, id1, id2)
              if ids == [], do: {nil, st}, else: {{cand, id1, id2, anc, ids}, st}
          end
        end
    end
  end

  defp common_ancestor_pair(st, _scores, _candidates, 0), do: {nil, st}

  defp common_ancestor_pair(st, scores, candidates, left) do
    {[i, j], rng} = DSPex.Random.sample(st.rng, candidates, 2)
    st = %{st | rng: rng}
    {i, j} = if j < i, do: {j, i}, else: {i, j}
    ai = ancestors(st, i)
    aj = ancestors(st, j)

    if j in PySet.to_list(ai) or i in PySet.to_list(aj) do
      common_ancestor_pair(st, scores, candidates, left - 1)
    else
      common =
        ai
        |> PySet.to_list()
        |> PySet.new()
        |> PySet.intersection(aj |> PySet.to_list() |> PySet.new())
        |> PySet.to_list()
        |> Enum.filter(&usable_ancestor?(st, scores, i, j, &1))

      weights = Enum.map(common, &Enum.at(scores, &1))

      cond do
        common == [] ->
          common_ancestor_pair(st, scores, candidates, left - 1)

        Enum.sum(weights) <= 0 ->
          # random.choices raises here in DSPy
          {nil, st}

        true ->
          {[a], rng} = DSPex.Random.choices(st.rng, common, weights: weights, k: 1)
          {{i, j, a}, %{st | rng: rng}}
      end
    end
  end

  defp ancestors(st, node), do: ancestors(st, node, PySet.new())

  defp ancestors(st, node, found) do
    Enum.reduce(Enum.at(st.parents, node), found, fn
      nil, found ->
        found

      p, found ->
        if PySet.member?(found, p), do: found, else: ancestors(st, p, PySet.add(found, p))
    end)
  end

  defp usable_ancestor?(st, scores, i, j, anc) do
    {done, _} = st.merges_done

    {i, j, anc} not in done and Enum.at(scores, anc) <= Enum.at(scores, i) and
      Enum.at(scores, anc) <= Enum.at(scores, j) and desirable?(st, anc, i, j)
  end

  defp desirable?(st, anc, i, j) do
    [ca, c1, c2] = Enum.map([anc, i, j], &Enum.at(st.cands, &1))

    Enum.any?(Map.keys(ca), fn name ->
      (ca[name] == c1[name] or ca[name] == c2[name]) and c1[name] != c2[name]
    end)
  end

  defp merged(st, scores, id1, id2, anc) do
    [ca, c1, c2] = Enum.map([anc, id1, id2], &Enum.at(st.cands, &1))

    Enum.reduce(Enum.sort(Map.keys(ca)), {ca, [], st}, fn name, {cand, desc, st} ->
      a = ca[name]
      p1 = c1[name]
      p2 = c2[name]

      cond do
        (a == p1 or a == p2) and p1 != p2 ->
          from = if a == p1, do: id2, else: id1
          {Map.put(cand, name, Enum.at(st.cands, from)[name]), desc ++ [from], st}

        a != p1 and a != p2 ->
          {from, st} =
            cond do
              Enum.at(scores, id1) > Enum.at(scores, id2) ->
                {id1, st}

              Enum.at(scores, id2) > Enum.at(scores, id1) ->
                {id2, st}

              true ->
                {x, rng} = DSPex.Random.choice(st.rng, [id1, id2])
                {x, %{st | rng: rng}}
            end

          {Map.put(cand, name, Enum.at(st.cands, from)[name]), desc ++ [from], st}

        true ->
          {Map.put(cand, name, p1), desc ++ [id1], st}
      end
    end)
    |> then(fn {cand, desc, st} -> {cand, List.to_tuple(desc), st} end)
  end

  # select_eval_subsample_for_merged_program (5 ids)
  defp merge_subsample(st, id1, id2) do
    s1 = Enum.at(st.subscores, id1)
    s2 = Enum.at(st.subscores, id2)

    common =
      PySet.intersection(
        PySet.new(Map.keys(s1) |> Enum.sort()),
        PySet.new(Map.keys(s2) |> Enum.sort())
      )
      |> PySet.to_list()

    p1 = Enum.filter(common, &(s1[&1] > s2[&1]))
    p2 = Enum.filter(common, &(s2[&1] > s1[&1]))
    p3 = Enum.filter(common, &(&1 not in p1 and &1 not in p2))
    want = 5
    n_each = max(1, ceil(want / 3))

    {selected, rng} =
      Enum.reduce([p1, p2, p3], {[], st.rng}, fn bucket, {sel, rng} ->
        if length(sel) >= want do
          {sel, rng}
        else
          available = Enum.reject(bucket, &(&1 in sel))
          take = Enum.min([length(available), n_each, want - length(sel)])

          if take > 0 do
            {picked, rng} = DSPex.Random.sample(rng, available, take)
            {sel ++ picked, rng}
          else
            {sel, rng}
          end
        end
      end)

    remaining = want - length(selected)

    {selected, rng} =
      cond do
        remaining <= 0 ->
          {selected, rng}

        length(Enum.reject(common, &(&1 in selected))) >= remaining ->
          {picked, rng} =
            DSPex.Random.sample(rng, Enum.reject(common, &(&1 in selected)), remaining)

          {selected ++ picked, rng}

        common != [] ->
          {picked, rng} = DSPex.Random.choices(rng, common, k: remaining)
          {selected ++ picked, rng}

        true ->
          {selected, rng}
      end

    {Enum.take(selected, want), %{st | rng: rng}}
  end

  # ------------------------------------------------------------------ the pool

  defp add_program(run, st, cand, parents) do
    case unit(run, st, :all, :full, fn run -> full_eval_work(run, st, cand, true) end) do
      {:ok, tail, run, st} ->
        discovery = st.total
        scores = Map.new(Enum.zip(st.val_ids, tail.scores))
        idx = length(st.cands)
        next = parents |> Enum.map(&Enum.at(st.next_pred, &1)) |> Enum.max(fn -> 0 end)

        {front_score, fronts} =
          Enum.reduce(st.val_ids, {st.front_score, st.fronts}, fn v, {fs, fronts} ->
            s = Map.fetch!(scores, v)
            prev = Map.get(fs, v)

            cond do
              prev == nil or num(s) > num(prev) ->
                {Map.put(fs, v, s), List.keyreplace(fronts, v, 0, {v, PySet.new([idx])})}

              num(s) == num(prev) ->
                {fs,
                 List.keyreplace(
                   fronts,
                   v,
                   0,
                   {v, PySet.add(elem(List.keyfind(fronts, v, 0), 1), idx)}
                 )}

              true ->
                {fs, fronts}
            end
          end)

        st = %{
          st
          | cands: st.cands ++ [cand],
            parents: st.parents ++ [parents],
            subscores: st.subscores ++ [scores],
            next_pred: st.next_pred ++ [next],
            discovery: st.discovery ++ [discovery],
            total: st.total + map_size(scores),
            full_evals: st.full_evals + 1,
            front_score: front_score,
            fronts: fronts
        }

        {run, st} = note_best(run, st)
        {:ok, run, st}

      other ->
        other
    end
  end

  defp full_eval_work(run, st, cand, traces?) do
    scores = run |> exec(st, cand, st.val, st.val_ids, traces?) |> Enum.map(& &1.score)
    %{score: avg(scores), tail: %{scores: scores}}
  end

  defp tracked_scores(st) do
    for s <- st.subscores do
      if map_size(s) == 0, do: :neg_inf, else: sum(Map.values(s)) / map_size(s)
    end
  end

  # FullEvaluationPolicy.get_best_program: highest average, then coverage; first wins
  defp best_index(st) do
    st.subscores
    |> Enum.with_index()
    |> Enum.reduce({-1, nil, -1}, fn {s, i}, {bi, bs, bc} ->
      c = map_size(s)
      a = if c > 0, do: sum(Map.values(s)) / c, else: nil

      if a != nil and (bs == nil or a > bs or (a == bs and c > bc)),
        do: {i, a, c},
        else: {bi, bs, bc}
    end)
  end

  defp note_best(run, st) do
    {i, score, _} = best_index(st)

    if i >= 0 and st.best_noted != i do
      program = build(st.program, Enum.at(st.cands, i))

      run =
        case Run.note_best(run, max(run.told, 1), score, program, false) do
          {:ok, run} -> run
          {:error, _, run} -> run
        end

      {run, %{st | best_noted: i}}
    else
      {run, st}
    end
  end

  defp build(program, cand) do
    Module.map_predictors(program, fn name, p ->
      case Map.fetch(cand, name) do
        {:ok, text} -> %{p | signature: Signature.with_instructions(p.signature, text)}
        :error -> p
      end
    end)
  end

  # ------------------------------------------------------------------ running programs

  # Runs the candidate on examples `ids` of `set`; each result: score, prediction, trace
  # (`[{name, inputs, outputs}]`), failed, example.
  defp exec(run, st, cand, set, ids, _traces?) do
    # each predictor keeps its own LM (metered); the others run with the task model
    default = Run.metered(run, st.opts[:task_model] || DSPex.Settings.get(:lm))

    prog =
      st.program
      |> build(cand)
      |> Module.map_predictors(fn p -> %{p | lm: Meter.wrap(run.meter, p.lm) || default} end)

    metric = st.opts[:metric]
    failure = st.opts[:failure_score]

    ids
    |> DSPex.Settings.async_stream(
      fn i -> run_one(prog, elem(set, i), i, metric, failure) end,
      max_concurrency: st.opts[:num_threads] || 8,
      timeout: :infinity,
      ordered: true
    )
    |> Enum.zip(ids)
    |> Enum.map(fn
      {{:ok, out}, _} -> out
      {{:exit, _}, i} -> %{score: failure, prediction: nil, trace: [], failed: true, example: i}
    end)
  end

  defp run_one(prog, ex, i, metric, failure) do
    names = Map.new(Module.named_predictors(prog), fn {name, p} -> {p.name, name} end)

    {result, trace} =
      DSPex.Trace.with_trace(fn ->
        try do
          DSPex.call(prog, ex)
        rescue
          e -> {:error, e}
        catch
          kind, reason -> {:error, {kind, reason}}
        end
      end)

    trace = for {rname, i, o} <- trace, Map.has_key?(names, rname), do: {names[rname], i, o}

    case result do
      {:ok, pred} ->
        score =
          try do
            case call_metric(metric, ex, pred, trace, nil, nil) do
              %DSPex.Prediction{} = p -> DSPex.Prediction.get(p, :score)
              %{score: s} -> s
              s -> s
            end
          rescue
            _ -> failure
          catch
            _, _ -> failure
          end

        score = if is_number(score) or is_boolean(score), do: score, else: failure
        %{score: score, prediction: pred, trace: trace, failed: false, example: i}

      _ ->
        %{score: failure, prediction: nil, trace: trace, failed: true, example: i}
    end
  end

  defp call_metric(metric, ex, pred, trace, name, pred_trace) do
    case Function.info(metric)[:arity] do
      2 -> metric.(ex, pred)
      3 -> metric.(ex, pred, trace)
      4 -> metric.(ex, pred, trace, name)
      5 -> metric.(ex, pred, trace, name, pred_trace)
    end
  end

  # One evaluation unit: a batch of one trial. Returns {:ok, tail, run, st} (the
  # journaled tail on a resume) or {:stop | :error, _, run, st}.
  defp unit(run, st, examples, kind, work) do
    bi = st.batch

    case Run.batch(run, bi, fn -> {1, examples, %{kind: kind, iteration: st.i}} end) do
      {:ok, _, run} ->
        st = %{st | batch: bi + 1}

        case Run.next(run) do
          {:replayed, %{params: [^bi, 0]}, told, run} ->
            {:ok, told.tail, run, st}

          {:trial, %{params: [^bi, 0]} = trial, run} ->
            n = if examples == :all, do: tuple_size(st.val), else: length(examples)

            case Run.execute_trial(run, trial, n, fn -> work.(run) end) do
              {:ok, outcome, run} ->
                case Run.tell(run, trial, outcome, outcome.tail) do
                  {:ok, _, run} -> {:ok, outcome.tail, run, st}
                  {:error, e, run} -> {:error, e, run, st}
                end

              {:stop, reason, run} ->
                {:stop, reason, run, st}
            end

          {:stop, reason, run} ->
            {:stop, reason, run, st}

          {:error, e, run} ->
            {:error, e, run, st}

          {_, run} ->
            {:error, DSPex.Error.new(:sequence, "the engine has no trial for batch #{bi}", %{}),
             run, st}

          {_, trial, run} ->
            {:error,
             DSPex.Error.new(
               :sequence,
               "unexpected trial #{inspect(trial.params)} for batch #{bi}",
               %{}
             ), run, st}

          {_, trial, _told, run} ->
            {:error,
             DSPex.Error.new(
               :sequence,
               "unexpected trial #{inspect(trial.params)} for batch #{bi}",
               %{}
             ), run, st}
        end

      {:stop, reason, run} ->
        {:stop, reason, run, st}

      {:error, e, run} ->
        {:error, e, run, st}
    end
  end

  # ------------------------------------------------------------------ the result

  defp finish(run, st, how, why) do
    {best, score, _} = best_index(st)

    program = if best >= 0, do: build(st.program, Enum.at(st.cands, best)), else: st.program

    extra =
      if st.opts[:track_stats] do
        %{
          detailed_results: %{
            candidates: Enum.map(st.cands, &build(st.program, &1)),
            candidate_instructions: st.cands,
            parents: st.parents,
            val_aggregate_scores: tracked_scores(st),
            val_subscores: Enum.map(st.subscores, fn s -> Enum.map(st.val_ids, &s[&1]) end),
            per_val_instance_best_candidates: for({_, s} <- st.fronts, do: PySet.to_list(s)),
            discovery_eval_counts: st.discovery,
            total_metric_calls: st.total,
            num_full_val_evals: st.full_evals,
            best_idx: best,
            seed: st.opts[:seed]
          }
        }
      else
        %{}
      end

    fields = %{
      program: program,
      score: score,
      candidate_programs: [],
      trial_logs:
        Run.trial_logs(run, fn told ->
          tail = told.tail || %{}
          %{scores: Map.get(tail, :scores), prompts: Map.get(tail, :prompts)}
        end),
      extra: Map.merge(extra, %{total_metric_calls: st.total, max_metric_calls: st.max_calls})
    }

    Run.finish(how, why, fields, run)
  end

  # ------------------------------------------------------------------ helpers

  defp ordered(map, fields) do
    keys = for f <- fields, Map.has_key?(map, f.name), do: f.name
    rest = map |> Map.keys() |> Kernel.--(keys) |> Enum.sort_by(&to_string/1)
    for k <- keys ++ rest, do: {to_string(k), Map.fetch!(map, k)}
  end

  defp num(true), do: 1
  defp num(false), do: 0
  defp num(n) when is_number(n), do: n
  defp num(_), do: 0

  defp sum(scores), do: Enum.reduce(scores, 0, &(&2 + num(&1)))
  defp avg([]), do: 0.0
  defp avg(scores), do: sum(scores) / length(scores)

  defp py_str(v) when is_binary(v), do: v
  defp py_str(v) when is_float(v), do: DSPex.Evaluate.Score.py_str(v)
  defp py_str(true), do: "True"
  defp py_str(false), do: "False"
  defp py_str(nil), do: "None"
  defp py_str(v) when is_integer(v), do: Integer.to_string(v)
  defp py_str(v) when is_atom(v), do: Atom.to_string(v)
  defp py_str(v), do: inspect(v)
end
