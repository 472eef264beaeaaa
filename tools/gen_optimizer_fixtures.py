#!/usr/bin/env python3
"""Golden fixtures for DSPex's few-shot optimizers, produced by real DSPy 3.3.1.

Run with the venv that has dspy==3.3.1 (Python 3.11):

    /work/venv/bin/python tools/gen_optimizer_fixtures.py [OUT_DIR]

OUT_DIR defaults to test/fixtures/optimizers. Writes one JSON file per optimizer:

  world.json            the scripted "world" every scenario runs in (below)
  labeled.json          LabeledFewShot: chosen demos per predictor
  bootstrap.json        BootstrapFewShot: demos, counts, validation order, LM call log
  random_search.json    BootstrapFewShotWithRandomSearch: every candidate (seed, score,
                        subscores, demos) in DSPy's sorted order, and the best seed
  demo_candidates.json  create_n_fewshot_demo_sets (MIPROv2 step 1): the sets per
                        predictor and the next draw of the shared rng afterwards
  knn.json              KNNFewShot: neighbours, demos and answer per query
  ensemble.json         Ensemble(reduce_fn=dspy.majority): the reduced prediction
  argsort.json          numpy's float32 argsort()[-k:][::-1] on tie-heavy arrays (the
                        KNN tie order; read by test/c/test_knn.c)

The world: 24 questions "Qnn [tag:x] ...", each with a gold answer, a wrong answer and
a rule for the scripted LM (WorldLM below, mirrored in test/support of DSPex):

  always  answers correctly          never   answers wrongly
  tag     correct iff an earlier message of the prompt (a demo) carries the same tag
  round   correct iff the request's rollout_id >= the entry's round
  half    answers the "half" answer (a graded metric gives 0.5)
  fail    the LM raises              metric_fail  the "raising" metric raises

The LM finds the entry whose question occurs in the last message, answers every output
field the last message asks for (`reasoning` and other fields get fixed text), and logs
(id, rollout_id, temperature == 1.0) of each successful call. A "smart" LM answers every
non-failing entry correctly. Everything is deterministic, so DSPex running the same
scenarios with the same world must make the same choices.

numpy: KNN ranks with `scores.argsort()`, whose tie order on x86 CPUs with AVX2/AVX-512
comes from x86-simd-sort and differs between CPU generations. This script disables those
dispatch targets (NPY_DISABLE_CPU_FEATURES, set below before numpy loads) so the
fixtures record numpy's portable introsort — the order DSPex reproduces.
"""
import os
import platform

if platform.machine() in ("x86_64", "AMD64") and "NPY_DISABLE_CPU_FEATURES" not in os.environ:
    os.environ["NPY_DISABLE_CPU_FEATURES"] = "X86_V3 X86_V4 AVX512_ICL AVX512_SPR"

import contextlib  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import re  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import dspy  # noqa: E402
import numpy as np  # noqa: E402
from dspy.dsp.utils.utils import dotdict  # noqa: E402
from dspy.teleprompt import (  # noqa: E402
    BootstrapFewShot,
    BootstrapFewShotWithRandomSearch,
    Ensemble,
    KNNFewShot,
    LabeledFewShot,
)
from dspy.teleprompt.utils import create_n_fewshot_demo_sets  # noqa: E402
from dspy.utils.dummies import DummyLM  # noqa: E402

# --------------------------------------------------------------------------------------
# The world

TAGS = "abcd"
RULES = ["always", "tag", "tag", "never", "round", "tag", "half", "always", "tag", "fail",
         "always", "tag", "round", "never", "tag", "metric_fail", "always", "tag", "half",
         "round", "tag", "always", "tag", "never"]


