"""Golden fixtures for DSPex's adapters, produced by the real DSPy 3.3.1.

Run with:  /opt/dspy-venv/bin/python tools/gen_dspy_fixtures.py

Writes test/fixtures/dspy/render/*.json, test/fixtures/dspy/parse/*.json and
test/fixtures/dspy/saved/*.json. Deterministic and rerunnable; no LM is called.

Neutral signature form (read by test/dspex/adapter_fixtures_test.exs):
  {"instructions": str,
   "inputs"/"outputs": [{"name": str, "type": TYPE, "desc": str|null,
                          "constraints": [[key, value], ...]}]}
  TYPE = "str" | "int" | "float" | "bool" | "any" | "none" | "history" | "list" | "dict"
       | "tuple" | "set" | ["list", T] | ["set", T] | ["dict", K, V] | ["tuple", [T|"ellipsis"]]
       | ["literal", [v]] | ["optional", T] | ["union", [T]] | ["enum", Name, [str]]
Values: JSON, plus {"__tuple__": [...]}, {"__set__": [...]}, {"__history__": [msgs]},
{"__ordered__": [[k, v], ...]} (a dict whose key order matters).
"""

import enum
import json
import os
import shutil
import sys
from typing import Any, Literal, Optional, Union

import dspy
from dspy.utils.exceptions import AdapterParseError

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "test", "fixtures", "dspy")

_ENUMS = {}


def get_enum(name, values):
    key = (name, tuple(values))
    if key not in _ENUMS:
        _ENUMS[key] = enum.Enum(name, {f"M{i}": v for i, v in enumerate(values)})
    return _ENUMS[key]


SCALARS = {
    "str": str, "int": int, "float": float, "bool": bool, "any": Any, "none": type(None),
    "history": dspy.History, "list": list, "dict": dict, "tuple": tuple, "set": set,
}


def py_type(t):
    if isinstance(t, str):
        return SCALARS[t]
    tag = t[0]
    if tag == "list":
        return list[py_type(t[1])]
    if tag == "set":
        return set[py_type(t[1])]
    if tag == "dict":
        return dict[py_type(t[1]), py_type(t[2])]
    if tag == "tuple":
        return tuple[tuple(... if a == "ellipsis" else py_type(a) for a in t[1])]
    if tag == "literal":
        return Literal[tuple(t[1])]
    if tag == "optional":
        return Optional[py_type(t[1])]
    if tag == "union":
        return Union[tuple(py_type(a) for a in t[1])]
    if tag == "enum":
        return get_enum(t[1], t[2])
    raise ValueError(t)


def fld(name, type_="str", desc=None, **constraints):
    return {"name": name, "type": type_, "desc": desc, "constraints": [[k, v] for k, v in constraints.items()]}


def sig(inputs, outputs, instructions=None):
    return {"inputs": inputs, "outputs": outputs, "instructions": instructions}


def build_signature(s):
    fields = {}
    for kind, lst in (("in", s["inputs"]), ("out", s["outputs"])):
        for f in lst:
            kw = {}
            if f["desc"] is not None:
                kw["desc"] = f["desc"]
            for k, v in f["constraints"]:
                kw[k] = v
            field = dspy.InputField(**kw) if kind == "in" else dspy.OutputField(**kw)
            fields[f["name"]] = (py_type(f["type"]), field)
    if s["instructions"] is None:
        return dspy.Signature(fields)
    return dspy.Signature(fields, s["instructions"])


def neutral(s, sigcls):
    out = dict(s)
    out["instructions"] = sigcls.instructions
    return out


def py_value(v):
    if isinstance(v, dict):
        if "__tuple__" in v:
            return tuple(py_value(x) for x in v["__tuple__"])
        if "__set__" in v:
            return set(py_value(x) for x in v["__set__"])
        if "__history__" in v:
            return dspy.History(messages=[py_value(m) for m in v["__history__"]])
        if "__ordered__" in v:
            return {k: py_value(x) for k, x in v["__ordered__"]}
        return {k: py_value(x) for k, x in v.items()}
    if isinstance(v, list):
        return [py_value(x) for x in v]
    return v


def enc_value(v):
    if isinstance(v, enum.Enum):
        return v.value
    if isinstance(v, tuple):
        return {"__tuple__": [enc_value(x) for x in v]}
    if isinstance(v, (set, frozenset)):
        return {"__set__": sorted((enc_value(x) for x in v), key=repr)}
    if isinstance(v, dict):
        return {"__ordered__": [[enc_value(k), enc_value(x)] for k, x in v.items()]}
    if isinstance(v, list):
        return [enc_value(x) for x in v]
    return v


