# DSPy's answer metrics on the same 10,000 (prediction, golds) pairs: DSPex.Metrics.batch/3
# (one dirty NIF call for the whole list) and the per-pair functions, against Python
# DSPy 3.3.1's EM / F1 / HotPotF1 / _passage_match / normalize_text looping over the pairs
# in one process. Also checks that both sides sum to the same score.
#
#   MIX_ENV=prod mix run bench/metrics.exs
#
# The Python peer runs when DSPy is installed ($DSPY_PYTHON, else /opt/dspy-venv or the
# shared /work/wt/venv); otherwise it is skipped with a message.

Code.require_file("support/bench.exs", __DIR__)
alias DSPex.Metrics

seconds = String.to_integer(System.get_env("BENCH_SECONDS", "2"))
n = 10_000

if System.get_env("DSPY_PYTHON") == nil and not File.exists?("/opt/dspy-venv/bin/python") and
     File.exists?("/work/venv/bin/python") do
  System.put_env("DSPY_PYTHON", "/work/venv/bin/python")
end

# Deterministic QA-style pairs: short answers with case, punctuation, articles, accents,
# Greek and CJK; 1-3 golds; three ~30-word passages for passage match.
words = ~w(Paris France the Eiffel Tower a capital city an river Seine London York 1999 42 café
     Ångström ΟΔΟΣ Σοφία 東京 naïve e-mail don't Node.js answer yes no No_answer! the cat sat)

:rand.seed(:exsss, {1, 2, 3})
phrase = fn k -> Enum.map_join(1..k, " ", fn _ -> Enum.random(words) end) end
punct = fn s -> s <> Enum.random(["", "", ".", "!", "?", ","]) end

pairs =
  for _ <- 1..n do
    pred = punct.(phrase.(:rand.uniform(6)))

    golds =
      for _ <- 1..:rand.uniform(3) do
        if :rand.uniform() < 0.3, do: String.upcase(pred), else: phrase.(:rand.uniform(4))
      end

    passages = for _ <- 1..3, do: phrase.(30)
    %{pred: pred, golds: golds, passages: passages}
  end

preds = Enum.map(pairs, & &1.pred)
golds = Enum.map(pairs, & &1.golds)
passages = Enum.map(pairs, & &1.passages)

batch_args = %{
  normalize: {preds, nil},
  em: {preds, golds},
  f1: {preds, golds},
  hotpot_f1: {preds, golds},
  passage_match: {passages, golds}
}

single = %{
  normalize: fn p -> byte_size(Metrics.normalize_text(p.pred)) end,
  em: fn p -> Metrics.em(p.pred, p.golds) end,
  f1: fn p -> Metrics.f1(p.pred, p.golds) end,
  hotpot_f1: fn p -> Metrics.hotpot_f1(p.pred, p.golds) end,
  passage_match: fn p -> Metrics.passage_match(p.passages, p.golds) end
}

order = [:normalize, :em, :f1, :hotpot_f1, :passage_match]

# What the Python side sums: len() of the normalized text (code points), True as 1, scores.
checksum = fn
  :normalize, results ->
    Enum.sum(Enum.map(results, &length(String.to_charlist(&1)))) * 1.0

  _, results ->
    Enum.reduce(results, 0, fn
      true, acc -> acc + 1
      false, acc -> acc
      x, acc -> acc + x
    end) * 1.0
end

# The fastest of the passes over all pairs run in `seconds` (both sides): on a shared,
# loaded machine the minimum is the figure least disturbed by other work.
best_pass_us = fn fun ->
  fun.()
  deadline = System.monotonic_time(:microsecond) + seconds * 1_000_000

  Stream.repeatedly(fn ->
    t0 = System.monotonic_time(:microsecond)
    fun.()
    System.monotonic_time(:microsecond) - t0
  end)
  |> Enum.reduce_while(:infinity, fn us, best ->
    best = min(best, us)
    if System.monotonic_time(:microsecond) >= deadline, do: {:halt, best}, else: {:cont, best}
  end)
end

dspex =
  for m <- order, into: %{} do
    {a, b} = batch_args[m]
    results = Metrics.batch!(m, a, b)
    batch_us = best_pass_us.(fn -> Metrics.batch!(m, a, b) end) / n
    fun = single[m]
    single_us = best_pass_us.(fn -> Enum.each(pairs, fun) end) / n
    {m, %{batch: batch_us, single: single_us, checksum: checksum.(m, results)}}
  end

python_results =
  case DSPex.Bench.dspy_python() do
    nil ->
      IO.puts("Python DSPy not found (set DSPY_PYTHON); DSPex figures only")
      %{}

    python ->
      path =
        Path.join(
          System.tmp_dir!(),
          "dspex_metrics_pairs_#{System.unique_integer([:positive])}.jsonl"
        )

      File.write!(path, Enum.map(pairs, &[DSPex.JSON.encode!(&1), "\n"]))

      {out, status} =
        System.cmd(
          python,
          [Path.expand("py/metrics_bench.py", __DIR__), Integer.to_string(seconds), path],
          stderr_to_stdout: true
        )

      File.rm(path)
      if status != 0, do: raise("python peer failed:\n" <> out)

      for [_, m, us, sum] <-
            Regex.scan(~r/metric=(\w+) us_per_pair=([0-9.]+) checksum=([0-9.e+-]+)/, out),
          into: %{} do
        {String.to_atom(m), %{us: String.to_float(us), checksum: elem(Float.parse(sum), 0)}}
      end
  end

IO.puts(
  "DSPy metrics on #{n} pairs (#{System.schedulers_online()} schedulers; µs per pair, fastest pass " <>
    "of #{seconds} s)"
)

IO.puts(
  String.pad_trailing("metric", 15) <>
    String.pad_leading("batch", 10) <>
    String.pad_leading("per call", 10) <>
    String.pad_leading("Python", 10) <> String.pad_leading("batch vs Python", 17) <> "  same sum"
)

for m <- order do
  d = dspex[m]
  py = python_results[m]
  fmt = fn x -> :erlang.float_to_binary(x, decimals: 3) end

  {py_col, ratio, same} =
    case py do
      nil ->
        {"-", "-", "-"}

      %{us: us, checksum: sum} ->
        {fmt.(us), "#{Float.round(us / d.batch, 1)}x faster",
         if(abs(sum - d.checksum) < 1.0e-6, do: "yes", else: "NO")}
    end

  IO.puts(
    String.pad_trailing(Atom.to_string(m), 15) <>
      String.pad_leading(fmt.(d.batch), 10) <>
      String.pad_leading(fmt.(d.single), 10) <>
      String.pad_leading(py_col, 10) <> String.pad_leading(ratio, 17) <> "  " <> same
  )
end
