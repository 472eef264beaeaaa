"""Golden traces of DSPy 3.3.1's GEPA (engine: the `gepa` package 0.1.4) for
DSPex.Optimizers.GEPA.

Run with:  /work/venv/bin/python tools/gen_gepa_traces.py
           (it re-runs itself with PYTHONHASHSEED=0, under which the Python set of the
           two-predictor program's names {"draft", "answer"} iterates in sorted order,
           the order DSPex's merge walks predictors in)

Every run is a real `dspy.GEPA(...).compile(...)` on the arithmetic dataset of
tools/gen_mipro_traces.py with two scripted LMs DSPex's test reproduces:

  * the task model answers from a hash of the exact prompt: correct when the first
    byte of sha256(system + "\\0" + last user message + "\\0" + message count) is
    < 128, else "wrong"; other output fields get "Let me think." -- so a new
    instruction changes the answers;
  * in the "draft" world (the merge runs) a `draft` output is "Think v<K>." when its
    predictor's instruction is "Instruction v<K>: ...", so changing the first predictor
    changes the second one's prompt -- candidates then branch and GEPA merges them;
  * the reflection model answers the k-th reflection prompt (counting from 1) with a
    new instruction in one of four shapes (fenced, fenced with a language tag, one
    fence, no fence) -- see `reflection_reply`.

Metrics: "feedback" returns dspy.Prediction(score, feedback) with a per-example
message; "plain" returns a float (GEPA's default feedback text).

Writes test/fixtures/gepa/traces.json:

  {"dspy", "gepa", "python", "pythonhashseed",
   "runs": [{"name", "program", "metric", "n_train", "n_val", "data_seed", "init",
             "trainset", "valset": [{"question", "answer"}],
             "evaluations": [[score per example]],   # every adapter.evaluate, in order
             "reflection_prompts": [str],            # every reflection LM prompt
             "candidates": [{name: instruction}], "parents": [[int|null]],
             "val_aggregate_scores": [float], "val_subscores": [[float]],
             "per_val_instance_best_candidates": [[int]],   # set iteration order
             "discovery_eval_counts": [int], "total_metric_calls", "num_full_val_evals",
             "best_idx", "best_program": dump_state()}]}
"""

import hashlib
import json
import logging
import os
import platform
import re
import subprocess
import sys
import warnings

if os.environ.get("PYTHONHASHSEED") != "0":
    env = dict(os.environ, PYTHONHASHSEED="0")
    sys.exit(subprocess.call([sys.executable, *sys.argv], env=env))

import dspy  # noqa: E402
import gepa  # noqa: E402
from dspy.teleprompt.gepa import gepa_utils  # noqa: E402
from dspy.utils.dummies import DummyLM, dotdict  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_mipro_traces as g  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "test", "fixtures", "gepa")

warnings.filterwarnings("ignore")
logging.disable(logging.CRITICAL)

STATE = {"reflections": 0, "prompts": [], "evaluations": []}


def task_reply(messages):
    system = messages[0]["content"]
    fields = g.output_fields(system)
    if STATE.get("world") == "draft" and fields == ["draft"]:
        # the draft depends on its own instruction's variant, so a new draft
        # instruction changes the answer prompt (and maybe the answer)
        m = re.search(r"Instruction v(\d+):", system)
        return {"draft": f"Think v{m.group(1)}." if m else "Let me think."}
    key = (messages[0]["content"] + "\x00" + messages[-1]["content"] + "\x00" + str(len(messages))).encode()
    ok = hashlib.sha256(key).digest()[0] < 128
    m = g.QUESTION.search(messages[-1]["content"])
    gold = str(int(m.group(1)) + int(m.group(2))) if m else "unknown"
    answer = gold if ok else "wrong"
    return {f: (answer if f == "answer" else "Let me think.") for f in g.output_fields(messages[0]["content"])}


def reflection_reply(k):
    text = f"Instruction v{k}: add the two numbers and answer with the sum only."
    shape = k % 4
    if shape == 0:
        return f"Here is the new instruction:\n```\n{text}\n```\nDone."
    if shape == 1:
        return f"```text\n{text}\n```"
    if shape == 2:
        return f"```\n{text}"
    return f"  {text}  "


class TaskLM(DummyLM):
    def __init__(self):
        super().__init__([])

    def forward(self, prompt=None, messages=None, **kwargs):
        text = self._format_answer_fields(task_reply(messages))
        return dotdict(
            choices=[dotdict(message=dotdict(content=text, tool_calls=None), finish_reason="stop")],
            usage=dotdict(prompt_tokens=0, completion_tokens=0, total_tokens=0),
            model="dummy",
        )


