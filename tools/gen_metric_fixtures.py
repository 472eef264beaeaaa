"""Golden fixtures for DSPex.Metrics, produced by the real DSPy 3.3.1 metrics.

Run with the venv that has dspy==3.3.1 (Python 3.11):

    /work/venv/bin/python tools/gen_metric_fixtures.py

Writes (deterministic: fixed seeds, sorted output; rerun and `git diff` to check):

  test/fixtures/metrics/cases.jsonl     one (prediction, golds) case per line:
      {"id", "pred", "golds": [str], "norm_pred", "norm_golds": [str], "em": bool,
       "f1", "hotpot_f1", "precision"}
      f1/hotpot_f1 are DSPy's F1 / HotPotF1 over the list; precision is the max of
      precision_score over the list. Scores are "0" (DSPy's int 0) or the IEEE-754
      double as 16 hex digits.
  test/fixtures/metrics/passages.jsonl  {"id", "passages": [str], "answers": [str],
      "match": bool} = dspy.evaluate.metrics._passage_match(passages, answers)
  test/fixtures/metrics/sweep.jsonl     every code point U+0000..U+10FFFF (no surrogates),
      256 per line inside a context snippet (see `sweep_text`); the line stores the range
      and the SHA-256 (first 24 hex digits) of normalize_text(text) and of "\\x1f".join(DPR_normalize(
      normalize_text(text))), so the whole Unicode range is covered in a few hundred KB.
  test/fixtures/metrics/semantic/*.json golden prompts of SemanticF1 /
      CompleteAndGrounded (DummyLM), see `semantic_fixtures`.
"""

import contextlib
import hashlib
import io
import json
import os
import random
import struct
import sys
import unicodedata

import dspy
from dspy.dsp.utils.dpr import DPR_normalize
from dspy.evaluate import metrics as M

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "test", "fixtures", "metrics")

# ---------------------------------------------------------------------------------
# Fragment pools

WORDS = ("paris france eiffel tower capital city river seine london york yorkshire new "
         "answer question cat dog pear apple plum red blue green one two three four 1999 "
         "2000 42 3.14 node js e-mail don't it's rock'n'roll o'neill").split()
ARTICLES = ["a", "an", "the", "A", "An", "AN", "The", "THE", "tHe", "aN"]
ASCII_PUNCT = list("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")
UNI_PUNCT = ["\u2014", "\u2013", "\u201c", "\u201d", "\u2018", "\u2019", "\u00ab", "\u00bb", "\u00bf",
             "\u00a1", "\u3002", "\uff01", "\u2026", "\u00b7", "\u2022", "\u2032", "\u05be", "\u060c",
             "\uff0c", "\u3001", "\u2e3a", "\u00a7", "\u00b6"]
SPACES = [" ", "  ", "\t", "\n", "\r\n", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x1f", "\x85",
          "\u00a0", "\u1680", "\u2000", "\u2007", "\u200a", "\u2028", "\u2029", "\u202f", "\u205f",
          "\u3000"]
NOT_SPACES = ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u180e", "\u00ad", "\u200e", "\u200f",
              "\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\x00", "\x7f"]
ACCENTED = ["caf\u00e9", "CAF\u00c9", "cafe\u0301", "na\u00efve", "\u00c5ngstr\u00f6m", "\u00e0 la", "\u00e1",
            "\u00c1", "a\u0301", "the\u0301", "Th\u00e9", "\u00c5sa", "a\u00f1o", "se\u00f1or", "\u1ec7",
            "e\u0323\u0302", "e\u0302\u0323", "\u01c4", "\u01c5", "\u01c6", "\u1e9e", "\u00df",
            "o\u0308\u0301", "q\u0307\u0323", "\u0041\u030a", "\u212b", "\u212a", "\u2126"]
