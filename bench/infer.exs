# Local inference speed: prefill and decode tokens/s through the real product path
# (DSPex.Local.generate_stream: NIF, dirty-scheduler slices), against llama.cpp's C API on
# the same file in the same run (the test data's tools/llbench.c over the prebuilt
# libllama of node-llama-cpp 3.22.1 = llama.cpp v0.5.0; flash attention off, F32 KV cache,
# like this engine). Same prompt: 128 ids from llbench's LCG; then 128 greedy tokens. Runs
# alternate (ours, theirs, ...) so machine load hits both alike; medians of BENCH_RUNS.
#
# Three models (issue 13): the real SmolLM2-135M-Instruct Q4_1 (mix dspex.model.get
# smollm2), and random-weight SmolLM2-135M- and Qwen2.5-0.5B-shaped Q8_0 files made by the
# test data's make_gguf.py (sets smollm2, qwen25) into _build/bench-models when missing:
# that needs python3 with numpy (BENCH_PYTHON, else /work/venv/bin/python3, else python3)
# and the vocab files of the reference install; otherwise the model is skipped with a note.
#
# Decode is also shown as a share of the memory-bandwidth bound: (bytes of weights read
# per token) / (read bandwidth measured here by tools/membw.c with the same thread count,
# right before the model's runs). The test data's README measured 22.3 GB/s (2 threads)
# and 12.2 GB/s (1 thread) on an idle machine.
#
#   mix run bench/infer.exs            (MIX_ENV=prod via `make bench`)
#   BENCH_THREADS=1,2 BENCH_RUNS=3 BENCH_MODELS=q4_1,smollm2,qwen25
#
# The llama.cpp side needs the reference install (sh ../shared/testdata/gguf/setup_ref.sh
# _build/gguf-ref; DSPEX_GGUF_REF to move it) and a C compiler; without it only our
# figures are printed.

alias DSPex.Local

threads =
  System.get_env("BENCH_THREADS", "1,2") |> String.split(",") |> Enum.map(&String.to_integer/1)

runs = String.to_integer(System.get_env("BENCH_RUNS", "3"))
wanted = System.get_env("BENCH_MODELS", "q4_1,smollm2,qwen25") |> String.split(",")
n_prompt = 128
n_gen = 128

median = fn xs -> xs |> Enum.sort() |> Enum.at(div(length(xs), 2)) end
load_avg = fn -> :os.cmd(~c"cat /proc/loadavg") |> to_string() |> Float.parse() |> elem(0) end

ref_dir = Enum.find([System.get_env("DSPEX_GGUF_REF"), "_build/gguf-ref"], &(&1 && File.dir?(&1)))

testdata = Enum.find(["../shared/testdata/gguf", "../../shared/testdata/gguf"], &File.dir?/1)

cc = fn args ->
  case System.find_executable("cc") do
    nil -> :error
    exe -> if elem(System.cmd(exe, args, stderr_to_stdout: true), 1) == 0, do: :ok, else: :error
  end
end

# ------------------------------------------------------------------------ models

python =
  Enum.find(
    [System.get_env("BENCH_PYTHON"), "/work/venv/bin/python3", System.find_executable("python3")],
    fn p ->
      p && File.exists?(p) &&
        match?({_, 0}, System.cmd(p, ["-c", "import numpy"], stderr_to_stdout: true))
    end
  )

generated = fn set, file ->
  out_dir = Path.expand("_build/bench-models")
  path = Path.join(out_dir, file)
  vocab = ref_dir && Path.join(ref_dir, "vocab")

  cond do
    File.exists?(path) ->
      {:ok, path}

    python == nil ->
      {:skip, "needs python3 with numpy for make_gguf.py (BENCH_PYTHON)"}

    testdata == nil or vocab == nil or not File.dir?(vocab) ->
      {:skip, "needs ../shared/testdata/gguf and the reference install's vocab files"}

    true ->
      IO.puts("generating #{file} with make_gguf.py --set #{set} ...")

      args = [
        Path.join(testdata, "make_gguf.py"),
        "--set",
        set,
        "--vocab-dir",
        vocab,
        "--out-dir",
        out_dir
      ]

      case System.cmd(python, args, stderr_to_stdout: true) do
        {_, 0} ->
          if File.exists?(path), do: {:ok, path}, else: {:skip, "make_gguf.py wrote no #{file}"}

        {out, _} ->
          {:skip, "make_gguf.py failed: #{String.slice(out, -300, 300)}"}
      end
  end