def make_world():
    world = []
    r = random.Random(7)
    for i, rule in enumerate(RULES, start=1):
        a, b = (i * 7) % 13, (i * 5) % 11
        gold = str(a + b)
        entry = {
            "id": f"Q{i:02d}",
            "q": f"Q{i:02d} [tag:{TAGS[i % 4]}] What is {a} plus {b}?",
            "tag": TAGS[i % 4],
            "answer": gold,
            "wrong": str(a + b + 1 + (i % 3)),
            "rule": rule,
            # small integer vectors (exact dot products), with many repeats for ties
            "vec": [r.randrange(3) for _ in range(4)],
        }
        if rule == "round":
            entry["round"] = 1 + (i % 2)
        if rule == "half":
            entry["half"] = entry["wrong"]
        world.append(entry)
    return world


WORLD = make_world()
BY_ID = {e["id"]: e for e in WORLD}
BY_Q = {e["q"]: e for e in WORLD}
FIELD_RE = re.compile(r"\[\[ ## (\w+) ## \]\]")
REQUEST = "Respond with the corresponding output fields"


def world_answer(messages, kwargs, smart):
    """The scripted answer: {field: value} for the fields the last message asks for."""
    last = messages[-1]["content"]
    at = last.rfind(REQUEST)
    fields = [f for f in FIELD_RE.findall(last[at:]) if f != "completed"] if at >= 0 else ["answer"]
    entry = next((e for e in WORLD if e["q"] in last), None)
    rollout = kwargs.get("rollout_id") or 0
    if entry is None:
        return None, rollout, {f: "unknown" for f in fields}
    if entry["rule"] == "fail":
        raise RuntimeError(f"scripted failure for {entry['id']}")
    context = "\n".join(m["content"] for m in messages[:-1])
    rule = entry["rule"]
    if smart and rule != "metric_fail":
        good = True
    elif rule in ("always", "metric_fail"):
        good = True
    elif rule == "tag":
        good = f"[tag:{entry['tag']}]" in context
    elif rule == "round":
        good = rollout >= entry["round"]
    else:  # never, half
        good = False
    out = {}
    for f in fields:
        if f == "answer":
            out[f] = entry["answer"] if good else entry["wrong"]
        elif f == "reasoning":
            out[f] = f"Thinking about {entry['id']} (rollout {rollout})."
        else:
            out[f] = f"{f} of {entry['id']}"
    return entry, rollout, out


class WorldLM(DummyLM):
    def __init__(self, log, smart=False):
        super().__init__([])
        self.log = log
        self.smart = smart

    def forward(self, prompt=None, messages=None, **kwargs):
        kwargs = {**self.kwargs, **kwargs}
        entry, rollout, out = world_answer(messages, kwargs, self.smart)
        self.log.append([entry["id"] if entry else None, rollout, kwargs.get("temperature") == 1.0])
        message = dotdict(content=self._format_answer_fields(out), tool_calls=None)
        return dotdict(
            choices=[dotdict(message=message, finish_reason="stop")],
            usage=dotdict(prompt_tokens=0, completion_tokens=0, total_tokens=0),
            model="dummy",
        )


def make_metric(kind):
    if kind is None:
        return None

    def metric(example, pred, trace=None):
        entry = BY_Q[example.question]
        if kind == "raising" and entry["rule"] == "metric_fail":
            raise ValueError(f"metric failure for {entry['id']}")
        got = pred.answer
        score = 1.0 if got == example.answer else (0.5 if got == entry.get("half") else 0.0)
        if kind in ("exact", "raising"):
            return got == example.answer
        if kind == "graded":
            return score
        if kind == "trace_aware":
            return score if trace is None else (score >= 1.0 and len(trace) > 0)
        raise ValueError(kind)

    return metric


class Two(dspy.Module):
    def __init__(self):
        super().__init__()
        self.rewrite = dspy.Predict("question -> query")
        self.answer = dspy.ChainOfThought("query, question -> answer")

    def forward(self, question):
        q = self.rewrite(question=question).query
        return self.answer(query=q, question=question)


