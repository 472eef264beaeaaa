# Parsing a signature string with six typed fields: DSPex (C parser in the NIF, then
# Elixir structs) against Python DSPy 3.3.1's dspy.Signature(str) on the same string, when
# a DSPy interpreter is available ($DSPY_PYTHON, else /opt/dspy-venv/bin/python).
#
#   MIX_ENV=prod mix run bench/signature.exs

alias DSPex.Signature

seconds = String.to_integer(System.get_env("BENCH_SECONDS", "2"))

string =
  "question, context: list[str], hist: dspy.History -> answer: str, confidence: float, " <>
    "labels: list[Literal['a', 'b', 'c']] | None"

measure = fn fun ->
  for _ <- 1..2000, do: fun.()
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

parse_us = measure.(fn -> {:ok, _} = Signature.parse(string) end)
nif_us = measure.(fn -> {:ok, _} = DSPex.NIF.signature_parse(string) end)

IO.puts("Signature string with 6 fields")

IO.puts(
  "  DSPex.Signature.parse/1: #{Float.round(parse_us, 2)} µs/call (NIF alone #{Float.round(nif_us, 2)} µs)"
)

python = System.get_env("DSPY_PYTHON") || "/opt/dspy-venv/bin/python"
script = Path.expand("py/signature_bench.py", __DIR__)

if File.exists?(python) do
  {out, 0} =
    System.cmd(python, [script, Integer.to_string(seconds), string], stderr_to_stdout: true)

  [_, us] = Regex.run(~r/us_per_call=([0-9.]+)/, out)
  py_us = String.to_float(us)
  IO.puts("  Python dspy.Signature(str): #{Float.round(py_us, 2)} µs/call")
  IO.puts("  ratio: DSPex is #{Float.round(py_us / parse_us, 1)}x faster")
else
  IO.puts("  Python DSPy not found (set DSPY_PYTHON); no comparison")
end
