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
# Prints MB/s for both and the ratio DSPex/jsonrepair (> 1 means DSPex is faster).
# If node/npm are unavailable, prints DSPex's numbers only.

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

  # Best-of-N seconds per call, within a time budget.
  def time(fun, budget_s \\ 3.0) do
    fun.()
    deadline = System.monotonic_time(:microsecond) + round(budget_s * 1_000_000)
    loop(fun, deadline, :infinity, 0)
  end

  defp loop(fun, deadline, best, n) do
    {us, _} = :timer.tc(fun)
    best = min(best, us)

    if n >= 2 and System.monotonic_time(:microsecond) > deadline,
      do: best / 1_000_000,
      else: loop(fun, deadline, best, n + 1)
  end

  def peer(files) do
    dir = Path.expand("node", __DIR__)

    with node when is_binary(node) <- System.find_executable("node"),
         :ok <- ensure_installed(dir) do
      {out, status} =
        System.cmd(node, [Path.join(dir, "jsonrepair_bench.js") | Map.values(files)],
          env: [{"ITERATIONS", "5"}, {"MAX_SECONDS", "30"}],
          stderr_to_stdout: true
        )

      if status == 0 do
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
  "DSPex.JSON.repair/2 vs jsonrepair #{"3.14.1"} (node #{String.trim(elem(System.cmd("node", ["--version"]), 0))})\n"
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
      %{"ok" => true, "mb_s" => pm} when pm > 0 ->
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

File.rm_rf!(tmp)
