defmodule DSPex.Application do
  @moduledoc false
  use Application

  @impl true
  def start(_type, _args) do
    children = [
      DSPex.Telemetry.Owner
    ]

    Supervisor.start_link(children, strategy: :one_for_one, name: DSPex.Supervisor)
  end
end
