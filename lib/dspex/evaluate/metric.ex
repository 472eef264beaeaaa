defmodule DSPex.Evaluate.Metric do
  @moduledoc """
  The metric of an evaluation: a user function, or a built-in metric that Evaluate
  scores in batches with one native call (`DSPex.Metrics.batch/3`).

  Accepted forms (the `metric:` option of `DSPex.Evaluate.run/3`):

    * `fn example, prediction -> score end` — called like DSPy's Evaluate calls a
      metric, once per example;
    * `fn example, prediction, trace -> score end` — `trace` is `nil` (DSPy's Evaluate
      passes no trace; optimizers that bootstrap pass one);
    * `{:builtin, kind, opts}` — `kind` one of `:exact_match` (alias `:em`), `:f1`,
      `:hotpot_f1`; `opts`: `field:` (default `:answer`), the prediction field compared
      with the example field of the same name (a string or a list of gold strings);
    * `&DSPex.Metrics.answer_exact_match/3` (or `/2`) — recognised as
      `{:builtin, :exact_match, field: :answer}`, so DSPy-style code gets the batch path.

  A score is a boolean, a number or a `%DSPex.Prediction{}` with a `:score` field
  (see `DSPex.Evaluate.Score.value/1`); it is kept as returned in the results.

  ## Examples

      iex> m = DSPex.Evaluate.Metric.new!({:builtin, :exact_match, field: :answer})
      iex> {m.builtin, m.name}
      {{:em, :answer, :answer}, "exact_match"}
      iex> DSPex.Evaluate.Metric.new!(fn _ex, _pred -> true end).arity
      2
      iex> DSPex.Evaluate.Metric.new!(fn _ex, _pred, _trace -> 1.0 end).arity
      3
  """

  defstruct fun: nil, arity: 2, builtin: nil, name: "metric"

  @type builtin :: DSPex.Metrics.builtin_spec()
  @type t :: %__MODULE__{
          fun: function | nil,
          arity: 2 | 3,
          builtin: builtin | nil,
          name: binary
        }

  # Built-in kinds: option name => the kind DSPex.Metrics.batch/3 takes.
  @kinds %{exact_match: :em, em: :em, f1: :f1, hotpot_f1: :hotpot_f1}

  @doc """
  Validates and normalises a metric. Raises `ArgumentError` with what is accepted.

  ## Examples

      iex> DSPex.Evaluate.Metric.new!(&Kernel.==/2).name
      "=="
  """
  @spec new!(term) :: t
  def new!(%__MODULE__{} = m), do: m

  def new!({:builtin, kind, opts}) when is_atom(kind) and is_list(opts) do
    batch_kind =
      Map.get(@kinds, kind) ||
        raise ArgumentError,
              "unknown built-in metric #{inspect(kind)}; built-ins: " <>
                Enum.map_join(Map.keys(@kinds), ", ", &inspect/1)

    field = Keyword.get(opts, :field, :answer)

    unless is_atom(field) or is_binary(field) do
      raise ArgumentError,
            "the field of a built-in metric is an atom or a string, got: #{inspect(field)}"
    end

    case Keyword.keys(opts) -- [:field] do
      [] ->
        :ok

      bad ->
        raise ArgumentError, "unknown built-in metric options #{inspect(bad)} (valid: [:field])"
    end

    %__MODULE__{builtin: {batch_kind, field, field}, name: Atom.to_string(kind)}
  end

  def new!(fun) when is_function(fun, 2) or is_function(fun, 3) do
    info = Function.info(fun)
    {:arity, arity} = List.keyfind(info, :arity, 0)
    name = fun_name(info)

    case DSPex.Metrics.builtin_spec(fun) do
      nil -> %__MODULE__{fun: fun, arity: arity, name: name}
      spec -> %__MODULE__{builtin: spec, name: name}
    end
  end

  def new!(other) do
    raise ArgumentError,
          "metric: expects a function of (example, prediction) or (example, prediction, trace), " <>
            "or {:builtin, :exact_match | :f1 | :hotpot_f1, field: :answer}; got: " <>
            inspect(other, limit: 5)
  end

  # DSPy names the table column after the metric's __name__; for a capture
  # (`&match/2`, `&Mod.match/2`) that is the function name, for an anonymous function
  # (named like "-test/1-fun-0-") "metric".
  defp fun_name(info) do
    case Atom.to_string(info[:name]) do
      "-" <> _ -> "metric"
      name -> name
    end
  end

  @doc """
  Scores one example with a function metric: returns what the metric returned, after
  checking that it counts as a number (`DSPex.Evaluate.Score.value/1` raises otherwise).

  ## Examples

      iex> m = DSPex.Evaluate.Metric.new!(fn ex, pred -> ex[:a] == pred[:a] end)
      iex> DSPex.Evaluate.Metric.call(m, DSPex.Example.new(a: 1), %{a: 1})
      true
  """
  @spec call(t, DSPex.Example.t(), term) :: term
  def call(%__MODULE__{fun: fun, arity: 2}, example, prediction) when is_function(fun),
    do: checked(fun.(example, prediction))

  def call(%__MODULE__{fun: fun, arity: 3}, example, prediction) when is_function(fun),
    do: checked(fun.(example, prediction, nil))

  defp checked(score) do
    _ = DSPex.Evaluate.Score.value(score)
    score
  end

  @doc """
  For a built-in metric: the `{prediction_text, golds}` pair of one example, read by
  `DSPex.Metrics.batch_pair/3`. Raises `ArgumentError` when the prediction has no string
  there or the example no string / list of strings (the example then counts as an
  error, as DSPy's metric would raise).

  ## Examples

      iex> m = DSPex.Evaluate.Metric.new!(&DSPex.Metrics.answer_exact_match/2)
      iex> DSPex.Evaluate.Metric.extract(m, DSPex.Example.new(answer: ["4", "four"]), DSPex.Prediction.new(answer: "4"))
      {"4", ["4", "four"]}
  """
  @spec extract(t, DSPex.Example.t(), term) :: {binary, [binary]}
  def extract(%__MODULE__{builtin: spec}, example, prediction) when is_tuple(spec) do
    case DSPex.Metrics.batch_pair(spec, example, prediction) do
      {:ok, pair} -> pair
      {:error, e} -> raise e
    end
  end

  @doc """
  Scores `[{prediction_text, gold}]` with one call of `DSPex.Metrics.batch/3`; returns
  the scores in the same order.
  """
  @spec score_batch(t, [{binary, binary | [binary]}]) :: [term]
  def score_batch(%__MODULE__{builtin: {kind, _pred_field, _gold_field}}, pairs) do
    {preds, golds} = Enum.unzip(pairs)
    DSPex.Metrics.batch!(kind, preds, golds)
  end
end
