"""Golden traces for DSPex's TPE sampler (c_src/core/optim/tpe.c), produced by the real
optuna `TPESampler(seed=seed, multivariate=True)` -- the sampler DSPy's MIPROv2 builds.

Run with:  /work/venv/bin/python tools/gen_tpe_traces.py
           (a venv with `pip install optuna`; the optuna and numpy versions are recorded)

Writes test/fixtures/tpe/traces.json. Deterministic and rerunnable: every objective
value is scripted from a fixed generator, so the C test can replay the same values and
must propose the same trials.

Most traces drive optuna exactly the way MIPROv2 does (dspy/teleprompt/
mipro_optimizer_v2.py, reference §9.4): `create_study(direction="maximize")`, the
default program added first as a COMPLETE trial with every index 0, then
`study.optimize(objective, n_trials=N)` where the objective suggests, per predictor,
"{i}_predictor_instruction" and (few-shot) "{i}_predictor_demos", and in minibatch mode
adds a full-evaluation trial (`study.add_trial`) for the best-mean untried parameter
group every 6th trial and on the last one. Others use optuna's ask/tell interface with
several trials in flight (constant_liar), failed trials (NaN objective), minimize, and
non-default n_startup_trials / n_ei_candidates.

Format:
  {"optuna": "5.0.0", "numpy": "2.4.6", "python": "3.11.7",
   "traces": [{"name": str, "seed": int, "direction": "maximize" | "minimize",
               "n_startup_trials": int, "n_ei_candidates": int,
               "params": [{"name": str, "choices": int}],      # suggest order
               "events": [EVENT]}]}
  EVENT = {"op": "add",  "number": int, "params": [int], "value": float}
        | {"op": "ask",  "number": int, "params": [int]}       # what optuna proposed
        | {"op": "tell", "number": int, "value": float | null}  # null: NaN, a FAIL
"""

import json
import math
import os
import random
import sys
import warnings

import numpy as np
import optuna
from optuna.distributions import CategoricalDistribution
from optuna.samplers import TPESampler

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "test", "fixtures", "tpe")

optuna.logging.set_verbosity(optuna.logging.ERROR)
warnings.filterwarnings("ignore")


def mipro_params(n_pred, n_instr, n_demos):
    params = []
    for i in range(n_pred):
        params.append((f"{i}_predictor_instruction", n_instr))
        if n_demos:
            params.append((f"{i}_predictor_demos", n_demos))
    return params


def scorer(kind, g, params):
    """A scripted objective: value for a parameter tuple (g: the trace's generator)."""
    if kind == "mb35":  # minibatch of 35 examples, percentage rounded like Evaluate
        return lambda p: round(100.0 * g.randint(0, 35) / 35, 2)
    if kind == "ties":  # few distinct values: lots of equal scores
        return lambda p: g.choice([40.0, 50.0, 50.0, 60.0])
    if kind == "constant":
        return lambda p: 50.0
    if kind == "signal":  # some parameters are better, plus noise, on a 2-decimal grid
        pref = [g.randrange(c) for _, c in params]
        return lambda p: round(sum(30.0 if a == b else 0.0 for a, b in zip(p, pref)) / len(p)
                               + g.choice([0.0, 5.0, 10.0, 20.0]), 2)
    if kind == "failing":  # NaN now and then: optuna marks those trials FAIL
        return lambda p: float("nan") if g.random() < 0.2 else round(g.uniform(0, 100), 2)
    if kind == "floats":  # arbitrary doubles, negative too
        return lambda p: g.uniform(-1.0, 1.0)
    raise AssertionError(kind)


def mipro_trace(name, seed, n_pred, n_instr, n_demos, n_trials, minibatch, kind, case_seed):
    g = random.Random(case_seed)
    params = mipro_params(n_pred, n_instr, n_demos)
    dists = {n: CategoricalDistribution(range(c)) for n, c in params}
    score = scorer(kind, g, params)
    study = optuna.create_study(direction="maximize", sampler=TPESampler(seed=seed, multivariate=True))
    events = []

    def add(p, value):
        study.add_trial(optuna.trial.create_trial(
            params={n: v for (n, _), v in zip(params, p)}, distributions=dists, value=value))
        events.append({"op": "add", "number": len(study.trials) - 1, "params": list(p), "value": value})

    add([0] * len(params), score([0] * len(params)))  # the default program, fully evaluated
    groups, fully = {}, set()
    adjusted = n_trials + n_trials // 5 + 1 + (1 if n_trials % 5 else 0)

    def objective(trial):
        trial_num = trial.number + 1
        p = [trial.suggest_categorical(n, range(c)) for n, c in params]
        events.append({"op": "ask", "number": trial.number, "params": p})
        value = score(p)
        groups.setdefault(tuple(p), []).append(value)
        if minibatch and (trial_num % 6 == 0 or trial_num == adjusted - 1):
            cands = [(sum(v) / len(v), k) for k, v in groups.items() if k not in fully]
            if cands:
                best = max(cands, key=lambda t: t[0])[1]  # first among equal means
                fully.add(best)
                add(list(best), score(list(best)))
        events.append({"op": "tell", "number": trial.number, "value": None if math.isnan(value) else value})
        return value

    study.optimize(objective, n_trials=n_trials)
    return {"name": name, "seed": seed, "direction": "maximize", "n_startup_trials": 10,
            "n_ei_candidates": 24, "params": [{"name": n, "choices": c} for n, c in params],
            "events": events}


