"""Times DSPy 3.3.1's ChatAdapter.format + parse on the case used by bench/adapter.exs.

Prints one line: `us_per_call=<float> iterations=<n>`. No LM is called.
"""
import sys
import time

import dspy


def main():
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 2.0
    sig = dspy.Signature("question, context -> answer", "Answer the question using the context.")
    demos = [
        {"question": f"Question number {i}?", "context": f"Some context for demo {i}. " * 5, "answer": f"Answer {i}"}
        for i in range(4)
    ]
    inputs = {"question": "What is the capital of France?", "context": "France is a country in Europe. " * 5}
    completion = "[[ ## answer ## ]]\nParis\n\n[[ ## completed ## ]]"
    adapter = dspy.ChatAdapter()
    for _ in range(200):
        adapter.format(sig, demos, inputs)
        adapter.parse(sig, completion)
    n = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(100):
            adapter.format(sig, demos, inputs)
            adapter.parse(sig, completion)
        n += 100
        if time.perf_counter() >= deadline:
            break
    elapsed = time.perf_counter() - start
    print(f"us_per_call={elapsed / n * 1e6:.3f} iterations={n}")


if __name__ == "__main__":
    main()
