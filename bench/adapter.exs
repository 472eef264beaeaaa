# ChatAdapter against Python DSPy 3.3.1 on the same cases, when a DSPy interpreter is
# available ($DSPY_PYTHON, else /opt/dspy-venv/bin/python):
#
#   1. format + parse of one call: signature with 3 fields and instructions, 4 demos;
#   2. format of one list[float] input of 1536 floats (an embedding);
#   3. format of 1e6 floats (DSPex only): time, and on which schedulers it ran.
#
#   MIX_ENV=prod mix run bench/adapter.exs
#
# Each side splits its time into BENCH_ROUNDS rounds (default 5) and reports its best
# round (the mean in brackets): on a shared machine the best round is the figure least
# disturbed by other processes, and both sides are measured the same way.

Code.require_file("support/bench.exs", __DIR__)
alias DSPex.Adapter.Chat
alias DSPex.Signature

seconds = String.to_integer(System.get_env("BENCH_SECONDS", "2"))
rounds = String.to_integer(System.get_env("BENCH_ROUNDS", "5"))

# {best, mean} µs per call over `rounds` rounds
best_us = fn fun ->
  times = for _ <- 1..rounds, do: DSPex.Bench.measure_us(fun, seconds / rounds, 200)
  {Enum.min(times), Enum.sum(times) / rounds}
end

fmt = fn {best, mean} -> "#{Float.round(best, 2)} µs/call (mean #{Float.round(mean, 2)})" end

{load, _} = System.cmd("cat", ["/proc/loadavg"])
IO.puts("machine load (1/5/15 min): #{load |> String.split() |> Enum.take(3) |> Enum.join(" ")}")

# ---- 1. format + parse, 3 fields, 4 demos
sig =
  Signature.parse!("question, context -> answer")
  |> Signature.with_instructions("Answer the question using the context.")

demos =
  for i <- 0..3 do
    %{
      question: "Question number #{i}?",
      context: String.duplicate("Some context for demo #{i}. ", 5),
      answer: "Answer #{i}"
    }
  end

inputs = %{
  question: "What is the capital of France?",
  context: String.duplicate("France is a country in Europe. ", 5)
}

completion = "[[ ## answer ## ]]\nParis\n\n[[ ## completed ## ]]"

one = fn ->
  _ = Chat.format(sig, demos, inputs, [])
  {:ok, %{answer: "Paris"}} = Chat.parse(sig, completion)
end

{dspex_us, _} = both = best_us.(one)
format_only = best_us.(fn -> Chat.format(sig, demos, inputs, []) end)
parse_only = best_us.(fn -> Chat.parse(sig, completion) end)

IO.puts("\nChatAdapter format+parse, 3 fields, 4 demos")
IO.puts("  DSPex (C NIF):   #{fmt.(both)}")
IO.puts("    format alone #{fmt.(format_only)}, parse alone #{fmt.(parse_only)}")

# each adapter call emits a telemetry span ([:dspex, :adapter, :format | :parse]); what
# two empty spans cost, measured the same way
meta = %{adapter: Chat, signature: Signature.signature_string(sig)}

spans =
  best_us.(fn ->
    DSPex.Telemetry.span([:dspex, :adapter, :format], meta, fn -> {:ok, meta} end)
    DSPex.Telemetry.span([:dspex, :adapter, :parse], meta, fn -> {:ok, meta} end)
  end)

IO.puts("    of which two telemetry spans (no handlers attached): #{fmt.(spans)}")

py = Path.expand("py/adapter_bench.py", __DIR__)
args = fn kind -> [Integer.to_string(seconds), Integer.to_string(rounds), kind] end
DSPex.Bench.compare_with_dspy("Python DSPy 3.3.1", py, args.("demos"), dspex_us)

# ---- where a call ran: the share of its wall time the dirty CPU schedulers were busy,
# and whether any normal scheduler was held by one process for 1 ms or more
where = fn fun ->
  :erlang.system_flag(:scheduler_wall_time, true)
  normal = :erlang.system_info(:schedulers)
  dirty = :erlang.system_info(:dirty_cpu_schedulers)
  dirty_ids = (normal + 1)..(normal + dirty)

  active = fn stats ->
    for {id, a, _} <- stats, id in dirty_ids, reduce: 0, do: (acc -> acc + a)
  end

  total = fn stats -> stats |> Enum.find(fn {id, _, _} -> id == 1 end) |> elem(2) end

  :erlang.system_monitor(self(), [{:long_schedule, 1}])
  before = :erlang.statistics(:scheduler_wall_time_all)
  fun.()
  later = :erlang.statistics(:scheduler_wall_time_all)
  :erlang.system_monitor(:undefined)

  share = (active.(later) - active.(before)) / max(total.(later) - total.(before), 1)
  me = self()

  held =
    Stream.repeatedly(fn ->
      receive do
        {:monitor, ^me, :long_schedule, info} -> Keyword.get(info, :timeout)
      after
        0 -> nil
      end
    end)
    |> Enum.take_while(&(&1 != nil))

  place = if share > 0.5, do: "dirty CPU scheduler", else: "normal scheduler"

  held =
    if held == [],
      do: "no normal scheduler held >= 1 ms",
      else: "normal scheduler held >= 1 ms #{length(held)}x (max #{Enum.max(held)} ms)"

  "#{place} (dirty CPU busy #{round(share * 100)}% of the time; #{held})"
end

# ---- 2. 1536 floats
vec_sig = Signature.parse!("x: list[float] -> y")
vec = %{x: for(i <- 1..1536, do: i * 0.5)}
vec_us = best_us.(fn -> Chat.format(vec_sig, [], vec, []) end)
IO.puts("\nChatAdapter format, one list[float] input of 1536 floats")
IO.puts("  DSPex (C NIF):   #{fmt.(vec_us)}")
IO.puts("    ran on: #{where.(fn -> for _ <- 1..100, do: Chat.format(vec_sig, [], vec, []) end)}")
DSPex.Bench.compare_with_dspy("Python DSPy 3.3.1", py, args.("floats"), elem(vec_us, 0))

# ---- 3. 1e6 floats
big = %{x: for(i <- 1..1_000_000, do: i * 0.5)}
{us, _} = :timer.tc(fn -> Chat.format(vec_sig, [], big, []) end)
IO.puts("\nChatAdapter format, one list[float] input of 1e6 floats (DSPy 3.3.1: about 1 s)")
IO.puts("  DSPex (C NIF):   #{Float.round(us / 1000, 1)} ms")
IO.puts("    ran on: #{where.(fn -> Chat.format(vec_sig, [], big, []) end)}")
