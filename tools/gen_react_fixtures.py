"""Golden fixtures for DSPex.ReAct, produced by the real DSPy 3.3.1 ReAct.

Run with:  /work/venv/bin/python tools/gen_react_fixtures.py

Writes test/fixtures/react/*.json (read by test/dspex/tools/react_fixtures_test.exs).
A scripted LM drives both sides: each case lists the LM's replies (raw text, or a
context-window error) and records every prompt DSPy sent, what each tool received, the
trajectory and the final prediction. Deterministic and rerunnable; no network.

Tools are described neutrally so the Elixir test can build the same ones:
  {"name": str, "desc": str|null, "params": [{"name", "type": TYPE, "default"?: value,
   "desc"?: str}], "results": [value, ...]}     (TYPE as in gen_dspy_fixtures.py)
A tool returns its results in order, one per call (values in gen_dspy_fixtures.py's
encoding: {"__ordered__": ...} keeps a dict's key order). `desc` null means the function has
no docstring; a tool built with explicit name=/desc= says so with "explicit": true.
"""

import inspect
import json
import os
import shutil
import sys
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import dspy  # noqa: E402
from dspy.utils.exceptions import ContextWindowExceededError  # noqa: E402
import gen_dspy_fixtures  # noqa: E402
from gen_dspy_fixtures import build_signature, enc_value, fld, py_type, sig  # noqa: E402

# DSPy's tool types in the neutral type form: "tool", "tool_calls"
gen_dspy_fixtures.SCALARS.update({"tool": dspy.Tool, "tool_calls": dspy.ToolCalls})

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "test", "fixtures", "react")


class ScriptLM(dspy.BaseLM):
    """Returns scripted replies in order and records each prompt."""

    forward_contract = "legacy"

    def __init__(self, script):
        super().__init__("scripted", "chat", 0.0, 1000, False)
        self.script = list(script)
        self.calls = []

    def forward(self, prompt=None, messages=None, **kwargs):
        self.calls.append([dict(m) for m in messages])
        item = self.script.pop(0)
        if "error" in item:
            raise ContextWindowExceededError(message="This model's maximum context length is 100 tokens")
        message = dspy.dsp.utils.dotdict(content=item["reply"], tool_calls=None)
        return dspy.dsp.utils.dotdict(
            choices=[dspy.dsp.utils.dotdict(message=message, finish_reason="stop")],
            usage=dspy.dsp.utils.dotdict(prompt_tokens=0, completion_tokens=0, total_tokens=0),
            model="scripted",
        )


def make_tool(spec, received):
    """A Python function with the spec's parameters, annotations, defaults and docstring."""
    results = list(spec["results"])
    name = spec["name"]

    def func(**kwargs):
        received.append([name, {k: enc_value(v) for k, v in kwargs.items()}])
        return results.pop(0)

    params = []
    for p in spec["params"]:
        default = p["default"] if "default" in p else inspect.Parameter.empty
        params.append(
            inspect.Parameter(p["name"], inspect.Parameter.KEYWORD_ONLY, default=default,
                              annotation=py_type(p["type"]))
        )
    func.__signature__ = inspect.Signature(params)
    func.__annotations__ = {p["name"]: py_type(p["type"]) for p in spec["params"]}
    func.__name__ = name
    func.__doc__ = spec.get("desc") if not spec.get("explicit") else None
    arg_desc = {p["name"]: p["desc"] for p in spec["params"] if "desc" in p} or None
    if spec.get("explicit"):
        return dspy.Tool(func, name=name, desc=spec.get("desc"), arg_desc=arg_desc)
    return dspy.Tool(func, arg_desc=arg_desc)


def chat(**fields):
    parts = []
    for k, v in fields.items():
        text = v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)
        parts.append(f"[[ ## {k} ## ]]\n{text}")
    return {"reply": "\n\n".join(parts) + "\n\n[[ ## completed ## ]]"}


def as_json(**fields):
    return {"reply": json.dumps(fields, ensure_ascii=False, indent=2)}


CTX = {"error": "context_window"}


def step(adapter, thought, tool, args):
    f = chat if adapter == "chat" else as_json
    return f(next_thought=thought, next_tool_name=tool, next_tool_args=args)


def extract(adapter, **fields):
    f = chat if adapter == "chat" else as_json
    return f(**fields)


