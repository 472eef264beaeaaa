defmodule DSPex.Metrics.SemanticF1 do
  @moduledoc """
  DSPy's `SemanticF1` (`dspy/evaluate/auto_evaluation.py`): an LM judges how much of the
  ground truth the system response covers (recall) and how much of the response the
  ground truth supports (precision); the score is their F1.

  It is a program like any other (a `DSPex.ChainOfThought` at field `module`, so its
  predictor is named `"module.predict"` and optimizers can tune it), with DSPy's exact
  signatures and instructions, so the prompts are byte-identical to DSPy's.

  Inputs: `example.question`, `example.response` (the ground truth) and
  `prediction.response`. Without a trace the result is the F1 as a float; with a trace
  (as `BootstrapFewShot` passes one) it is `score >= threshold`.

      judge = DSPex.Metrics.SemanticF1.new(threshold: 0.7)
      DSPex.Evaluate.run(program, devset, metric: DSPex.Metrics.SemanticF1.metric(judge))

  ## Examples

      iex> lm = DSPex.LM.Scripted.new([%{reasoning: "Both say Paris.", recall: 0.9, precision: 0.7}])
      iex> judge = DSPex.Metrics.SemanticF1.new()
      iex> ex = DSPex.Example.new(question: "Capital of France?", response: "Paris.")
      iex> pred = DSPex.Prediction.new(response: "It is Paris, on the Seine.")
      iex> DSPex.Metrics.SemanticF1.score(judge, ex, pred, nil, lm: lm)
      {:ok, 0.7875}
  """

  @behaviour DSPex.Module

  alias DSPex.Metrics.SemanticF1.{DecompositionalSemanticRecallPrecision, SemanticRecallPrecision}

  @type t :: %__MODULE__{
          module: DSPex.ChainOfThought.t(),
          threshold: float,
          decompositional: boolean
        }
  defstruct module: nil, threshold: 0.66, decompositional: false

  @doc false
  def __dspex_fields__, do: [:module, :threshold, :decompositional]

  @doc """
  Builds the judge. Options: `threshold:` (default `0.66`), `decompositional:` (default
  `false`; `true` uses DSPy's `DecompositionalSemanticRecallPrecision`, which first
  lists the key ideas of both responses), plus `DSPex.Predict.new/2` options for the
  inner predictor (`lm:`, `temperature:`, ...).

  ## Examples

      iex> judge = DSPex.Metrics.SemanticF1.new(decompositional: true)
      iex> Enum.map(judge.module.predict.signature.outputs, & &1.name)
      [:reasoning, :ground_truth_key_ideas, :system_response_key_ideas, :discussion, :recall, :precision]
      iex> for {name, _} <- DSPex.Module.named_predictors(judge), do: name
      ["module.predict"]
  """
  @spec new(keyword) :: t
  def new(opts \\ []) do
    {threshold, opts} = Keyword.pop(opts, :threshold, 0.66)
    {decompositional, opts} = Keyword.pop(opts, :decompositional, false)

    sig =
      if decompositional,
        do: DecompositionalSemanticRecallPrecision,
        else: SemanticRecallPrecision

    DSPex.Module.assign_names(%__MODULE__{
      module: DSPex.ChainOfThought.new(sig, opts),
      threshold: threshold,
      decompositional: decompositional
    })
  end

  @doc """
  Runs the judge on `%{example: example, pred: prediction}` (and optionally `trace:`),
  like DSPy's `forward(example, pred, trace=None)`. Returns
  `{:ok, %DSPex.Prediction{score: score}}`; `opts` are per-call overrides (`lm:`, ...).
  Use it through `DSPex.call/3`, or `score/5` for the bare score.
  """
  @impl DSPex.Module
  @spec forward(t, map, keyword) :: {:ok, DSPex.Prediction.t()} | {:error, DSPex.Error.t()}
  def forward(%__MODULE__{} = judge, inputs, opts \\ []) do
    example = Map.fetch!(inputs, :example)
    pred = Map.fetch!(inputs, :pred)

    call_inputs = %{
      question: DSPex.Metrics.__field__(example, :question, "example"),
      ground_truth: DSPex.Metrics.__field__(example, :response, "example"),
      system_response: DSPex.Metrics.__field__(pred, :response, "prediction")
    }

    with {:ok, scores} <- DSPex.call(judge.module, call_inputs, opts) do
      score = f1_score(scores.precision, scores.recall)

      {:ok,
       DSPex.Prediction.new(score: thresholded(score, Map.get(inputs, :trace), judge.threshold))}
    end
  end

  @doc """
  The score of `prediction` against `example`: a float without a trace, a boolean
  (`score >= threshold`) with one. `opts` are per-call overrides (`lm:`, `adapter:`).

  ## Examples

      iex> lm = DSPex.LM.Scripted.new([%{reasoning: "-", recall: 1.0, precision: 0.5}])
      iex> ex = %{question: "Q?", response: "A."}
      iex> DSPex.Metrics.SemanticF1.score(DSPex.Metrics.SemanticF1.new(), ex, %{response: "A. B."}, [], lm: lm)
      {:ok, true}
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
  The judge as an Evaluate / optimizer metric: a function `(example, prediction, trace)`
  returning the score (see `score/5`) and raising the `%DSPex.Error{}` when the LM call
  fails (Evaluate counts it as that example's error).

  ## Examples

      iex> metric = DSPex.Metrics.SemanticF1.metric(DSPex.Metrics.SemanticF1.new())
      iex> is_function(metric, 3)
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

  @doc """
  DSPy's `f1_score(precision, recall)` of the LM-judged metrics: both clamped into
  [0, 1] (as Python's `max(0.0, min(1.0, x))`), `0.0` when they sum to 0, else
  `2 * (p * r) / (p + r)` in that operation order.

  ## Examples

      iex> DSPex.Metrics.SemanticF1.f1_score(0.7, 0.9)
      0.7875
      iex> DSPex.Metrics.SemanticF1.f1_score(-0.2, 1.5)
      0.0
  """
  @spec f1_score(number, number) :: float
  def f1_score(precision, recall) do
    p = clamp(precision)
    r = clamp(recall)
    if p + r == 0, do: 0.0, else: 2 * (p * r) / (p + r)
  end

  # Python's max(0.0, min(1.0, x)): min keeps 1.0 unless x < 1.0, max keeps 0.0 unless
  # the value > 0.0.
  defp clamp(x) when is_number(x) do
    x = if x < 1.0, do: x * 1.0, else: 1.0
    if x > 0.0, do: x, else: 0.0
  end

  defp clamp(other) do
    raise DSPex.Error.new(
            :metric,
            "the judge returned a non-numeric score: #{inspect(other, limit: 5)}",
            %{value: other}
          )
  end

  @doc false
  def thresholded(score, nil, _threshold), do: score
  def thresholded(score, _trace, threshold), do: score >= threshold
end

defmodule DSPex.Metrics.SemanticF1.SemanticRecallPrecision do
  @moduledoc false
  # dspy.evaluate.auto_evaluation.SemanticRecallPrecision
  use DSPex.Signature,
    instructions: """
    Compare a system's response to the ground truth to compute its recall and precision.
    If asked to reason, enumerate key ideas in each response, and whether they are present in the other response.
    """

  input :question, :str
  input :ground_truth, :str
  input :system_response, :str

  output :recall, :float,
    desc: "fraction (out of 1.0) of ground truth covered by the system response"

  output :precision, :float,
    desc: "fraction (out of 1.0) of system response covered by the ground truth"
end

defmodule DSPex.Metrics.SemanticF1.DecompositionalSemanticRecallPrecision do
  @moduledoc false
  # dspy.evaluate.auto_evaluation.DecompositionalSemanticRecallPrecision
  use DSPex.Signature,
    instructions: """
    Compare a system's response to the ground truth to compute recall and precision of key ideas.
    You will first enumerate key ideas in each response, discuss their overlap, and then report recall and precision.
    """

  input :question, :str
  input :ground_truth, :str
  input :system_response, :str
  output :ground_truth_key_ideas, :str, desc: "enumeration of key ideas in the ground truth"
  output :system_response_key_ideas, :str, desc: "enumeration of key ideas in the system response"

  output :discussion, :str,
    desc: "discussion of the overlap between ground truth and system response"

  output :recall, :float,
    desc: "fraction (out of 1.0) of ground truth covered by the system response"

  output :precision, :float,
    desc: "fraction (out of 1.0) of system response covered by the ground truth"
end
