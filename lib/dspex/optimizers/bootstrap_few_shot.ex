defmodule DSPex.Optimizers.BootstrapFewShot do
  @moduledoc """
  Demos bootstrapped from the program's own successful runs, like
  `dspy.BootstrapFewShot` — the same choices as DSPy 3.3.1, draw for draw.

      metric = fn example, pred, _trace -> example[:answer] == pred.answer end

      {:ok, compiled} =
        DSPex.Optimizers.BootstrapFewShot.compile(program, trainset,
          metric: metric, max_bootstrapped_demos: 4, max_labeled_demos: 16)

  ## What it does (DSPy's algorithm)

  1. The **student** is the program reset (`DSPex.Module.reset/1`: no demos, no
     per-predictor LM). The **teacher** is `teacher:` or the program as given; unless it
     already has demos (see `label_teacher`), it is reset and gets
     `DSPex.Optimizers.LabeledFewShot` demos (`k: max_labeled_demos`). Student and
     teacher must have the same predictor names and signatures.
  2. For each training example in order — stopping *before* an example once
     `max_bootstrapped_demos` **examples** have succeeded — up to `max_rounds` attempts:
     the teacher runs on the example's inputs, with the example itself removed from its
     demos, under `teacher_settings` and a fresh `DSPex.Trace`; round `r > 0` uses the
     settings LM with `rollout_id: r, temperature: 1.0` (DSPy's
     `lm.copy(rollout_id=r, temperature=1.0)`; see "Rounds" below). The metric gets
     `(example, prediction, trace)`; success is `value >= metric_threshold` when a
     non-zero threshold is set, else the value's truthiness; no metric means success.
     The first success ends the rounds.
  3. A success turns every trace entry of a known predictor into a demo
     `%{augmented: true, <inputs>, <outputs>}` (a `ChainOfThought`'s `reasoning`
     included). When one predictor ran several times for the example, one of its demos is
     kept (see "One demo per predictor and example").
  4. The examples that did not succeed (failed or never tried), shuffled with
     `random.Random(0)`, are the labeled pool; with one `random.Random(0)`, predictor by
     predictor: `demos = bootstrapped[0:max_bootstrapped_demos] ++ sample(pool, size)`
     with `size = max(0, min(max_labeled_demos - bootstrapped, length(pool)))`, and the
     pool becomes that sample (DSPy's detail: later predictors sample from the earlier
     sample).

  A program or metric failure counts as an error; at `max_errors` (default
  `DSPex.Settings.get(:max_errors)`, 10) the run stops with
  `{:error, %DSPex.Error{type: :too_many_errors}}` whose `details.error` is the last
  failure. Earlier failures are logged (the example's index and the error's type, never
  the example's data or the model's output) and count as unsuccessful attempts.

  ## Rounds

  With a `%DSPex.LM{}` as the settings LM (after `teacher_settings`), rounds after the
  first use `DSPex.LM.copy(lm, rollout_id: r, temperature: 1.0)`, exactly like DSPy; a
  predictor with its own LM keeps it. For any other LM (`DSPex.LM.Scripted`, your own
  `DSPex.BaseLM`) the two params are set through the `:lm_params` setting instead, so
  they reach every predictor's request.

  ## One demo per predictor and example

  DSPy seeds that choice with a SHA-256 of the *pickled* demos, which depends on
  Python's pickle format; DSPex seeds it (as a string, like DSPy) with the SHA-256 of
  the demos' canonical JSON (`DSPex.JSON.encode(demos, sort_keys: true)`) and then
  draws as DSPy does (`random() < 0.5` → `choice(demos[0..-2])`, else the last). Only
  this case can pick differently from DSPy.

  ## Differences from DSPy, on purpose

    * DSPy marks a compiled program `_compiled`; a DSPex program is a plain struct, so
      the teacher counts as compiled when one of its predictors has demos
      (`label_teacher: :auto`); pass `label_teacher: true | false` to decide yourself.
      DSPy's "Student must be uncompiled" check is not made (the student is reset
      anyway).
    * Training examples without input keys raise `ArgumentError` up front (DSPy counts
      each as an error); an empty trainset gives the reset program (DSPy raises
      `UnboundLocalError`).

  ## Telemetry and progress

  A `[:dspex, :optimize]` span (metadata `optimizer: :bootstrap_few_shot`, `program`,
  `trainset_size`; stop adds `status`, `bootstrapped`, `attempts`, `errors`) with one
  `[:dspex, :optimize, :round]` event per attempt (measurements `duration`; metadata
  `example_index`, `round`, `success`, `error` — the error type or `nil`). With
  `display_progress: true`, a `DSPex.Evaluate.Progress` bar over the trainset and
  DSPy's summary line `Bootstrapped 2 full traces after 3 examples for up to 1 rounds,
  amounting to 3 attempts.`

  ## Examples

      iex> lm = DSPex.LM.Scripted.new(fn _messages, _params -> %{answer: "4"} end)
      iex> trainset =
      ...>   for {q, a} <- [{"2+2?", "4"}, {"1+3?", "4"}, {"3+3?", "6"}] do
      ...>     DSPex.Example.new(question: q, answer: a) |> DSPex.Example.with_inputs([:question])
      ...>   end
      iex> metric = fn ex, pred, _trace -> ex[:answer] == pred.answer end
      iex> {:ok, qa} =
      ...>   DSPex.with_settings([lm: lm], fn ->
      ...>     DSPex.Optimizers.BootstrapFewShot.compile(DSPex.Predict.new("question -> answer"),
      ...>       trainset, metric: metric, max_bootstrapped_demos: 2, max_labeled_demos: 3)
      ...>   end)
      iex> qa.demos
      [%{augmented: true, question: "2+2?", answer: "4"},
       %{augmented: true, question: "1+3?", answer: "4"},
       %{question: "3+3?", answer: "6"}]
  """

  require Logger

  alias DSPex.{Error, Example, Module, Settings, Trace}
  alias DSPex.Optimizers.{LabeledFewShot, Shared}

  @who "DSPex.Optimizers.BootstrapFewShot"

  defmodule Result do
    @moduledoc """
    What a `DSPex.Optimizers.BootstrapFewShot.run/3` found — the state DSPy keeps on its
    optimizer after `compile`:

      * `program` — the compiled program;
      * `traces` — bootstrapped demos per predictor name, in bootstrap order (DSPy's
        `name2traces`), before the `max_bootstrapped_demos` cut;
      * `bootstrapped` — indices of the training examples that succeeded;
      * `validation` — the other examples, shuffled (DSPy's `validation`);
      * `attempts` — teacher runs made; `example_index` — the index the loop reached
        (DSPy's `example_idx`; `nil` for an empty trainset);
      * `error_count` — failed runs or metric calls.
    """

    defstruct program: nil,
              traces: %{},
              bootstrapped: [],
              validation: [],
              attempts: 0,
              example_index: nil,
              error_count: 0

    @type t :: %__MODULE__{
            program: struct,
            traces: %{binary => [map]},
            bootstrapped: [non_neg_integer],
            validation: [DSPex.Example.t()],
            attempts: non_neg_integer,
            example_index: non_neg_integer | nil,
            error_count: non_neg_integer
          }
  end

  @options DSPex.Options.schema!(
             metric: [
               type: {:or, [{:fun, 3}, {:fun, 2}, nil]},
               doc:
                 "`(example, prediction, trace)` or `(example, prediction)` → a boolean or " <>
                   "number; `nil`: every run succeeds. `trace` is `[{predictor_name, inputs, outputs}]`."
             ],
             metric_threshold: [
               type: {:or, [:number, nil]},
               doc:
                 "success is `metric >= metric_threshold` (`nil` or `0`: the metric's truthiness)."
             ],
             teacher: [
               type: {:or, [:struct, nil]},
               doc: "the program that produces the traces (default: the program itself)."
             ],
             teacher_settings: [
               type: :keyword,
               default: [],
               doc:
                 "`DSPex.with_settings/2` overrides for the teacher's runs (e.g. `lm: big_lm`)."
             ],
             label_teacher: [
               type: {:in, [:auto, true, false]},
               default: :auto,
               doc:
                 "give the teacher `LabeledFewShot` demos first: `:auto` unless a given teacher already has demos."
             ],
             max_bootstrapped_demos: [
               type: :non_neg_integer,
               default: 4,
               doc: "bootstrapped demos per predictor (and successful examples to collect)."
             ],
             max_labeled_demos: [
               type: :non_neg_integer,
               default: 16,
               doc: "demos per predictor in all, topped up with labeled examples."
             ],
             max_rounds: [
               type: :non_neg_integer,
               default: 1,
               doc: "attempts per training example."
             ],
             max_errors: [
               type: {:or, [:non_neg_integer, nil]},
               doc: "failures that stop the run (default `DSPex.Settings.get(:max_errors)`)."
             ]
           ) ++ Shared.progress_options()

  @doc """
  The option schema of `compile/3` and `run/3`.
  """
  @spec options_schema() :: DSPex.Options.schema()
  def options_schema, do: @options

  @doc """
  Bootstraps demos for every predictor of `program` (see the module doc). Returns
  `{:ok, compiled}` or `{:error, %DSPex.Error{type: :too_many_errors}}`.

  ## Options

  #{DSPex.Options.docs(@options)}
  """
  @spec compile(struct, [Example.t()], keyword) :: {:ok, struct} | {:error, Error.t()}
  def compile(program, trainset, opts \\ []) do
    with {:ok, %Result{program: p}} <- run(program, trainset, opts), do: {:ok, p}
  end

  @doc """
  Like `compile/3` but returns the program or raises the `%DSPex.Error{}`.
  """
  @spec compile!(struct, [Example.t()], keyword) :: struct
  def compile!(program, trainset, opts \\ []) do
    case compile(program, trainset, opts) do
      {:ok, p} -> p
      {:error, e} -> raise e
    end
  end

  @doc """
  Like `compile/3`, returning the whole `DSPex.Optimizers.BootstrapFewShot.Result`
  (bootstrapped traces, the labeled pool, counts).

  ## Examples

      iex> lm = DSPex.LM.Scripted.new(fn _messages, _params -> %{answer: "4"} end)
      iex> trainset =
      ...>   for {q, a} <- [{"2+2?", "4"}, {"3+3?", "6"}, {"1+3?", "4"}] do
      ...>     DSPex.Example.new(question: q, answer: a) |> DSPex.Example.with_inputs([:question])
      ...>   end
      iex> {:ok, r} =
      ...>   DSPex.with_settings([lm: lm], fn ->
      ...>     DSPex.Optimizers.BootstrapFewShot.run(DSPex.Predict.new("question -> answer"), trainset,
      ...>       metric: fn ex, pred, _ -> ex[:answer] == pred.answer end, max_bootstrapped_demos: 1)
      ...>   end)
      iex> {r.bootstrapped, r.attempts, r.example_index, length(r.validation)}
      {[0], 1, 1, 2}
  """
  @spec run(struct, [Example.t()], keyword) :: {:ok, Result.t()} | {:error, Error.t()}
  def run(program, trainset, opts \\ []) do
    opts = DSPex.Options.validate!(opts, @options, "#{@who}.compile/3")
    Shared.check_program!(program, @who)
    Shared.check_trainset!(trainset, @who, true)
    run_checked(program, trainset, opts)
  end

  @doc false
  # run/3 on arguments already checked (RandomSearch, demo_candidates, KNNFewShot).
  def run_checked(%mod{} = program, trainset, opts) do
    meta = %{program: mod, trainset_size: length(trainset)}

    Shared.span(:bootstrap_few_shot, meta, fn ->
      result = bootstrap_and_train(program, trainset, opts)

      stop =
        case result do
          {:ok, r} ->
            %{bootstrapped: length(r.bootstrapped), attempts: r.attempts, errors: r.error_count}

          {:error, e} ->
            %{error: e.type}
        end

      {result, stop}
    end)
  end

  defp bootstrap_and_train(program, trainset, opts) do
    student = Module.reset(program)
    teacher = teacher(program, trainset, opts)
    check_structure!(student, teacher)
    names = Shared.names(student)

    max_errors =
      case opts[:max_errors] do
        nil -> Settings.get(:max_errors, 10)
        n -> n
      end

    with {:ok, st} <- bootstrap(teacher, trainset, names, opts, max_errors) do
      ok_set = MapSet.new(st.ok)

      pool = for {ex, i} <- Enum.with_index(trainset), not MapSet.member?(ok_set, i), do: ex

      {validation, _} = DSPex.Random.shuffle(DSPex.Random.new(0), pool)
      traces = Map.new(st.traces, fn {name, demos} -> {name, Enum.reverse(demos)} end)

      {:ok,
       %Result{
         program: train(student, names, traces, validation, opts),
         traces: traces,
         bootstrapped: Enum.reverse(st.ok),
         validation: validation,
         attempts: st.attempts,
         example_index: st.index,
         error_count: st.errors
       }}
    end
  end

  # --- demo candidate sets (MIPROv2's step 1) ----------------------------------------------

  @candidate_options DSPex.Options.schema!(
                       num_candidate_sets: [
                         type: :non_neg_integer,
                         required: true,
                         doc:
                           "how many sets, the three fixed ones (zero-shot, labeled, unshuffled) included."
                       ],
                       max_bootstrapped_demos: [
                         type: :non_neg_integer,
                         required: true,
                         doc:
                           "the most bootstrapped demos per set (shuffled sets draw a size from 1 (`min_num_samples`) to it)."
                       ],
                       max_labeled_demos: [
                         type: :non_neg_integer,
                         required: true,
                         doc: "demos per predictor in all."
                       ],
                       min_num_samples: [
                         type: :non_neg_integer,
                         default: 1,
                         doc: "the smallest size a shuffled set draws."
                       ],
                       labeled_sample: [
                         type: :boolean,
                         default: true,
                         doc: "the labeled set samples (`false`: the first examples)."
                       ],
                       include_non_bootstrapped: [
                         type: :boolean,
                         default: true,
                         doc:
                           "sets 0 and 1 are zero-shot and labeled-only (`false`: shuffled sets too)."
                       ],
                       seed: [
                         type: :integer,
                         default: 0,
                         doc: "seeds `random.Random(seed)` when no `rng` is given."
                       ],
                       rng: [
                         type: {:or, [{:struct, DSPex.Random}, nil]},
                         doc:
                           "the generator to draw the shuffles and sizes from (MIPROv2's shared one)."
                       ]
                     ) ++
                       DSPex.Options.take(@options, [
                         :metric,
                         :metric_threshold,
                         :teacher,
                         :teacher_settings,
                         :label_teacher,
                         :max_rounds,
                         :max_errors,
                         :display_progress,
                         :progress_device
                       ])

  @doc """
  DSPy's `create_n_fewshot_demo_sets` (`dspy/teleprompt/utils.py`), the demo candidates
  MIPROv2 searches over: `num_candidate_sets` demo sets per predictor, built like
  `DSPex.Optimizers.BootstrapFewShotWithRandomSearch` builds its candidates, with the
  same draws from the same generator.

  For `seed` in `-3 .. num_candidate_sets - 4`, on a fresh copy of the trainset:

    * `-3` — zero-shot: no demos (when `include_non_bootstrapped`);
    * `-2` — `DSPex.Optimizers.LabeledFewShot` with `k: max_labeled_demos`
      (when `max_labeled_demos > 0` and `include_non_bootstrapped`);
    * `-1` — BootstrapFewShot on the unshuffled trainset;
    * otherwise (also `-2`/`-3` when they do not apply) — `shuffle(trainset)`, then
      `size = randint(min_num_samples, max_bootstrapped_demos)`, both drawn from `rng`
      (default `random.Random(seed)`), and BootstrapFewShot with
      `max_bootstrapped_demos: size` on the shuffled copy.

  Every BootstrapFewShot run is a new one (its own error count). Returns
  `{:ok, %{demo_candidates: candidates, rng: rng}}` where `candidates` has one entry
  per predictor (in `DSPex.Module.named_predictors/1` order), each the list of its
  demo sets in seed order (set 0 is `[]`), and `rng` is the generator after the last
  draw — hand it on to the next step as DSPy shares `self.rng`. A BootstrapFewShot
  failure returns its `{:error, %DSPex.Error{}}`.

  ## Options

  #{DSPex.Options.docs(@candidate_options)}

  ## Examples

      iex> lm = DSPex.LM.Scripted.new(fn _messages, _params -> %{answer: "4"} end)
      iex> trainset =
      ...>   for {q, a} <- [{"2+2?", "4"}, {"3+3?", "6"}, {"1+3?", "4"}] do
      ...>     DSPex.Example.new(question: q, answer: a) |> DSPex.Example.with_inputs([:question])
      ...>   end
      iex> {:ok, %{demo_candidates: [sets], rng: _rng}} =
      ...>   DSPex.with_settings([lm: lm], fn ->
      ...>     DSPex.Optimizers.BootstrapFewShot.demo_candidates(DSPex.Predict.new("question -> answer"),
      ...>       trainset, num_candidate_sets: 4, max_bootstrapped_demos: 2, max_labeled_demos: 2,
      ...>       metric: fn ex, pred, _ -> ex[:answer] == pred.answer end)
      ...>   end)
      iex> Enum.map(sets, &length/1)
      [0, 2, 2, 2]
  """
  @spec demo_candidates(struct, [Example.t()], keyword) ::
          {:ok, %{demo_candidates: [[[map]]], rng: DSPex.Random.t()}} | {:error, Error.t()}
  def demo_candidates(program, trainset, opts) do
    opts = DSPex.Options.validate!(opts, @candidate_options, "#{@who}.demo_candidates/3")
    Shared.check_program!(program, @who)
    Shared.check_trainset!(trainset, @who, true)

    last = opts[:num_candidate_sets] - 4
    names = Shared.names(program)
    rng = opts[:rng] || DSPex.Random.new(opts[:seed])

    max_errors =
      case opts[:max_errors] do
        nil -> Settings.get(:max_errors, 10)
        n -> n
      end

    boot_opts = fn size ->
      opts
      |> Keyword.take(
        [:metric, :metric_threshold, :teacher, :teacher_settings, :label_teacher] ++
          [:max_rounds, :max_labeled_demos, :display_progress, :progress_device]
      )
      |> Keyword.merge(max_bootstrapped_demos: size, max_errors: max_errors)
    end

    labeled? = opts[:include_non_bootstrapped]

    -3..last//1
    |> Enum.reduce_while({:ok, [], rng}, fn seed, {:ok, sets, rng} ->
      Shared.say(opts, "Bootstrapping set #{seed + 4}/#{last + 4}")

      built =
        cond do
          seed == -3 and labeled? ->
            {:ok, Module.reset(program), rng}

          seed == -2 and labeled? and opts[:max_labeled_demos] > 0 ->
            k = opts[:max_labeled_demos]
            {:ok, LabeledFewShot.label(program, trainset, k, opts[:labeled_sample]), rng}

          seed == -1 ->
            with {:ok, r} <-
                   run_checked(program, trainset, boot_opts.(opts[:max_bootstrapped_demos])),
                 do: {:ok, r.program, rng}

          true ->
            {shuffled, rng} = DSPex.Random.shuffle(rng, trainset)

            {size, rng} =
              DSPex.Random.randint(rng, opts[:min_num_samples], opts[:max_bootstrapped_demos])

            with {:ok, r} <- run_checked(program, shuffled, boot_opts.(size)),
                 do: {:ok, r.program, rng}
        end

      case built do
        {:ok, p, rng} ->
          set = Enum.map(Module.predictors(p), & &1.demos)
          {:cont, {:ok, [set | sets], rng}}

        {:error, _} = err ->
          {:halt, err}
      end
    end)
    |> case do
      {:ok, sets, rng} ->
        sets = Enum.reverse(sets)
        per_predictor = for i <- 0..(length(names) - 1), do: Enum.map(sets, &Enum.at(&1, i))
        {:ok, %{demo_candidates: per_predictor, rng: rng}}

      {:error, _} = err ->
        err
    end
  end

  # --- teacher ----------------------------------------------------------------------------

  defp teacher(program, trainset, opts) do
    given = opts[:teacher]
    base = given || program
    k = opts[:max_labeled_demos]

    label? =
      case opts[:label_teacher] do
        :auto -> k > 0 and (given == nil or not has_demos?(given))
        flag -> flag and k > 0
      end

    if label?, do: LabeledFewShot.label(base, trainset, k, true), else: base
  end

  defp has_demos?(program), do: Enum.any?(Module.predictors(program), &(&1.demos != []))

  defp check_structure!(student, teacher) do
    s = Module.named_predictors(student)
    t = Module.named_predictors(teacher)

    if length(s) != length(t) do
      raise ArgumentError,
            "#{@who}: the student and the teacher must have the same number of predictors " <>
              "(#{length(s)} vs #{length(t)})"
    end

    Enum.zip(s, t)
    |> Enum.each(fn {{n1, p1}, {n2, p2}} ->
      if n1 != n2 do
        raise ArgumentError,
              "#{@who}: the student and the teacher must have the same program structure " <>
                "(predictor #{inspect(n1)} vs #{inspect(n2)})"
      end

      if signature_key(p1.signature) != signature_key(p2.signature) do
        raise ArgumentError,
              "#{@who}: the student and the teacher must have the same signatures " <>
                "(predictor #{inspect(n1)} differs)"
      end
    end)
  end

  # What DSPy's Signature.equals compares: instructions, field names, prefixes and
  # descriptions (not types).
  defp signature_key(sig) do
    fields = for f <- sig.inputs ++ sig.outputs, do: {f.name, f.prefix, f.desc}
    {sig.instructions, Enum.map(sig.inputs, & &1.name), fields}
  end

  # --- bootstrap loop ---------------------------------------------------------------------

  defp bootstrap(teacher, trainset, names, opts, max_errors) do
    ctx = %{
      teacher: teacher,
      known: MapSet.new(names),
      metric: opts[:metric],
      threshold: opts[:metric_threshold],
      teacher_settings: opts[:teacher_settings],
      max_rounds: opts[:max_rounds],
      max_errors: max_errors,
      max_boot: opts[:max_bootstrapped_demos]
    }

    st = %{
      traces: Map.new(names, &{&1, []}),
      ok: [],
      n_ok: 0,
      tried: 0,
      attempts: 0,
      errors: 0,
      index: nil,
      progress: Shared.progress(length(trainset), opts, &describe/2)
    }

    case examples(Enum.with_index(trainset), ctx, st) do
      {:ok, st} ->
        Shared.say(
          opts,
          "Bootstrapped #{st.n_ok} full traces after #{st.index} examples for up to " <>
            "#{ctx.max_rounds} rounds, amounting to #{st.attempts} attempts."
        )

        {:ok, st}

      {:error, _} = err ->
        err
    end
  end

  defp describe(ok, tried), do: "Bootstrapped: #{ok} of #{tried} examples"

  defp examples([], _ctx, st), do: {:ok, finish(st)}

  defp examples([{ex, idx} | rest], ctx, st) do
    st = %{st | index: idx}

    if st.n_ok >= ctx.max_boot do
      {:ok, finish(st)}
    else
      case rounds(ex, idx, 0, ctx, st) do
        {:ok, st} ->
          st = %{st | tried: st.tried + 1}

          examples(rest, ctx, %{
            st
            | progress: DSPex.Evaluate.Progress.update(st.progress, idx + 1, st.n_ok, st.tried)
          })

        {:error, _} = err ->
          finish(st)
          err
      end
    end
  end

  defp finish(st),
    do: %{st | progress: DSPex.Evaluate.Progress.finish(st.progress, st.tried, st.n_ok, st.tried)}

  defp rounds(_ex, _idx, round, %{max_rounds: max}, st) when round >= max, do: {:ok, st}

  defp rounds(ex, idx, round, ctx, st) do
    st = %{st | attempts: st.attempts + 1}
    t0 = System.monotonic_time()
    outcome = attempt(ex, round, ctx)
    duration = System.monotonic_time() - t0

    event = fn success, error ->
      Shared.round_event(:bootstrap_few_shot, %{duration: duration}, %{
        example_index: idx,
        round: round,
        success: success,
        error: error
      })
    end

    case outcome do
      {:ok, true, trace} ->
        event.(true, nil)
        {:ok, record(st, idx, trace, ctx)}

      {:ok, false, _trace} ->
        event.(false, nil)
        rounds(ex, idx, round + 1, ctx, st)

      {:error, %Error{} = e} ->
        event.(false, e.type)
        st = %{st | errors: st.errors + 1}

        if st.errors >= ctx.max_errors do
          {:error,
           Error.new(
             :too_many_errors,
             "#{@who} stopped after #{st.errors} failed attempts (max_errors: #{ctx.max_errors}); " <>
               "the last, on training example #{idx}: #{e.message}",
             %{error: e, errors: st.errors, max_errors: ctx.max_errors, example_index: idx}
           )}
        else
          # The type only: messages can quote model output, which stays out of logs.
          what =
            case e.details[:exception] do
              nil -> inspect(e.type)
              mod -> "#{inspect(e.type)} #{inspect(mod)}"
            end

          Logger.error(
            "#{@who}: failed to run or to evaluate training example #{idx} with " <>
              "#{Shared.metric_name(ctx.metric)} (#{what}); it counts as unsuccessful"
          )

          rounds(ex, idx, round + 1, ctx, st)
        end
    end
  end

  # One teacher run on `ex` and its metric: {:ok, success?, trace} or {:error, error}.
  defp attempt(ex, round, ctx) do
    teacher =
      Module.map_predictors(ctx.teacher, fn p ->
        %{p | demos: Enum.reject(DSPex.Predict.normalize_demos(p.demos), &(&1 == ex.fields))}
      end)

    DSPex.with_settings(ctx.teacher_settings, fn ->
      overrides = round_settings(Settings.get(:lm), round)

      {result, trace} =
        DSPex.with_settings(overrides, fn ->
          Trace.with_trace(fn -> DSPex.call(teacher, Example.inputs(ex)) end)
        end)

      with {:ok, pred} <- result do
        success =
          case ctx.metric do
            nil -> true
            metric -> Shared.success?(Shared.call_metric(metric, ex, pred, trace), ctx.threshold)
          end

        {:ok, success, trace}
      end
    end)
  rescue
    e -> {:error, Shared.to_error(e)}
  catch
    :exit, reason ->
      {:error, Error.new(:optimizer, "exited: #{DSPex.Error.describe(reason)}", %{})}

    :throw, value ->
      {:error, Error.new(:optimizer, "threw: #{DSPex.Error.describe(value)}", %{})}
  end

  @doc false
  # The settings of round `round` (see "Rounds" in the module doc).
  def round_settings(_lm, 0), do: []

  def round_settings(%DSPex.LM{} = lm, round),
    do: [lm: DSPex.LM.copy(lm, rollout_id: round, temperature: 1.0)]

  def round_settings(_lm, round) do
    params = Map.new(Settings.get(:lm_params, %{}))
    [lm_params: Map.merge(params, %{rollout_id: round, temperature: 1.0})]
  end

  # A success: the trace's demos, one per predictor (see the module doc).
  defp record(st, idx, trace, ctx) do
    by_name =
      Enum.reduce(trace, %{}, fn {name, inputs, outputs}, acc ->
        if MapSet.member?(ctx.known, name) do
          demo = inputs |> Map.merge(outputs) |> Map.put(:augmented, true)
          Map.update(acc, name, [demo], &[demo | &1])
        else
          acc
        end
      end)

    traces =
      Enum.reduce(by_name, st.traces, fn {name, rev}, acc ->
        [demo] = one_demo(Enum.reverse(rev))
        Map.update!(acc, name, &[demo | &1])
      end)

    %{st | traces: traces, ok: [idx | st.ok], n_ok: st.n_ok + 1}
  end

  defp one_demo([_] = one), do: one

  defp one_demo(demos) do
    rng = DSPex.Random.new(demos_hash(demos))
    {x, rng} = DSPex.Random.random(rng)

    if x < 0.5 do
      {d, _} = DSPex.Random.choice(rng, Enum.drop(demos, -1))
      [d]
    else
      [List.last(demos)]
    end
  end

  @doc false
  # The seed of the one-demo choice: SHA-256 (hex) of the demos' canonical JSON.
  def demos_hash(demos) do
    json = DSPex.JSON.encode!(DSPex.Program.jsonable(demos), sort_keys: true)
    Base.encode16(:crypto.hash(:sha256, json), case: :lower)
  end

  # --- the labeled top-up -----------------------------------------------------------------

  defp train(student, names, traces, validation, opts) do
    max_boot = opts[:max_bootstrapped_demos]
    max_labeled = opts[:max_labeled_demos]

    {by_name, _, _} =
      Enum.reduce(names, {%{}, validation, DSPex.Random.new(0)}, fn name, {acc, pool, rng} ->
        augmented = Enum.take(Map.get(traces, name, []), max_boot)
        size = max(0, min(max_labeled - length(augmented), length(pool)))
        {pool, rng} = DSPex.Random.sample(rng, pool, size)
        {Map.put(acc, name, augmented ++ Enum.map(pool, &Shared.demo/1)), pool, rng}
      end)

    Shared.put_demos(student, by_name)
  end
end
