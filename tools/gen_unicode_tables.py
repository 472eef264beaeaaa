"""Unicode tables for DSPex's metrics (c_src/core/metrics/), generated from Python itself.

Run with the Python DSPy users run (DSPy 3.3.1 in a venv, Python 3.11 = Unicode 14.0):

    /work/venv/bin/python tools/gen_unicode_tables.py

Writes c_src/core/metrics/unicode_tables.{h,c}. Deterministic: the same Python,
`regex` and DSPy give byte-identical output (rerun and `git diff` to check).

Every property is read from the very functions `dspy.evaluate.normalize_text` and
`dspy.dsp.utils.dpr` call, so the C port reproduces Python's behaviour rather than a
reading of the Unicode standard:

  * canonical decomposition: `unicodedata.normalize("NFD", ch)` per code point (full,
    recursive, already in canonical order; Hangul syllables are left to the C code,
    which decomposes them algorithmically as CPython does) and
    `unicodedata.combining(ch)` for canonical ordering;
  * lowercase: `ch.lower()` per code point (full mappings, e.g. U+0130 -> "i" U+0307);
    U+03A3 gets its context rule in C, using two flags probed through `str.lower`
    itself (see `sigma_class`): case-ignorable, and cased-but-not-case-ignorable;
  * whitespace: `ch.isspace()` (what `str.split()` splits on);
  * word characters: `re.fullmatch(r"\\w", ch)` (what `\\b` in `\\b(a|an|the)\\b` tests);
  * punctuation: `string.punctuation` (32 ASCII characters);
  * DPR tokens: DSPy's own compiled `SimpleTokenizer` pattern (the `regex` module, with
    its own Unicode version): a code point either extends an `[\\p{L}\\p{N}\\p{M}]+` run,
    is a one-character `[^\\p{Z}\\p{C}]` token, or is skipped.

Layout: a two-stage table maps a code point to a record index (uint16); records hold
the canonical combining class, flag bits, an offset into the decomposition pool and
the lowercase mapping (a delta, or an offset into the expansion pool).
"""

import os
import platform
import re
import string
import sys
import unicodedata

import regex
from dspy.dsp.utils import dpr

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT_DIR = os.path.join(ROOT, "c_src", "core", "metrics")

MAX_CP = 0x110000
HANGUL_S_BASE, HANGUL_S_COUNT = 0xAC00, 11172

F_SPACE = 0x01
F_WORD = 0x02
F_CASE_IGNORABLE = 0x04
F_CASED = 0x08  # cased and not case-ignorable (the only case the sigma rule can see)
F_DPR_RUN = 0x10
F_DPR_SINGLE = 0x20
F_PUNCT = 0x40
F_LOWER_EXP = 0x80  # lowercase is several code points: `lower` is an offset into the pool

SIGMA, FINAL_SIGMA, SMALL_SIGMA = "\u03a3", "\u03c2", "\u03c3"


def is_surrogate(cp):
    return 0xD800 <= cp <= 0xDFFF


def sigma_class(ch):
    """Python's final-sigma rule skips case-ignorable characters, then asks "cased?".
    Probe both through str.lower so the tables are Python's, not the UCD's:
      ch + Σ        -> ς  iff ch is not case-ignorable and is cased
      "A" + ch + Σ  -> ς  iff ch is case-ignorable, or cased
    """
    a = (ch + SIGMA).lower()[-1] == FINAL_SIGMA
    b = ("A" + ch + SIGMA).lower()[-1] == FINAL_SIGMA
    if a:
        return F_CASED
    if b:
        return F_CASE_IGNORABLE
    return 0


def regex_unicode_version():
    """`regex` does not say which Unicode it implements: probe code points first
    assigned in each version (U+20C1 SAUDI RIYAL SIGN is 17.0, ...)."""
    found = "<= " + unicodedata.unidata_version
    for version, cp in [("15.0", 0x1F6DC), ("15.1", 0x2FFC), ("16.0", 0x0897), ("17.0", 0x20C1)]:
        if not regex.match(r"\p{Cn}", chr(cp)):
            found = ">= " + version
    return found


