defmodule DSPex.Optimizers.COPROTest do
  # COPRO against real DSPy 3.3.1 (test/fixtures/copro/traces.json, tools/gen_copro_traces.py):
  # the same prompt-model requests byte for byte, the same evaluation scores in the same
  # order, the same candidate programs (dedup included), total_calls, best program and
  # statistics; then resume and budgets.
  use ExUnit.Case, async: true

  alias DSPex.Optimizers.COPRO
  alias DSPex.Test.OptimizeSupport, as: S

  @moduletag :tmp_dir

  setup_all do
    %{"runs" => runs} = "test/fixtures/copro/traces.json" |> File.read!() |> DSPex.JSON.decode!()
    {:ok, runs: runs}
  end

  defp trainset(run), do: for(e <- run["trainset"], do: S.example(e["question"], e["answer"]))

  defp opts(run, dir, extra \\ []) do
    init = run["init"]

    [
      metric: &S.metric/2,
      prompt_model: S.prompt_lm(),
      task_model: S.task_lm(),
      breadth: init["breadth"],
      depth: init["depth"],
      init_temperature: init["init_temperature"],
      track_stats: init["track_stats"] || false,
      journal: Path.join(dir, run["name"] <> ".journal"),
      max_concurrency: 4,
      progress: false
    ] ++ extra
  end

  defp state(program) do
    {:ordered, pairs} = DSPex.Program.dump_state(program)

    pairs
    |> Enum.reject(fn {k, _} -> k == "metadata" end)
    |> then(&{:ordered, &1})
    |> DSPex.JSON.encode!()
    |> DSPex.JSON.decode!()
  end

  defp requests(lm) do
    for r <- DSPex.LM.Scripted.requests(lm) do
      %{
        "messages" =>
          Enum.map(
            r.messages,
            &%{"role" => &1[:role] || &1["role"], "content" => &1[:content] || &1["content"]}
          ),
        "n" => r.params[:n] || 1,
        "temperature" => r.params[:temperature]
      }
    end
  end

  test "every golden run: prompts, scores, candidates and the best program equal DSPy's",
       %{runs: runs, tmp_dir: dir} do
    for run <- runs do
      o = opts(run, dir)
      {:ok, result} = COPRO.compile(S.program(run["program"]), trainset(run), o)

      assert requests(o[:prompt_model]) == run["prompt_requests"],
             "#{run["name"]}: prompt requests differ"

      assert Enum.map(result.trial_logs, & &1.score) ==
               Enum.map(run["evaluations"], & &1["score"])

      assert result.total_calls == run["total_calls"]
      assert result.status == :finished

      got =
        for c <- result.candidate_programs,
            do: %{
              "score" => c.score,
              "instruction" => c.instruction,
              "prefix" => c.prefix,
              "depth" => c.depth,
              "program" => state(c.program)
            }

      want = for c <- run["candidate_programs"], do: Map.update!(c, "program", & &1)
      assert got == want, "#{run["name"]}: candidate programs differ"
      assert state(result.program) == run["best_program"]
      assert result.score == hd(run["candidate_programs"])["score"]

      if run["results_best"] do
        names = for {name, _} <- DSPex.Module.named_predictors(result.program), do: name

        for {name, want} <- Enum.zip(names, run["results_best"]) do
          got = result.extra.results_best[name]
          assert got.depth == want["depth"] and got.max == want["max"] and got.min == want["min"]
          assert_in_delta Enum.sum(got.std), Enum.sum(want["std"]), 1.0e-9
        end

        for {name, want} <- Enum.zip(names, run["results_latest"]) do
          got = result.extra.results_latest[name]

          assert got.depth == want["depth"] and got.max == want["max"] and
                   got.average == want["average"]
        end
      end
    end
  end

  test "a resumed job makes no proposal and no evaluation twice", %{runs: [run | _], tmp_dir: dir} do
    o = opts(run, dir)
    train = trainset(run)

    # a budget that ends the job after 5 evaluations (the 6th trial's first LM call is refused)
    calls_for_5 = 2 + 5 * length(train)

    {:ok, r1} =
      COPRO.compile(S.program(run["program"]), train, Keyword.put(o, :max_lm_calls, calls_for_5))

    assert r1.status == :budget_exhausted
    assert r1.reason == {:max_lm_calls, calls_for_5}
    assert length(r1.trial_logs) == 5
    assert r1.program != nil

    # resume with the same LMs (their counters continue) and no budget
    {:ok, job} =
      DSPex.Optimize.resume(
        o[:journal],
        S.program(run["program"]),
        train,
        Keyword.delete(o, :journal)
      )

    {:ok, r2} = DSPex.Optimize.await(job)
    assert r2.status == :finished
    assert Enum.map(r2.trial_logs, & &1.score) == Enum.map(run["evaluations"], & &1["score"])
    assert state(r2.program) == run["best_program"]
    # proposal calls: the journaled batches were not redone
    assert requests(o[:prompt_model]) == run["prompt_requests"]
    # resuming a finished journal returns the result without LM calls
    before = length(DSPex.LM.Scripted.requests(o[:task_model]))

    {:ok, job} =
      DSPex.Optimize.resume(
        o[:journal],
        S.program(run["program"]),
        train,
        Keyword.delete(o, :journal)
      )

    {:ok, r3} = DSPex.Optimize.await(job)
    assert state(r3.program) == run["best_program"] and r3.status == :finished
    assert length(DSPex.LM.Scripted.requests(o[:task_model])) == before
  end

  test "dspy_quirks: false drops duplicates by value (DSPy's FieldInfo identity keeps them all)",
       %{runs: runs, tmp_dir: dir} do
    run = Enum.find(runs, &(&1["name"] == "two_b3_d2"))

    {:ok, result} =
      COPRO.compile(S.program("two"), trainset(run), opts(run, dir, dspy_quirks: false))

    assert length(result.candidate_programs) == length(run["candidate_programs"]) - 1
    # the dropped one: same score as an earlier kept entry, same instructions and last fields
    dropped = Enum.at(run["candidate_programs"], 4)

    refute Enum.any?(
             result.candidate_programs,
             &(&1.depth == 0 and &1.instruction == dropped["instruction"] and
                 &1.prefix == "Answer:")
           )
  end

  test "breadth must be greater than 1" do
    assert_raise ArgumentError, "Breadth must be greater than 1", fn ->
      COPRO.compile(S.program("predict"), [S.example("What is 1 plus 1?", "2")],
        metric: &S.metric/2,
        breadth: 1
      )
    end
  end
end
