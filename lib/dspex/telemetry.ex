defmodule DSPex.Telemetry do
  @moduledoc """
  `[:dspex, ...]` telemetry events, shaped exactly like `:telemetry`'s.

  DSPex cannot depend on the `:telemetry` package (no Hex here), so it ships a small
  dispatcher with the same contract and, when the host application has `:telemetry`
  started, forwards every event to `:telemetry.execute/3` as well. Handlers attached
  with `:telemetry.attach/4` therefore see DSPex events with no extra setup.

  `span/3` follows `:telemetry.span/3` to the letter:

    * `prefix ++ [:start]` with `%{monotonic_time, system_time}`;
    * `prefix ++ [:stop]` with `%{duration, monotonic_time}` (plus extra measurements
      the function returns), in native time units;
    * `prefix ++ [:exception]` with `%{duration, monotonic_time}` and the start metadata
      plus `kind`, `reason`, `stacktrace`; the exception is then re-raised;
    * every event's metadata carries `telemetry_span_context`.

  A handler that raises is detached (as `:telemetry` does) so instrumentation never
  breaks the caller.

  ## Examples

      iex> DSPex.Telemetry.span([:dspex, :doc, :example], %{}, fn -> {:done, %{}} end)
      :done
  """

  require Logger

  @table :dspex_telemetry_handlers
  # How many DSPex handlers are attached (an integer, so updating it never triggers the
  # global GC a changed persistent term can). With none, and no `:telemetry` running,
  # spans only run their function: adapters and metrics emit spans on every call, and
  # building events nobody receives cost ~40% of a format+parse.
  @count_key {__MODULE__, :handler_count}

  @type event_name :: [atom, ...]
  @type handler_fun :: (event_name, map, map, term -> any)

  @doc false
  def table, do: @table

  @doc """
  Attaches `fun` under `handler_id` to one event. Returns `:ok` or
  `{:error, :already_exists}`.

  ## Examples

      iex> :ok = DSPex.Telemetry.attach("doc-attach", [:dspex, :doc], fn _, _, _, _ -> :ok end, nil)
      iex> DSPex.Telemetry.detach("doc-attach")
      :ok
  """
  @spec attach(term, event_name, handler_fun, term) :: :ok | {:error, :already_exists}
  def attach(handler_id, event, fun, config), do: attach_many(handler_id, [event], fun, config)

  @doc """
  Attaches `fun` under `handler_id` to several events.

  ## Examples

      iex> :ok = DSPex.Telemetry.attach_many("doc-many", [[:dspex, :a], [:dspex, :b]], fn _, _, _, _ -> :ok end, nil)
      iex> DSPex.Telemetry.detach("doc-many")
      :ok
  """
  @spec attach_many(term, [event_name], handler_fun, term) :: :ok | {:error, :already_exists}
  def attach_many(handler_id, events, fun, config) when is_function(fun, 4) and is_list(events) do
    ensure_table()

    if :ets.match_object(@table, {:_, handler_id, :_, :_}) != [] do
      {:error, :already_exists}
    else
      :ets.insert(@table, for(e <- events, do: {e, handler_id, fun, config}))
      recount()
    end
  end

  @doc """
  Detaches the handler `handler_id`. Returns `:ok` or `{:error, :not_found}`.

  ## Examples

      iex> DSPex.Telemetry.detach("never-attached")
      {:error, :not_found}
  """
  @spec detach(term) :: :ok | {:error, :not_found}
  def detach(handler_id) do
    ensure_table()

    case :ets.match_object(@table, {:_, handler_id, :_, :_}) do
      [] ->
        {:error, :not_found}

      _ ->
        :ets.match_delete(@table, {:_, handler_id, :_, :_})
        recount()
    end
  end

  @doc """
  Emits one event to DSPex handlers and, when present, to `:telemetry`.

  ## Examples

      iex> DSPex.Telemetry.execute([:dspex, :doc, :ping], %{count: 1}, %{})
      :ok
  """
  @spec execute(event_name, map, map) :: :ok
  def execute(event, measurements, metadata) when is_map(measurements) and is_map(metadata) do
    if :ets.whereis(@table) != :undefined do
      for {_, id, fun, config} <- :ets.lookup(@table, event) do
        try do
          fun.(event, measurements, metadata, config)
        catch
          kind, reason ->
            Logger.error(
              "DSPex telemetry handler #{inspect(id)} failed on #{inspect(event)} and was detached: " <>
                Exception.format(kind, reason, __STACKTRACE__)
            )

            detach(id)
        end
      end
    end

    forward(event, measurements, metadata)
    :ok
  end

  defp recount do
    :persistent_term.put(@count_key, :ets.info(@table, :size))
    :ok
  end

  # Whether any handler could see an event: a DSPex handler, or `:telemetry` running.
  @doc """
  Whether any handler can see an event: a `DSPex.Telemetry` handler is attached or the
  `:telemetry` application runs. Callers use it to skip building metadata nobody reads.

  ## Examples

      iex> is_boolean(DSPex.Telemetry.enabled?())
      true
  """
  @spec enabled?() :: boolean
  def enabled?, do: listening?()

  defp listening? do
    :persistent_term.get(@count_key, 0) > 0 or Process.whereis(:telemetry_handler_table) != nil
  end

  @compile {:no_warn_undefined, :telemetry}
  # Forward only when the :telemetry application is running: a loaded but unstarted
  # telemetry <= 1.3 logs an error on every execute.
  defp forward(event, measurements, metadata) do
    if Process.whereis(:telemetry_handler_table) do
      try do
        :telemetry.execute(event, measurements, metadata)
      catch
        _, _ -> :ok
      end
    end

    :ok
  end

  @doc """
  Runs `fun` inside a span, exactly like `:telemetry.span/3`.

  `fun` returns `{result, stop_metadata}` or `{result, extra_measurements, stop_metadata}`;
  `span/3` returns `result`.

  ## Examples

      iex> DSPex.Telemetry.span([:dspex, :doc], %{id: 1}, fn -> {42, %{id: 1}} end)
      42
  """
  @spec span(event_name, map, (() -> {term, map} | {term, map, map})) :: term
  def span(prefix, start_metadata, fun) when is_list(prefix) and is_map(start_metadata) do
    if listening?(), do: emit_span(prefix, start_metadata, fun), else: silent_span(fun)
  end

  defp silent_span(fun) do
    case fun.() do
      {result, stop_metadata} when is_map(stop_metadata) -> result
      {result, extra, stop_metadata} when is_map(extra) and is_map(stop_metadata) -> result
    end
  end

  defp emit_span(prefix, start_metadata, fun) do
    start_time = System.monotonic_time()
    ctx = make_ref()
    start_metadata = Map.put_new(start_metadata, :telemetry_span_context, ctx)

    execute(
      prefix ++ [:start],
      %{monotonic_time: start_time, system_time: System.system_time()},
      start_metadata
    )

    try do
      fun.()
    catch
      kind, reason ->
        stop_time = System.monotonic_time()

        execute(
          prefix ++ [:exception],
          %{duration: stop_time - start_time, monotonic_time: stop_time},
          Map.merge(start_metadata, %{kind: kind, reason: reason, stacktrace: __STACKTRACE__})
        )

        :erlang.raise(kind, reason, __STACKTRACE__)
    else
      {result, stop_metadata} ->
        stop(prefix, start_time, %{}, stop_metadata, ctx)
        result

      {result, extra, stop_metadata} when is_map(extra) ->
        stop(prefix, start_time, extra, stop_metadata, ctx)
        result
    end
  end

  defp stop(prefix, start_time, extra, stop_metadata, ctx) do
    stop_time = System.monotonic_time()

    execute(
      prefix ++ [:stop],
      Map.merge(extra, %{duration: stop_time - start_time, monotonic_time: stop_time}),
      Map.put_new(stop_metadata, :telemetry_span_context, ctx)
    )
  end

  @doc false
  # The owner of the handler table (a DSPex.TableOwner, started by DSPex.Application).
  def table_owner do
    [
      name: DSPex.Telemetry.Owner,
      tables: [{@table, [:duplicate_bag, read_concurrency: true]}]
    ]
  end

  @doc false
  # The handler table is owned by a process under the application; if the application
  # is not started (e.g. a bare `mix run --no-start`), the first caller starts that owner.
  def ensure_table do
    if :ets.whereis(@table) == :undefined do
      DSPex.TableOwner.ensure_started(table_owner())
    end

    :ok
  end
end
