defmodule DSPex.Prediction do
  @moduledoc """
  The result of a predictor or program, like `dspy.Prediction`.

  Output fields are read with dot syntax (`pred.answer`), Access (`pred[:answer]`) or
  `get/3`. To make `pred.answer` work for whatever fields a signature declares, a
  prediction is a `%DSPex.Prediction{}` struct **with the output fields merged in as
  extra keys**: `Map.merge(%DSPex.Prediction{...}, %{answer: "Paris"})`. It matches
  `%DSPex.Prediction{}` in patterns and `is_struct/2`, and `Map` functions work on it.
  The trade-offs:

    * the struct's own keys are reserved and cannot be output field names:
      `:completions`, `:lm_usage`, `:__fields__` (building one raises
      `ArgumentError`);
    * `struct/2` and `%DSPex.Prediction{pred | ...}` only accept the reserved keys;
      update fields with `put/3` or `%{pred | answer: ...}` (existing keys);
    * `fields/1` returns the plain output map (`Map.drop/2` of the reserved keys);
    * a struct *pattern* cannot name the extra keys (`%DSPex.Prediction{answer: a}`
      does not compile): match with `%DSPex.Prediction{} = pred` and
      `%{answer: a} = pred`, or just `%{answer: a}`.

  `completions` holds every parsed completion (a list of maps, the first one equals
  the top-level fields) when `n > 1`; `lm_usage` is `%{model => usage}` when usage
  tracking is on (`DSPex.configure(track_usage: true)` or `DSPex.track_usage/1`),
  otherwise `nil` — DSPy's `get_lm_usage()`.

  ## Examples

      iex> pred = DSPex.Prediction.new(%{answer: "Paris"})
      iex> pred.answer
      "Paris"
      iex> pred[:answer]
      "Paris"
      iex> DSPex.Prediction.fields(pred)
      %{answer: "Paris"}
      iex> match?(%DSPex.Prediction{}, pred)
      true
  """

  @behaviour Access

  @reserved [:__struct__, :completions, :lm_usage, :__fields__]

  defstruct completions: [], lm_usage: nil, __fields__: []

  @type t :: %__MODULE__{completions: [map], lm_usage: map | nil, __fields__: [atom | binary]}

  @doc """
  Keys that cannot be output field names.

  ## Examples

      iex> :completions in DSPex.Prediction.reserved_keys()
      true
  """
  @spec reserved_keys() :: [atom]
  def reserved_keys, do: @reserved

  @doc """
  Builds a prediction from a field map (or keyword list). Options: `:completions`
  (defaults to `[fields]`), `:lm_usage`, `:order` (field order for display).

  ## Examples

      iex> DSPex.Prediction.new(answer: "4").completions
      [%{answer: "4"}]
  """
  @spec new(map | keyword, keyword) :: t
  def new(fields, opts \\ []) when is_map(fields) or is_list(fields) do
    fields = Map.new(fields)

    case Enum.filter(Map.keys(fields), &(&1 in @reserved)) do
      [] ->
        :ok

      bad ->
        raise ArgumentError,
              "#{inspect(bad)} cannot be prediction fields: they are reserved by DSPex.Prediction " <>
                "(rename the output field)"
    end

    order = Keyword.get(opts, :order) || Map.keys(fields)
    order = Enum.filter(order, &Map.has_key?(fields, &1))
    order = order ++ (Map.keys(fields) -- order)

    %__MODULE__{
      completions: Keyword.get(opts, :completions, [fields]),
      lm_usage: Keyword.get(opts, :lm_usage),
      __fields__: order
    }
    |> Map.merge(fields)
  end

  @doc """
  Builds a prediction from a list of completions (the first one gives the fields),
  like `Prediction.from_completions`.

  ## Examples

      iex> p = DSPex.Prediction.from_completions([%{a: 1}, %{a: 2}])
      iex> {p.a, length(p.completions)}
      {1, 2}
  """
  @spec from_completions([map], keyword) :: t
  def from_completions([first | _] = completions, opts \\ []) do
    new(first, Keyword.put(opts, :completions, completions))
  end

  @doc """
  The output fields as a plain map.

  ## Examples

      iex> DSPex.Prediction.fields(DSPex.Prediction.new(a: 1, b: 2))
      %{a: 1, b: 2}
  """
  @spec fields(t) :: map
  def fields(%__MODULE__{} = pred), do: Map.drop(pred, @reserved)

  @doc """
  The output fields as an ordered keyword-like list of `{key, value}`.

  ## Examples

      iex> DSPex.Prediction.to_list(DSPex.Prediction.new(%{b: 2, a: 1}, order: [:b, :a]))
      [b: 2, a: 1]
  """
  @spec to_list(t) :: [{atom | binary, term}]
  def to_list(%__MODULE__{__fields__: order} = pred) do
    f = fields(pred)
    order = Enum.filter(order, &Map.has_key?(f, &1))
    order = order ++ Enum.sort(Map.keys(f) -- order)
    Enum.map(order, &{&1, Map.fetch!(f, &1)})
  end

  @doc """
  Reads one field.

  ## Examples

      iex> DSPex.Prediction.get(DSPex.Prediction.new(a: 1), :missing, :none)
      :none
  """
  @spec get(t, term, term) :: term
  def get(%__MODULE__{} = pred, key, default \\ nil), do: Map.get(fields(pred), key, default)

  @doc """
  Sets one field (adding it when new).

  ## Examples

      iex> DSPex.Prediction.new(a: 1) |> DSPex.Prediction.put(:b, 2) |> DSPex.Prediction.fields()
      %{a: 1, b: 2}
  """
  @spec put(t, atom | binary, term) :: t
  def put(%__MODULE__{__fields__: order} = pred, key, value) when key not in @reserved do
    order = if key in order, do: order, else: order ++ [key]
    %{Map.put(pred, key, value) | __fields__: order}
  end

  @doc """
  Usage per model (`%{model => %{prompt_tokens:, completion_tokens:, total_tokens:}}`)
  or `nil` when usage was not tracked. DSPy's `get_lm_usage()`.

  ## Examples

      iex> DSPex.Prediction.usage(DSPex.Prediction.new(a: 1))
      nil
  """
  @spec usage(t) :: map | nil
  def usage(%__MODULE__{lm_usage: u}), do: u

  @impl Access
  def fetch(%__MODULE__{} = pred, key) when key not in @reserved, do: Map.fetch(pred, key)
  def fetch(%__MODULE__{} = pred, :completions), do: {:ok, pred.completions}
  def fetch(%__MODULE__{}, _), do: :error

  @impl Access
  def get_and_update(%__MODULE__{} = pred, key, fun) do
    current = Map.get(pred, key)

    case fun.(current) do
      {get, new} -> {get, put(pred, key, new)}
      :pop -> pop(pred, key)
    end
  end

  @impl Access
  def pop(%__MODULE__{__fields__: order} = pred, key) when key not in @reserved do
    {v, pred} = Map.pop(pred, key)
    {v, %{pred | __fields__: List.delete(order, key)}}
  end

  defimpl Inspect do
    import Inspect.Algebra

    def inspect(pred, opts) do
      pairs = DSPex.Prediction.to_list(pred)
      n = length(pred.completions)

      extra = if n > 1, do: [{:completions, "#{n} completions"}], else: []

      container_doc(
        "#DSPex.Prediction<",
        pairs ++ extra,
        ">",
        opts,
        fn
          {:completions, s}, _ when is_binary(s) -> string("(#{s})")
          {k, v}, opts -> concat([to_doc_key(k), " ", to_doc(v, opts)])
        end,
        break: :strict
      )
    end

    defp to_doc_key(k) when is_atom(k), do: Atom.to_string(k) <> ":"
    defp to_doc_key(k), do: inspect(k) <> " =>"
  end
end