def write(sub, name, obj):
    d = os.path.join(ROOT, sub)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name + ".json"), "w", encoding="utf-8") as fh:
        json.dump(obj, fh, ensure_ascii=False, indent=2, sort_keys=False)
        fh.write("\n")


# --------------------------------------------------------------------------- render cases
QA = sig([fld("question")], [fld("answer")], "Answer the question.")

RENDER = []


def render_case(name, s, inputs, demos=(), outputs=None, cot=False):
    RENDER.append((name, s, inputs, list(demos), outputs, cot))


render_case("basic_qa", QA, {"question": "What is the capital of France?"}, outputs={"answer": "Paris"})
render_case("default_instructions", sig([fld("question"), fld("context")], [fld("answer")]),
            {"question": "q?", "context": "c"}, outputs={"answer": "a"})
render_case("descriptions", sig([fld("question", desc="A trivia question."), fld("context", desc="Facts that may help.")],
                                [fld("answer", desc="Often between 1 and 5 words"), fld("source", desc="Where it came from")],
                                "Answer with a short factoid."),
            {"question": "Who wrote Hamlet?", "context": "Shakespeare wrote many plays."},
            outputs={"answer": "Shakespeare", "source": "context"})
render_case("typed_scalars", sig([fld("text")], [fld("count", "int"), fld("score", "float"), fld("ok", "bool")],
                                 "Count things."),
            {"text": "a b c"}, outputs={"count": 3, "score": 0.5, "ok": True})
render_case("typed_containers", sig([fld("text")], [fld("tags", ["list", "str"]), fld("counts", ["dict", "str", "int"]),
                                                    fld("pair", ["tuple", ["int", "str"]]), fld("uniq", ["set", "str"])]),
            {"text": "x"}, outputs={"tags": ["a", "b"], "counts": {"__ordered__": [["a", 1], ["b", 2]]},
                                    "pair": {"__tuple__": [1, "x"]}, "uniq": ["u"]})
render_case("typed_bare_generics", sig([fld("q")], [fld("a", "list"), fld("b", "dict"), fld("c", "tuple"), fld("d", "set"), fld("e", "any")]),
            {"q": "x"}, outputs={"a": [1, "x"], "b": {"k": None}, "c": [1], "d": [2], "e": "anything"})
render_case("literal_outputs", sig([fld("review")], [fld("sentiment", ["literal", ["positive", "negative", "neutral"]]),
                                                   fld("stars", ["literal", [1, 2, 3]]),
                                                   fld("quoted", ["literal", ["it's", 'say "hi"', "both ' and \""]])],
                                   "Classify the review."),
            {"review": "Great!"}, outputs={"sentiment": "positive", "stars": 3, "quoted": "it's"})
render_case("literal_mixed", sig([fld("q")], [fld("a", ["literal", [1, "a", True, None, 2.5]]), fld("b", ["literal", ["only"]]),
                                              fld("c", ["literal", [None]])]),
            {"q": "x"})
render_case("optional_union", sig([fld("q")], [fld("maybe", ["optional", "int"]), fld("either", ["union", ["int", "str"]]),
                                               fld("three", ["optional", ["union", ["int", "str"]]]),
                                               fld("optlist", ["optional", ["list", "str"]])]),
            {"q": "x"}, outputs={"maybe": None, "either": 3, "three": "s", "optlist": None})
render_case("enum_outputs", sig([fld("text")], [fld("color", ["enum", "Color", ["red", "green", "blue"]]),
                                                fld("colors", ["list", ["enum", "Color", ["red", "green", "blue"]]]),
                                                fld("maybe_color", ["optional", ["enum", "Color", ["red", "green", "blue"]]]),
                                                fld("pair", ["tuple", [["enum", "Color", ["red", "green", "blue"]], ["enum", "Size", ["s", "m"]]]])]),
            {"text": "sky"}, outputs={"color": "blue", "colors": ["red"], "maybe_color": None, "pair": {"__tuple__": ["red", "s"]}})
render_case("nested_types", sig([fld("q")], [fld("a", ["dict", "str", ["list", "int"]]), fld("b", ["list", ["list", "str"]]),
                                             fld("c", ["tuple", ["int", "ellipsis"]]), fld("d", ["dict", "int", "str"]),
                                             fld("e", ["list", ["optional", "float"]]), fld("f", ["dict", "str", "any"]),
                                             fld("g", ["list", ["literal", ["x", "y"]]])]),
            {"q": "x"})