def make_program(shape):
    if shape == "predict":
        return dspy.Predict("question -> answer")
    if shape == "cot":
        return dspy.ChainOfThought("question -> answer")
    if shape == "two":
        return Two()
    if shape == "three":
        class Three(dspy.Module):
            def __init__(self):
                super().__init__()
                self.a = dspy.Predict("question -> answer")
                self.b = dspy.Predict("question -> answer")
                self.c = dspy.ChainOfThought("question -> answer")

            def forward(self, question):
                return self.c(question=question)

        return Three()
    raise ValueError(shape)


def example(eid):
    e = BY_ID[eid]
    return dspy.Example(question=e["q"], answer=e["answer"]).with_inputs("question")


def pairs(demo):
    d = demo.toDict() if isinstance(demo, dspy.Example) else dict(demo)
    return [[k, v] for k, v in d.items()]


def demos_of(program):
    return {name: [pairs(d) for d in p.demos] for name, p in program.named_predictors()}


def quiet(fn):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        result = fn()
    return result, out.getvalue()


def index_of(trainset, ex):
    for i, t in enumerate(trainset):
        if t is ex:
            return i
    raise ValueError("not in trainset")


# --------------------------------------------------------------------------------------
# LabeledFewShot

def gen_labeled():
    cases = []
    r = random.Random(11)
    ids = [e["id"] for e in WORLD]
    for n in [0, 1, 2, 3, 5, 8, 16, 17, 21, 24]:
        for k in [0, 1, 3, 4, 16, 30]:
            shape = r.choice(["predict", "cot", "two", "three"])
            sample = r.random() < 0.8
            train_ids = r.sample(ids, n) if n <= len(ids) else ids
            trainset = [example(i) for i in train_ids]
            program = LabeledFewShot(k=k).compile(make_program(shape), trainset=trainset, sample=sample)
            chosen = {name: [index_of(trainset, d) for d in p.demos] for name, p in program.named_predictors()}
            cases.append({"shape": shape, "trainset": train_ids, "k": k, "sample": sample, "demos": chosen})
    return cases


# --------------------------------------------------------------------------------------
# BootstrapFewShot

SUMMARY = re.compile(r"Bootstrapped (\d+) full traces after (\d+) examples for up to (\d+) rounds, "
                     r"amounting to (\d+) attempts\.")


def bootstrap_case(spec):
    log = []
    dspy.configure(lm=WorldLM(log))
    trainset = [example(i) for i in spec["trainset"]]
    teacher = None
    tlog = []
    if spec.get("teacher") == "fresh":
        teacher = make_program(spec["shape"])
    elif spec.get("teacher") == "compiled":
        # a compiled teacher (DSPy's _compiled=True): bootstrapped by the smart LM first
        with dspy.context(lm=WorldLM(tlog, smart=True)):
            teacher, _ = quiet(lambda: BootstrapFewShot(
                metric=make_metric("exact"), max_bootstrapped_demos=2, max_labeled_demos=3,
            ).compile(make_program(spec["shape"]), trainset=trainset))
    teacher_settings = {}
    if spec.get("teacher_lm") == "smart":
        teacher_settings = {"lm": WorldLM(log, smart=True)}

    opt = BootstrapFewShot(
        metric=make_metric(spec["metric"]),
        metric_threshold=spec.get("metric_threshold"),
        teacher_settings=teacher_settings,
        max_bootstrapped_demos=spec["max_bootstrapped_demos"],
        max_labeled_demos=spec["max_labeled_demos"],
        max_rounds=spec["max_rounds"],
        max_errors=spec.get("max_errors"),
    )
    result = dict(spec)
    try:
        program, out = quiet(lambda: opt.compile(make_program(spec["shape"]), teacher=teacher, trainset=trainset))
    except Exception as e:  # noqa: BLE001 - DSPy re-raises the failure at max_errors
        result["raised"] = type(e).__name__
        result["error_count"] = opt.error_count
        result["lm_calls"] = log
        return result
    m = SUMMARY.search(out)
    if spec.get("save"):
        # DSPy's saved file, up to its metadata (DSPex must write the same bytes)
        path = Path(os.environ.get("TMPDIR", "/tmp")) / f"dspex_fixture_{os.getpid()}.json"
        program.save(str(path))
        text = path.read_text()
        path.unlink()
        result["saved"] = text[: text.index(',\n  "metadata": {')]
    result.update({
        "raised": None,
        "demos": demos_of(program),
        "bootstrapped": int(m.group(1)),
        "example_index": int(m.group(2)),
        "attempts": int(m.group(4)),
        "validation": [index_of(trainset, x) for x in opt.validation],
        "error_count": opt.error_count,
        "traces": {name: [pairs(d) for d in ds] for name, ds in opt.name2traces.items()},
        "lm_calls": log,
    })
    if teacher is not None and spec.get("teacher") == "compiled":
        result["teacher_demos"] = demos_of(teacher)
    return result


