defmodule DSPex.Majority do
  @moduledoc """
  `majority/2`, like `dspy.majority`: the most common (normalized) value of one output
  field among a prediction's completions.
  """

  alias DSPex.Prediction

  @doc """
  Picks the completion whose `field` value is the most common after normalization.

  Options: `:field` (default: the last output field), `:normalize` (a function
  returning a binary or `nil`; default DSPy's `normalize_text`, values normalizing to
  an empty string are ignored; `nil` compares raw values). Ties go to the value seen
  first. Returns a `%DSPex.Prediction{}` of the first matching completion.

  ## Examples

      iex> pred = DSPex.Prediction.from_completions([%{answer: "Paris"}, %{answer: "Lyon"}, %{answer: "paris."}])
      iex> DSPex.majority(pred).answer
      "Paris"
  """
  @spec majority(Prediction.t() | [map], keyword) :: Prediction.t()
  def majority(prediction_or_completions, opts \\ []) do
    {completions, order} =
      case prediction_or_completions do
        %Prediction{completions: c, __fields__: order} -> {c, order}
        # A list of predictions (an Ensemble's outputs): DSPy reads the field order of
        # the first one.
        [%Prediction{__fields__: order} | _] = list -> {Enum.map(list, &to_map/1), order}
        list when is_list(list) -> {Enum.map(list, &to_map/1), nil}
      end

    if completions == [], do: raise(ArgumentError, "majority/2 needs at least one completion")

    field =
      Keyword.get_lazy(opts, :field, fn ->
        case order do
          [_ | _] -> List.last(order)
          _ -> completions |> hd() |> Map.keys() |> List.last()
        end
      end)

    normalize = Keyword.get(opts, :normalize, &default_normalize/1)
    norm = fn v -> if is_nil(normalize), do: v, else: normalize.(to_string(v)) end

    {counts, first_seen} =
      completions
      |> Enum.reduce({%{}, []}, fn c, {counts, seen} ->
        case norm.(Map.get(c, field)) do
          nil -> {counts, seen}
          v -> {Map.update(counts, v, 1, &(&1 + 1)), if(v in seen, do: seen, else: seen ++ [v])}
        end
      end)

    winner =
      Enum.reduce(first_seen, nil, fn v, best ->
        if best == nil or counts[v] > counts[best], do: v, else: best
      end)

    chosen =
      Enum.find(completions, hd(completions), fn c ->
        winner != nil and norm.(Map.get(c, field)) == winner
      end)

    Prediction.from_completions([chosen], order: order || Map.keys(chosen))
  end

  defp to_map(%Prediction{} = p), do: Prediction.fields(p)
  defp to_map(%DSPex.Example{fields: f}), do: f
  defp to_map(m) when is_map(m), do: m

  defp default_normalize(s) do
    case DSPex.Metrics.normalize_text(s) do
      "" -> nil
      n -> n
    end
  end
end
