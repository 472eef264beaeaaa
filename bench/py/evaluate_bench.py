"""DSPy 3.3.1's Evaluate on the loopback LM server of bench/evaluate.exs.

    python bench/py/evaluate_bench.py API_BASE DATA.jsonl THREADS[,THREADS...] [N_AT_1]

Same program (Predict("question -> answer")), same data (the JSONL the Elixir bench
wrote), same metric (dspy.evaluate.answer_exact_match), LM cache off. For each thread
count prints one line:

    threads=16 n=1000 seconds=12.345 score=75.0

Import time and a short warm-up run are not timed. With N_AT_1, the run at one thread
uses only the first N_AT_1 examples (it is the slow one).
"""
import json
import logging
import os
import sys
import time

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import dspy  # noqa: E402


def main():
    api_base, data_path, threads = sys.argv[1], sys.argv[2], sys.argv[3]
    n_at_1 = int(sys.argv[4]) if len(sys.argv) > 4 else None
    logging.disable(logging.WARNING)

    with open(data_path) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    devset = [dspy.Example(question=r["question"], answer=r["answer"]).with_inputs("question") for r in rows]

    lm = dspy.LM("openai/loopback", api_base=api_base, api_key="loopback", cache=False)
    dspy.configure(lm=lm)
    program = dspy.Predict("question -> answer")
    metric = dspy.evaluate.answer_exact_match

    # Warm-up: litellm and DSPy build their clients and caches on first use.
    dspy.Evaluate(devset=devset[:20], metric=metric, num_threads=4)(program)

    for t in (int(x) for x in threads.split(",")):
        data = devset[:n_at_1] if (t == 1 and n_at_1) else devset
        evaluate = dspy.Evaluate(devset=data, metric=metric, num_threads=t, display_progress=False)
        start = time.perf_counter()
        result = evaluate(program)
        seconds = time.perf_counter() - start
        print(f"threads={t} n={len(data)} seconds={seconds:.3f} score={result.score}", flush=True)


if __name__ == "__main__":
    main()