def gen_bootstrap():
    r = random.Random(5)
    ids = [e["id"] for e in WORLD]
    specs = [
        # the worked shapes, by hand
        {"shape": "cot", "trainset": ids[:12], "metric": "exact", "max_bootstrapped_demos": 2,
         "max_labeled_demos": 4, "max_rounds": 1},
        {"shape": "predict", "trainset": ids, "metric": "exact", "max_bootstrapped_demos": 4,
         "max_labeled_demos": 16, "max_rounds": 1},
        {"shape": "predict", "trainset": ids, "metric": "exact", "max_bootstrapped_demos": 0,
         "max_labeled_demos": 5, "max_rounds": 1},
        {"shape": "cot", "trainset": ids, "metric": "exact", "max_bootstrapped_demos": 8,
         "max_labeled_demos": 8, "max_rounds": 3},
        {"shape": "two", "trainset": ids, "metric": "trace_aware", "max_bootstrapped_demos": 3,
         "max_labeled_demos": 6, "max_rounds": 2},
        {"shape": "predict", "trainset": ids, "metric": "graded", "metric_threshold": 0.5,
         "max_bootstrapped_demos": 6, "max_labeled_demos": 8, "max_rounds": 1},
        {"shape": "predict", "trainset": ids, "metric": None, "max_bootstrapped_demos": 3,
         "max_labeled_demos": 3, "max_rounds": 1},
        {"shape": "cot", "trainset": ids, "metric": "raising", "max_bootstrapped_demos": 24,
         "max_labeled_demos": 24, "max_rounds": 1, "max_errors": 2},
        {"shape": "cot", "trainset": ids, "metric": "raising", "max_bootstrapped_demos": 24,
         "max_labeled_demos": 24, "max_rounds": 2, "max_errors": 5},
        {"shape": "predict", "trainset": ids[:10] + ids[:10], "metric": "exact", "max_bootstrapped_demos": 5,
         "max_labeled_demos": 9, "max_rounds": 1},
        {"shape": "cot", "trainset": ids, "metric": "exact", "max_bootstrapped_demos": 4,
         "max_labeled_demos": 10, "max_rounds": 2, "teacher": "fresh"},
        {"shape": "two", "trainset": ids, "metric": "exact", "max_bootstrapped_demos": 4,
         "max_labeled_demos": 10, "max_rounds": 1, "teacher": "compiled"},
        {"shape": "predict", "trainset": ids, "metric": "exact", "max_bootstrapped_demos": 6,
         "max_labeled_demos": 8, "max_rounds": 1, "teacher_lm": "smart"},
        {"shape": "three", "trainset": ids, "metric": "exact", "max_bootstrapped_demos": 3,
         "max_labeled_demos": 7, "max_rounds": 2},
        # failures: the LM fails on Q10, the "raising" metric on Q16
        {"shape": "predict", "trainset": ids[8:], "metric": "exact", "max_bootstrapped_demos": 8,
         "max_labeled_demos": 8, "max_rounds": 1, "max_errors": 1},
        {"shape": "cot", "trainset": ids[8:], "metric": "exact", "max_bootstrapped_demos": 8,
         "max_labeled_demos": 8, "max_rounds": 3, "max_errors": 3},
        {"shape": "predict", "trainset": ids, "metric": "exact", "max_bootstrapped_demos": 8,
         "max_labeled_demos": 8, "max_rounds": 1, "max_errors": 0},
        {"shape": "two", "trainset": ids[5:] + ids[:5], "metric": "raising", "max_bootstrapped_demos": 20,
         "max_labeled_demos": 20, "max_rounds": 1, "max_errors": 2},
    ]
    for spec in specs:
        spec["save"] = True
    for _ in range(40):
        n = r.randrange(1, len(ids) + 1)
        train = r.sample(ids, n)
        if r.random() < 0.15:
            train = train + r.sample(train, min(3, len(train)))
        metric = r.choice(["exact", "exact", "graded", "trace_aware", "raising", None])
        spec = {
            "shape": r.choice(["predict", "cot", "two", "three"]),
            "trainset": train,
            "metric": metric,
            "max_bootstrapped_demos": r.choice([0, 1, 2, 3, 4, 6]),
            "max_labeled_demos": r.choice([0, 1, 2, 4, 8, 16]),
            "max_rounds": r.choice([1, 1, 2, 3]),
        }
        if metric == "graded":
            spec["metric_threshold"] = r.choice([None, 0.5, 1.0])
        if r.random() < 0.3:
            spec["max_errors"] = r.choice([1, 2, 3, 10])
        if r.random() < 0.15:
            spec["teacher"] = r.choice(["fresh", "compiled"])
        if r.random() < 0.1:
            spec["teacher_lm"] = "smart"
        specs.append(spec)
    return [bootstrap_case(s) for s in specs]


