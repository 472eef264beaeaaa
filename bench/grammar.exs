# Grammar-constrained decoding overhead (DSPex.Local.Grammar).
#
# 1. Mask cost per token by vocabulary size: the real SmolLM2 (49,152 tokens), the shared
#    full-vocabulary test models (SPM 32,000; GPT-2 50,257) and, when the llama.cpp
#    reference is installed, the vocabulary-only Llama 3 (128,256) and Qwen2 (151,936)
#    files. DSPex.Local.Grammar.sample/2 drives the matcher with random logits (no model
#    needed), 256 tokens per run: the first run is cold (the per-state masks are built by
#    walking the token trie), later runs reuse them ("warm"). Grammars: the ChatAdapter
#    layout of ChainOfThought over "question -> answer: int", and a JSON Schema object.
# 2. Decode with and without the grammar on the real SmolLM2, same prompt (the
#    ChatAdapter messages of that ChainOfThought), greedy; the peer is the same engine
#    unconstrained. ms/token of decode only (first token to last), medians of 3, runs
#    alternating; the mask time per token comes from the grammar's own counters.
#
#   mix run bench/grammar.exs        (MIX_ENV=prod via `make bench`)
#   BENCH_RUNS=3                     runs per figure
#
# Needs the model for part 2 (mix dspex.model.get smollm2); part 1 uses what is present
# (DSPEX_GGUF_TESTDATA or ../shared/testdata/gguf; DSPEX_GGUF_REF or _build/gguf-ref).

alias DSPex.Local
alias DSPex.Local.Grammar

runs = String.to_integer(System.get_env("BENCH_RUNS", "3"))
median = fn xs -> xs |> Enum.sort() |> Enum.at(div(length(xs), 2)) end
fmt = fn x, d -> :erlang.float_to_binary(x * 1.0, decimals: d) end

find = fn env, cands -> Enum.find([System.get_env(env) | cands], &(&1 && File.dir?(&1))) end

testdata =
  find.("DSPEX_GGUF_TESTDATA", ["../shared/testdata/gguf", "../../shared/testdata/gguf"]) || "-"

ref = find.("DSPEX_GGUF_REF", ["_build/gguf-ref"]) || "-"

smollm2 =
  case Local.Models.resolve("smollm2") do
    {:ok, p} -> p
    {:error, _} -> nil
  end

sources =
  [
    {"SmolLM2-135M-Instruct (BPE)", smollm2},
    {"llama-spm32k (SPM, shared)",
     Path.join(testdata, "models/llama-spm32k-q8_0-gqa-tied-minkeys.gguf")},
    {"llama-gpt2full (GPT-2, shared)",
     Path.join(testdata, "models/llama-gpt2full-q4_0-mha-tied.gguf")},
    {"Llama 3 vocab (llama-bpe)", Path.join(ref, "vocab/ggml-vocab-llama-bpe.gguf")},
    {"Qwen2 vocab", Path.join(ref, "vocab/ggml-vocab-qwen2.gguf")}
  ]
  |> Enum.filter(fn {name, path} ->
    ok = path != nil and File.exists?(path)
    unless ok, do: IO.puts("(#{name}: not found, skipped)")
    ok
  end)

cot = DSPex.ChainOfThought.new("question -> answer: int")
cot_sig = cot.predict.signature

person = %{
  "type" => "object",
  "properties" => %{
    "name" => %{"type" => "string"},
    "age" => %{"type" => "integer", "minimum" => 0, "maximum" => 150},
    "tags" => %{"type" => "array", "items" => %{"enum" => ["a", "b", "c"]}, "maxItems" => 5},
    "address" => %{
      "type" => "object",
      "properties" => %{"city" => %{"type" => "string"}, "zip" => %{"type" => "string"}},
      "required" => ["city"]
    }
  },
  "required" => ["name", "age"]
}

IO.puts("""

== 1. Mask cost per token (random logits, 256 tokens per run, #{runs} runs) ==
machine: #{:erlang.system_info(:logical_processors)} logical CPUs, load #{File.read!("/proc/loadavg") |> String.split() |> hd()}
""")

IO.puts(
  String.pad_trailing("vocabulary", 32) <>
    String.pad_leading("tokens", 8) <>
    String.pad_leading("trie build", 12) <>
    String.pad_leading("grammar", 10) <>
    String.pad_leading("cold µs/tok", 13) <> String.pad_leading("warm µs/tok", 13)
)

