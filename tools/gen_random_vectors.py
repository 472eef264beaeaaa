"""Golden vectors for DSPex's CPython-identical random.Random (c_src/core/optim/pyrandom.c,
DSPex.Random), produced by the real CPython `random` module.

Run with:  python3 tools/gen_random_vectors.py      (any CPython >= 3.11, no packages)

Writes test/fixtures/random/pyrandom.json. Deterministic and rerunnable: the programs of
calls are drawn from a separate, fixed generator.

Format:
  {"python": "3.11.7",
   "cases": [{"seed": {"int": "-123"} | {"str": "abc", "utf8_hex": "616263", "as_int": "..."},
              "state": SHA256,                      # state right after seeding
              "ops": [OP, ...]}]}
  OP = {"op": NAME, ...arguments..., "out": RESULT | "error": "ValueError", "state": SHA256}
  SHA256 = hex SHA-256 of getstate()[1] packed as 625 little-endian uint32 (the 624
  words, then the position): it proves the exact number of words each call consumed.
  All integers are decimal strings and all floats are repr() strings, so no reader
  loses precision.

  NAME and arguments (population = range(n) everywhere):
    random                       -> float
    uniform a b                  -> float
    getrandbits k                -> int
    randbelow n                  -> int        (Random._randbelow)
    randrange start stop step    -> int        (stop null: randrange(start))
    randint a b                  -> int
    choice n                     -> int
    shuffle n                    -> [int]      (shuffle(list(range(n))))
    sample n k                   -> [int]
    choices n k                  -> [int]      (no weights)
    choices_w weights k          -> [int]      (weights: [float])
"""

import hashlib
import json
import os
import random
import struct
import sys

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "test", "fixtures", "random")


def state_hash(r):
    st = r.getstate()[1]
    return hashlib.sha256(struct.pack("<625I", *st)).hexdigest()


def run(r, op):
    name = op["op"]
    a = {k: v for k, v in op.items() if k != "op"}
    if name == "random":
        return repr(r.random())
    if name == "uniform":
        return repr(r.uniform(float(a["a"]), float(a["b"])))
    if name == "getrandbits":
        return str(r.getrandbits(int(a["k"])))
    if name == "randbelow":
        return str(r._randbelow(int(a["n"])))
    if name == "randrange":
        if a["stop"] is None:
            return str(r.randrange(int(a["start"])))
        return str(r.randrange(int(a["start"]), int(a["stop"]), int(a["step"])))
    if name == "randint":
        return str(r.randint(int(a["a"]), int(a["b"])))
    if name == "choice":
        return str(r.choice(range(int(a["n"]))))
    if name == "shuffle":
        x = list(range(int(a["n"])))
        r.shuffle(x)
        return [str(v) for v in x]
    if name == "sample":
        return [str(v) for v in r.sample(range(int(a["n"])), int(a["k"]))]
    if name == "choices":
        return [str(v) for v in r.choices(range(int(a["n"])), k=int(a["k"]))]
    if name == "choices_w":
        w = [float(x) for x in a["weights"]]
        return [str(v) for v in r.choices(range(len(w)), weights=w, k=int(a["k"]))]
    raise AssertionError(name)


