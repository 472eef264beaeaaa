"""Golden fixtures for DSPex.Schema (typed struct fields), produced by the real DSPy 3.3.1
with the equivalent pydantic models.

Run with:  /work/venv/bin/python tools/gen_schema_fixtures.py

Writes test/fixtures/schema/*.json (read by test/dspex/schema/schema_fixtures_test.exs):
prompts rendered by ChatAdapter and JSONAdapter for signatures whose fields are models
(outputs: the JSON schema; inputs and demos: the values), LM replies parsed and validated
into models (or refused), and the text of a dspy.Tool whose parameter is a model.

Models are described neutrally so the Elixir test can declare the same DSPex.Schema
modules:
  "models": {Name: {"doc": str|null, "fields": [{"name", "type": TYPE, "desc"?: str,
             "default"?: value, "constraints"?: {"ge": 1, ...}}]}}
TYPE is gen_dspy_fixtures.py's neutral form plus ["model", Name] and "date"/"datetime".
"""

import datetime
import inspect
import json
import os
import shutil
import sys
from typing import Any, Optional

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import dspy  # noqa: E402
import pydantic  # noqa: E402
from pydantic import Field, create_model  # noqa: E402

import gen_dspy_fixtures  # noqa: E402
from gen_dspy_fixtures import enc_value, fld, sig  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "test", "fixtures", "schema")

gen_dspy_fixtures.SCALARS.update({"date": datetime.date, "datetime": datetime.datetime})

_MODELS = {}


def py_type(t, models):
    if isinstance(t, list) and t[0] == "model":
        return build_model(t[1], models)
    if isinstance(t, list) and t[0] in ("list", "optional"):
        inner = py_type(t[1], models)
        return list[inner] if t[0] == "list" else Optional[inner]
    if isinstance(t, list) and t[0] == "dict":
        return dict[py_type(t[1], models), py_type(t[2], models)]
    return gen_dspy_fixtures.py_type(t)


def build_model(name, models):
    key = (name, json.dumps(models[name], sort_keys=True))
    if key in _MODELS:
        return _MODELS[key]
    spec = models[name]
    fields = {}
    for f in spec["fields"]:
        kw = dict(f.get("constraints", {}))
        if "desc" in f:
            kw["description"] = f["desc"]
        if "default" in f:
            kw["default"] = gen_dspy_fixtures.py_value(f["default"])
        fields[f["name"]] = (py_type(f["type"], models), Field(**kw))
    model = create_model(name, __doc__=spec.get("doc"), **fields)
    _MODELS[key] = model
    return model


def build_signature(s, models):
    fields = {}
    for kind, lst in (("in", s["inputs"]), ("out", s["outputs"])):
        for f in lst:
            kw = {"desc": f["desc"]} if f["desc"] is not None else {}
            field = dspy.InputField(**kw) if kind == "in" else dspy.OutputField(**kw)
            fields[f["name"]] = (py_type(f["type"], models), field)
    return dspy.Signature(fields, s["instructions"])


def enc(v):
    """A value as JSON (models as their model_dump(mode="json"), dicts ordered)."""
    if isinstance(v, pydantic.BaseModel):
        return enc_value(v.model_dump(mode="json"))
    if isinstance(v, (datetime.date, datetime.datetime)):
        return v.isoformat()
    if isinstance(v, list):
        return [enc(x) for x in v]
    return enc_value(v)


def write(name, obj):
    os.makedirs(ROOT, exist_ok=True)
    with open(os.path.join(ROOT, name + ".json"), "w", encoding="utf-8") as fh:
        json.dump(obj, fh, ensure_ascii=False, indent=2)
        fh.write("\n")