render_case("constraints", sig([fld("text", min_length=2, max_length=100)],
                               [fld("score", "int", "A score", ge=0, le=10), fld("ratio", "float", gt=0.0, lt=1.5, multiple_of=0.25),
                                fld("label", desc="The label")]),
            {"text": "hello"}, outputs={"score": 5, "ratio": 0.5, "label": "x"})
render_case("input_scalars", sig([fld("i", "int"), fld("f1", "float"), fld("f2", "float"), fld("f3", "float"), fld("f4", "float"),
                                  fld("b", "bool"), fld("n", ["optional", "int"]), fld("neg", "float"), fld("big", "float")],
                                 [fld("out")], "Echo."),
            {"i": 42, "f1": 0.1, "f2": 1e-05, "f3": 1.0, "f4": 1e16, "b": False, "n": None, "neg": -2.5, "big": 123456789.125})
render_case("input_list_blobs", sig([fld("empty"), fld("one"), fld("many"), fld("multi"), fld("quotes")], [fld("answer")], "Read."),
            {"empty": [], "one": ["only passage"], "many": ["first", "second", "third"],
             "multi": ["line one\nline two", "plain"], "quotes": ["has «guillemets»", "x"]})
render_case("input_list_of_containers_to_str", sig([fld("items"), fld("rows")], [fld("answer")], "Summarize."),
            {"items": [{"__ordered__": [["name", "it's"], ["n", 1], ["ok", True], ["none", None]]}, {"__ordered__": [["x", "a\nb"]]}],
             "rows": [["a", 1.5], ["b", None]]})
render_case("no_inputs", sig([], [fld("joke", desc="A short joke"), fld("rating", "int")], "Tell a joke."), {},
            demos=[{"joke": "j1", "rating": 3}], outputs={"joke": "j", "rating": 1})
render_case("duplicate_like_names", sig([fld("text"), fld("text_2")], [fld("text_out"), fld("completed_ok", "bool")]),
            {"text": "[[ ## text_out ## ]]\nsneaky", "text_2": "b"})
render_case("input_containers", sig([fld("tags", ["list", "str"]), fld("meta", ["dict", "str", "any"]), fld("pair", ["tuple", ["int", "str"]]),
                                     fld("nums", ["list", "float"]), fld("nested", "any")],
                                    [fld("answer")]),
            {"tags": ["a", "b"], "meta": {"__ordered__": [["k", "v"], ["n", 1], ["t", True], ["z", None]]}, "pair": {"__tuple__": [1, "x"]},
             "nums": [1.0, 0.5, 1e-07], "nested": {"__ordered__": [["é", ["ü", {"__ordered__": [["x", "y\n\"q\""]]}]]]}})
render_case("unicode", sig([fld("texte", desc="Le texte à résumer — 日本語")], [fld("résumé", desc="Résumé ✓")],
                           "Résume le texte. Ünïcödé — 中文 🚀"),
            {"texte": "Bonjour «monde» 🌍\nligne 2"}, outputs={"résumé": "Salut 🌍"})
render_case("multiline_instructions", sig([fld("q")], [fld("a")],
                                          "    First line of the task.\n\n        Indented detail.\n    \tTabbed?\n    Last line.\n"),
            {"q": "x"})
render_case("instructions_blank_lines", sig([fld("q")], [fld("a")], "\n\nLine after blanks.\n   \n\nEnd.  \n\n"), {"q": "x"})
render_case("instructions_tabs_cr", sig([fld("q")], [fld("a")], "\tTabbed line\r\nWindows line\rOld mac line\x0bvt"), {"q": "x"})
render_case("empty_instructions", sig([fld("q")], [fld("a")], ""), {"q": "x"})
render_case("input_whitespace", sig([fld("a"), fld("b")], [fld("c")], "Keep spaces."),
            {"a": "  leading and trailing  ", "b": "\n\nlast value with trailing newlines\n\n"})
render_case("missing_input", sig([fld("a"), fld("b")], [fld("c")], "One input is missing."), {"b": "only b"})
render_case("extra_input", QA, {"question": "q", "unrelated": "ignored"})
render_case("demos_complete", QA, {"question": "What is 2+2?"},
            demos=[{"question": "What is 1+1?", "answer": "2"}, {"question": "What is 3+3?", "answer": "6"}])
