# MIPROv2 on the optimizer engine, DSPex vs Python DSPy 3.3.1 in the same run.
#
#   1. Engine overhead: DSPex MIPROv2 auto: :light on Predict("question -> answer") with
#      an OpenAI-compatible loopback LM that answers after LATENCY ms (DSPex's HTTP goes
#      through its port program): the time spent inside the engine and crossing to it
#      (every ask, tell, setup and journal note, round trip included, as measured by
#      DSPex.Optimize.Run) against the job's wall time.
#   2. The same MIPROv2 light configuration in Python DSPy on the same kind of server
#      (a fresh one per run: its prompt-model replies count calls), same data, same
#      answers, LM caches off: wall-time ratio. Both sides must reach the same trial
#      scores and best score (checked). DSPy runs at its default num_threads (8) and at
#      THREADS; DSPex at THREADS.
#
#   3. SIMBA (bsize 32, 6 candidates, 8 steps) on the same data and server, DSPex vs
#      DSPy: wall-time ratio; both must end with the same candidate scores (checked).
#      SIMBA=0 skips it.
#   4. GEPA auto: :light (trainset = valset) the same way: both must reach the same best
#      validation score, candidate count and metric calls (checked). GEPA=0 skips it.
#
#   MIX_ENV=prod mix run bench/optimize.exs
#
# Environment: N (training examples, default 130: light's valset of 100), LATENCY (ms,
# default 20), THREADS (default 32), DSPY_PYTHON (default /work/venv/bin/python;
# without it the DSPy columns are n/a).

Code.require_file("../test/support/loopback_server.ex", __DIR__)
Code.require_file("../test/support/optimize_support.ex", __DIR__)

alias DSPex.Test.OptimizeSupport, as: S

n = String.to_integer(System.get_env("N", "130"))
latency = String.to_integer(System.get_env("LATENCY", "20"))
threads = String.to_integer(System.get_env("THREADS", "32"))

python =
  [System.get_env("DSPY_PYTHON"), "/work/venv/bin/python"]
  |> Enum.find(&(&1 && File.exists?(&1)))

load = fn -> File.read!("/proc/loadavg") |> String.split() |> Enum.take(3) |> Enum.join(" ") end
trainset = S.dataset(n, 7)
data_path = Path.join(System.tmp_dir!(), "dspex_optimize_bench_#{System.os_time()}.jsonl")

File.write!(
  data_path,
  Enum.map_join(
    trainset,
    "",
    &(DSPex.JSON.encode!(%{question: &1[:question], answer: &1[:answer]}) <> "\n")
  )
)

lm_for = fn srv ->
  DSPex.LM.new("openai/loopback",
    api_base: S.lm_server_base(srv),
    api_key: "loopback",
    cache: false
  )
end

dspex_run = fn ->
  {:ok, srv} = S.start_lm_server(delay_ms: latency)
  lm = lm_for.(srv)
  # warm-up: task-model calls only (they do not move the server's prompt counters)
  {:ok, _} =
    DSPex.Evaluate.run(DSPex.Predict.new("question -> answer", lm: lm), Enum.take(trainset, 5),
      metric: &S.metric/2
    )

  journal = Path.join(System.tmp_dir!(), "dspex_optimize_bench_#{System.os_time()}.journal")
  t0 = System.monotonic_time(:microsecond)

  {:ok, r} =
    DSPex.Optimizers.MIPROv2.compile(DSPex.Predict.new("question -> answer"), trainset,
      metric: &S.metric/2,
      prompt_model: lm,
      task_model: lm,
      auto: :light,
      max_concurrency: threads,
      journal: journal,
      chart: false,
      progress: false
    )

  wall = System.monotonic_time(:microsecond) - t0
  requests = S.lm_server_count(srv) - 5
  File.rm(journal)
  %{wall_us: wall, result: r, requests: requests}
end

