"""Times DSPy 3.3.1's metrics for bench/metrics.exs on the pairs it writes.

usage: metrics_bench.py SECONDS PAIRS.jsonl

Each line of PAIRS is {"pred", "golds", "passages"}. For every metric, times passes over
all pairs for at least SECONDS and prints the fastest pass (the least disturbed by other
load on the machine):
    metric=<name> us_per_pair=<float> checksum=<sum of the scores over one pass>
"""
import contextlib
import io
import json
import sys
import time
import warnings

warnings.filterwarnings("ignore")
from dspy.evaluate import metrics as M  # noqa: E402

seconds = float(sys.argv[1])
with open(sys.argv[2], encoding="utf-8") as f:
    pairs = [json.loads(line) for line in f]

METRICS = {
    "normalize": lambda p: len(M.normalize_text(p["pred"])),
    "em": lambda p: M.EM(p["pred"], p["golds"]),
    "f1": lambda p: M.F1(p["pred"], p["golds"]),
    "hotpot_f1": lambda p: M.HotPotF1(p["pred"], p["golds"]),
    "passage_match": lambda p: M._passage_match(p["passages"], p["golds"]),
}

for name, fn in METRICS.items():
    with contextlib.redirect_stdout(io.StringIO()):  # F1's "rare edge case" notices
        checksum = sum(fn(p) for p in pairs)
        best = float("inf")
        deadline = time.perf_counter() + seconds
        while True:
            t0 = time.perf_counter()
            for p in pairs:
                fn(p)
            best = min(best, time.perf_counter() - t0)
            if time.perf_counter() >= deadline:
                break
        us = best / len(pairs) * 1e6
    print("metric=%s us_per_pair=%.4f checksum=%r" % (name, us, float(checksum)), flush=True)
