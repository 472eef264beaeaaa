# DSPex.Evaluate vs Python DSPy 3.3.1's Evaluate (and vs a plain Task.async_stream loop
# over DSPex.call) on ONE OpenAI-compatible loopback LM server that both call over HTTP:
# Predict("question -> answer"), exact match, N examples, server latency 0 and 50 ms,
# concurrency 1/16/64/256 (DSPy's num_threads the same). LM caches off on both sides.
#
#   MIX_ENV=prod mix run bench/evaluate.exs
#
# Environment: N (examples, default 1000), N_AT_1 (examples for the concurrency-1 runs,
# default 200 — at 50 ms one thread takes N × 50 ms), LATENCIES (default "0,50"),
# CONCURRENCY (default "1,16,64,256"), DSPY_PYTHON (default /work/venv/bin/python;
# without it the DSPy column is n/a).
#
# DSPex figures are the best of two runs (Evaluate, loop, loop, Evaluate); DSPy runs once.
#
# Targets: ≥ 20x DSPy at 0 ms; at 50 ms ≥ 90% of the ideal n × latency / concurrency;
# Evaluate not slower than the plain loop.

Code.require_file("../test/support/loopback_server.ex", __DIR__)
Code.require_file("../test/support/openai_loopback.ex", __DIR__)

alias DSPex.Test.OpenAILoopback

env_list = fn name, default ->
  System.get_env(name, default) |> String.split(",", trim: true) |> Enum.map(&String.to_integer/1)
end

n = String.to_integer(System.get_env("N", "1000"))
n_at_1 = min(String.to_integer(System.get_env("N_AT_1", "200")), n)
latencies = env_list.("LATENCIES", "0,50")
concurrency = env_list.("CONCURRENCY", "1,16,64,256")

python =
  [System.get_env("DSPY_PYTHON"), "/work/venv/bin/python", "/opt/dspy-venv/bin/python"]
  |> Enum.find(&(&1 && File.exists?(&1)))

# The LM answers a<i> to q<i>, except for every fourth question: exact match 75%.
answer = fn "q" <> i -> if rem(String.to_integer(i), 4) == 0, do: "wrong", else: "a" <> i end

devset =
  for i <- 1..n do
    DSPex.Example.new(question: "q#{i}", answer: "a#{i}")
    |> DSPex.Example.with_inputs([:question])
  end

data_path = Path.join(System.tmp_dir!(), "dspex_evaluate_bench_#{System.os_time()}.jsonl")
File.write!(data_path, Enum.map(devset, &[DSPex.JSON.encode!(DSPex.Example.to_map(&1)), "\n"]))

# Exact match as DSPy's answer_exact_match; the batched built-in once DSPex.Metrics exists.
{metric, metric_name} =
  if Code.ensure_loaded?(DSPex.Metrics) do
    {Function.capture(DSPex.Metrics, :answer_exact_match, 3),
     "DSPex.Metrics.answer_exact_match (batched)"}
  else
    normalize = fn s ->
      s
      |> String.downcase()
      |> String.replace(~r/[[:punct:]]/u, "")
      |> String.replace(~r/\b(a|an|the)\b/, " ")
      |> String.split()
      |> Enum.join(" ")
    end

    {fn ex, pred -> normalize.(ex[:answer]) == normalize.(pred.answer) end,
     "normalized exact match (function)"}
  end

secs = fn fun ->
  t0 = System.monotonic_time()
  result = fun.()
  {System.convert_time_unit(System.monotonic_time() - t0, :native, :microsecond) / 1.0e6, result}
end

fmt = fn
  nil -> "n/a"
  x -> :erlang.float_to_binary(x * 1.0, decimals: 2)
end

load = fn ->
  :os.cmd(~c"cat /proc/loadavg")
  |> to_string()
  |> String.split()
  |> Enum.take(3)
  |> Enum.join(" ")
end

