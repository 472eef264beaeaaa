"""Golden cases for DSPex.Evaluate's score arithmetic, from DSPy 3.3.1 itself.

    /work/venv/bin/python tools/evaluate_golden.py > test/fixtures/evaluate/score_golden.json

For each list of metric results (bools, ints, floats, DSPy's failure_score 0.0 mixed
in) it records what DSPy's Evaluate computes from it: the Python `sum`, the returned
`score` (round(100 * sum / n, 2)), the progress description DSPy's ParallelExecutor
shows and the summary line Evaluate logs. A few cases are additionally run through a
real `dspy.Evaluate` (with DummyLM) and the script asserts that the formula matches it,
so the fixture is tied to the real code, not to a re-reading of it. Deterministic
(seeded); rerunnable.
"""
import json
import logging
import random
import sys

import dspy
from dspy.utils.dummies import DummyLM


def progress_text(scores):
    # ParallelExecutor._update_progress with compare_results=True
    total, n = sum(scores), len(scores)
    pct = round(100 * total / n, 1) if n else 0
    return f"Average Metric: {total:.2f} / {n} ({pct}%)"


def case(scores):
    total = sum(scores)
    n = len(scores)
    return {
        "scores": scores,
        "sum": total,
        "sum_str": str(total),
        "score": round(100 * total / n, 2),
        "progress": progress_text(scores),
        "log": f"Average Metric: {total} / {n} ({round(100 * total / n, 1)}%)",
    }


def real_evaluate(scores):
    """Runs dspy.Evaluate over len(scores) examples whose metric returns `scores`."""
    n = len(scores)
    devset = [dspy.Example(question=f"q{i}", answer=str(i)).with_inputs("question") for i in range(n)]
    lm = DummyLM([{"answer": "x"}] * n)
    table = {f"q{i}": s for i, s in enumerate(scores)}

    def metric(example, pred, trace=None):
        return table[example.question]

    with dspy.context(lm=lm):
        res = dspy.Evaluate(devset=devset, metric=metric, num_threads=1)(dspy.Predict("question -> answer"))
    return res.score


def main():
    logging.disable(logging.CRITICAL)
    rng = random.Random(20240917)
    cases = []

    # Ties and classic boundaries.
    cases.append([True] * 97 + [False] * 703)  # 12.125 -> 12.12 (half-up would say 12.13)
    cases.append([True] * 9 + [False] * 3)
    cases.append([True] * 8 + [False] * 3)
    cases.append([True, False, 0.0, True])  # a failure (0.0) turns the sum into a float
    cases.append([0.1, 0.2, 0.3])
    cases.append([1, 2, 3])
    cases.append([0.0])
    cases.append([True])
    for n, k in [(8, 1), (16, 1), (40, 1), (200, 1), (400, 1), (800, 1), (1600, 3), (3, 1), (7, 3)]:
        cases.append([True] * k + [False] * (n - k))

    # F1-like floats.
    for _ in range(40):
        n = rng.randint(1, 120)
        cases.append([round(rng.random(), rng.choice([2, 3, 4, 17])) for _ in range(n)])
    # Mixed bools and failure scores.
    for _ in range(40):
        n = rng.randint(1, 200)
        cases.append([rng.choice([True, False, False, 0.0, 1]) for _ in range(n)])
    # Fractions that land near .xx5 boundaries.
    for _ in range(30):
        n = rng.choice([8, 16, 40, 80, 160, 200, 400, 800])
        cases.append([rng.choice([0.5, 0.25, 0.125, 1.0, 0.0]) for _ in range(n)])

    out = [case(s) for s in cases]

    # Tie the formula to the real Evaluate on a sample of cases.
    for c in out[:12] + out[20:24]:
        got = real_evaluate(c["scores"])
        assert got == c["score"], (got, c["score"])

    json.dump({"dspy": dspy.__version__, "python": sys.version.split()[0], "cases": out}, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