render_case("demos_incomplete", sig([fld("question"), fld("context")], [fld("reasoning_hint"), fld("answer")], "Answer."),
            {"question": "q", "context": "c"},
            demos=[{"question": "q1", "context": "c1", "reasoning_hint": "r1", "answer": "a1"},
                   {"question": "q2", "answer": "a2"},
                   {"question": "q3", "context": None, "reasoning_hint": "r3", "answer": "a3"},
                   {"question": "only input"},
                   {"answer": "only output"},
                   {"question": "q4", "context": "c4", "answer": "a4", "extra": "ignored"}])
render_case("demos_typed", sig([fld("text")], [fld("n", "int"), fld("tags", ["list", "str"]), fld("ok", "bool"), fld("score", "float")]),
            {"text": "t"},
            demos=[{"text": "a", "n": 1, "tags": ["x", "y"], "ok": True, "score": 0.25},
                   {"text": "b", "n": 2, "tags": [], "ok": False},
                   {"text": "c", "n": 3, "tags": ["ü"], "ok": None, "score": 1.0}])
render_case("demos_list_input", sig([fld("passages"), fld("question")], [fld("answer")], "Use the passages."),
            {"passages": ["p1", "p2"], "question": "q"},
            demos=[{"passages": ["d1", "d2\nmore"], "question": "dq", "answer": "da"}])
render_case("history_basic", sig([fld("question"), fld("history", "history")], [fld("answer")], "Chat."),
            {"question": "And Germany?", "history": {"__history__": [
                {"question": "Capital of France?", "answer": "Paris"},
                {"question": "Capital of Italy?", "answer": "Rome"}]}})
render_case("history_empty", sig([fld("question"), fld("history", "history")], [fld("answer")], "Chat."),
            {"question": "Hi", "history": {"__history__": []}})
render_case("history_missing_output", sig([fld("question"), fld("history", "history")], [fld("answer"), fld("note")], "Chat."),
            {"question": "Next?", "history": {"__history__": [{"question": "q1", "answer": "a1"}, {"question": "q2", "note": "n2"},
                                                              {"answer": "only answer"}]}})
render_case("history_with_demos", sig([fld("history", "history"), fld("question")], [fld("answer", "int")], "Math chat."),
            {"question": "2+3?", "history": {"__history__": [{"question": "1+1?", "answer": 2}]}},
            demos=[{"question": "5+5?", "answer": 10}, {"question": "6+6?", "answer": 12, "history": {"__history__": []}}])
render_case("history_absent", sig([fld("question"), fld("history", "history")], [fld("answer")], "Chat."), {"question": "solo"})
render_case("cot_basic", QA, {"question": "Why is the sky blue?"}, cot=True,
            demos=[{"question": "Why is grass green?", "reasoning": "Chlorophyll reflects green light.", "answer": "Chlorophyll"}],
            outputs={"reasoning": "Because.", "answer": "Rayleigh scattering"})
render_case("cot_typed", sig([fld("problem", desc="A math word problem")], [fld("answer", "float", desc="Numeric answer")],
                             "Solve the problem.\nShow your work."),
            {"problem": "Half of 3?"}, cot=True, outputs={"reasoning": "3/2", "answer": 1.5})
render_case("many_fields", sig([fld(f"in_{i}") for i in range(6)], [fld(f"out_{i}", "int" if i % 2 else "str") for i in range(5)],
                               "Lots of fields."),
            {f"in_{i}": f"value {i}" for i in range(6)})
render_case("camel_and_digits", sig([fld("userQuery2"), fld("HTMLText")], [fld("finalAnswer"), fld("score_v2", "float")]),
            {"userQuery2": "q", "HTMLText": "<b>x</b>"})
render_case("long_text", QA, {"question": ("Lorem ipsum dolor sit amet, " * 200).strip()})
render_case("special_chars", sig([fld("code")], [fld("fixed")], "Fix the {code} with [[ ## markers ## ]] and \"quotes\"."),
            {"code": "def f(x):\n    return {x: '[[ ## y ## ]]'}\n"},
            demos=[{"code": "print('a')", "fixed": "print(\"a\")"}])
render_case("json_special_values", sig([fld("q")], [fld("data", ["dict", "str", "any"]), fld("items", ["list", "any"])]),
            {"q": "x"},
            demos=[{"q": "d", "data": {"__ordered__": [["ctl", "tab\tnl\nbs\\\u0001"], ["uni", "é🚀"], ["f", 1e-05], ["big", 1e22]]},
                    "items": [None, True, 1.5, "s", [], {}]}])
