defmodule DSPex.Optimizers.EnsembleTest do
  use ExUnit.Case, async: true

  alias DSPex.Optimizers.Ensemble
  alias DSPex.Test.OptimizerWorld, as: World

  doctest Ensemble

  @cases World.fixture!("ensemble.json")["cases"]

  defp lm_of(world, "smart"), do: World.lm(world, true)
  defp lm_of(world, "plain"), do: World.lm(world)
  defp lm_of(world, "dumb"), do: World.dumb_lm(world)

  test "reduces with majority as DSPy 3.3.1 does (#{length(@cases)} golden cases)" do
    world = World.world()
    by_id = World.by_id(world)

    for c <- @cases do
      programs =
        for fl <- c["flavours"],
            do: DSPex.Module.set_lm(World.program(c["shape"]), lm_of(world, fl))

      {:ok, ens} = Ensemble.compile(programs, reduce_fn: &DSPex.majority/2)

      for r <- c["results"] do
        {:ok, pred} = DSPex.call(ens, question: by_id[r["query"]]["q"])
        want = Enum.map(r["fields"], fn [k, v] -> {String.to_atom(k), v} end)
        got = Enum.map(pred.__fields__, &{&1, Map.fetch!(pred, &1)})
        assert got == want, "#{c["shape"]} #{inspect(c["flavours"])} #{r["query"]}"
      end
    end
  end

  test "names predictors like DSPy's EnsembledProgram and saves in its format" do
    cots = for _ <- 1..2, do: DSPex.ChainOfThought.new("question -> answer")
    {:ok, ens} = Ensemble.compile(cots)

    assert Enum.map(DSPex.Module.named_predictors(ens), &elem(&1, 0)) ==
             ["programs[0].predict", "programs[1].predict"]

    {:ordered, entries} = DSPex.Program.dump_state(ens)

    assert Enum.map(entries, &elem(&1, 0)) == [
             "programs[0].predict",
             "programs[1].predict",
             "metadata"
           ]
  end

  test "without reduce_fn the outputs come back as a list, in program order" do
    progs =
      for a <- ["x", "y"],
          do: DSPex.Predict.new("question -> answer", lm: DSPex.LM.Scripted.new([%{answer: a}]))

    {:ok, ens} = Ensemble.compile(progs)
    {:ok, outs} = DSPex.call(ens, question: "q")
    assert Enum.map(outs, & &1.answer) == ["x", "y"]
  end

  test "size samples programs; deterministic: true hashes the inputs" do
    progs =
      for a <- ~w(a b c d e),
          do:
            DSPex.Predict.new("question -> answer",
              lm: DSPex.LM.Scripted.new(fn _, _ -> %{answer: a} end)
            )

    {:ok, det} = Ensemble.compile(progs, size: 2, deterministic: true)
    run = fn ens, q -> ens |> DSPex.call!(question: q) |> Enum.map(& &1.answer) end

    first = run.(det, "same question")
    assert length(first) == 2
    assert Enum.all?(1..5, fn _ -> run.(det, "same question") == first end)

    {:ok, rnd} = Ensemble.compile(progs, size: 2)
    seen = for _ <- 1..30, into: MapSet.new(), do: run.(rnd, "same question")
    assert MapSet.size(seen) > 1

    assert_raise ArgumentError, ~r/larger than the 5 programs/, fn ->
      Ensemble.compile(progs, size: 6)
    end
  end

  test "a failing program fails the call" do
    ok = DSPex.Predict.new("question -> answer", lm: DSPex.LM.Scripted.new([%{answer: "x"}]))
    bad = DSPex.Predict.new("question -> answer", lm: DSPex.LM.Scripted.new([]))
    {:ok, ens} = Ensemble.compile([ok, bad], reduce_fn: &DSPex.majority/2)
    assert {:error, %DSPex.Error{type: :scripted_exhausted}} = DSPex.call(ens, question: "q")
  end
end
