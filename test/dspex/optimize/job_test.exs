defmodule DSPex.Optimize.JobTest do
  # Optimizer jobs under failure: kill -9 of the engine's port mid-trial, a budget that runs
  # out mid-trial, cancel, a full disk, metrics that raise, an LM that answers garbage, a
  # journal from another job; and status, telemetry, progress lines and the chart. The
  # reference for "the same result" is the real DSPy run in test/fixtures/mipro/traces.json.
  use ExUnit.Case, async: true

  alias DSPex.Optimize
  alias DSPex.Optimizers.MIPROv2
  alias DSPex.Test.OptimizeSupport, as: S

  @moduletag :tmp_dir
  @moduletag timeout: 300_000
  @moduletag capture_log: true
  @golden "light_predict_seed9"

  defp state(program) do
    {:ordered, pairs} = DSPex.Program.dump_state(program)

    pairs
    |> Enum.reject(fn {k, _} -> k == "metadata" end)
    |> then(&{:ordered, &1})
    |> DSPex.JSON.encode!()
    |> DSPex.JSON.decode!()
  end

  defp trials(result) do
    for l <- result.trial_logs,
        do: %{
          "number" => l.number,
          "kind" => Atom.to_string(l.kind),
          "params" => l.params,
          "examples" => if(l.examples == :all, do: nil, else: l.examples),
          "score" => l.score
        }
  end

  defp same_as_golden!(result, run) do
    assert trials(result) == run["trials"]
    assert state(result.program) == run["best_program"]
    assert result.score == run["best_score"]
  end

  # A task LM that, at its `at`-th call, has the test kill the engine's port and waits
  # until it is dead: the kill lands in the middle of a trial's evaluation.
  defp killing_task_lm(at, test) do
    DSPex.LM.Scripted.new(S.killing_reply(&S.task_reply/3, at, test), model: "scripted/task")
  end

  test "kill -9 of the port mid-trial: the job resumes from its journal, reuses the trial in flight and ends as DSPy did",
       %{tmp_dir: dir} do
    run = S.mipro_run(@golden)
    test = self()
    # the 400th task call is in the middle of a minibatch trial (after setup's ~200)
    task = killing_task_lm(400, test)
    opts = S.mipro_opts(run, journal: Path.join(dir, "j"), task_model: task, max_concurrency: 1)
    {:ok, job} = Optimize.start(MIPROv2, S.program("predict"), S.trainset(run), opts)

    S.kill_port_when_asked(job)

    {:ok, result} = Optimize.await(job, 120_000)
    same_as_golden!(result, run)
    assert Optimize.status(job).restarts == 1
    # no trial ran twice: the task LM saw exactly DSPy's calls
    assert length(DSPex.LM.Scripted.requests(task)) == run["task_calls"]
  end

  test "a budget hit mid-trial stops cleanly with the best program; a resume with more budget ends as DSPy did",
       %{tmp_dir: dir} do
    run = S.mipro_run(@golden)
    journal = Path.join(dir, "j")
    opts = S.mipro_opts(run, journal: journal, max_lm_calls: 420)
    {:ok, r} = MIPROv2.compile(S.program("predict"), S.trainset(run), opts)
    assert r.status == :budget_exhausted and r.reason == {:max_lm_calls, 420}
    assert r.usage.lm_calls <= 420

    # the trials told before the budget ran out are DSPy's first ones; the one in flight is not there
    told = trials(r)
    assert told == Enum.take(run["trials"], length(told)) and told != []
    assert r.program != nil and is_number(r.score)
    {:ok, _} = DSPex.call(r.program, %{question: "What is 1 plus 2?"}, lm: S.task_lm())

    {:ok, job} =
      Optimize.resume(journal, S.program("predict"), S.trainset(run), S.mipro_opts(run, []))

    {:ok, r2} = Optimize.await(job)
    assert r2.status == :finished
    same_as_golden!(r2, run)
  end

  test "max_cost, max_wall and stop_at_score end the job with their status", %{tmp_dir: dir} do
    run = S.mipro_run(@golden)

    prices = %{
      "scripted/task" => %{prompt: 100.0, completion: 100.0},
      "scripted/prompt" => %{prompt: 1.0, completion: 1.0}
    }

    {:ok, r} =
      MIPROv2.compile(
        S.program("predict"),
        S.trainset(run),
        S.mipro_opts(run, journal: Path.join(dir, "cost"), max_cost: 1.0, prices: prices)
      )

    assert r.status == :budget_exhausted and r.reason == {:max_cost, 1.0}
    assert r.usage.cost >= 1.0 and r.usage.cost < 1.5

    {:ok, r} =
      MIPROv2.compile(
        S.program("predict"),
        S.trainset(run),
        S.mipro_opts(run, journal: Path.join(dir, "wall"), max_wall: 1)
      )

    assert r.status == :budget_exhausted and r.reason == {:max_wall, 1}
    assert r.program == S.program("predict")

    {:ok, r} =
      MIPROv2.compile(
        S.program("predict"),
        S.trainset(run),
        S.mipro_opts(run, journal: Path.join(dir, "score"), stop_at_score: 60)
      )

    assert r.status == :stop_at_score and r.reason == {:stop_at_score, 60}
    # the default program already scores 64 (trial 1): nothing after it ran
    assert length(r.trial_logs) == 1 and r.score == 64.0

    assert_raise ArgumentError, ~r/max_cost: needs a price table/, fn ->
      MIPROv2.compile(S.program("predict"), S.trainset(run), S.mipro_opts(run, max_cost: 1.0))
    end
  end

  test "cancel: no LM call starts after it, the result is the best so far", %{tmp_dir: dir} do
    run = S.mipro_run(@golden)
    test = self()
    ref = make_ref()

    handler = fn _event, _m, meta, _ ->
      if meta.trial == 3, do: send(test, {ref, :trial3, meta.job})
    end

    DSPex.Telemetry.attach({__MODULE__, ref}, [:dspex, :optimize, :trial], handler, nil)

    {:ok, job} =
      Optimize.start(
        MIPROv2,
        S.program("predict"),
        S.trainset(run),
        S.mipro_opts(run, journal: Path.join(dir, "j"))
      )

    assert_receive {^ref, :trial3, ^job}, 60_000
    :ok = Optimize.cancel(job)
    {:ok, r} = Optimize.await(job)
    DSPex.Telemetry.detach({__MODULE__, ref})
    assert r.status == :cancelled and r.reason == :cancelled
    assert length(r.trial_logs) in 3..4
    assert Optimize.status(job).state == :cancelled
  end

  test "a full disk ends the job with :disk_full and the best program; the journal resumes", %{
    tmp_dir: dir
  } do
    run = S.mipro_run(@golden)
    wrapper = Path.join(dir, "limited_port")

    # 6 KiB (dash counts 512-byte blocks): the SETUP record (~2 KiB) fits, a few trials later the disk is full
    File.write!(wrapper, """
    #!/bin/sh
    ulimit -f 12
    trap '' XFSZ
    exec #{DSPex.Optimize.Engine.default_port_path()}
    """)

    File.chmod!(wrapper, 0o755)
    journal = Path.join(dir, "j")

    {:ok, job} =
      Optimize.start(
        MIPROv2,
        S.program("predict"),
        S.trainset(run),
        S.mipro_opts(run, journal: journal, port_path: wrapper)
      )

    assert {:error, %DSPex.Error{type: :disk_full} = e} = Optimize.await(job)
    assert e.message =~ "File too large"
    assert %Optimize.Result{status: :failed, program: %DSPex.Predict{}} = e.details.result

    {:ok, job} =
      Optimize.resume(journal, S.program("predict"), S.trainset(run), S.mipro_opts(run, []))

    {:ok, r} = Optimize.await(job)
    same_as_golden!(r, run)
  end

  test "a journal of another job is refused at resume, naming what differs", %{tmp_dir: dir} do
    run = S.mipro_run(@golden)
    journal = Path.join(dir, "j")

    {:ok, _} =
      MIPROv2.compile(
        S.program("predict"),
        S.trainset(run),
        S.mipro_opts(run, journal: journal, max_lm_calls: 5)
      )

    other = Enum.drop(S.trainset(run), 1)

    assert {:error, %DSPex.Error{type: :spec_mismatch} = e} =
             Optimize.resume(journal, S.program("predict"), other, S.mipro_opts(run, []))

    assert e.message =~ "trainset"

    assert {:error, %DSPex.Error{type: :not_found}} =
             Optimize.resume(Path.join(dir, "none"), S.program("predict"), other, [])
  end

  test "a metric that raises on some examples and an LM that answers garbage: the job finishes with a usable program",
       %{tmp_dir: dir} do
    run = S.mipro_run("custom_full")
    trainset = S.trainset(run)

    raising = fn ex, pred ->
      if String.contains?(ex[:question], "7"),
        do: raise("metric failed"),
        else: S.metric(ex, pred)
    end

    garbage =
      DSPex.LM.Scripted.new(fn messages, params, call ->
        if String.contains?(List.last(messages).content, "3"),
          do: "no fields here, just garbage",
          else: S.task_reply(messages, params, call)
      end)

    opts =
      S.mipro_opts(run,
        journal: Path.join(dir, "j"),
        metric: raising,
        task_model: garbage,
        max_errors: :infinity
      )

    {:ok, r} = MIPROv2.compile(S.program("two"), trainset, opts)
    assert r.status == :finished
    assert length(r.trial_logs) == length(run["trials"])
    assert is_number(r.score) and r.score < 100
    assert {:ok, _} = DSPex.call(r.program, %{question: "What is 1 plus 2?"}, lm: S.task_lm())
  end

  test "status, telemetry, progress lines and the chart", %{tmp_dir: dir} do
    run = S.mipro_run(@golden)
    test = self()
    ref = make_ref()
    {:ok, device} = StringIO.open("")

    journal = Path.join(dir, "j")

    # handlers are global: keep this job's events only (other tests run jobs too)
    DSPex.Telemetry.attach_many(
      {__MODULE__, ref},
      [
        [:dspex, :optimize, :trial],
        [:dspex, :optimize, :job, :start],
        [:dspex, :optimize, :job, :stop]
      ],
      fn event, m, meta, _ ->
        if meta.journal == journal, do: send(test, {ref, event, m, meta})
      end,
      nil
    )

    {:ok, job} =
      Optimize.start(
        MIPROv2,
        S.program("predict"),
        S.trainset(run),
        S.mipro_opts(run, journal: journal, progress: device)
      )

    assert_receive {^ref, [:dspex, :optimize, :trial], _, %{trial: 2}} = second, 60_000
    s = Optimize.status(job)

    assert s.state == :running and s.planned == 13 and s.trial >= 2 and s.best_score == 64.0 and
             s.best_trial == 1

    assert s.lm_calls > 0 and s.prompt_tokens > 0 and s.journal == journal
    assert Map.has_key?(s.usage_by_model, "scripted/task")
    {:ok, r} = Optimize.await(job)
    DSPex.Telemetry.detach({__MODULE__, ref})

    assert_received {^ref, [:dspex, :optimize, :job, :start], _,
                     %{optimizer: "mipro_v2", journal: ^journal}}

    assert_received {^ref, [:dspex, :optimize, :job, :stop], %{duration: _},
                     %{status: :finished, score: 64.0}}

    {^ref, _, _, meta2} = second
    events = Enum.sort_by([meta2 | collect_trials(ref)], & &1.trial)
    assert Enum.map(events, & &1.trial) == Enum.to_list(1..13)
    assert Enum.at(events, 1).kind == :objective and Enum.at(events, 1).examples == 35

    s = Optimize.status(job)
    assert s.state == :finished and s.trial == 13
    assert length(s.minibatch_scores) == 10 and length(s.full_scores) == 3

    {_, out} = StringIO.contents(device)

    lines =
      out |> String.split("\n", trim: true) |> Enum.filter(&String.starts_with?(&1, "Trial "))

    assert length(lines) == 13

    assert Enum.at(lines, 0) =~
             ~r/^Trial 1\/13  default\s+64\.00  best 64\.00 \(trial 1\)  calls \d+  \$0\.0000  ETA/

    assert Enum.at(lines, 1) =~ ~r/^Trial 2\/13  minibatch/

    assert r.chart == journal <> ".svg"
    svg = File.read!(r.chart)
    {doc, _} = :xmerl_scan.string(:binary.bin_to_list(svg), quiet: true)
    assert count(doc, ~c"//circle[@class='minibatch']") == 10
    assert count(doc, ~c"//rect[@class='full']") == 3
    assert count(doc, ~c"//polyline[@class='best']") == 1
    assert count(doc, ~c"//text[@class='title']") == 1

    [{:xmlAttribute, _, _, _, _, _, _, _, points, _}] =
      :xmerl_xpath.string(~c"//polyline/@points", doc)

    # best so far: 64.0 from trial 1 on (no full evaluation beat it)
    assert length(String.split(List.to_string(points))) == 2
  end

  defmodule Crashy do
    @moduledoc false
    # An optimizer whose run raises with a secret in the exception and a program in its args.
    @behaviour DSPex.Optimize.Optimizer
    def name, do: "crashy"
    def validate!(opts), do: opts
    def spec(_p, _t, _o), do: %{"seed" => 0}
    def run(_run, _program, _trainset, _opts), do: raise(MatchError, term: "sk-secret-in-data")
  end

  test "an optimizer that crashes: a clear error, the student as the program, no data in the log",
       %{tmp_dir: dir} do
    run = S.mipro_run(@golden)

    log =
      ExUnit.CaptureLog.capture_log(fn ->
        {:ok, job} =
          Optimize.start(Crashy, S.program("predict"), S.trainset(run),
            metric: &S.metric/2,
            journal: Path.join(dir, "c")
          )

        assert {:error, %DSPex.Error{type: :optimizer_crashed, message: msg} = e} =
                 Optimize.await(job)

        assert msg =~ "MatchError"

        assert e.details.result.program == S.program("predict") and
                 e.details.result.status == :failed
      end)

    assert log =~ "the optimizer's run crashed: MatchError"
    refute log =~ "sk-secret"
    refute log =~ "What is"
  end

  defp collect_trials(ref, acc \\ []) do
    receive do
      {^ref, [:dspex, :optimize, :trial], _m, meta} -> collect_trials(ref, [meta | acc])
    after
      0 -> Enum.sort_by(acc, & &1.trial)
    end
  end

  defp count(doc, xpath), do: length(:xmerl_xpath.string(xpath, doc))
end
