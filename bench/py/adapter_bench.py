"""Times DSPy 3.3.1's ChatAdapter on the cases of bench/adapter.exs. No LM is called.

usage: adapter_bench.py SECONDS [ROUNDS] [CASE]

CASE `demos` (default): format + parse, signature "question, context -> answer" with
instructions, 4 demos. CASE `floats`: format of one list[float] input of 1536 floats.
The time is split into ROUNDS rounds (default 5) and the best round's time per call is
printed, as bench/adapter.exs does for DSPex, so that both sides are measured the same way
on a shared, loaded machine. Prints `us_per_call=<best> mean_us=<mean> iterations=<n>`.
"""
import sys
import time

import dspy


def demos_case():
    sig = dspy.Signature("question, context -> answer", "Answer the question using the context.")
    demos = [
        {"question": f"Question number {i}?", "context": f"Some context for demo {i}. " * 5, "answer": f"Answer {i}"}
        for i in range(4)
    ]
    inputs = {"question": "What is the capital of France?", "context": "France is a country in Europe. " * 5}
    completion = "[[ ## answer ## ]]\nParis\n\n[[ ## completed ## ]]"
    adapter = dspy.ChatAdapter()

    def one():
        adapter.format(sig, demos, inputs)
        assert adapter.parse(sig, completion) == {"answer": "Paris"}

    return one


def floats_case():
    sig = dspy.Signature("x: list[float] -> y")
    inputs = {"x": [i * 0.5 for i in range(1, 1537)]}
    adapter = dspy.ChatAdapter()
    return lambda: adapter.format(sig, [], inputs)


def main():
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 2.0
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    one = {"demos": demos_case, "floats": floats_case}[sys.argv[3] if len(sys.argv) > 3 else "demos"]()
    for _ in range(50):
        one()
    best, total, n = float("inf"), 0.0, 0
    for _ in range(rounds):
        k = 0
        start = time.perf_counter()
        deadline = start + seconds / rounds
        while True:
            for _ in range(20):
                one()
            k += 20
            if time.perf_counter() >= deadline:
                break
        elapsed = time.perf_counter() - start
        best = min(best, elapsed / k)
        total += elapsed
        n += k
    print(f"us_per_call={best * 1e6:.3f} mean_us={total / n * 1e6:.3f} iterations={n}")


if __name__ == "__main__":
    main()
