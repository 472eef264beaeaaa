"""DSPy 3.3.1's SIMBA on the loopback LM server of bench/optimize.exs.

    python bench/py/optimize_simba_bench.py API_BASE TRAIN.jsonl THREADS BSIZE NUM_CANDIDATES MAX_STEPS RULES_API_BASE

Same program (Predict("question -> answer")), data, metric (1.0 / 0.0 exact match on
`answer`) and server as the DSPex side (the rule model on a second server), LM cache off, `num_threads=THREADS`, seed 0.
Prints one line:

    threads=8 seconds=12.345 best=0.64 candidates=0.64,0.6,...

Import time and a short warm-up (an Evaluate of 5 examples) are not timed.
"""
import json
import logging
import os
import sys
import time
import warnings

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import dspy  # noqa: E402


def metric(example, pred, trace=None):
    return 1.0 if example.answer == pred.answer else 0.0


def main():
    api_base, data_path, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
    bsize, num_candidates, max_steps = int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
    rules_base = sys.argv[7]
    logging.disable(logging.CRITICAL)
    warnings.filterwarnings("ignore")

    with open(data_path) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    trainset = [dspy.Example(question=r["question"], answer=r["answer"]).with_inputs("question") for r in rows]

    lm = dspy.LM("openai/loopback", api_base=api_base, api_key="loopback", cache=False)
    dspy.configure(lm=lm)
    dspy.Evaluate(devset=trainset[:5], metric=metric, num_threads=4)(dspy.Predict("question -> answer"))

    rules = dspy.LM("openai/rules", api_base=rules_base, api_key="loopback", cache=False)
    opt = dspy.SIMBA(
        metric=metric,
        prompt_model=rules, bsize=bsize, num_candidates=num_candidates, max_steps=max_steps, num_threads=threads
    )
    start = time.perf_counter()
    best = opt.compile(dspy.Predict("question -> answer"), trainset=trainset, seed=0)
    seconds = time.perf_counter() - start
    scores = [c["score"] for c in best.candidate_programs]
    print(
        f"threads={threads} seconds={seconds:.3f} best={scores[0]} "
        f"candidates={','.join(repr(s) for s in scores)}",
        flush=True,
    )


if __name__ == "__main__":
    main()
