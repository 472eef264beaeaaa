defmodule DSPex.Test.Cluster do
  @moduledoc """
  Peer nodes for tests of distributed work (`DSPex.Evaluate`'s `nodes:`), under plain
  `mix test`.

  `ensure_distributed!/0` turns the test VM into a distributed node
  (`dspex_test_<n>@127.0.0.1`, long names), starting `epmd` first when it is not
  running. `start_peer!/0` boots a node with `:peer` (OTP 25) on the same host, with the
  test VM's code path (so it loads the same compiled DSPex, test support modules
  included) and the `:dspex` application started — its own port pool and LM cache.
  Peers are not linked to the caller: a test may halt one on purpose.
  """

  @doc "Makes this VM a distributed node (idempotent)."
  def ensure_distributed! do
    unless Node.alive?() do
      epmd = System.find_executable("epmd") || raise "epmd not found: cannot start distribution"
      {_, 0} = System.cmd(epmd, ["-daemon"])
      name = :"dspex_test_#{System.unique_integer([:positive])}@127.0.0.1"
      start_net_kernel!(name, 50)
    end

    :ok
  end

  # `epmd -daemon` returns before it listens: retry for up to 5 s.
  defp start_net_kernel!(name, tries) do
    case :net_kernel.start([name, :longnames]) do
      {:ok, _} ->
        :ok

      {:error, {:already_started, _}} ->
        :ok

      {:error, reason} when tries > 0 ->
        _ = reason
        Process.sleep(100)
        start_net_kernel!(name, tries - 1)

      {:error, reason} ->
        raise "cannot start distribution: #{inspect(reason)}"
    end
  end

  @doc "Boots a peer node running DSPex; returns `{peer_pid, node}`."
  def start_peer! do
    ensure_distributed!()
    paths = Enum.flat_map(:code.get_path(), &[~c"-pa", &1])

    {:ok, peer, node} =
      :peer.start(%{
        name: :peer.random_name(~c"dspex_peer"),
        host: ~c"127.0.0.1",
        longnames: true,
        args: paths,
        wait_boot: 60_000
      })

    for {app, env} <- [dspex: Application.get_all_env(:dspex)], {k, v} <- env do
      :ok = :erpc.call(node, Application, :put_env, [app, k, v])
    end

    {:ok, _} = :erpc.call(node, Application, :ensure_all_started, [:dspex], 60_000)
    :ok = :erpc.call(node, Logger, :configure, [[level: :error]])
    {peer, node}
  end

  @doc "Stops a peer (no error when it is already gone)."
  def stop_peer(peer) do
    :peer.stop(peer)
  catch
    _, _ -> :ok
  end
end