def main():
    word_re = re.compile(r"\w")
    dpr_re = dpr.STokenizer._regexp
    punct = set(string.punctuation)

    decomp_pool = [0]  # offset 0 = no decomposition; entries are [len, cp, cp, ...]
    lower_pool = [0]  # same shape for multi-code-point lowercase mappings
    records = {}
    record_list = []
    cp_record = [0] * MAX_CP
    max_decomp = 1
    max_lower = 1
    max_decomp_per_byte = 1.0

    def record_index(rec):
        idx = records.get(rec)
        if idx is None:
            idx = len(record_list)
            records[rec] = idx
            record_list.append(rec)
        return idx

    record_index((0, 0, 0, 0))  # record 0: surrogates and anything with no properties

    for cp in range(MAX_CP):
        if is_surrogate(cp):
            continue
        ch = chr(cp)
        flags = 0
        if ch.isspace():
            flags |= F_SPACE
        if word_re.fullmatch(ch):
            flags |= F_WORD
        if ch != SIGMA:
            flags |= sigma_class(ch)
        else:
            flags |= F_CASED
        m = dpr_re.fullmatch(ch)
        if m is not None:
            flags |= F_DPR_RUN if m.group(1) is not None else F_DPR_SINGLE
        if ch in punct:
            flags |= F_PUNCT

        ccc = unicodedata.combining(ch)

        decomp_off = 0
        if not (HANGUL_S_BASE <= cp < HANGUL_S_BASE + HANGUL_S_COUNT):
            d = unicodedata.normalize("NFD", ch)
            if d != ch:
                decomp_off = len(decomp_pool)
                decomp_pool.append(len(d))
                decomp_pool.extend(ord(c) for c in d)
                max_decomp = max(max_decomp, len(d))
                max_decomp_per_byte = max(max_decomp_per_byte, len(d) / len(ch.encode("utf-8")))

        low = SMALL_SIGMA if ch == SIGMA else ch.lower()
        if len(low) == 1:
            lower = ord(low) - cp
        else:
            flags |= F_LOWER_EXP
            lower = len(lower_pool)
            lower_pool.append(len(low))
            lower_pool.extend(ord(c) for c in low)
            max_lower = max(max_lower, len(low))

        cp_record[cp] = record_index((ccc, flags, decomp_off, lower))

    # Hangul: 3 jamo at most from a 3-byte syllable (1 per byte).
    max_decomp = max(max_decomp, 3)
    if len(record_list) >= 65536 or len(decomp_pool) >= 65536:
        sys.exit("tables outgrew uint16 indices")

    # Two-stage table: pick the block size with the smallest total.
    best = None
    for shift in range(4, 11):
        bs = 1 << shift
        blocks = {}
        stage1 = []
        stage2 = []
        for start in range(0, MAX_CP, bs):
            blk = tuple(cp_record[start : start + bs])
            bi = blocks.get(blk)
            if bi is None:
                bi = len(blocks)
                blocks[blk] = bi
                stage2.extend(blk)
            stage1.append(bi)
        size = 2 * len(stage1) + 2 * len(stage2)
        if best is None or size < best[0]:
            best = (size, shift, stage1, stage2)
    _, shift, stage1, stage2 = best

    versions = {
        "python": platform.python_version(),
        "unicode": unicodedata.unidata_version,
        "regex": regex.__version__,
        "regex_unicode": regex_unicode_version(),
    }

    write_header(shift, len(stage1), len(stage2), len(record_list), len(decomp_pool),
                 len(lower_pool), max_decomp, max_lower, versions)
    ascii_flags = [record_list[cp_record[cp]][1] for cp in range(128)]
    write_source(shift, stage1, stage2, record_list, decomp_pool, lower_pool, ascii_flags, versions)
    print(
        f"unicode {versions['unicode']} (python {versions['python']}), regex {versions['regex']}: "
        f"{len(record_list)} records, shift {shift}, stage1 {len(stage1)}, stage2 {len(stage2)}, "
        f"decomp pool {len(decomp_pool)}, lower pool {len(lower_pool)}, "
        f"max decomposition {max_decomp} (max {max_decomp_per_byte:.2f} code points per UTF-8 byte)"
    )


HEADER_TOP = """/* GENERATED by tools/gen_unicode_tables.py -- do not edit; rerun the script.
 *
 * Unicode properties for DSPy's normalize_text and DPR tokenizer, read from
 *   Python {python} (unicodedata: Unicode {unicode}) and regex {regex} (Unicode {regex_unicode}).
 * See the script for what each property is probed from. Internal to c_src/core/metrics. */
"""