def run_case(name, adapter, s, tools, inputs, script, max_iters=None, call_max_iters=None):
    received = []
    sigcls = build_signature(s)
    py_tools = [make_tool(t, received) for t in tools]
    lm = ScriptLM(script)
    ad = dspy.ChatAdapter() if adapter == "chat" else dspy.JSONAdapter()
    kwargs = {} if max_iters is None else {"max_iters": max_iters}
    react = dspy.ReAct(sigcls, tools=py_tools, **kwargs)
    call_inputs = dict(inputs)
    if call_max_iters is not None:
        call_inputs["max_iters"] = call_max_iters
    with dspy.context(lm=lm, adapter=ad):
        pred = react(**call_inputs)
    assert not lm.script, f"{name}: {len(lm.script)} scripted replies unused"
    out = dict(s)
    out["instructions"] = sigcls.instructions
    fixture = {
        "name": name,
        "adapter": adapter,
        "signature": out,
        "tools": [t | {"results": [enc_value(r) for r in t["results"]]} for t in tools],
        "max_iters": max_iters,
        "call_max_iters": call_max_iters,
        "inputs": {k: enc_value(v) for k, v in inputs.items()},
        "script": script,
        "calls": lm.calls,
        "tool_calls": received,
        "trajectory": [[k, enc_value(v)] for k, v in pred.trajectory.items()],
        "prediction": {k: enc_value(v) for k, v in pred.items() if k != "trajectory"},
    }
    os.makedirs(ROOT, exist_ok=True)
    with open(os.path.join(ROOT, name + ".json"), "w", encoding="utf-8") as fh:
        json.dump(fixture, fh, ensure_ascii=False, indent=2)
        fh.write("\n")


SEARCH = {
    "name": "search",
    "desc": "Search Wikipedia for a query.",
    "params": [{"name": "query", "type": "str"}],
    "results": [["Paris is the capital of France.", "France is in Western Europe."]],
}

QA = sig([fld("question")], [fld("answer")])


def cases():
    for ad in ("chat", "json"):
        yield (f"basic_{ad}", ad, QA, [SEARCH], {"question": "What is the capital of France?"}, [
            step(ad, "I should search.", "search", {"query": "capital of France"}),
            step(ad, "Paris it is.", "finish", {}),
            extract(ad, reasoning="The search says Paris.", answer="Paris"),
        ])

    weather = {
        "name": "get_weather",
        "desc": "Get the current weather.\n\nArgs:\n    city: the city\n    unit: C or F",
        "params": [{"name": "city", "type": "str"}, {"name": "unit", "type": ["literal", ["C", "F"]], "default": "C"}],
        "results": ["Sunny, 21 degrees", {"temp": 70, "sky": "clear", "wind": None}],
    }
    add = {
        "name": "add",
        "desc": None,
        "params": [{"name": "a", "type": "int"}, {"name": "b", "type": "int"}],
        "results": [5],
    }
    lookup = {
        "name": "lookup",
        "desc": "Look keys up in the «table».",
        "params": [
            {"name": "keys", "type": ["list", "str"], "desc": "The keys to find"},
            {"name": "limit", "type": ["optional", "int"], "default": None},
            {"name": "exact", "type": "bool", "default": True},
            {"name": "scale", "type": "float", "default": 1.5},
            {"name": "weights", "type": ["dict", "str", "float"], "default": {}},
            {"name": "extra", "type": "any", "default": None},
        ],
        "results": [[{"key": "x", "value": 1}, "line one\nline two"], None],
    }
    multi = sig(
        [fld("question", desc="The user's question"), fld("context", ["list", "str"])],
        [fld("answer"), fld("confidence", "float", desc="Between 0 and 1")],
        "Answer with the help of tools.\nBe brief.",
    )
    for ad in ("chat", "json"):
        yield (f"multi_tools_{ad}", ad, multi, [weather, add, lookup],
               {"question": "Is it warm in Paris?", "context": ["Paris is in France.", "It is July."]}, [
            step(ad, "Check the weather.", "get_weather", {"city": "Paris"}),
            step(ad, "In Fahrenheit too.", "get_weather", {"city": "Paris", "unit": "F"}),
            step(ad, "Add for fun.", "add", {"a": 2, "b": 3}),
            step(ad, "Look up.", "lookup", {"keys": ["x", "y"], "limit": 2, "weights": {"x": 0.5}}),
            step(ad, "And again.", "lookup", {"keys": [], "exact": False, "extra": [1, "two"]}),
            step(ad, "Done.", "finish", {}),
            extract(ad, reasoning="Sunny and 21 degrees.", answer="Yes, warm.", confidence="0.9"),
        ])

    yield ("max_iters_chat", "chat", QA, [SEARCH | {"results": ["a", "b", "c"]}], {"question": "Loop?"}, [
        step("chat", "Search 1.", "search", {"query": "one"}),
        step("chat", "Search 2.", "search", {"query": "two"}),
        extract("chat", reasoning="Gave up.", answer="unknown"),
    ], 2)

    yield ("call_max_iters_chat", "chat", QA, [SEARCH | {"results": ["a"]}], {"question": "Once?"}, [
        step("chat", "Search once.", "search", {"query": "one"}),
        extract("chat", reasoning="One step.", answer="a"),
    ], 5, 1)

    # context window: the 3rd step overflows; the oldest step is dropped and it retries
    yield ("truncation_chat", "chat", QA, [SEARCH | {"results": ["r0", "r1", "r2"]}], {"question": "Long?"}, [
        step("chat", "First.", "search", {"query": "q0"}),
        step("chat", "Second.", "search", {"query": "q1"}),
        CTX,
        step("chat", "Third.", "search", {"query": "q2"}),
        step("chat", "Done.", "finish", {}),
        CTX,
        extract("chat", reasoning="After truncation.", answer="r2"),
    ])

    # an overflow with one step left cannot truncate: the loop ends, extraction follows
    yield ("truncation_exhausted_chat", "chat", QA, [SEARCH | {"results": ["r0"]}], {"question": "Huge?"}, [
        step("chat", "First.", "search", {"query": "q0"}),
        CTX,
        extract("chat", reasoning="Stopped early.", answer="r0"),
    ])

    typed = sig([fld("question")], [fld("answer", "int"), fld("sources", ["list", "str"])], "")
    explicit = {
        "name": "web_search",
        "desc": "Search the web.\nReturns snippets.",
        "explicit": True,
        "params": [{"name": "q", "type": "str", "desc": "query text"},
                   {"name": "k", "type": "int", "default": 3, "desc": "how many"}],
        "results": [["2 + 2 = 4"]],
    }
    clock = {"name": "now", "desc": "The current time.", "params": [], "results": ["12:00"]}
    yield ("typed_outputs_chat", "chat", typed, [explicit, clock], {"question": "What is 2+2?"}, [
        step("chat", "Time first.", "now", {}),
        step("chat", "Then search.", "web_search", {"q": "2+2"}),
        step("chat", "Finish.", "finish", {}),
        extract("chat", reasoning="Arithmetic.", answer="4", sources=["web"]),
    ])
    yield ("typed_outputs_json", "json", typed, [explicit, clock], {"question": "What is 2+2?"}, [
        step("json", "Then search.", "web_search", {"q": "2+2", "k": 1}),
        step("json", "Finish.", "finish", {}),
        extract("json", reasoning="Arithmetic.", answer=4, sources=["web"]),
    ])

    default_instr = sig([fld("topic"), fld("level", "int")], [fld("summary")])
    yield ("default_instructions_chat", "chat", default_instr, [SEARCH], {"topic": "Elixir", "level": 2}, [
        step("chat", "Search.", "search", {"query": "Elixir language"}),
        step("chat", "Finish.", "finish", {}),
        extract("chat", reasoning="Known.", summary="A BEAM language."),
    ])


