defmodule DSPex.Metrics.CompleteAndGrounded do
  @moduledoc """
  DSPy's `CompleteAndGrounded` (`dspy/evaluate/auto_evaluation.py`): two LM judges, one
  for completeness (how much of the ground truth the response covers) and one for
  groundedness (how much of the response the retrieved context supports); the score is
  their F1 with groundedness as precision (`DSPex.Metrics.SemanticF1.f1_score/2`).

  A program with two `DSPex.ChainOfThought` predictors, `completeness_module.predict`
  and `groundedness_module.predict`, called in that order with DSPy's exact signatures.
  Inputs: `example.question`, `example.response`, `prediction.response` and
  `prediction.context` (the retrieved passages). Without a trace the result is the F1;
  with a trace it is `score >= threshold`.

  ## Examples

      iex> lm = DSPex.LM.Scripted.new([
      ...>   %{reasoning: "-", ground_truth_key_ideas: "Paris", system_response_key_ideas: "Paris",
      ...>     discussion: "same", completeness: 1.0},
      ...>   %{reasoning: "-", system_response_claims: "Paris", discussion: "in context",
      ...>     groundedness: 0.5}
      ...> ])
      iex> ex = %{question: "Capital of France?", response: "Paris."}
      iex> pred = %{response: "Paris.", context: ["Paris is the capital of France."]}
      iex> DSPex.Metrics.CompleteAndGrounded.score(DSPex.Metrics.CompleteAndGrounded.new(), ex, pred, nil, lm: lm)
      {:ok, 0.6666666666666666}
  """

  @behaviour DSPex.Module

  alias DSPex.Metrics.CompleteAndGrounded.{AnswerCompleteness, AnswerGroundedness}
  alias DSPex.Metrics.SemanticF1

  @type t :: %__MODULE__{
          completeness_module: DSPex.ChainOfThought.t(),
          groundedness_module: DSPex.ChainOfThought.t(),
          threshold: float
        }
  defstruct completeness_module: nil, groundedness_module: nil, threshold: 0.66

  @doc false
  def __dspex_fields__, do: [:completeness_module, :groundedness_module, :threshold]

  @doc """
  Builds the judge. Options: `threshold:` (default `0.66`) plus `DSPex.Predict.new/2`
  options for both inner predictors.

  ## Examples

      iex> judge = DSPex.Metrics.CompleteAndGrounded.new()
      iex> for {name, _} <- DSPex.Module.named_predictors(judge), do: name
      ["completeness_module.predict", "groundedness_module.predict"]
  """
  @spec new(keyword) :: t
  def new(opts \\ []) do
    {threshold, opts} = Keyword.pop(opts, :threshold, 0.66)

    DSPex.Module.assign_names(%__MODULE__{
      completeness_module: DSPex.ChainOfThought.new(AnswerCompleteness, opts),
      groundedness_module: DSPex.ChainOfThought.new(AnswerGroundedness, opts),
      threshold: threshold
    })
  end

  @doc """
  Runs both judges on `%{example: example, pred: prediction}` (optionally `trace:`),
  like DSPy's `forward(example, pred, trace=None)`; returns
  `{:ok, %DSPex.Prediction{score: score}}`.
  """
  @impl DSPex.Module
  @spec forward(t, map, keyword) :: {:ok, DSPex.Prediction.t()} | {:error, DSPex.Error.t()}
  def forward(%__MODULE__{} = judge, inputs, opts \\ []) do
    example = Map.fetch!(inputs, :example)
    pred = Map.fetch!(inputs, :pred)
    question = DSPex.Metrics.__field__(example, :question, "example")
    response = DSPex.Metrics.__field__(pred, :response, "prediction")

    with {:ok, completeness} <-
           DSPex.call(
             judge.completeness_module,
             %{
               question: question,
               ground_truth: DSPex.Metrics.__field__(example, :response, "example"),
               system_response: response
             },
             opts
           ),
         {:ok, groundedness} <-
           DSPex.call(
             judge.groundedness_module,
             %{
               question: question,
               retrieved_context: DSPex.Metrics.__field__(pred, :context, "prediction"),
               system_response: response
             },
             opts
           ) do
      score = SemanticF1.f1_score(groundedness.groundedness, completeness.completeness)

      {:ok,
       DSPex.Prediction.new(
         score: SemanticF1.thresholded(score, Map.get(inputs, :trace), judge.threshold)
       )}
    end
  end

  @doc """
  The score of `prediction` against `example`: a float without a trace, a boolean
  with one. `opts` are per-call overrides (`lm:`, `adapter:`).

  ## Examples

      iex> lm = DSPex.LM.Scripted.new([
      ...>   %{reasoning: "-", ground_truth_key_ideas: "k", system_response_key_ideas: "k", discussion: "d", completeness: 0.0},
      ...>   %{reasoning: "-", system_response_claims: "c", discussion: "d", groundedness: 0.0}
      ...> ])
      iex> judge = DSPex.Metrics.CompleteAndGrounded.new()
      iex> DSPex.Metrics.CompleteAndGrounded.score(judge, %{question: "Q", response: "A"}, %{response: "B", context: []}, nil, lm: lm)
      {:ok, 0.0}
  """
  @spec score(t, DSPex.Example.t() | map, DSPex.Prediction.t() | map, term, keyword) ::
          {:ok, float | boolean} | {:error, DSPex.Error.t()}
  def score(%__MODULE__{} = judge, example, prediction, trace \\ nil, opts \\ []) do
    with {:ok, %DSPex.Prediction{} = p} <-
           DSPex.call(judge, %{example: example, pred: prediction, trace: trace}, opts) do
      {:ok, Map.fetch!(p, :score)}
    end
  end

  @doc """
  The judge as an Evaluate / optimizer metric `(example, prediction, trace)` (see
  `DSPex.Metrics.SemanticF1.metric/2`).

  ## Examples

      iex> is_function(DSPex.Metrics.CompleteAndGrounded.metric(DSPex.Metrics.CompleteAndGrounded.new()), 3)
      true
  """
  @spec metric(t, keyword) :: (term, term, term -> float | boolean)
  def metric(%__MODULE__{} = judge, opts \\ []) do
    fn example, prediction, trace ->
      case score(judge, example, prediction, trace, opts) do
        {:ok, s} -> s
        {:error, e} -> raise e
      end
    end
  end