# --------------------------------------------------------------------------------------
# BootstrapFewShotWithRandomSearch

def random_search_case(spec):
    dspy.configure(lm=WorldLM([]))
    trainset = [example(i) for i in spec["trainset"]]
    valset = [example(i) for i in spec["valset"]] if spec.get("valset") else None
    opt, _ = quiet(lambda: BootstrapFewShotWithRandomSearch(
        metric=make_metric(spec["metric"]),
        metric_threshold=spec.get("metric_threshold"),
        max_bootstrapped_demos=spec["max_bootstrapped_demos"],
        max_labeled_demos=spec["max_labeled_demos"],
        max_rounds=spec["max_rounds"],
        num_candidate_programs=spec["num_candidate_programs"],
        stop_at_score=spec.get("stop_at_score"),
        max_errors=spec.get("max_errors"),
        num_threads=4,
    ))
    result = dict(spec)
    best, _ = quiet(lambda: opt.compile(
        make_program(spec["shape"]), trainset=trainset, valset=valset,
        restrict=spec.get("restrict"), labeled_sample=spec.get("labeled_sample", True)))
    result["candidates"] = [
        {"seed": c["seed"], "score": c["score"], "subscores": c["subscores"], "demos": demos_of(c["program"])}
        for c in best.candidate_programs
    ]
    result["best_seed"] = next(c["seed"] for c in best.candidate_programs if c["program"] is best)
    return result


