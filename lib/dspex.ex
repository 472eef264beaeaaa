defmodule DSPex do
  @moduledoc """
  DSPy for the BEAM: declarative language-model programs (signatures, predict modules,
  tools) that can be optimized against a metric.

      DSPex.configure(lm: DSPex.LM.new("openai/gpt-4o-mini"))
      qa = DSPex.Predict.new("question -> answer")
      {:ok, pred} = DSPex.call(qa, question: "What is the capital of France?")
      pred.answer

  See the README for the workflow. Hot paths (JSON, repair, signature parsing, prompt
  rendering, output parsing) run in C NIFs; provider I/O runs in a supervised port
  program.
  """

  alias DSPex.{Error, Prediction, Settings}

  @doc """
  Sets global settings, like `dspy.configure`. Unknown keys raise `ArgumentError`.

  ## Options

  #{DSPex.Options.docs(DSPex.Settings.schema())}

  ## Examples

      iex> DSPex.configure(max_trace_size: 10_000)
      :ok
  """
  @spec configure(keyword) :: :ok
  defdelegate configure(opts), to: Settings

  @doc """
  Runs `fun` with settings overridden for this process and the tasks DSPex starts from
  it (like `dspy.context`).

  ## Examples

      iex> DSPex.with_settings([num_threads: 2], fn -> DSPex.Settings.get(:num_threads) end)
      2
  """
  @spec with_settings(keyword, (() -> result)) :: result when result: term
  defdelegate with_settings(opts, fun), to: Settings

  @doc """
  Calls a predictor or program with `inputs` (keyword list, map or
  `%DSPex.Example{}`).

  Per-call options: `lm:`, `adapter:`, `config:` (request params), `demos:`,
  `signature:` (predictors; see `DSPex.Predict.call/3`). Returns
  `{:ok, %DSPex.Prediction{}}` (or whatever a program's `forward/2` returns) or
  `{:error, %DSPex.Error{}}`.

  With `DSPex.configure(track_usage: true)` the prediction's `lm_usage` holds the
  usage of every LM call made inside, per model.

  ## Examples

      iex> lm = DSPex.LM.Scripted.new([%{answer: "Paris"}])
      iex> qa = DSPex.Predict.new("question -> answer", lm: lm)
      iex> {:ok, pred} = DSPex.call(qa, question: "What is the capital of France?")
      iex> pred.answer
      "Paris"
      iex> {:error, %DSPex.Error{type: :missing_inputs}} = DSPex.call(qa, %{})
      iex> :done
      :done
  """
  @spec call(struct, keyword | map | DSPex.Example.t(), keyword) ::
          {:ok, term} | {:error, Error.t()}
  def call(program, inputs, opts \\ [])

  def call(program, inputs, opts) when is_list(inputs), do: call(program, Map.new(inputs), opts)

  def call(program, %DSPex.Example{} = ex, opts) do
    call(program, if(ex.input_keys, do: DSPex.Example.inputs(ex), else: ex.fields), opts)
  end

  def call(%DSPex.Predict{} = p, inputs, opts) when is_map(inputs) do
    DSPex.Predict.call(p, inputs, opts)
  end

  def call(%_{} = program, inputs, opts) when is_map(inputs) do
    if Settings.get(:track_usage) == true do
      {result, usage} = track_usage(fn -> DSPex.Module.run(program, inputs, opts) end)

      case result do
        {:ok, %Prediction{} = pred} -> {:ok, %{pred | lm_usage: usage}}
        other -> other
      end
    else
      DSPex.Module.run(program, inputs, opts)
    end
  end

  @doc """
  Like `call/3` but returns the prediction or raises the `%DSPex.Error{}`.
  """
  @spec call!(struct, keyword | map, keyword) :: term
  def call!(program, inputs, opts \\ []) do
    case call(program, inputs, opts) do
      {:ok, v} -> v
      {:error, %Error{} = e} -> raise e
    end
  end

  @doc """
  Prints the last `n` LM calls like `dspy.inspect_history` (ANSI colours only on a
  terminal). Options: `device:`, `colors:`.

  ## Examples

      iex> {:ok, dev} = StringIO.open("")
      iex> DSPex.inspect_history(0, device: dev)
      :ok
  """
  @spec inspect_history(non_neg_integer, keyword) :: :ok
  def inspect_history(n \\ 1, opts \\ []), do: DSPex.LM.History.inspect_history(n, opts)

  @doc """
  Runs `fun` and returns `{result, usage}` where usage is `%{model => %{prompt_tokens,
  completion_tokens, total_tokens, ...}}` for the LM calls made by this process inside
  it (and in the tasks DSPex starts from it). See `DSPex.Usage.track/1`.

  ## Examples

      iex> DSPex.track_usage(fn -> :nothing end)
      {:nothing, %{}}
  """
  @spec track_usage((() -> result)) :: {result, map} when result: term
  def track_usage(fun) when is_function(fun, 0), do: DSPex.Usage.track(fun)

  @doc """
  Streams a program's output: see `DSPex.Streaming.stream/3`.
  """
  @spec stream(struct, keyword | map, keyword) :: Enumerable.t()
  defdelegate stream(program, inputs, opts \\ []), to: DSPex.Streaming

  @doc """
  Runs `program` over many inputs concurrently, results in input order (DSPy's
  `Module.batch`). See `DSPex.Parallel.batch/3`.
  """
  @spec batch(struct, [term], keyword) ::
          {:ok, [{:ok, term} | {:error, Error.t()}]} | {:error, Error.t()}
  defdelegate batch(program, inputs, opts \\ []), to: DSPex.Parallel

  @doc """
  Picks the most common value of `field` among completions, like `dspy.majority`.
  See `DSPex.Majority.majority/2`.
  """
  @spec majority(Prediction.t() | [map], keyword) :: Prediction.t()
  defdelegate majority(prediction_or_completions, opts \\ []), to: DSPex.Majority
end
