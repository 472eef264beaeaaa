defmodule DSPex.TableOwner do
  @moduledoc false
  # A process whose only job is to own public named ETS tables, so the tables outlive
  # the processes that use them. DSPex.Application starts one for the telemetry handler
  # table (`DSPex.Telemetry.table_owner/0`) and one for the LM history
  # (`DSPex.LM.History.table_owner/0`); without the application (`mix run --no-start`)
  # the first user starts it on demand with `ensure_started/1`.
  #
  # `start_once/3` and `create_tables/1` also serve owners with more to do
  # (DSPex.LM.Cache.Store).
  use GenServer

  @typedoc "`name:` (the registered name) and `tables:` (`[{table_name, ets_options}]`)."
  @type spec :: [name: atom, tables: [{atom, list}]]

  @spec start_link(spec) :: GenServer.on_start()
  def start_link(spec),
    do: GenServer.start_link(__MODULE__, Keyword.fetch!(spec, :tables), name: spec[:name])

  @spec child_spec(spec) :: Supervisor.child_spec()
  def child_spec(spec),
    do: %{id: Keyword.fetch!(spec, :name), start: {__MODULE__, :start_link, [spec]}}

  @doc "Starts the owner described by `spec` unless it runs already. Returns `:ok`."
  @spec ensure_started(spec) :: :ok
  def ensure_started(spec), do: start_once(__MODULE__, Keyword.fetch!(spec, :tables), spec[:name])

  @doc """
  Starts `module` (a GenServer) unlinked under `name` with `arg` unless a process holds
  that name; a concurrent start that lost the race is fine. Returns `:ok`.
  """
  @spec start_once(module, term, atom) :: :ok
  def start_once(module, arg, name) do
    case Process.whereis(name) do
      nil ->
        case GenServer.start(module, arg, name: name) do
          {:ok, _} -> :ok
          {:error, {:already_started, _}} -> :ok
        end

      _ ->
        :ok
    end
  end

  @doc "Creates each public named table of `tables` that does not exist yet."
  @spec create_tables([{atom, list}]) :: :ok
  def create_tables(tables) do
    for {name, opts} <- tables, :ets.whereis(name) == :undefined do
      :ets.new(name, [:public, :named_table | opts])
    end

    :ok
  end

  @impl true
  def init(tables) do
    create_tables(tables)
    {:ok, nil}
  end
end
