defmodule DSPex.Application do
  @moduledoc false
  use Application

  @impl true
  def start(_type, _args) do
    children = [
      {DSPex.TableOwner, DSPex.Telemetry.table_owner()},
      DSPex.CircuitBreaker,
      {DSPex.Pool, Keyword.put(Application.get_env(:dspex, :pool, []), :name, DSPex.Pool)},
      {DSPex.TableOwner, DSPex.LM.History.table_owner()},
      # Runs DSPex.Evaluate's examples on this node, for local and remote callers.
      {Task.Supervisor, name: DSPex.Evaluate.TaskSupervisor},
      # Runs each tool call in its own task (DSPex.Tool.call/3).
      {Task.Supervisor, name: DSPex.Tools.TaskSupervisor},
      # Optimizer jobs (DSPex.Optimize.start/4): one DSPex.Optimize.Job each.
      {DynamicSupervisor, name: DSPex.Optimize.Supervisor, strategy: :one_for_one}
    ]

    Supervisor.start_link(children, strategy: :one_for_one, name: DSPex.Supervisor)
  end
end
