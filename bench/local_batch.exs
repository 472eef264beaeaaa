# Shared-prefix KV reuse and continuous batching on SmolLM2-135M-Instruct Q4_1, through
# the product path (DSPex.Evaluate -> DSPex.LM.Local -> the model's batch driver -> NIF):
#
#   (a) Evaluate of N examples whose prompts share a long system prompt (the program's
#       instructions), one at a time: prefix reuse on vs off;
#   (b) the same Evaluate with max_concurrency 8 vs 1 (batching on), and 8 with batching
#       off (each request decodes alone; they take turns on the model's threads);
#   (c) the same kind of requests as raw token prompts (system prompt + a question, G
#       greedy tokens each, no end of generation): DSPex one at a time and 8 at a time
#       against llama.cpp handling them one at a time through its C API
#       (bench/local_batch_llama.c over the prebuilt libllama v0.5.0, flash attention off,
#       F32 KV, like this engine), with a fresh KV cache per request and keeping the
#       common prefix of consecutive prompts (what llama-server's cache_prompt does).
#
# Each run alternates every configuration (so machine load hits them alike); figures are
# medians over BENCH_RUNS runs, with the load average printed before and after.
#
#   mix run bench/local_batch.exs          (MIX_ENV=prod via make bench)
#   BENCH_N=12 BENCH_RUNS=3 BENCH_THREADS=1 BENCH_PREFIX=16 BENCH_GEN=48 BENCH_PARTS=abc
#
# Needs the model (mix dspex.model.get smollm2); the llama.cpp side needs the reference
# install (DSPEX_GGUF_REF, else _build/gguf-ref) and a C compiler, else part (c) prints
# only DSPex's figures.

alias DSPex.Local

n = String.to_integer(System.get_env("BENCH_N", "12"))
runs = String.to_integer(System.get_env("BENCH_RUNS", "3"))
threads = String.to_integer(System.get_env("BENCH_THREADS", "1"))
repeats = String.to_integer(System.get_env("BENCH_PREFIX", "16"))
gen = String.to_integer(System.get_env("BENCH_GEN", "48"))
parts = System.get_env("BENCH_PARTS", "abc")

model_path =
  case Local.Models.resolve("smollm2") do
    {:ok, p} -> p
    {:error, e} -> IO.puts("bench/local_batch.exs skipped: #{e.message}") && System.halt(0)
  end

DSPex.LM.Cache.configure(dir: Path.join(System.tmp_dir!(), "dspex_bench_local_batch"))

load_avg = fn ->
  :os.cmd(~c"cat /proc/loadavg") |> to_string() |> String.split() |> hd()
end

median = fn xs -> xs |> Enum.sort() |> Enum.at(div(length(xs), 2)) end

timed = fn f ->
  t0 = System.monotonic_time(:microsecond)
  r = f.()
  {(System.monotonic_time(:microsecond) - t0) / 1.0e6, r}
end

instructions =
  String.duplicate(
    "You answer questions about world geography. Think step by step, keep the reasoning to one " <>
      "short sentence, and give the answer as a single proper noun without punctuation. ",
    repeats
  )

countries =
  ~w(France Spain Italy Germany Portugal Austria Poland Greece Norway Sweden Finland Ireland
     Japan Chile Peru Egypt Kenya Canada Brazil Mexico Cuba India China Iran)

capitals = ~w(Paris Madrid Rome Berlin Lisbon Vienna Warsaw Athens Oslo Stockholm Helsinki Dublin
     Tokyo Santiago Lima Cairo Nairobi Ottawa Brasilia Mexico Havana Delhi Beijing Tehran)

devset =
  for {c, a} <- Enum.zip(countries, capitals) |> Enum.take(n) do
    DSPex.Example.new(question: "What is the capital of #{c}?", answer: a)
    |> DSPex.Example.with_inputs([:question])
  end

# usage of every LM request, summed per configuration
counter = :counters.new(2, [:atomics])

DSPex.Telemetry.attach(
  "bench-local-batch",
  [:dspex, :lm, :request, :stop],
  fn _, _, meta, _ ->
    case meta do
      %{usage: %{prompt_tokens: p, completion_tokens: c}} ->
        :counters.add(counter, 1, p)
        :counters.add(counter, 2, c)

      _ ->
        :ok
    end
  end,
  nil
)

metric = fn ex, pred -> ex[:answer] == pred.answer end