# ------------------------------------------------------------------------------------
# Tool types in signatures: list[dspy.Tool] / dspy.Tool inputs and dspy.ToolCalls
# outputs, rendered and parsed as text, and sent as native function calls.

TYPES_ROOT = os.path.join(ROOT, "tool_types")


class NativeLM(ScriptLM):
    """A scripted LM that supports function calling; replies may carry tool calls."""

    @property
    def supports_function_calling(self):
        return True

    def forward(self, prompt=None, messages=None, **kwargs):
        self.calls.append([dict(m) for m in messages])
        self.kwargs_seen = {k: v for k, v in kwargs.items() if k in ("tools", "tool_choice", "parallel_tool_calls")}
        item = self.script.pop(0)
        calls = None
        if item.get("tool_calls"):
            calls = [dspy.dsp.utils.dotdict(id=c["id"], type="function",
                                             function=dspy.dsp.utils.dotdict(name=c["name"], arguments=c["arguments"]))
                     for c in item["tool_calls"]]
        message = dspy.dsp.utils.dotdict(content=item.get("reply"), tool_calls=calls)
        return dspy.dsp.utils.dotdict(
            choices=[dspy.dsp.utils.dotdict(message=message, finish_reason="tool_calls" if calls else "stop")],
            usage=dspy.dsp.utils.dotdict(prompt_tokens=0, completion_tokens=0, total_tokens=0),
            model="scripted",
        )


def enc_calls(calls):
    return {"tool_calls": [{"id": c.id, "name": c.name, "args": enc_value(c.args)} for c in calls.tool_calls]}


def write_types(name, obj):
    os.makedirs(TYPES_ROOT, exist_ok=True)
    with open(os.path.join(TYPES_ROOT, name + ".json"), "w", encoding="utf-8") as fh:
        json.dump(obj, fh, ensure_ascii=False, indent=2)
        fh.write("\n")


WEATHER = {"name": "get_weather", "desc": "Get the weather.", "params": [
    {"name": "city", "type": "str", "desc": "City name"},
    {"name": "days", "type": "int", "default": 1}], "results": []}
CLOCK = {"name": "now", "desc": None, "params": [], "results": []}


