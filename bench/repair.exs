# JSON repair throughput: DSPex.JSON.repair/2 vs the jsonrepair npm package (3.14.1, run
# by node in the same bench run, on the same input files).
#
#   MIX_ENV=prod mix run bench/repair.exs
#
# Inputs (about 1 MB each), written to a temp dir:
#   valid      - valid JSON (LM-shaped records)
#   faults     - a fault every ~50 bytes: single quotes, unquoted keys, trailing commas,
#                Python literals
#   truncated  - a valid document cut off mid-string (needs closing of every open value)
#
# Prints MB/s of CPU time for both (see RepairBench.time/2 on why CPU time) and the ratio
# DSPex/jsonrepair (> 1 means DSPex is faster). If node/npm are unavailable, prints
# DSPex's numbers only.
#
# Then hostile shapes (issue 8 #5 and the superlinear paths found with it) at 64 kB, 1 MB
# and 4 MB: CPU ms, MB/s and ns per byte of repair/2, CPU ms of extract/2 (all: true),
# jsonrepair's MB/s on the same file (one run, killed after 30 s of wall time) and the
# ratio, and DSPex's throughput at the size over its throughput at 64 kB ("flat": near
# 1.0 means linear; "error": the input fails at the depth limit, at once).

defmodule RepairBench do
  @target 1_000_000

  def inputs do
    record = fn i ->
      ~s({"id": #{i}, "name": "item #{i}", "score": #{rem(i * 37, 1000) / 10}, "tags": ["a", "b"], "ok": true})
    end

    valid =
      Stream.iterate(0, &(&1 + 1))
      |> Stream.map(record)
      |> Enum.reduce_while({[], 2}, fn r, {acc, n} ->
        if n > @target, do: {:halt, {acc, n}}, else: {:cont, {[r | acc], n + byte_size(r) + 2}}
      end)
      |> then(fn {acc, _} -> "[" <> Enum.join(Enum.reverse(acc), ",\n") <> "]" end)

    faulty_record = fn i ->
      # ~50 bytes with three or four faults each
      ~s({id: #{i}, 'name': 'item', ok: True, tags: [1,2,],},\n)
    end

    faults =
      "[" <>
        (Stream.iterate(0, &(&1 + 1))
         |> Stream.map(faulty_record)
         |> Enum.take(div(@target, byte_size(faulty_record.(100_000))))
         |> Enum.join()) <> "]"

    truncated = binary_part(valid, 0, byte_size(valid) - 20)
    [valid: valid, faults: faults, truncated: truncated]
  end

  # CPU seconds per call: the VM's CPU time (all threads, dirty schedulers included;
  # millisecond resolution, so calls repeat until `min_cpu_s` of CPU is spent, at least
  # 3 of them). On a shared machine CPU time is stable where wall time is not: under
  # load a 100 ms call is preempted many times, a 1 ms call hardly ever, which makes
  # wall-clock MB/s look worse the larger the input. Idle schedulers busy-wait and add a
  # little CPU time (to DSPex's disadvantage); ELIXIR_ERL_OPTIONS="+sbwt none +sbwtdcpu
  # none +sbwtdio none" turns that off.
  def time(fun, min_cpu_s \\ 0.5) do
    fun.()
    :erlang.statistics(:runtime)
    loop(fun, 0, 0, min_cpu_s * 1000)
  end

  defp loop(_fun, n, ms, min_ms) when n >= 3 and ms >= min_ms, do: ms / n / 1000

  defp loop(fun, n, ms, min_ms) do
    fun.()
    {_, d} = :erlang.statistics(:runtime)
    loop(fun, n + 1, ms + d, min_ms)
  end

  # The 8 #5 shape: a call wrapper, objects nested to the depth limit (512 with the
  # wrapper), whitespace. Before the fix: 0.3 MB/s (64 kB 0.26 s, 4 MB 16-19 s).
  def shapes(size) do
    pad = fn prefix, unit, reps, fill, suffix ->
      head = prefix <> String.duplicate(unit, reps)
      n = max(div(size - byte_size(head) - byte_size(suffix), byte_size(fill)), 0)
      head <> String.duplicate(fill, n) <> suffix
    end

    [
      {"cb( + 511 objects + spaces", pad.("cb(", ~s({"a":), 511, " ", "")},
      {"NumberLong( + 511 objects + spaces", pad.("NumberLong(", ~s({"a":), 511, " ", "")},
      {"cb( + nesting past the limit + spaces", pad.("cb(", ~s({"a":[), 256, " ", "")},
      {"array continuations after spaces", pad.(~s({"a": [), " ", div(size, 2), "],[", "")},
      {"strings read to the end, restarted", pad.(~s([\\"), ",x", 511, ~s(, "a\(), ~s("a"))},
      {"unclosed string, comma fragments", pad.(~s({"a": "), "", 0, ~s(x, "y), "")},
      # extract (all: true) returns one value per 2 bytes here: its worst case per byte
      {"tiny values back to back", pad.("", "", 0, "{}", "")}
    ]
  end

  def peer(files, opts \\ []) do
    dir = Path.expand("node", __DIR__)
    iterations = Keyword.get(opts, :iterations, 5)
    timeout_s = Keyword.get(opts, :timeout_s)

    with node when is_binary(node) <- System.find_executable("node"),
         :ok <- ensure_installed(dir) do
      args = [Path.join(dir, "jsonrepair_bench.js") | Map.values(files)]

      {cmd, args} =
        if timeout_s,
          do: {System.find_executable("timeout"), ["#{timeout_s}", node | args]},
          else: {node, args}

      {out, status} =
        System.cmd(cmd, args,
          env: [{"ITERATIONS", "#{iterations}"}, {"MAX_SECONDS", "30"}],
          stderr_to_stdout: true
        )

      if status == 0 or (timeout_s && status == 124) do
        for line <- String.split(out, "\n", trim: true),
            String.starts_with?(line, "{"),
            into: %{} do
          r = DSPex.JSON.decode!(line)
          {r["file"], r}
        end
      else
        IO.puts("(jsonrepair peer failed: #{String.slice(out, 0, 300)})")
        %{}
      end
    else
      reason ->
        IO.puts("(skipping the jsonrepair peer: #{inspect(reason)})")
        %{}
    end
  end

  defp ensure_installed(dir) do
    if File.dir?(Path.join(dir, "node_modules/jsonrepair")) do
      :ok
    else
      case System.find_executable("npm") do
        nil ->
          {:error, :npm_not_found}

        npm ->
          case System.cmd(npm, ["install", "--prefix", dir, "--no-audit", "--no-fund"],
                 stderr_to_stdout: true
               ) do
            {_, 0} -> :ok
            {out, _} -> {:error, "npm install failed: " <> String.slice(out, 0, 200)}
          end
      end
    end
  end
end

tmp = Path.join(System.tmp_dir!(), "dspex_repair_bench_#{System.unique_integer([:positive])}")
File.mkdir_p!(tmp)
inputs = RepairBench.inputs()

files =
  for {name, text} <- inputs, into: %{} do
    path = Path.join(tmp, "#{name}.json")
    File.write!(path, text)
    {name, path}
  end

IO.puts(
  "DSPex.JSON.repair/2 vs jsonrepair 3.14.1 (node #{String.trim(elem(System.cmd("node", ["--version"]), 0))}), MB/s of CPU time\n"
)

peer = RepairBench.peer(files)

IO.puts(
  String.pad_trailing("input", 11) <>
    String.pad_leading("bytes", 10) <>
    String.pad_leading("DSPex MB/s", 12) <>
    String.pad_leading("jsonrepair MB/s", 17) <> String.pad_leading("ratio", 9)
)

for {name, text} <- inputs do
  {:ok, _} = DSPex.JSON.repair(text)
  secs = RepairBench.time(fn -> DSPex.JSON.repair(text) end)
  mbps = byte_size(text) / secs / 1_000_000
  p = peer[files[name]]

  {peer_col, ratio_col} =
    case p do
      %{"ok" => true, "mb_s_cpu" => pm} when pm > 0 ->
        {:erlang.float_to_binary(pm, decimals: 2), "#{Float.round(mbps / pm, 1)}x"}

      %{"error" => e} when is_binary(e) ->
        {"error", "-"}

      _ ->
        {"-", "-"}
    end

  IO.puts(
    String.pad_trailing("#{name}", 11) <>
      String.pad_leading("#{byte_size(text)}", 10) <>
      String.pad_leading(:erlang.float_to_binary(mbps, decimals: 1), 12) <>
      String.pad_leading(peer_col, 17) <> String.pad_leading(ratio_col, 9)
  )
end

# ---------------------------------------------------------------------------------------
IO.puts(
  "\nHostile shapes (CPU time): repair/2, extract/2 all: true; jsonrepair one run, 30 s limit"
)

IO.puts(
  String.pad_trailing("shape", 40) <>
    String.pad_leading("bytes", 9) <>
    String.pad_leading("repair ms", 11) <>
    String.pad_leading("MB/s", 8) <>
    String.pad_leading("ns/B", 7) <>
    String.pad_leading("extract ms", 12) <>
    String.pad_leading("jsonrepair MB/s", 17) <>
    String.pad_leading("ratio", 9) <> String.pad_leading("flat", 7)
)

fmt = fn x, d -> :erlang.float_to_binary(x / 1, decimals: d) end
shape_names = for {name, _} <- RepairBench.shapes(1000), do: name

for name <- shape_names do
  rows =
    for size <- [64_000, 1_000_000, 4_000_000] do
      {^name, text} = List.keyfind(RepairBench.shapes(size), name, 0)
      path = Path.join(tmp, "shape_#{size}.json")
      File.write!(path, text)
      p = RepairBench.peer(%{name => path}, iterations: 1, timeout_s: 30)[path]
      secs = RepairBench.time(fn -> DSPex.JSON.repair(text) end, 0.3)
      ex = RepairBench.time(fn -> DSPex.JSON.extract(text, all: true) end, 0.3)
      {size, byte_size(text), secs, ex, p, match?({:error, _}, DSPex.JSON.repair(text))}
    end

  [{_, _, secs64, _, _, _} | _] = rows

  for {size, bytes, secs, ex, p, error?} <- rows do
    mbps = bytes / secs / 1_000_000

    {peer_col, ratio_col} =
      case p do
        # DSPex stops at the depth limit; a ratio against a full repair would mean nothing
        %{"ok" => true, "mb_s_cpu" => pm} when error? -> {fmt.(pm, 2), "-"}
        %{"ok" => true, "mb_s_cpu" => pm} when pm > 0 -> {fmt.(pm, 2), "#{fmt.(mbps / pm, 1)}x"}
        %{"ok" => false} -> {"error", "-"}
        nil -> {"> 30 s", "-"}
        _ -> {"-", "-"}
      end

    # an input that fails at the depth limit returns as soon as it gets there
    flat = if error?, do: "error", else: fmt.(secs64 / 64_000 / (secs / size), 2)

    IO.puts(
      String.pad_trailing(name, 40) <>
        String.pad_leading("#{bytes}", 9) <>
        String.pad_leading(fmt.(secs * 1000, 2), 11) <>
        String.pad_leading(fmt.(mbps, 0), 8) <>
        String.pad_leading(fmt.(secs / bytes * 1.0e9, 1), 7) <>
        String.pad_leading(fmt.(ex * 1000, 2), 12) <>
        String.pad_leading(peer_col, 17) <>
        String.pad_leading(ratio_col, 9) <>
        String.pad_leading(flat, 7)
    )
  end
end

File.rm_rf!(tmp)