def asktell_trace(name, seed, params, n_trials, batch, kind, case_seed, direction="maximize",
                  n_startup=10, n_ei=24):
    """ask/tell with `batch` trials in flight at a time (optuna's constant liar counts the
    pending ones), told in a scripted order."""
    g = random.Random(case_seed)
    score = scorer(kind, g, params)
    sampler = TPESampler(seed=seed, multivariate=True, n_startup_trials=n_startup, n_ei_candidates=n_ei)
    study = optuna.create_study(direction=direction, sampler=sampler)
    events = []
    done = 0
    while done < n_trials:
        pending = []
        for _ in range(min(batch, n_trials - done)):
            t = study.ask()
            p = [t.suggest_categorical(n, list(range(c))) for n, c in params]
            events.append({"op": "ask", "number": t.number, "params": p})
            pending.append((t, p))
        g.shuffle(pending)
        for t, p in pending:
            value = score(p)
            study.tell(t, value)
            events.append({"op": "tell", "number": t.number, "value": None if math.isnan(value) else value})
        done += len(pending)
    return {"name": name, "seed": seed, "direction": direction, "n_startup_trials": n_startup,
            "n_ei_candidates": n_ei, "params": [{"name": n, "choices": c} for n, c in params],
            "events": events}


def main():
    traces = []
    g = random.Random(7)
    # MIPROv2 shapes: auto light/medium/heavy-like sizes, 1-3 predictors, few-shot and
    # zero-shot, minibatch and full evaluation, DSPy's default seed 9 (also what seed=0
    # becomes) and others.
    shapes = [
        ("light_1pred", 9, 1, 3, 6, 10, True, "mb35"),
        ("light_1pred_full", 9, 1, 3, 6, 10, False, "mb35"),
        ("light_2pred", 9, 2, 3, 6, 20, True, "mb35"),
        ("light_3pred", 9, 3, 3, 6, 31, True, "signal"),
        ("medium_1pred", 9, 1, 6, 12, 18, True, "mb35"),
        ("medium_2pred", 42, 2, 6, 12, 28, True, "ties"),
        ("heavy_1pred", 9, 1, 9, 18, 27, True, "signal"),
        ("heavy_3pred", 2024, 3, 9, 18, 50, True, "mb35"),
        ("zeroshot_1pred", 9, 1, 6, 0, 9, True, "mb35"),
        ("zeroshot_3pred", 1, 3, 12, 0, 43, False, "signal"),
        ("wide_30", 123, 2, 30, 30, 60, True, "mb35"),
        ("all_ties", 9, 2, 6, 12, 40, True, "constant"),
        ("few_values", 5, 1, 6, 12, 60, False, "ties"),
        ("one_instruction", 9, 2, 1, 12, 30, True, "signal"),  # 1-choice params excluded
        ("seed_max_u32", 2**32 - 1, 2, 7, 13, 35, True, "mb35"),
        ("seed_0", 0, 1, 8, 8, 25, False, "signal"),
    ]
    for i, (name, seed, n_pred, n_instr, n_demos, n_trials, mb, kind) in enumerate(shapes):
        traces.append(mipro_trace(name, seed, n_pred, n_instr, n_demos, n_trials, mb, kind, 100 + i))
    # Random MIPRO-shaped studies.
    for i in range(24):
        n_pred = g.randint(1, 3)
        n_instr = g.randint(1, 30)
        n_demos = g.choice([0, g.randint(6, 30)])
        if n_instr == 1 and n_demos == 0:
            n_demos = 6
        traces.append(mipro_trace(f"random_{i}", g.randrange(2**32), n_pred, n_instr, n_demos,
                                  g.randint(10, 60), g.random() < 0.7,
                                  g.choice(["mb35", "ties", "signal", "mb35"]), 1000 + i))
    # Beyond MIPROv2's sequential use.
    traces.append(mipro_trace("long_270", 11, 1, 4, 5, 270, False, "signal", 3000))  # gamma cap 25
    traces.append(mipro_trace("twelve_predictors", 77, 12, 3, 0, 30, False, "signal", 3001))  # "10_" < "2_"
    traces.append(asktell_trace("parallel_4", 9, mipro_params(2, 6, 12), 40, 4, "mb35", 3002))
    traces.append(asktell_trace("parallel_8", 31, mipro_params(1, 12, 6), 48, 8, "ties", 3003))
    traces.append(asktell_trace("failures", 9, mipro_params(2, 5, 7), 45, 1, "failing", 3004))
    traces.append(asktell_trace("failures_parallel", 17, mipro_params(1, 9, 9), 40, 3, "failing", 3005))
    traces.append(asktell_trace("minimize", 9, mipro_params(2, 6, 6), 40, 1, "floats", 3006,
                                direction="minimize"))
    traces.append(asktell_trace("startup_3_ei_8", 4, mipro_params(2, 10, 10), 40, 1, "signal", 3007,
                                n_startup=3, n_ei=8))
    traces.append(asktell_trace("startup_1_ei_1", 8, mipro_params(1, 25, 0), 30, 2, "floats", 3008,
                                n_startup=1, n_ei=1))
    os.makedirs(OUT, exist_ok=True)
    doc = {"optuna": optuna.__version__, "numpy": np.__version__, "python": sys.version.split()[0],
           "traces": traces}
    with open(os.path.join(OUT, "traces.json"), "w") as f:
        json.dump(doc, f, separators=(",", ":"))
        f.write("\n")
    asks = sum(1 for t in traces for e in t["events"] if e["op"] == "ask")
    print(f"wrote {len(traces)} traces, {asks} proposed trials; optuna {optuna.__version__}, "
          f"numpy {np.__version__}")


if __name__ == "__main__":
    main()
