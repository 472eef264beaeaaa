/* libFuzzer target for grammar-constrained decoding (c_src/core/grammar).
 *
 * Input: a JSON Schema, a NUL byte, then a stream of choice bytes. The schema must
 * compile or fail cleanly (no crash, leak, UB, or unbounded time/memory: small limits
 * are set). When it compiles, a matcher over a small vocabulary (every single byte plus
 * tokens that cross JSON structure) is driven by the choice bytes: at each step the mask
 * is built and the choice picks one allowed token (or end-of-generation). Invariants:
 *   - a mask never admits a token the matcher then rejects;
 *   - the mask is never empty (some token, or end-of-generation, is always allowed);
 *   - end-of-generation is allowed exactly when the text so far is a complete match;
 *   - the text so far is always a prefix (or complete) by dspex_grammar_match.
 * Without a NUL, the input is both a schema and a text for dspex_grammar_match over a
 * fixed grammar. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dspex/infer/grammar.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const extra[] = {"{\"", "\":", "\": ", "\",", "\"}", "\"},", "}}", "}]", "],", "]}", "[[",
                                    "true", "false", "null", "12", "0.", ".5", "-1", "e+", "\\u00", "\"a\"", ", ",
                                    ",\n  ", "\n  \"", "\xc3\xa9", "\xe2\x82", "[1", "{}", "[]", "1e5"};
#define NEXTRA (sizeof extra / sizeof extra[0])
#define NTOK (256 + NEXTRA + 1)

static dspex_gvocab *vocab(void) {
    static char bytes[256];
    const char *p[NTOK];
    size_t l[NTOK];
    uint8_t eog[NTOK] = {0};
    for (int i = 0; i < 256; i++) {
        bytes[i] = (char)i;
        p[i] = &bytes[i];
        l[i] = 1;
    }
    for (size_t i = 0; i < NEXTRA; i++) {
        p[256 + i] = extra[i];
        l[256 + i] = strlen(extra[i]);
    }
    p[NTOK - 1] = "";
    l[NTOK - 1] = 0;
    eog[NTOK - 1] = 1;
    char err[128];
    return dspex_gvocab_from_pieces(p, l, eog, NTOK, err, sizeof err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static dspex_gvocab *gv;
    if (gv == NULL) gv = vocab();
    if (gv == NULL) abort();
    dspex_grammar_limits lim = dspex_grammar_default_limits();
    lim.max_bytes = (size_t)4 << 20;
    lim.cache_bytes = (size_t)1 << 20;
    lim.json_depth = 4;
    lim.ref_depth = 3;
    const uint8_t *nul = memchr(data, 0, size);
    size_t slen = nul ? (size_t)(nul - data) : size;
    char err[256];
    dspex_grammar *g = dspex_grammar_json_schema((const char *)data, slen, gv, &lim, err, sizeof err);
    if (g == NULL) {
        if (err[0] == 0) abort(); /* every failure says why */
        if (!nul) {                /* the input as text against a fixed grammar */
            static const char fixed[] = "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"array\"}}}";
            g = dspex_grammar_json_schema(fixed, sizeof fixed - 1, gv, &lim, err, sizeof err);
            if (g == NULL) abort();
            size_t at;
            (void)dspex_grammar_match(g, (const char *)data, size, &at);
            dspex_grammar_release(g);
        }
        return 0;
    }
    const uint8_t *choice = nul ? nul + 1 : data + size;
    size_t nchoice = nul ? size - slen - 1 : 0;
    int64_t budget = nchoice ? 1 + choice[0] : 0;
    dspex_matcher *m = dspex_matcher_new(g, budget);
    if (m == NULL) abort();
    float logits[NTOK];
    int32_t gen[300];
    char text[300 * 8];
    size_t tl = 0;
    for (size_t k = 1; k < nchoice && k < 300; k++) {
        for (int i = 0; i < (int)NTOK; i++) logits[i] = 0.0f;
        dspex_matcher_hook(m, logits, NTOK, gen, k - 1);
        int allowed[NTOK], na = 0;
        for (int i = 0; i < (int)NTOK; i++)
            if (logits[i] != -INFINITY) allowed[na++] = i;
        if (na == 0) abort(); /* never empty */
        int eos_ok = logits[NTOK - 1] != -INFINITY;
        int full = dspex_grammar_match(g, text, tl, NULL);
        if (!dspex_matcher_failed(m) && eos_ok != (full == 2)) abort();
        if (full == 0) abort(); /* the text so far is always in the language */
        int t = allowed[choice[k] % na];
        if (t == NTOK - 1) break;
        const char *piece = t < 256 ? (const char *)&(char){(char)t} : extra[t - 256];
        size_t pl = t < 256 ? 1 : strlen(extra[t - 256]);
        if (t < 256) text[tl] = (char)t;
        else memcpy(text + tl, piece, pl);
        tl += pl;
        gen[k - 1] = t;
    }
    dspex_matcher_free(m);
    dspex_grammar_release(g);
    return 0;
}
