defmodule DSPex.Settings do
  @moduledoc """
  Global settings and process-scoped overrides, like `dspy.configure` / `dspy.context`.

  Global settings live in `:persistent_term` (cheap to read from every process, written
  rarely by `DSPex.configure/1`). Overrides set with `DSPex.with_settings/2` live in the
  calling process's dictionary, so concurrent requests with different LMs never bleed
  into each other (DSPy issues #1766, #1812). Tasks DSPex starts (`async/1`,
  `async_stream/3`, `DSPex.Parallel`) inherit the caller's overrides: capture them with
  `capture/0` and reinstall them with `restore/1` when you spawn your own processes.

  Keys and defaults (DSPy's `DEFAULT_CONFIG` where one exists) are declared once, in
  `schema/0`; `configure/1` and `with_settings/2` raise `ArgumentError` for any other
  key. The `:stream_to`/`:stream_ref` and `:usage_trackers` keys are how `DSPex.stream/3`
  and `DSPex.track_usage/1` reach every predictor a program runs (DSPy's
  `dspy.context(send_stream=...)` and `usage_tracker`).

  ## Examples

      iex> DSPex.Settings.get(:max_trace_size)
      10000
      iex> DSPex.with_settings([max_trace_size: 5], fn -> DSPex.Settings.get(:max_trace_size) end)
      5
      iex> DSPex.Settings.get(:no_such_key, :fallback)
      :fallback
  """

  @global_key {__MODULE__, :global}
  @local_key :"$dspex_settings"

  @schema DSPex.Options.schema!(
            lm: [
              type: {:or, [:struct, :atom, nil]},
              default: nil,
              doc:
                "The default LM of every predictor without its own (an LM, or the name of one in `config :dspex, lms:`)."
            ],
            adapter: [
              type: {:or, [:module, nil]},
              default: nil,
              doc: "The default adapter (`nil`: `DSPex.Adapter.Chat`)."
            ],
            track_usage: [
              type: :boolean,
              default: false,
              doc: "Attach usage to every top-level prediction."
            ],
            max_history_size: [
              type: :non_neg_integer,
              default: 10_000,
              doc: "Most entries of the call history (`DSPex.LM.History`)."
            ],
            max_history_bytes: [
              type: :non_neg_integer,
              default: 64 * 1024 * 1024,
              doc: "Most bytes the call history holds (64 MiB)."
            ],
            disable_history: [
              type: :boolean,
              default: false,
              doc: "Stop recording the call history."
            ],
            max_trace_size: [type: :non_neg_integer, default: 10_000, doc: "Cap on one trace."],
            num_threads: [type: :pos_integer, default: 8, doc: "`DSPex.Parallel` concurrency."],
            max_errors: [
              type: :non_neg_integer,
              default: 10,
              doc: "`DSPex.Parallel` error budget."
            ],
            lm_params: [
              type: {:or, [:map, :keyword]},
              default: %{},
              doc: "Request params merged *under* each predictor's config."
            ],
            stream_to: [
              type: {:or, [:pid, nil]},
              default: nil,
              doc:
                "Streaming sink, set by `DSPex.stream/3`: receives `{:dspex_stream, ref, predictor, event}`."
            ],
            stream_ref: [type: :any, default: nil, doc: "The `ref` of those messages."],
            usage_trackers: [
              type: {:list, :pid},
              doc: "The open `DSPex.track_usage/1` scopes (set by `DSPex.Usage`)."
            ]
          )

  @defaults for {k, spec} <- @schema,
                Keyword.has_key?(spec, :default),
                into: %{},
                do: {k, spec[:default]}

  @typedoc "Opaque snapshot of the caller's overrides, from `capture/0`."
  @type snapshot :: map

  @doc """
  The built-in defaults.

  ## Examples

      iex> DSPex.Settings.defaults().max_history_size
      10000
  """
  @spec defaults() :: map
  def defaults, do: @defaults

  @doc """
  The settings schema (`DSPex.Options`):

  #{DSPex.Options.docs(@schema)}

  ## Examples

      iex> :lm in DSPex.Options.keys(DSPex.Settings.schema())
      true
  """
  @spec schema() :: DSPex.Options.schema()
  def schema, do: @schema

  # Only the given keys: the defaults are read through get/2, never stored.
  defp validate!(opts, context) do
    given = Enum.map(opts, fn {k, _} -> k end)
    opts |> DSPex.Options.validate!(@schema, context) |> Keyword.take(given)
  end

  @doc """
  Reads `key`: process override first, then global setting, then built-in default, then
  `default`.

  ## Examples

      iex> DSPex.Settings.get(:num_threads)
      8
  """
  @spec get(atom, term) :: term
  def get(key, default \\ nil) when is_atom(key) do
    local = Process.get(@local_key, %{})

    case local do
      %{^key => v} ->
        v

      _ ->
        case :persistent_term.get(@global_key, %{}) do
          %{^key => v} -> v
          _ -> default_for(key, default)
        end
    end
  end

  defp default_for(key, default) do
    case Map.get(@defaults, key) do
      nil -> default
      v -> v
    end
  end

  @doc """
  Returns all effective settings (defaults, global, then process overrides) as a map.

  ## Examples

      iex> is_map(DSPex.Settings.all())
      true
  """
  @spec all() :: map
  def all do
    @defaults
    |> Map.merge(:persistent_term.get(@global_key, %{}))
    |> Map.merge(Process.get(@local_key, %{}))
  end

  @doc """
  Sets global settings (merged into the current ones). Prefer `DSPex.configure/1`.
  Raises `ArgumentError` for a key or value the schema (`schema/0`) does not allow.

  ## Examples

      iex> DSPex.Settings.configure(num_threads: 8)
      :ok
  """
  @spec configure(keyword | map) :: :ok
  def configure(opts) when is_list(opts) or is_map(opts) do
    opts = validate!(opts, "DSPex.configure/1")
    current = :persistent_term.get(@global_key, %{})
    :persistent_term.put(@global_key, Map.merge(current, Map.new(opts)))
    :ok
  end

  @doc """
  Drops every global setting (back to defaults). Mostly for tests.

  ## Examples

      iex> DSPex.Settings.reset_global()
      :ok
  """
  @spec reset_global() :: :ok
  def reset_global do
    :persistent_term.erase(@global_key)
    :ok
  end

  @doc """
  Runs `fun` with `opts` overriding settings for this process (and for tasks DSPex
  starts from it); restores the previous overrides afterwards, even on raise.

  ## Examples

      iex> DSPex.Settings.with_settings([num_threads: 2], fn -> DSPex.Settings.get(:num_threads) end)
      2
  """
  @spec with_settings(keyword | map, (() -> result)) :: result when result: term
  def with_settings(opts, fun) when (is_list(opts) or is_map(opts)) and is_function(fun, 0) do
    opts = validate!(opts, "DSPex.with_settings/2")
    previous = Process.get(@local_key)
    Process.put(@local_key, Map.merge(previous || %{}, Map.new(opts)))

    try do
      fun.()
    after
      if previous, do: Process.put(@local_key, previous), else: Process.delete(@local_key)
    end
  end

  @doc """
  Captures the calling process's overrides (and active trace/usage scopes are *not*
  included — those are per process).

  ## Examples

      iex> DSPex.Settings.with_settings([num_threads: 3], fn -> DSPex.Settings.capture() end)
      %{num_threads: 3}
  """
  @spec capture() :: snapshot
  def capture, do: Process.get(@local_key, %{})

  @doc """
  Installs a snapshot from `capture/0` as this process's overrides.

  ## Examples

      iex> snap = %{num_threads: 4}
      iex> Task.async(fn -> DSPex.Settings.restore(snap); DSPex.Settings.get(:num_threads) end) |> Task.await()
      4
  """
  @spec restore(snapshot) :: :ok
  def restore(snapshot) when is_map(snapshot) do
    if map_size(snapshot) == 0,
      do: Process.delete(@local_key),
      else: Process.put(@local_key, snapshot)

    :ok
  end

  @doc """
  `Task.async/1` that carries the caller's settings overrides into the task.

  ## Examples

      iex> DSPex.with_settings([num_threads: 5], fn ->
      ...>   DSPex.Settings.async(fn -> DSPex.Settings.get(:num_threads) end) |> Task.await()
      ...> end)
      5
  """
  @spec async((() -> term)) :: Task.t()
  def async(fun) when is_function(fun, 0) do
    snap = capture()

    Task.async(fn ->
      restore(snap)
      fun.()
    end)
  end

  @doc """
  `Task.async_stream/3` that carries the caller's settings overrides into each task.

  ## Examples

      iex> DSPex.with_settings([num_threads: 6], fn ->
      ...>   DSPex.Settings.async_stream([1, 2], fn x -> x * DSPex.Settings.get(:num_threads) end)
      ...>   |> Enum.to_list()
      ...> end)
      [ok: 6, ok: 12]
  """
  @spec async_stream(Enumerable.t(), (term -> term), keyword) :: Enumerable.t()
  def async_stream(enumerable, fun, opts \\ []) when is_function(fun, 1) do
    snap = capture()

    Task.async_stream(
      enumerable,
      fn x ->
        restore(snap)
        fun.(x)
      end,
      opts
    )
  end
end
