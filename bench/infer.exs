# Local inference speed: prefill and decode tokens/s on SmolLM2-135M-Instruct Q4_1 through
# the real product path (DSPex.Local.generate_stream: NIF, dirty-scheduler slices), against
# llama.cpp's C API on the same file in the same run (the test data's tools/llbench.c over
# the prebuilt libllama of node-llama-cpp 3.22.1 = llama.cpp v0.5.0; flash attention off,
# F32 KV cache, like this engine). Same prompt: 128 ids from llbench's LCG; then 128 greedy
# tokens. Runs alternate (ours, theirs, ...) so machine load hits both alike; medians of 3.
#
#   mix run bench/infer.exs            (MIX_ENV=prod via `make bench`)
#   BENCH_THREADS=1,2 BENCH_RUNS=3     thread counts and runs
#
# Needs the model (mix dspex.model.get smollm2). The llama.cpp side needs the reference
# install (sh ../shared/testdata/gguf/setup_ref.sh _build/gguf-ref; DSPEX_GGUF_REF to move
# it) and a C compiler; without it only our figures are printed.

alias DSPex.Local

threads =
  System.get_env("BENCH_THREADS", "1,2") |> String.split(",") |> Enum.map(&String.to_integer/1)

runs = String.to_integer(System.get_env("BENCH_RUNS", "3"))
n_prompt = 128
n_gen = 128

model_path =
  case DSPex.Local.Models.resolve("smollm2") do
    {:ok, p} -> p
    {:error, e} -> IO.puts("bench/infer.exs skipped: #{e.message}") && System.halt(0)
  end

# llbench's prompt: x = x * 1103515245 + 12345 (mod 2^32), id = 300 + (x >> 8) mod 30000
prompt =
  Enum.map_reduce(1..n_prompt, 12345, fn _, x ->
    x = rem(x * 1_103_515_245 + 12_345, 4_294_967_296)
    {300 + rem(div(x, 256), 30_000), x}
  end)
  |> elem(0)

median = fn xs -> xs |> Enum.sort() |> Enum.at(div(length(xs), 2)) end

ours = fn model ->
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

ref_dir = Enum.find([System.get_env("DSPEX_GGUF_REF"), "_build/gguf-ref"], &(&1 && File.dir?(&1)))

llbench_src =
  Enum.find(
    ["../shared/testdata/gguf/tools/llbench.c", "../../shared/testdata/gguf/tools/llbench.c"],
    &File.exists?/1
  )

libdir =
  ref_dir &&
    Path.expand(Path.join(ref_dir, "node_modules/@node-llama-cpp/linux-x64/bins/linux-x64"))

llbench =
  with true <- ref_dir != nil and llbench_src != nil and File.dir?(libdir),
       exe = Path.expand("_build/llbench"),
       {_, 0} <-
         System.cmd(
           "cc",
           [
             "-O2",
             "-o",
             exe,
             llbench_src,
             "-I#{ref_dir}/llama-src/include",
             "-I#{ref_dir}/llama-src/ggml/include",
             "-L#{libdir}"
           ] ++
             [
               "-l:libllama.v0.5.0.so",
               "-l:libggml.v0.5.0.so",
               "-l:libggml-base.so",
               "-Wl,-rpath,#{libdir}"
             ],
           stderr_to_stdout: true
         ) do
    exe
  else
    _ -> nil
  end

theirs = fn t ->
  {out, status} =
    System.cmd(llbench, [libdir, model_path, "#{t}", "ref", "1"], stderr_to_stdout: true)

  case {status, Regex.run(~r/"pp128_median":([0-9.]+),"tg128_median":([0-9.]+)/, out)} do
    {0, [_, pp, tg]} -> {String.to_float(pp), String.to_float(tg)}
    _ -> nil
  end
end

{load, _} = :os.cmd(~c"cat /proc/loadavg") |> to_string() |> Float.parse()

IO.puts(
  "SmolLM2-135M-Instruct Q4_1, #{n_prompt}-token prompt, #{n_gen} greedy tokens, #{System.schedulers_online()} CPUs, load average #{load}"
)

IO.puts(
  "peer: #{if llbench, do: "llama.cpp v0.5.0 C API (llbench.c), FA off, F32 KV, same run", else: "none (llama.cpp reference not installed)"}\n"
)

IO.puts(
  "| threads | DSPex prefill t/s | DSPex decode t/s | llama.cpp prefill t/s | llama.cpp decode t/s | prefill ratio | decode ratio |"
)

IO.puts("|---|---|---|---|---|---|---|")

for t <- threads do
  model = Local.load!(model_path, threads: t)
  _ = ours.(model)

  samples =
    for _ <- 1..runs do
      {ours.(model), llbench && theirs.(t)}
    end

  {op, od} =
    {median.(for {{p, _}, _} <- samples, do: p), median.(for {{_, d}, _} <- samples, do: d)}

  peer = for {_, x} <- samples, x != nil, do: x

  {lp, ld} =
    if peer == [],
      do: {nil, nil},
      else: {median.(Enum.map(peer, &elem(&1, 0))), median.(Enum.map(peer, &elem(&1, 1)))}

  f = fn
    nil -> "-"
    x -> :erlang.float_to_binary(x * 1.0, decimals: 1)
  end

  ratio = fn a, b -> if b, do: :erlang.float_to_binary(a / b, decimals: 2) <> "x", else: "-" end

  IO.puts(
    "| #{t} | #{f.(op)} | #{f.(od)} | #{f.(lp)} | #{f.(ld)} | #{ratio.(op, lp)} | #{ratio.(od, ld)} |"
  )
end