def tool_sig(single=False, extra_output=False):
    outputs = ([fld("answer")] if extra_output else []) + [fld("calls", "tool_calls")]
    return sig([fld("question"), fld("tools", "tool" if single else ["list", "tool"])], outputs, "Use the tools.")


def tool_types_cases():
    n = 0
    py = lambda specs: [make_tool(t, []) for t in specs]  # noqa: E731
    for ad_name, ad in (("chat", dspy.ChatAdapter()), ("json", dspy.JSONAdapter(use_native_function_calling=False))):
        # rendering: list[Tool], Tool, a demo whose output is a ToolCalls value
        for case, s, tools, demos in (
            ("list", tool_sig(), [WEATHER, CLOCK], []),
            ("single", tool_sig(single=True), [WEATHER], []),
            ("demo", tool_sig(extra_output=True), [CLOCK], [
                {"question": "What time is it?", "tools": [CLOCK], "answer": "Let me check.",
                 "calls": {"tool_calls": [{"name": "now", "args": {}}]}}]),
        ):
            sigcls = build_signature(s)
            single = case == "single"
            inputs = {"question": "Weather in Paris?", "tools": py(tools)[0] if single else py(tools)}
            py_demos = [d | {"tools": py(d["tools"]),
                             "calls": dspy.ToolCalls.model_validate(d["calls"])} for d in demos]
            msgs = ad.format(sigcls, py_demos, inputs)
            write_types(f"render_{case}_{ad_name}", {
                "kind": "render", "adapter": ad_name, "signature": s, "tools": tools, "single": single,
                "demos": [d | {"tools": [t["name"] for t in d["tools"]]} for d in demos],
                "inputs": {"question": inputs["question"]}, "messages": msgs})
            n += 1
        # parsing the text form
        s = tool_sig()
        sigcls = build_signature(s)
        completions = {
            "wrapped": {"tool_calls": [{"name": "get_weather", "args": {"city": "Paris"}}, {"name": "now", "args": {}}]},
            "bare_list": [{"name": "get_weather", "args": {"city": "Oslo", "days": 2}}],
            "one_call": {"name": "now", "args": {}},
            "arguments_text": {"tool_calls": [{"name": "get_weather", "arguments": "{\"city\": \"Rome\"}"}]},
            "openai_shape": [{"id": "call_1", "type": "function",
                              "function": {"name": "get_weather", "arguments": "{\"city\": \"Kyiv\"}"}}],
        }
        for cname, value in completions.items():
            text = (f"[[ ## calls ## ]]\n{json.dumps(value)}\n\n[[ ## completed ## ]]" if ad_name == "chat"
                    else json.dumps({"calls": value}))
            out = ad.parse(sigcls, text)
            write_types(f"parse_{cname}_{ad_name}", {
                "kind": "parse", "adapter": ad_name, "signature": s, "completion": text,
                "outputs": {"calls": enc_calls(out["calls"])}})
            n += 1

    # native function calling: the tools go as function definitions, the fields leave the
    # prompt, the reply's tool calls fill the output
    for ad_name, ad in (("chat", dspy.ChatAdapter(use_native_function_calling=True)), ("json", dspy.JSONAdapter())):
        for case, s, reply in (
            ("calls_only", tool_sig(), {"reply": None, "tool_calls": [
                {"id": "call_a", "name": "get_weather", "arguments": "{\"city\": \"Paris\", \"days\": 3}"},
                {"id": "call_b", "name": "now", "arguments": "{}"}]}),
            ("with_answer", tool_sig(extra_output=True), {
                "reply": ("[[ ## answer ## ]]\nChecking.\n\n[[ ## completed ## ]]" if ad_name == "chat"
                          else json.dumps({"answer": "Checking."})),
                "tool_calls": [{"id": "call_c", "name": "now", "arguments": "{}"}]}),
        ):
            sigcls = build_signature(s)
            lm = NativeLM([reply])
            with dspy.context(lm=lm, adapter=ad):
                pred = dspy.Predict(sigcls)(question="Weather in Paris?", tools=py([WEATHER, CLOCK]))
            outputs = {k: (enc_calls(v) if isinstance(v, dspy.ToolCalls) else enc_value(v)) for k, v in pred.items()}
            write_types(f"native_{case}_{ad_name}", {
                "kind": "native", "adapter": ad_name, "signature": s, "tools": [WEATHER, CLOCK],
                "inputs": {"question": "Weather in Paris?"}, "reply": reply, "messages": lm.calls[0],
                "lm_kwargs": lm.kwargs_seen, "outputs": outputs})
            n += 1
    return n


def main():
    if os.path.isdir(ROOT):
        shutil.rmtree(ROOT)
    n = 0
    for case in cases():
        run_case(*case)
        n += 1
    t = tool_types_cases()
    print(f"react fixtures: {n}, tool type fixtures: {t}", file=sys.stderr)


if __name__ == "__main__":
    main()
