defmodule DSPex.Example do
  @moduledoc """
  A training or evaluation example, like `dspy.Example`: a map of fields plus the list
  of keys that are inputs (`with_inputs/2`); the other keys are labels.

  Field keys are atoms (binary keys are kept as given). Read fields with Access
  (`ex[:question]`) or `get/3`.

  ## Examples

      iex> ex = DSPex.Example.new(question: "2+2?", answer: "4") |> DSPex.Example.with_inputs([:question])
      iex> ex[:answer]
      "4"
      iex> DSPex.Example.inputs(ex)
      %{question: "2+2?"}
      iex> DSPex.Example.labels(ex)
      %{answer: "4"}
  """

  @behaviour Access

  @type t :: %__MODULE__{fields: map, input_keys: [atom | binary] | nil}
  defstruct fields: %{}, input_keys: nil

  @doc """
  Builds an example from a keyword list, a map, another example or a prediction.

  ## Examples

      iex> DSPex.Example.new(%{a: 1}).fields
      %{a: 1}
  """
  @spec new(keyword | map | t) :: t
  def new(%__MODULE__{} = ex), do: ex
  def new(%DSPex.Prediction{} = pred), do: %__MODULE__{fields: DSPex.Prediction.fields(pred)}
  def new(fields) when is_list(fields) or is_map(fields), do: %__MODULE__{fields: Map.new(fields)}

  @doc """
  Marks which keys are inputs.

  ## Examples

      iex> DSPex.Example.new(a: 1, b: 2) |> DSPex.Example.with_inputs([:a]) |> Map.get(:input_keys)
      [:a]
  """
  @spec with_inputs(t | map | keyword, [atom | binary]) :: t
  def with_inputs(ex, keys) when is_list(keys), do: %{new(ex) | input_keys: keys}

  @doc """
  The input fields. Raises `ArgumentError` when `with_inputs/2` was never called,
  like DSPy.

  ## Examples

      iex> DSPex.Example.new(a: 1, b: 2) |> DSPex.Example.with_inputs([:a]) |> DSPex.Example.inputs()
      %{a: 1}
  """
  @spec inputs(t) :: map
  def inputs(%__MODULE__{input_keys: nil}) do
    raise ArgumentError,
          "inputs/1 needs the input keys: call DSPex.Example.with_inputs(example, [:field, ...]) first"
  end

  def inputs(%__MODULE__{fields: f, input_keys: keys}), do: Map.take(f, keys)

  @doc """
  The label (non-input) fields.

  ## Examples

      iex> DSPex.Example.new(a: 1, b: 2) |> DSPex.Example.with_inputs([:a]) |> DSPex.Example.labels()
      %{b: 2}
  """
  @spec labels(t) :: map
  def labels(%__MODULE__{fields: f, input_keys: keys}), do: Map.drop(f, keys || [])

  @doc """
  Reads one field.

  ## Examples

      iex> DSPex.Example.get(DSPex.Example.new(a: 1), :b, 0)
      0
  """
  @spec get(t, term, term) :: term
  def get(%__MODULE__{fields: f}, key, default \\ nil), do: Map.get(f, key, default)

  @doc """
  Returns the fields as a plain map (DSPy's `toDict`).

  ## Examples

      iex> DSPex.Example.to_map(DSPex.Example.new(a: 1))
      %{a: 1}
  """
  @spec to_map(t) :: map
  def to_map(%__MODULE__{fields: f}), do: f

  @impl Access
  def fetch(%__MODULE__{fields: f}, key), do: Map.fetch(f, key)

  @impl Access
  def get_and_update(%__MODULE__{fields: f} = ex, key, fun) do
    {v, f} = Map.get_and_update(f, key, fun)
    {v, %{ex | fields: f}}
  end

  @impl Access
  def pop(%__MODULE__{fields: f} = ex, key) do
    {v, f} = Map.pop(f, key)
    {v, %{ex | fields: f}}
  end
end
