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