MODELS = {
    "LineItem": {"doc": "One line of an invoice.", "fields": [
        {"name": "description", "type": "str", "desc": "What was sold"},
        {"name": "quantity", "type": "int", "constraints": {"ge": 1}},
        {"name": "unit_price", "type": "float", "constraints": {"gt": 0}},
        {"name": "tags", "type": ["list", "str"], "default": [], "constraints": {"max_length": 3}},
    ]},
    "Customer": {"doc": None, "fields": [
        {"name": "name", "type": "str", "constraints": {"min_length": 1, "max_length": 40}},
        {"name": "since", "type": "date"},
        {"name": "tier", "type": ["enum", "Tier", ["gold", "silver"]], "default": "silver"},
    ]},
    "Invoice": {"doc": "An invoice.\n\nExtracted from a document.", "fields": [
        {"name": "number", "type": "str", "desc": "The invoice number"},
        {"name": "items", "type": ["list", ["model", "LineItem"]]},
        {"name": "status", "type": ["literal", ["open", "paid"]], "default": "open"},
        {"name": "customer", "type": ["optional", ["model", "Customer"]], "default": None},
        {"name": "main_item", "type": ["model", "LineItem"], "desc": "The biggest line"},
        {"name": "total", "type": "float", "constraints": {"ge": 0, "multiple_of": 0.01}},
        {"name": "notes", "type": ["dict", "str", "int"], "default": {}},
        {"name": "issued", "type": ["optional", "datetime"], "default": None},
    ]},
    "Score": {"doc": None, "fields": [
        {"name": "label", "type": ["literal", ["pos", "neg"]]},
        {"name": "value", "type": "float", "constraints": {"ge": 0, "le": 1}},
    ]},
}

INVOICE_JSON = {
    "number": "INV-7",
    "items": [
        {"description": "Widget", "quantity": 2, "unit_price": 1.5, "tags": ["a"]},
        {"description": "Gadget", "quantity": 1, "unit_price": 10.0},
    ],
    "customer": {"name": "Ada", "since": "2020-01-31", "tier": "gold"},
    "main_item": {"description": "Gadget", "quantity": 1, "unit_price": 10.0},
    "total": 13.0,
    "issued": "2024-05-01T12:30:00Z",
}


def render_cases():
    extract = sig([fld("text")], [fld("invoice", ["model", "Invoice"], desc="The invoice")], "Extract the invoice.")
    lists = sig([fld("text")], [fld("items", ["list", ["model", "LineItem"]]),
                                fld("best", ["optional", ["model", "LineItem"]]),
                                fld("scores", ["dict", "str", ["model", "Score"]])], "List the items.")
    summarize = sig([fld("invoice", ["model", "Invoice"]), fld("question")], [fld("answer"), fld("score", ["model", "Score"])],
                    "Answer about the invoice.")
    invoice = build_model("Invoice", MODELS).model_validate(INVOICE_JSON)
    score = build_model("Score", MODELS)(label="pos", value=0.5)
    yield "extract", extract, [], {"text": "Invoice INV-7 ..."}
    yield "lists", lists, [], {"text": "..."}
    yield "input_values", summarize, [
        {"invoice": invoice, "question": "Total?", "answer": "13.0", "score": score},
    ], {"invoice": invoice, "question": "Who paid?"}


def parse_cases():
    extract = sig([fld("text")], [fld("invoice", ["model", "Invoice"])], "Extract the invoice.")
    lists = sig([fld("text")], [fld("items", ["list", ["model", "LineItem"]])], "List the items.")
    good = dict(INVOICE_JSON, items=[{"description": "Widget", "quantity": "2", "unit_price": "1.5"}],
                extra_key="ignored")
    yield "nested_valid", extract, {"invoice": good}, True
    yield "defaults_and_coercions", extract, {"invoice": {
        "number": "7", "items": [], "main_item": {"description": "x", "quantity": 1.0, "unit_price": 2},
        "total": "0.5"}}, True
    yield "list_valid", lists, {"items": [{"description": "a", "quantity": 3, "unit_price": 0.25}]}, True
    yield "bad_nested_price", lists, {"items": [
        {"description": "a", "quantity": 1, "unit_price": 1},
        {"description": "b", "quantity": 1, "unit_price": 2},
        {"description": "c", "quantity": 1, "unit_price": "cheap"}]}, False
    yield "missing_field", extract, {"invoice": {"number": "1", "items": [], "total": 1}}, False
    yield "constraint", lists, {"items": [{"description": "a", "quantity": 0, "unit_price": 1}]}, False
    yield "bad_literal", extract, {"invoice": dict(INVOICE_JSON, status="void")}, False
    yield "too_many_tags", lists, {"items": [{"description": "a", "quantity": 1, "unit_price": 1,
                                              "tags": ["1", "2", "3", "4"]}]}, False


