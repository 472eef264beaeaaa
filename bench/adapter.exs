# ChatAdapter format + parse of one call (signature with 3 fields, 4 demos): DSPex (C NIF)
# against Python DSPy 3.3.1 on the same case, when a DSPy interpreter is available
# ($DSPY_PYTHON, else /opt/dspy-venv/bin/python).
#
#   MIX_ENV=prod mix run bench/adapter.exs

alias DSPex.Adapter.Chat
alias DSPex.Signature

seconds = String.to_integer(System.get_env("BENCH_SECONDS", "2"))

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

Enum.each(1..2000, fn _ -> one.() end)

measure = fn fun ->
  deadline = System.monotonic_time(:microsecond) + seconds * 1_000_000
  start = System.monotonic_time(:microsecond)

  n =
    Stream.repeatedly(fn -> Enum.each(1..200, fn _ -> fun.() end) end)
    |> Enum.reduce_while(0, fn _, acc ->
      if System.monotonic_time(:microsecond) >= deadline,
        do: {:halt, acc + 200},
        else: {:cont, acc + 200}
    end)

  (System.monotonic_time(:microsecond) - start) / n
end

dspex_us = measure.(one)

format_only = measure.(fn -> Chat.format(sig, demos, inputs, []) end)
parse_only = measure.(fn -> Chat.parse(sig, completion) end)

IO.puts("ChatAdapter format+parse, 3 fields, 4 demos")

IO.puts(
  "  DSPex (C NIF):   #{Float.round(dspex_us, 2)} µs/call  (format #{Float.round(format_only, 2)} µs, parse #{Float.round(parse_only, 2)} µs)"
)

python = System.get_env("DSPY_PYTHON") || "/opt/dspy-venv/bin/python"
script = Path.expand("py/adapter_bench.py", __DIR__)

if File.exists?(python) do
  {out, 0} = System.cmd(python, [script, Integer.to_string(seconds)], stderr_to_stdout: true)
  [_, us] = Regex.run(~r/us_per_call=([0-9.]+)/, out)
  py_us = String.to_float(us)
  IO.puts("  Python DSPy 3.3.1: #{Float.round(py_us, 2)} µs/call")
  IO.puts("  ratio: DSPex is #{Float.round(py_us / dspex_us, 1)}x faster")
else
  IO.puts("  Python DSPy not found (set DSPY_PYTHON); no comparison")
end
