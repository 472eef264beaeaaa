# Agents: one whole DSPex.ReAct episode (3 tool steps, finish, extraction: 5 LM calls,
# each prompt rendered, each reply parsed, each tool run in its own supervised task) and
# one validated tool call, DSPex vs Python DSPy 3.3.1 in the same run, both with a canned
# in-process LM so only the framework is timed.
#
#   DSPY_PYTHON=/work/venv/bin/python MIX_ENV=prod mix run bench/react.exs
#
# Short by design (the build machine is shared): N episodes / calls each, best of 3.

n = String.to_integer(System.get_env("N", "200"))
Code.require_file("support/bench.exs", __DIR__)
python = DSPex.Bench.dspy_python()

step = fn thought, tool, args ->
  "[[ ## next_thought ## ]]\n#{thought}\n\n[[ ## next_tool_name ## ]]\n#{tool}\n\n" <>
    "[[ ## next_tool_args ## ]]\n#{args}\n\n[[ ## completed ## ]]"
end

script = [
  step.("Look it up.", "search", ~s({"query": "capital of France"})),
  step.("Check the weather.", "get_weather", ~s({"city": "Paris", "unit": "C"})),
  step.("Add.", "add", ~s({"a": 2, "b": 3})),
  step.("Done.", "finish", "{}"),
  "[[ ## reasoning ## ]]\nParis, sunny.\n\n[[ ## answer ## ]]\nParis\n\n[[ ## completed ## ]]"
]

tools = [
  DSPex.Tool.new(fn q -> ["#{q}: Paris is the capital of France.", "France is in Europe."] end,
    name: "search",
    desc: "Search Wikipedia.",
    args: [query: :string]
  ),
  DSPex.Tool.new(fn city, unit -> %{"city" => city, "temp" => 21, "unit" => unit} end,
    name: "get_weather",
    desc: "The current weather.",
    args: [city: :string, unit: [type: {:literal, ["C", "F"]}, default: "C"]]
  ),
  DSPex.Tool.new(fn a, b -> a + b end, name: "add", args: [a: :integer, b: :integer])
]

lm = DSPex.LM.Scripted.new(script, cycle: true)
agent = DSPex.ReAct.new("question -> answer", tools: tools, lm: lm)
inputs = [question: "What is the capital of France, and how is the weather?"]

best = fn fun, reps ->
  for(_ <- 1..10, do: fun.())

  for _ <- 1..3 do
    {us, _} = :timer.tc(fn -> for _ <- 1..reps, do: fun.() end)
    us / reps
  end
  |> Enum.min()
end

ex_episode = best.(fn -> {:ok, %{answer: "Paris"}} = DSPex.call(agent, inputs) end, n)
add = Enum.at(tools, 2)
ex_tool = best.(fn -> {:ok, 5} = DSPex.Tool.call(add, %{"a" => 2, "b" => "3"}) end, n * 20)
ex_direct = best.(fn -> 5 = apply(add.fun, [2, 3]) end, n * 20)

py = """
import time, dspy
from dspy.dsp.utils import dotdict
n = #{n}
step = lambda t, tool, a: f"[[ ## next_thought ## ]]\\n{t}\\n\\n[[ ## next_tool_name ## ]]\\n{tool}\\n\\n[[ ## next_tool_args ## ]]\\n{a}\\n\\n[[ ## completed ## ]]"
script = [step("Look it up.", "search", '{"query": "capital of France"}'),
          step("Check the weather.", "get_weather", '{"city": "Paris", "unit": "C"}'),
          step("Add.", "add", '{"a": 2, "b": 3}'), step("Done.", "finish", "{}"),
          "[[ ## reasoning ## ]]\\nParis, sunny.\\n\\n[[ ## answer ## ]]\\nParis\\n\\n[[ ## completed ## ]]"]
class LM(dspy.BaseLM):
    forward_contract = "legacy"
    def __init__(self):
        super().__init__("scripted", "chat", 0.0, 1000, False); self.i = 0
    def forward(self, prompt=None, messages=None, **kw):
        text = script[self.i % len(script)]; self.i += 1
        return dotdict(choices=[dotdict(message=dotdict(content=text, tool_calls=None), finish_reason="stop")],
                       usage=dotdict(prompt_tokens=0, completion_tokens=0, total_tokens=0), model="scripted")
def search(query: str) -> list[str]:
    \"\"\"Search Wikipedia.\"\"\"
    return [f"{query}: Paris is the capital of France.", "France is in Europe."]
from typing import Literal
def get_weather(city: str, unit: Literal["C", "F"] = "C") -> dict:
    \"\"\"The current weather.\"\"\"
    return {"city": city, "temp": 21, "unit": unit}
def add(a: int, b: int) -> int:
    return a + b
dspy.configure(lm=LM())
agent = dspy.ReAct("question -> answer", tools=[search, get_weather, add])
q = "What is the capital of France, and how is the weather?"
def best(fun, reps):
    for _ in range(10): fun()
    r = None
    for _ in range(3):
        t = time.perf_counter()
        for _ in range(reps): fun()
        us = (time.perf_counter() - t) / reps * 1e6
        r = us if r is None else min(r, us)
    return r
print(best(lambda: agent(question=q), n))
tool = agent.tools["add"]
print(best(lambda: tool(a=2, b=3), n * 20))
"""

{py_episode, py_tool} =
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

load = :cpu_sup |> Code.ensure_loaded() |> then(fn _ -> :erlang.statistics(:run_queue) end)

IO.puts(
  "ReAct and tools, DSPex vs DSPy 3.3.1 (canned LM, best of 3; run queue at start: #{load})"
)

row = fn label, ours, theirs ->
  ratio =
    if theirs,
      do: " | DSPy #{Float.round(theirs, 1)} µs | #{Float.round(theirs / ours, 1)}x",
      else: ""

  IO.puts("  #{String.pad_trailing(label, 44)} DSPex #{Float.round(ours, 2)} µs#{ratio}")
end

row.("ReAct episode (5 LM calls, 3 tools)", ex_episode, py_episode)
row.("validated tool call (own supervised task)", ex_tool, py_tool)
row.("the same function called directly", ex_direct, nil)
