#!/usr/bin/env python3
"""Load program state files saved by DSPex into real DSPy programs and check them.

Usage: check_dspy_load.py DIR

DIR holds files written by DSPex.Program.save/2 for programs of known shapes:

  predict.json         Predict('question -> answer')
  cot.json             ChainOfThought('question -> answer')
  two_predictors.json  a Module with rewrite=Predict('question -> query') and
                       answer=ChainOfThought('query, question -> answer')

For each file present: DSPy's own `program.load(path)` must accept it, and the
loaded program's `dump_state()` must equal the file's content (minus `metadata`),
i.e. every predictor's demos, instructions, field prefixes/descriptions and LM state
were taken over exactly. The loaded program is then run once with DSPy's DummyLM to
show it works. Prints one line per file and exits non-zero on any mismatch.
"""
import json
import sys
from pathlib import Path

import dspy
from dspy.utils.dummies import DummyLM


class Two(dspy.Module):
    def __init__(self):
        super().__init__()
        self.rewrite = dspy.Predict("question -> query")
        self.answer = dspy.ChainOfThought("query, question -> answer")

    def forward(self, question):
        q = self.rewrite(question=question).query
        return self.answer(query=q, question=question)


SHAPES = {
    "predict.json": (lambda: dspy.Predict("question -> answer"),
                     [{"answer": "Paris"}], {"question": "Capital of France?"}),
    "cot.json": (lambda: dspy.ChainOfThought("question -> answer"),
                 [{"reasoning": "Because.", "answer": "Paris"}], {"question": "Capital of France?"}),
    "two_predictors.json": (Two, [{"query": "france capital"}, {"reasoning": "Known.", "answer": "Paris"}],
                            {"question": "Capital of France?"}),
}


def normalize(state):
    """JSON round trip so tuples/lists and key types compare like the file."""
    return json.loads(json.dumps(state))


def check(path: Path) -> list[str]:
    make, answers, inputs = SHAPES[path.name]
    saved = json.loads(path.read_text())
    saved.pop("metadata", None)

    program = make()
    program.load(str(path))
    loaded = normalize(program.dump_state())

    problems = []
    if loaded != saved:
        for key in sorted(set(loaded) | set(saved)):
            if loaded.get(key) != saved.get(key):
                problems.append(f"{key}: dspy has {json.dumps(loaded.get(key))[:300]} "
                                f"but the file has {json.dumps(saved.get(key))[:300]}")

    # It runs: DummyLM answers each predictor in turn; the LM saved in the file (if any)
    # is overridden for the run.
    with dspy.context(lm=DummyLM(answers)):
        for _, pred in program.named_predictors():
            pred.lm = None
        out = program(**inputs)
    if out.answer != "Paris":
        problems.append(f"run: expected answer 'Paris', got {out.answer!r}")
    return problems


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    folder = Path(sys.argv[1])
    failed = 0
    checked = 0
    for name in SHAPES:
        path = folder / name
        if not path.exists():
            continue
        checked += 1
        try:
            problems = check(path)
        except Exception as e:  # noqa: BLE001 - report any loader failure
            problems = [f"{type(e).__name__}: {e}"]
        if problems:
            failed += 1
            print(f"FAIL {name}")
            for p in problems:
                print(f"  - {p}")
        else:
            print(f"ok   {name}: DSPy {dspy.__version__} loaded it; state identical; program runs")
    if checked == 0:
        print(f"no known files in {folder}")
        return 2
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
