defmodule DSPex.Trace do
  @moduledoc """
  Per-process execution traces for optimizers, like `dspy.settings.trace`.

  While `with_trace/1` runs, every predictor call in the calling process appends
  `{predictor_name, inputs, outputs}` (inputs and outputs are maps with atom keys).
  `DSPex.Parallel` collects traces from its workers and appends them, in item order,
  to the caller's trace. A trace keeps at most `DSPex.Settings.get(:max_trace_size)`
  entries (oldest dropped, as DSPy does).

  ## Examples

      iex> {:done, trace} = DSPex.Trace.with_trace(fn ->
      ...>   DSPex.Trace.record("self", %{q: 1}, %{a: 2})
      ...>   :done
      ...> end)
      iex> trace
      [{"self", %{q: 1}, %{a: 2}}]
      iex> DSPex.Trace.active?()
      false
  """

  @key :"$dspex_trace"

  @type entry :: {binary, map, map}

  @doc """
  Runs `fun` with a fresh trace and returns `{result, trace}`. Nested calls get their
  own trace; the outer trace is restored (not extended) afterwards — use `extend/1` to
  copy entries up.

  ## Examples

      iex> DSPex.Trace.with_trace(fn -> 1 end)
      {1, []}
  """
  @spec with_trace((() -> result)) :: {result, [entry]} when result: term
  def with_trace(fun) when is_function(fun, 0) do
    previous = Process.get(@key)
    Process.put(@key, {0, :queue.new()})

    try do
      result = fun.()
      {result, current()}
    after
      if previous, do: Process.put(@key, previous), else: Process.delete(@key)
    end
  end

  @doc """
  Whether a trace is being collected in this process.

  ## Examples

      iex> DSPex.Trace.with_trace(fn -> DSPex.Trace.active?() end)
      {true, []}
  """
  @spec active?() :: boolean
  def active?, do: Process.get(@key) != nil

  @doc """
  The current trace (oldest first), or `nil` when none is active.

  ## Examples

      iex> DSPex.Trace.current()
      nil
  """
  @spec current() :: [entry] | nil
  def current do
    case Process.get(@key) do
      nil -> nil
      {_, q} -> :queue.to_list(q)
    end
  end

  @doc """
  Appends one entry when a trace is active; a no-op otherwise.

  ## Examples

      iex> DSPex.Trace.record("x", %{}, %{})
      :ok
  """
  @spec record(binary, map, map) :: :ok
  def record(name, inputs, outputs) do
    case Process.get(@key) do
      nil ->
        :ok

      {n, q} ->
        max = DSPex.Settings.get(:max_trace_size, 10_000)
        {n, q} = {n + 1, :queue.in({name, inputs, outputs}, q)}
        {n, q} = trim(n, q, max)
        Process.put(@key, {n, q})
        :ok
    end
  end

  @doc """
  Appends several entries (oldest first) when a trace is active.

  ## Examples

      iex> DSPex.Trace.with_trace(fn -> DSPex.Trace.extend([{"a", %{}, %{}}]) end)
      {:ok, [{"a", %{}, %{}}]}
  """
  @spec extend([entry]) :: :ok
  def extend(entries) when is_list(entries) do
    Enum.each(entries, fn {name, i, o} -> record(name, i, o) end)
  end

  defp trim(n, q, max) when n > max and max >= 0 do
    {_, q} = :queue.out(q)
    trim(n - 1, q, max)
  end

  defp trim(n, q, _), do: {n, q}
end
