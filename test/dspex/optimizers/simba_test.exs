defmodule DSPex.Optimizers.SIMBATest do
  # SIMBA against real DSPy 3.3.1 (test/fixtures/simba/traces.json,
  # tools/gen_simba_traces.py): the same program runs with the same scores in the same
  # order (every dspy.Parallel call: trajectory sampling, candidate scoring, the final
  # trainset evaluation), the same OfferFeedback prompts byte for byte (but the
  # program's source, which is Python's class source in DSPy and the Elixir module's
  # here), the same candidate programs and best program; then resume, budgets and
  # failures.
  use ExUnit.Case, async: true

  alias DSPex.LM.Scripted
  alias DSPex.Optimizers.SIMBA
  alias DSPex.Test.OptimizeSupport, as: S

  @moduletag :tmp_dir

  doctest DSPex.Optimizers.SIMBA.NumpyRandom
  doctest DSPex.Optimizers.SIMBA.OfferFeedback

  setup_all do
    %{"runs" => runs} = "test/fixtures/simba/traces.json" |> File.read!() |> DSPex.JSON.decode!()
    {:ok, runs: runs}
  end

  # ------------------------------------------------------------------ the scripted world

  # The task model: right when sha256(system, last user, count, rollout_id) starts < 128.
  def task_lm(kill \\ nil) do
    reply = fn messages, params, call ->
      rollout = if params[:rollout_id] == nil, do: "None", else: "#{params[:rollout_id]}"
      system = content(hd(messages))
      user = content(List.last(messages))
      key = Enum.join([system, user, Integer.to_string(length(messages)), rollout], <<0>>)
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

    reply = if kill, do: S.killing_reply(reply, elem(kill, 0), elem(kill, 1)), else: reply
    Scripted.new(reply, model: "scripted/task")
  end

  # The prompt model: a rule per module named in the request.
  def prompt_lm do
    counter = :counters.new(1, [])

    Scripted.new(
      fn messages, _params ->
        :counters.add(counter, 1, 1)
        k = :counters.get(counter, 1)
        user = content(List.last(messages))
        [_, after_names] = String.split(user, "[[ ## module_names ## ]]\n", parts: 2)
        [block | _] = String.split(after_names, "\n\n", parts: 2)
        names = DSPex.JSON.decode!(block)

        %{
          discussion: "Discussion #{k}.",
          module_advice:
            Map.new(names, &{&1, "Rule #{k} for #{&1}: add the two numbers digit by digit."})
        }
      end,
      model: "scripted/prompt"
    )
  end

  defp content(m), do: m[:content] || m["content"]

  def metric(example, pred), do: if(example[:answer] == pred.answer, do: 1.0, else: 0.0)

  defp trainset(run), do: for(e <- run["trainset"], do: S.example(e["question"], e["answer"]))

  defp opts(run, dir, extra \\ []) do
    init = run["init"]

    [
      metric: &__MODULE__.metric/2,
      prompt_model: prompt_lm(),
      task_model: task_lm(),
      bsize: init["bsize"],
      num_candidates: init["num_candidates"],
      max_steps: init["max_steps"],
      max_demos: init["max_demos"],
      seed: run["seed"],
      num_threads: 4,
      journal: Path.join(dir, run["name"] <> ".journal"),
      progress: false
    ]
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

  # The program's source differs by language; everything else must be equal.
  defp normalize(text),
    do:
      Regex.replace(
        ~r/\[\[ ## program_code ## \]\]\n.*?\n\n\[\[ ## modules_defn ## \]\]/s,
        text,
        "[[ ## program_code ## ]]\n<source>\n\n[[ ## modules_defn ## ]]"
      )

  defp requests(lm) do
    for r <- Scripted.requests(lm) do
      %{
        "messages" =>
          Enum.map(
            r.messages,
            &%{"role" => &1[:role] || &1["role"], "content" => normalize(content(&1))}
          )
      }
    end
  end

  defp want_requests(run) do
    for r <- run["prompt_requests"] do
      %{
        "messages" =>
          Enum.map(r["messages"], &Map.update!(&1, "content", fn c -> normalize(c) end))
      }
    end
  end

  # DSPex's trials grouped as DSPy's dspy.Parallel calls: a sampling trial is one call,
  # a batch of candidate trials is one call.
  defp parallel_calls(result) do
    result.trial_logs
    |> Enum.chunk_by(fn t -> hd(t.params) end)
    |> Enum.map(fn trials -> Enum.flat_map(trials, & &1.scores) end)
  end

  test "every golden run: runs, scores, rule prompts, candidates and the best program equal DSPy's",
       %{runs: runs, tmp_dir: dir} do
    for run <- runs do
      o = opts(run, dir)
      {:ok, result} = SIMBA.compile(S.program(run["program"]), trainset(run), o)
      assert result.status == :finished

      assert parallel_calls(result) == run["parallel_calls"],
             "#{run["name"]}: scores differ"

      assert requests(o[:prompt_model]) == want_requests(run),
             "#{run["name"]}: OfferFeedback prompts differ"

      assert length(Scripted.requests(o[:task_model])) == run["task_calls"]

      got =
        for c <- result.candidate_programs,
            do: %{"score" => c.score, "program" => state(c.program)}

      assert got == run["candidate_programs"], "#{run["name"]}: candidate programs differ"
      assert state(result.program) == run["best_program"]
      assert result.score == hd(run["candidate_programs"])["score"]

      for {step, log} <- run["trial_logs"], Map.has_key?(log, "train_score") do
        assert result.extra.simba_trial_logs[String.to_integer(step)].train_score ==
                 log["train_score"]
      end
    end
  end

  test "kill -9 of the port mid-trial: the job carries on, reuses the trial in flight and ends as DSPy did",
       %{runs: runs, tmp_dir: dir} do
    run = Enum.find(runs, &(&1["name"] == "predict_b4_c3"))
    task = task_lm({30, self()})
    o = opts(run, dir, task_model: task, num_threads: 1)
    {:ok, job} = DSPex.Optimize.start(SIMBA, S.program(run["program"]), trainset(run), o)
    S.kill_port_when_asked(job)
    {:ok, result} = DSPex.Optimize.await(job, 120_000)
    assert DSPex.Optimize.status(job).restarts == 1
    assert parallel_calls(result) == run["parallel_calls"]
    assert state(result.program) == run["best_program"]
    # no run twice: the task LM saw exactly DSPy's calls
    assert length(Scripted.requests(task)) == run["task_calls"]
  end

  test "a resumed job redoes no finished trial and no rule call", %{runs: runs, tmp_dir: dir} do
    run = Enum.find(runs, &(&1["name"] == "predict_b4_c3"))
    o = opts(run, dir)
    train = trainset(run)

    # stop in the second step's sampling: the first step is journaled
    {:ok, r1} = SIMBA.compile(S.program(run["program"]), train, Keyword.put(o, :max_lm_calls, 30))
    assert r1.status == :budget_exhausted
    assert r1.reason == {:max_lm_calls, 30}
    assert r1.program != nil
    rules_before = length(Scripted.requests(o[:prompt_model]))

    {:ok, job} =
      DSPex.Optimize.resume(
        o[:journal],
        S.program(run["program"]),
        train,
        Keyword.delete(o, :journal) |> Keyword.put(:optimizer, SIMBA)
      )

    {:ok, r2} = DSPex.Optimize.await(job)
    assert r2.status == :finished
    assert parallel_calls(r2) == run["parallel_calls"]
    assert state(r2.program) == run["best_program"]
    # the rule calls of the journaled steps were not made again
    assert length(Scripted.requests(o[:prompt_model])) == length(run["prompt_requests"])
    assert rules_before <= length(run["prompt_requests"])
  end

  test "a metric that raises and an LM that answers garbage score 0.0; the job ends with a program",
       %{tmp_dir: dir} do
    train = for i <- 1..6, do: S.example("What is #{i} plus #{i}?", "#{2 * i}")

    garbage =
      Scripted.new(fn _m, params ->
        if rem(params[:rollout_id] || 0, 2) == 0, do: "no fields at all", else: %{answer: "2"}
      end)

    metric = fn ex, pred ->
      if ex[:answer] == "4", do: raise("metric bug"), else: ex[:answer] == pred.answer
    end

    {:ok, result} =
      SIMBA.compile(DSPex.Predict.new("question -> answer"), train,
        metric: metric,
        task_model: garbage,
        prompt_model: prompt_lm(),
        bsize: 3,
        num_candidates: 2,
        max_steps: 2,
        journal: Path.join(dir, "garbage.journal"),
        progress: false
      )

    assert result.status == :finished
    assert %DSPex.Predict{} = result.program
    assert is_float(result.score)
  end

  test "a budget hit mid-run: clear status, the best program so far", %{tmp_dir: dir} do
    train = S.dataset(8, 1)

    {:ok, result} =
      SIMBA.compile(DSPex.Predict.new("question -> answer"), train,
        metric: &metric/2,
        task_model: task_lm(),
        prompt_model: prompt_lm(),
        bsize: 4,
        num_candidates: 3,
        max_steps: 3,
        max_lm_calls: 20,
        journal: Path.join(dir, "budget.journal"),
        progress: false
      )

    assert result.status == :budget_exhausted
    assert result.reason == {:max_lm_calls, 20}
    assert %DSPex.Predict{} = result.program
  end

  test "telemetry per trial", %{tmp_dir: dir} do
    test = self()
    ref = make_ref()
    journal = Path.join(dir, "t.journal")

    DSPex.Telemetry.attach_many(
      {__MODULE__, ref},
      [[:dspex, :optimize, :trial]],
      fn _event, m, meta, _ -> if meta.journal == journal, do: send(test, {ref, m, meta}) end,
      nil
    )

    {:ok, result} =
      SIMBA.compile(DSPex.Predict.new("question -> answer"), S.dataset(4, 1),
        metric: &metric/2,
        task_model: task_lm(),
        prompt_model: prompt_lm(),
        bsize: 2,
        num_candidates: 2,
        max_steps: 1,
        journal: journal,
        progress: false
      )

    for _ <- result.trial_logs, do: assert_received({^ref, %{score: _}, %{optimizer: _}})
  end

  test "a trainset smaller than bsize is refused" do
    assert_raise ArgumentError, ~r/Trainset too small: 2 < 4/, fn ->
      SIMBA.compile(DSPex.Predict.new("question -> answer"), S.dataset(2, 1),
        metric: &metric/2,
        task_model: task_lm(),
        bsize: 4,
        progress: false
      )
    end
  end

  @tag capture_log: true
  test "mix dspex.optimize --optimizer simba over a loopback LM server", %{tmp_dir: dir} do
    {:ok, srv} = S.start_lm_server()
    train = Path.join(dir, "train.jsonl")

    File.write!(
      train,
      Enum.map_join(S.dataset(8, 5), "", fn ex ->
        DSPex.JSON.encode!(%{question: ex[:question], answer: ex[:answer]}) <> "\n"
      end)
    )

    out = Path.join(dir, "qa.json")

    args =
      ~w(--optimizer simba --bsize 4 --num-candidates 2 --max-steps 2 --program question->answer --train #{train}
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
