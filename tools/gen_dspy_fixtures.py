"""Golden fixtures for DSPex's adapters, produced by the real DSPy 3.3.1.

Run with:  /work/venv/bin/python tools/gen_dspy_fixtures.py  (any venv with dspy==3.3.1)

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
        if t[2] and isinstance(t[2][0], list):
            return get_enum2(t[1], t[2])
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
LEVEL = ["enum", "Level", [["LOW", 1], ["HIGH", 3]]]
COLOR = ["enum", "Color", [["RED", "red"], ["GREEN", "green"]]]
parse_case("chat_enum_by_name", "chat", sig([fld("q")], [fld("c", COLOR), fld("l", LEVEL)]),
           "[[ ## c ## ]]\nGREEN\n[[ ## l ## ]]\nHIGH")
parse_case("chat_int_enum_by_value_text", "chat", sig([fld("q")], [fld("l", LEVEL)]), "[[ ## l ## ]]\n3")
parse_case("json_int_enum_by_value", "json", sig([fld("q")], [fld("l", LEVEL), fld("c", COLOR)]),
           '{"l": 3, "c": "RED"}')
parse_case("chat_union_smart", "chat", sig([fld("q")], [fld("u", ["union", ["float", "int"]]),
                                                       fld("v", ["union", ["int", "bool", "str", "none"]])]),
           "[[ ## u ## ]]\n7\n[[ ## v ## ]]\nfalse")
parse_case("json_union_smart", "json", sig([fld("q")], [fld("u", ["union", ["float", "int"]]),
                                                       fld("v", ["union", ["int", "bool", "str", "none"]])]),
           '{"u": 7, "v": false}')
parse_case("chat_big_int_quoted", "chat", sig([fld("q")], [fld("n", "int")]), '[[ ## n ## ]]\n"99999999999999999999"')
parse_case("chat_nested_set", "chat", sig([fld("q")], [fld("s", ["optional", ["list", ["set", "int"]]])]),
           "[[ ## s ## ]]\n[[1, 2, 2], [3]]")
parse_case("json_unclosed_newline", "json", sig([fld("q")], [fld("a"), fld("b")]), '{"a": "x\\n", "b": "y\\n"')
parse_case("json_negative_int_keys", "json", sig([fld("q")], [fld("d", ["dict", "str", "str"])]), '{"d": {-1: "neg", "a": "b"}}')
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


# --------------------------------------------------------------------------- random cases
# Seeded random signatures, demos, inputs and completions with types combined inside each
# other (test/dspex/adapters/random_fixtures_test.exs requires DSPex to match every case).
#
# A random case's signature is described by how it is *built*, so DSPex builds it the
# same way through its public API:
#   {"form": "string", "text": "a: int, b -> c", "instructions": str|null}
#   {"form": "fields", "fields": [FIELD], "instructions": str|null}
#   FIELD = {"name", "kind": "input"|"output", "type": TYPE|null (untyped), "type_src": str|null
#            (the type as Python source, evaluated in a class body), "desc": str|null,
#            "constraints": [[k, v]], "default": {"value": v}|null}
#   "ops": [["with_instructions", s] | ["append_instructions", s] | ["delete", name]
#           | ["with_updated_fields", name, {"desc": s}|{"type": TYPE}]
#           | ["insert", index, FIELD] | ["cot"]]
# TYPE adds to the neutral form above: "datetime", "date", "frozenset", ["frozenset", T],
# ["pipe", [T]] (PEP 604 `A | B` in a class body: types.UnionType), "none" inside unions
# (kept where written), ["enum", Name, [[member_name, value]]] (str or int values).
# Values add {"__frozenset__": [...]}, {"__datetime__": iso}, {"__date__": iso}.
import datetime as _dt
import functools
import operator
import random
import typing

RANDOM_SEED = 20240607
N_RANDOM_RENDER = 320
N_RANDOM_PARSE = 480

WORDS = ["question", "context", "answer", "score", "items", "label", "text", "summary", "reason", "notes",
         "count", "tags", "value", "query", "result", "data", "title", "flag", "rank", "info"]
ODD_NAMES = ["résumé", "größe", "名前", "données", "HTMLText", "userQuery2", "text2number", "camelCaseName",
             "x_1", "_private", "ABC", "über_score", "naïve"]
STRINGS = ["hello", "", " padded ", "multi\nline", "tab\tsep", "it's", 'say "hi"', "both ' and \"",
           "«guillemets»", "é ü 日本 🚀", "zero\u200bwidth", "nb\xa0sp", "ctl\x01\x1f", "del\x7f",
           "ls\u2028ps", "[[ ## x ## ]]", "{braces}", "back\\slash", "soft\xadhyphen", "bom\ufeff",
           "pua\ue000", "c1\x85", "42", "true", "None", "[1, 2]", "a, b", "  ", "\n"]
FLOATS = [0.1, 1e-05, 1e16, 1.0, -2.5, 123.456, 1e22, 3.0, 0.0, -0.0, 2.5e-07, 1234567.125, 0.30000000000000004,
          5e-324, 1.7976931348623157e308, 100.0, 1e-4, 9007199254740993.0]
INTS = [0, 1, -1, 42, -7, 1000, 2 ** 31, -(2 ** 40), 2 ** 63 - 1, 2 ** 64 + 5, -(10 ** 20)]
ENUM_DEFS = [("Color", [["RED", "red"], ["GREEN", "green"], ["BLUE", "blue"]]),
             ("Level", [["LOW", 1], ["MID", 2], ["HIGH", 3]]),
             ("Mode", [["fast", "F"], ["slow", "S"]])]


def get_enum2(name, members):
    key = (name, tuple(tuple(m) for m in members))
    if key not in _ENUMS:
        _ENUMS[key] = enum.Enum(name, [(n, v) for n, v in members])
    return _ENUMS[key]


def py_type2(t):
    if isinstance(t, str):
        return {"datetime": _dt.datetime, "date": _dt.date, "frozenset": frozenset}.get(t) or SCALARS[t]
    tag = t[0]
    if tag == "frozenset":
        return frozenset[py_type2(t[1])]
    if tag == "pipe":
        return functools.reduce(operator.or_, [py_type2(a) for a in t[1]])
    if tag == "union":
        return Union[tuple(py_type2(a) for a in t[1])]
    if tag == "enum" and t[2] and isinstance(t[2][0], list):
        return get_enum2(t[1], t[2])
    if tag in ("list", "set", "dict", "tuple", "optional"):
        if tag == "list":
            return list[py_type2(t[1])]
        if tag == "set":
            return set[py_type2(t[1])]
        if tag == "dict":
            return dict[py_type2(t[1]), py_type2(t[2])]
        if tag == "tuple":
            return tuple[tuple(... if a == "ellipsis" else py_type2(a) for a in t[1])]
        return Optional[py_type2(t[1])]
    return py_type(t)


def lit_src(v):
    return repr(v)


def type_src(t, rng, string_mode):
    """Python source text for a type. string_mode: the DSPy string-signature syntax (no
    enums), else a class-body annotation (pipes stay pipes)."""
    if isinstance(t, str):
        if t == "datetime":
            return "datetime.datetime"
        if t == "date":
            return "datetime.date"
        names = {"str": "str", "int": "int", "float": "float", "bool": "bool", "any": "Any", "none": "None",
                 "list": rng.choice(["list", "List"]), "dict": rng.choice(["dict", "Dict"]),
                 "tuple": rng.choice(["tuple", "Tuple"]), "set": rng.choice(["set", "Set"]),
                 "frozenset": rng.choice(["frozenset", "FrozenSet"])}
        return names[t]
    tag = t[0]
    sub = lambda x: type_src(x, rng, string_mode)
    if tag in ("list", "set", "frozenset"):
        return f"{tag}[{sub(t[1])}]"
    if tag == "dict":
        return f"dict[{sub(t[1])}, {sub(t[2])}]"
    if tag == "tuple":
        return "tuple[" + ", ".join("..." if a == "ellipsis" else sub(a) for a in t[1]) + "]"
    if tag == "literal":
        return "Literal[" + ", ".join(lit_src(v) for v in t[1]) + "]"
    if tag == "optional":
        if string_mode and rng.random() < 0.4:
            return f"{sub(t[1])} | None"
        return f"Optional[{sub(t[1])}]"
    if tag == "union":
        if string_mode and rng.random() < 0.3:
            return " | ".join(sub(a) for a in t[1])
        return "Union[" + ", ".join(sub(a) for a in t[1]) + "]"
    if tag == "pipe":
        return " | ".join(sub(a) for a in t[1])
    raise ValueError(t)


def has_enum(t):
    if isinstance(t, str):
        return False
    if t[0] == "enum":
        return True
    if t[0] == "literal":
        return False
    subs = [x for a in t[1:] for x in (a if isinstance(a, list) and a and isinstance(a[0], (list, str))
                                       and t[0] in ("tuple", "union", "pipe") else [a])]
    return any(has_enum(x) for x in subs if x != "ellipsis")


def rand_literal(rng):
    pools = [["yes", "no", "maybe"], ["a", "b"], [1, 2, 3], ["x", 1, True, None], ["only"], ["it's", 'q"d'],
             [0, -1], ["A", "a"], [2.5, "half"], [True, False]]
    return ["literal", rng.choice(pools)]


def rand_enum(rng):
    name, members = rng.choice(ENUM_DEFS)
    return ["enum", name, members]


def rand_type(rng, depth, hashable=False, pipe_ok=False, key=False):
    if key:
        return rng.choice(["str"] * 6 + ["int", "int", ["literal", ["a", "b", "c"]], ["enum", *ENUM_DEFS[0]],
                                          ["optional", "str"]])
    leaves = ["str", "str", "int", "float", "bool", "datetime", "date"]
    if not hashable:
        leaves += ["any", "list", "dict"]
    r = rng.random()
    if depth <= 0 or r < 0.40:
        r2 = rng.random()
        if r2 < 0.12:
            return rand_literal(rng)
        if r2 < 0.20:
            return rand_enum(rng)
        if r2 < 0.24 and not hashable:
            return rng.choice(["tuple", "set", "frozenset"])
        return rng.choice(leaves)
    kinds = ["list", "set", "frozenset", "dict", "tuple", "tuplev", "optional", "union"]
    if pipe_ok:
        kinds += ["pipe", "pipe"]
    if hashable:
        kinds = ["tuple", "tuplev", "frozenset", "optional", "union"]
    k = rng.choice(kinds)
    d = depth - 1
    if k == "list":
        return ["list", rand_type(rng, d, pipe_ok=pipe_ok)]
    if k in ("set", "frozenset"):
        return [k, rand_type(rng, d, hashable=True, pipe_ok=pipe_ok)]
    if k == "dict":
        return ["dict", rand_type(rng, 0, key=True), rand_type(rng, d, pipe_ok=pipe_ok)]
    if k == "tuple":
        return ["tuple", [rand_type(rng, d, hashable, pipe_ok) for _ in range(rng.randint(1, 3))]]
    if k == "tuplev":
        return ["tuple", [rand_type(rng, d, hashable, pipe_ok), "ellipsis"]]
    if k == "optional":
        return ["optional", rand_type(rng, d, hashable, pipe_ok)]
    members = [rand_type(rng, d, hashable, pipe_ok) for _ in range(rng.randint(2, 3))]
    if rng.random() < 0.45:
        members.insert(rng.randint(0, len(members)), "none")
    return ["union" if k == "union" else "pipe", members]


def rand_str(rng):
    n = rng.choice([1, 1, 1, 2])
    return "".join(rng.choice(STRINGS) for _ in range(n)) if rng.random() < 0.7 else rng.choice(WORDS)


def rand_datetime(rng):
    base = _dt.datetime(2000 + rng.randint(0, 30), rng.randint(1, 12), rng.randint(1, 28), rng.randint(0, 23),
                        rng.randint(0, 59), rng.randint(0, 59), rng.choice([0, 0, 123456, 500000]))
    tz = rng.choice([None, None, _dt.timezone.utc, _dt.timezone(_dt.timedelta(hours=2)),
                     _dt.timezone(_dt.timedelta(hours=-5, minutes=-30))])
    return base.replace(tzinfo=tz) if tz else base


def members_of(t):
    return [m for m in t[1]] if t[0] in ("union", "pipe") else [t[1], "none"]


def rand_value(rng, t, depth=0, rendered=False):
    """A value of type t (rendered=True: sets with at most one item, so the order a Python
    set iterates in never matters)."""
    if isinstance(t, str):
        if t == "str":
            return rand_str(rng)
        if t == "int":
            return rng.choice(INTS) if rng.random() < 0.5 else rng.randint(-1000, 1000)
        if t == "float":
            return rng.choice(FLOATS) if rng.random() < 0.6 else round(rng.uniform(-1e4, 1e4), rng.randint(0, 6))
        if t == "bool":
            return rng.random() < 0.5
        if t == "datetime":
            return rand_datetime(rng)
        if t == "date":
            return _dt.date(2000 + rng.randint(0, 30), rng.randint(1, 12), rng.randint(1, 28))
        if t == "none":
            return None
        if t in ("any", "list", "dict", "tuple", "set", "frozenset"):
            pool = {"any": [rand_str(rng), 3, 2.5, None, True, [1, "a"], {"k": [1, None]}],
                    "list": [[], [1, "x"], ["a"]], "dict": [{}, {"k": 1}, {"a": [1], "b": None}],
                    "tuple": [(), (1,), (1, "a")], "set": [set(), {1}], "frozenset": [frozenset(), frozenset({"a"})]}
            return rng.choice(pool[t])
        raise ValueError(t)
    tag = t[0]
    sub = lambda x: rand_value(rng, x, depth + 1, rendered)
    n = rng.randint(0, 3 if depth < 2 else 1)
    if tag == "list":
        return [sub(t[1]) for _ in range(n)]
    if tag in ("set", "frozenset"):
        items = [sub(t[1]) for _ in range(min(n, 1) if rendered else n)]
        try:
            return (set if tag == "set" else frozenset)(items)
        except TypeError:
            return (set if tag == "set" else frozenset)()
    if tag == "dict":
        d = {}
        for _ in range(n):
            k = rand_value(rng, t[1], depth + 1, rendered)
            if isinstance(k, enum.Enum):
                k = k.value
            d[k] = sub(t[2])
        return d
    if tag == "tuple":
        if t[1][-1] == "ellipsis":
            return tuple(sub(t[1][0]) for _ in range(n))
        return tuple(sub(a) for a in t[1])
    if tag == "literal":
        return rng.choice(t[1])
    if tag == "enum":
        return rng.choice(t[2])[1]
    if tag in ("optional", "union", "pipe"):
        return sub(rng.choice(members_of(t)))
    raise ValueError(t)


def enc2(v):
    if isinstance(v, enum.Enum):
        return v.value
    if isinstance(v, _dt.datetime):
        return {"__datetime__": v.isoformat()}
    if isinstance(v, _dt.date):
        return {"__date__": v.isoformat()}
    if isinstance(v, tuple):
        return {"__tuple__": [enc2(x) for x in v]}
    if isinstance(v, frozenset):
        return {"__frozenset__": sorted((enc2(x) for x in v), key=repr)}
    if isinstance(v, set):
        return {"__set__": sorted((enc2(x) for x in v), key=repr)}
    if isinstance(v, dict):
        return {"__ordered__": [[enc2(k), enc2(x)] for k, x in v.items()]}
    if isinstance(v, list):
        return [enc2(x) for x in v]
    return v


def dec2(v):
    if isinstance(v, dict):
        if "__datetime__" in v:
            return _dt.datetime.fromisoformat(v["__datetime__"])
        if "__date__" in v:
            return _dt.date.fromisoformat(v["__date__"])
        if "__tuple__" in v:
            return tuple(dec2(x) for x in v["__tuple__"])
        if "__set__" in v:
            return set(dec2(x) for x in v["__set__"])
        if "__frozenset__" in v:
            return frozenset(dec2(x) for x in v["__frozenset__"])
        if "__ordered__" in v:
            return {dec2(k) if not isinstance(k, list) else tuple(k): dec2(x) for k, x in v["__ordered__"]}
        return {k: dec2(x) for k, x in v.items()}
    if isinstance(v, list):
        return [dec2(x) for x in v]
    return v


def rand_name(rng, used):
    for _ in range(100):
        r = rng.random()
        if r < 0.15:
            n = rng.choice(ODD_NAMES)
        elif r < 0.35:
            n = rng.choice(WORDS) + rng.choice(["_", ""]) + rng.choice(WORDS).capitalize() + rng.choice(["", "2", "_3"])
        else:
            n = rng.choice(WORDS) + rng.choice(["", "", "_2", "_v2", "X"])
        if n not in used:
            used.add(n)
            return n
    raise RuntimeError("names")


def rand_instructions(rng):
    return rng.choice([None, None, "", "   ", "Answer the question.", "  Indented first.\n    Second line.\n      Third.\n",
                       "\tTabbed\n\t\tmore", "Line one.\n\nLine three.", "Use {braces} and `ticks`.", "\n\nLeading blanks.\n",
                       "Résumé: 日本語 🚀"])


def rand_constraints(rng, t):
    if t in ("int", "float") and rng.random() < 0.3:
        c = [["ge", 0]] if rng.random() < 0.5 else [["gt", -1.5], ["le", 100]]
        return c
    if t == "str" and rng.random() < 0.15:
        return [["min_length", 1], ["max_length", 50]]
    return []


def rand_field(rng, used, kind, form):
    name = rand_name(rng, used)
    f = {"name": name, "kind": kind, "type": None, "type_src": None, "desc": None, "constraints": [], "default": None}
    if rng.random() < 0.15:
        return f  # untyped
    t = rand_type(rng, rng.randint(0, 3), pipe_ok=(form == "fields"))
    f["type"] = t
    if form == "fields":
        if not has_enum(t) and rng.random() < 0.35:
            f["type_src"] = type_src(t, rng, string_mode=False)
        if rng.random() < 0.3:
            f["desc"] = rng.choice(["A short description.", "Often between 1 and 5 words", "Ünïcödé ✓", "${" + name + "}",
                                    "multi\nline desc"])
        f["constraints"] = rand_constraints(rng, t)
        if kind == "output" and rng.random() < 0.12:
            f["default"] = {"value": enc2(rand_value(rng, t, 2, True))}
    return f


def class_field_type(f, ns):
    if f["type"] is None:
        return None
    if f["type_src"] is not None:
        return eval(f["type_src"], ns)
    return py_type2(f["type"])


def type_ns():
    ns = dict(typing.__dict__)
    ns["datetime"] = _dt
    ns["NoneType"] = type(None)
    return ns


def dspy_field(f):
    kw = {}
    if f["desc"] is not None:
        kw["desc"] = f["desc"]
    for k, v in f["constraints"]:
        kw[k] = v
    if f.get("default") is not None:
        kw["default"] = dec2(f["default"]["value"])
    return dspy.InputField(**kw) if f["kind"] == "input" else dspy.OutputField(**kw)


def build_random_signature(spec):
    # typing caches Union[...] by its (set-equal) arguments, so a union built earlier with
    # another member order can come back; every case starts from empty caches, as a fresh
    # process would.
    for clear in typing._cleanups:
        clear()
    ns = type_ns()
    if spec["form"] == "string":
        sigcls = dspy.Signature(spec["text"], spec["instructions"])
    else:
        fields = {}
        for f in spec["fields"]:
            fields[f["name"]] = (class_field_type(f, ns), dspy_field(f))
        sigcls = dspy.Signature(fields, spec["instructions"])
    for op in spec["ops"]:
        if op[0] == "with_instructions":
            sigcls = sigcls.with_instructions(op[1])
        elif op[0] == "append_instructions":
            sigcls = sigcls.append_instructions(op[1])
        elif op[0] == "delete":
            sigcls = sigcls.delete(op[1])
        elif op[0] == "with_updated_fields":
            upd = op[2]
            if "type" in upd:
                sigcls = sigcls.with_updated_fields(op[1], type_=py_type2(upd["type"]))
            else:
                sigcls = sigcls.with_updated_fields(op[1], **upd)
        elif op[0] == "insert":
            f = op[2]
            sigcls = sigcls.insert(op[1], f["name"], dspy_field(f), class_field_type(f, ns))
        elif op[0] == "cot":
            sigcls = dspy.ChainOfThought(sigcls).predict.signature
    return sigcls


def rand_signature(rng, n_in, n_out):
    """A random signature spec, and the type of every field it ends up with (for values)."""
    used = set()
    form = "string" if rng.random() < 0.4 else "fields"
    ins = [rand_field(rng, used, "input", form) for _ in range(n_in)]
    outs = [rand_field(rng, used, "output", form) for _ in range(n_out)]
    instr = rand_instructions(rng)
    if form == "string":
        for f in ins + outs:
            if f["type"] is not None and has_enum(f["type"]):
                f["type"] = "str"
        side = lambda fs: ", ".join(f["name"] if f["type"] is None else f"{f['name']}: {type_src(f['type'], rng, True)}"
                                   for f in fs)
        spec = {"form": "string", "text": f"{side(ins)} -> {side(outs)}", "instructions": instr}
    else:
        spec = {"form": "fields", "fields": ins + outs, "instructions": instr}
    types = {f["name"]: f["type"] or "str" for f in ins + outs}
    ops = []
    for _ in range(rng.choice([0, 0, 0, 1, 2])):
        r = rng.random()
        if r < 0.25:
            ops.append(["with_instructions", rng.choice(["", "   ", "New task.", "  Indented\n    text\n"])])
        elif r < 0.35:
            ops.append(["append_instructions", rng.choice(["More.", "", "  x\n    y"])])
        elif r < 0.55 and ins + outs:
            f = rng.choice(ins + outs)
            upd = rng.choice([{"desc": "Updated."}, {"type": rand_type(rng, 1)}])
            if "type" in upd:
                types[f["name"]] = upd["type"]
            ops.append(["with_updated_fields", f["name"], upd])
        elif r < 0.75:
            f = rand_field(rng, used, rng.choice(["input", "output"]), "fields")
            n = len(ins) if f["kind"] == "input" else len(outs)
            ops.append(["insert", rng.randint(-n - 1, n), f])
            (ins if f["kind"] == "input" else outs).append(f)
            types[f["name"]] = f["type"] or "str"
        elif r < 0.85 and len(ins) > 1:
            f = ins.pop(rng.randrange(len(ins)))
            ops.append(["delete", f["name"]])
        elif "reasoning" not in types:
            ops.append(["cot"])
            types["reasoning"] = "str"
    spec["ops"] = ops
    return spec, types


def neutral_of(sigcls):
    """What DSPex compares against besides the messages: field names in order."""
    return {"inputs": list(sigcls.input_fields.keys()), "outputs": list(sigcls.output_fields.keys()),
            "instructions": sigcls.instructions}


def gen_random():
    rng = random.Random(RANDOM_SEED)
    renders, parses = [], []
    while len(renders) < N_RANDOM_RENDER:
        spec, types = rand_signature(rng, rng.randint(0, 3), rng.randint(1, 3))
        try:
            sigcls = build_random_signature(spec)
        except Exception:  # a combination DSPy itself rejects: not a case
            continue
        ins = list(sigcls.input_fields)
        outs = list(sigcls.output_fields)

        def value_for(name):
            if rng.random() < 0.08:
                return rand_str(rng)
            return rand_value(rng, types.get(name, "str"), 0, True)

        demos = []
        for _ in range(rng.choice([0, 0, 1, 2, 3])):
            d = {}
            for n in ins + outs:
                r = rng.random()
                if r < 0.8:
                    d[n] = value_for(n)
                elif r < 0.9:
                    d[n] = None
            demos.append(d)
        inputs = {n: value_for(n) for n in ins if rng.random() < 0.92}
        outputs = {n: value_for(n) for n in outs if rng.random() < 0.9}
        adapter_name = rng.choice(["chat", "json"])
        adapter = dspy.ChatAdapter() if adapter_name == "chat" else dspy.JSONAdapter()
        try:
            msgs = adapter.format(sigcls, demos, inputs)
            assistant = adapter.format_assistant_message_content(sigcls, outputs)
        except Exception:  # DSPy cannot render this combination (e.g. a datetime in a str list)
            continue
        renders.append({"name": f"random_render_{len(renders)}", "adapter": adapter_name, "signature": spec,
                        "fields": neutral_of(sigcls), "demos": [enc2(d) for d in demos], "inputs": enc2(inputs),
                        "outputs": enc2(outputs), "assistant": assistant,
                        "messages": [{"role": m["role"], "content": m["content"]} for m in msgs]})
    while len(parses) < N_RANDOM_PARSE:
        spec, types = rand_signature(rng, rng.randint(0, 2), rng.randint(1, 3))
        try:
            sigcls = build_random_signature(spec)
        except Exception:
            continue
        outs = list(sigcls.output_fields)
        adapter_name = rng.choice(["chat", "json"])
        values = {n: rand_value(rng, types.get(n, "str"), 0, False) for n in outs}
        completion = rand_completion(rng, adapter_name, values)
        adapter = dspy.ChatAdapter() if adapter_name == "chat" else dspy.JSONAdapter()
        fx = {"name": f"random_parse_{len(parses)}", "adapter": adapter_name, "signature": spec,
              "fields": neutral_of(sigcls), "completion": completion}
        try:
            fx["result"] = {k: enc2(v) for k, v in adapter.parse(sigcls, completion).items()}
        except AdapterParseError as e:
            fx["error"] = {"class": "AdapterParseError", "message": str(e),
                           "missing_fields": e.parsed_result is not None and "Failed to parse" not in str(e)
                           and "cannot be serialized" not in str(e)}
        except Exception as e:
            fx["error"] = {"class": type(e).__name__, "message": str(e), "missing_fields": False}
        parses.append(fx)
    os.makedirs(os.path.join(ROOT, "random"), exist_ok=True)
    for name, cases in (("render", renders), ("parse", parses)):
        with open(os.path.join(ROOT, "random", name + ".json"), "w", encoding="utf-8") as fh:
            json.dump({"seed": RANDOM_SEED, "dspy": dspy.__version__, "cases": cases}, fh, ensure_ascii=False, indent=1)
            fh.write("\n")
    return len(renders), len(parses)


def py_text(rng, v, mode):
    """Text an LM might write for value v: DSPy's own rendering, Python repr or JSON."""
    if mode == "repr":
        return repr(v)
    jv = to_jsonable(v)
    if mode == "json":
        return json.dumps(jv, ensure_ascii=rng.random() < 0.2)
    if isinstance(jv, (dict, list)):
        return json.dumps(jv, ensure_ascii=False)
    return str(jv)