def write_header(shift, n1, n2, nrec, ndecomp, nlower, max_decomp, max_lower, versions):
    text = HEADER_TOP.format(**versions) + f"""#ifndef DSPEX_METRICS_UNICODE_TABLES_H
#define DSPEX_METRICS_UNICODE_TABLES_H

#include <stdint.h>

#define DSPEX_UNI_UNICODE_VERSION "{versions['unicode']}"
#define DSPEX_UNI_PYTHON_VERSION "{versions['python']}"
#define DSPEX_UNI_REGEX_VERSION "{versions['regex']}"

/* Record flag bits. */
#define DSPEX_UNI_SPACE 0x{F_SPACE:02x}          /* str.isspace(): str.split() separators */
#define DSPEX_UNI_WORD 0x{F_WORD:02x}           /* re \\w (str pattern): \\b boundaries */
#define DSPEX_UNI_CASE_IGNORABLE 0x{F_CASE_IGNORABLE:02x} /* skipped by the final-sigma rule */
#define DSPEX_UNI_CASED 0x{F_CASED:02x}          /* cased and not case-ignorable */
#define DSPEX_UNI_DPR_RUN 0x{F_DPR_RUN:02x}        /* [\\p{{L}}\\p{{N}}\\p{{M}}] (DPR token run) */
#define DSPEX_UNI_DPR_SINGLE 0x{F_DPR_SINGLE:02x}     /* other [^\\p{{Z}}\\p{{C}}]: one-character DPR token */
#define DSPEX_UNI_PUNCT 0x{F_PUNCT:02x}          /* string.punctuation */
#define DSPEX_UNI_LOWER_EXP 0x{F_LOWER_EXP:02x}      /* lowercase expands: `lower` is a pool offset */

/* Longest canonical decomposition of one code point (Hangul included), and longest
 * lowercase expansion. */
#define DSPEX_UNI_MAX_DECOMP {max_decomp}
#define DSPEX_UNI_MAX_LOWER {max_lower}

#define DSPEX_UNI_SHIFT {shift}
#define DSPEX_UNI_STAGE1_LEN {n1}
#define DSPEX_UNI_STAGE2_LEN {n2}
#define DSPEX_UNI_RECORDS_LEN {nrec}
#define DSPEX_UNI_DECOMP_LEN {ndecomp}
#define DSPEX_UNI_LOWER_LEN {nlower}

typedef struct {{
    uint8_t ccc;     /* canonical combining class */
    uint8_t flags;   /* DSPEX_UNI_* bits */
    uint16_t decomp; /* 0, or offset into dspex_uni_decomp: [len, cp...] */
    int32_t lower;   /* lowercase: cp + lower, or (LOWER_EXP) offset into dspex_uni_lower */
}} dspex_uni_record;

extern const uint16_t dspex_uni_stage1[DSPEX_UNI_STAGE1_LEN];
extern const uint16_t dspex_uni_stage2[DSPEX_UNI_STAGE2_LEN];
extern const dspex_uni_record dspex_uni_records[DSPEX_UNI_RECORDS_LEN];
extern const uint32_t dspex_uni_decomp[DSPEX_UNI_DECOMP_LEN];
extern const uint32_t dspex_uni_lower[DSPEX_UNI_LOWER_LEN];
extern const uint8_t dspex_uni_ascii_flags[128]; /* the flags of U+0000..U+007F, direct */

/* The record of code point cp (cp <= U+10FFFF). */
static inline const dspex_uni_record *dspex_uni(uint32_t cp) {{
    uint16_t block = dspex_uni_stage1[cp >> DSPEX_UNI_SHIFT];
    return &dspex_uni_records[dspex_uni_stage2[((uint32_t)block << DSPEX_UNI_SHIFT) |
                                               (cp & ((1u << DSPEX_UNI_SHIFT) - 1))]];
}}

/* The flags of code point cp (ASCII without the two-stage lookup). */
static inline uint8_t dspex_uni_flags(uint32_t cp) {{
    return cp < 0x80 ? dspex_uni_ascii_flags[cp] : dspex_uni(cp)->flags;
}}

#endif
"""
    with open(os.path.join(OUT_DIR, "unicode_tables.h"), "w", encoding="utf-8") as f:
        f.write(text)


def fmt_array(values, per_line, width=0):
    lines = []
    for i in range(0, len(values), per_line):
        chunk = values[i : i + per_line]
        lines.append("    " + ",".join(str(v) for v in chunk) + ",")
    return "\n".join(lines)


def write_source(shift, stage1, stage2, records, decomp, lower, ascii_flags, versions):
    recs = [f"{{{c},{f},{d},{l}}}" for (c, f, d, l) in records]
    text = HEADER_TOP.format(**versions) + f"""#include "unicode_tables.h"

const uint16_t dspex_uni_stage1[DSPEX_UNI_STAGE1_LEN] = {{
{fmt_array(stage1, 24)}
}};

const uint16_t dspex_uni_stage2[DSPEX_UNI_STAGE2_LEN] = {{
{fmt_array(stage2, 24)}
}};

const dspex_uni_record dspex_uni_records[DSPEX_UNI_RECORDS_LEN] = {{
{fmt_array(recs, 8)}
}};

const uint32_t dspex_uni_decomp[DSPEX_UNI_DECOMP_LEN] = {{
{fmt_array(decomp, 12)}
}};

const uint32_t dspex_uni_lower[DSPEX_UNI_LOWER_LEN] = {{
{fmt_array(lower, 12)}
}};

const uint8_t dspex_uni_ascii_flags[128] = {{
{fmt_array(ascii_flags, 16)}
}};
"""
    with open(os.path.join(OUT_DIR, "unicode_tables.c"), "w", encoding="utf-8") as f:
        f.write(text)


if __name__ == "__main__":
    os.makedirs(OUT_DIR, exist_ok=True)
    main()