py_run = fn t ->
  {:ok, srv} = S.start_lm_server(delay_ms: latency)

  {out, status} =
    System.cmd(
      python,
      [
        Path.join(__DIR__, "py/optimize_mipro_bench.py"),
        S.lm_server_base(srv),
        data_path,
        "#{t}"
      ],
      stderr_to_stdout: true
    )

  case Regex.run(~r/threads=\d+ seconds=([0-9.]+) best=([0-9.]+) trials=(\d+) scores=(\S+)/, out) do
    [_, s, best, _trials, scores] ->
      %{
        wall_us: round(String.to_float(s) * 1_000_000),
        best: String.to_float(best),
        scores: scores |> String.split(",") |> Enum.map(&String.to_float/1),
        requests: S.lm_server_count(srv) - 5
      }

    nil ->
      IO.puts("DSPy run failed (#{status}):\n" <> String.slice(out, -2000, 2000))
      nil
  end
end

IO.puts(
  "MIPROv2 auto: :light, DSPex vs DSPy #{if python, do: "3.3.1 (#{python})", else: "(not found)"}"
)

IO.puts("#{n} training examples, loopback LM #{latency} ms per reply, LM caches off")
IO.puts("machine: #{System.schedulers_online()} schedulers; load average at start #{load.()}\n")

runs = for _ <- 1..2, do: dspex_run.()
best = Enum.min_by(runs, & &1.wall_us)
r = best.result
engine_us = r.extra.engine_us
sync_us = r.extra.sync_us || 0
port_us = r.extra.port_us || 0
scores = Enum.map(r.trial_logs, & &1.score)

IO.puts(
  "1. Engine overhead (DSPex, best of 2, max_concurrency #{threads}); every engine call of the job,"
)

IO.puts("   from opening (creating) the journal to the DONE record, round trips included")

IO.puts(
  "   wall #{Float.round(best.wall_us / 1.0e6, 3)} s, #{best.requests} LM requests, #{length(scores)} trials, best #{r.score}"
)

IO.puts(
  "   engine + ask/tell crossings: #{Float.round(engine_us / 1000, 1)} ms = " <>
    "#{Float.round(100 * engine_us / best.wall_us, 3)}% of wall (target < 2%)"
)

pct = fn us -> "#{Float.round(us / 1000, 1)} ms (#{Float.round(100 * us / best.wall_us, 2)}%)" end
IO.puts("   - in the port (ETF decode, engine, journal writes, reply): #{pct.(port_us)}")

IO.puts(
  "     of which fdatasync, #{length(scores) + 2} commits (setup, one per trial, done): #{pct.(sync_us)}"
)

IO.puts("   - crossings (BEAM <-> port round trips, OS scheduling): #{pct.(engine_us - port_us)}")
IO.puts("   - all but fdatasync: #{pct.(engine_us - sync_us)}\n")

py = if python, do: for(t <- Enum.uniq([8, threads]), do: {t, py_run.(t)}), else: []

IO.puts("2. Wall time, same configuration and answers")
IO.puts("   | side | concurrency | wall (s) | LM requests | best | same trials | DSPy / DSPex |")
IO.puts("   |---|---|---|---|---|---|---|")

IO.puts(
  "   | DSPex | #{threads} | #{Float.round(best.wall_us / 1.0e6, 3)} | #{best.requests} | #{r.score} | - | 1.0 |"
)

for {t, res} <- py do
  case res do
    nil ->
      IO.puts("   | DSPy | #{t} | n/a | | | | |")

    res ->
      same = res.scores == scores and res.best == r.score

      IO.puts(
        "   | DSPy | #{t} | #{Float.round(res.wall_us / 1.0e6, 3)} | #{res.requests} | #{res.best} | " <>
          "#{if same, do: "yes", else: "NO"} | #{Float.round(res.wall_us / best.wall_us, 2)}x |"
      )
  end
end

# SIMBA's rule model and GEPA's reflection model: a second loopback server answering every request
# with the same advice (GEPA takes the whole reply as its new instruction) (the task server knows only the task and MIPRO's proposers)
rules_server = fn ->
  reply =
    "[[ ## discussion ## ]]\nThe worse run guessed.\n\n[[ ## module_advice ## ]]\n" <>
      ~s({"self": "Add the two numbers digit by digit."}) <> "\n\n[[ ## completed ## ]]"

  body =
    DSPex.JSON.encode!(%{
      id: "chatcmpl-rules",
      object: "chat.completion",
      created: 0,
      model: "rules",
      choices: [
        %{index: 0, message: %{role: "assistant", content: reply}, finish_reason: "stop"}
      ],
      usage: %{prompt_tokens: 1, completion_tokens: 1, total_tokens: 2}
    })

  route = fn _req ->
    %{
      status: 200,
      delay_ms: if(latency > 0, do: latency),
      headers: [{"content-type", "application/json"}],
      body: body
    }
  end

  {:ok, srv} =
    DSPex.Test.LoopbackServer.start_link(
      routes: %{"/v1/chat/completions" => route},
      record: false
    )

  srv
end

simba_bench = fn ->
  {bsize, cands, steps} = {32, 6, 8}
  simba_metric = fn ex, pred -> if ex[:answer] == pred.answer, do: 1.0, else: 0.0 end

  dspex = fn ->
    {:ok, srv} = S.start_lm_server(delay_ms: latency)
    lm = lm_for.(srv)
    rules = lm_for.(rules_server.())
    journal = Path.join(System.tmp_dir!(), "dspex_simba_bench_#{System.os_time()}.journal")
    t0 = System.monotonic_time(:microsecond)

    {:ok, r} =
      DSPex.Optimizers.SIMBA.compile(DSPex.Predict.new("question -> answer"), trainset,
        metric: simba_metric,
        task_model: lm,
        prompt_model: rules,
        bsize: bsize,
        num_candidates: cands,
        max_steps: steps,
        num_threads: threads,
        journal: journal,
        chart: false,
        progress: false
      )

    wall = System.monotonic_time(:microsecond) - t0
    File.rm(journal)

    %{
      wall_us: wall,
      scores: Enum.map(r.candidate_programs, & &1.score),
      requests: S.lm_server_count(srv)
    }
  end

  py = fn t ->
    {:ok, srv} = S.start_lm_server(delay_ms: latency)

    {out, status} =
      System.cmd(
        python,
        [Path.join(__DIR__, "py/optimize_simba_bench.py"), S.lm_server_base(srv), data_path] ++
          Enum.map([t, bsize, cands, steps], &to_string/1) ++
          [S.lm_server_base(rules_server.())],
        stderr_to_stdout: true
      )

    case Regex.run(~r/threads=\d+ seconds=([0-9.]+) best=\S+ candidates=(\S+)/, out) do
      [_, sec, scores] ->
        %{
          wall_us: round(String.to_float(sec) * 1_000_000),
          scores: scores |> String.split(",") |> Enum.map(&String.to_float/1),
          requests: S.lm_server_count(srv) - 5
        }

      nil ->
        IO.puts("DSPy SIMBA run failed (#{status}):\n" <> String.slice(out, -2000, 2000))
        nil
    end
  end

  IO.puts(
    "\n3. SIMBA bsize #{bsize}, #{cands} candidates, #{steps} steps; load average #{load.()}"
  )

  runs = for _ <- 1..3, do: dspex.()
  walls = runs |> Enum.map(& &1.wall_us) |> Enum.sort()
  median = Enum.at(walls, 1)
  d = hd(runs)

  IO.puts(
    "   | side | concurrency | wall (s), median of 3 | LM requests | same candidate scores | DSPy / DSPex |"
  )

  IO.puts("   |---|---|---|---|---|---|")

  IO.puts(
    "   | DSPex | #{threads} | #{Float.round(median / 1.0e6, 3)} | #{d.requests} | - | 1.0 |"
  )

  if python do
    for t <- Enum.uniq([8, threads]) do
      case py.(t) do
        nil ->
          IO.puts("   | DSPy | #{t} | n/a | | | |")

        res ->
          IO.puts(
            "   | DSPy | #{t} | #{Float.round(res.wall_us / 1.0e6, 3)} | #{res.requests} | " <>
              "#{if res.scores == d.scores, do: "yes", else: "NO"} | #{Float.round(res.wall_us / median, 2)}x |"
          )
      end
    end
  end
end

if System.get_env("SIMBA", "1") != "0", do: simba_bench.()

gepa_bench = fn ->
  gepa_metric = fn gold, pred, _trace, _name, _pred_trace ->
    ok = gold[:answer] == pred.answer

    %{
      score: if(ok, do: 1.0, else: 0.0),
      feedback: if(ok, do: "Correct.", else: "Expected #{gold[:answer]}.")
    }
  end

  dspex = fn ->
    {:ok, srv} = S.start_lm_server(delay_ms: latency)
    lm = lm_for.(srv)
    reflection = lm_for.(rules_server.())
    journal = Path.join(System.tmp_dir!(), "dspex_gepa_bench_#{System.os_time()}.journal")
    t0 = System.monotonic_time(:microsecond)

    {:ok, r} =
      DSPex.Optimizers.GEPA.compile(DSPex.Predict.new("question -> answer"), trainset,
        metric: gepa_metric,
        task_model: lm,
        reflection_lm: reflection,
        auto: :light,
        num_threads: threads,
        track_stats: true,
        journal: journal,
        chart: false,
        progress: false
      )

    wall = System.monotonic_time(:microsecond) - t0
    File.rm(journal)
    d = r.extra.detailed_results
    %{wall_us: wall, best: r.score, candidates: length(d.candidates), calls: d.total_metric_calls}
  end

  py = fn t ->
    {:ok, srv} = S.start_lm_server(delay_ms: latency)

    {out, status} =
      System.cmd(
        python,
        [
          Path.join(__DIR__, "py/optimize_gepa_bench.py"),
          S.lm_server_base(srv),
          data_path,
          to_string(t),
          S.lm_server_base(rules_server.())
        ],
        stderr_to_stdout: true
      )

    case Regex.run(~r/seconds=([0-9.]+) best=(\S+) candidates=(\d+) metric_calls=(\d+)/, out) do
      [_, sec, best, cands, calls] ->
        %{
          wall_us: round(String.to_float(sec) * 1_000_000),
          best: String.to_float(best),
          candidates: String.to_integer(cands),
          calls: String.to_integer(calls)
        }

      nil ->
        IO.puts("DSPy GEPA run failed (#{status}):\n" <> String.slice(out, -2000, 2000))
        nil
    end
  end

  IO.puts("\n4. GEPA auto: :light, trainset = valset; load average #{load.()}")
  runs = for _ <- 1..3, do: dspex.()
  median = runs |> Enum.map(& &1.wall_us) |> Enum.sort() |> Enum.at(1)
  d = hd(runs)

  IO.puts(
    "   | side | concurrency | wall (s), median of 3 | metric calls | candidates | best | same | DSPy / DSPex |"
  )

  IO.puts("   |---|---|---|---|---|---|---|---|")

  IO.puts(
    "   | DSPex | #{threads} | #{Float.round(median / 1.0e6, 3)} | #{d.calls} | #{d.candidates} | #{d.best} | - | 1.0 |"
  )

  if python do
    for t <- Enum.uniq([8, threads]) do
      case py.(t) do
        nil ->
          IO.puts("   | DSPy | #{t} | n/a | | | | | |")

        res ->
          same = res.best == d.best and res.candidates == d.candidates and res.calls == d.calls

          IO.puts(
            "   | DSPy | #{t} | #{Float.round(res.wall_us / 1.0e6, 3)} | #{res.calls} | #{res.candidates} | #{res.best} | " <>
              "#{if same, do: "yes", else: "NO"} | #{Float.round(res.wall_us / median, 2)}x |"
          )
      end
    end
  end
end

if System.get_env("GEPA", "1") != "0", do: gepa_bench.()

IO.puts("\nload average at end #{load.()}")
File.rm(data_path)
