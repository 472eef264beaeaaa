defmodule DSPex.Optimizers.LabeledFewShot do
  @moduledoc ~S"""
  Few-shot demos straight from labeled examples, like `dspy.LabeledFewShot`.

  `compile/3` resets the program (`DSPex.Module.reset/1`: no demos, no per-predictor
  LM; signatures and instructions are kept) and gives every predictor up to `k`
  training examples as demos. With `sample: true` (the default) each predictor gets
  `sample(trainset, min(k, n))` drawn from **one** `random.Random(0)` shared by the
  predictors in `DSPex.Module.named_predictors/1` order — so with the same trainset
  DSPex picks exactly the demos DSPy picks, and two predictors get different samples.
  With `sample: false` every predictor gets the first `k` examples.

  A demo is the example's field map (labels included), as DSPy stores the
  `dspy.Example`; it saves without `"augmented"` (`DSPex.Program.save/2`).

  ## Examples

      iex> trainset =
      ...>   for i <- 1..5 do
      ...>     DSPex.Example.new(question: "#{i} + #{i}?", answer: "#{2 * i}")
      ...>     |> DSPex.Example.with_inputs([:question])
      ...>   end
      iex> qa = DSPex.Predict.new("question -> answer")
      iex> {:ok, qa} = DSPex.Optimizers.LabeledFewShot.compile(qa, trainset, k: 3)
      iex> Enum.map(qa.demos, & &1.question)
      ["4 + 4?", "5 + 5?", "1 + 1?"]

  (`random.Random(0).sample(range(5), 3)` is `[3, 4, 0]`.)

  ## Telemetry

  A `[:dspex, :optimize]` span with metadata `optimizer: :labeled_few_shot`,
  `program` (the module), `trainset_size`.
  """

  alias DSPex.Optimizers.Shared

  @options DSPex.Options.schema!(
             k: [
               type: :non_neg_integer,
               default: 16,
               doc: "demos per predictor (at most the trainset size)."
             ],
             sample: [
               type: :boolean,
               default: true,
               doc: "draw them with `random.Random(0)` (`false`: the first `k`)."
             ]
           )

  @doc """
  The option schema of `compile/3`.
  """
  @spec options_schema() :: DSPex.Options.schema()
  def options_schema, do: @options

  @doc """
  Returns `{:ok, program}` with labeled demos on every predictor (see the module doc).
  An empty trainset gives the reset program.

  ## Options

  #{DSPex.Options.docs(@options)}

  ## Examples

      iex> ex = DSPex.Example.new(question: "2+2?", answer: "4") |> DSPex.Example.with_inputs([:question])
      iex> {:ok, cot} = DSPex.Optimizers.LabeledFewShot.compile(DSPex.ChainOfThought.new("question -> answer"), [ex], sample: false)
      iex> cot.predict.demos
      [%{question: "2+2?", answer: "4"}]
  """
  @spec compile(struct, [DSPex.Example.t()], keyword) :: {:ok, struct}
  def compile(program, trainset, opts \\ []) do
    opts = DSPex.Options.validate!(opts, @options, "DSPex.Optimizers.LabeledFewShot.compile/3")
    Shared.check_program!(program, "DSPex.Optimizers.LabeledFewShot")
    Shared.check_trainset!(trainset, "DSPex.Optimizers.LabeledFewShot", false)
    %mod{} = program

    meta = %{program: mod, trainset_size: length(trainset)}

    Shared.span(:labeled_few_shot, meta, fn ->
      {{:ok, label(program, trainset, opts[:k], opts[:sample])}, %{}}
    end)
  end

  @doc """
  Like `compile/3` but returns the program.
  """
  @spec compile!(struct, [DSPex.Example.t()], keyword) :: struct
  def compile!(program, trainset, opts \\ []) do
    {:ok, program} = compile(program, trainset, opts)
    program
  end

  @doc false
  # The algorithm, for the optimizers that call it on checked arguments.
  def label(program, trainset, k, sample?) do
    program = DSPex.Module.reset(program)
    n = length(trainset)

    if n == 0 do
      program
    else
      size = min(k, n)

      {by_name, _rng} =
        program
        |> Shared.names()
        |> Enum.reduce({%{}, DSPex.Random.new(0)}, fn name, {acc, rng} ->
          {chosen, rng} =
            if sample?,
              do: DSPex.Random.sample(rng, trainset, size),
              else: {Enum.take(trainset, size), rng}

          {Map.put(acc, name, Enum.map(chosen, &Shared.demo/1)), rng}
        end)

      Shared.put_demos(program, by_name)
    end
  end
end
