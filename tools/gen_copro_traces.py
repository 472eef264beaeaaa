"""Golden traces of DSPy 3.3.1's COPRO for DSPex.Optimizers.COPRO.

Run with:  /work/venv/bin/python tools/gen_copro_traces.py

Every run is a real `dspy.COPRO(...).compile(...)` with the scripted LMs of
tools/gen_mipro_traces.py (the task model answers from a hash of the exact prompt, the
prompt model by signature and call count; COPRO's proposals repeat in pairs and every
third is quoted, so DSPy's strip, its "keep unless strictly better" rule and its dedup
are all exercised).

Writes test/fixtures/copro/traces.json:

  {"dspy": "3.3.1", "python": "3.11.7",
   "runs": [{"name", "program", "n_train", "data_seed",
             "init": {"breadth", "depth", "init_temperature", "track_stats"},
             "trainset": [{"question", "answer"}],
             "prompt_requests": [{"messages", "n", "temperature"}],
             "evaluations": [{"instructions": [str per predictor],
                              "prefixes": [str per predictor], "score"}],
             "candidate_programs": [{"score", "instruction", "prefix", "depth",
                                     "program": dump_state()}],
             "total_calls", "best_program": dump_state(),
             "results_best" / "results_latest": [per predictor {"depth", "max",
                                                 "average", "min", "std"}] (track_stats)}]}
"""

import json
import os
import sys

import dspy
import dspy.teleprompt.copro_optimizer as copro_mod

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_mipro_traces as g  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "test", "fixtures", "copro")


def run(name, kind, n_train, data_seed, init):
    g.STATE["counters"] = {}
    g.STATE["prompt_requests"] = []
    g.STATE["task_calls"] = 0
    trainset = g.dataset(n_train, data_seed)
    evaluations = []
    base = copro_mod.Evaluate

    class Recording(base):
        def __call__(self, program, *a, **k):
            res = super().__call__(program, *a, **k)
            preds = program.predictors()
            evaluations.append(
                {
                    "instructions": [p.signature.instructions for p in preds],
                    "prefixes": [list(p.signature.fields.values())[-1].json_schema_extra["prefix"] for p in preds],
                    "score": res.score,
                }
            )
            return res

    copro_mod.Evaluate = Recording
    try:
        task, prompt = g.ScriptedLM("task"), g.ScriptedLM("prompt")
        prog = g.program(kind)
        opt = dspy.COPRO(prompt_model=prompt, metric=g.metric, **init)
        with dspy.context(lm=task):
            best = opt.compile(prog, trainset=trainset, eval_kwargs={"num_threads": 1, "display_progress": False})
    finally:
        copro_mod.Evaluate = base

    def stats(d):
        ids = [id(p) for p in prog.predictors()]
        # results are keyed by the predictors of COPRO's own deepcopy: keep their order
        return [v for v in d.values()] if len(d) == len(ids) else None

    out = {
        "name": name,
        "program": kind,
        "n_train": n_train,
        "data_seed": data_seed,
        "init": init,
        "trainset": [{"question": ex.question, "answer": ex.answer} for ex in trainset],
        "prompt_requests": [{k: r[k] for k in ("messages", "n", "temperature")} for r in g.STATE["prompt_requests"]],
        "evaluations": evaluations,
        "candidate_programs": [
            {
                "score": c["score"],
                "instruction": c["instruction"],
                "prefix": c["prefix"],
                "depth": c["depth"],
                "program": c["program"].dump_state(),
            }
            for c in best.candidate_programs
        ],
        "total_calls": best.total_calls,
        "best_program": best.dump_state(),
    }
    if init.get("track_stats"):
        out["results_best"] = stats(best.results_best)
        out["results_latest"] = stats(best.results_latest)
    return out


def main():
    cases = [
        ("predict_b4_d3", "predict", 24, 21, {"breadth": 4, "depth": 3, "init_temperature": 1.4}),
        ("cot_b3_d2_stats", "cot", 20, 22, {"breadth": 3, "depth": 2, "init_temperature": 1.0, "track_stats": True}),
        ("two_b3_d2", "two", 16, 23, {"breadth": 3, "depth": 2, "init_temperature": 1.4, "track_stats": True}),
        ("predict_b2_d1", "predict", 12, 24, {"breadth": 2, "depth": 1, "init_temperature": 0.7}),
    ]
    runs = []
    for name, kind, n, dseed, init in cases:
        print(f"run {name}", file=sys.stderr)
        runs.append(run(name, kind, n, dseed, init))
    doc = {"dspy": dspy.__version__, "python": ".".join(map(str, sys.version_info[:3])), "runs": runs}
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "traces.json"), "w") as f:
        json.dump(doc, f, indent=1)
    print(f"wrote {len(runs)} runs", file=sys.stderr)


if __name__ == "__main__":
    main()