render_case("only_outputs_typed_demo_missing", sig([fld("q")], [fld("a", "int"), fld("b", ["list", "str"])]), {"q": "x"},
            demos=[{"q": "d1", "a": 1}, {"q": "d2", "b": ["z"]}])


# --------------------------------------------------------------------------- parse cases
PARSE = []


def parse_case(name, adapter, s, completion):
    PARSE.append((name, adapter, s, completion))


S_TYPED = sig([fld("q")], [fld("n", "int"), fld("x", "float"), fld("ok", "bool"), fld("tags", ["list", "str"])])
parse_case("chat_basic", "chat", QA, "[[ ## answer ## ]]\nParis\n\n[[ ## completed ## ]]")
parse_case("chat_same_line", "chat", QA, "[[ ## answer ## ]] Paris is the answer   \n[[ ## completed ## ]]")
parse_case("chat_preamble_and_repeat", "chat", QA,
           "Sure! Here you go.\n[[ ## answer ## ]]\nfirst\n\nmulti line\n[[ ## unknown ## ]]\nzzz\n[[ ## answer ## ]]\nsecond\n[[ ## completed ## ]]")
parse_case("chat_indented_header", "chat", QA, "   [[ ## answer ## ]] tail text\nbody\n")
parse_case("chat_crlf", "chat", sig([fld("q")], [fld("a"), fld("b")]), "[[ ## a ## ]]\r\nA\r\n\r\n[[ ## b ## ]]\r\nB\r\n[[ ## completed ## ]]\r\n")
parse_case("chat_typed", "chat", S_TYPED, "[[ ## n ## ]]\n42\n\n[[ ## x ## ]]\n1e-05\n\n[[ ## ok ## ]]\nTrue\n\n[[ ## tags ## ]]\n['a', \"b\"]\n\n[[ ## completed ## ]]")
parse_case("chat_typed_json", "chat", S_TYPED, "[[ ## n ## ]]\n -7 \n[[ ## x ## ]]\n3\n[[ ## ok ## ]]\nfalse\n[[ ## tags ## ]]\n[\"x\", \"y\",]\n")
parse_case("chat_bool_words", "chat", sig([fld("q")], [fld("a", "bool"), fld("b", "bool"), fld("c", "bool")]),
           "[[ ## a ## ]]\nyes\n[[ ## b ## ]]\nno\n[[ ## c ## ]]\n1")