def gen_random_search():
    ids = [e["id"] for e in WORLD]
    specs = [
        {"shape": "predict", "trainset": ids[:16], "valset": ids[16:], "metric": "exact",
         "max_bootstrapped_demos": 3, "max_labeled_demos": 4, "max_rounds": 1, "num_candidate_programs": 4},
        {"shape": "cot", "trainset": ids, "metric": "exact", "max_bootstrapped_demos": 4,
         "max_labeled_demos": 6, "max_rounds": 1, "num_candidate_programs": 6},
        {"shape": "two", "trainset": ids[:14], "valset": ids[10:], "metric": "graded", "metric_threshold": 0.5,
         "max_bootstrapped_demos": 2, "max_labeled_demos": 3, "max_rounds": 2, "num_candidate_programs": 3},
        {"shape": "predict", "trainset": ids, "metric": "trace_aware", "max_bootstrapped_demos": 2,
         "max_labeled_demos": 2, "max_rounds": 1, "num_candidate_programs": 5, "stop_at_score": 60.0},
        {"shape": "cot", "trainset": ids[4:20], "valset": ids, "metric": "graded",
         "max_bootstrapped_demos": 3, "max_labeled_demos": 5, "max_rounds": 1, "num_candidate_programs": 4,
         "labeled_sample": False},
        {"shape": "predict", "trainset": ids, "metric": "exact", "max_bootstrapped_demos": 5,
         "max_labeled_demos": 8, "max_rounds": 1, "num_candidate_programs": 8, "restrict": [-1, 0, 2, 5, 7]},
        {"shape": "three", "trainset": ids[:18], "valset": ids[6:], "metric": "exact",
         "max_bootstrapped_demos": 2, "max_labeled_demos": 4, "max_rounds": 1, "num_candidate_programs": 3},
        {"shape": "predict", "trainset": ids[:8], "metric": "exact", "max_bootstrapped_demos": 1,
         "max_labeled_demos": 1, "max_rounds": 1, "num_candidate_programs": 2, "stop_at_score": 0.0},
    ]
    return [random_search_case(s) for s in specs]


# --------------------------------------------------------------------------------------
# create_n_fewshot_demo_sets (MIPROv2 step 1)

def demo_candidates_case(spec):
    dspy.configure(lm=WorldLM([]))
    trainset = [example(i) for i in spec["trainset"]]
    rng = random.Random(spec["rng_seed"])
    cands, _ = quiet(lambda: create_n_fewshot_demo_sets(
        student=make_program(spec["shape"]),
        num_candidate_sets=spec["num_candidate_sets"],
        trainset=trainset,
        max_labeled_demos=spec["max_labeled_demos"],
        max_bootstrapped_demos=spec["max_bootstrapped_demos"],
        metric=make_metric(spec["metric"]),
        teacher_settings={},
        max_rounds=spec.get("max_rounds", 1),
        labeled_sample=spec.get("labeled_sample", True),
        min_num_samples=spec.get("min_num_samples", 1),
        include_non_bootstrapped=spec.get("include_non_bootstrapped", True),
        rng=rng,
    ))
    result = dict(spec)
    result["demo_candidates"] = [[[pairs(d) for d in demos] for demos in cands[i]] for i in sorted(cands)]
    result["next_random"] = repr(rng.random())
    return result


def gen_demo_candidates():
    ids = [e["id"] for e in WORLD]
    specs = [
        {"shape": "predict", "trainset": ids, "num_candidate_sets": 6, "max_labeled_demos": 4,
         "max_bootstrapped_demos": 3, "metric": "exact", "rng_seed": 9},
        {"shape": "two", "trainset": ids[:16], "num_candidate_sets": 5, "max_labeled_demos": 2,
         "max_bootstrapped_demos": 2, "metric": "exact", "rng_seed": 0},
        {"shape": "cot", "trainset": ids, "num_candidate_sets": 7, "max_labeled_demos": 0,
         "max_bootstrapped_demos": 3, "metric": "trace_aware", "rng_seed": 9},
        {"shape": "predict", "trainset": ids[3:], "num_candidate_sets": 6, "max_labeled_demos": 5,
         "max_bootstrapped_demos": 4, "metric": "graded", "rng_seed": 3, "include_non_bootstrapped": False,
         "min_num_samples": 2},
        {"shape": "three", "trainset": ids, "num_candidate_sets": 4, "max_labeled_demos": 3,
         "max_bootstrapped_demos": 2, "metric": "exact", "rng_seed": 42, "labeled_sample": False,
         "max_rounds": 2},
        {"shape": "cot", "trainset": ids[:6], "num_candidate_sets": 2, "max_labeled_demos": 3,
         "max_bootstrapped_demos": 1, "metric": "exact", "rng_seed": 1},
    ]
    return [demo_candidates_case(s) for s in specs]


