defmodule DSPex.Optimizers.DemoSets do
  @moduledoc """
  DSPy's `create_n_fewshot_demo_sets` (`dspy/teleprompt/utils.py`): the candidate
  few-shot demo sets MIPROv2 searches over, one list of sets per predictor.

  For `seed` in `-3 .. n_sets - 4` (`n_sets` includes the first three):

    * `-3` — no demos (the student as it is, reset);
    * `-2` — when `max_labeled_demos > 0`: `max_labeled_demos` training examples
      (LabeledFewShot: `random.Random(0).sample`, per predictor);
    * `-1` — BootstrapFewShot on the unshuffled trainset;
    * otherwise (also `-2` when `max_labeled_demos` is 0) — the trainset shuffled with
      the shared `rng`, a size `rng.randint(1, max_bootstrapped_demos)`, then
      BootstrapFewShot with that many bootstrapped demos.

  BootstrapFewShot here is DSPy's algorithm as reference §5 states it (a teacher with
  labeled demos, one round per example, traces that pass the metric become `augmented`
  demos, the rest of the trainset shuffled with `Random(0)` and sampled for labeled
  demos). It stands in until `DSPex.Optimizers.BootstrapFewShot` ships in the tree (the
  `fewshot` branch): `create/3` is the one place MIPROv2 calls, so switching is a
  one-line change. Known divergence from DSPy: when one predictor runs several times
  for one example, DSPy keeps one of its demos with a generator seeded by a pickle hash
  of the demos (not portable); here the seed is the SHA-256 of their canonical JSON.
  """

  alias DSPex.{Example, Module, Random}
  alias DSPex.Evaluate.Metric

  @doc """
  The demo sets: `{:ok, %{predictor_index => [demo_list, ...]}, rng}` (set 0 is `[]`),
  or `{:error, %DSPex.Error{}}` when bootstrapping hit `max_errors`.

  `opts`: `n_sets`, `max_labeled_demos`, `max_bootstrapped_demos`, `metric`,
  `metric_threshold`, `max_errors`, `teacher` (a program, default the student),
  `rng` (a `DSPex.Random`, threaded through and returned).
  """
  @spec create(term, [Example.t()], keyword) :: {:ok, map, Random.t()} | {:error, DSPex.Error.t()}
  def create(student, trainset, opts) do
    n = Keyword.fetch!(opts, :n_sets) - 3
    names = for {name, _} <- Module.named_predictors(student), do: name
    empty = Map.new(Enum.with_index(names), fn {_, i} -> {i, []} end)

    Enum.reduce_while(-3..(n - 1)//1, {:ok, empty, Keyword.fetch!(opts, :rng)}, fn seed,
                                                                                   {:ok, sets,
                                                                                    rng} ->
      result =
        cond do
          seed == -3 ->
            {:ok, Module.reset(student), rng}

          seed == -2 and opts[:max_labeled_demos] > 0 ->
            {:ok, labeled(student, trainset, opts[:max_labeled_demos]), rng}

          seed == -1 ->
            with {:ok, p} <- bootstrap(student, trainset, opts, opts[:max_bootstrapped_demos]),
                 do: {:ok, p, rng}

          true ->
            {shuffled, rng} = Random.shuffle(rng, trainset)
            {size, rng} = Random.randint(rng, 1, opts[:max_bootstrapped_demos])
            with {:ok, p} <- bootstrap(student, shuffled, opts, size), do: {:ok, p, rng}
        end

      case result do
        {:ok, program, rng} ->
          demos = program |> Module.predictors() |> Enum.map(& &1.demos)

          sets =
            Enum.reduce(Enum.with_index(demos), sets, fn {d, i}, acc ->
              Map.update!(acc, i, &(&1 ++ [d]))
            end)

          {:cont, {:ok, sets, rng}}

        {:error, _} = err ->
          {:halt, err}
      end
    end)
  end

  @doc """
  LabeledFewShot(k).compile(student, trainset): the student reset, then per predictor
  `Random(0).sample(trainset, min(k, n))` (one generator for all predictors).
  """
  @spec labeled(term, [Example.t()], non_neg_integer) :: term
  def labeled(student, trainset, k) do
    student = Module.reset(student)

    if trainset == [] do
      student
    else
      {program, _} =
        Enum.reduce(Module.named_predictors(student), {student, Random.new(0)}, fn {name, _},
                                                                                   {prog, rng} ->
          {demos, rng} = Random.sample(rng, trainset, min(k, length(trainset)))

          {Module.update_predictor(
             prog,
             name,
             &%{&1 | demos: Enum.map(demos, fn ex -> ex.fields end)}
           ), rng}
        end)

      program
    end
  end

  @doc """
  BootstrapFewShot(max_bootstrapped_demos: `size`, max_labeled_demos, max_rounds: 1)
  .compile(student, teacher, trainset) — see the module doc. Returns `{:ok, program}` or
  `{:error, %DSPex.Error{}}` (max_errors failed examples).
  """
  @spec bootstrap(term, [Example.t()], keyword, non_neg_integer) ::
          {:ok, term} | {:error, DSPex.Error.t()}
  def bootstrap(student, trainset, opts, size) do
    student = Module.reset(student)
    teacher = opts[:teacher] || student
    max_labeled = opts[:max_labeled_demos]

    teacher =
      if max_labeled > 0, do: labeled(Module.reset(teacher), trainset, max_labeled), else: teacher

    names = for {name, _} <- Module.named_predictors(student), do: name
    metric = opts[:metric] && Metric.new!(opts[:metric])
    max_errors = opts[:max_errors] || DSPex.Settings.get(:max_errors, 10)

    st = %{traces: Map.new(names, &{&1, []}), ok: MapSet.new(), errors: 0}

    result =
      trainset
      |> Enum.with_index()
      |> Enum.reduce_while({:ok, st}, fn {example, i}, {:ok, st} ->
        if MapSet.size(st.ok) >= size do
          {:halt, {:ok, st}}
        else
          case one_example(teacher, example, metric, opts[:metric_threshold], names) do
            {:ok, demos} ->
              traces =
                Enum.reduce(demos, st.traces, fn {n, d}, acc ->
                  Map.update!(acc, n, &(&1 ++ [d]))
                end)

              {:cont, {:ok, %{st | traces: traces, ok: MapSet.put(st.ok, i)}}}

            :fail ->
              {:cont, {:ok, st}}

            {:error, e} ->
              errors = st.errors + 1

              if errors >= max_errors,
                do: {:halt, {:error, e}},
                else: {:cont, {:ok, %{st | errors: errors}}}
          end
        end
      end)

    with {:ok, st} <- result do
      validation = for {ex, i} <- Enum.with_index(trainset), not MapSet.member?(st.ok, i), do: ex
      {validation, _} = Random.shuffle(Random.new(0), validation)

      {program, _, _} =
        Enum.reduce(names, {student, validation, Random.new(0)}, fn name, {prog, pool, rng} ->
          aug = Enum.take(Map.fetch!(st.traces, name), size)
          k = max(0, min(max_labeled - length(aug), length(pool)))
          {pool, rng} = Random.sample(rng, pool, k)
          demos = aug ++ Enum.map(pool, & &1.fields)
          {Module.update_predictor(prog, name, &%{&1 | demos: demos}), pool, rng}
        end)

      {:ok, program}
    end
  end

  # One attempt at bootstrapping `example` with the teacher (round 0: the configured LM).
  defp one_example(teacher, example, metric, threshold, names) do
    fields = example.fields
    # the example itself is not a demo of its own run
    t =
      Module.map_predictors(teacher, fn p ->
        %{p | demos: Enum.reject(p.demos, &(demo_fields(&1) == fields))}
      end)

    {result, trace} = DSPex.Trace.with_trace(fn -> DSPex.call(t, Example.inputs(example)) end)

    with {:ok, pred} <- result,
         {:ok, value} <- score(metric, example, pred, trace) do
      success =
        cond do
          metric == nil -> true
          threshold not in [nil, 0, 0.0] -> DSPex.Evaluate.Score.value(value) >= threshold
          true -> truthy?(value)
        end

      if success, do: {:ok, demos_of(trace, names)}, else: :fail
    end
  end

  defp demo_fields(%Example{fields: f}), do: f
  defp demo_fields(m) when is_map(m), do: m
  defp demo_fields(kw) when is_list(kw), do: Map.new(kw)

  defp score(nil, _ex, _pred, _trace), do: {:ok, true}

  defp score(%Metric{} = m, ex, pred, trace) do
    value =
      cond do
        m.builtin != nil -> hd(Metric.score_batch(m, [Metric.extract(m, ex, pred)]))
        m.arity == 3 -> m.fun.(ex, pred, trace)
        true -> m.fun.(ex, pred)
      end

    {:ok, value}
  rescue
    e -> {:error, DSPex.Error.new(:metric, "the metric raised: #{Exception.message(e)}", %{})}
  end

  defp truthy?(v) when v in [nil, false, 0, 0.0], do: false
  defp truthy?(%DSPex.Prediction{} = p), do: truthy?(p[:score])
  defp truthy?(_), do: true

  # Every trace step of a known predictor becomes an augmented demo; a predictor that
  # ran several times keeps one of them.
  defp demos_of(trace, names) do
    trace
    |> Enum.filter(fn {name, _, _} -> name in names end)
    |> Enum.group_by(&elem(&1, 0))
    |> Enum.map(fn {name, steps} ->
      demos =
        Enum.map(steps, fn {_, inputs, outputs} ->
          Map.merge(Map.merge(%{augmented: true}, inputs), outputs)
        end)

      {name, pick(demos)}
    end)
  end

  defp pick([one]), do: one

  defp pick(demos) do
    seed = DSPex.JSON.encode!(DSPex.Program.jsonable(demos), sort_keys: true)
    rng = Random.new(Base.encode16(:crypto.hash(:sha256, seed), case: :lower))
    {x, rng} = Random.random(rng)

    if x < 0.5 do
      {d, _} = Random.choice(rng, Enum.drop(demos, -1))
      d
    else
      List.last(demos)
    end
  end
end
