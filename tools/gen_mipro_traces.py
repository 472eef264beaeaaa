"""Golden traces of DSPy 3.3.1's MIPROv2 (with optuna's TPESampler) for DSPex's optimizer
engine (c_src/core/optim/engine.c) and DSPex.Optimizers.MIPROv2.

Run with:  /work/venv/bin/python tools/gen_mipro_traces.py
           (a venv with dspy==3.3.1 and optuna; the versions are recorded)

Every run is a real `dspy.MIPROv2(...).compile(...)` on an arithmetic dataset
("What is 3 plus 4?" -> "7") with two DummyLM-based scripted LMs whose answers DSPex's
tests reproduce exactly:

  * the task model answers from a hash of the prompt: for the request's messages it
    takes sha256(system + "\\x00" + last user message + "\\x00" + number of messages) and
    answers the question correctly when the first digest byte is < 154 (60 %), else
    "wrong"; any other output field (ChainOfThought's `reasoning`, a module's `draft`)
    gets "Let me think." So a score depends on the exact prompt: instructions, demos,
    inputs -- the same prompt in DSPex gives the same answer.
  * the prompt model answers by the signature it is asked (its output fields) and a
    per-field call counter: observations, summaries, descriptions and proposed
    instructions (see `prompt_reply`).

Writes test/fixtures/mipro/traces.json:

  {"dspy": "3.3.1", "optuna": "5.0.0", "python": "3.11.7",
   "runs": [RUN]}
  RUN = {"name", "program": "predict"|"cot"|"two"|"three", "n_train", "data_seed",
         "compile": {kwargs given to compile}, "init": {kwargs given to MIPROv2()},
         "seed": effective seed,                 # after DSPy's `seed or self.seed`
         "params": [{"name", "choices"}],        # the search space, suggest order
         "num_trials", "minibatch", "minibatch_size", "minibatch_full_eval_steps",
         "valset_size",
         "rng_state": [625 ints],                # self.rng.getstate()[1] after step 2
         "trials": [{"number", "kind": "default"|"objective"|"full_eval",
                     "params": [int], "examples": [int] | null, "score": float}],
         "best_score", "best_trial",
         # the whole pipeline, for DSPex.Optimizers.MIPROv2's own golden test:
         "trainset": [{"question", "answer"}],   # as given to compile (valset split inside)
         "valset": [int],                        # indices into trainset, valset order
         "demo_candidates": [[[demo]]],          # per predictor, per set: demo dicts
         "instruction_candidates": [[str]],
         "prompt_requests": [{"messages", "n", "temperature", "rollout_id"}],
         "task_calls": int,                      # task-model LM calls in the whole run
         "best_program": dump_state() of the returned program,
         "candidate_programs": [{"score", "full_eval"}],
         "mb_candidate_programs": [{"score", "full_eval"}]}

Deterministic (seeded); rerunnable.
"""

import copy
import hashlib
import json
import logging
import os
import random
import re
import sys
import warnings

import dspy
import optuna
from dspy.utils.dummies import DummyLM

import dspy.teleprompt.mipro_optimizer_v2 as mv2
import dspy.teleprompt.utils as tu

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "test", "fixtures", "mipro")

warnings.filterwarnings("ignore")
logging.disable(logging.CRITICAL)
optuna.logging.set_verbosity(optuna.logging.ERROR)

# ---------------------------------------------------------------------------- scripted LMs

QUESTION = re.compile(r"What is (\d+) plus (\d+)\?")
# Shared across LM copies (BaseLM.copy deep-copies the instance, not the class).
STATE = {"counters": {}, "prompt_requests": [], "task_calls": 0}


def output_fields(system):
    """The output field names the ChatAdapter lists in the system message."""
    part = system.split("Your output fields are:\n", 1)[1].split("\n\n", 1)[0]
    return re.findall(r"^\d+\. `([A-Za-z_][A-Za-z0-9_]*)`", part, flags=re.M)


def task_correct(messages):
    key = (messages[0]["content"] + "\x00" + messages[-1]["content"] + "\x00" + str(len(messages))).encode()
    return hashlib.sha256(key).digest()[0] < 154


def task_reply(messages):
    m = QUESTION.search(messages[-1]["content"])
    gold = str(int(m.group(1)) + int(m.group(2))) if m else "unknown"
    answer = gold if task_correct(messages) else "wrong"
    return {f: (answer if f == "answer" else "Let me think.") for f in output_fields(messages[0]["content"])}


