# The full comparison of DSPex.Local with llama.cpp (`make infer-check`):
#   1. every synthetic model in the GGUF test data: tokenization, log-probs at every
#      position (top 10 + next token) within the README's tolerance for its type, argmax
#      where llama.cpp's margin >= 0.1, greedy continuation up to the first near-tie;
#      with the SIMD kernels and again with the scalar reference kernels;
#   2. llama.cpp's tokenizer vectors (llama-spm, gpt-2, qwen2, llama-bpe, starcoder);
#   3. the real SmolLM2-135M-Instruct Q4_1 (when cached: mix dspex.model.get smollm2).
# Prints a Markdown table (the one in docs/guide/engine.md) and exits 1 on any failure.
#
# Data: DSPEX_GGUF_TESTDATA (default ../shared/testdata/gguf or ../../shared/...),
# vocab-only GGUFs from DSPEX_GGUF_REF (default _build/gguf-ref, made by the test data's
# setup_ref.sh). Usage: mix run tools/infer_check.exs

alias DSPex.Local
alias DSPex.Local.Check

find = fn env, cands -> Enum.find([System.get_env(env) | cands], &(&1 && File.dir?(&1))) end
td = find.("DSPEX_GGUF_TESTDATA", ["../shared/testdata/gguf", "../../shared/testdata/gguf"])
ref_dir = find.("DSPEX_GGUF_REF", ["_build/gguf-ref"])
unless td, do: Mix.raise("GGUF test data not found: set DSPEX_GGUF_TESTDATA")

{:ok, manifest} = DSPex.JSON.decode(File.read!(Path.join(td, "models/manifest.json")))
failures = :counters.new(1, [])
fail = fn -> :counters.add(failures, 1, 1) end
fmt = fn x -> :io_lib.format("~.2e", [x * 1.0]) |> to_string() end

IO.puts("## Synthetic models (llama.cpp v0.5.0 reference, FA off, F32 KV)\n")
IO.puts("| model | arch | weights | max \\|Δ log p\\| | pos 0 | argmax (margin ≥ 0.1) | greedy | scalar kernels max \\|Δ\\| | pass |")
IO.puts("|---|---|---|---|---|---|---|---|---|")

for m <- manifest["models"] do
  file = m["file"]
  type = if m["types_used"] |> Map.keys() |> Enum.reject(&(&1 == "f32")) |> length() > 1, do: "mix", else: m["type"]
  {:ok, ref} = Check.read_ref(Path.join(td, "models/" <> String.replace_suffix(file, ".gguf", ".ref.json")))
  path = Path.join(td, "models/" <> file)
  r = Check.compare(Local.load!(path), ref, m["type"])
  s = Check.compare(Local.load!(path, simd: false, threads: 1), ref, m["type"], greedy: false)
  ok = r.pass and s.pass
  unless ok, do: fail.()

  IO.puts(
    "| #{String.replace_suffix(file, ".gguf", "")} | #{m["arch"]} | #{type} | #{fmt.(r.max_delta)} | #{fmt.(r.pos0_delta)} | " <>
      "#{r.argmax_ok}/#{r.argmax_n} | #{if r.greedy_same, do: "same", else: "DIFFERENT"} (#{r.greedy_steps} steps) | " <>
      "#{fmt.(s.max_delta)} | #{if ok, do: "yes", else: "**NO**"} |"
  )
end

IO.puts("\n## Tokenizer vectors (llama.cpp's .inp/.out)\n")
IO.puts("| vocabulary | GGUF | cases equal |")
IO.puts("|---|---|---|")

fallback = %{
  "llama-spm" => "models/llama-spm32k-q8_0-gqa-tied-minkeys.gguf",
  "gpt-2" => "models/llama-gpt2full-q4_0-mha-tied.gguf"
}

