"""Golden traces of DSPy 3.3.1's SIMBA for DSPex.Optimizers.SIMBA.

Run with:  /work/venv/bin/python tools/gen_simba_traces.py

Every run is a real `dspy.SIMBA(...).compile(...)` on the arithmetic dataset of
tools/gen_mipro_traces.py, with two scripted LMs whose answers DSPex's test reproduces:

  * the task model answers from a hash of the exact prompt AND the request's rollout_id
    (SIMBA samples each example with `num_candidates` LM copies, rollout ids 0..k-1, at
    temperature 1.0): correct when the first byte of
    sha256(system + "\\0" + last user message + "\\0" + message count + "\\0" + rollout_id)
    is < 128, else "wrong" (rollout_id "None" for plain calls); other output fields get
    "Let me think.";
  * the prompt model answers OfferFeedback with a discussion and, for every module name
    listed in the prompt, "Rule <k> for <name>: add the two numbers digit by digit."
    (k counts the OfferFeedback calls).

The metric returns 1.0 / 0.0 (a float: SIMBA shows it to the prompt model).

Writes test/fixtures/simba/traces.json:

  {"dspy": "3.3.1", "numpy": ..., "python": ...,
   "runs": [{"name", "program", "n_train", "data_seed", "seed",
             "init": {SIMBA kwargs},
             "trainset": [{"question", "answer"}],
             "parallel_calls": [[score per run]],   # every dspy.Parallel call, in order
             "prompt_requests": [{"messages"}],     # OfferFeedback requests, in order
             "task_calls": int,
             "candidate_programs": [{"score", "program": dump_state()}],
             "best_program": dump_state(),
             "trial_logs": {step: {"train_score"}}}]}
"""

import hashlib
import json
import logging
import os
import platform
import re
import sys
import warnings

import dspy
import numpy
from dspy.utils.dummies import DummyLM, dotdict

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_mipro_traces as g  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "test", "fixtures", "simba")

warnings.filterwarnings("ignore")
logging.disable(logging.CRITICAL)

STATE = {"prompt_requests": [], "task_calls": 0, "rules": 0, "parallel": []}


def task_correct(messages, rollout_id):
    key = (
        messages[0]["content"]
        + "\x00"
        + messages[-1]["content"]
        + "\x00"
        + str(len(messages))
        + "\x00"
        + str(rollout_id)
    ).encode()
    return hashlib.sha256(key).digest()[0] < 128


def task_reply(messages, rollout_id):
    m = g.QUESTION.search(messages[-1]["content"])
    gold = str(int(m.group(1)) + int(m.group(2))) if m else "unknown"
    answer = gold if task_correct(messages, rollout_id) else "wrong"
    return {f: (answer if f == "answer" else "Let me think.") for f in g.output_fields(messages[0]["content"])}


def rule_reply(messages):
    STATE["rules"] += 1
    k = STATE["rules"]
    user = messages[-1]["content"]
    names_block = user.split("[[ ## module_names ## ]]\n", 1)[1].split("\n\n", 1)[0]
    names = json.loads(names_block)
    advice = {n: f"Rule {k} for {n}: add the two numbers digit by digit." for n in names}
    return {"discussion": f"Discussion {k}.", "module_advice": advice}


class LM(DummyLM):
    def __init__(self, role):
        super().__init__([])
        self.role = role

    def forward(self, prompt=None, messages=None, **kwargs):
        kwargs = {**self.kwargs, **kwargs}
        fields = g.output_fields(messages[0]["content"])
        if self.role == "task":
            STATE["task_calls"] += 1
            values = task_reply(messages, kwargs.get("rollout_id"))
        else:
            assert fields == ["discussion", "module_advice"], fields
            STATE["prompt_requests"].append(
                {"messages": [{"role": m["role"], "content": m["content"]} for m in messages]}
            )
            values = rule_reply(messages)
        text = self._format_answer_fields(values)
        return dotdict(
            choices=[dotdict(message=dotdict(content=text, tool_calls=None), finish_reason="stop")],
            usage=dotdict(prompt_tokens=0, completion_tokens=0, total_tokens=0),
            model="dummy",
        )


def metric(example, pred, trace=None):
    return 1.0 if example.answer == pred.answer else 0.0


def run(name, kind, n_train, data_seed, seed, init):
    STATE.update(prompt_requests=[], task_calls=0, rules=0, parallel=[])
    trainset = g.dataset(n_train, data_seed)
    orig = dspy.Parallel.__call__

    def recording(self, *a, **k):
        out = orig(self, *a, **k)
        STATE["parallel"].append([float(o["score"]) for o in out])
        return out

    dspy.Parallel.__call__ = recording
    try:
        task, prompt = LM("task"), LM("prompt")
        prog = g.program(kind)
        opt = dspy.SIMBA(metric=metric, prompt_model=prompt, num_threads=4, **init)
        with dspy.context(lm=task):
            best = opt.compile(prog, trainset=trainset, seed=seed)
    finally:
        dspy.Parallel.__call__ = orig

    def state(p):
        s = p.dump_state()
        return json.loads(json.dumps(s, default=str))

    return {
        "name": name,
        "program": kind,
        "n_train": n_train,
        "data_seed": data_seed,
        "seed": seed,
        "init": init,
        "trainset": [{"question": e.question, "answer": e.answer} for e in trainset],
        "parallel_calls": STATE["parallel"],
        "prompt_requests": STATE["prompt_requests"],
        "task_calls": STATE["task_calls"],
        "candidate_programs": [{"score": c["score"], "program": state(c["program"])} for c in best.candidate_programs],
        "best_program": state(best),
        "trial_logs": {str(k): v for k, v in best.trial_logs.items()},
    }


def main():
    runs = [
        run("predict_b4_c3", "predict", 8, 1, 0, dict(bsize=4, num_candidates=3, max_steps=3, max_demos=2)),
        run("two_b3_c2", "two", 7, 2, 5, dict(bsize=3, num_candidates=2, max_steps=3, max_demos=1)),
        run("cot_rules_only", "cot", 6, 3, 7, dict(bsize=3, num_candidates=2, max_steps=2, max_demos=0)),
        run("predict_many_steps", "predict", 5, 4, 11, dict(bsize=4, num_candidates=2, max_steps=5, max_demos=1)),
    ]
    os.makedirs(OUT, exist_ok=True)
    doc = {"dspy": dspy.__version__, "numpy": numpy.__version__, "python": platform.python_version(), "runs": runs}
    with open(os.path.join(OUT, "traces.json"), "w") as f:
        json.dump(doc, f, indent=1, ensure_ascii=False)
        f.write("\n")
    for r in runs:
        print(r["name"], "calls", len(r["parallel_calls"]), "rules", len(r["prompt_requests"]),
              "best", r["candidate_programs"][0]["score"])


if __name__ == "__main__":
    main()