evaluate = fn load_opts, conc ->
  lm =
    DSPex.LM.Local.new(
      model_path,
      [threads: threads, max_tokens: 64, cache: false] ++ load_opts
    )

  sig = DSPex.ChainOfThought.new("question -> answer").predict.signature
  cot = DSPex.ChainOfThought.new(DSPex.Signature.with_instructions(sig, instructions), lm: lm)
  :counters.put(counter, 1, 0)
  :counters.put(counter, 2, 0)

  {secs, {:ok, res}} =
    timed.(fn ->
      DSPex.Evaluate.run(cot, devset, metric: metric, max_concurrency: conc, max_errors: n)
    end)

  s = Local.stats(lm.local)

  %{
    secs: secs,
    score: res.score,
    prompt: :counters.get(counter, 1),
    completion: :counters.get(counter, 2),
    prefilled: s.prefilled_tokens,
    reused: s.reused_tokens,
    answers: Enum.map(res.results, fn {_, p, _} -> p && Map.get(p, :answer) end)
  }
end

# (c): the raw requests
chat_model = Local.load!(model_path, threads: threads, batching: false, prefix_cache: 0)

requests =
  for ex <- devset do
    {:ok, text} =
      Local.apply_chat_template(chat_model, [
        %{role: "system", content: instructions},
        %{role: "user", content: ex[:question]}
      ])

    Local.tokenize(chat_model, text, add_special: true, parse_special: true)
  end

shared =
  requests
  |> Enum.zip_reduce(0, fn _, acc -> acc end)
  |> then(fn _ ->
    [a, b | _] = requests
    Enum.zip(a, b) |> Enum.take_while(fn {x, y} -> x == y end) |> length()
  end)

raw = fn load_opts, conc ->
  m = Local.load!(model_path, [threads: threads] ++ load_opts)
  opts = [max_tokens: gen, temperature: 0, ignore_eos: true]

  {secs, toks} =
    timed.(fn ->
      requests
      |> Task.async_stream(&Local.generate!(m, &1, opts).tokens,
        max_concurrency: conc,
        timeout: :infinity
      )
      |> Enum.map(fn {:ok, t} -> t end)
    end)

  %{secs: secs, tokens: toks, prefilled: Local.stats(m).prefilled_tokens}
end

ref_dir =
  Enum.find(
    [System.get_env("DSPEX_GGUF_REF"), "_build/gguf-ref", "/work/gguf-ref"],
    &(&1 && File.dir?(&1))
  )

libdir =
  ref_dir &&
    Path.expand(Path.join(ref_dir, "node_modules/@node-llama-cpp/linux-x64/bins/linux-x64"))

llama =
  with true <- ref_dir != nil and File.dir?(libdir) and String.contains?(parts, "c"),
       exe = Path.expand("_build/local_batch_llama"),
       {_, 0} <-
         System.cmd(
           "cc",
           ["-O2", "-o", exe, "bench/local_batch_llama.c", "-I#{ref_dir}/llama-src/include"] ++
             ["-I#{ref_dir}/llama-src/ggml/include", "-L#{libdir}", "-l:libllama.v0.5.0.so"] ++
             ["-l:libggml.v0.5.0.so", "-l:libggml-base.so", "-Wl,-rpath,#{libdir}"],
           stderr_to_stdout: true
         ) do
    input = Path.expand("_build/local_batch_requests.txt")
    File.write!(input, Enum.map(requests, &"#{gen} #{Enum.join(&1, " ")}\n"))
    {exe, input}
  else
    _ -> nil
  end

theirs = fn mode ->
  {exe, input} = llama

  {out, 0} =
    System.cmd("sh", ["-c", "#{exe} #{libdir} #{model_path} #{threads} #{mode} 4096 < #{input}"])

  [_, secs] = Regex.run(~r/"seconds":([0-9.]+)/, out)
  [_, pre] = Regex.run(~r/"prefilled_tokens":([0-9]+)/, out)
  %{secs: String.to_float(secs), prefilled: String.to_integer(pre)}
end

configs =
  if(String.contains?(parts, "a") or String.contains?(parts, "b"),
    do: [
      {:eval_prefix_on_c1, fn -> evaluate.([], 1) end},
      {:eval_prefix_off_c1, fn -> evaluate.([prefix_cache: 0], 1) end},
      {:eval_c8, fn -> evaluate.([], 8) end},
      {:eval_c8_unbatched, fn -> evaluate.([batching: false], 8) end}
    ],
    else: []
  ) ++
    if String.contains?(parts, "c"),
      do:
        [
          {:raw_c1_fresh, fn -> raw.([batching: false, prefix_cache: 0], 1) end},
          {:raw_c1, fn -> raw.([], 1) end},
          {:raw_c8, fn -> raw.([], 8) end}
        ] ++
          if(llama,
            do: [
              {:llama_fresh, fn -> theirs.("fresh") end},
              {:llama_keep, fn -> theirs.("keep") end}
            ],
            else: []
          ),
      else: []