def random_op(g):
    """One call with arguments, drawn from the program generator g."""
    kind = g.choice(
        ["random", "uniform", "getrandbits", "randbelow", "randrange", "randrange1", "randint",
         "choice", "shuffle", "sample", "sample", "choices", "choices_w"])
    big = [1, 2, 3, 5, 7, 10, 100, 1000, 2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**32 + 1,
           10**9 + 1, 2**53 + 1, 2**63 - 1, 2**63, 2**64 - 1]
    if kind == "random":
        return {"op": "random"}
    if kind == "uniform":
        a = g.choice([0.0, -1.5, 1e-3, 3.0, -1e10])
        b = g.choice([1.0, 2.5, -7.25, 1e10])
        return {"op": "uniform", "a": repr(a), "b": repr(b)}
    if kind == "getrandbits":
        return {"op": "getrandbits", "k": str(g.choice([0, 1, 5, 31, 32, 33, 53, 63, 64]))}
    if kind == "randbelow":
        return {"op": "randbelow", "n": str(g.choice(big))}
    if kind == "randrange1":
        return {"op": "randrange", "start": str(g.choice(big + [0, -5])), "stop": None, "step": "1"}
    if kind == "randrange":
        lo = g.choice([-2**63, -10**12, -100, -7, 0, 3, 50])
        hi = g.choice([-50, -1, 0, 1, 9, 100, 10**12, 2**63 - 1])
        step = g.choice([1, 1, 2, 3, 7, -1, -2, -5, 1000, -(10**6)])
        return {"op": "randrange", "start": str(lo), "stop": str(hi), "step": str(step)}
    if kind == "randint":
        a = g.choice([-2**63, -10, 0, 1, 5])
        b = g.choice([-3, 0, 1, 4, 6, 10**9, 2**62, 2**63 - 2])
        return {"op": "randint", "a": str(a), "b": str(b)}
    if kind == "choice":
        return {"op": "choice", "n": str(g.choice([0, 1, 2, 6, 10, 10**6]))}
    if kind == "shuffle":
        return {"op": "shuffle", "n": str(g.choice([0, 1, 2, 3, 10, 31, 100]))}
    if kind == "sample":
        # Around both strategies: k <= 5 keeps setsize 21; k > 5 grows it by 4**ceil(log4 3k).
        n = g.choice([0, 3, 10, 20, 21, 22, 30, 50, 85, 86, 100, 341, 342, 1000, 10**6, 2**40])
        k = g.choice([0, 1, 3, 5, 6, 7, 10, 21, 22, 28, 29, 35, 100])
        if g.random() < 0.1:
            k = n + 1  # ValueError: sample larger than population
        return {"op": "sample", "n": str(n), "k": str(min(k, n + 1))}
    if kind == "choices":
        return {"op": "choices", "n": str(g.choice([1, 2, 5, 13, 1000])), "k": str(g.choice([0, 1, 4, 20]))}
    if kind == "choices_w":
        m = g.choice([1, 2, 3, 6, 12])
        w = [g.choice([0.0, 0.5, 1.0, 2.0, 3.7, 1e-3, 10.0, 2.718281828459045]) for _ in range(m)]
        if g.random() < 0.1:
            w = [0.0] * m  # ValueError: total of weights must be greater than zero
        return {"op": "choices_w", "weights": [repr(x) for x in w], "k": str(g.choice([1, 5, 17]))}
    raise AssertionError(kind)


def main():
    g = random.Random(20260511)
    seeds = [{"int": str(s)} for s in
             [0, 1, 9, 42, -3, -1, 2**32 - 1, 2**32, 2**64 + 5, -(10**40), 12345678901234567890123,
              2**2000 + 17]]
    # as_int: the integer CPython seeds a str with (version 2: text || sha512(text)), so
    # C tests can seed it as an int; SHA-512 itself is :crypto's job on the BEAM.
    seeds += [{"str": s, "utf8_hex": s.encode().hex(),
               "as_int": str(int.from_bytes(s.encode() + hashlib.sha512(s.encode()).digest(), "big"))}
              for s in
              ["abc", "", "héllo wörld ✓", "0" * 64, hashlib.sha256(b"dspy").hexdigest(), "x" * 300,
               "\x00\x00lead"]]
    cases = []
    for seed in seeds:
        r = random.Random(int(seed["int"]) if "int" in seed else seed["str"])
        case = {"seed": seed, "state": state_hash(r), "ops": []}
        n_ops = 60 if len(cases) < 6 else 25
        for _ in range(n_ops):
            op = random_op(g)
            try:
                op["out"] = run(r, op)
            except ValueError:
                op["error"] = "ValueError"
            except IndexError:
                op["error"] = "IndexError"
            op["state"] = state_hash(r)
            case["ops"].append(op)
        cases.append(case)
    os.makedirs(OUT, exist_ok=True)
    doc = {"python": sys.version.split()[0], "cases": cases}
    with open(os.path.join(OUT, "pyrandom.json"), "w") as f:
        json.dump(doc, f, indent=1, ensure_ascii=False)
        f.write("\n")
    n = sum(len(c["ops"]) for c in cases)
    print(f"wrote {len(cases)} cases, {n} calls, Python {doc['python']}")


if __name__ == "__main__":
    main()
