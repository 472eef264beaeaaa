defmodule DSPex.Optimizers.LabeledFewShotTest do
  use ExUnit.Case, async: true

  alias DSPex.Optimizers.LabeledFewShot
  alias DSPex.Test.OptimizerWorld, as: World

  doctest LabeledFewShot

  @cases World.fixture!("labeled.json")["cases"]

  test "chooses the demos DSPy 3.3.1 chooses (#{length(@cases)} golden cases)" do
    world = World.world()

    for c <- @cases do
      trainset = World.examples(world, c["trainset"])
      program = World.program(c["shape"])
      {:ok, compiled} = LabeledFewShot.compile(program, trainset, k: c["k"], sample: c["sample"])

      chosen =
        Map.new(World.demos_of(compiled), fn {name, demos} ->
          {name, Enum.map(demos, fn d -> Enum.find_index(trainset, &(&1.fields == d)) end)}
        end)

      assert chosen == c["demos"], "case #{inspect(Map.delete(c, "demos"))}"
    end
  end

  test "resets the program: demos, LM and traces go, signatures stay" do
    lm = DSPex.LM.Scripted.new([])
    p = DSPex.Predict.new("question -> answer", lm: lm, demos: [%{question: "x", answer: "y"}])
    p = %{p | signature: %{p.signature | instructions: "Be brief."}}
    {:ok, out} = LabeledFewShot.compile(p, [], k: 2)
    assert {out.demos, out.lm, out.signature.instructions} == {[], nil, "Be brief."}
  end

  test "options and arguments are checked" do
    qa = DSPex.Predict.new("question -> answer")

    assert_raise ArgumentError, ~r/unknown option :kk/, fn ->
      LabeledFewShot.compile(qa, [], kk: 2)
    end

    assert_raise ArgumentError, ~r/trainset element 0 is not a %DSPex.Example/, fn ->
      LabeledFewShot.compile(qa, [%{question: "q"}])
    end

    assert_raise ArgumentError, ~r/needs a program struct/, fn ->
      LabeledFewShot.compile(:nope, [])
    end
  end

  test "emits a [:dspex, :optimize] span" do
    ref = make_ref()
    me = self()

    DSPex.Telemetry.attach_many(
      {__MODULE__, ref},
      [[:dspex, :optimize, :start], [:dspex, :optimize, :stop]],
      fn event, _m, meta, _ -> if self() == me, do: send(me, {ref, event, meta}) end,
      nil
    )

    ex = DSPex.Example.new(question: "q", answer: "a") |> DSPex.Example.with_inputs([:question])
    LabeledFewShot.compile(DSPex.Predict.new("question -> answer"), [ex])
    DSPex.Telemetry.detach({__MODULE__, ref})

    assert_received {^ref, [:dspex, :optimize, :start],
                     %{optimizer: :labeled_few_shot, trainset_size: 1}}

    assert_received {^ref, [:dspex, :optimize, :stop], %{status: :ok, program: DSPex.Predict}}
  end
end
