defmodule DSPex.Optimizers.Shared do
  @moduledoc false
  # What the few-shot optimizers share: argument checks, demos by predictor name, metric
  # calls with DSPy's success rule, the [:dspex, :optimize] span and its round events,
  # and the progress lines (DSPex.Evaluate.Progress plus DSPy's summary lines).

  alias DSPex.{Error, Example, Module}
  alias DSPex.Evaluate.{Progress, Score}

  # --- arguments ------------------------------------------------------------------------

  @doc false
  # A trainset is a list of %DSPex.Example{}; `inputs?` also requires input keys (the
  # optimizers that run the program on it).
  def check_trainset!(trainset, who, inputs?) when is_list(trainset) do
    trainset
    |> Enum.with_index()
    |> Enum.each(fn
      {%Example{input_keys: nil}, i} when inputs? ->
        raise ArgumentError,
              "#{who}: trainset example #{i} has no input keys: build it with " <>
                "DSPex.Example.with_inputs(example, [:field, ...]) (or the loaders' inputs: option)"

      {%Example{}, _} ->
        :ok

      {other, i} ->
        raise ArgumentError,
              "#{who}: trainset element #{i} is not a %DSPex.Example{}: #{inspect(other, limit: 5)}"
    end)
  end

  def check_trainset!(other, who, _inputs?) do
    raise ArgumentError,
          "#{who}: the trainset must be a list of %DSPex.Example{}, got: #{inspect(other, limit: 5)}"
  end

  @doc false
  def check_program!(%_{} = program, who) do
    if Module.predictors(program) == [] do
      raise ArgumentError, "#{who}: the program has no predictors to optimize"
    end

    program
  end

  def check_program!(other, who) do
    raise ArgumentError,
          "#{who} needs a program struct (a predictor or a DSPex.Module), got: #{inspect(other, limit: 5)}"
  end

  # --- demos ----------------------------------------------------------------------------

  @doc false
  # The names of the program's predictors, in DSPy's `named_predictors()` order.
  def names(program), do: Enum.map(Module.named_predictors(program), &elem(&1, 0))

  @doc false
  # Sets each predictor's demos from a map of name => demos (predictors not in the map
  # keep theirs).
  def put_demos(program, by_name) do
    Module.map_predictors(program, fn name, p ->
      case Map.fetch(by_name, name) do
        {:ok, demos} -> %{p | demos: demos}
        :error -> p
      end
    end)
  end

  @doc false
  # A training example as a demo: its fields, like the `dspy.Example` DSPy stores.
  def demo(%Example{fields: fields}), do: fields

  # --- metric ---------------------------------------------------------------------------

  @doc false
  # Calls a bootstrap metric: `(example, prediction, trace)` for arity 3 (the trace is
  # `[{predictor_name, inputs, outputs}]`), `(example, prediction)` for arity 2.
  def call_metric(metric, example, prediction, trace) when is_function(metric, 3),
    do: metric.(example, prediction, trace)

  def call_metric(metric, example, prediction, _trace) when is_function(metric, 2),
    do: metric.(example, prediction)

  @doc false
  # DSPy's rule: with a truthy `metric_threshold`, success is `value >= threshold`;
  # otherwise the truthiness of the value (a `%DSPex.Prediction{}` counts by its score).
  def success?(value, threshold) when is_number(threshold) and threshold != 0,
    do: Score.value(value) >= threshold

  def success?(value, _threshold), do: truthy?(value)

  defp truthy?(v) when v in [nil, false, "", []], do: false
  defp truthy?(n) when is_number(n), do: n != 0
  defp truthy?(%DSPex.Prediction{} = p), do: truthy?(Score.value(p))
  defp truthy?(m) when is_map(m) and map_size(m) == 0, do: false
  defp truthy?(_), do: true

  @doc false
  # A metric's name for messages (never its captured data).
  def metric_name(nil), do: "no metric"

  def metric_name(fun) when is_function(fun) do
    info = Function.info(fun)

    case Atom.to_string(info[:name]) do
      "-" <> _ -> "an anonymous metric"
      name -> "#{inspect(info[:module])}.#{name}/#{info[:arity]}"
    end
  end

  def metric_name(_), do: "metric"

  @doc false
  # Anything raised or returned as an error, as a %DSPex.Error{}.
  def to_error(%Error{} = e), do: e

  def to_error(e) when is_exception(e),
    do: Error.new(:optimizer, DSPex.Error.describe(e), %{exception: e.__struct__})

  def to_error(other),
    do: Error.new(:optimizer, "failed: #{DSPex.Error.describe(other)}", %{})

  # --- telemetry --------------------------------------------------------------------------

  @doc false
  # The `[:dspex, :optimize]` span of one optimizer run. `fun` returns
  # `{result, stop_metadata}`; the stop metadata gets `status`.
  def span(optimizer, meta, fun) do
    start = Map.merge(%{optimizer: optimizer}, meta)

    DSPex.Telemetry.span([:dspex, :optimize], start, fn ->
      {result, stop} = fun.()
      status = if match?({:ok, _}, result), do: :ok, else: :error
      {result, start |> Map.merge(stop) |> Map.put(:status, status)}
    end)
  end

  @doc false
  # One `[:dspex, :optimize, :round]` event.
  def round_event(optimizer, measurements, meta) do
    DSPex.Telemetry.execute(
      [:dspex, :optimize, :round],
      measurements,
      Map.put(meta, :optimizer, optimizer)
    )
  end

  # --- progress ---------------------------------------------------------------------------

  @doc false
  def progress(total, opts, describe) do
    Progress.new(total,
      enabled: Keyword.get(opts, :display_progress, false),
      device: Keyword.get(opts, :progress_device, :standard_error),
      describe: describe
    )
  end

  @doc false
  # A line DSPy prints (to the progress device, only when progress is displayed).
  def say(opts, line) do
    if Keyword.get(opts, :display_progress, false) do
      IO.puts(Keyword.get(opts, :progress_device, :standard_error), line)
    end

    :ok
  end

  @doc false
  # The options every optimizer takes for its progress display.
  def progress_options do
    DSPex.Options.schema!(
      display_progress: [
        type: :boolean,
        default: false,
        doc:
          "show progress (`DSPex.Evaluate.Progress`) and DSPy's summary lines on `progress_device`."
      ],
      progress_device: [
        type: {:or, [:atom, :pid]},
        default: :standard_error,
        doc: "where progress goes."
      ]
    )
  end
end
