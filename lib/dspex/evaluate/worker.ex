defmodule DSPex.Evaluate.Worker do
  @moduledoc """
  Runs one example of an evaluation — the program, then the metric — on whichever node
  the task was started: by `DSPex.Evaluate.Runner` itself on its own node, under
  `DSPex.Evaluate.TaskSupervisor` on another node. Everything here uses that node's
  DSPex application (its port pool, its LM cache).

  A failure never escapes: an `{:error, %DSPex.Error{}}` from the program, or anything
  raised, thrown or exited by the program or the metric, becomes
  `{:error, %DSPex.Error{}, traceback}`. The traceback (with `provide_traceback: true`)
  is `Exception.format/3` of the failure with the stack trace's argument lists replaced
  by arities: stack frames can hold call arguments (an LM struct, settings), and the
  traceback should show the example's failure, not those terms.
  """

  alias DSPex.Error
  alias DSPex.Evaluate.Metric

  @typedoc "What the coordinator sends: the same for every example of a run."
  @type job :: %{
          program: struct,
          metric: Metric.t(),
          settings: DSPex.Settings.snapshot(),
          provide_traceback: boolean
        }

  @type outcome ::
          {:ok, prediction :: term, score :: term}
          | {:ok, prediction :: term, {:builtin, {binary, binary | [binary]}}}
          | {:error, Error.t(), traceback :: binary | nil}

  @doc """
  Runs `example` through the job's program and metric. For a built-in metric the score
  is left to the coordinator's batch call: the result carries `{:builtin, pair}`
  instead.

  ## Examples

      iex> lm = DSPex.LM.Scripted.new([%{answer: "4"}])
      iex> qa = DSPex.Predict.new("question -> answer", lm: lm)
      iex> metric = DSPex.Evaluate.Metric.new!(fn ex, pred -> ex[:answer] == pred.answer end)
      iex> job = %{program: qa, metric: metric, settings: %{}, provide_traceback: false}
      iex> ex = DSPex.Example.new(question: "2+2?", answer: "4") |> DSPex.Example.with_inputs([:question])
      iex> {:ok, pred, true} = DSPex.Evaluate.Worker.run(job, ex)
      iex> pred.answer
      "4"
  """
  @spec run(job, DSPex.Example.t()) :: outcome
  def run(job, example) do
    DSPex.Settings.restore(job.settings)

    with {:ok, pred} <- stage(:program, job, fn -> DSPex.call(job.program, example) end),
         {:ok, score} <- stage(:metric, job, fn -> {:ok, score(job.metric, example, pred)} end) do
      {:ok, pred, score}
    end
  end

  defp score(%Metric{builtin: nil} = m, example, pred), do: Metric.call(m, example, pred)
  defp score(%Metric{} = m, example, pred), do: {:builtin, Metric.extract(m, example, pred)}

  defp stage(stage, job, fun) do
    case fun.() do
      {:ok, _} = ok ->
        ok

      {:error, %Error{} = err} ->
        {:error, %{err | details: Map.put(err.details, :stage, stage)}, nil}
    end
  catch
    kind, reason ->
      {:error, to_error(stage, kind, reason, __STACKTRACE__),
       if(job.provide_traceback, do: traceback(kind, reason, __STACKTRACE__))}
  end

  @doc false
  # An error struct for something raised/thrown/exited in `stage`.
  def to_error(stage, kind, reason, stacktrace) do
    case Exception.normalize(kind, reason, stacktrace) do
      %Error{} = err ->
        %{err | details: Map.put(err.details, :stage, stage)}

      %{__exception__: true, __struct__: mod} = e ->
        Error.new(:exception, "#{inspect(mod)}: #{Exception.message(e)}", %{
          stage: stage,
          kind: kind,
          exception: mod
        })

      other ->
        Error.new(:exception, "#{kind}: #{inspect(other, limit: 20, printable_limit: 200)}", %{
          stage: stage,
          kind: kind
        })
    end
  end

  @doc false
  def traceback(kind, reason, stacktrace) do
    stacktrace =
      Enum.map(stacktrace, fn
        {m, f, args, loc} when is_list(args) -> {m, f, length(args), loc}
        entry -> entry
      end)

    Exception.format(kind, reason, stacktrace)
  end
end
