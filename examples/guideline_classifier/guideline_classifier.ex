# Guideline matching: which of a support bot's behaviour guidelines apply to the
# customer's latest message. The program a DSPy user would write, in DSPex:
#
#     class Match(dspy.Signature):
#         """Decide which of the behaviour guidelines apply to the customer's latest message."""
#         conversation: str = dspy.InputField(desc=...)
#         guidelines: dict[str, str] = dspy.InputField(desc=...)
#         applicable: list[str] = dspy.OutputField(desc=...)
#
#     program = dspy.ChainOfThought(Match)
#
# plus a metric (Jaccard overlap of the id sets). `run.exs` evaluates, optimizes the
# instruction with COPRO, evaluates again, saves and reloads.

defmodule GuidelineClassifier.Match do
  @moduledoc """
  Decide which of the behaviour guidelines apply to the customer's latest message.
  """
  use DSPex.Signature

  input :conversation,
    desc: "the conversation so far, one turn per line; the customer's latest message is last"

  input :guidelines, {:dict, :str, :str}, desc: "the candidate guidelines: id => guideline"

  output :applicable, {:list, :str},
    desc: "the ids of the guidelines that apply to the latest message; [] when none does"
end

defmodule GuidelineClassifier do
  @moduledoc """
  The program: chain of thought over `GuidelineClassifier.Match`. The answer keeps only
  ids that were offered (once each, sorted), so a model that invents an id or repeats
  one cannot score for it.

      {:ok, pred} = DSPex.call(GuidelineClassifier.new(),
                      conversation: "Customer: my kettle arrived broken",
                      guidelines: %{"apologize_defect" => "When the customer reports ..."})
      pred.applicable   #=> ["apologize_defect"]
  """
  use DSPex.Module

  predictor :match, DSPex.ChainOfThought, GuidelineClassifier.Match

  @impl DSPex.Module
  def forward(program, inputs) do
    offered = inputs |> input(:guidelines) |> Map.keys() |> Enum.map(&to_string/1)

    with {:ok, pred} <- DSPex.call(program.match, inputs) do
      ids =
        (pred.applicable || [])
        |> Enum.map(&(&1 |> to_string() |> String.trim()))
        |> Enum.filter(&(&1 in offered))
        |> Enum.uniq()
        |> Enum.sort()

      {:ok, DSPex.Prediction.put(pred, :applicable, ids)}
    end
  end

  defp input(inputs, key), do: Map.get(inputs, key) || Map.get(inputs, to_string(key)) || %{}

  @doc """
  The metric: Jaccard overlap of the predicted and the labelled id sets (1.0 when both
  are empty). With a `trace` (bootstrapping optimizers), an exact set match, as DSPy
  metrics do.

      iex> GuidelineClassifier.jaccard(%{applicable: ["a", "b"]}, %{applicable: ["b", "c"]})
      0.3333333333333333
  """
  @spec jaccard(map, map, term) :: float | boolean
  def jaccard(example, pred, trace \\ nil) do
    gold = MapSet.new(example[:applicable] || [])
    got = MapSet.new(pred[:applicable] || [])

    cond do
      trace != nil -> gold == got
      MapSet.size(gold) == 0 and MapSet.size(got) == 0 -> 1.0
      true -> MapSet.size(MapSet.intersection(gold, got)) / MapSet.size(MapSet.union(gold, got))
    end
  end

  @doc "Exact set match, reported next to the Jaccard score."
  @spec exact(map, map, term) :: boolean
  def exact(example, pred, _trace \\ nil),
    do: MapSet.new(example[:applicable] || []) == MapSet.new(pred[:applicable] || [])

  @doc """
  Loads `train.jsonl` or `dev.jsonl` (in `data/`) as examples with inputs
  `conversation` and `guidelines`.
  """
  @spec dataset(Path.t()) :: [DSPex.Example.t()]
  def dataset(path) do
    DSPex.Dataset.from_jsonl!(path,
      inputs: [:conversation, :guidelines],
      fields: [:applicable]
    )
  end
end