GREEK = ["\u039f\u0394\u039f\u03a3", "\u03a3\u0391\u03a3", "\u03a3", "\u03a3\u03a3", "\u0391\u03a3'",
         "\u0391\u03a3\u0301", "\u0391\u03a3\u0301\u0301", "\u1d43\u03a3", "'\u03a3'", "\u03a3.",
         "A\u03a3B", "A\u03a3 B", "\u039f\u03a3\u0399\u03a3", "\u1f08\u03a3", "\u0386\u03a3\u03a3\u0386",
         "\u03b1\u03a3\u00b7\u03b2", "\u03b1\u03a3\u2019", "\u03b1\u03a3\u200b\u03b2", "\u03b1\u03a3\u00ad",
         "1\u03a3", "\u03a3\u03c2\u03c3", "\u0345\u03a3", "A\u0345\u03a3", "\u03b1\u03a3\u0345"]
TURKISH = ["\u0130stanbul", "\u0131\u015f\u0131k", "I\u0307", "D\u0130YARBAKIR", "\u0130", "i\u0307", "\u0049",
           "\u0130\u0323", "KIRIK", "\u011f\u00fc\u015f\u00f6\u00e7"]
CJK = ["\u6771\u4eac", "\u6771\u4eac\u30bf\u30ef\u30fc", "\u5317\u4eac\u5e02", "\u3053\u3093\u306b\u3061\u306f",
       "\ud55c\uad6d\uc5b4", "\uac00", "\ud7a3", "\u1100\u1161", "\u0e2a\u0e27\u0e31\u0e2a\u0e14\u0e35",
       "\u4e2d\u6587\uff0c\u82f1\u6587", "\uff34\uff48\uff45", "\uff11\uff12\uff13", "\ufb01", "\u00b2",
       "\u00bd", "\u2460", "\u216b", "\u0661\u0662", "\u0915\u094d\u0937", "\u05e9\u05dc\u05d5\u05dd",
       "\u0645\u0631\u062d\u0628\u0627"]
EMOJI = ["\U0001f600", "\U0001f44d\U0001f3fd", "\U0001f468\u200d\U0001f469\u200d\U0001f467", "\U0001f916",
         "\U0001f972", "\u2764\ufe0f", "\U0001f1eb\U0001f1f7", "\ua7b5", "\U0001fae8", "\U0001f6dc",
         "#\ufe0f\u20e3", "\u00a9", "\u2122"]
LABELS = ["yes", "Yes", "YES!", "yes.", "no", "No", "no.", "NO", "noanswer", "No_answer!", "no-answer",
          "NOANSWER", "no answer", "yes yes", "the yes", "Yes, it is", "not", "na", "n/a", "No answer."]
POOLS = [WORDS, ARTICLES, ASCII_PUNCT, UNI_PUNCT, SPACES, NOT_SPACES, ACCENTED, GREEK, TURKISH, CJK, EMOJI]
POOL_WEIGHTS = [30, 10, 8, 4, 10, 3, 8, 5, 3, 5, 3]

HAND = [
    ("No_answer!", ["noanswer"]), ("\u039f\u0394\u039f\u03a3 \u03a3\u0391\u03a3", ["\u03bf\u03b4\u03bf\u03c2 \u03c3\u03b1\u03c2"]),
    ("\u202b1 January 2000\u202c", ["1 January 2000"]), ("The The", [""]), ("", [""]), ("", ["x"]),
    ("The Eiffel Tower", ["Eiffel Tower", "Louvre"]), ("paris", ["Paris"]), ("paris", ["Paris, France"]),
    ("Eiffel Tower is in Paris", ["Paris"]), ("the Eiffel Tower", ["Eiffel Tower"]),
    ("yes", ["no"]), ("no", ["yes"]), ("yes", ["yes yes"]), ("no-answer", ["No_answer!"]),
    ("no answer", ["noanswer"]), ("noanswer", ["no answer"]), ("Yes", ["yes."]), ("NO", ["no", "No."]),
    ("x x y", ["x y y z"]), ("a b c", ["b c d e"]), ("Node.js", ["nodejs"]), ("the-cat", ["thecat"]),
    ("\u00c1", ["\u0301"]), ("a\u2019s", ["\u2019s"]), ("a\U0001f600", ["\U0001f600"]),
    ("the\u200bcat", ["cat"]), ("a\u00b2", ["a2"]), ("theater", ["the ater"]),
    ("\ufb01 \uff34\uff48\uff45 \uff11\uff12\uff13 \u00b2 \u00bd", ["fi the 123 2 1/2"]),
    ("\u212a\u212b\u2126", ["K\u00c5\u03a9"]), ("\ud55c\uad6d\uc5b4", ["\u1112\u1161\u11ab\u1100\u116e\u11a8\u110b\u1165"]),
    ("a\u00a0b\u2007c\u202fd\x1ce", ["b c d e"]), ("\u0130stanbul", ["istanbul", "i\u0307stanbul"]),
    ("\u1e9e", ["\u00df", "ss"]), ("A\u03a3\u0301", ["a\u03c2\u0301"]), ("\u1d43\u03a3", ["\u1d43\u03c3"]),
    ("x\u0301.\u0323", ["x\u0323\u0301", "x\u0301\u0323"]), ("An apple, the pear; a plum", ["apple pear plum"]),
]