mask_rows =
  for {name, path} <- sources,
      {gname, spec} <- [{"chat CoT", {:chat, cot_sig}}, {"JSON", {:json_schema, person}}] do
    model = Local.load!(path, threads: 1)
    t0 = System.monotonic_time(:microsecond)
    g = Grammar.compile!(model, spec)
    build_ms = (System.monotonic_time(:microsecond) - t0) / 1000

    per_run =
      for r <- 1..(runs + 1) do
        s = Grammar.sample(g, max_tokens: 256, seed: r)
        s.mask_ns / 1000 / max(s.tokens, 1)
      end

    [cold | warm] = per_run

    IO.puts(
      String.pad_trailing(name, 32) <>
        String.pad_leading(Integer.to_string(model.info.n_vocab), 8) <>
        String.pad_leading(fmt.(build_ms, 1) <> " ms", 12) <>
        String.pad_leading(gname, 10) <>
        String.pad_leading(fmt.(cold, 1), 13) <> String.pad_leading(fmt.(median.(warm), 1), 13)
    )

    {name, gname, model.info.n_vocab, cold, median.(warm)}
  end

# ------------------------------------------------------------------------------------
if smollm2 == nil do
  IO.puts("\n== 2. skipped: SmolLM2 is not cached (mix dspex.model.get smollm2) ==")
else
  IO.puts("\n== 2. SmolLM2 decode with and without the grammar (greedy, #{runs} runs each) ==")
  model = Local.load!(smollm2)

  messages =
    DSPex.Adapter.Chat.format(cot_sig, [], %{question: "How many legs do two cats have?"}, [])

  {:ok, prompt} = Local.apply_chat_template(model, messages)
  grammar = Grammar.compile!(model, {:chat, cot_sig})

  decode = fn opts ->
    {:ok, ref} = Local.generate_stream(model, prompt, [temperature: 0.0, slice_ms: 1] ++ opts)

    first =
      receive do
        {^ref, {:delta, _, _}} -> System.monotonic_time(:microsecond)
      end

    done =
      Stream.repeatedly(fn ->
        receive do
          {^ref, {:delta, _, _}} -> :more
          {^ref, {:done, r}} -> {:done, r}
        end
      end)
      |> Enum.find(&match?({:done, _}, &1))

    {:done, r} = done
    dt = System.monotonic_time(:microsecond) - first
    {dt / 1000 / max(length(r.tokens) - 1, 1), r}
  end

  # warm up both paths (the grammar's masks too)
  decode.(grammar: grammar, max_tokens: 160)
  decode.(max_tokens: 64, ignore_eos: true)

  pairs =
    for _ <- 1..runs do
      s0 = Grammar.stats(grammar)
      {c_ms, r} = decode.(grammar: grammar, max_tokens: 160)
      s1 = Grammar.stats(grammar)
      mask_us = (s1.mask_ns - s0.mask_ns) / 1000 / max(s1.masks - s0.masks, 1)
      {p_ms, _} = decode.(max_tokens: length(r.tokens), ignore_eos: true)
      {c_ms, p_ms, mask_us, r}
    end

  c = median.(Enum.map(pairs, &elem(&1, 0)))
  p = median.(Enum.map(pairs, &elem(&1, 1)))
  m = median.(Enum.map(pairs, &elem(&1, 2)))
  {_, _, _, r} = hd(pairs)

  IO.puts("""
  unconstrained decode:  #{fmt.(p, 2)} ms/token
  constrained decode:    #{fmt.(c, 2)} ms/token  (#{length(r.tokens)} tokens, finish #{r.finish_reason})
  mask time:             #{fmt.(m, 1)} µs/token = #{fmt.(m / 10 / p, 2)}% of a decode step
  wall-clock ratio:      #{fmt.(c / p, 3)}x (constrained / unconstrained; machine noise included)
  output parses:         #{match?({:ok, _}, DSPex.Adapter.Chat.parse(cot_sig, r.text))}
  """)

  IO.puts("Mask cost as a share of this machine's SmolLM2 decode step (#{fmt.(p, 1)} ms):")

  for {name, gname, n, _cold, warm} <- mask_rows do
    IO.puts(
      "  #{String.pad_trailing(name, 32)} #{String.pad_trailing(gname, 9)} #{n} tokens: " <>
        "#{fmt.(warm / 10 / p, 2)}%"
    )
  end
end
