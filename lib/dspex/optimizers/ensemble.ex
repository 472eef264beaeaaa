defmodule DSPex.Optimizers.Ensemble do
  @moduledoc """
  One program out of several, like `dspy.Ensemble`: every call runs the programs (all,
  or `size` of them) on the same inputs, in order, and returns
  `reduce_fn.(outputs)` — commonly `&DSPex.majority/2`, the most common answer — or the
  list of outputs when there is no `reduce_fn`.

      {:ok, ensemble} =
        DSPex.Optimizers.Ensemble.compile([qa_a, qa_b, qa_c], reduce_fn: &DSPex.majority/2)

      {:ok, pred} = DSPex.call(ensemble, question: "...")

  The compiled program is a `DSPex.Optimizers.Ensemble.Program` whose `programs` field
  holds the programs, so its predictors are named as DSPy names them
  (`"programs[0].predict"`, ...) and it saves in DSPy's format.

  ## `size` and `deterministic`

  With `size: n` each call runs a sample of `n` programs (in sampled order). DSPy draws
  it from Python's global, unseeded `random`, so which programs run is not reproducible
  (and `deterministic=True` is an unimplemented assertion). DSPex offers both:

    * `deterministic: false` (the default) — a fresh `random.Random` seeded from
      `:rand` per call, like DSPy's unseeded draw;
    * `deterministic: true` — the sample is drawn from `random.Random(h)`, `h` the
      SHA-256 (hex) of the inputs' canonical JSON, so the same inputs always run the
      same programs (what DSPy's TODO asks for: "example hashing").

  ## Errors

  A program that fails makes the call fail with its `{:error, %DSPex.Error{}}` (DSPy's
  exception propagates the same way).

  ## Examples

      iex> progs =
      ...>   for answer <- ["Paris", "Lyon", "paris"] do
      ...>     DSPex.Predict.new("question -> answer", lm: DSPex.LM.Scripted.new([%{answer: answer}]))
      ...>   end
      iex> {:ok, ens} = DSPex.Optimizers.Ensemble.compile(progs, reduce_fn: &DSPex.majority/2)
      iex> {:ok, pred} = DSPex.call(ens, question: "Capital of France?")
      iex> pred.answer
      "Paris"
      iex> ens |> DSPex.Module.named_predictors() |> Enum.map(&elem(&1, 0))
      ["programs[0]", "programs[1]", "programs[2]"]
  """

  alias DSPex.Optimizers.Shared

  @who "DSPex.Optimizers.Ensemble"

  defmodule Program do
    @moduledoc """
    A program built by `DSPex.Optimizers.Ensemble.compile/2` (DSPy's
    `EnsembledProgram`): `programs`, `reduce_fn`, `size`, `deterministic`.
    """

    @behaviour DSPex.Module

    defstruct programs: [], reduce_fn: nil, size: nil, deterministic: false

    @type t :: %__MODULE__{
            programs: [struct],
            reduce_fn: (list -> term) | (list, keyword -> term) | nil,
            size: pos_integer | nil,
            deterministic: boolean
          }

    @doc false
    def __dspex_fields__, do: [:programs]

    @impl DSPex.Module
    @doc "Runs the (sampled) programs in order and reduces their outputs."
    def forward(%__MODULE__{} = e, inputs, opts \\ []) do
      chosen = DSPex.Optimizers.Ensemble.choose(e, inputs)

      outputs =
        Enum.reduce_while(chosen, {:ok, []}, fn program, {:ok, acc} ->
          case DSPex.call(program, inputs, opts) do
            {:ok, out} -> {:cont, {:ok, [out | acc]}}
            {:error, _} = err -> {:halt, err}
          end
        end)

      with {:ok, rev} <- outputs do
        outs = Enum.reverse(rev)

        case e.reduce_fn do
          nil -> {:ok, outs}
          f when is_function(f, 1) -> {:ok, f.(outs)}
          f when is_function(f, 2) -> {:ok, f.(outs, [])}
        end
      end
    end
  end

  @options DSPex.Options.schema!(
             reduce_fn: [
               type: {:or, [{:fun, 1}, {:fun, 2}, nil]},
               doc:
                 "combines the outputs (a list of predictions): e.g. `&DSPex.majority/2` " <>
                   "(a 2-arity function is called with `[]` as options); `nil` returns the list."
             ],
             size: [
               type: {:or, [:pos_integer, nil]},
               doc: "run a sample of this many programs per call (default: all)."
             ],
             deterministic: [
               type: :boolean,
               default: false,
               doc: "draw that sample from a hash of the inputs instead of at random."
             ]
           )

  @doc """
  The option schema of `compile/2`.
  """
  @spec options_schema() :: DSPex.Options.schema()
  def options_schema, do: @options

  @doc """
  Builds the ensemble of `programs` (a non-empty list of program structs). Returns
  `{:ok, %DSPex.Optimizers.Ensemble.Program{}}`.

  ## Options

  #{DSPex.Options.docs(@options)}
  """
  @spec compile([struct], keyword) :: {:ok, Program.t()}
  def compile(programs, opts \\ []) do
    opts = DSPex.Options.validate!(opts, @options, "#{@who}.compile/2")

    unless is_list(programs) and programs != [] do
      raise ArgumentError, "#{@who}.compile/2 needs a non-empty list of programs"
    end

    Enum.each(programs, &Shared.check_program!(&1, @who))

    if opts[:size] && opts[:size] > length(programs) do
      raise ArgumentError,
            "#{@who}: size #{opts[:size]} is larger than the #{length(programs)} programs"
    end

    meta = %{program: Program, trainset_size: 0, programs: length(programs)}

    Shared.span(:ensemble, meta, fn ->
      program = %Program{
        programs: programs,
        reduce_fn: opts[:reduce_fn],
        size: opts[:size],
        deterministic: opts[:deterministic]
      }

      {{:ok, DSPex.Module.assign_names(program)}, %{}}
    end)
  end

  @doc """
  Like `compile/2` but returns the program.
  """
  @spec compile!([struct], keyword) :: Program.t()
  def compile!(programs, opts \\ []) do
    {:ok, p} = compile(programs, opts)
    p
  end

  @doc false
  # The programs one call runs (see "size and deterministic").
  def choose(%Program{size: nil, programs: ps}, _inputs), do: ps

  def choose(%Program{size: size, programs: ps, deterministic: det}, inputs) do
    rng =
      if det,
        do: DSPex.Random.new(inputs_hash(inputs)),
        else: DSPex.Random.new(:rand.uniform(0x4000000000000000))

    {chosen, _} = DSPex.Random.sample(rng, ps, size)
    chosen
  end

  defp inputs_hash(inputs) do
    map = if is_list(inputs), do: Map.new(inputs), else: inputs
    json = DSPex.JSON.encode!(DSPex.Program.jsonable(map), sort_keys: true)
    Base.encode16(:crypto.hash(:sha256, json), case: :lower)
  end
end