IO.puts(
  "DSPex.Evaluate vs DSPy #{if python, do: "3.3.1 (#{python})", else: "(not found)"}; #{n} examples (#{n_at_1} at concurrency 1); metric: #{metric_name}"
)

IO.puts("machine: #{System.schedulers_online()} schedulers; load average at start #{load.()}\n")

rows =
  for latency <- latencies do
    {:ok, srv} = OpenAILoopback.start_link(answer: answer, delay_ms: latency)

    lm =
      DSPex.LM.new("openai/loopback",
        api_base: OpenAILoopback.api_base(srv),
        api_key: "loopback",
        cache: false
      )

    qa = DSPex.Predict.new("question -> answer", lm: lm)

    # Warm up the port pool, connections and code.
    {:ok, _} = DSPex.Evaluate.run(qa, Enum.take(devset, 50), metric: metric, max_concurrency: 16)

    py =
      if python do
        {out, status} =
          System.cmd(
            python,
            [
              Path.join(__DIR__, "py/evaluate_bench.py"),
              OpenAILoopback.api_base(srv),
              data_path,
              Enum.join(concurrency, ","),
              Integer.to_string(n_at_1)
            ],
            stderr_to_stdout: true
          )

        if status != 0, do: IO.puts("DSPy run failed (#{status}):\n" <> out)

        for [_, t, s, score] <-
              Regex.scan(~r/threads=(\d+) n=\d+ seconds=([0-9.]+) score=([0-9.]+)/, out),
            into: %{},
            do: {String.to_integer(t), {String.to_float(s), String.to_float(score)}}
      else
        %{}
      end

    for c <- concurrency do
      data = if c == 1, do: Enum.take(devset, n_at_1), else: devset
      size = length(data)

      run_eval = fn ->
        secs.(fn -> DSPex.Evaluate.run(qa, data, metric: metric, max_concurrency: c) end)
      end

      run_loop = fn ->
        secs.(fn ->
          data
          |> Task.async_stream(
            fn ex ->
              {:ok, p} = DSPex.call(qa, ex)
              metric.(ex, p, nil)
            end,
            max_concurrency: c,
            timeout: :infinity
          )
          |> Enum.reduce(0, fn {:ok, s}, acc -> acc + DSPex.Evaluate.Score.value(s) end)
        end)
      end

      # Best of two, in the order Evaluate, loop, loop, Evaluate (the machine is shared).
      {t_eval1, {:ok, r}} = run_eval.()
      {t_loop1, loop_sum} = run_loop.()
      {t_loop2, _} = run_loop.()
      {t_eval2, {:ok, _}} = run_eval.()
      {t_eval, t_loop} = {min(t_eval1, t_eval2), min(t_loop1, t_loop2)}

      {t_py, py_score} = Map.get(py, c, {nil, nil})

      if py_score && py_score != r.score,
        do: IO.puts("!! scores differ: DSPex #{r.score}, DSPy #{py_score}")

      true = loop_sum == r.sum
      ideal = size * latency / 1000 / c

      %{
        latency: latency,
        c: c,
        n: size,
        eval: t_eval,
        loop: t_loop,
        py: t_py,
        ideal: ideal,
        score: r.score
      }
    end
    |> tap(fn _ -> DSPex.Test.LoopbackServer.stop(srv) end)
  end
  |> List.flatten()

header = [
  "latency",
  "conc",
  "n",
  "DSPex Eval s",
  "loop s",
  "DSPy s",
  "DSPy/DSPex",
  "loop/Eval",
  "ideal s",
  "% of ideal",
  "score"
]

widths = [7, 5, 5, 12, 8, 8, 10, 9, 8, 10, 6]

line = fn cells ->
  cells
  |> Enum.zip(widths)
  |> Enum.map_join("  ", fn {c, w} -> String.pad_leading(c, w) end)
  |> IO.puts()
end

line.(header)

for r <- rows do
  pct = if r.ideal > 0, do: fmt.(100 * r.ideal / r.eval) <> "%", else: "-"

  line.([
    "#{r.latency} ms",
    "#{r.c}",
    "#{r.n}",
    fmt.(r.eval),
    fmt.(r.loop),
    fmt.(r.py),
    if(r.py, do: fmt.(r.py / r.eval) <> "x", else: "n/a"),
    fmt.(r.loop / r.eval) <> "x",
    if(r.ideal > 0, do: fmt.(r.ideal), else: "-"),
    pct,
    "#{r.score}"
  ])
end

IO.puts("\nload average at end #{load.()}")
File.rm(data_path)
