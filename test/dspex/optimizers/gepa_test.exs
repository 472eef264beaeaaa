defmodule DSPex.Optimizers.GEPATest do
  # GEPA against real DSPy 3.3.1 + gepa 0.1.4 (test/fixtures/gepa/traces.json,
  # tools/gen_gepa_traces.py): every evaluation's per-example scores in order (seed,
  # parent minibatch, child minibatch, valset), every reflection prompt byte for byte,
  # the candidates' instructions and parents, validation scores, the per-instance
  # Pareto fronts (in CPython set order), discovery counts, metric-call totals, the
  # best candidate and program; then resume, budgets and failures.
  use ExUnit.Case, async: true

  alias DSPex.LM.Scripted
  alias DSPex.Optimizers.GEPA
  alias DSPex.Optimizers.GEPA.{InstructionProposal, Pareto, PySet}
  alias DSPex.Test.OptimizeSupport, as: S

  @moduletag :tmp_dir

  doctest DSPex.Optimizers.GEPA
  doctest DSPex.Optimizers.GEPA.PySet
  doctest DSPex.Optimizers.GEPA.Pareto
  doctest DSPex.Optimizers.GEPA.InstructionProposal

  setup_all do
    %{"runs" => runs} = "test/fixtures/gepa/traces.json" |> File.read!() |> DSPex.JSON.decode!()
    {:ok, runs: runs}
  end

  # ------------------------------------------------------------------ the scripted world

  def task_lm(world \\ "hash", kill \\ nil) do
    reply = fn messages, _params, call ->
      task_fields(world, content(hd(messages)), messages, call)
    end

    reply = if kill, do: S.killing_reply(reply, elem(kill, 0), elem(kill, 1)), else: reply
    Scripted.new(reply, model: "scripted/task")
  end

  defp task_fields("draft", system, messages, %{signature: %{outputs: [%{name: :draft}]}} = call) do
    case Regex.run(~r/Instruction v(\d+):/, system) do
      [_, k] -> %{draft: "Think v#{k}."}
      nil -> task_fields("hash", system, messages, call)
    end
  end

  defp task_fields(_world, system, messages, call) do
    user = content(List.last(messages))
    key = Enum.join([system, user, Integer.to_string(length(messages))], <<0>>)
    <<b, _::binary>> = :crypto.hash(:sha256, key)

    gold =
      case Regex.run(~r/What is (\d+) plus (\d+)\?/, user) do
        [_, a, c] -> Integer.to_string(String.to_integer(a) + String.to_integer(c))
        _ -> "unknown"
      end

    answer = if b < 128, do: gold, else: "wrong"

    Map.new(call.signature.outputs, fn f ->
      {f.name, if(f.name == :answer, do: answer, else: "Let me think.")}
    end)
  end

  def reflection_lm do
    counter = :counters.new(1, [])

    Scripted.new(
      fn _messages, _params ->
        :counters.add(counter, 1, 1)
        k = :counters.get(counter, 1)
        text = "Instruction v#{k}: add the two numbers and answer with the sum only."

        case rem(k, 4) do
          0 -> "Here is the new instruction:\n```\n#{text}\n```\nDone."
          1 -> "```text\n#{text}\n```"
          2 -> "```\n#{text}"
          3 -> "  #{text}  "
        end
      end,
      model: "scripted/reflection"
    )
  end

  defp content(m), do: m[:content] || m["content"]

  def feedback_metric(gold, pred, _trace, pred_name, _pred_trace) do
    ok = gold[:answer] == pred.answer

    fb =
      if ok,
        do: "Correct.",
        else: "The answer should be #{gold[:answer]}, not #{pred.answer}."

    fb = if pred_name, do: fb <> " (module #{pred_name})", else: fb
    DSPex.Prediction.new(score: if(ok, do: 1.0, else: 0.0), feedback: fb)
  end

  def plain_metric(gold, pred, _trace, _pred_name, _pred_trace),
    do: if(gold[:answer] == pred.answer, do: 1.0, else: 0.0)

  defp examples(list), do: for(e <- list, do: S.example(e["question"], e["answer"]))

  defp opts(run, dir, extra \\ []) do
    init = run["init"]

    budget =
      cond do
        init["auto"] -> [auto: String.to_atom(init["auto"])]
        init["max_full_evals"] -> [max_full_evals: init["max_full_evals"]]
        true -> [max_metric_calls: init["max_metric_calls"]]
      end

    more =
      for {k, v} <- init, k not in ~w(auto max_full_evals max_metric_calls) do
        {String.to_atom(k), if(k == "component_selector", do: String.to_atom(v), else: v)}
      end

    [
      metric:
        if(run["metric"] == "feedback",
          do: &__MODULE__.feedback_metric/5,
          else: &__MODULE__.plain_metric/5
        ),
      reflection_lm: reflection_lm(),
      task_model: task_lm(run["world"]),
      valset: if(run["valset"] == [], do: nil, else: examples(run["valset"])),
      num_threads: 4,
      track_stats: true,
      journal: Path.join(dir, run["name"] <> ".journal"),
      progress: false
    ]
    |> Kernel.++(budget ++ more)
    |> Keyword.merge(extra)
  end

  defp state(program) do
    {:ordered, pairs} = DSPex.Program.dump_state(program)

    pairs
    |> Enum.reject(fn {k, _} -> k == "metadata" end)
    |> then(&{:ordered, &1})
    |> DSPex.JSON.encode!()
    |> DSPex.JSON.decode!()
  end

  defp prompts(lm), do: for(r <- Scripted.requests(lm), do: content(List.last(r.messages)))

  defp check(run, result, o) do
    name = run["name"]
    d = result.extra.detailed_results
    assert result.status == :finished

    assert Enum.map(result.trial_logs, & &1.scores) == run["evaluations"],
           "#{name}: evaluations differ"

    assert prompts(o[:reflection_lm]) == run["reflection_prompts"],
           "#{name}: reflection prompts differ"

    assert d.candidate_instructions == run["candidates"], "#{name}: candidates differ"
    assert d.parents == run["parents"]
    assert d.val_aggregate_scores == run["val_aggregate_scores"]
    assert d.val_subscores == run["val_subscores"]
    assert d.per_val_instance_best_candidates == run["per_val_instance_best_candidates"]
    assert d.discovery_eval_counts == run["discovery_eval_counts"]
    assert d.total_metric_calls == run["total_metric_calls"]
    assert d.num_full_val_evals == run["num_full_val_evals"]
    assert d.best_idx == run["best_idx"]
    assert state(result.program) == run["best_program"]
  end

  test "every golden run equals DSPy + gepa", %{runs: runs, tmp_dir: dir} do
    for run <- runs do
      o = opts(run, dir)
      {:ok, result} = GEPA.compile(S.program(run["program"]), examples(run["trainset"]), o)
      check(run, result, o)
    end
  end

  test "kill -9 of the port mid-trial: the job carries on and ends as DSPy did",
       %{runs: runs, tmp_dir: dir} do
    run = Enum.find(runs, &(&1["name"] == "two_merge"))
    task = task_lm(run["world"], {40, self()})
    o = opts(run, dir, task_model: task, num_threads: 1)

    {:ok, job} =
      DSPex.Optimize.start(GEPA, S.program(run["program"]), examples(run["trainset"]), o)

    S.kill_port_when_asked(job)
    {:ok, result} = DSPex.Optimize.await(job, 120_000)
    assert DSPex.Optimize.status(job).restarts == 1
    check(run, result, o)
  end

  test "a resumed job asks the reflection LM nothing twice", %{runs: runs, tmp_dir: dir} do
    run = Enum.find(runs, &(&1["name"] == "predict_feedback"))
    o = opts(run, dir)
    train = examples(run["trainset"])

    {:ok, r1} = GEPA.compile(S.program("predict"), train, Keyword.put(o, :max_lm_calls, 25))
    assert r1.status == :budget_exhausted
    assert %DSPex.Predict{} = r1.program

    {:ok, job} =
      DSPex.Optimize.resume(
        o[:journal],
        S.program("predict"),
        train,
        o |> Keyword.delete(:journal) |> Keyword.put(:optimizer, GEPA)
      )

    {:ok, r2} = DSPex.Optimize.await(job)
    check(run, r2, o)
  end

  test "metric errors and garbage replies score failure_score; a usable program comes back",
       %{tmp_dir: dir} do
    train = for i <- 1..5, do: S.example("What is #{i} plus #{i}?", "#{2 * i}")
    garbage = Scripted.new(fn _m, _p -> "no fields" end)

    metric = fn gold, pred, _t, _n, _pt ->
      if gold[:answer] == "4", do: raise("metric bug"), else: gold[:answer] == pred.answer
    end

    {:ok, result} =
      GEPA.compile(DSPex.Predict.new("question -> answer"), train,
        metric: metric,
        task_model: garbage,
        reflection_lm: reflection_lm(),
        max_metric_calls: 20,
        journal: Path.join(dir, "g.journal"),
        progress: false
      )

    assert result.status == :finished
    assert result.score == 0.0
    assert %DSPex.Predict{} = result.program
  end

  test "a budget hit mid-run: clear status, the best program so far", %{tmp_dir: dir} do
    {:ok, result} =
      GEPA.compile(DSPex.Predict.new("question -> answer"), S.dataset(6, 1),
        metric: &plain_metric/5,
        task_model: task_lm(),
        reflection_lm: reflection_lm(),
        max_metric_calls: 100,
        max_lm_calls: 15,
        journal: Path.join(dir, "b.journal"),
        progress: false
      )

    assert result.status == :budget_exhausted
    assert result.reason == {:max_lm_calls, 15}
    assert %DSPex.Predict{} = result.program
  end

  test "exactly one budget; a reflection LM is required" do
    assert_raise ArgumentError, ~r/Exactly one of max_metric_calls/, fn ->
      GEPA.compile(S.program("predict"), S.dataset(3, 1),
        metric: &plain_metric/5,
        reflection_lm: reflection_lm(),
        progress: false
      )
    end

    assert_raise ArgumentError, ~r/reflection language model/, fn ->
      GEPA.compile(S.program("predict"), S.dataset(3, 1),
        metric: &plain_metric/5,
        auto: :light,
        progress: false
      )
    end
  end

  test "auto budgets are DSPy's" do
    # GEPA(auto=...).auto_budget(num_preds, n, valset_size) in DSPy 3.3.1
    assert GEPA.auto_budget(1, 6, 10) == 420
    assert GEPA.auto_budget(2, 12, 50) == 1_390
    assert GEPA.auto_budget(3, 18, 300) == 5_440
  end

  test "prompt rendering and extraction" do
    p =
      InstructionProposal.prompt("Old.", [
        [{"Inputs", {:ordered, [{"q", " 1 "}]}}, {"Feedback", "f"}]
      ])

    assert p =~ "```\nOld.\n```"
    assert p =~ "# Example 1\n## Inputs\n### q\n1\n\n## Feedback\nf\n\n"
    assert InstructionProposal.extract("```\nA\n```") == "A"
    assert InstructionProposal.extract("```py\nB") == "B"
    assert InstructionProposal.extract("C\n```") == "C"
  end

  test "Pareto selection drops dominated programs" do
    fronts = [{0, PySet.new([0, 1])}, {1, PySet.new([1, 2])}, {2, PySet.new([2])}]
    assert Pareto.dominators(fronts, [0.1, 0.5, 0.6]) == [1, 2]
  end

  @tag capture_log: true
  test "mix dspex.optimize --optimizer gepa over a loopback LM server", %{tmp_dir: dir} do
    {:ok, srv} = S.start_lm_server()
    train = Path.join(dir, "train.jsonl")

    File.write!(
      train,
      Enum.map_join(S.dataset(8, 5), "", fn ex ->
        DSPex.JSON.encode!(%{question: ex[:question], answer: ex[:answer]}) <> "\n"
      end)
    )

    out = Path.join(dir, "qa.json")

    args = ~w(--optimizer gepa --max-metric-calls 30 --program question->answer --train #{train}
         --metric exact_match --lm openai/loopback --api-base #{S.lm_server_base(srv)} --no-cache
         --no-progress --out #{out} --journal #{Path.join(dir, "j")})

    stdout =
      ExUnit.CaptureIO.capture_io(fn ->
        ExUnit.CaptureIO.capture_io(:stderr, fn -> Mix.Tasks.Dspex.Optimize.run(args) end)
      end)

    assert stdout =~ "Status: finished"
    assert {:ok, _} = DSPex.Program.load(DSPex.Predict.new("question -> answer"), out)
  end
end