end

defmodule DSPex.Metrics.CompleteAndGrounded.AnswerCompleteness do
  @moduledoc false
  # dspy.evaluate.auto_evaluation.AnswerCompleteness
  use DSPex.Signature,
    instructions: """
    Estimate the completeness of a system's responses, against the ground truth.
    You will first enumerate key ideas in each response, discuss their overlap, and then report completeness.
    """

  input :question, :str
  input :ground_truth, :str
  input :system_response, :str
  output :ground_truth_key_ideas, :str, desc: "enumeration of key ideas in the ground truth"
  output :system_response_key_ideas, :str, desc: "enumeration of key ideas in the system response"

  output :discussion, :str,
    desc: "discussion of the overlap between ground truth and system response"

  output :completeness, :float,
    desc: "fraction (out of 1.0) of ground truth covered by the system response"
end

defmodule DSPex.Metrics.CompleteAndGrounded.AnswerGroundedness do
  @moduledoc false
  # dspy.evaluate.auto_evaluation.AnswerGroundedness
  use DSPex.Signature,
    instructions: """
    Estimate the groundedness of a system's responses, against real retrieved documents written by people.
    You will first enumerate whatever non-trivial or check-worthy claims are made in the system response, and then
    discuss the extent to which some or all of them can be deduced from the retrieved context and basic commonsense.
    """

  input :question, :str
  input :retrieved_context, :str
  input :system_response, :str

  output :system_response_claims, :str,
    desc: "enumeration of non-trivial or check-worthy claims in the system response"

  output :discussion, :str,
    desc: "discussion of how supported the claims are by the retrieved context"

  output :groundedness, :float,
    desc: "fraction (out of 1.0) of system response supported by the retrieved context"
end
