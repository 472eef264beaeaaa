defmodule DSPex.Optimizers.BootstrapFewShotTest do
  use ExUnit.Case, async: true

  alias DSPex.Optimizers.BootstrapFewShot
  alias DSPex.Test.OptimizerWorld, as: World

  doctest BootstrapFewShot

  @cases World.fixture!("bootstrap.json")["cases"]

  # Runs one fixture scenario the way the generator ran it in DSPy.
  defp run_case(world, c) do
    lm = World.lm(world)
    smart = World.lm(world, true)
    trainset = World.examples(world, c["trainset"])

    teacher =
      case c["teacher"] do
        nil ->
          nil

        "fresh" ->
          World.program(c["shape"])

        "compiled" ->
          DSPex.with_settings([lm: World.lm(world, true)], fn ->
            BootstrapFewShot.compile!(World.program(c["shape"]), trainset,
              metric: World.metric("exact", world),
              max_bootstrapped_demos: 2,
              max_labeled_demos: 3
            )
          end)
      end

    opts = [
      metric: World.metric(c["metric"], world),
      metric_threshold: c["metric_threshold"],
      teacher: teacher,
      teacher_settings: if(c["teacher_lm"] == "smart", do: [lm: smart], else: []),
      max_bootstrapped_demos: c["max_bootstrapped_demos"],
      max_labeled_demos: c["max_labeled_demos"],
      max_rounds: c["max_rounds"],
      max_errors: c["max_errors"]
    ]

    result =
      ExUnit.CaptureLog.with_log(fn ->
        DSPex.with_settings([lm: lm], fn ->
          BootstrapFewShot.run(World.program(c["shape"]), trainset, opts)
        end)
      end)
      |> elem(0)

    {result, trainset, teacher, World.call_log(world, [lm, smart])}
  end

  test "bootstraps what DSPy 3.3.1 bootstraps (#{length(@cases)} golden cases)" do
    world = World.world()

    for c <- @cases do
      {result, trainset, teacher, calls} = run_case(world, c)

      label =
        "case #{inspect(Map.take(c, ~w(shape metric max_bootstrapped_demos max_labeled_demos max_rounds max_errors teacher teacher_lm)))}"

      assert calls == c["lm_calls"], label <> ": LM calls"

      case c["raised"] do
        nil ->
          assert {:ok, r} = result, label
          assert World.demos_of(r.program) == World.demos(c["demos"]), label <> ": demos"

          assert World.saved_key_order(r.program) ==
                   Map.new(c["demos"], fn {n, ds} ->
                     {n, Enum.map(ds, fn d -> Enum.map(d, &hd/1) end)}
                   end),
                 label <> ": saved key order"

          assert length(r.bootstrapped) == c["bootstrapped"], label
          assert r.example_index == c["example_index"], label
          assert r.attempts == c["attempts"], label
          assert r.error_count == c["error_count"], label
          assert r.traces == World.demos(c["traces"]), label <> ": traces"

          assert r.validation == Enum.map(c["validation"], &Enum.at(trainset, &1)),
                 label <> ": validation"

          if c["teacher_demos"] do
            assert World.demos_of(teacher) == World.demos(c["teacher_demos"]), label
          end

        _raised ->
          assert {:error, %DSPex.Error{type: :too_many_errors, details: d}} = result, label
          assert d.errors == c["error_count"], label
      end
    end
  end
end

defmodule DSPex.Optimizers.BootstrapFewShotDemoCandidatesTest do
  use ExUnit.Case, async: true

  alias DSPex.Optimizers.BootstrapFewShot
  alias DSPex.Test.OptimizerWorld, as: World

  @cases World.fixture!("demo_candidates.json")["cases"]

  test "demo_candidates/3 builds DSPy's create_n_fewshot_demo_sets (#{length(@cases)} golden cases)" do
    world = World.world()

    for c <- @cases do
      label = "case #{inspect(Map.delete(c, "demo_candidates"))}"
      rng = DSPex.Random.new(c["rng_seed"])

      opts = [
        num_candidate_sets: c["num_candidate_sets"],
        max_labeled_demos: c["max_labeled_demos"],
        max_bootstrapped_demos: c["max_bootstrapped_demos"],
        metric: World.metric(c["metric"], world),
        max_rounds: Map.get(c, "max_rounds", 1),
        labeled_sample: Map.get(c, "labeled_sample", true),
        min_num_samples: Map.get(c, "min_num_samples", 1),
        include_non_bootstrapped: Map.get(c, "include_non_bootstrapped", true),
        rng: rng
      ]

      {result, _log} =
        ExUnit.CaptureLog.with_log(fn ->
          DSPex.with_settings([lm: World.lm(world)], fn ->
            BootstrapFewShot.demo_candidates(
              World.program(c["shape"]),
              World.examples(world, c["trainset"]),
              opts
            )
          end)
        end)

      assert {:ok, %{demo_candidates: got, rng: rng}} = result, label

      want =
        for sets <- c["demo_candidates"],
            do: Enum.map(sets, fn set -> Enum.map(set, &World.demo/1) end)

      assert got == want, label
      {next, _} = DSPex.Random.random(rng)
      {expected, ""} = Float.parse(c["next_random"])
      assert next == expected, label <> ": the shared rng after the sets"
    end
  end

  test "the default generator is random.Random(seed)" do
    world = World.world()
    c = hd(@cases)

    base = [
      num_candidate_sets: 4,
      max_labeled_demos: 2,
      max_bootstrapped_demos: 2,
      metric: World.metric("exact", world)
    ]

    trainset = World.examples(world, c["trainset"])
    program = World.program("predict")

    run = fn opts ->
      DSPex.with_settings([lm: World.lm(world)], fn ->
        BootstrapFewShot.demo_candidates(program, trainset, opts)
      end)
    end

    {:ok, a} = run.(base ++ [seed: 5])
    {:ok, b} = run.(base ++ [rng: DSPex.Random.new(5)])
    assert a == b
  end
end