def count(name):
    c = STATE["counters"].get(name, 0) + 1
    STATE["counters"][name] = c
    return c


def prompt_reply(fields):
    if fields == ["observations"]:
        c = count("observations")
        if c in (3, 5):
            return {"observations": "COMPLETE - nothing to add."}
        return {"observations": f"Observation {c}: the questions add two small numbers. "}
    if fields == ["summary"]:
        return {"summary": "Summary: Questions that add two numbers; answers are their sums."}
    if fields == ["program_description"]:
        return {"program_description": "Program Description: it answers arithmetic questions."}
    if fields == ["module_description"]:
        return {"module_description": "This module produces the answer."}
    if fields == ["proposed_instruction"]:
        c = count("proposed_instruction")
        texts = [
            f"Proposed Instruction: Add the two numbers and reply with the sum only (variant {c}).",
            f'"Compute the sum carefully, variant {c}."',
            f"**Instruction:** Read the question, add, answer (variant {c}).",
            f"You are a careful calculator. Variant {c}: give just the number.",
        ]
        return {"proposed_instruction": texts[c % len(texts)]}
    if fields == ["proposed_instruction", "proposed_prefix_for_output_field"]:
        # COPRO (tools/gen_copro_traces.py): consecutive proposals repeat in pairs, so
        # repeated candidates and DSPy's dedup are exercised; every third is quoted.
        c = count("copro")
        k = (c + 1) // 2
        instruction = f"Instruction {k}: add the two numbers and give the sum."
        if c % 3 == 0:
            instruction = f'"{instruction}"'
        return {"proposed_instruction": instruction, "proposed_prefix_for_output_field": f"Answer {k}:"}
    raise ValueError(f"unexpected prompt-model signature {fields}")


class ScriptedLM(DummyLM):
    def __init__(self, role):
        super().__init__([])
        self.role = role

    def forward(self, prompt=None, messages=None, **kwargs):
        kwargs = {**self.kwargs, **kwargs}
        n = kwargs.get("n", 1) or 1
        fields = output_fields(messages[0]["content"])
        if self.role == "task":
            STATE["task_calls"] += 1
        else:
            STATE["prompt_requests"].append(
                {
                    "messages": [{"role": m["role"], "content": m["content"]} for m in messages],
                    "n": n,
                    "temperature": kwargs.get("temperature"),
                    "rollout_id": kwargs.get("rollout_id"),
                }
            )
        choices = []
        for _ in range(n):
            values = task_reply(messages) if self.role == "task" else prompt_reply(fields)
            text = self._format_answer_fields(values)
            choices.append(dspy.utils.dummies.dotdict(message=dspy.utils.dummies.dotdict(content=text, tool_calls=None), finish_reason="stop"))
        return dspy.utils.dummies.dotdict(
            choices=choices,
            usage=dspy.utils.dummies.dotdict(prompt_tokens=0, completion_tokens=0, total_tokens=0),
            model="dummy",
        )


# ---------------------------------------------------------------------------- data and programs


def dataset(n, seed):
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        a, b = rng.randint(1, 99), rng.randint(1, 99)
        out.append(dspy.Example(question=f"What is {a} plus {b}?", answer=str(a + b)).with_inputs("question"))
    return out


class Two(dspy.Module):
    def __init__(self):
        super().__init__()
        self.draft = dspy.Predict("question -> draft")
        self.answer = dspy.Predict("question, draft -> answer")

    def forward(self, question):
        d = self.draft(question=question).draft
        return self.answer(question=question, draft=d)


class Three(dspy.Module):
    def __init__(self):
        super().__init__()
        self.topic = dspy.Predict("question -> topic")
        self.draft = dspy.Predict("question, topic -> draft")
        self.answer = dspy.Predict("question, draft -> answer")

    def forward(self, question):
        t = self.topic(question=question).topic
        d = self.draft(question=question, topic=t).draft
        return self.answer(question=question, draft=d)


def program(kind):
    return {
        "predict": lambda: dspy.Predict("question -> answer"),
        "cot": lambda: dspy.ChainOfThought("question -> answer"),
        "two": Two,
        "three": Three,
    }[kind]()


def metric(example, pred, trace=None):
    return example.answer == pred.answer


# ---------------------------------------------------------------------------- capture