# --------------------------------------------------------------------------------------
# KNNFewShot

def vectorize(texts):
    out = []
    for t in texts:
        e = next((e for e in WORLD if e["q"] in t), None)
        out.append(list(e["vec"]) if e else [0, 0, 0, 0])
    return out


def knn_case(spec):
    log = []
    dspy.configure(lm=WorldLM(log))
    trainset = [example(i) for i in spec["trainset"]]
    knn = KNNFewShot(spec["k"], trainset, vectorizer=dspy.Embedder(vectorize),
                     metric=make_metric(spec["metric"]),
                     max_bootstrapped_demos=spec["max_bootstrapped_demos"],
                     max_labeled_demos=spec["max_labeled_demos"])
    seen = {}
    orig_knn_call = type(knn.KNN).__call__
    orig_compile = BootstrapFewShot.compile

    def spy_knn(self, **kwargs):
        res = orig_knn_call(self, **kwargs)
        seen["neighbours"] = [index_of(trainset, x) for x in res]
        return res

    def spy_compile(self, student, *, teacher=None, trainset):
        res = orig_compile(self, student, teacher=teacher, trainset=trainset)
        seen["demos"] = demos_of(res)
        return res

    type(knn.KNN).__call__ = spy_knn
    BootstrapFewShot.compile = spy_compile
    try:
        compiled = knn.compile(make_program(spec["shape"]))
        queries = []
        for qid in spec["queries"]:
            seen.clear()
            try:
                pred, _ = quiet(lambda: compiled(question=BY_ID[qid]["q"]))
                answer, raised = pred.answer, None
            except Exception as e:  # noqa: BLE001 - a failing query (rule "fail")
                answer, raised = None, type(e).__name__
            queries.append({"query": qid, "neighbours": seen.get("neighbours"), "demos": seen.get("demos"),
                            "answer": answer, "raised": raised})
    finally:
        type(knn.KNN).__call__ = orig_knn_call
        BootstrapFewShot.compile = orig_compile
    result = dict(spec)
    result["results"] = queries
    return result


def gen_knn():
    ids = [e["id"] for e in WORLD]
    nofail = [e["id"] for e in WORLD if e["rule"] not in ("fail", "metric_fail")]
    specs = [
        {"shape": "predict", "trainset": nofail[:18], "k": 3, "metric": "exact",
         "max_bootstrapped_demos": 2, "max_labeled_demos": 3, "queries": ids[18:] + ids[:3]},
        {"shape": "cot", "trainset": nofail, "k": 5, "metric": "exact",
         "max_bootstrapped_demos": 1, "max_labeled_demos": 4, "queries": ids},
        {"shape": "predict", "trainset": nofail + nofail[:6], "k": 7, "metric": "graded",
         "max_bootstrapped_demos": 3, "max_labeled_demos": 5, "queries": ids[::2]},
        {"shape": "two", "trainset": nofail[2:], "k": 2, "metric": "exact",
         "max_bootstrapped_demos": 2, "max_labeled_demos": 2, "queries": ids[1::3]},
    ]
    return [knn_case(s) for s in specs]


