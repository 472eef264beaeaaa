defmodule DSPex.Parallel do
  @moduledoc """
  Runs programs over many inputs concurrently, like `dspy.Parallel` /
  `Module.batch`.

  Work runs in `Task.async_stream/3` tasks (bounded by `num_threads`, default
  `DSPex.Settings.get(:num_threads)` = 8) that inherit the caller's settings overrides
  (`DSPex.with_settings/2`). Results come back **in input order** as
  `{:ok, prediction}` or `{:error, %DSPex.Error{}}`. When `max_errors` items (default
  `DSPex.Settings.get(:max_errors)` = 10) have failed, the remaining work is cancelled
  and the whole run returns `{:error, %DSPex.Error{type: :too_many_errors}}`. An item
  running longer than `timeout` ms (default 120 000) is killed and counts as an error
  (`:timeout`). If the caller is collecting a trace (`DSPex.Trace.with_trace/1`), each
  item's trace is appended to it in input order.

      {:ok, results} = DSPex.Parallel.batch(qa, [[question: "a"], [question: "b"]])
  """

  alias DSPex.{Error, Settings}

  @options DSPex.Options.schema!(
             num_threads: [
               type: :pos_integer,
               doc: "Items run at once (default: the `:num_threads` setting, 8)."
             ],
             max_errors: [
               type: :non_neg_integer,
               doc:
                 "Failed items that stop the run (default: the `:max_errors` setting, 10; 0: never stop)."
             ],
             timeout: [type: :timeout, default: 120_000, doc: "Milliseconds per item."],
             call_opts: [type: :keyword, default: [], doc: "Options for `DSPex.call/3`."]
           )

  @doc """
  Runs `program` on each element of `inputs` (keyword lists, maps or
  `%DSPex.Example{}` — examples use their input keys).

  ## Options

  #{DSPex.Options.docs(@options)}

  ## Examples

      iex> lm = DSPex.LM.Scripted.new(fn _messages, _params -> %{answer: "42"} end)
      iex> qa = DSPex.Predict.new("question -> answer", lm: lm)
      iex> {:ok, results} = DSPex.Parallel.batch(qa, [[question: "a"], [question: "b"]], num_threads: 2)
      iex> for {:ok, pred} <- results, do: pred.answer
      ["42", "42"]
  """
  @spec batch(struct, [term], keyword) ::
          {:ok, [{:ok, term} | {:error, Error.t()}]} | {:error, Error.t()}
  def batch(program, inputs, opts \\ []) when is_list(inputs) do
    run(Enum.map(inputs, &{program, &1}), opts)
  end

  @doc """
  Runs a list of `{program, inputs}` pairs. Same options and result as `batch/3`.
  """
  @spec run([{struct, term}], keyword) ::
          {:ok, [{:ok, term} | {:error, Error.t()}]} | {:error, Error.t()}
  def run(pairs, opts \\ []) when is_list(pairs) do
    opts = DSPex.Options.validate!(opts, @options, "DSPex.Parallel.run/2")
    threads = opts[:num_threads] || Settings.get(:num_threads, 8)
    max_errors = opts[:max_errors] || Settings.get(:max_errors, 10)
    timeout = opts[:timeout]
    call_opts = opts[:call_opts]
    tracing = DSPex.Trace.active?()
    n = length(pairs)

    stream =
      Settings.async_stream(
        Enum.with_index(pairs),
        fn {{program, inputs}, i} ->
          fun = fn -> safe_call(program, inputs, call_opts) end

          if tracing do
            {res, trace} = DSPex.Trace.with_trace(fun)
            {i, res, trace}
          else
            {i, fun.(), []}
          end
        end,
        max_concurrency: max(1, threads),
        timeout: timeout,
        on_timeout: :kill_task,
        ordered: true
      )

    acc0 = %{results: [], errors: 0, index: 0}

    result =
      Enum.reduce_while(stream, acc0, fn item, acc ->
        {res, trace} =
          case item do
            {:ok, {_i, res, trace}} ->
              {res, trace}

            {:exit, :timeout} ->
              {{:error,
                Error.new(:timeout, "item #{acc.index} ran longer than #{timeout} ms", %{
                  index: acc.index
                })}, []}

            {:exit, reason} ->
              {{:error,
                Error.new(:task_exit, "item #{acc.index} crashed: #{Error.describe(reason)}", %{
                  index: acc.index
                })}, []}
          end

        errors = if match?({:ok, _}, res), do: acc.errors, else: acc.errors + 1
        acc = %{acc | results: [{res, trace} | acc.results], errors: errors, index: acc.index + 1}

        if errors >= max_errors and max_errors > 0,
          do: {:halt, {:too_many, acc}},
          else: {:cont, acc}
      end)

    case result do
      {:too_many, acc} ->
        {:error,
         Error.new(
           :too_many_errors,
           "#{acc.errors} of #{acc.index} finished items failed (max_errors: #{max_errors}); #{n - acc.index} cancelled",
           %{
             errors: Enum.reverse(for({{:error, e}, _} <- acc.results, do: e)),
             max_errors: max_errors
           }
         )}

      acc ->
        results = Enum.reverse(acc.results)
        if tracing, do: Enum.each(results, fn {_, trace} -> DSPex.Trace.extend(trace) end)
        {:ok, Enum.map(results, &elem(&1, 0))}
    end
  end

  # An item's failure is its result, never a task crash: a crash report would print the
  # task's arguments (the program, its LM, the inputs). Messages describe what failed
  # without the data it carried (DSPex.Error.describe/1).
  defp safe_call(program, inputs, call_opts) do
    DSPex.call(program, inputs, call_opts)
  rescue
    e -> {:error, Error.new(:exception, Error.describe(e), %{exception: e.__struct__})}
  catch
    kind, reason ->
      {:error, Error.new(:exception, "#{kind}: #{Error.describe(reason)}", %{kind: kind})}
  end
end
