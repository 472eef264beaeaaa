"""Times dspy.Signature("<string>") for bench/signature.exs. Prints us_per_call=<float>.

usage: signature_bench.py SECONDS SIGNATURE
"""
import sys
import time
import warnings

warnings.filterwarnings("ignore")
import dspy  # noqa: E402

seconds = float(sys.argv[1])
sig = sys.argv[2]
for _ in range(50):
    dspy.Signature(sig)
n = 0
start = time.perf_counter()
deadline = start + seconds
while time.perf_counter() < deadline:
    for _ in range(20):
        dspy.Signature(sig)
    n += 20
print("us_per_call=%.3f" % ((time.perf_counter() - start) / n * 1e6))