end

catalog = [
  {"q4_1", "SmolLM2-135M-Instruct Q4_1 (real)",
   fn ->
     case Local.Models.resolve("smollm2") do
       {:ok, p} -> {:ok, p}
       {:error, e} -> {:skip, e.message}
     end
   end},
  {"smollm2", "SmolLM2-135M-shape Q8_0 (random)",
   fn -> generated.("smollm2", "smollm2-135m-shape-q8_0.gguf") end},
  {"qwen25", "Qwen2.5-0.5B-shape Q8_0 (random)",
   fn -> generated.("qwen25", "qwen2.5-0.5b-shape-q8_0.gguf") end}
]

# ------------------------------------------------------------------------ peers and tools

llbench_src = testdata && Path.join(testdata, "tools/llbench.c")

libdir =
  ref_dir &&
    Path.expand(Path.join(ref_dir, "node_modules/@node-llama-cpp/linux-x64/bins/linux-x64"))

llbench =
  with true <- ref_dir != nil and llbench_src != nil and File.dir?(libdir),
       exe = Path.expand("_build/llbench"),
       :ok <-
         cc.([
           "-O2",
           "-o",
           exe,
           llbench_src,
           "-I#{ref_dir}/llama-src/include",
           "-I#{ref_dir}/llama-src/ggml/include",
           "-L#{libdir}",
           "-l:libllama.v0.5.0.so",
           "-l:libggml.v0.5.0.so",
           "-l:libggml-base.so",
           "-Wl,-rpath,#{libdir}"
         ]) do
    exe
  else
    _ -> nil
  end

membw =
  with exe = Path.expand("_build/membw"),
       :ok <-
         cc.([
           "-O2",
           "-std=c11",
           "-D_POSIX_C_SOURCE=200809L",
           "tools/membw.c",
           "-o",
           exe,
           "-lpthread"
         ]) do
    exe
  else
    _ -> nil
  end

bandwidth = fn t ->
  with exe when exe != nil <- membw,
       {out, 0} <- System.cmd(exe, ["#{t}"]),
       {gbs, _} <- Float.parse(out) do
    gbs
  else
    _ -> nil
  end
end

# bytes read per decoded token: every tensor, except an untied model's embedding table
# (one row per token)
weight_bytes = fn path ->
  {:ok, r} = Local.inspect_file(path)
  tied = not Enum.any?(r.tensors, &(&1.name == "output.weight"))

  r.tensors
  |> Enum.reject(&(&1.name == "token_embd.weight" and not tied))
  |> Enum.map(& &1.bytes)
  |> Enum.sum()
end

# ------------------------------------------------------------------------ one run each

ours = fn model, prompt ->
  t0 = System.monotonic_time(:microsecond)

  {:ok, ref} =
    Local.generate_stream(model, prompt,
      max_tokens: n_gen,
      temperature: 0.0,
      ignore_eos: true,
      slice_ms: 1,
      n_ctx: 512
    )

  first =
    receive do
      {^ref, {:delta, _, _}} -> System.monotonic_time(:microsecond)
    end

  done =
    Stream.repeatedly(fn ->
      receive do
        {^ref, {:delta, _, _}} -> :more
        {^ref, {:done, r}} -> {System.monotonic_time(:microsecond), r}
      end
    end)
    |> Enum.find(&(&1 != :more))

  {t_end, r} = done
  decode_s = (t_end - first) / 1.0e6
  decode = (length(r.tokens) - 1) / decode_s
  # the first delta came after the prefill and one decode step
  prefill = n_prompt / max((first - t0) / 1.0e6 - 1 / decode, 1.0e-6)
  {prefill, decode}
end