def tool_case():
    order = build_model("Invoice", MODELS)

    def file_invoice(invoice: order, copies: int = 1):
        """File an invoice."""

    return str(dspy.Tool(file_invoice))


# dspy.Image inputs: the value becomes an OpenAI image_url content part of the user turn
PNG_1PX = ("data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"
           "+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")


def image_cases():
    gen_dspy_fixtures.SCALARS.update({"image": dspy.Image})
    one = sig([fld("photo", "image"), fld("question")], [fld("answer")], "Answer about the photo.")
    many = sig([fld("photos", ["list", "image"])], [fld("caption")], "Caption the photos.")
    yield "image_data_url", one, [], {"photo": PNG_1PX, "question": "What color?"}
    yield "image_http_url", one, [{"photo": "https://example.com/cat.png", "question": "What is it?",
                                   "answer": "A cat."}], {"photo": "https://example.com/dog.jpg", "question": "And this?"}
    yield "image_list", many, [], {"photos": [PNG_1PX, "https://example.com/a.png"]}


def image_value(v):
    return [dspy.Image(x) for x in v] if isinstance(v, list) else dspy.Image(v)


def main():
    if os.path.isdir(ROOT):
        shutil.rmtree(ROOT)
    n = 0
    for name, s, demos, inputs in render_cases():
        sigcls = build_signature(s, MODELS)
        for ad_name, ad in (("chat", dspy.ChatAdapter()), ("json", dspy.JSONAdapter())):
            msgs = ad.format(sigcls, demos, inputs)
            write(f"render_{name}_{ad_name}", {
                "kind": "render", "adapter": ad_name, "models": MODELS, "signature": s,
                "demos": [{k: enc(v) for k, v in d.items()} for d in demos],
                "inputs": {k: enc(v) for k, v in inputs.items()}, "messages": msgs})
            n += 1
    for name, s, outputs, ok in parse_cases():
        sigcls = build_signature(s, MODELS)
        for ad_name, ad in (("chat", dspy.ChatAdapter()), ("json", dspy.JSONAdapter())):
            if ad_name == "chat":
                text = "\n\n".join(f"[[ ## {k} ## ]]\n{json.dumps(v)}" for k, v in outputs.items()) + \
                    "\n\n[[ ## completed ## ]]"
            else:
                text = json.dumps(outputs)
            try:
                parsed = ad.parse(sigcls, text)
                result = {"ok": True, "outputs": {k: enc(v) for k, v in parsed.items()}}
            except Exception as e:  # AdapterParseError
                result = {"ok": False, "error": type(e).__name__}
            assert result["ok"] == ok, (name, ad_name, result)
            write(f"parse_{name}_{ad_name}", {
                "kind": "parse", "adapter": ad_name, "models": MODELS, "signature": s,
                "completion": text, **result})
            n += 1
    write("tool_with_model", {"kind": "tool", "models": MODELS, "model": "Invoice", "text": tool_case()})
    n += 1
    for name, s, demos, inputs in image_cases():
        sigcls = build_signature(s, MODELS)
        images = [f["name"] for f in s["inputs"] if f["type"] in ("image", ["list", "image"])]
        conv = lambda d: {k: (image_value(v) if k in images else v) for k, v in d.items()}  # noqa: E731
        for ad_name, ad in (("chat", dspy.ChatAdapter()), ("json", dspy.JSONAdapter())):
            msgs = ad.format(sigcls, [conv(d) for d in demos], conv(inputs))
            write(f"{name}_{ad_name}", {"kind": "image", "adapter": ad_name, "models": {}, "signature": s,
                                        "images": images, "demos": demos, "inputs": inputs, "messages": msgs})
            n += 1
    print(f"schema fixtures: {n}", file=sys.stderr)


if __name__ == "__main__":
    main()
