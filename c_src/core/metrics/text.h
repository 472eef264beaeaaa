/* Internal to c_src/core/metrics: the Unicode steps shared by normalize_text (text.c)
 * and the scorers (score.c, dpr.c). Strings are arrays of code points (uint32_t) on a
 * caller's arena. */
#ifndef DSPEX_METRICS_TEXT_H
#define DSPEX_METRICS_TEXT_H

#include <stddef.h>
#include <stdint.h>

#include "dspex/arena.h"
#include "dspex/buf.h"
#include "dspex/metrics.h"
#include "metrics/unicode_tables.h"

/* Flags of code point cp (ASCII answered without the table). */
static inline uint8_t dspex_mt_flags(uint32_t cp) { return dspex_uni_flags(cp); }

/* unicodedata.normalize("NFD", s) of the UTF-8 bytes s[0..len): decodes, decomposes
 * (canonical, full; Hangul algorithmically) and puts combining marks in canonical order.
 * The code points go to *out (arena), their count to *n. Returns DSPEX_METRICS_OK,
 * EUTF8 (with *err_offset) or ENOMEM. */
int dspex_mt_nfd(dspex_arena *a, const char *s, size_t len, uint32_t **out, size_t *n,
                 size_t *err_offset);

/* str.lower() of v[0..n): full lowercase mappings and the final-sigma rule (context
 * read from v itself, as CPython does). When drop_punct is set, code points of
 * string.punctuation are left out of the result (DSPy's remove_punc, applied to the
 * lowered string). Result on the arena. Returns DSPEX_METRICS_OK or ENOMEM. */
int dspex_mt_lower(dspex_arena *a, const uint32_t *v, size_t n, int drop_punct, uint32_t **out,
                   size_t *out_n);

/* The same into o, which has room for n * DSPEX_UNI_MAX_LOWER code points; returns the
 * count written. */
size_t dspex_mt_lower_into(const uint32_t *v, size_t n, int drop_punct, uint32_t *o);

/* DSPy's _passage_match(passages, answers) (dspy/dsp/utils/dpr.py has_answer over
 * DPR_normalize tokens), see passage.c. Sets *match to 1 or 0; errors as in
 * dspex_metrics_score. */
int dspex_mt_passage_match(dspex_metrics *m, const dspex_text *passages, size_t npassages,
                           const dspex_text *answers, size_t nanswers, int *match);

/* DPR_normalize(s) of a normalized text s, the tokens joined by U+001F, appended to
 * out (for tests against DSPy's tokenizer). */
int dspex_mt_dpr_join(const char *s, size_t len, dspex_buf *out);

/* Appends the UTF-8 encoding of v[0..n) to b. */
void dspex_mt_put_utf8(dspex_buf *b, const uint32_t *v, size_t n);

#endif
