defmodule DSPex.Optimize.PeerTest do
  # kill -9 of a whole VM in the middle of an optimizer job (a :peer node running
  # MIPROv2), then DSPex.Optimize.resume/4 of its journal from this VM: the result is the
  # one real DSPy computes for the same run (test/fixtures/mipro/traces.json).
  use ExUnit.Case, async: false

  alias DSPex.Test.{Cluster, OptimizeSupport}

  @moduletag :tmp_dir
  @moduletag timeout: 300_000
  @moduletag capture_log: true

  test "a VM killed mid-run: resume finishes with DSPy's best program", %{tmp_dir: dir} do
    run = OptimizeSupport.mipro_run("light_predict_seed9")
    journal = Path.join(dir, "vm.journal")
    {peer, node} = Cluster.start_peer!()

    {:ok, job} =
      :erpc.call(node, OptimizeSupport, :start_mipro, [
        "light_predict_seed9",
        [journal: journal, max_concurrency: 1]
      ])

    # wait until the search is under way (5 trials told), then kill the VM with the job
    wait_for(fn -> :erpc.call(node, DSPex.Optimize, :status, [job]).trial >= 5 end)
    os_pid = :erpc.call(node, :os, :getpid, []) |> List.to_string()
    Node.monitor(node, true)
    {_, 0} = System.cmd("kill", ["-9", os_pid])
    assert_receive {:nodedown, ^node}, 30_000
    Cluster.stop_peer(peer)

    # its port sees stdin close and exits, releasing the journal's lock
    opts = OptimizeSupport.mipro_opts(run, [])
    {:ok, job} = resume_when_free(journal, run, opts)
    {:ok, result} = DSPex.Optimize.await(job, 120_000)
    assert result.status == :finished
    # the proposals and at least 5 trials came from the journal, not from new LM calls
    assert DSPex.LM.Scripted.requests(opts[:prompt_model]) == []
    assert length(DSPex.LM.Scripted.requests(opts[:task_model])) <= run["task_calls"] - 200

    trials =
      for l <- result.trial_logs,
          do: %{
            "number" => l.number,
            "kind" => Atom.to_string(l.kind),
            "params" => l.params,
            "examples" => if(l.examples == :all, do: nil, else: l.examples),
            "score" => l.score
          }

    assert trials == run["trials"]
    {:ordered, pairs} = DSPex.Program.dump_state(result.program)

    state =
      pairs
      |> Enum.reject(&(elem(&1, 0) == "metadata"))
      |> then(&{:ordered, &1})
      |> DSPex.JSON.encode!()
      |> DSPex.JSON.decode!()

    assert state == run["best_program"]
    assert result.score == run["best_score"]
  end

  defp resume_when_free(journal, run, opts, tries \\ 100) do
    program = OptimizeSupport.program("predict")

    case DSPex.Optimize.resume(journal, program, OptimizeSupport.trainset(run), opts) do
      {:error, %DSPex.Error{type: :busy}} when tries > 0 ->
        Process.sleep(50)
        resume_when_free(journal, run, opts, tries - 1)

      other ->
        other
    end
  end

  defp wait_for(fun, tries \\ 600) do
    cond do
      fun.() -> :ok
      tries == 0 -> flunk("the peer's job did not get going")
      true -> Process.sleep(50) && wait_for(fun, tries - 1)
    end
  end
end
