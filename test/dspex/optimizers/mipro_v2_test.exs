defmodule DSPex.Optimizers.MIPROv2Test do
  # MIPROv2 end to end against real DSPy 3.3.1 + optuna 5.0.0 (test/fixtures/mipro/traces.json,
  # tools/gen_mipro_traces.py), with the same scripted LMs: the same valset sample, demo
  # sets, proposer prompts (all but the program's source code), instruction candidates,
  # trials (parameters, minibatch examples, scores), task-model call count, best program
  # and candidate lists. Then DSPy's parameter checks, the quirk switches and resume.
  use ExUnit.Case, async: true

  alias DSPex.Optimizers.MIPROv2
  alias DSPex.Test.OptimizeSupport, as: S

  @moduletag :tmp_dir
  @moduletag timeout: 600_000

  setup_all do
    %{"runs" => runs} = "test/fixtures/mipro/traces.json" |> File.read!() |> DSPex.JSON.decode!()
    {:ok, runs: Map.new(runs, &{&1["name"], &1})}
  end

  defp trainset(run), do: for(e <- run["trainset"], do: S.example(e["question"], e["answer"]))

  defp opts(run, dir, extra \\ []) do
    init = run["init"]
    comp = run["compile"]

    kw =
      for {k, v} <- Map.merge(init, comp), k != "seed" or comp["seed"] != nil do
        key = String.to_atom(k)
        {key, if(key == :auto and v != nil, do: String.to_atom(v), else: v)}
      end

    [
      metric: &S.metric/2,
      prompt_model: S.prompt_lm(),
      task_model: S.task_lm(),
      journal: Path.join(dir, run["name"] <> ".journal"),
      max_concurrency: 8,
      progress: false
    ] ++ kw ++ extra
  end

  # The program_code field's value is the program's source: Python there, Elixir here.
  defp mask_code(text),
    do:
      Regex.replace(
        ~r/\[\[ ## program_code ## \]\]\n.*?\n\n(?=\[\[ ## )/s,
        text,
        "[[ ## program_code ## ]]\n<code>\n\n"
      )

  defp requests(lm) do
    for r <- DSPex.LM.Scripted.requests(lm) do
      %{
        "messages" =>
          Enum.map(r.messages, &%{"role" => &1[:role], "content" => mask_code(&1[:content])}),
        "n" => r.params[:n] || 1,
        "temperature" => r.params[:temperature],
        "rollout_id" => r.params[:rollout_id]
      }
    end
  end

  defp want_requests(run) do
    for r <- run["prompt_requests"] do
      %{
        r
        | "messages" =>
            Enum.map(r["messages"], &Map.update!(&1, "content", fn c -> mask_code(c) end))
      }
    end
  end

  defp state(program) do
    {:ordered, pairs} = DSPex.Program.dump_state(program)

    pairs
    |> Enum.reject(fn {k, _} -> k == "metadata" end)
    |> then(&{:ordered, &1})
    |> DSPex.JSON.encode!()
    |> DSPex.JSON.decode!()
  end

  defp check_run(run, dir) do
    o = opts(run, dir)
    train = trainset(run)
    {:ok, r} = MIPROv2.compile(S.program(run["program"]), train, o)
    name = run["name"]

    got_trials =
      for l <- r.trial_logs do
        %{
          "number" => l.number,
          "kind" => Atom.to_string(l.kind),
          "params" => l.params,
          "examples" => if(l.examples == :all, do: nil, else: l.examples),
          "score" => l.score
        }
      end

    assert got_trials == run["trials"], "#{name}: trials differ"
    assert requests(o[:prompt_model]) == want_requests(run), "#{name}: proposer prompts differ"

    assert length(DSPex.LM.Scripted.requests(o[:task_model])) == run["task_calls"],
           "#{name}: task calls differ"

    assert r.score == run["best_score"]
    assert state(r.program) == run["best_program"], "#{name}: best program differs"

    assert Enum.map(r.candidate_programs, &%{"score" => &1.score, "full_eval" => &1.full_eval}) ==
             run["candidate_programs"]

    assert Enum.map(r.mb_candidate_programs, &%{"score" => &1.score, "full_eval" => &1.full_eval}) ==
             run["mb_candidate_programs"]

    assert r.total_calls == 0 and r.prompt_model_total_calls == 0
    assert r.status == :finished
    r
  end

  for name <-
        ~w(light_predict_seed9 light_cot_seed42 light_predict_seed0_is_9 light_two_seed7 light_three_seed3
                 light_zeroshot light_small_valset_no_minibatch light_no_data_aware medium_predict custom_minibatch
                 custom_full custom_minibatch_two custom_zeroshot_minibatch light_predict_seed123) do
    test "golden run #{name}", %{runs: runs, tmp_dir: dir} do
      check_run(Map.fetch!(runs, unquote(name)), dir)
    end
  end

  test "demo sets and instruction candidates are DSPy's", %{runs: runs, tmp_dir: dir} do
    run = runs["light_cot_seed42"]
    o = opts(run, dir)
    {:ok, job} = DSPex.Optimize.start(MIPROv2, S.program("cot"), trainset(run), o)
    {:ok, r} = DSPex.Optimize.await(job)
    # the journal's setup record holds them: read it back through a resume of the finished job
    {:ok, e, replay} = open_journal(r.journal)
    {:setup, _cfg, blob} = Enum.find(replay.events, &match?({:setup, _, _}, &1))
    DSPex.Optimize.Engine.close(e)
    assert Map.values(blob.instruction_candidates) == run["instruction_candidates"]

    got_demos =
      for {_i, sets} <- Enum.sort(blob.demo_candidates) do
        for set <- sets,
            do:
              Enum.map(
                set,
                &(&1 |> DSPex.Program.jsonable() |> DSPex.JSON.encode!() |> DSPex.JSON.decode!())
              )
      end

    assert got_demos == run["demo_candidates"]
    assert Enum.map(blob.valset, &(&1 + offset(run))) == run["valset"]
  end

  # The valset is the last 80% of the trainset; blob.valset indexes into it.
  defp offset(run),
    do: length(run["trainset"]) - min(1000, max(1, trunc(length(run["trainset"]) * 0.8)))

  # The finished job's journal, opened with its own spec (read from its first record).
  defp open_journal(path) do
    {:ok,
     <<_::binary-size(16), "DXJR", len::little-32, _::binary-size(16), spec::binary-size(len),
       _::binary>>} = File.read(path)

    {:ok, e, replay} = DSPex.Optimize.Engine.open(path, spec, :inspect)
    {:ok, e, replay}
  end

  test "DSPy's checks of auto, num_candidates and num_trials" do
    train = S.dataset(10, 1)
    p = S.program("predict")

    assert_raise ArgumentError,
                 ~r/num_trials must also be provided.*recommend setting num_trials to ~10\./,
                 fn ->
                   MIPROv2.compile(p, train, metric: &S.metric/2, auto: nil, num_candidates: 6)
                 end

    assert_raise ArgumentError, "If auto is None, num_candidates must also be provided.", fn ->
      MIPROv2.compile(p, train, metric: &S.metric/2, auto: nil)
    end

    assert_raise ArgumentError,
                 ~r/If auto is not None, num_candidates and num_trials cannot be set/,
                 fn ->
                   MIPROv2.compile(p, train, metric: &S.metric/2, num_trials: 3)
                 end

    assert_raise ArgumentError,
                 ~r/Minibatch size cannot exceed the size of the valset. Valset size: 8./,
                 fn ->
                   MIPROv2.compile(p, train,
                     metric: &S.metric/2,
                     auto: nil,
                     num_candidates: 2,
                     num_trials: 2
                   )
                 end

    assert_raise ArgumentError, ~r/auto/, fn ->
      MIPROv2.compile(p, train, metric: &S.metric/2, auto: :huge)
    end

    assert MIPROv2.num_trials(p, false, 6) == 10 and
             MIPROv2.num_trials(S.program("two"), false, 12) == 28
  end
end
