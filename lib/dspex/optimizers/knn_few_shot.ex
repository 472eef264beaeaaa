defmodule DSPex.Optimizers.KNNFewShot do
  @moduledoc """
  Demos chosen per query from the nearest training examples, like `dspy.KNNFewShot`.

      embedder = DSPex.Embedder.new("openai/text-embedding-3-small")

      {:ok, qa} =
        DSPex.Optimizers.KNNFewShot.compile(DSPex.ChainOfThought.new("question -> answer"), trainset,
          k: 3, embedder: embedder, metric: metric, max_bootstrapped_demos: 2)

      {:ok, pred} = DSPex.call(qa, question: "What is the capital of Belgium?")

  `compile/3` embeds the trainset once (`DSPex.KNN`) and returns a
  `DSPex.Optimizers.KNNFewShot.Program` wrapping the reset program. Each call then does
  what DSPy's replaced `forward` does: find the `k` nearest training examples to the
  call's inputs (dot product, numpy's order — see `DSPex.KNN`), run
  `DSPex.Optimizers.BootstrapFewShot` on the **original** program with those `k` as the
  trainset (the other options below, and `teacher:`), and run the result on the inputs.
  So every call makes the teacher's LM calls for its neighbours (an LM cache makes
  repeats cheap), as in DSPy.

  The wrapper exposes the program's predictors under the program's own names
  (`DSPex.Module.named_predictors/1` gives `"predict"` for a ChainOfThought, as DSPy
  does), so `DSPex.Program.save/2` writes what DSPy saves for a KNNFewShot-compiled
  program: the reset program's state.

  ## Telemetry

  `compile/3` is a `[:dspex, :optimize]` span (`optimizer: :knn_few_shot`); each call
  runs a `[:dspex, :optimize]` span of its BootstrapFewShot.

  ## Examples

      iex> emb = DSPex.Embedder.new(fn texts -> Enum.map(texts, &[byte_size(&1) * 1.0]) end)
      iex> trainset =
      ...>   for {q, a} <- [{"1+1?", "2"}, {"10+10?", "20"}] do
      ...>     DSPex.Example.new(question: q, answer: a) |> DSPex.Example.with_inputs([:question])
      ...>   end
      iex> lm = DSPex.LM.Scripted.new(fn _messages, _params -> %{answer: "20"} end)
      iex> {:ok, qa} =
      ...>   DSPex.Optimizers.KNNFewShot.compile(DSPex.Predict.new("question -> answer"), trainset,
      ...>     k: 1, embedder: emb, max_labeled_demos: 1)
      iex> DSPex.Module.named_predictors(qa) |> Enum.map(&elem(&1, 0))
      ["self"]
      iex> {:ok, pred} = DSPex.with_settings([lm: lm], fn -> DSPex.call(qa, question: "30+30?") end)
      iex> pred.answer
      "20"
  """

  alias DSPex.{Error, Example, Module}
  alias DSPex.Optimizers.{BootstrapFewShot, Shared}

  @who "DSPex.Optimizers.KNNFewShot"

  defmodule Program do
    @moduledoc """
    A program compiled by `DSPex.Optimizers.KNNFewShot`: `student` is the reset
    program (its predictors are this program's, under the same names), `original` the
    program bootstrapped on each call's neighbours, `knn` the `DSPex.KNN` index and
    `bootstrap` the BootstrapFewShot options.
    """

    @behaviour DSPex.Module

    defstruct student: nil, original: nil, knn: nil, bootstrap: []

    @type t :: %__MODULE__{
            student: struct,
            original: struct,
            knn: DSPex.KNN.t(),
            bootstrap: keyword
          }

    @doc false
    def __dspex_fields__, do: [:student]

    @doc false
    def __dspex_wraps__, do: :student

    @impl DSPex.Module
    @doc "Bootstraps demos from the inputs' nearest training examples and runs with them."
    def forward(%__MODULE__{} = p, inputs, opts \\ []) do
      with {:ok, near} <- DSPex.KNN.neighbors(p.knn, inputs),
           {:ok, r} <- BootstrapFewShot.run_checked(p.original, near, p.bootstrap) do
        DSPex.call(r.program, inputs, opts)
      end
    end
  end

  @options DSPex.KNN.options_schema() ++
             DSPex.Options.take(BootstrapFewShot.options_schema(), [
               :metric,
               :metric_threshold,
               :teacher,
               :teacher_settings,
               :label_teacher,
               :max_bootstrapped_demos,
               :max_labeled_demos,
               :max_rounds,
               :max_errors
             ])

  @doc """
  The option schema of `compile/3`.
  """
  @spec options_schema() :: DSPex.Options.schema()
  def options_schema, do: @options

  @doc """
  Embeds the trainset and returns `{:ok, %DSPex.Optimizers.KNNFewShot.Program{}}` (see
  the module doc), or the embedder's `{:error, %DSPex.Error{}}`.

  ## Options

  #{DSPex.Options.docs(@options)}
  """
  @spec compile(struct, [Example.t()], keyword) :: {:ok, Program.t()} | {:error, Error.t()}
  def compile(%mod{} = program, trainset, opts) do
    opts = DSPex.Options.validate!(opts, @options, "#{@who}.compile/3")
    Shared.check_program!(program, @who)
    Shared.check_trainset!(trainset, @who, true)
    meta = %{program: mod, trainset_size: length(trainset)}

    Shared.span(:knn_few_shot, meta, fn ->
      result =
        with {:ok, knn} <- DSPex.KNN.new(trainset, Keyword.take(opts, [:k, :embedder])) do
          {:ok,
           %Program{
             student: Module.reset(program),
             original: program,
             knn: knn,
             bootstrap: Keyword.drop(opts, [:k, :embedder])
           }}
        end

      {result, %{}}
    end)
  end

  @doc """
  Like `compile/3` but returns the program or raises the `%DSPex.Error{}`.
  """
  @spec compile!(struct, [Example.t()], keyword) :: Program.t()
  def compile!(program, trainset, opts) do
    case compile(program, trainset, opts) do
      {:ok, p} -> p
      {:error, e} -> raise e
    end
  end
end
