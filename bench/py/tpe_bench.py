"""optuna's TPESampler(seed=9, multivariate=True) ask time on the same MIPROv2-shaped
studies as bench/tpe_bench.c (run by bench/tpe.exs). Times study.ask() plus the
suggest_categorical calls (what MIPROv2's objective pays); prints the same FNV-1a
digest of the first study's proposals.

Usage: python tpe_bench.py P N_INSTR N_DEMOS TRIALS SECONDS
"""
import sys
import time
import warnings

import optuna
from optuna.distributions import CategoricalDistribution
from optuna.samplers import TPESampler

optuna.logging.set_verbosity(optuna.logging.ERROR)
warnings.filterwarnings("ignore")


def score(v):
    return sum((x * 37 + i * 11) % 17 for i, x in enumerate(v)) / 17.0 * 100.0 / len(v)


def main():
    preds, ni, nd, trials = (int(a) for a in sys.argv[1:5])
    seconds = float(sys.argv[5])
    params = []
    for i in range(preds):
        params.append((f"{i}_predictor_instruction", ni))
        if nd > 0:
            params.append((f"{i}_predictor_demos", nd))
    dists = {n: CategoricalDistribution(range(c)) for n, c in params}
    digest, asked, spent, studies = 1469598103934665603, 0, 0.0, 0
    start = time.perf_counter()
    while True:
        study = optuna.create_study(direction="maximize", sampler=TPESampler(seed=9, multivariate=True))
        zero = [0] * len(params)
        study.add_trial(optuna.trial.create_trial(
            params={n: 0 for n, _ in params}, distributions=dists, value=score(zero)))
        for _ in range(trials):
            t0 = time.perf_counter()
            trial = study.ask()
            v = [trial.suggest_categorical(n, range(c)) for n, c in params]
            spent += time.perf_counter() - t0
            asked += 1
            if studies == 0:
                for x in v:
                    digest = ((digest ^ x) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
            study.tell(trial, score(v))
        studies += 1
        if time.perf_counter() - start >= seconds:
            break
    print(f"studies={studies} asks={asked} us_per_ask={spent / asked * 1e6:.3f} digest={digest:016x}")


if __name__ == "__main__":
    main()
