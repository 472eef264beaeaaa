# ChatAdapter format + parse of one call (signature with 3 fields, 4 demos): DSPex (C NIF)
# against Python DSPy 3.3.1 on the same case, when a DSPy interpreter is available
# ($DSPY_PYTHON, else /opt/dspy-venv/bin/python).
#
#   MIX_ENV=prod mix run bench/adapter.exs

Code.require_file("support/bench.exs", __DIR__)
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

dspex_us = DSPex.Bench.measure_us(one, seconds)

format_only = DSPex.Bench.measure_us(fn -> Chat.format(sig, demos, inputs, []) end, seconds)
parse_only = DSPex.Bench.measure_us(fn -> Chat.parse(sig, completion) end, seconds)

IO.puts("ChatAdapter format+parse, 3 fields, 4 demos")

IO.puts(
  "  DSPex (C NIF):   #{Float.round(dspex_us, 2)} µs/call  (format #{Float.round(format_only, 2)} µs, parse #{Float.round(parse_only, 2)} µs)"
)

DSPex.Bench.compare_with_dspy(
  "Python DSPy 3.3.1",
  Path.expand("py/adapter_bench.py", __DIR__),
  [Integer.to_string(seconds)],
  dspex_us
)