IO.puts(
  "SmolLM2-135M-Instruct Q4_1, #{threads} thread(s), #{System.schedulers_online()} CPUs; " <>
    "#{n} examples, system prompt #{shared} shared tokens; ChainOfThought max_tokens 64; raw requests #{gen} tokens"
)

samples =
  for r <- 1..runs do
    l0 = load_avg.()
    res = for {name, f} <- configs, into: %{}, do: {name, f.()}
    IO.puts("run #{r}: load average #{l0} -> #{load_avg.()}")
    res
  end

med = fn name, key -> median.(for s <- samples, do: s[name][key]) end
f1 = fn x -> :erlang.float_to_binary(x * 1.0, decimals: 1) end
f2 = fn x -> :erlang.float_to_binary(x * 1.0, decimals: 2) end
has = fn name -> Enum.any?(configs, &(elem(&1, 0) == name)) end

if has.(:eval_c8) do
  IO.puts(
    "\n| Evaluate (#{n} x ChainOfThought) | seconds | examples/s | prompt tokens computed | reused | score |"
  )

  IO.puts("|---|---|---|---|---|---|")

  for {name, label} <- [
        eval_prefix_off_c1: "one at a time, prefix reuse off",
        eval_prefix_on_c1: "one at a time, prefix reuse on",
        eval_c8_unbatched: "max_concurrency 8, batching off",
        eval_c8: "max_concurrency 8, batching on"
      ] do
    s = med.(name, :secs)
    last = List.last(samples)[name]

    IO.puts(
      "| #{label} | #{f1.(s)} | #{f2.(n / s)} | #{last.prefilled} | #{last.reused} | #{last.score} |"
    )
  end

  same = Enum.all?(samples, &(&1.eval_prefix_on_c1.answers == &1.eval_prefix_off_c1.answers))
  same8 = Enum.all?(samples, &(&1.eval_c8.answers == &1.eval_prefix_on_c1.answers))

  IO.puts("""

  (a) prefix reuse: #{f2.(med.(:eval_prefix_off_c1, :secs) / med.(:eval_prefix_on_c1, :secs))}x faster one at a time (same answers: #{same})
  (b) batching: max_concurrency 8 is #{f2.(med.(:eval_prefix_on_c1, :secs) / med.(:eval_c8, :secs))}x the throughput of one at a time (same answers: #{same8}); without batching 8 concurrent give #{f2.(med.(:eval_prefix_on_c1, :secs) / med.(:eval_c8_unbatched, :secs))}x
  """)
end

if has.(:raw_c8) do
  total = n * gen

  IO.puts(
    "| #{n} requests x #{gen} tokens | seconds | generated t/s | prompt tokens computed | vs llama.cpp fresh | vs llama.cpp keep-prefix |"
  )

  IO.puts("|---|---|---|---|---|---|")
  lf = if has.(:llama_fresh), do: med.(:llama_fresh, :secs)
  lk = if has.(:llama_keep), do: med.(:llama_keep, :secs)
  vs = fn s, l -> if l, do: f2.(l / s) <> "x", else: "-" end

  for {name, label} <- [
        llama_fresh: "llama.cpp one at a time, fresh KV",
        llama_keep: "llama.cpp one at a time, keeping the common prefix",
        raw_c1_fresh: "DSPex one at a time, no prefix reuse, no batching",
        raw_c1: "DSPex one at a time, prefix reuse",
        raw_c8: "DSPex 8 at a time, prefix reuse + batching"
      ],
      has.(name) do
    s = med.(name, :secs)
    pre = List.last(samples)[name].prefilled

    IO.puts(
      "| #{label} | #{f1.(s)} | #{f1.(total / s)} | #{pre} | #{vs.(s, lf)} | #{vs.(s, lk)} |"
    )
  end

  same =
    Enum.all?(
      samples,
      &(&1.raw_c8.tokens == &1.raw_c1.tokens and &1.raw_c1.tokens == &1.raw_c1_fresh.tokens)
    )

  IO.puts("\nDSPex's tokens identical across the three DSPex configurations: #{same}")
end