def run(name, prog, n_train, data_seed, init, comp):
    STATE["counters"] = {}
    STATE["prompt_requests"] = []
    STATE["task_calls"] = 0
    trainset = dataset(n_train, data_seed)
    index_of = {id(ex): i for i, ex in enumerate(trainset)}
    cap = {"minibatches": [], "valset": None}

    orig_create_minibatch = tu.create_minibatch

    def recording_create_minibatch(items, batch_size=50, rng=None):
        batch_size = min(batch_size, len(items))
        idx = (rng or random).sample(range(len(items)), batch_size)
        cap["sample"] = idx
        return [items[i] for i in idx]

    def valset_sampler(items, batch_size=50, rng=None):
        out = recording_create_minibatch(items, batch_size, rng)
        cap["valset_sampled"] = True
        return out

    def minibatch_sampler(items, batch_size=50, rng=None):
        out = recording_create_minibatch(items, batch_size, rng)
        cap["minibatches"].append(list(cap["sample"]))
        return out

    orig_demo_sets = mv2.create_n_fewshot_demo_sets

    def demo_sets(*a, **k):
        res = orig_demo_sets(*a, **k)
        cap["demo_candidates"] = res
        return res

    orig_propose = mv2.MIPROv2._propose_instructions

    def propose(self, *a, **k):
        res = orig_propose(self, *a, **k)
        cap["instruction_candidates"] = copy.deepcopy(res)
        return res

    orig_opt = mv2.MIPROv2._optimize_prompt_parameters

    def optimize(self, program_, instruction_candidates, demo_candidates, evaluate, valset, *a, **k):
        cap["rng_state"] = list(self.rng.getstate()[1])
        cap["valset_examples"] = list(valset)
        return orig_opt(self, program_, instruction_candidates, demo_candidates, evaluate, valset, *a, **k)

    orig_create_study = optuna.create_study

    def create_study(*a, **k):
        study = orig_create_study(*a, **k)
        cap["study"] = study
        return study

    mv2.create_minibatch = valset_sampler
    tu.create_minibatch = minibatch_sampler
    mv2.create_n_fewshot_demo_sets = demo_sets
    mv2.MIPROv2._propose_instructions = propose
    mv2.MIPROv2._optimize_prompt_parameters = optimize
    optuna.create_study = create_study
    try:
        task, prompt = ScriptedLM("task"), ScriptedLM("prompt")
        opt = mv2.MIPROv2(metric=metric, prompt_model=prompt, task_model=task, num_threads=1, **init)
        best = opt.compile(prog, trainset=trainset, **comp)
    finally:
        mv2.create_minibatch = orig_create_minibatch
        tu.create_minibatch = orig_create_minibatch
        mv2.create_n_fewshot_demo_sets = orig_demo_sets
        mv2.MIPROv2._propose_instructions = orig_propose
        mv2.MIPROv2._optimize_prompt_parameters = orig_opt
        optuna.create_study = orig_create_study

    study = cap["study"]
    n_pred = len(prog.predictors())
    mbd = comp.get("max_bootstrapped_demos", opt.max_bootstrapped_demos)
    mld = comp.get("max_labeled_demos", opt.max_labeled_demos)
    zero_shot = mbd == 0 and mld == 0
    names = []
    for i in range(n_pred):
        names.append(f"{i}_predictor_instruction")
        if not zero_shot:
            names.append(f"{i}_predictor_demos")
    dists = study.trials[0].distributions
    params = [{"name": n, "choices": len(dists[n].choices)} for n in names]

    logs = best.trial_logs
    minibatch = any("mb_score" in v for v in logs.values())
    mbs = iter(cap["minibatches"])
    trials = []
    for t in study.trials:
        number = t.number + 1
        log = logs[number]
        if number == 1:
            kind = "default"
        elif "mb_score" in log:
            kind = "objective"
        elif minibatch:
            kind = "full_eval"
        else:
            kind = "objective"
        trials.append(
            {
                "number": number,
                "kind": kind,
                "params": [t.params[n] for n in names],
                "examples": next(mbs) if "mb_score" in log else None,
                "score": log.get("mb_score", log.get("full_eval_score")),
            }
        )
    valset = [index_of[id(ex)] for ex in cap["valset_examples"]]
    best_trial = None
    for t in trials:
        if t["kind"] != "objective" or not minibatch:
            if t["score"] == best.score and best_trial is None:
                best_trial = t["number"]

    def demo_dict(d):
        return {k: v for k, v in d.items()}

    return {
        "name": name,
        "program": prog_kind(prog),
        "n_train": n_train,
        "data_seed": data_seed,
        "init": init,
        "compile": comp,
        "seed": comp.get("seed") or init.get("seed", 9),
        "params": params,
        "num_trials": sum(1 for t in trials if t["kind"] == "objective"),
        "minibatch": minibatch,
        "minibatch_size": comp.get("minibatch_size", 35),
        "minibatch_full_eval_steps": comp.get("minibatch_full_eval_steps", 5),
        "valset_size": len(valset),
        "rng_state": cap["rng_state"],
        "trials": trials,
        "best_score": best.score,
        "best_trial": best_trial,
        "trainset": [{"question": ex.question, "answer": ex.answer} for ex in trainset],
        "valset": valset,
        "demo_candidates": [
            [[demo_dict(d) for d in s] for s in cap["demo_candidates"][i]] for i in range(n_pred)
        ],
        "instruction_candidates": [list(cap["instruction_candidates"][i]) for i in range(n_pred)],
        "prompt_requests": STATE["prompt_requests"],
        "task_calls": STATE["task_calls"],
        "best_program": best.dump_state(),
        "candidate_programs": [{"score": c["score"], "full_eval": c["full_eval"]} for c in best.candidate_programs],
        "mb_candidate_programs": [
            {"score": c["score"], "full_eval": c["full_eval"]} for c in best.mb_candidate_programs
        ],
    }


