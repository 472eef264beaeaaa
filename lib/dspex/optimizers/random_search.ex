defmodule DSPex.Optimizers.BootstrapFewShotWithRandomSearch do
  @moduledoc """
  Random search over bootstrapped demo sets, like
  `dspy.BootstrapFewShotWithRandomSearch` (`dspy.BootstrapRS`): the same candidates,
  seeds and draws as DSPy 3.3.1, each scored with `DSPex.Evaluate.run/3` — so
  `max_concurrency:` and `nodes:` spread the candidate evaluations like any evaluation.

      {:ok, best} =
        DSPex.Optimizers.BootstrapFewShotWithRandomSearch.compile(program, trainset,
          metric: metric, num_candidate_programs: 8, valset: devset, max_concurrency: 16)

  ## Candidates

  For `seed` in `-3 .. num_candidate_programs - 1`, each on a fresh copy of the
  trainset:

    * `-3` — the program reset (zero-shot; instructions kept);
    * `-2` — `DSPex.Optimizers.LabeledFewShot` with `k: max_labeled_demos`
      (`sample: labeled_sample`);
    * `-1` — `DSPex.Optimizers.BootstrapFewShot` on the unshuffled trainset;
    * `seed >= 0` — the trainset shuffled with `random.Random(seed)`, and
      `size = random.Random(seed).randint(1, max_bootstrapped_demos)` from a *second*
      fresh generator (DSPy's draw); then BootstrapFewShot with
      `max_bootstrapped_demos: size` on the shuffled copy.

  Every BootstrapFewShot run is new (its own error count) and gets the effective
  `max_errors`. Each candidate is evaluated on `valset` (default: the trainset) with
  `metric` called as `(example, prediction)` (DSPy's Evaluate passes no trace; a
  3-arity metric gets `nil`). A candidate is the new best when it is the first or
  scores strictly higher than every earlier one (ties keep the earlier seed);
  `stop_at_score` ends the search once a score reaches it. `restrict:` runs only the
  listed seeds.

  `compile/3` returns the best program; `run/3` returns a
  `DSPex.Optimizers.BootstrapFewShotWithRandomSearch.Result` that also holds every
  candidate as `%{score, subscores, seed, program}`, best first (a stable sort: equal
  scores stay in seed order) — DSPy's `best_program.candidate_programs`.

  ## Errors

  A BootstrapFewShot or Evaluate run that reaches `max_errors` ends the search with its
  `{:error, %DSPex.Error{type: :too_many_errors}}` (DSPy raises).

  ## Telemetry and progress

  A `[:dspex, :optimize]` span (metadata `optimizer: :random_search`, `program`,
  `trainset_size`, `valset_size`; stop adds `status`, `score`, `best_seed`,
  `candidates`), one `[:dspex, :optimize, :round]` event per candidate (measurements
  `score`, `duration`; metadata `seed`, `best`), and the nested BootstrapFewShot and
  Evaluate spans. With `display_progress: true`, each evaluation's progress bar and
  DSPy's lines (`New best score: 62.5 for seed -1`, `Scores so far: [...]`, ...).

  ## Examples

      iex> lm = DSPex.LM.Scripted.new(fn _messages, _params -> %{answer: "4"} end)
      iex> trainset =
      ...>   for {q, a} <- [{"2+2?", "4"}, {"3+3?", "6"}, {"1+3?", "4"}] do
      ...>     DSPex.Example.new(question: q, answer: a) |> DSPex.Example.with_inputs([:question])
      ...>   end
      iex> {:ok, result} =
      ...>   DSPex.with_settings([lm: lm], fn ->
      ...>     DSPex.Optimizers.BootstrapFewShotWithRandomSearch.run(DSPex.Predict.new("question -> answer"),
      ...>       trainset, metric: fn ex, pred -> ex[:answer] == pred.answer end,
      ...>       num_candidate_programs: 2, max_bootstrapped_demos: 1, max_labeled_demos: 2)
      ...>   end)
      iex> {result.score, Enum.map(result.candidates, & &1.seed)}
      {66.67, [-3, -2, -1, 0, 1]}
  """

  alias DSPex.{Error, Example, Module, Settings}
  alias DSPex.Evaluate.Score
  alias DSPex.Optimizers.{BootstrapFewShot, LabeledFewShot, Shared}

  @who "DSPex.Optimizers.BootstrapFewShotWithRandomSearch"

  defmodule Result do
    @moduledoc """
    What `DSPex.Optimizers.BootstrapFewShotWithRandomSearch.run/3` found: the best
    `program`, its `score`, and every evaluated candidate as
    `%{score, subscores, seed, program}`, best first (DSPy's `candidate_programs`).
    """

    defstruct program: nil, score: nil, candidates: []

    @type candidate :: %{score: float, subscores: [term], seed: integer, program: struct}
    @type t :: %__MODULE__{program: struct, score: float, candidates: [candidate]}
  end

  @options DSPex.Options.schema!(
             metric: [
               type: {:or, [{:fun, 2}, {:fun, 3}]},
               required: true,
               doc:
                 "scores candidates (Evaluate: `(example, prediction)`) and filters bootstrap " <>
                   "traces (`(example, prediction, trace)` when it takes three arguments)."
             ],
             valset: [
               type: {:or, [:list, nil]},
               doc:
                 "the examples candidates are scored on (default, or when empty: the trainset)."
             ],
             num_candidate_programs: [
               type: :non_neg_integer,
               default: 16,
               doc: "bootstrapped candidates with seeds `0..n-1`, after the three fixed ones."
             ],
             stop_at_score: [
               type: {:or, [:number, nil]},
               doc: "stop once a candidate scores at least this (a percentage)."
             ],
             restrict: [
               type: {:or, [{:list, :integer}, nil]},
               doc: "evaluate only these seeds (each in `-3..num_candidate_programs-1`)."
             ],
             labeled_sample: [
               type: :boolean,
               default: true,
               doc: "the labeled-only candidate samples its demos (`false`: the first ones)."
             ],
             max_concurrency: [
               type: {:or, [:pos_integer, nil]},
               doc: "examples evaluated at once per node (DSPy's `num_threads`)."
             ],
             nodes: [
               type: {:or, [{:list, :atom}, nil]},
               doc: "nodes the evaluations run on (see `DSPex.Evaluate.run/3`)."
             ]
           ) ++
             DSPex.Options.take(BootstrapFewShot.options_schema(), [
               :metric_threshold,
               :teacher,
               :teacher_settings,
               :label_teacher,
               :max_bootstrapped_demos,
               :max_labeled_demos,
               :max_rounds,
               :max_errors
             ]) ++ Shared.progress_options()

  @doc """
  The option schema of `compile/3` and `run/3`.
  """
  @spec options_schema() :: DSPex.Options.schema()
  def options_schema, do: @options

  @doc """
  Searches the candidates (see the module doc) and returns `{:ok, best_program}` or
  `{:error, %DSPex.Error{}}`.

  ## Options

  #{DSPex.Options.docs(@options)}
  """
  @spec compile(struct, [Example.t()], keyword) :: {:ok, struct} | {:error, Error.t()}
  def compile(program, trainset, opts) do
    with {:ok, %Result{program: p}} <- run(program, trainset, opts), do: {:ok, p}
  end

  @doc """
  Like `compile/3` but returns the program or raises the `%DSPex.Error{}`.
  """
  @spec compile!(struct, [Example.t()], keyword) :: struct
  def compile!(program, trainset, opts) do
    case compile(program, trainset, opts) do
      {:ok, p} -> p
      {:error, e} -> raise e
    end
  end

  @doc """
  Like `compile/3`, returning the `DSPex.Optimizers.BootstrapFewShotWithRandomSearch.Result`
  with every candidate.
  """
  @spec run(struct, [Example.t()], keyword) :: {:ok, Result.t()} | {:error, Error.t()}
  def run(%mod{} = program, trainset, opts) do
    opts = DSPex.Options.validate!(opts, @options, "#{@who}.compile/3")
    Shared.check_program!(program, @who)
    Shared.check_trainset!(trainset, @who, true)

    valset =
      case opts[:valset] do
        v when v in [nil, []] -> trainset
        v -> v
      end

    Shared.check_trainset!(valset, @who <> " (valset)", true)

    if valset == [] do
      raise ArgumentError, "#{@who}: the trainset (the default valset) is empty"
    end

    n = opts[:num_candidate_programs]
    seeds = seeds(n, opts[:restrict])

    max_errors =
      case opts[:max_errors] do
        nil -> Settings.get(:max_errors, 10)
        m -> m
      end

    Shared.say(
      opts,
      "Going to sample between 1 and #{opts[:max_bootstrapped_demos]} traces per predictor."
    )

    Shared.say(opts, "Will attempt to bootstrap #{n} candidate sets.")

    meta = %{program: mod, trainset_size: length(trainset), valset_size: length(valset)}

    Shared.span(:random_search, meta, fn ->
      result = search(program, trainset, valset, seeds, max_errors, opts)

      stop =
        case result do
          {:ok, r} ->
            %{score: r.score, best_seed: best_seed(r), candidates: length(r.candidates)}

          {:error, e} ->
            %{error: e.type}
        end

      {result, stop}
    end)
  end

  defp best_seed(%Result{program: p, candidates: cs}),
    do: Enum.find_value(cs, fn c -> if c.program === p, do: c.seed end)

  defp seeds(n, nil), do: Enum.to_list(-3..(n - 1)//1)

  defp seeds(n, restrict) do
    all = Enum.to_list(-3..(n - 1)//1)

    case Enum.filter(all, &(&1 in restrict)) do
      [] ->
        raise ArgumentError,
              "#{@who}: restrict: #{inspect(restrict)} does not match any candidate seed in " <>
                "-3..#{n - 1}; no candidate programs would be evaluated"

      seeds ->
        seeds
    end
  end

  defp search(program, trainset, valset, seeds, max_errors, opts) do
    acc = %{scores: [], candidates: [], best: nil, best_score: nil}

    Enum.reduce_while(seeds, {:ok, acc}, fn seed, {:ok, acc} ->
      t0 = System.monotonic_time()

      with {:ok, candidate} <- candidate(program, trainset, seed, max_errors, opts),
           {:ok, result} <- evaluate(candidate, valset, max_errors, opts) do
        score = result.score
        subscores = Enum.map(result.results, &elem(&1, 2))
        new_best? = acc.scores == [] or score > Enum.max(acc.scores)

        if new_best?, do: Shared.say(opts, "New best score: #{py(score)} for seed #{seed}")

        acc = %{
          acc
          | scores: acc.scores ++ [score],
            candidates: [
              %{score: score, subscores: subscores, seed: seed, program: candidate}
              | acc.candidates
            ],
            best: if(new_best?, do: candidate, else: acc.best),
            best_score: if(new_best?, do: score, else: acc.best_score)
        }

        Shared.say(opts, "Scores so far: [#{Enum.map_join(acc.scores, ", ", &py/1)}]")
        Shared.say(opts, "Best score so far: #{py(Enum.max(acc.scores))}")

        Shared.round_event(
          :random_search,
          %{score: score, duration: System.monotonic_time() - t0},
          %{seed: seed, best: new_best?}
        )

        stop = opts[:stop_at_score]

        if stop != nil and score >= stop do
          Shared.say(
            opts,
            "Stopping early because score #{py(score)} is >= stop_at_score #{py(stop)}"
          )

          {:halt, {:ok, acc}}
        else
          {:cont, {:ok, acc}}
        end
      else
        {:error, _} = err -> {:halt, err}
      end
    end)
    |> case do
      {:ok, acc} ->
        candidates = acc.candidates |> Enum.reverse() |> Enum.sort_by(& &1.score, :desc)
        Shared.say(opts, "#{length(candidates)} candidate programs found.")
        {:ok, %Result{program: acc.best, score: acc.best_score, candidates: candidates}}

      {:error, _} = err ->
        err
    end
  end

  defp py(x), do: Score.py_str(x)

  # The candidate program of `seed` (see the module doc).
  defp candidate(program, _trainset, -3, _max_errors, _opts), do: {:ok, Module.reset(program)}

  defp candidate(program, trainset, -2, _max_errors, opts) do
    {:ok,
     LabeledFewShot.label(program, trainset, opts[:max_labeled_demos], opts[:labeled_sample])}
  end

  defp candidate(program, trainset, -1, max_errors, opts),
    do: bootstrap(program, trainset, opts[:max_bootstrapped_demos], max_errors, opts)

  defp candidate(program, trainset, seed, max_errors, opts) do
    {shuffled, _} = DSPex.Random.shuffle(DSPex.Random.new(seed), trainset)
    {size, _} = DSPex.Random.randint(DSPex.Random.new(seed), 1, opts[:max_bootstrapped_demos])
    bootstrap(program, shuffled, size, max_errors, opts)
  end

  defp bootstrap(program, trainset, size, max_errors, opts) do
    boot_opts =
      opts
      |> Keyword.take([
        :metric,
        :metric_threshold,
        :teacher,
        :teacher_settings,
        :label_teacher,
        :max_labeled_demos,
        :max_rounds,
        :display_progress,
        :progress_device
      ])
      |> Keyword.merge(max_bootstrapped_demos: size, max_errors: max_errors)

    with {:ok, r} <- BootstrapFewShot.run_checked(program, trainset, boot_opts),
         do: {:ok, r.program}
  end

  defp evaluate(program, valset, max_errors, opts) do
    DSPex.Evaluate.run(program, valset,
      metric: opts[:metric],
      max_concurrency: opts[:max_concurrency],
      max_errors: max_errors,
      nodes: opts[:nodes],
      display_progress: opts[:display_progress],
      progress_device: opts[:progress_device]
    )
  end
end
