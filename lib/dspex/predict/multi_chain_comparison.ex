defmodule DSPex.MultiChainComparison do
  @moduledoc """
  Compares `m` reasoning attempts and produces a corrected answer, like
  `dspy.MultiChainComparison`.

  The signature gets inputs `reasoning_attempt_1..m` (prefix `"Student Attempt #i:"`,
  description `"${reasoning attempt}"`) and a first output `rationale` (prefix
  `"Accurate Reasoning: Thank you everyone. Let's now holistically"`, description
  `"${corrected reasoning}"`); the inner predictor is at field `predict` (temperature
  0.7 by default).

  Call it with the usual inputs plus `completions:` — exactly `m` completions (maps or
  predictions with `rationale` or `reasoning` and the signature's last output field).
  Each becomes `«I'm trying to {first line of rationale} I'm not sure but my prediction
  is {first line of answer}»`.

      cot = DSPex.ChainOfThought.new("question -> answer", n: 3)
      {:ok, pred} = DSPex.call(cot, question: q)
      mcc = DSPex.MultiChainComparison.new("question -> answer", m: 3)
      {:ok, final} = DSPex.call(mcc, completions: pred.completions, question: q)
  """

  @behaviour DSPex.Module

  alias DSPex.Signature.Field

  @type t :: %__MODULE__{predict: DSPex.Predict.t(), m: pos_integer, last_key: atom}
  defstruct predict: nil, m: 3, last_key: nil

  @doc false
  def __dspex_fields__, do: [:predict]

  @options DSPex.Options.schema!(
             m: [type: :pos_integer, default: 3, doc: "Number of attempts compared."]
           ) ++ DSPex.Options.put_defaults(DSPex.Predict.options_schema(), temperature: 0.7)

  @doc """
  Builds the module.

  ## Options

  #{DSPex.Options.docs(@options)}

  ## Examples

      iex> mcc = DSPex.MultiChainComparison.new("question -> answer", m: 2)
      iex> Enum.map(mcc.predict.signature.inputs, & &1.name)
      [:question, :reasoning_attempt_1, :reasoning_attempt_2]
  """
  @spec new(term, keyword) :: t
  def new(signature, opts \\ []) do
    DSPex.Predict.refuse_lm_options!(opts, "DSPex.MultiChainComparison.new/2")
    opts = DSPex.Options.validate!(opts, @options, "DSPex.MultiChainComparison.new/2")
    sig = DSPex.Predict.resolve_signature(signature)
    m = opts[:m]
    last_key = List.last(sig.outputs).name

    attempts =
      for i <- 1..m do
        %Field{
          name: String.to_atom("reasoning_attempt_#{i}"),
          kind: :input,
          type: :str,
          type_defined?: true,
          desc: "${reasoning attempt}",
          prefix: "Student Attempt ##{i}:"
        }
      end

    rationale = %Field{
      name: :rationale,
      kind: :output,
      type: :str,
      type_defined?: true,
      desc: "${corrected reasoning}",
      prefix: "Accurate Reasoning: Thank you everyone. Let's now holistically"
    }

    sig = %{sig | inputs: sig.inputs ++ attempts, outputs: [rationale | sig.outputs]}
    # Only what was given or defaults to a value goes to the predictor.
    opts = opts |> Keyword.delete(:m) |> Enum.reject(fn {_, v} -> is_nil(v) end)

    DSPex.Module.assign_names(%__MODULE__{
      predict: DSPex.Predict.new(sig, opts),
      m: m,
      last_key: last_key
    })
  end

  @impl DSPex.Module
  @doc false
  def forward(%__MODULE__{} = mcc, inputs, opts \\ []) do
    {completions, inputs} = Map.pop(inputs, :completions, [])

    attempts =
      Enum.map(completions, fn c ->
        c = to_map(c)
        rationale = first_line(Map.get(c, :rationale) || Map.get(c, :reasoning) || "")
        answer = first_line(Map.get(c, mcc.last_key, ""))
        "«I'm trying to #{rationale} I'm not sure but my prediction is #{answer}»"
      end)

    if length(attempts) != mcc.m do
      {:error,
       DSPex.Error.new(
         :bad_request,
         "The number of attempts (#{length(attempts)}) doesn't match the expected number M (#{mcc.m}). " <>
           "Please set the correct value for m when building MultiChainComparison.",
         %{attempts: length(attempts), m: mcc.m}
       )}
    else
      extra =
        attempts
        |> Enum.with_index(1)
        |> Map.new(fn {a, i} -> {String.to_atom("reasoning_attempt_#{i}"), a} end)

      DSPex.Predict.call(mcc.predict, Map.merge(extra, inputs), opts)
    end
  end

  defp to_map(%DSPex.Prediction{} = p), do: DSPex.Prediction.fields(p)
  defp to_map(%DSPex.Example{fields: f}), do: f
  defp to_map(m) when is_map(m), do: m

  defp first_line(v) do
    v |> to_string() |> String.trim() |> String.split("\n") |> hd() |> String.trim()
  end
end