HAND_PASSAGES = [
    (["The city of York is old."], ["york"]), (["Yorkshire pudding"], ["york"]),
    (["paris\u2014france"], ["paris france"]), (["paris france"], ["Paris, France!"]), ([""], [""]),
    ([""], ["the"]), (["x"], ["!!!"]), (["I like \U0001f44d\U0001f3fd a lot"], ["\U0001f44d"]),
    (["I like \U0001f44d\U0001f3fd a lot"], ["\U0001f3fd lot"]), (["\u6771\u4eac\u30bf\u30ef\u30fc"], ["\u6771\u4eac"]),
    (["x\u0301.\u0323 y"], ["x\u0323\u0301"]), ([], ["a"]), (["anything"], []), (["one", "two three"], ["four", "Three"]),
    (["\U0001f468\u200d\U0001f469\u200d\U0001f467 family"], ["\U0001f469"]), (["\U0001f916 robot"], ["\U0001f916"]),
    (["The Eiffel Tower is in Paris.", "..."], ["Eiffel Tower"]), (["caf\u00e9"], ["cafe\u0301"]), (["caf\u00e9"], ["cafe"]),
]


def double_record(x):
    """A DSPy score as text: "0" for DSPy's int 0, else the IEEE-754 bits of the float
    as 16 hex digits (so equality is checked bit for bit, not after a decimal round trip)."""
    if isinstance(x, int) and not isinstance(x, bool):
        assert x == 0, x
        return "0"
    return struct.pack(">d", x).hex()


def random_assigned_or_not(rng):
    """Any code point but a surrogate, biased to the BMP and to assigned ones."""
    while True:
        r = rng.random()
        if r < 0.6:
            cp = rng.randrange(0x80, 0x10000)
        elif r < 0.8:
            cp = rng.randrange(0x10000, 0x30000)
        elif r < 0.85:
            cp = rng.randrange(0x30000, 0x110000)
        else:
            cp = rng.randrange(0, 0x80)
        if 0xD800 <= cp <= 0xDFFF:
            continue
        if r < 0.85 and unicodedata.category(chr(cp)) == "Cn" and rng.random() < 0.8:
            continue
        return chr(cp)


def random_text(rng, max_parts=12):
    n = rng.randint(0, max_parts)
    out = []
    for _ in range(n):
        if rng.random() < 0.08:
            out.append("".join(random_assigned_or_not(rng) for _ in range(rng.randint(1, 4))))
            continue
        pool = rng.choices(POOLS, POOL_WEIGHTS)[0]
        piece = rng.choice(pool)
        if pool is WORDS and rng.random() < 0.3:
            piece = piece.upper() if rng.random() < 0.5 else piece.capitalize()
        out.append(piece)
        if rng.random() < 0.6:
            out.append(rng.choice([" ", " ", " ", "", rng.choice(SPACES)]))
    return "".join(out)


