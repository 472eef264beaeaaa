"""DSPy 3.3.1's GEPA (auto="light") on the loopback LM servers of bench/optimize.exs.

    python bench/py/optimize_gepa_bench.py API_BASE TRAIN.jsonl THREADS REFLECTION_API_BASE

Same program (Predict("question -> answer")), data (trainset = valset), metric (1.0 /
0.0 exact match on `answer` with a feedback line) and servers as the DSPex side, LM
caches off, `num_threads=THREADS`, seed 0. Prints one line:

    threads=8 seconds=12.345 best=0.64 candidates=3 metric_calls=900

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


def metric(gold, pred, trace=None, pred_name=None, pred_trace=None):
    ok = gold.answer == pred.answer
    return dspy.Prediction(score=1.0 if ok else 0.0, feedback="Correct." if ok else f"Expected {gold.answer}.")


def main():
    api_base, data_path, threads, reflection_base = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    logging.disable(logging.CRITICAL)
    warnings.filterwarnings("ignore")

    with open(data_path) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    trainset = [dspy.Example(question=r["question"], answer=r["answer"]).with_inputs("question") for r in rows]

    lm = dspy.LM("openai/loopback", api_base=api_base, api_key="loopback", cache=False)
    dspy.configure(lm=lm)
    dspy.Evaluate(devset=trainset[:5], metric=metric, num_threads=4)(dspy.Predict("question -> answer"))

    reflection = dspy.LM("openai/rules", api_base=reflection_base, api_key="loopback", cache=False)
    opt = dspy.GEPA(metric=metric, reflection_lm=reflection, auto="light", num_threads=threads, track_stats=True)
    start = time.perf_counter()
    best = opt.compile(dspy.Predict("question -> answer"), trainset=trainset)
    seconds = time.perf_counter() - start
    d = best.detailed_results
    print(
        f"threads={threads} seconds={seconds:.3f} best={d.val_aggregate_scores[d.best_idx]} "
        f"candidates={len(d.candidates)} metric_calls={d.total_metric_calls}",
        flush=True,
    )


if __name__ == "__main__":
    main()
