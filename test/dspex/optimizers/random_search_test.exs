defmodule DSPex.Optimizers.BootstrapFewShotWithRandomSearchTest do
  use ExUnit.Case, async: true

  alias DSPex.Optimizers.BootstrapFewShotWithRandomSearch, as: RS
  alias DSPex.Test.OptimizerWorld, as: World

  doctest RS

  @cases World.fixture!("random_search.json")["cases"]

  defp run_case(world, c, extra \\ []) do
    opts =
      [
        metric: World.metric(c["metric"], world),
        metric_threshold: c["metric_threshold"],
        valset: c["valset"] && World.examples(world, c["valset"]),
        max_bootstrapped_demos: c["max_bootstrapped_demos"],
        max_labeled_demos: c["max_labeled_demos"],
        max_rounds: c["max_rounds"],
        num_candidate_programs: c["num_candidate_programs"],
        stop_at_score: c["stop_at_score"],
        restrict: c["restrict"],
        labeled_sample: Map.get(c, "labeled_sample", true),
        max_concurrency: 4
      ]
      |> Keyword.merge(extra)

    ExUnit.CaptureLog.with_log(fn ->
      DSPex.with_settings([lm: World.lm(world)], fn ->
        RS.run(World.program(c["shape"]), World.examples(world, c["trainset"]), opts)
      end)
    end)
    |> elem(0)
  end

  test "finds the candidates and scores DSPy 3.3.1 finds (#{length(@cases)} golden cases)" do
    world = World.world()

    for c <- @cases do
      label = "case #{inspect(Map.delete(c, "candidates"))}"
      assert {:ok, r} = run_case(world, c), label

      got =
        for cand <- r.candidates do
          %{
            seed: cand.seed,
            score: cand.score,
            subscores: cand.subscores,
            demos: World.demos_of(cand.program)
          }
        end

      want =
        for cand <- c["candidates"] do
          %{
            seed: cand["seed"],
            score: cand["score"],
            subscores: cand["subscores"],
            demos: World.demos(cand["demos"])
          }
        end

      assert got == want, label
      best = Enum.find(c["candidates"], &(&1["seed"] == c["best_seed"]))
      assert r.score == best["score"], label
      assert World.demos_of(r.program) == World.demos(best["demos"]), label
    end
  end

  test "restrict must name at least one seed" do
    world = World.world()
    c = hd(@cases)

    assert_raise ArgumentError, ~r/does not match any candidate seed/, fn ->
      run_case(world, c, restrict: [99])
    end
  end
end

defmodule DSPex.Optimizers.BootstrapFewShotWithRandomSearchNodesTest do
  # Candidate evaluations spread over Erlang nodes (Evaluate's nodes:), same result.
  use ExUnit.Case, async: false

  alias DSPex.Optimizers.BootstrapFewShotWithRandomSearch, as: RS
  alias DSPex.Test.{Cluster, OptimizerWorld}

  @moduletag timeout: 180_000

  test "nodes: gives the same candidates as one node, and examples ran on the peer" do
    {peer, peer_node} = Cluster.start_peer!()
    on_exit(fn -> Cluster.stop_peer(peer) end)

    world = OptimizerWorld.world()
    [c | _] = OptimizerWorld.fixture!("random_search.json")["cases"]
    ref = make_ref()
    me = self()

    :ok =
      DSPex.Telemetry.attach(
        ref,
        [:dspex, :evaluate, :example],
        fn _, _, meta, _ ->
          send(me, {ref, meta.node})
        end,
        nil
      )

    on_exit(fn -> DSPex.Telemetry.detach(ref) end)

    run = fn nodes ->
      ExUnit.CaptureLog.with_log(fn ->
        DSPex.with_settings([lm: OptimizerWorld.lm(world)], fn ->
          RS.run(
            OptimizerWorld.program(c["shape"]),
            OptimizerWorld.examples(world, c["trainset"]),
            metric: OptimizerWorld.metric(c["metric"], world),
            valset: OptimizerWorld.examples(world, c["valset"]),
            max_bootstrapped_demos: c["max_bootstrapped_demos"],
            max_labeled_demos: c["max_labeled_demos"],
            num_candidate_programs: c["num_candidate_programs"],
            max_concurrency: 2,
            nodes: nodes
          )
        end)
      end)
      |> elem(0)
    end

    {:ok, spread} = run.([node(), peer_node])
    nodes_seen = collect(ref, MapSet.new())
    {:ok, local} = run.(nil)

    strip = fn r -> Enum.map(r.candidates, &Map.take(&1, [:seed, :score, :subscores])) end
    assert strip.(spread) == strip.(local)
    assert Enum.map(spread.candidates, & &1.program) == Enum.map(local.candidates, & &1.program)
    assert MapSet.member?(nodes_seen, peer_node)
    assert Enum.map(spread.candidates, & &1.score) == Enum.map(c["candidates"], & &1["score"])
  end

  defp collect(ref, acc) do
    receive do
      {^ref, node} -> collect(ref, MapSet.put(acc, node))
    after
      0 -> acc
    end
  end
end
