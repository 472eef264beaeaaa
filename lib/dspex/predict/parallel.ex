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

  @doc """
  Runs `program` on each element of `inputs` (keyword lists, maps or
  `%DSPex.Example{}` — examples use their input keys). Options: `num_threads`,
  `max_errors`, `timeout` (ms per item), `call_opts` (passed to `DSPex.call/3`).
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
    threads = Keyword.get(opts, :num_threads) || Settings.get(:num_threads, 8)
    max_errors = Keyword.get(opts, :max_errors) || Settings.get(:max_errors, 10)
    timeout = Keyword.get(opts, :timeout, 120_000)
    call_opts = Keyword.get(opts, :call_opts, [])
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
                Error.new(:task_exit, "item #{acc.index} crashed: #{inspect(reason)}", %{
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

  defp safe_call(program, inputs, call_opts) do
    DSPex.call(program, inputs, call_opts)
  rescue
    e ->
      {:error, Error.new(:exception, Exception.message(e), %{exception: e.__struct__})}
  end
end