class ReflectionLM(DummyLM):
    def __init__(self):
        super().__init__([])

    def forward(self, prompt=None, messages=None, **kwargs):
        content = prompt if prompt is not None else messages[-1]["content"]
        STATE["prompts"].append(content)
        STATE["reflections"] += 1
        text = reflection_reply(STATE["reflections"])
        return dotdict(
            choices=[dotdict(message=dotdict(content=text, tool_calls=None), finish_reason="stop")],
            usage=dotdict(prompt_tokens=0, completion_tokens=0, total_tokens=0),
            model="dummy",
        )


def feedback_metric(gold, pred, trace=None, pred_name=None, pred_trace=None):
    ok = gold.answer == pred.answer
    fb = "Correct." if ok else f"The answer should be {gold.answer}, not {pred.answer}."
    if pred_name is not None:
        fb += f" (module {pred_name})"
    return dspy.Prediction(score=1.0 if ok else 0.0, feedback=fb)


def plain_metric(gold, pred, trace=None, pred_name=None, pred_trace=None):
    return 1.0 if gold.answer == pred.answer else 0.0


def run(name, kind, metric, n_train, n_val, data_seed, init, world="hash"):
    STATE.update(reflections=0, prompts=[], evaluations=[], world=world)
    data = g.dataset(n_train + n_val, data_seed)
    trainset, valset = data[:n_train], data[n_train:] if n_val else None
    orig = gepa_utils.DspyAdapter.evaluate

    def recording(self, batch, candidate, capture_traces=False, num_threads=None):
        out = orig(self, batch, candidate, capture_traces=capture_traces, num_threads=num_threads)
        STATE["evaluations"].append([float(s) for s in out.scores])
        return out

    gepa_utils.DspyAdapter.evaluate = recording
    try:
        prog = g.program(kind)
        opt = dspy.GEPA(
            metric={"feedback": feedback_metric, "plain": plain_metric}[metric],
            reflection_lm=ReflectionLM(),
            num_threads=4,
            track_stats=True,
            **init,
        )
        with dspy.context(lm=TaskLM()):
            best = opt.compile(prog, trainset=trainset, valset=valset)
    finally:
        gepa_utils.DspyAdapter.evaluate = orig

    d = best.detailed_results
    return {
        "name": name,
        "program": kind,
        "metric": metric,
        "world": world,
        "n_train": n_train,
        "n_val": n_val,
        "data_seed": data_seed,
        "init": init,
        "trainset": [{"question": e.question, "answer": e.answer} for e in trainset],
        "valset": [{"question": e.question, "answer": e.answer} for e in (valset or [])],
        "evaluations": STATE["evaluations"],
        "reflection_prompts": STATE["prompts"],
        "candidates": [
            {n: p.signature.instructions for n, p in c.named_predictors()} for c in d.candidates
        ],
        "parents": d.parents,
        "val_aggregate_scores": d.val_aggregate_scores,
        "val_subscores": [[s[k] for k in sorted(s)] for s in d.val_subscores],
        "per_val_instance_best_candidates": [list(s) for _, s in d.per_val_instance_best_candidates.items()],
        "discovery_eval_counts": d.discovery_eval_counts,
        "total_metric_calls": d.total_metric_calls,
        "num_full_val_evals": d.num_full_val_evals,
        "best_idx": d.best_idx,
        "best_program": json.loads(json.dumps(best.dump_state(), default=str)),
    }


def main():
    runs = [
        run("predict_feedback", "predict", "feedback", 6, 5, 1, dict(max_metric_calls=60)),
        run("predict_plain_nomerge", "predict", "plain", 5, 0, 4, dict(max_metric_calls=40, use_merge=False)),
        run("two_use_merge", "two", "feedback", 6, 6, 3, dict(max_metric_calls=150)),
        run("two_merge", "two", "feedback", 6, 6, 6, dict(max_metric_calls=150), world="draft"),
        run("two_merge_rejected", "two", "feedback", 6, 6, 3, dict(max_metric_calls=150), world="draft"),
        run("two_all_components", "two", "feedback", 4, 5, 4, dict(max_full_evals=4, component_selector="all")),
        run("predict_auto_light", "predict", "feedback", 4, 3, 5, dict(auto="light", reflection_minibatch_size=2)),
    ]
    os.makedirs(OUT, exist_ok=True)
    doc = {
        "dspy": dspy.__version__,
        "gepa": getattr(gepa, "__version__", "0.1.4"),
        "python": platform.python_version(),
        "pythonhashseed": "0",
        "runs": runs,
    }
    with open(os.path.join(OUT, "traces.json"), "w") as f:
        json.dump(doc, f, indent=1, ensure_ascii=False)
        f.write("\n")
    for r in runs:
        print(
            r["name"],
            "evals",
            len(r["evaluations"]),
            "reflections",
            len(r["reflection_prompts"]),
            "candidates",
            len(r["candidates"]),
            "parents",
            r["parents"],
            "best",
            r["best_idx"],
            r["val_aggregate_scores"][r["best_idx"]],
        )


if __name__ == "__main__":
    main()
