defmodule DSPex.Evaluate do
  @moduledoc """
  Scores a program on a devset with a metric, like `dspy.Evaluate` — concurrently,
  optionally across Erlang nodes, without losing work to one bad example.

      devset = DSPex.Dataset.from_jsonl!("dev.jsonl", inputs: [:question], fields: [:answer])
      metric = fn ex, pred -> ex[:answer] == pred.answer end

      {:ok, result} = DSPex.Evaluate.run(qa, devset, metric: metric, max_concurrency: 32)
      result.score     #=> 67.5
      result.results   #=> [{example, prediction, true}, ...]

  ## What it computes (as DSPy does)

  For each example, `DSPex.call(program, example)` (the example's input fields), then
  `metric.(example, prediction)` (or `metric.(example, prediction, nil)` for a 3-arity
  metric: Evaluate passes no trace). The score is `round(100 * sum / length(devset), 2)`
  with Python's rounding and `sum` (see `DSPex.Evaluate.Score`): booleans count 1/0, a
  failed example counts `failure_score`. `results` keeps every example in devset order
  with what its metric returned.

  ## Where it differs from DSPy, on purpose

    * **Hitting `max_errors` loses nothing.** DSPy raises and drops every result; here
      the run stops its remaining work and returns
      `{:error, %DSPex.Error{type: :too_many_errors}}` whose `details` hold
      `results` (the examples that finished, devset order), `errors` (the failures),
      `unfinished` (the examples that never finished) and `max_errors`.
    * **One failing example never cancels others silently.** Each failure is in
      `result.errors` with its `%DSPex.Error{}` and, with `provide_traceback: true`, its
      formatted traceback (stack arguments removed; it holds the example's failure, not
      your settings or LM).
    * **Stragglers and timeouts** follow the rules in `DSPex.Evaluate.Runner`: once
      nothing waits to start, an attempt running longer than `straggler_after` gets one
      more attempt and the first to finish wins; an attempt running longer than
      `timeout` fails its example.
    * **Nodes.** `nodes: [node() | Node.list()]` spreads the examples over connected
      nodes, each running them under its own DSPex application (its own port pool and
      LM cache). Results are the same as on one node; if a node goes down, its running
      examples are run again elsewhere. The program's module and the metric must be
      loaded on every node (see `DSPex.Evaluate.Nodes`; checked before the run).
    * **Built-in metrics** (`{:builtin, :exact_match, field: :answer}`,
      `&DSPex.Metrics.answer_exact_match/3`) are scored in batches by one native call
      each (see `DSPex.Evaluate.Metric`).

  The options are listed at `run/3`. An unknown option or a bad value raises
  `ArgumentError`, as does a devset that is not
  a non-empty list of `%DSPex.Example{}` with input keys.

  ## Telemetry

  The run is a `[:dspex, :evaluate]` span (start metadata `program`, `devset_size`,
  `metric`, `max_concurrency`, `nodes`; stop adds `status` `:ok | :error`, `score`
  (nil on error), `errors`), with one `[:dspex, :evaluate, :example]` event per example
  and `[:dspex, :evaluate, :retry]` per extra attempt (see `DSPex.Evaluate.Runner`).
  """

  alias DSPex.{Error, Example, Settings}
  alias DSPex.Evaluate.{Metric, Nodes, Result, Runner, Score, Table}

  @options DSPex.Options.schema!(
             metric: [
               type: :any,
               required: true,
               doc:
                 "a function of `(example, prediction)` or `(example, prediction, trace)`, " <>
                   "or a built-in (see `DSPex.Evaluate.Metric`)."
             ],
             max_concurrency: [
               type: {:or, [:pos_integer, nil]},
               doc:
                 "examples running at once **per node** (DSPy's `num_threads`); " <>
                   "default `DSPex.Settings.get(:num_threads)` (8)."
             ],
             max_errors: [
               type: {:or, [:non_neg_integer, {:in, [:infinity]}, nil]},
               doc:
                 "failed examples that stop the run; default " <>
                   "`DSPex.Settings.get(:max_errors)` (10), or `:infinity`."
             ],
             failure_score: [type: :number, default: 0.0, doc: "the score of a failed example."],
             provide_traceback: [
               type: :boolean,
               default: false,
               doc: "keep each failure's formatted traceback."
             ],
             display_progress: [
               type: :boolean,
               default: false,
               doc: "live progress (see `DSPex.Evaluate.Progress`)."
             ],
             progress_device: [
               type: {:or, [:atom, :pid]},
               default: :standard_error,
               doc: "where progress goes."
             ],
             display_table: [
               type: {:or, [:boolean, :non_neg_integer]},
               default: false,
               doc:
                 "print the results table to stdout: `true` (all rows) or a row count " <>
                   "(see `DSPex.Evaluate.Table`)."
             ],
             save_as_csv: [
               type: {:or, [:string, nil]},
               doc: "write the untruncated rows to a CSV file."
             ],
             save_as_json: [
               type: {:or, [:string, nil]},
               doc: "write the untruncated rows to a JSON file."
             ],
             lm: [
               type: {:or, [:struct, nil]},
               doc:
                 "an LM override for this run (like `dspy.context(lm: ...)`: predictors " <>
                   "with their own LM keep it)."
             ],
             adapter: [type: {:or, [:atom, nil]}, doc: "an adapter override for this run."],
             settings: [type: :keyword, default: [], doc: "other settings overrides."],
             timeout: [
               type: {:or, [:pos_integer, {:in, [:infinity]}]},
               default: 600_000,
               doc: "ms per attempt (an LM's own default deadline), or `:infinity`."
             ],
             straggler_after: [
               type: {:or, [:pos_integer, {:in, [:auto, :infinity]}]},
               default: :auto,
               doc: "when an attempt counts as a straggler: `:auto`, ms, or `:infinity`."
             ],
             nodes: [
               type: {:or, [{:list, :atom}, nil]},
               doc: "the nodes to run on (default `[node()]`)."
             ]
           )

  @doc """
  Evaluates `program` on `devset`. Returns `{:ok, %DSPex.Evaluate.Result{}}` or
  `{:error, %DSPex.Error{}}` (`:too_many_errors`, `:no_nodes`, `:node_unavailable`,
  or `:file` when a save fails — its `details.result` then holds the result).

  ## Options

  #{DSPex.Options.docs(@options)}

  ## Examples

      iex> lm = DSPex.LM.Scripted.new([%{answer: "4"}, %{answer: "6"}, %{answer: "5"}])
      iex> qa = DSPex.Predict.new("question -> answer", lm: lm)
      iex> devset =
      ...>   for {q, a} <- [{"2+2?", "4"}, {"3+3?", "6"}, {"2+2+2?", "6"}] do
      ...>     DSPex.Example.new(question: q, answer: a) |> DSPex.Example.with_inputs([:question])
      ...>   end
      iex> metric = fn ex, pred -> ex[:answer] == pred.answer end
      iex> {:ok, result} = DSPex.Evaluate.run(qa, devset, metric: metric, max_concurrency: 1)
      iex> result.score
      66.67
      iex> for {_ex, _pred, score} <- result.results, do: score
      [true, true, false]
  """
  @spec run(struct, [Example.t()], keyword) :: {:ok, Result.t()} | {:error, Error.t()}
  def run(program, devset, opts) do
    opts = validate!(opts)
    check_program!(program)
    check_devset!(devset)
    metric = Metric.new!(opts[:metric])
    nodes = opts[:nodes] || [node()]

    with :ok <- Nodes.check(nodes, Nodes.requirements(program, metric), 15_000) do
      evaluate(program, devset, metric, nodes, opts)
    end
  end

  @doc """
  Like `run/3` but returns the result or raises the `%DSPex.Error{}`.

  ## Examples

      iex> lm = DSPex.LM.Scripted.new([%{answer: "4"}])
      iex> qa = DSPex.Predict.new("question -> answer", lm: lm)
      iex> ex = DSPex.Example.new(question: "2+2?", answer: "4") |> DSPex.Example.with_inputs([:question])
      iex> DSPex.Evaluate.run!(qa, [ex], metric: fn ex, pred -> ex[:answer] == pred.answer end).score
      100.0
  """
  @spec run!(struct, [Example.t()], keyword) :: Result.t()
  def run!(program, devset, opts) do
    case run(program, devset, opts) do
      {:ok, result} -> result
      {:error, %Error{} = e} -> raise e
    end
  end

  # --- the run ------------------------------------------------------------------------------

  defp evaluate(%mod{} = program, devset, metric, nodes, opts) do
    n = length(devset)
    concurrency = opts[:max_concurrency] || Settings.get(:num_threads, 8)
    max_errors = opts[:max_errors] || Settings.get(:max_errors, 10)
    ctx = make_ref()

    start_meta = %{
      program: mod,
      devset_size: n,
      metric: metric.name,
      max_concurrency: concurrency,
      nodes: nodes,
      telemetry_span_context: ctx
    }

    DSPex.Telemetry.span([:dspex, :evaluate], start_meta, fn ->
      cfg = %{
        devset: devset,
        nodes: nodes,
        max_concurrency: concurrency,
        max_errors: max_errors,
        failure_score: opts[:failure_score],
        timeout: opts[:timeout],
        straggler_after: opts[:straggler_after],
        span_context: ctx,
        caller: self(),
        progress: [enabled: opts[:display_progress], device: opts[:progress_device]],
        job: %{
          program: program,
          metric: metric,
          settings: settings_snapshot(opts),
          provide_traceback: opts[:provide_traceback]
        }
      }

      {status, done} = Task.await(Task.async(fn -> Runner.run(cfg) end), :infinity)
      result = outcome(status, done, devset, metric, opts)

      stop_meta =
        case result do
          {:ok, r} -> %{status: :ok, score: r.score, errors: length(r.errors)}
          {:error, e} -> %{status: :error, score: nil, errors: length(e.details[:errors] || [])}
        end

      {result, Map.merge(start_meta, stop_meta)}
    end)
  end

  defp settings_snapshot(opts) do
    overrides = Enum.reject([lm: opts[:lm], adapter: opts[:adapter]], fn {_, v} -> is_nil(v) end)

    Settings.capture() |> Map.merge(Map.new(opts[:settings])) |> Map.merge(Map.new(overrides))
  end

  defp outcome(:ok, done, devset, metric, opts) do
    {results, errors} = collect(done, devset, opts[:failure_score])
    sum = Score.sum(Enum.map(results, &elem(&1, 2)))

    result = %Result{
      score: Score.percent(sum, length(devset)),
      results: results,
      errors: errors,
      sum: sum,
      total: length(devset)
    }

    case report(result, metric, opts) do
      :ok ->
        {:ok, result}

      # The evaluation itself succeeded: keep it in the error rather than lose it.
      {:error, %Error{} = e} ->
        {:error, %{e | details: Map.put(e.details, :result, result)}}
    end
  end

  defp outcome(status, done, devset, _metric, opts) do
    {_, errors} = collect(done, devset, opts[:failure_score])

    finished =
      for {ex, i} <- Enum.with_index(devset), match?({:ok, _, _, _, _}, done[i]) do
        {:ok, pred, score, _, _} = done[i]
        {ex, pred, score}
      end

    unfinished = for {ex, i} <- Enum.with_index(devset), not Map.has_key?(done, i), do: ex
    details = %{results: finished, errors: errors, unfinished: unfinished}

    {type, msg, details} =
      case status do
        :too_many_errors ->
          {:too_many_errors,
           "stopped after #{length(errors)} failed examples (max_errors: #{inspect(opts[:max_errors] || Settings.get(:max_errors, 10))}); ",
           Map.put(details, :max_errors, opts[:max_errors] || Settings.get(:max_errors, 10))}

        :no_nodes ->
          {:no_nodes, "every node of the run went down; ", details}
      end

    {:error,
     Error.new(
       type,
       msg <>
         "#{length(finished)} examples finished, #{length(unfinished)} did not " <>
         "(details.results holds the finished ones, details.unfinished the rest)",
       details
     )}
  end

  # Results in devset order; failed examples as DSPy fills them in.
  defp collect(done, devset, failure_score) do
    {results, errors} =
      devset
      |> Enum.with_index()
      |> Enum.reduce({[], []}, fn {ex, i}, {rs, es} ->
        case done do
          %{^i => {:ok, pred, score, _node, _}} ->
            {[{ex, pred, score} | rs], es}

          %{^i => {:error, err, tb, _node, _}} ->
            entry = %{index: i, example: ex, error: err, traceback: tb}
            {[{ex, DSPex.Prediction.new(%{}), failure_score} | rs], [entry | es]}

          _ ->
            {rs, es}
        end
      end)

    {Enum.reverse(results), Enum.reverse(errors)}
  end

  defp report(result, metric, opts) do
    rows =
      if opts[:display_table] || opts[:save_as_csv] || opts[:save_as_json],
        do: Table.rows(result.results, metric.name)

    case opts[:display_table] do
      false -> :ok
      true -> IO.write(Table.render(rows, metric.name))
      n -> IO.write(Table.render(rows, metric.name, n))
    end

    with :ok <- if(opts[:save_as_csv], do: Table.save_csv(rows, opts[:save_as_csv]), else: :ok) do
      if opts[:save_as_json], do: Table.save_json(rows, opts[:save_as_json]), else: :ok
    end
  end

  # --- validation -------------------------------------------------------------------------

  defp validate!(opts) do
    opts = DSPex.Options.validate!(opts, @options, "DSPex.Evaluate.run/3")
    nodes = opts[:nodes]

    cond do
      nodes == [] ->
        raise ArgumentError, "DSPex.Evaluate option :nodes must not be empty"

      is_list(nodes) and length(Enum.uniq(nodes)) != length(nodes) ->
        raise ArgumentError, "nodes: lists a node twice: #{inspect(nodes)}"

      true ->
        opts
    end
  end

  defp check_program!(%_{}), do: :ok

  defp check_program!(other) do
    raise ArgumentError,
          "DSPex.Evaluate needs a program struct (a predictor or a DSPex.Module), got: #{inspect(other, limit: 5)}"
  end

  defp check_devset!([]), do: raise(ArgumentError, "the devset is empty")

  defp check_devset!(devset) when is_list(devset) do
    devset
    |> Enum.with_index()
    |> Enum.each(fn
      {%Example{input_keys: nil}, i} ->
        raise ArgumentError,
              "devset example #{i} has no input keys: build it with " <>
                "DSPex.Example.with_inputs(example, [:field, ...]) (or the loaders' inputs: option)"

      {%Example{}, _} ->
        :ok

      {other, i} ->
        raise ArgumentError,
              "devset element #{i} is not a %DSPex.Example{}: #{inspect(other, limit: 5)}"
    end)
  end

  defp check_devset!(other),
    do:
      raise(
        ArgumentError,
        "the devset must be a list of %DSPex.Example{}, got: #{inspect(other, limit: 5)}"
      )
end