def gen_argsort():
    r = random.Random(3)
    cases = []
    for _ in range(400):
        n = r.choice([1, 2, 3, 5, 10, 15, 16, 17, 18, 20, 33, 50, 72, 100, 200, 257, 500, 1000])
        kinds = r.choice([1, 2, 3, 5, 50, 100000])
        vals = [float(r.randrange(kinds)) for _ in range(n)]
        if r.random() < 0.08:
            vals[r.randrange(n)] = float("nan")
        if r.random() < 0.08:
            vals[r.randrange(n)] = float("-inf")
        k = r.choice([1, 2, 3, 5, 16, n, n + 3])
        a = np.array(vals, dtype=np.float32)
        top = a.argsort()[-k:][::-1].tolist()
        cases.append({"values": [v if v == v and abs(v) != float("inf") else repr(v) for v in vals],
                      "k": k, "top": top})
    # Structured arrays: organ pipes (every value twice) and Musser's median-of-3 killer
    # drive the introsort past its depth limit into heapsort.
    for n in (256, 512, 1024, 2048):
        half = n // 2
        musser = [0] * n
        for i in range(1, half + 1):
            if i % 2 == 1:
                musser[i - 1], musser[i] = i, half + i
            musser[half + i - 1] = 2 * i
        for vals in ([float(x) for x in list(range(half)) + list(range(half, 0, -1))],
                     [float(x) for x in musser]):
            a = np.array(vals, dtype=np.float32)
            cases.append({"values": vals, "k": n, "top": a.argsort()[-n:][::-1].tolist()})
    return cases


# --------------------------------------------------------------------------------------
# Ensemble

def gen_ensemble():
    cases = []
    for flavours in (["smart", "plain", "dumb"], ["dumb", "dumb", "smart"], ["plain", "smart"],
                     ["plain", "plain", "smart", "smart", "dumb"]):
        for shape in ("predict", "cot"):
            programs = []
            for fl in flavours:
                p = make_program(shape)
                p.set_lm(WorldLM([], smart=(fl == "smart")) if fl != "dumb" else DumbLM())
                programs.append(p)
            ens = Ensemble(reduce_fn=dspy.majority).compile(programs)
            outs = []
            for e in WORLD:
                if e["rule"] == "fail":
                    continue
                pred = ens(question=e["q"])
                outs.append({"query": e["id"], "fields": [[k, v] for k, v in pred.items()]})
            cases.append({"shape": shape, "flavours": flavours, "results": outs})
    return cases


class DumbLM(WorldLM):
    """Always the wrong answer (a third opinion for majority votes)."""

    def __init__(self):
        super().__init__([])

    def forward(self, prompt=None, messages=None, **kwargs):
        last = messages[-1]["content"]
        entry = next((e for e in WORLD if e["q"] in last), None)
        at = last.rfind(REQUEST)
        fields = [f for f in FIELD_RE.findall(last[at:]) if f != "completed"]
        out = {f: (entry["wrong"] if f == "answer" else f"Guessing {entry['id']}.") for f in fields}
        message = dotdict(content=self._format_answer_fields(out), tool_calls=None)
        return dotdict(choices=[dotdict(message=message, finish_reason="stop")],
                       usage=dotdict(prompt_tokens=0, completion_tokens=0, total_tokens=0), model="dummy")


# --------------------------------------------------------------------------------------

def main():
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "test/fixtures/optimizers")
    out.mkdir(parents=True, exist_ok=True)
    meta = {"dspy": dspy.__version__, "numpy": np.__version__, "python": platform.python_version(),
            "generator": "tools/gen_optimizer_fixtures.py"}
    files = {
        "world.json": WORLD,
        "labeled.json": gen_labeled(),
        "bootstrap.json": gen_bootstrap(),
        "random_search.json": gen_random_search(),
        "demo_candidates.json": gen_demo_candidates(),
        "knn.json": gen_knn(),
        "ensemble.json": gen_ensemble(),
        "argsort.json": gen_argsort(),
    }
    for name, cases in files.items():
        body = {"meta": meta, "cases": cases}
        indent = None if name == "argsort.json" else 1
        (out / name).write_text(json.dumps(body, indent=indent, ensure_ascii=False) + "\n")
        print(f"{name}: {len(cases)} cases")


if __name__ == "__main__":
    main()