KINDS = {}


def prog_kind(p):
    return KINDS[id(p)]


def make(kind):
    p = program(kind)
    KINDS[id(p)] = kind
    return p


def main():
    runs = []
    light = {"auto": "light"}
    cases = [
        # name, program, n_train, data_seed, init, compile
        ("light_predict_seed9", "predict", 130, 1, light, {}),
        ("light_cot_seed42", "cot", 130, 2, light, {"seed": 42}),
        ("light_predict_seed0_is_9", "predict", 130, 3, light, {"seed": 0}),
        ("light_two_seed7", "two", 130, 4, light, {"seed": 7}),
        ("light_three_seed3", "three", 130, 5, light, {"seed": 3}),
        ("light_zeroshot", "predict", 130, 6, {**light, "max_bootstrapped_demos": 0, "max_labeled_demos": 0}, {}),
        ("light_small_valset_no_minibatch", "predict", 40, 7, light, {}),
        ("light_no_data_aware", "cot", 130, 8, light, {"data_aware_proposer": False, "tip_aware_proposer": False}),
        ("medium_predict", "predict", 160, 9, {"auto": "medium"}, {"seed": 11}),
        ("custom_minibatch", "predict", 90, 10, {"auto": None, "num_candidates": 4},
         {"num_trials": 14, "minibatch_size": 12, "minibatch_full_eval_steps": 3, "seed": 5}),
        ("custom_full", "two", 60, 11, {"auto": None, "num_candidates": 3},
         {"num_trials": 8, "minibatch": False, "seed": 13}),
        ("custom_minibatch_two", "two", 100, 12, {"auto": None, "num_candidates": 5},
         {"num_trials": 16, "minibatch_size": 20, "minibatch_full_eval_steps": 2, "seed": 21,
          "max_bootstrapped_demos": 2, "max_labeled_demos": 2}),
        ("custom_zeroshot_minibatch", "cot", 90, 13, {"auto": None, "num_candidates": 5},
         {"num_trials": 12, "minibatch_size": 10, "minibatch_full_eval_steps": 4, "seed": 99,
          "max_bootstrapped_demos": 0, "max_labeled_demos": 0}),
        ("light_predict_seed123", "predict", 150, 14, light, {"seed": 123}),
    ]
    for name, kind, n, dseed, init, comp in cases:
        print(f"run {name}", file=sys.stderr)
        runs.append(run(name, make(kind), n, dseed, init, comp))

    doc = {
        "dspy": dspy.__version__,
        "optuna": optuna.__version__,
        "python": ".".join(map(str, sys.version_info[:3])),
        "runs": runs,
    }
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "traces.json"), "w") as f:
        json.dump(doc, f, indent=1, sort_keys=False)
    print(f"wrote {len(runs)} runs", file=sys.stderr)


if __name__ == "__main__":
    main()
