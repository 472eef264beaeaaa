# Per-call overhead of a predictor (format prompt → LM → parse → prediction, with call
# history and trace bookkeeping), DSPex vs Python DSPy 3.3.1 in the same run, both with a
# canned in-process LM (DSPex.LM.Scripted / dspy DummyLM) so only the framework is timed.
#
#   MIX_ENV=prod mix run bench/modules_predict.exs
#
# Short by design (the build machine is shared): N calls each, best of 3 rounds.

n = String.to_integer(System.get_env("N", "2000"))
Code.require_file("support/bench.exs", __DIR__)
python = DSPex.Bench.dspy_python()

time_calls = fn program, inputs ->
  # warm up
  for _ <- 1..50, do: {:ok, _} = DSPex.call(program, inputs)

  for _ <- 1..3 do
    {us, _} = :timer.tc(fn -> for _ <- 1..n, do: {:ok, _} = DSPex.call(program, inputs) end)
    us / n
  end
  |> Enum.min()
end

lm_predict = DSPex.LM.Scripted.new([%{answer: "Paris"}], cycle: true)
lm_cot = DSPex.LM.Scripted.new([%{reasoning: "It is well known.", answer: "Paris"}], cycle: true)
qa = DSPex.Predict.new("question -> answer", lm: lm_predict)
cot = DSPex.ChainOfThought.new("question -> answer", lm: lm_cot)

ex_predict = time_calls.(qa, question: "What is the capital of France?")
ex_cot = time_calls.(cot, question: "What is the capital of France?")

py = """
import time, dspy
from dspy.utils.dummies import DummyLM
n = #{n}
def bench(mod, answer):
    dspy.configure(lm=DummyLM([answer] * (n * 3 + 100)))
    for _ in range(50): mod(question="What is the capital of France?")
    best = None
    for _ in range(3):
        t = time.perf_counter()
        for _ in range(n): mod(question="What is the capital of France?")
        us = (time.perf_counter() - t) / n * 1e6
        best = us if best is None else min(best, us)
    return best
print(bench(dspy.Predict("question -> answer"), {"answer": "Paris"}))
print(bench(dspy.ChainOfThought("question -> answer"), {"reasoning": "It is well known.", "answer": "Paris"}))
"""

{py_predict, py_cot} =
  if python do
    case System.cmd(python, ["-c", py], stderr_to_stdout: false) do
      {out, 0} ->
        [a, b] =
          out |> String.split("\n", trim: true) |> Enum.take(-2) |> Enum.map(&String.to_float/1)

        {a, b}

      {out, _} ->
        IO.puts("python run failed:\n" <> out)
        {nil, nil}
    end
  else
    {nil, nil}
  end

row = fn name, ex, py ->
  ratio = if py, do: :io_lib.format("~.1fx", [py / ex]) |> to_string(), else: "n/a"
  pys = if py, do: :io_lib.format("~.1f", [py]) |> to_string(), else: "n/a"

  IO.puts(
    String.pad_trailing(name, 18) <>
      String.pad_leading(:io_lib.format("~.1f", [ex]) |> to_string(), 12) <>
      String.pad_leading(pys, 14) <> String.pad_leading(ratio, 10)
  )
end

IO.puts("per call, µs (#{n} calls, best of 3)")

IO.puts(
  String.pad_trailing("module", 18) <>
    String.pad_leading("DSPex", 12) <>
    String.pad_leading("DSPy 3.3.1", 14) <> String.pad_leading("speedup", 10)
)

row.("Predict", ex_predict, py_predict)
row.("ChainOfThought", ex_cot, py_cot)