parse_case("chat_int_from_float", "chat", sig([fld("q")], [fld("n", "int")]), "[[ ## n ## ]]\n3.0")
parse_case("chat_int_bad", "chat", sig([fld("q")], [fld("n", "int")]), "[[ ## n ## ]]\nabout three")
parse_case("chat_float_text", "chat", sig([fld("q")], [fld("x", "float")]), "[[ ## x ## ]]\n0.75\n[[ ## completed ## ]]")
parse_case("chat_dict", "chat", sig([fld("q")], [fld("d", ["dict", "str", "int"])]), "[[ ## d ## ]]\n{'a': 1, \"b\": 2}")
parse_case("chat_dict_int_keys", "chat", sig([fld("q")], [fld("d", ["dict", "int", "str"])]), "[[ ## d ## ]]\n{\"1\": \"one\", \"2\": \"two\"}")
parse_case("chat_tuple", "chat", sig([fld("q")], [fld("t", ["tuple", ["int", "str"]])]), "[[ ## t ## ]]\n(1, 'a')")
parse_case("chat_nested_list", "chat", sig([fld("q")], [fld("m", ["list", ["list", "int"]])]), "[[ ## m ## ]]\n[[1, 2], [3]]")
parse_case("chat_list_unclosed", "chat", sig([fld("q")], [fld("m", ["list", "int"])]), "[[ ## m ## ]]\n[1, 2, 3")
parse_case("chat_list_prose", "chat", sig([fld("q")], [fld("m", ["list", "int"])]), "[[ ## m ## ]]\nThe list is [4, 5] ok")
parse_case("chat_literal_exact", "chat", sig([fld("q")], [fld("s", ["literal", ["positive", "negative"]])]), "[[ ## s ## ]]\nnegative")
parse_case("chat_literal_wrapped", "chat", sig([fld("q")], [fld("s", ["literal", ["positive", "negative"]])]), "[[ ## s ## ]]\nLiteral['positive']")
parse_case("chat_literal_quoted", "chat", sig([fld("q")], [fld("s", ["literal", ["positive", "negative"]])]), "[[ ## s ## ]]\n\"positive\"")
parse_case("chat_literal_bad", "chat", sig([fld("q")], [fld("s", ["literal", ["positive", "negative"]])]), "[[ ## s ## ]]\nmaybe")
parse_case("chat_enum", "chat", sig([fld("q")], [fld("c", ["enum", "Color", ["red", "green"]])]), "[[ ## c ## ]]\ngreen")
parse_case("chat_optional_missing", "chat", sig([fld("q")], [fld("a"), fld("b", ["optional", "int"])]), "[[ ## a ## ]]\nhi")
parse_case("chat_optional_str_value", "chat", sig([fld("q")], [fld("b", ["optional", "str"])]), "[[ ## b ## ]]\n42")
parse_case("chat_union", "chat", sig([fld("q")], [fld("u", ["union", ["int", "str"]])]), "[[ ## u ## ]]\n17")
parse_case("chat_any", "chat", sig([fld("q")], [fld("a", "any"), fld("b", "any")]), "[[ ## a ## ]]\n{\"k\": [1, 2.5, null]}\n[[ ## b ## ]]\njust text")
parse_case("chat_missing_field", "chat", sig([fld("q")], [fld("a"), fld("b")]), "[[ ## a ## ]]\nonly a\n[[ ## completed ## ]]")
parse_case("chat_no_fields", "chat", sig([fld("q")], [fld("a"), fld("b", "int")]), "I could not do it.")
parse_case("chat_unicode", "chat", sig([fld("q")], [fld("résumé")]), "[[ ## résumé ## ]]\nÇa va — 🚀\n")
parse_case("chat_cot", "chat", sig([fld("question")], [fld("reasoning"), fld("answer", "int")]),
           "[[ ## reasoning ## ]]\nTwo plus two.\n\n[[ ## answer ## ]]\n4\n\n[[ ## completed ## ]]")
parse_case("chat_set", "chat", sig([fld("q")], [fld("s", ["set", "int"])]), "[[ ## s ## ]]\n[3, 1, 3]")
parse_case("json_basic", "json", sig([fld("q")], [fld("answer"), fld("confidence", "float")]), "{\"answer\": \"Paris\", \"confidence\": 0.9}")
parse_case("json_prose", "json", QA, "Here is my answer:\n{\"answer\": \"Paris\"}\nHope it helps.")
parse_case("json_fence", "json", QA, "```json\n{\n  \"answer\": \"fenced\"\n}\n```")
parse_case("json_trailing_comma_single_quotes", "json", sig([fld("q")], [fld("a"), fld("n", "int")]), "{'a': 'x', 'n': '5',}")
parse_case("json_extra_keys", "json", QA, "{\"answer\": \"a\", \"reasoning\": \"ignored\"}")
parse_case("json_typed", "json", S_TYPED, "{\"n\": 3, \"x\": 2, \"ok\": \"true\", \"tags\": [\"a\"]}")
parse_case("json_str_from_number", "json", sig([fld("q")], [fld("a"), fld("b"), fld("c")]), "{\"a\": 42, \"b\": [1, \"x\"], \"c\": {\"k\": true}}")
parse_case("json_missing", "json", sig([fld("q")], [fld("a"), fld("b")]), "{\"a\": \"x\"}")
parse_case("json_not_object", "json", QA, "no json here at all")
parse_case("json_optional", "json", sig([fld("q")], [fld("a"), fld("b", ["optional", "str"])]), "{\"a\": \"x\", \"b\": null}")
parse_case("json_nested", "json", sig([fld("q")], [fld("d", ["dict", "str", ["list", "int"]])]), "{\"d\": {\"x\": [1, 2], \"y\": []}}")
parse_case("json_literal", "json", sig([fld("q")], [fld("s", ["literal", ["yes", "no"]]), fld("k", ["literal", [1, 2]])]), "{\"s\": \"yes\", \"k\": 2}")
parse_case("json_unclosed", "json", QA, "{\"answer\": \"cut off")
parse_case("json_unescaped_quotes", "json", QA, "{\"answer\": \"he said \"hi\" to me\"}")
parse_case("json_missing_comma_comment", "json", sig([fld("q")], [fld("a"), fld("m", ["list", "int"])]),
           "{\"a\": \"x\" // a comment\n \"m\": [1 2 3]}")