theirs = fn path, t ->
  {out, status} = System.cmd(llbench, [libdir, path, "#{t}", "ref", "1"], stderr_to_stdout: true)

  case {status, Regex.run(~r/"pp128_median":([0-9.]+),"tg128_median":([0-9.]+)/, out)} do
    {0, [_, pp, tg]} -> {String.to_float(pp), String.to_float(tg)}
    _ -> nil
  end
end

# llbench's prompt: x = x * 1103515245 + 12345 (mod 2^32), id = 300 + (x >> 8) mod m,
# m = 30000 (or n_vocab - 300 for small vocabularies)
prompt_for = fn n_vocab ->
  m = if n_vocab > 30_300, do: 30_000, else: n_vocab - 300

  Enum.map_reduce(1..n_prompt, 12345, fn _, x ->
    x = rem(x * 1_103_515_245 + 12_345, 4_294_967_296)
    {300 + rem(div(x, 256), m), x}
  end)
  |> elem(0)
end

f = fn
  nil -> "-"
  x -> :erlang.float_to_binary(x * 1.0, decimals: 1)
end

ratio = fn
  _, nil -> "-"
  a, b -> :erlang.float_to_binary(a / b, decimals: 2) <> "x"
end

pct = fn
  _, nil -> "-"
  x, bound -> "#{round(100 * x / bound)}%"
end

IO.puts(
  "#{n_prompt}-token prompt, #{n_gen} greedy tokens, #{System.schedulers_online()} CPUs, medians of #{runs}, load average #{load_avg.()} at start"
)

IO.puts(
  "peer: #{if llbench, do: "llama.cpp v0.5.0 C API (llbench.c), FA off, F32 KV, same run, alternating", else: "none (llama.cpp reference not installed)"}"
)

IO.puts(
  "bandwidth: #{if membw, do: "tools/membw.c read loop, measured before each model and thread count", else: "not measured (no C compiler)"}\n"
)

IO.puts(
  "| model | threads | DSPex prefill t/s | DSPex decode t/s | llama.cpp prefill t/s | llama.cpp decode t/s | prefill ratio | decode ratio | decode MB/token | read GB/s | DSPex decode / bound | llama.cpp decode / bound | load |"
)

IO.puts("|---|---|---|---|---|---|---|---|---|---|---|---|---|")

for {key, label, locate} <- catalog, key in wanted do
  case locate.() do
    {:skip, why} ->
      IO.puts("| #{label} | skipped: #{why} |||||||||||")

    {:ok, path} ->
      bytes = weight_bytes.(path)

      for t <- threads do
        gbs = bandwidth.(t)
        bound = gbs && gbs * 1.0e9 / bytes
        # prefix_cache: 0 — every run prefills its prompt, as llama.cpp does with a fresh
        # KV cache (the bench repeats one prompt; reuse would skip the prefill it times)
        model = Local.load!(path, threads: t, prefix_cache: 0)
        prompt = prompt_for.(Local.info(model).n_vocab)
        _ = ours.(model, prompt)
        load0 = load_avg.()

        samples = for _ <- 1..runs, do: {ours.(model, prompt), llbench && theirs.(path, t)}

        {op, od} =
          {median.(for {{p, _}, _} <- samples, do: p), median.(for {{_, d}, _} <- samples, do: d)}

        peer = for {_, x} <- samples, x != nil, do: x

        {lp, ld} =
          if peer == [],
            do: {nil, nil},
            else: {median.(Enum.map(peer, &elem(&1, 0))), median.(Enum.map(peer, &elem(&1, 1)))}

        load = (load0 + load_avg.()) / 2

        IO.puts(
          "| #{label} | #{t} | #{f.(op)} | #{f.(od)} | #{f.(lp)} | #{f.(ld)} | #{ratio.(op, lp)} | #{ratio.(od, ld)} | #{f.(bytes / 1.0e6)} | #{f.(gbs)} | #{pct.(od, bound)} | #{pct.(ld, bound)} | #{:erlang.float_to_binary(load, decimals: 1)} |"
        )
      end
  end
end