def related_gold(rng, pred):
    """A gold sharing tokens with pred: shuffled, duplicated, dropped, re-cased."""
    toks = pred.split()
    if not toks:
        return random_text(rng, 4)
    k = rng.randint(1, len(toks))
    picked = rng.sample(toks, k)
    if rng.random() < 0.4:
        picked += rng.choices(toks, k=rng.randint(1, 3))
    if rng.random() < 0.4:
        picked.append(rng.choice(WORDS))
    if rng.random() < 0.3:
        picked.insert(0, rng.choice(ARTICLES))
    rng.shuffle(picked)
    sep = rng.choice([" ", " ", ", ", "  ", "\u00a0", " - "])
    g = sep.join(picked)
    return g.upper() if rng.random() < 0.2 else g


def make_cases():
    rng = random.Random(20240607)
    cases = [(p, g) for p, g in HAND]
    # yes/no/noanswer rules
    for a in LABELS:
        for b in rng.sample(LABELS, 6) + [a]:
            cases.append((a, [b]))
    # random + related golds, 1-5 golds
    for _ in range(2600):
        pred = random_text(rng)
        ng = rng.choices([1, 2, 3, 5], [60, 20, 12, 8])[0]
        golds = []
        for _ in range(ng):
            r = rng.random()
            if r < 0.45:
                golds.append(related_gold(rng, pred))
            elif r < 0.6:
                golds.append(pred)
            elif r < 0.7:
                golds.append(rng.choice(LABELS))
            else:
                golds.append(random_text(rng))
        cases.append((pred, golds))
    # pure random code points
    for _ in range(500):
        pred = "".join(random_assigned_or_not(rng) for _ in range(rng.randint(1, 24)))
        cases.append((pred, [pred[::-1], related_gold(rng, pred)]))
    # long strings (1-8 K characters)
    for _ in range(24):
        parts = []
        while sum(len(p) for p in parts) < rng.randint(1000, 8000):
            parts.append(random_text(rng, 30))
        pred = " ".join(parts)
        cases.append((pred, [related_gold(rng, pred), random_text(rng, 40)]))
    return cases


def make_passages(cases):
    rng = random.Random(77)
    out = [(p, a) for p, a in HAND_PASSAGES]
    for pred, golds in cases[:1600]:
        npass = rng.choice([1, 1, 2, 3])
        passages = [pred] + [random_text(rng, 20) for _ in range(npass - 1)]
        rng.shuffle(passages)
        answers = []
        for g in golds:
            answers.append(g)
        toks = pred.split()
        if toks and rng.random() < 0.6:
            i = rng.randrange(len(toks))
            answers.append(" ".join(toks[i : i + rng.randint(1, 3)]))
        if rng.random() < 0.1:
            answers = []
        out.append((passages, answers))
    return out


def sweep_text(start, end):
    """Each code point in a few contexts: around a capital sigma, after the article "a",
    between word characters, next to combining marks and punctuation."""
    parts = []
    for cp in range(start, end):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        c = chr(cp)
        parts.append("A" + c + "\u03a3" + c + " a" + c + ".the" + c + "\u0323" + c + "_x" + c + " ")
    return "".join(parts)


def sha(s):
    # 96 bits of SHA-256 are plenty to tell two texts apart and keep the file small.
    return hashlib.sha256(s.encode("utf-8")).hexdigest()[:24]


def write_jsonl(path, rows):
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")


def quiet(fn, *args):
    # f1_score / precision_score print a notice for two empty token lists: keep it out.
    with contextlib.redirect_stdout(io.StringIO()):
        return fn(*args)