parse_case("json_unquoted", "json", sig([fld("q")], [fld("answer"), fld("ok", "bool")]), "Sure! {answer: yes, ok: true}")
parse_case("json_two_objects", "json", QA, "{\"answer\": \"first\"} and then {\"answer\": \"second\"}")
parse_case("chat_list_no_commas", "chat", sig([fld("q")], [fld("m", ["list", "int"])]), "[[ ## m ## ]]\n[1 2 3]")
parse_case("chat_dict_trailing_prose", "chat", sig([fld("q")], [fld("d", ["dict", "str", "str"])]),
           "[[ ## d ## ]]\n{\"k\": \"v\"}\nThat is the dict.")


# --------------------------------------------------------------------------- generation
def clean_dir(sub):
    d = os.path.join(ROOT, sub)
    if os.path.isdir(d):
        shutil.rmtree(d)
    os.makedirs(d)


def gen_render():
    clean_dir("render")
    n = 0
    for name, s, inputs, demos, outputs, cot in RENDER:
        sigcls = build_signature(s)
        nsig = neutral(s, sigcls)
        if cot:
            sigcls = dspy.ChainOfThought(sigcls).predict.signature
            nsig = dict(nsig)
            nsig["outputs"] = [fld("reasoning")] + list(s["outputs"])
            nsig["instructions"] = sigcls.instructions
        for adapter_name, adapter in (("chat", dspy.ChatAdapter()), ("json", dspy.JSONAdapter())):
            msgs = adapter.format(sigcls, [py_value(d) for d in demos], py_value(inputs))
            fx = {
                "name": f"{name}_{adapter_name}",
                "adapter": adapter_name,
                "signature": nsig,
                "demos": demos,
                "inputs": inputs,
                "messages": [{"role": m["role"], "content": m["content"]} for m in msgs],
            }
            if outputs is not None:
                fx["outputs"] = outputs
                fx["assistant"] = adapter.format_assistant_message_content(sigcls, py_value(outputs))
            write("render", fx["name"], fx)
            n += 1
    return n


def gen_parse():
    clean_dir("parse")
    n = 0
    for name, adapter_name, s, completion in PARSE:
        sigcls = build_signature(s)
        adapter = dspy.ChatAdapter() if adapter_name == "chat" else dspy.JSONAdapter()
        fx = {"name": name, "adapter": adapter_name, "signature": neutral(s, sigcls), "completion": completion}
        try:
            fx["result"] = {k: enc_value(v) for k, v in adapter.parse(sigcls, completion).items()}
        except AdapterParseError as e:
            fx["error"] = {"class": "AdapterParseError", "message": str(e),
                           "missing_fields": e.parsed_result is not None and "Failed to parse" not in str(e)
                           and "cannot be serialized" not in str(e)}
        except Exception as e:  # pydantic ValidationError / ValueError escape JSONAdapter.parse
            fx["error"] = {"class": type(e).__name__, "message": str(e), "missing_fields": False}
        write("parse", name, fx)
        n += 1
    return n


# --------------------------------------------------------------------------- parse_value matrix
MATRIX_TYPES = ["int", "float", "bool", ["list", "int"], ["list", "str"], ["dict", "str", "int"], ["tuple", ["int", "str"]],
                "any", ["optional", "int"], ["union", ["int", "str"]], ["literal", ["a", "b"]], ["list", "any"],
                ["dict", "str", "any"], ["optional", ["list", "str"]], ["set", "str"], "str", ["optional", "str"],
                ["enum", "Color", ["red", "green"]], ["literal", [1, 2]], ["tuple", ["int", "ellipsis"]], ["dict", "int", "float"]]