def to_jsonable(v):
    if isinstance(v, enum.Enum):
        return v.value
    if isinstance(v, (_dt.datetime, _dt.date)):
        return v.isoformat()
    if isinstance(v, (tuple, list, set, frozenset)):
        return [to_jsonable(x) for x in v]
    if isinstance(v, dict):
        return {(k if isinstance(k, str) else json.dumps(to_jsonable(k)) if not isinstance(k, (int, float, bool))
                 else k): to_jsonable(x) for k, x in v.items()}
    return v


MALFORM = ["trailing_comma", "single_quotes", "unclosed", "unclosed_nl", "fence", "prose", "neg_keys", "none"]


def rand_completion(rng, adapter_name, values):
    outs = list(values)
    if adapter_name == "chat":
        parts = []
        if rng.random() < 0.2:
            parts.append(rng.choice(["Sure, here you go.", "Thinking...\n", "[[ ## unknown ## ]]\nzzz"]))
        order = outs[:]
        if rng.random() < 0.3:
            rng.shuffle(order)
        for n in order:
            if rng.random() < 0.1:
                continue
            mode = rng.choice(["dspy", "dspy", "dspy", "repr", "json"])
            text = py_text(rng, values[n], mode)
            if rng.random() < 0.1:
                text = text + rng.choice(["\nThat is all.", " ", "\n\n"])
            sep = "\n" if rng.random() < 0.85 else " "
            parts.append(f"[[ ## {n} ## ]]{sep}{text}")
        if rng.random() < 0.7:
            parts.append("[[ ## completed ## ]]")
        return "\n\n".join(parts)
    obj = {n: to_jsonable(values[n]) for n in outs if rng.random() < 0.92}
    m = rng.choice(MALFORM)
    if m == "single_quotes":
        return repr({n: values[n] if not isinstance(values[n], (_dt.date, enum.Enum)) else to_jsonable(values[n])
                     for n in obj})
    text = json.dumps(obj, ensure_ascii=False, indent=rng.choice([None, 2]))
    if m == "trailing_comma" and text.endswith("}") and len(obj):
        text = text[:-1].rstrip() + ",}"
    elif m == "unclosed":
        text = text[:-1]
    elif m == "unclosed_nl":
        text = text[:-1].rstrip()
        if text.endswith('"'):
            text = text[:-1] + '\\n"'
    elif m == "fence":
        text = "```json\n" + text + "\n```"
    elif m == "prose":
        text = "Here is the answer:\n" + text + "\nHope this helps."
    elif m == "neg_keys":
        text = text.replace('": ', '": ', 1)
        text = "{-1: \"neg\", " + text[1:] if text.startswith("{") and len(obj) else text
    return text


def main():
    # Python set iteration order of strings depends on the hash seed: pin it so the random
    # cases (which print sets) are the same on every run.
    if os.environ.get("PYTHONHASHSEED") != "0":
        os.environ["PYTHONHASHSEED"] = "0"
        os.execv(sys.executable, [sys.executable] + sys.argv)
    dspy.settings.configure(lm=None)
    r = gen_render()
    p = gen_parse()
    m = gen_matrix()
    s = gen_saved()
    rr, rp = gen_random()
    print(f"render fixtures: {r}, parse fixtures: {p}, parse_value rows: {m}, saved programs: {s}, "
          f"random render: {rr}, random parse: {rp}", file=sys.stderr)


if __name__ == "__main__":
    main()
