defmodule DSPex.Telemetry.Owner do
  @moduledoc false
  # Owns the ETS table of DSPex telemetry handlers so it outlives the processes that
  # attach handlers. Started by DSPex.Application; started on demand otherwise.
  use GenServer

  def start_link(_opts \\ []), do: GenServer.start_link(__MODULE__, :ok, name: __MODULE__)

  def ensure_started do
    case Process.whereis(__MODULE__) do
      nil ->
        case GenServer.start(__MODULE__, :ok, name: __MODULE__) do
          {:ok, _} -> :ok
          {:error, {:already_started, _}} -> :ok
        end

      _ ->
        :ok
    end
  end

  @impl true
  def init(:ok) do
    if :ets.whereis(DSPex.Telemetry.table()) == :undefined do
      :ets.new(DSPex.Telemetry.table(), [
        :duplicate_bag,
        :public,
        :named_table,
        read_concurrency: true
      ])
    end

    {:ok, nil}
  end
end
