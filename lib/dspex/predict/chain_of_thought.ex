defmodule DSPex.ChainOfThought do
  @moduledoc """
  Chain of thought, like `dspy.ChainOfThought`: the signature gets an output field
  `reasoning` (type `str`, no description, prefix `"Reasoning:"`) *before* its other
  outputs, and one inner `DSPex.Predict` at field `predict` does the call — so its
  saved name is `"predict"` (bare) or `"<field>.predict"` inside a program.

  ## Examples

      iex> lm = DSPex.LM.Scripted.new([%{reasoning: "Paris is France's capital.", answer: "Paris"}])
      iex> cot = DSPex.ChainOfThought.new("question -> answer", lm: lm)
      iex> Enum.map(cot.predict.signature.outputs, & &1.name)
      [:reasoning, :answer]
      iex> {:ok, pred} = DSPex.call(cot, question: "Capital of France?")
      iex> {pred.reasoning, pred.answer}
      {"Paris is France's capital.", "Paris"}
  """

  @behaviour DSPex.Module

  alias DSPex.Signature.Field

  @type t :: %__MODULE__{predict: DSPex.Predict.t()}
  defstruct predict: nil

  @doc false
  def __dspex_fields__, do: [:predict]

  @options DSPex.Predict.options_schema() ++
             DSPex.Options.schema!(
               rationale_field: [
                 type: {:struct, Field},
                 doc: "The output field to add instead of `reasoning`."
               ]
             )

  @doc """
  Builds the module: a `DSPex.Predict` of the signature with the reasoning field first.

  ## Options

  #{DSPex.Options.docs(@options)}

  ## Examples

      iex> DSPex.ChainOfThought.new("question -> answer", temperature: 0.5).predict.config
      %{temperature: 0.5}
  """
  @spec new(term, keyword) :: t
  def new(signature, opts \\ []) do
    DSPex.Predict.refuse_lm_options!(opts, "DSPex.ChainOfThought.new/2")
    DSPex.Options.validate!(opts, @options, "DSPex.ChainOfThought.new/2")
    sig = DSPex.Predict.resolve_signature(signature)

    field =
      Keyword.get(opts, :rationale_field) ||
        %Field{
          name: :reasoning,
          kind: :output,
          type: :str,
          type_defined?: true,
          desc: nil,
          prefix: "Reasoning:"
        }

    # DSPy's signature.prepend: the instructions are cleaned again (empty ones become the
    # default instructions of the new fields)
    sig =
      if DSPex.Signature.field(sig, field.name),
        do: DSPex.Signature.delete(sig, field.name),
        else: sig

    sig =
      DSPex.Signature.prepend(sig, field.name,
        kind: :output,
        type: field.type,
        desc: field.desc,
        prefix: field.prefix
      )

    predict = DSPex.Predict.new(sig, Keyword.delete(opts, :rationale_field))
    DSPex.Module.assign_names(%__MODULE__{predict: predict})
  end

  @impl DSPex.Module
  @doc "Runs the inner predictor; `opts` are per-call overrides (`lm:`, `config:`, ...)."
  @spec forward(t, map, keyword) :: {:ok, DSPex.Prediction.t()} | {:error, DSPex.Error.t()}
  def forward(%__MODULE__{predict: p}, inputs, opts \\ []),
    do: DSPex.Predict.call(p, inputs, opts)
end
