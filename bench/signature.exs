# Parsing a signature string with six typed fields: DSPex (C parser in the NIF, then
# Elixir structs) against Python DSPy 3.3.1's dspy.Signature(str) on the same string, when
# a DSPy interpreter is available ($DSPY_PYTHON, else /opt/dspy-venv/bin/python).
#
#   MIX_ENV=prod mix run bench/signature.exs

Code.require_file("support/bench.exs", __DIR__)
alias DSPex.Signature

seconds = String.to_integer(System.get_env("BENCH_SECONDS", "2"))

string =
  "question, context: list[str], hist: dspy.History -> answer: str, confidence: float, " <>
    "labels: list[Literal['a', 'b', 'c']] | None"

parse_us = DSPex.Bench.measure_us(fn -> {:ok, _} = Signature.parse(string) end, seconds)

nif_us =
  DSPex.Bench.measure_us(fn -> {:ok, _} = DSPex.NIF.signature_parse(string, :string) end, seconds)

IO.puts("Signature string with 6 fields")

IO.puts(
  "  DSPex.Signature.parse/1: #{Float.round(parse_us, 2)} µs/call (NIF alone #{Float.round(nif_us, 2)} µs)"
)

DSPex.Bench.compare_with_dspy(
  "Python dspy.Signature(str)",
  Path.expand("py/signature_bench.py", __DIR__),
  [Integer.to_string(seconds), string],
  parse_us
)
