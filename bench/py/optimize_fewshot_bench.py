"""DSPy 3.3.1's side of bench/optimize_fewshot.exs.

    python bench/py/optimize_fewshot_bench.py bootstrap WORLD.json REPS
    python bench/py/optimize_fewshot_bench.py random_search WORLD.json API_BASE THREADS CANDIDATES

WORLD.json (written by the Elixir bench) lists the questions: id, q, tag, answer, wrong,
rule ("always", "tag", "never"). Both sides answer with the same rule: the right answer
when the rule is "always", or "tag" and an earlier message of the prompt (a demo)
carries the question's tag; the wrong one otherwise.

bootstrap: BootstrapFewShot(metric=exact, max_bootstrapped_demos=len(world),
max_labeled_demos=16, max_rounds=2) compiles ChainOfThought("question -> answer") over
the whole world with the rule answered in-process (a DummyLM subclass, like DSPex's
scripted LM). Prints the best of REPS timings and a SHA-256 of the demos:

    bootstrap seconds=1.234 demos_sha=...

random_search: BootstrapFewShotWithRandomSearch(metric=exact, max_bootstrapped_demos=4,
max_labeled_demos=8, num_candidate_programs=CANDIDATES, num_threads=THREADS) on
Predict("question -> answer") against the loopback server at API_BASE (dspy.LM over
HTTP, cache off). Prints:

    random_search seconds=5.678 scores=[...] best=62.5

Import time and warm-up are not timed.
"""
import contextlib
import hashlib
import io
import json
import logging
import os
import re
import sys
import time

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import dspy  # noqa: E402
from dspy.dsp.utils.utils import dotdict  # noqa: E402
from dspy.utils.dummies import DummyLM  # noqa: E402

ID_RE = re.compile(r"(Q\d{4}) \[tag:")
FIELD_RE = re.compile(r"\[\[ ## (\w+) ## \]\]")
REQUEST = "Respond with the corresponding output fields"


def world_answer(by_id, messages):
    last = messages[-1]["content"]
    at = last.rfind(REQUEST)
    fields = [f for f in FIELD_RE.findall(last[at:]) if f != "completed"] if at >= 0 else ["answer"]
    m = ID_RE.search(last)
    e = by_id[m.group(1)]
    if e["rule"] == "always":
        good = True
    elif e["rule"] == "tag":
        good = any(f"[tag:{e['tag']}]" in m_["content"] for m_ in messages[:-1])
    else:
        good = False
    return {f: (e["answer"] if good else e["wrong"]) if f == "answer" else f"Thinking about {e['id']}." for f in fields}


class WorldLM(DummyLM):
    def __init__(self, by_id):
        super().__init__([])
        self.by_id = by_id

    def forward(self, prompt=None, messages=None, **kwargs):
        out = world_answer(self.by_id, messages)
        message = dotdict(content=self._format_answer_fields(out), tool_calls=None)
        return dotdict(choices=[dotdict(message=message, finish_reason="stop")],
                       usage=dotdict(prompt_tokens=0, completion_tokens=0, total_tokens=0), model="dummy")


def exact(example, pred, trace=None):
    return pred.answer == example.answer


def examples(world):
    return [dspy.Example(question=e["q"], answer=e["answer"]).with_inputs("question") for e in world]


def demos_sha(program):
    demos = {name: [d.toDict() if isinstance(d, dspy.Example) else dict(d) for d in p.demos]
             for name, p in program.named_predictors()}
    text = json.dumps(demos, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()


def quiet(fn):
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        return fn()


def bootstrap(world, reps):
    by_id = {e["id"]: e for e in world}
    dspy.configure(lm=WorldLM(by_id))
    trainset = examples(world)

    def compile_once():
        opt = dspy.BootstrapFewShot(metric=exact, max_bootstrapped_demos=len(world), max_labeled_demos=16,
                                    max_rounds=2)
        return quiet(lambda: opt.compile(dspy.ChainOfThought("question -> answer"), trainset=trainset))

    compile_once()  # warm-up
    best, program = None, None
    for _ in range(reps):
        start = time.perf_counter()
        program = compile_once()
        took = time.perf_counter() - start
        best = took if best is None else min(best, took)
    print(f"bootstrap seconds={best:.4f} demos_sha={demos_sha(program)}", flush=True)


def random_search(world, api_base, threads, candidates):
    dspy.configure(lm=dspy.LM("openai/loopback", api_base=api_base, api_key="loopback", cache=False))
    trainset = examples(world)
    program = dspy.Predict("question -> answer")
    # warm-up: litellm builds its client on first use
    quiet(lambda: dspy.Evaluate(devset=trainset[:8], metric=exact, num_threads=4)(program))
    opt = quiet(lambda: dspy.BootstrapFewShotWithRandomSearch(
        metric=exact, max_bootstrapped_demos=4, max_labeled_demos=8, num_candidate_programs=candidates,
        num_threads=threads))
    start = time.perf_counter()
    best = quiet(lambda: opt.compile(program, trainset=trainset))
    took = time.perf_counter() - start
    scores = sorted(((c["seed"], c["score"]) for c in best.candidate_programs))
    print(f"random_search seconds={took:.4f} scores={json.dumps([s for _, s in scores])} "
          f"best={max(s for _, s in scores)}", flush=True)


def main():
    logging.disable(logging.WARNING)
    mode, world_path = sys.argv[1], sys.argv[2]
    with open(world_path) as f:
        world = json.load(f)
    if mode == "bootstrap":
        bootstrap(world, int(sys.argv[3]))
    else:
        random_search(world, sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))


if __name__ == "__main__":
    main()