for name <- ~w(llama-spm gpt-2 qwen2 llama-bpe starcoder) do
  vocab_only = ref_dir && Path.join(ref_dir, "vocab/ggml-vocab-#{name}.gguf")

  gguf =
    cond do
      vocab_only && File.exists?(vocab_only) -> vocab_only
      fallback[name] -> Path.join(td, fallback[name])
      true -> nil
    end

  if gguf do
    model = Local.load!(gguf, threads: 1)
    texts = File.read!(Path.join(td, "vocab/ggml-vocab-#{name}.gguf.inp")) |> String.split("\n__ggml_vocab_test__\n") |> Enum.drop(-1)
    outs = File.read!(Path.join(td, "vocab/ggml-vocab-#{name}.gguf.out")) |> String.split("\n")

    ok =
      Enum.zip(texts, outs)
      |> Enum.count(fn {t, o} -> Local.tokenize(model, t) == (o |> String.split() |> Enum.map(&String.to_integer/1)) end)

    unless ok == length(texts), do: fail.()
    IO.puts("| #{name} | #{Path.basename(gguf)} | #{ok}/#{length(texts)} |")
  else
    IO.puts("| #{name} | (vocab-only GGUF not available: run setup_ref.sh into _build/gguf-ref) | skipped |")
  end
end

IO.puts("\n## SmolLM2-135M-Instruct Q4_1 (real weights)\n")

case DSPex.Local.Models.resolve("smollm2") do
  {:ok, path} ->
    {:ok, ref} = Check.read_ref(Path.join(td, "real/smollm2-135m-instruct-q4_1.ref.json"))
    model = Local.load!(path)
    r = Check.compare(model, ref, "q4_1")
    # the real model's criteria (README): tokens exact, argmax where margin >= 0.1,
    # greedy equal up to the first near-tie
    ok = r.tokenize_ok == r.tokenize_total and r.argmax_ok == r.argmax_n and r.greedy_same
    unless ok, do: fail.()
    {:ok, full} = Local.generate(model, ref["greedy"]["prompt"], max_tokens: 48, temperature: 0, ignore_eos: true)
    same = Enum.zip(full.tokens, ref["greedy"]["tokens"]) |> Enum.take_while(fn {a, b} -> a == b end) |> length()

    IO.puts("| tokenization | max \\|Δ log p\\| | pos 0 | argmax (margin ≥ 0.1) | greedy up to first margin < 0.1 | identical greedy prefix |")
    IO.puts("|---|---|---|---|---|---|")

    IO.puts(
      "| #{r.tokenize_ok}/#{r.tokenize_total} | #{fmt.(r.max_delta)} | #{fmt.(r.pos0_delta)} | #{r.argmax_ok}/#{r.argmax_n} | " <>
        "#{if r.greedy_same, do: "same", else: "DIFFERENT"} (#{r.greedy_steps} steps) | #{same}/48 tokens |"
    )

    IO.puts("\ncontinuation: #{inspect(full.text)}")

  {:error, e} ->
    IO.puts("skipped: #{e.message}")
end

IO.puts("\n## Dot kernels vs llama.cpp's own (AVX2 build, tools/kernel_check.c)\n")

libdir = ref_dir && Path.join(ref_dir, "node_modules/@node-llama-cpp/linux-x64/bins/linux-x64")

if libdir && File.dir?(libdir) and System.find_executable("cc") do
  exe = Path.expand("_build/kernel_check")
  srcs = ["tools/kernel_check.c", "c_src/core/infer/quant.c"] ++ Path.wildcard("c_src/core/infer/kernels*.c")
  flags = ~w(-O2 -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -Iinclude -Ic_src/core)
  {_, 0} = System.cmd("cc", flags ++ srcs ++ ["-o", exe, "-ldl", "-lm"], stderr_to_stdout: true)
  {out, status} = System.cmd(exe, [Path.join(libdir, "libggml-base.so"), Path.join(libdir, "libggml-cpu-haswell.so")])
  IO.puts(String.trim_trailing(out))
  if status != 0, do: fail.()
else
  IO.puts("skipped: llama.cpp's prebuilt libraries (setup_ref.sh) or a C compiler not found")
end

n = :counters.get(failures, 1)
IO.puts("\n#{if n == 0, do: "all checks passed", else: "#{n} check(s) FAILED"}")
if n > 0, do: System.halt(1)
