defmodule DSPex.Optimizers.COPRO do
  @options DSPex.Options.schema!(
             metric: [type: :any, required: true, doc: "the metric (see `DSPex.Optimize`)."],
             prompt_model: [
               type: {:or, [:struct, nil]},
               doc: "the LM that proposes instructions (default: the configured LM)."
             ],
             task_model: [
               type: {:or, [:struct, nil]},
               doc: "the LM candidates run with (default: the configured LM)."
             ],
             breadth: [type: :pos_integer, default: 10, doc: "proposals per round (> 1)."],
             depth: [type: :pos_integer, default: 3, doc: "rounds."],
             init_temperature: [type: :number, default: 1.4, doc: "the proposals' temperature."],
             track_stats: [
               type: :boolean,
               default: false,
               doc: "compute `results_best` / `results_latest` (in `result.extra`)."
             ],
             dspy_quirks: [
               type: :boolean,
               default: true,
               doc: "keep DSPy 3.3.1's behaviour where it is a bug (see \"DSPy's quirks\" above)."
             ]
           )

  @moduledoc """
  COPRO, DSPy's coordinate-ascent instruction optimizer (`dspy.COPRO`), as a
  `DSPex.Optimize` job: budgeted, journaled, resumable.

  For every predictor, a prompt model proposes `breadth - 1` new instructions (and
  output prefixes) from the current one (`BasicGenerateInstruction`, at
  `init_temperature`); the current instruction joins them. For `depth` rounds, each
  predictor's candidates are scored on the whole trainset (a single predictor scores
  the latest batch, several predictors every candidate so far, since the others
  changed), the predictor keeps its best, and the prompt model is shown the best
  attempts so far, worst first (`GenerateInstructionGivenAttempts`) to propose
  `breadth` more. The result is the best program over every scored candidate, with
  `candidate_programs` (`%{score:, program:, instruction:, prefix:, depth:}`, best
  first, duplicates with the same score and the same instructions and last output
  field dropped) and `total_calls` (the evaluations), exactly as DSPy 3.3.1 computes
  them: the prompts, the candidate order, the `strip('"').strip()` of proposals, the
  "keep the earlier entry unless strictly better" rule for repeated candidates and the
  first-maximum choices are DSPy's (golden-checked against DSPy with
  `tools/gen_copro_traces.py`).

      {:ok, result} = DSPex.Optimizers.COPRO.compile(program, trainset,
                        metric: &MyApp.match/2, prompt_model: big_lm, breadth: 6, depth: 2)
      result.program          # the best program
      result.candidate_programs

  Each round of proposals is a journaled batch of the engine's QUEUE mode and every
  candidate a trial, so a resumed job makes no proposal call twice and scores no
  candidate twice.

  ## DSPy's quirks (kept by default, `dspy_quirks: false` to fix)

    * **Dedup never drops anything.** DSPy's `_drop_duplicates` compares the last output
      fields of two candidates with `!=` on pydantic `FieldInfo` objects, which compare by
      identity, and every candidate holds its own deep copy: so no two candidates are
      ever "equal" and `candidate_programs` keeps every entry. With `dspy_quirks: false`
      the fields are compared by value (the intended rule: same score, same instructions
      and same last output field for every predictor → dropped).

  Where DSPex differs from DSPy: an evaluation that fails as a whole (more failed
  examples than `max_errors`) scores 0.0 here, where DSPy's COPRO would raise and lose
  the run. Output prefixes are proposed and saved as DSPy does; DSPy 3.x adapters do
  not render them, so they do not change prompts (in DSPy either).

  ## Options

  #{DSPex.Options.docs(@options)}

  and the job options of `DSPex.Optimize` (budgets, journal, progress, `nodes:`).
  """

  @behaviour DSPex.Optimize.Optimizer

  alias DSPex.Optimize.Run
  alias DSPex.{Module, Signature}

  @doc false
  def options, do: @options

  @impl true
  def name, do: "copro"

  @impl true
  def validate!(opts) do
    opts = DSPex.Options.validate!(opts, @options, "DSPex.Optimizers.COPRO")
    if opts[:breadth] <= 1, do: raise(ArgumentError, "Breadth must be greater than 1")
    opts
  end

  @impl true
  def spec(_program, _trainset, opts) do
    %{
      "options" => %{
        "breadth" => opts[:breadth],
        "depth" => opts[:depth],
        "init_temperature" => opts[:init_temperature] * 1.0,
        "track_stats" => opts[:track_stats],
        "dspy_quirks" => opts[:dspy_quirks]
      }
    }
  end

  @doc """
  Runs COPRO as a blocking job and returns `{:ok, %DSPex.Optimize.Result{}}` (see
  `DSPex.Optimize` for the job options: budgets, journal, progress, nodes).

  ## Examples

      {:ok, result} = DSPex.Optimizers.COPRO.compile(qa, trainset, metric: &match/2, breadth: 4, depth: 2)
  """
  @spec compile(term, [DSPex.Example.t()], keyword) ::
          {:ok, DSPex.Optimize.Result.t()} | {:error, DSPex.Error.t()}
  def compile(program, trainset, opts),
    do: DSPex.Optimize.compile(__MODULE__, program, trainset, opts)

  # ------------------------------------------------------------------ the search

  @impl true
  def run(%Run{} = run, program, trainset, opts) do
    names = for {name, _} <- Module.named_predictors(program), do: name
    p = length(names)
    breadth = opts[:breadth]
    depth = opts[:depth]
    # trials a run makes: one batch of `breadth` per predictor per round, or (several
    # predictors) every candidate so far
    planned =
      if p > 1,
        do: p * Enum.sum(for d <- 0..(depth - 1), do: (d + 1) * breadth),
        else: depth * breadth

    run = %{run | plan: planned}

    st = %{
      opts: opts,
      names: names,
      trainset: trainset,
      module: program,
      clone: program,
      # per predictor: the latest batch and every candidate so far, as {instruction, prefix}
      latest: %{},
      all: %{},
      # per predictor: evaluated entries in insertion order (keys) and by key
      evaluated: Map.new(names, &{&1, {[], %{}}}),
      total_calls: 0,
      best: nil,
      results_best: Map.new(names, &{&1, stats0()}),
      results_latest: Map.new(names, &{&1, stats0()})
    }

    case Run.setup(run, fn -> {%{mode: :queue}, %{predictors: names}} end) do
      {:ok, _, run} -> search(run, st, 0, 0, [])
      {:stop, reason, run} -> finish(run, st, :stop, reason)
      {:error, e, run} -> finish(run, st, :error, e)
    end
  end

  defp stats0, do: %{depth: [], max: [], average: [], min: [], std: []}

  # Round d, predictor pi. `latest` is DSPy's latest_scores: reset per round, shared by
  # the round's predictors.
  defp search(run, st, d, pi, latest) do
    name = Enum.at(st.names, pi)
    index = d * length(st.names) + pi

    batch_fun = fn ->
      proposals = if pi == 0, do: proposals(run, st, d), else: nil
      st2 = if proposals, do: take_proposals(st, proposals, d), else: st
      cands = candidates(st2, name)
      {length(cands), :all, %{depth: d, predictor: name, proposals: proposals, candidates: cands}}
    end

    case Run.batch(run, index, batch_fun) do
      {:ok, blob, run} ->
        st =
          if pi == 0,
            do: st |> stats_before_round(d) |> take_proposals(blob.proposals, d),
            else: st

        score_batch(run, st, d, pi, index, blob.candidates, 0, latest)

      {:stop, reason, run} ->
        finish(run, st, :stop, reason)

      {:error, e, run} ->
        finish(run, st, :error, e)
    end
  end

  # The candidates of predictor `name` in this round: the latest batch, or everything
  # so far when the program has several predictors.
  defp candidates(st, name) do
    if length(st.names) > 1, do: Map.fetch!(st.all, name), else: Map.fetch!(st.latest, name)
  end

  # Proposals for every predictor: round 0 from its instruction, later rounds from the
  # attempts so far. Returns %{name => [{instruction, prefix}]}.
  defp proposals(run, st, 0) do
    for name <- st.names, into: %{} do
      pred = Module.get_predictor(st.module, name)
      sig = pred.signature
      basic_prefix = List.last(sig.outputs).prefix

      outs =
        propose(run, st.opts, basic_generate(), st.opts[:breadth] - 1,
          basic_instruction: sig.instructions
        )

      {name, outs ++ [{sig.instructions, basic_prefix}]}
    end
  end

  defp proposals(run, st, _d) do
    for name <- st.names, into: %{} do
      attempts = attempts(st, name)

      outs =
        propose(run, st.opts, given_attempts(), st.opts[:breadth],
          attempted_instructions: attempts
        )

      {name, outs}
    end
  end

  defp propose(run, opts, sig, n, inputs) do
    lm = Run.metered(run, opts[:prompt_model] || DSPex.Settings.get(:lm))
    pred = DSPex.Predict.new(sig, n: n, temperature: opts[:init_temperature], lm: lm)

    case DSPex.call(pred, inputs) do
      {:ok, out} ->
        for c <- out.completions,
            do:
              {to_string(c[:proposed_instruction] || ""),
               to_string(c[:proposed_prefix_for_output_field] || "")}

      # DSPy would raise; a proposal round that fails adds nothing
      {:error, _} ->
        []
    end
  end

  defp take_proposals(st, nil, _d), do: st

  defp take_proposals(st, proposals, d) do
    Enum.reduce(st.names, st, fn name, st ->
      outs = Map.get(proposals, name, [])
      latest = Map.put(st.latest, name, outs)

      all =
        if d == 0, do: Map.put(st.all, name, outs), else: Map.update!(st.all, name, &(&1 ++ outs))

      %{st | latest: latest, all: all}
    end)
  end

  # Up to `breadth` best attempts, worst first (DSPy's attempts list).
  defp attempts(st, name) do
    entries = sorted_entries(st, name)
    n = min(length(entries), st.opts[:breadth])

    if n == 0 do
      []
    else
      Enum.flat_map((n - 1)..0//-1, fn i ->
        j = n - i
        e = Enum.at(entries, i)

        [
          "Instruction ##{j}: #{e.instruction}",
          "Prefix ##{j}: #{e.prefix}",
          "Resulting Score ##{j}: #{DSPex.Evaluate.Score.py_str(e.score)}"
        ]
      end)
    end
  end

  # results_best for the round just finished (DSPy appends them while building attempts).
  defp stats_before_round(st, 0), do: st

  defp stats_before_round(st, d) do
    if st.opts[:track_stats] do
      Enum.reduce(st.names, st, fn name, st ->
        scores = st |> sorted_entries(name) |> Enum.map(& &1.score) |> Enum.take(10)
        %{st | results_best: Map.update!(st.results_best, name, &add_stats(&1, d - 1, scores))}
      end)
    else
      st
    end
  end

  defp score_batch(run, st, d, pi, _index, cands, ci, latest_scores) when ci >= length(cands) do
    name = Enum.at(st.names, pi)

    st =
      if st.opts[:track_stats] and latest_scores != [],
        do: %{
          st
          | results_latest: Map.update!(st.results_latest, name, &add_stats(&1, d, latest_scores))
        },
        else: st

    # the predictor keeps its best candidate before the next predictor is scored
    st =
      case sorted_entries_by_insertion_max(st, name) do
        nil -> st
        best -> %{st | clone: set_candidate(st.clone, name, best.instruction, best.prefix)}
      end

    cond do
      pi + 1 < length(st.names) -> search(run, st, d, pi + 1, latest_scores)
      d + 1 < st.opts[:depth] -> search(run, st, d + 1, 0, [])
      true -> finish(run, st, :done, nil)
    end
  end

  defp score_batch(run, st, d, pi, index, cands, ci, latest_scores) do
    name = Enum.at(st.names, pi)
    {raw_i, raw_p} = Enum.at(cands, ci)
    instruction = raw_i |> String.trim("\"") |> String.trim()
    prefix = raw_p |> String.trim("\"") |> String.trim()
    program = set_candidate(st.clone, name, instruction, prefix)

    outcome =
      case Run.next(run) do
        {:replayed, %{params: [^index, ^ci]} = trial, told, run} ->
          {:ok, told.score, {trial.number, true}, run}

        {:trial, %{params: [^index, ^ci]} = trial, run} ->
          with {:ok, out, run} <- Run.evaluate(run, trial, program, st.trainset),
               {:ok, _status, run} <- Run.tell(run, trial, out) do
            {:ok, out.score, {trial.number, false}, run}
          end

        {:trial, trial, run} ->
          {:error, sequence(trial, index, ci), run}

        {:replayed, trial, _told, run} ->
          {:error, sequence(trial, index, ci), run}

        {:need, run} ->
          {:error,
           DSPex.Error.new(:sequence, "the engine has no candidate #{ci} of batch #{index}", %{}),
           run}

        {:done, run} ->
          {:error, DSPex.Error.new(:sequence, "the engine ended before batch #{index}", %{}), run}

        {:stop, reason, run} ->
          {:stop, reason, run}

        {:error, e, run} ->
          {:error, e, run}
      end

    case outcome do
      {:ok, score, {number, replayed}, run} ->
        st = %{st | total_calls: st.total_calls + 1}
        st = record(st, name, instruction, prefix, score, program, d)

        latest_scores =
          if length(cands) - st.opts[:breadth] <= ci,
            do: latest_scores ++ [score],
            else: latest_scores

        {run, st} = note_best(run, st, number, replayed)
        score_batch(run, st, d, pi, index, cands, ci + 1, latest_scores)

      {:stop, reason, run} ->
        finish(run, st, :stop, reason)

      {:error, e, run} ->
        finish(run, st, :error, e)
    end
  end

  defp sequence(trial, index, ci),
    do:
      DSPex.Error.new(
        :sequence,
        "the journal's trial #{trial.number} is #{inspect(trial.params)}, COPRO expected [#{index}, #{ci}]",
        %{}
      )

  # evaluated_candidates[(instruction, prefix)] = entry, unless an entry with that key
  # already has a score >= this one; a replaced entry keeps its position (a dict).
  defp record(st, name, instruction, prefix, score, program, d) do
    {keys, by_key} = Map.fetch!(st.evaluated, name)
    key = {instruction, prefix}
    entry = %{score: score, program: program, instruction: instruction, prefix: prefix, depth: d}

    evaluated =
      case Map.fetch(by_key, key) do
        {:ok, old} when old.score >= score -> {keys, by_key}
        {:ok, _} -> {keys, Map.put(by_key, key, entry)}
        :error -> {keys ++ [key], Map.put(by_key, key, entry)}
      end

    %{st | evaluated: Map.put(st.evaluated, name, evaluated)}
  end

  defp entries(st, name) do
    {keys, by_key} = Map.fetch!(st.evaluated, name)
    Enum.map(keys, &Map.fetch!(by_key, &1))
  end

  # Python's sort(key=score, reverse=True): stable, ties keep insertion order.
  defp sorted_entries(st, name), do: sort_desc(entries(st, name))

  defp sort_desc(entries) do
    entries
    |> Enum.with_index()
    |> Enum.sort_by(fn {e, i} -> {-e.score, i} end)
    |> Enum.map(&elem(&1, 0))
  end

  # max(values, key=score): the first maximum in insertion order.
  defp sorted_entries_by_insertion_max(st, name) do
    Enum.reduce(entries(st, name), nil, fn e, best ->
      if best == nil or e.score > best.score, do: e, else: best
    end)
  end

  # Every predictor's entries (predictor order, then insertion order), best first, with
  # DSPy's duplicate rule.
  defp final_candidates(st) do
    sorted = st.names |> Enum.flat_map(&entries(st, &1)) |> sort_desc()
    if st.opts[:dspy_quirks], do: sorted, else: drop_duplicates(sorted)
  end

  defp drop_duplicates(cands) do
    {kept, _, _} =
      Enum.reduce(cands, {[], [], nil}, fn c, {kept, batch, batch_score} ->
        if c.score == batch_score do
          if Enum.any?(batch, &same_candidate?(c, &1)),
            do: {kept, batch, batch_score},
            else: {[c | kept], batch ++ [c], batch_score}
        else
          {[c | kept], [c], c.score}
        end
      end)

    Enum.reverse(kept)
  end

  # Same instructions and an equal last output field for every predictor.
  defp same_candidate?(a, b) do
    Enum.zip(Module.predictors(a.program), Module.predictors(b.program))
    |> Enum.all?(fn {p1, p2} ->
      p1.signature.instructions == p2.signature.instructions and
        List.last(p1.signature.outputs) == List.last(p2.signature.outputs)
    end)
  end

  defp note_best(run, st, number, replayed) do
    case final_candidates(st) do
      [best | _]
      when st.best == nil or best.program != st.best.program or best.score != st.best.score ->
        case Run.note_best(run, number, best.score, best.program, replayed) do
          {:ok, run} -> {run, %{st | best: best}}
          {:error, _e, run} -> {run, %{st | best: best}}
        end

      _ ->
        {run, st}
    end
  end

  defp set_candidate(program, name, instruction, prefix) do
    Module.update_predictor(program, name, fn p ->
      sig = Signature.with_instructions(p.signature, instruction)
      last = List.last(sig.outputs)
      %{p | signature: Signature.update_field(sig, last.name, prefix: prefix)}
    end)
  end

  defp add_stats(s, d, scores) do
    n = length(scores)
    mean = Enum.sum(scores) / n
    std = :math.sqrt(Enum.sum(Enum.map(scores, &((&1 - mean) * (&1 - mean)))) / n)

    %{
      s
      | depth: s.depth ++ [d],
        max: s.max ++ [Enum.max(scores)],
        average: s.average ++ [mean],
        min: s.min ++ [Enum.min(scores)],
        std: s.std ++ [std]
    }
  end

  defp finish(run, st, how, why) do
    cands = final_candidates(st)

    st =
      if st.opts[:track_stats] and how == :done do
        d = st.opts[:depth] - 1

        Enum.reduce(st.names, st, fn name, st ->
          scores = st |> sorted_entries(name) |> Enum.map(& &1.score) |> Enum.take(10)

          if scores == [],
            do: st,
            else: %{
              st
              | results_best: Map.update!(st.results_best, name, &add_stats(&1, d, scores))
            }
        end)
      else
        st
      end

    {program, score} =
      case cands do
        [best | _] -> {best.program, best.score}
        [] -> {st.module, nil}
      end

    fields = %{
      program: program,
      score: score,
      candidate_programs: cands,
      total_calls: st.total_calls,
      trial_logs: Run.trial_logs(run, fn told -> %{usage: told.usage} end),
      extra:
        if(st.opts[:track_stats],
          do: %{results_best: st.results_best, results_latest: st.results_latest},
          else: %{}
        )
    }

    Run.finish(how, why, fields, run)
  end

  # ------------------------------------------------------------------ signatures (DSPy's, exact)

  @doc false
  def basic_generate do
    "basic_instruction -> proposed_instruction, proposed_prefix_for_output_field"
    |> Signature.parse!(
      instructions:
        "You are an instruction optimizer for large language models. I will give you a ``signature`` of fields (inputs and outputs) in English. Your task is to propose an instruction that will lead a good language model to perform the task well. Don't be afraid to be creative."
    )
    |> Signature.update_field(:basic_instruction,
      desc: "The initial instructions before optimization"
    )
    |> Signature.update_field(:proposed_instruction,
      desc: "The improved instructions for the language model"
    )
    |> Signature.update_field(:proposed_prefix_for_output_field,
      desc:
        "The string at the end of the prompt, which will help the model start solving the task"
    )
  end

  @doc false
  def given_attempts do
    "attempted_instructions -> proposed_instruction, proposed_prefix_for_output_field"
    |> Signature.parse!(
      instructions:
        "You are an instruction optimizer for large language models. I will give some task instructions I've tried, along with their corresponding validation scores. The instructions are arranged in increasing order based on their scores, where higher scores indicate better quality.\n\nYour task is to propose a new instruction that will lead a good language model to perform the task even better. Don't be afraid to be creative."
    )
    |> Signature.update_field(:proposed_instruction,
      desc: "The improved instructions for the language model"
    )
    |> Signature.update_field(:proposed_prefix_for_output_field,
      desc:
        "The string at the end of the prompt, which will help the model start solving the task"
    )
  end
end
