defmodule DSPex.ChainOfThought do
  @moduledoc """
  Chain of thought, like `dspy.ChainOfThought`: the signature gets an output field
  `reasoning` (type `str`, no description, prefix `"Reasoning:"`) *before* its other
  outputs, and one inner `DSPex.Predict` at field `predict` does the call — so its
  saved name is `"predict"` (bare) or `"<field>.predict"` inside a program.

  ## Examples

      iex> sig = %DSPex.Signature{inputs: [%DSPex.Signature.Field{name: :question}],
      ...>   outputs: [%DSPex.Signature.Field{name: :answer, kind: :output}]}
      iex> cot = DSPex.ChainOfThought.new(sig)
      iex> Enum.map(cot.predict.signature.outputs, & &1.name)
      [:reasoning, :answer]
      iex> cot.predict.name
      "predict"
  """

  alias DSPex.Signature.Field

  @type t :: %__MODULE__{predict: DSPex.Predict.t()}
  defstruct predict: nil

  @doc false
  def __dspex_fields__, do: [:predict]

  @doc """
  Builds the module. `opts` are `DSPex.Predict.new/2` options, plus
  `:rationale_field` (a `%DSPex.Signature.Field{}` to use instead of `reasoning`).

  ## Examples

      iex> DSPex.ChainOfThought.new(%DSPex.Signature{outputs: [%DSPex.Signature.Field{name: :a, kind: :output}]}, temperature: 0.5).predict.config
      %{temperature: 0.5}
  """
  @spec new(term, keyword) :: t
  def new(signature, opts \\ []) do
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

  @doc "Runs the inner predictor; `opts` are per-call overrides (`lm:`, `config:`, ...)."
  @spec forward(t, map, keyword) :: {:ok, DSPex.Prediction.t()} | {:error, DSPex.Error.t()}
  def forward(%__MODULE__{predict: p}, inputs, opts \\ []),
    do: DSPex.Predict.call(p, inputs, opts)
end