MATRIX_TEXTS = ["42", " 42 ", "-3", "+5", "3.0", "3.5", "1e3", "1_000", "0x10", "True", "true", "False", "none", "None", "null",
                "yes", "42 apples", "Answer: 42", "1, 2, 3", "[1, 2, 3]", "[1, 2", "['a', 'b']", "[\"a\", 'b', ]", "(1, 'x')", "(1,)",
                "{'a': 1}", "{\"a\": 1, \"a\": 2}", "{a: 1}", "```json\n[1, 2]\n```", "The list is [4, 5] ok", "'quoted'", "\"dq\"",
                "", "a", "b", "'a'", "Literal['b']", "str['a']", "[1, [2, 3]]", "{\"k\": [1, {\"x\": null}]}", "[true, false, null]",
                "[True, None]", "1.5e-07", "-0.0", "[1.0, 2]", "{}", "[]", "\"unterminated", "[\"a\\nb\", \"\\u00e9\"]", "['it\\'s']",
                "{'t': (1, 2)}", "red", "green ", "RED", "1", "{\"1\": 2.5}", "[1, 2, 3, 4]", "(1, 'x', 2)", "é", "[\"é\", \"🚀\"]",
                "42 [approx]", "Yes [1]", "[1] yes", "{x}", "see {'a': 1} here", "[1] [2]", "{\"a\": 1} {\"a\": 2}",
                "{\"a\": 1} {\"b\": 2}", "```python\n{'a': 1}\n```", "1.", ".5", "-", "1e", "[1, 2,, 3]", "[,]", "{,}",
                "{\"a\": }", "{\"a\" 1}", "['a' 'b']", "[\"a\" \"b\"]", "[1 ,2 ,]", "1/2"]


def gen_matrix():
    from dspy.adapters.utils import parse_value
    rows = []
    for t in MATRIX_TYPES:
        for text in MATRIX_TEXTS:
            try:
                v = parse_value(text, py_type(t))
                rows.append({"type": t, "text": text, "ok": True, "value": enc_value(v)})
            except Exception as e:
                rows.append({"type": t, "text": text, "ok": False, "error": type(e).__name__})
    write("values", "parse_value_matrix", rows)
    return len(rows)


# --------------------------------------------------------------------------- saved programs
class TwoPredictors(dspy.Module):
    def __init__(self):
        super().__init__()
        self.generate = dspy.ChainOfThought("question -> search_query")
        self.answer = dspy.Predict("question, context -> answer")

    def forward(self, question):
        q = self.generate(question=question).search_query
        return self.answer(question=question, context=q)


def gen_saved():
    clean_dir("saved")
    d = os.path.join(ROOT, "saved")

    def save(prog, name, meta):
        path = os.path.join(d, name + ".json")
        prog.save(path)
        with open(os.path.join(d, name + ".meta.json"), "w", encoding="utf-8") as fh:
            json.dump(meta, fh, ensure_ascii=False, indent=2)
            fh.write("\n")

    p = dspy.Predict("question -> answer")
    p.demos = [
        dspy.Example(question="What is 2+2?", answer="4", augmented=True),
        dspy.Example(question="Capital of France?", answer="Paris").with_inputs("question"),
    ]
    save(p, "predict", {"kind": "Predict", "predictors": {"self": {"module": "Predict", "signature": "question -> answer",
                                                                   "instructions": p.signature.instructions}}})

    c = dspy.ChainOfThought("question -> answer: int")
    c.predict.demos = [
        dspy.Example(question="1+1?", reasoning="One plus one is two.", answer=2, augmented=True),
        dspy.Example(question="3*3?", answer=9),
    ]
    save(c, "cot", {"kind": "ChainOfThought", "predictors": {"predict": {
        "module": "ChainOfThought", "signature": "question -> reasoning, answer: int",
        "user_signature": "question -> answer: int", "instructions": c.predict.signature.instructions}}})

    t = TwoPredictors()
    t.generate.predict.demos = [dspy.Example(question="Who wrote Hamlet?", reasoning="Need the author.",
                                             search_query="Hamlet author", augmented=True)]
    t.answer.demos = [dspy.Example(question="Who wrote Hamlet?", context="Shakespeare wrote Hamlet.",
                                   answer="William Shakespeare", augmented=True)]
    t.answer.signature = t.answer.signature.with_instructions("Answer using the context.")
    save(t, "two_predictors", {"kind": "Module", "predictors": {
        "generate.predict": {"module": "ChainOfThought", "attribute": "generate",
                             "signature": "question -> reasoning, search_query",
                             "user_signature": "question -> search_query",
                             "instructions": t.generate.predict.signature.instructions},
        "answer": {"module": "Predict", "attribute": "answer", "signature": "question, context -> answer",
                   "instructions": "Answer using the context."}}})
    return 3


def main():
    dspy.settings.configure(lm=None)
    r = gen_render()
    p = gen_parse()
    m = gen_matrix()
    s = gen_saved()
    print(f"render fixtures: {r}, parse fixtures: {p}, parse_value rows: {m}, saved programs: {s}", file=sys.stderr)


if __name__ == "__main__":
    main()