def main():
    os.makedirs(ROOT, exist_ok=True)
    cases = make_cases()
    rows = []
    for i, (pred, golds) in enumerate(cases):
        rows.append({
            "id": i,
            "pred": pred,
            "golds": golds,
            "norm_pred": M.normalize_text(pred),
            "norm_golds": [M.normalize_text(g) for g in golds],
            "em": M.EM(pred, golds),
            "f1": double_record(quiet(M.F1, pred, golds)),
            "hotpot_f1": double_record(M.HotPotF1(pred, golds)),
            "precision": double_record(max(quiet(M.precision_score, pred, g) for g in golds)),
        })
    write_jsonl(os.path.join(ROOT, "cases.jsonl"), rows)

    prow = []
    for i, (passages, answers) in enumerate(make_passages(cases)):
        prow.append({"id": i, "passages": passages, "answers": answers,
                     "match": M._passage_match(passages, answers)})
    write_jsonl(os.path.join(ROOT, "passages.jsonl"), prow)

    srows = []
    for start in range(0, 0x110000, 256):
        if 0xD800 <= start <= 0xDFFF:
            continue
        norm = M.normalize_text(sweep_text(start, start + 256))
        srows.append({"start": start, "end": start + 256, "normalize": sha(norm),
                      "dpr": sha("\x1f".join(DPR_normalize(norm)))})
    write_jsonl(os.path.join(ROOT, "sweep.jsonl"), srows)

    semantic_fixtures()
    print(f"dspy {dspy.__version__}, Python {sys.version.split()[0]}, Unicode {unicodedata.unidata_version}: "
          f"{len(rows)} cases, {len(prow)} passage cases, {len(srows)} sweep ranges")


# ---------------------------------------------------------------------------------
# SemanticF1 / CompleteAndGrounded: the messages DSPy sends (ChatAdapter) and the score
# it computes from scripted LM answers.

def semantic_fixtures():
    from dspy.evaluate.auto_evaluation import CompleteAndGrounded, SemanticF1
    from dspy.utils.dummies import DummyLM

    out_dir = os.path.join(ROOT, "semantic")
    os.makedirs(out_dir, exist_ok=True)
    example = dspy.Example(question="What is the capital of France?",
                           response="Paris is the capital of France.").with_inputs("question")
    pred = dspy.Prediction(response="The capital of France is Paris, a city on the Seine.",
                           context=["Paris is the capital and largest city of France.",
                                    "The Seine flows through Paris."])

    def run(name, metric, answers, trace):
        lm = DummyLM(answers)
        with dspy.context(lm=lm, adapter=dspy.ChatAdapter()):
            result = metric(example, pred, trace=trace)
        calls = [{"messages": h["messages"]} for h in lm.history]
        score = result.score
        record = {"name": name, "trace": trace is not None, "answers": answers, "calls": calls,
                  "score": score if isinstance(score, bool) else double_record(score)}
        with open(os.path.join(out_dir, name + ".json"), "w", encoding="utf-8") as f:
            json.dump(record, f, ensure_ascii=False, indent=1, sort_keys=True)
            f.write("\n")

    run("semantic_f1", SemanticF1(), [{"reasoning": "Both name Paris.", "recall": "0.9", "precision": "0.7"}], None)
    run("semantic_f1_trace", SemanticF1(),
        [{"reasoning": "Both name Paris.", "recall": "0.9", "precision": "0.7"}], [])
    run("semantic_f1_clamped", SemanticF1(), [{"reasoning": "r", "recall": "1.5", "precision": "-0.2"}], None)
    run("semantic_f1_decompositional", SemanticF1(decompositional=True),
        [{"reasoning": "r", "ground_truth_key_ideas": "1. Paris is the capital.",
          "system_response_key_ideas": "1. Paris is the capital. 2. Paris is on the Seine.",
          "discussion": "The response covers the ground truth and adds one idea.",
          "recall": "1.0", "precision": "0.5"}], None)
    run("complete_and_grounded", CompleteAndGrounded(),
        [{"reasoning": "r1", "ground_truth_key_ideas": "1. Paris is the capital.",
          "system_response_key_ideas": "1. Paris is the capital. 2. On the Seine.",
          "discussion": "Full coverage.", "completeness": "1.0"},
         {"reasoning": "r2", "system_response_claims": "1. Paris is the capital. 2. Paris is on the Seine.",
          "discussion": "Both claims are in the context.", "groundedness": "0.85"}], None)
    run("complete_and_grounded_trace", CompleteAndGrounded(threshold=0.95),
        [{"reasoning": "r1", "ground_truth_key_ideas": "k", "system_response_key_ideas": "k",
          "discussion": "d", "completeness": "1.0"},
         {"reasoning": "r2", "system_response_claims": "c", "discussion": "d", "groundedness": "0.85"}], [])


if __name__ == "__main__":
    main()
