defmodule DSPex.Evaluate.Nodes do
  @moduledoc """
  The nodes an evaluation runs on, and the check that they can run it.

  On another node, examples run as tasks under that node's
  `DSPex.Evaluate.TaskSupervisor` (a child of the DSPex application, so every node with
  DSPex started has one); on the coordinator's own node they are its linked tasks. A task
  receives the program and metric as terms; Erlang distribution copies data but not
  code, so the modules they need must already be loaded — or loadable from the code
  path — on every node, **in the same version**:

    * the program's struct module (its `forward/2`);
    * the metric: for a capture `&Mod.fun/2` the module must export `fun/2`; an
      anonymous function only runs where the module that defined it is loaded with the
      same MD5, so define metrics in compiled modules (`lib/`, `test/support/`), not in
      `.exs` scripts or test files, when you pass `nodes:`.

  `check/3` asks every remote node once, before anything runs, and returns an error
  naming the node and the module when something is missing.

  ## Examples

      iex> DSPex.Evaluate.Nodes.check([node()], [], 1_000)
      :ok
  """

  alias DSPex.Error

  @supervisor DSPex.Evaluate.TaskSupervisor

  @type requirement :: {:module, module, binary | :any} | {:function, module, atom, arity}

  @doc """
  The name of the per-node task supervisor.

  ## Examples

      iex> DSPex.Evaluate.Nodes.supervisor()
      DSPex.Evaluate.TaskSupervisor
  """
  @spec supervisor() :: atom
  def supervisor, do: @supervisor

  @doc """
  The code a run of `program` with `metric` (a `DSPex.Evaluate.Metric`) needs on every
  node.

  ## Examples

      iex> qa = DSPex.Predict.new("question -> answer")
      iex> [{:module, DSPex.Predict, md5}] = DSPex.Evaluate.Nodes.requirements(qa, nil)
      iex> is_binary(md5)
      true
  """
  @spec requirements(struct, DSPex.Evaluate.Metric.t() | nil) :: [requirement]
  def requirements(%mod{}, metric) do
    program = [{:module, mod, md5(mod)}]

    metric_reqs =
      case metric do
        %{fun: fun} when is_function(fun) ->
          info = Function.info(fun)

          if info[:type] == :external,
            do: [{:function, info[:module], info[:name], info[:arity]}],
            else: [{:module, info[:module], md5(info[:module])}]

        _ ->
          []
      end

    Enum.uniq(program ++ metric_reqs)
  end

  defp md5(mod) do
    if Code.ensure_loaded?(mod), do: mod.module_info(:md5), else: :any
  end

  @doc """
  Checks that every node is reachable, runs DSPex (its task supervisor is up) and has
  the code in `requirements`. Returns `:ok` or `{:error, %DSPex.Error{type:
  :node_unavailable}}` whose `details.problems` lists `{node, problem}`.
  """
  @spec check([node], [requirement], timeout) :: :ok | {:error, Error.t()}
  def check(nodes, requirements, timeout) do
    problems =
      nodes
      |> Enum.map(fn n -> {n, probe_node(n, requirements, timeout)} end)
      |> Enum.flat_map(fn {n, ps} -> Enum.map(ps, &{n, &1}) end)

    case problems do
      [] ->
        :ok

      _ ->
        {:error,
         Error.new(
           :node_unavailable,
           "cannot run the evaluation on every node: " <>
             Enum.map_join(problems, "; ", fn {n, p} -> "#{n}: #{describe(p)}" end),
           %{problems: problems}
         )}
    end
  end

  # The coordinator's own node starts its tasks itself: no supervisor needed there.
  defp probe_node(node, reqs, _timeout) when node == node(), do: probe_code(reqs)

  defp probe_node(node, reqs, timeout) do
    :erpc.call(node, __MODULE__, :probe, [reqs], timeout)
  catch
    :error, {:erpc, reason} -> [{:unreachable, reason}]
    :error, {:exception, :undef, _} -> [:no_dspex]
    kind, reason -> [{:unreachable, {kind, reason}}]
  end

  @doc false
  # Runs on the (remote) node being checked.
  @spec probe([requirement]) :: [term]
  def probe(reqs) do
    sup = if Process.whereis(@supervisor), do: [], else: [:not_started]
    sup ++ probe_code(reqs)
  end

  defp probe_code(reqs) do
    Enum.flat_map(reqs, fn
      {:module, mod, want} ->
        cond do
          not Code.ensure_loaded?(mod) -> [{:missing, mod}]
          want != :any and mod.module_info(:md5) != want -> [{:different_version, mod}]
          true -> []
        end

      {:function, mod, fun, arity} ->
        if Code.ensure_loaded?(mod) and function_exported?(mod, fun, arity),
          do: [],
          else: [{:missing, {mod, fun, arity}}]
    end)
  end

  defp describe(:not_started), do: "the :dspex application is not started"
  defp describe(:no_dspex), do: "DSPex is not loaded"
  defp describe({:unreachable, reason}), do: "unreachable (#{inspect(reason)})"
  defp describe({:missing, {m, f, a}}), do: "#{inspect(m)}.#{f}/#{a} is not available"

  defp describe({:missing, mod}),
    do: "module #{inspect(mod)} is not available (define it in compiled code on every node)"

  defp describe({:different_version, mod}),
    do: "module #{inspect(mod)} differs from this node's version"
end
