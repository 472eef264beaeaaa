"""DSPy 3.3.1's MIPROv2 (auto="light") on the loopback LM server of bench/optimize.exs.

    python bench/py/optimize_mipro_bench.py API_BASE TRAIN.jsonl THREADS

Same program (Predict("question -> answer")), same data (the JSONL the Elixir bench
wrote), same metric (exact match on `answer`), the same server answering both sides by
the same rules (tools/gen_mipro_traces.py's world over HTTP), LM cache off, prompt and
task model the same LM, `num_threads=THREADS`. Prints one line:

    threads=8 seconds=12.345 best=64.0 trials=13 scores=64.0,60.0,...

Import time and a short warm-up (an Evaluate of 5 examples: task-model calls only, which
do not move the server's prompt-model counters) are not timed.
"""
import json
import logging
import os
import sys
import time
import warnings

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import dspy  # noqa: E402
import optuna  # noqa: E402


def metric(example, pred, trace=None):
    return example.answer == pred.answer


def main():
    api_base, data_path, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
    logging.disable(logging.CRITICAL)
    warnings.filterwarnings("ignore")
    optuna.logging.set_verbosity(optuna.logging.ERROR)

    with open(data_path) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    trainset = [dspy.Example(question=r["question"], answer=r["answer"]).with_inputs("question") for r in rows]

    lm = dspy.LM("openai/loopback", api_base=api_base, api_key="loopback", cache=False)
    dspy.configure(lm=lm)
    dspy.Evaluate(devset=trainset[:5], metric=metric, num_threads=4)(dspy.Predict("question -> answer"))

    opt = dspy.MIPROv2(metric=metric, prompt_model=lm, task_model=lm, auto="light", num_threads=threads)
    start = time.perf_counter()
    best = opt.compile(dspy.Predict("question -> answer"), trainset=trainset)
    seconds = time.perf_counter() - start

    logs = best.trial_logs
    scores = [logs[k].get("mb_score", logs[k].get("full_eval_score")) for k in sorted(logs)]
    print(
        f"threads={threads} seconds={seconds:.3f} best={best.score} trials={len(scores)} "
        f"scores={','.join(str(s) for s in scores)}",
        flush=True,
    )


if __name__ == "__main__":
    main()
