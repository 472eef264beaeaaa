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

          if c["saved"] do
            {:ordered, _} = state = DSPex.Program.dump_state(r.program)
            text = DSPex.JSON.encode!(state, pretty: true)
            [before_metadata, _] = String.split(text, ~s(,\n  "metadata": {), parts: 2)
            assert before_metadata == c["saved"], label <> ": the saved file (DSPy's bytes)"
          end

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

defmodule DSPex.Optimizers.BootstrapFewShotBehaviourTest do
  use ExUnit.Case, async: true

  import ExUnit.CaptureLog

  alias DSPex.Optimizers.BootstrapFewShot
  alias DSPex.Test.{LoopbackServer, OptimizerWorld}

  defp ex(q, a),
    do: DSPex.Example.new(question: q, answer: a) |> DSPex.Example.with_inputs([:question])

  defp exact(e, p, _trace), do: e[:answer] == p.answer

  test "rounds after the first copy a DSPex.LM with rollout_id and temperature 1.0" do
    {:ok, srv} =
      LoopbackServer.start_link(
        routes: %{
          "/v1/chat/completions" => fn req ->
            body = DSPex.JSON.decode!(req.body)
            answer = if body["temperature"] == 1.0, do: "4", else: "5"

            %{
              status: 200,
              headers: [{"content-type", "application/json"}],
              body:
                DSPex.JSON.encode!(%{
                  id: "x",
                  object: "chat.completion",
                  model: "loopback",
                  choices: [
                    %{
                      index: 0,
                      finish_reason: "stop",
                      message: %{
                        role: "assistant",
                        content: "[[ ## answer ## ]]\n#{answer}\n\n[[ ## completed ## ]]"
                      }
                    }
                  ],
                  usage: %{prompt_tokens: 1, completion_tokens: 1, total_tokens: 2}
                })
            }
          end
        }
      )

    lm =
      DSPex.LM.new("openai/loopback",
        api_base: LoopbackServer.url(srv, "/v1"),
        api_key: "sk-test",
        temperature: 0.0,
        cache: false
      )

    {:ok, r} =
      DSPex.with_settings([lm: lm], fn ->
        BootstrapFewShot.run(DSPex.Predict.new("question -> answer"), [ex("2+2?", "4")],
          metric: &exact/3,
          max_rounds: 3
        )
      end)

    assert {r.bootstrapped, r.attempts} == {[0], 2}

    temps =
      for req <- LoopbackServer.requests(srv, "/v1/chat/completions"),
          do: DSPex.JSON.decode!(req.body)["temperature"]

    assert temps == [0.0, 1.0]
    assert [%{augmented: true, answer: "4"}] = r.program.demos
  end

  test "other LMs get rollout_id and temperature through :lm_params" do
    lm =
      DSPex.LM.Scripted.new(fn _m, params ->
        %{answer: if(params[:rollout_id] == 2, do: "4", else: "x")}
      end)

    {:ok, r} =
      DSPex.with_settings([lm: lm], fn ->
        BootstrapFewShot.run(DSPex.Predict.new("question -> answer"), [ex("2+2?", "4")],
          metric: &exact/3,
          max_rounds: 3
        )
      end)

    assert r.attempts == 3

    params =
      for req <- DSPex.LM.Scripted.requests(lm),
          do: Map.take(req.params, [:rollout_id, :temperature])

    assert params == [%{}, %{rollout_id: 1, temperature: 1.0}, %{rollout_id: 2, temperature: 1.0}]
  end

  test "round events, the span, progress and DSPy's summary line" do
    lm = DSPex.LM.Scripted.new(fn _m, _p -> %{answer: "4"} end)
    ref = make_ref()
    me = self()

    :ok =
      DSPex.Telemetry.attach_many(
        ref,
        [[:dspex, :optimize, :start], [:dspex, :optimize, :stop], [:dspex, :optimize, :round]],
        # only this test's events (async tests run optimizers at the same time)
        fn event, m, meta, _ -> if self() == me, do: send(me, {ref, event, m, meta}) end,
        nil
      )

    {:ok, dev} = StringIO.open("")

    {:ok, _} =
      DSPex.with_settings([lm: lm], fn ->
        BootstrapFewShot.run(
          DSPex.Predict.new("question -> answer"),
          [ex("a", "5"), ex("b", "4"), ex("c", "4")],
          metric: &exact/3,
          max_bootstrapped_demos: 1,
          max_rounds: 2,
          display_progress: true,
          progress_device: dev
        )
      end)

    DSPex.Telemetry.detach(ref)

    assert_received {^ref, [:dspex, :optimize, :start], _,
                     %{optimizer: :bootstrap_few_shot, trainset_size: 3}}

    rounds =
      for {^ref, [:dspex, :optimize, :round], m, meta} <- receive_all(ref),
          do: {meta.example_index, meta.round, meta.success, is_integer(m.duration)}

    assert rounds == [{0, 0, false, true}, {0, 1, false, true}, {1, 0, true, true}]

    assert_received {^ref, [:dspex, :optimize, :stop], _,
                     %{status: :ok, bootstrapped: 1, attempts: 3, errors: 0}}

    {_, out} = StringIO.contents(dev)
    assert out =~ "Bootstrapped: 1 of 2 examples"

    assert out =~
             "Bootstrapped 1 full traces after 2 examples for up to 2 rounds, amounting to 3 attempts."
  end

  defp receive_all(ref) do
    receive do
      {^ref, [:dspex, :optimize, :round], _, _} = msg -> [msg | receive_all(ref)]
    after
      0 -> []
    end
  end

  test "failures are logged without the example's data; max_errors stops the run" do
    lm =
      DSPex.LM.Scripted.new(fn msgs, _ ->
        if List.last(msgs).content =~ "secret-question",
          do: {:error, DSPex.Error.new(:server, "upstream 500")},
          else: %{answer: "4"}
      end)

    trainset = [ex("secret-question 1", "4"), ex("ok", "4"), ex("secret-question 2", "4")]

    {result, log} =
      with_log(fn ->
        DSPex.with_settings([lm: lm], fn ->
          BootstrapFewShot.run(DSPex.Predict.new("question -> answer"), trainset,
            metric: &exact/3,
            max_errors: 5
          )
        end)
      end)

    assert {:ok, %{error_count: 2, bootstrapped: [1]}} = result
    assert log =~ "training example 0"
    assert log =~ "(:server)"
    refute log =~ "secret-question"
    refute log =~ "upstream 500"

    {result, _} =
      with_log(fn ->
        DSPex.with_settings([lm: lm], fn ->
          BootstrapFewShot.run(DSPex.Predict.new("question -> answer"), trainset,
            metric: &exact/3,
            max_errors: 2
          )
        end)
      end)

    assert {:error, %DSPex.Error{type: :too_many_errors, details: d}} = result
    assert %{errors: 2, max_errors: 2, example_index: 2, error: %DSPex.Error{type: :server}} = d
  end

  test "a metric that raises counts as an error; the default max_errors is the setting" do
    lm = DSPex.LM.Scripted.new(fn _, _ -> %{answer: "4"} end)
    boom = fn _e, _p, _t -> raise "metric broke" end

    {result, _} =
      with_log(fn ->
        DSPex.with_settings([lm: lm, max_errors: 1], fn ->
          BootstrapFewShot.run(DSPex.Predict.new("question -> answer"), [ex("q", "4")],
            metric: boom
          )
        end)
      end)

    assert {:error, %DSPex.Error{type: :too_many_errors, details: %{errors: 1}}} = result
  end

  test "the teacher: labeled unless it has demos (label_teacher: :auto), same structure required" do
    lm =
      DSPex.LM.Scripted.new(fn msgs, _ -> %{answer: if(length(msgs) > 2, do: "4", else: "x")} end)

    trainset = [ex("a", "4"), ex("b", "4")]
    qa = DSPex.Predict.new("question -> answer")

    run = fn opts ->
      DSPex.with_settings([lm: lm], fn ->
        BootstrapFewShot.run(qa, trainset, [metric: &exact/3] ++ opts)
      end)
    end

    # labeled (the other example is a demo, so the prompt has more messages): success
    assert {:ok, %{bootstrapped: [0, 1]}} = run.([])
    # no labels: the bare prompt fails
    assert {:ok, %{bootstrapped: []}} = run.(label_teacher: false)
    # a teacher with its own demos is used as is
    teacher = %{qa | demos: [%{question: "z", answer: "4"}]}
    assert {:ok, %{bootstrapped: [0, 1]}} = run.(teacher: teacher, max_labeled_demos: 0)

    assert_raise ArgumentError, ~r/same number of predictors/, fn ->
      run.(teacher: OptimizerWorld.program("two"))
    end

    other = DSPex.Predict.new("question -> answer")
    other = %{other | signature: %{other.signature | instructions: "Different."}}

    assert_raise ArgumentError, ~r/same signatures/, fn -> run.(teacher: other) end
  end

  test "an empty trainset gives the reset program; bad trainsets raise" do
    qa = DSPex.Predict.new("question -> answer", demos: [%{question: "q", answer: "a"}])

    assert {:ok, %{program: %{demos: []}, example_index: nil, attempts: 0}} =
             BootstrapFewShot.run(qa, [])

    assert_raise ArgumentError, ~r/has no input keys/, fn ->
      BootstrapFewShot.run(qa, [DSPex.Example.new(question: "q")])
    end

    assert_raise ArgumentError, ~r/unknown option :max_round/, fn ->
      BootstrapFewShot.run(qa, [], max_round: 2)
    end
  end

  test "a predictor that runs twice for one example keeps one demo, chosen by a hash of its demos" do
    defmodule Twice do
      use DSPex.Module
      predictor :step, "question -> answer"

      @impl DSPex.Module
      def forward(p, %{question: q}) do
        with {:ok, _} <- DSPex.call(p.step, question: q <> " (draft)") do
          DSPex.call(p.step, question: q)
        end
      end
    end

    lm = DSPex.LM.Scripted.new(fn _, _ -> %{answer: "4"} end)

    {:ok, r} =
      DSPex.with_settings([lm: lm], fn ->
        BootstrapFewShot.run(Twice.new(), [ex("q", "4")], metric: &exact/3)
      end)

    [demo] = r.traces["step"]

    candidates = [
      %{augmented: true, question: "q (draft)", answer: "4"},
      %{augmented: true, question: "q", answer: "4"}
    ]

    assert demo in candidates
    {x, rng} = DSPex.Random.random(DSPex.Random.new(BootstrapFewShot.demos_hash(candidates)))

    expected =
      if x < 0.5,
        do: elem(DSPex.Random.choice(rng, [hd(candidates)]), 0),
        else: List.last(candidates)

    assert demo == expected
  end
end

defmodule DSPex.Optimizers.DSPyLoadsCompiledTest do
  # Real DSPy loads programs compiled and saved by DSPex with the same demos
  # (tools/check_dspy_load.py). Runs when a Python with dspy 3.3.1 is present.
  use ExUnit.Case, async: true

  alias DSPex.Optimizers.BootstrapFewShot
  alias DSPex.Test.OptimizerWorld, as: World

  @pythons [
    System.get_env("DSPY_PYTHON"),
    "/work/wt/venv/bin/python",
    "/opt/dspy-venv/bin/python"
  ]

  @moduletag :dspy_oracle
  @moduletag :tmp_dir

  test "compiled Predict, ChainOfThought and two-predictor programs", %{tmp_dir: dir} do
    python = Enum.find(@pythons, &(&1 && File.exists?(&1)))

    if python do
      world = World.world()
      trainset = World.examples(world, Enum.map(Enum.take(world, 14), & &1["id"]))

      for {shape, file} <- [
            {"predict", "predict.json"},
            {"cot", "cot.json"},
            {"two", "two_predictors.json"}
          ] do
        {{:ok, compiled}, _} =
          ExUnit.CaptureLog.with_log(fn ->
            DSPex.with_settings([lm: World.lm(world)], fn ->
              BootstrapFewShot.compile(World.program(shape), trainset,
                metric: World.metric("exact", world),
                max_bootstrapped_demos: 3,
                max_labeled_demos: 6
              )
            end)
          end)

        assert Enum.any?(DSPex.Module.predictors(compiled), &(&1.demos != []))
        :ok = DSPex.Program.save(compiled, Path.join(dir, file))
      end

      script = Path.expand("../../../tools/check_dspy_load.py", __DIR__)
      {out, status} = System.cmd(python, [script, dir], stderr_to_stdout: true)
      assert status == 0, out
      assert out =~ "ok   predict.json"
      assert out =~ "ok   cot.json"
      assert out =~ "ok   two_predictors.json"
    end
  end
end
