/* EM, F1, HotPotF1 and precision over one prediction and a list of golds, with DSPy's
 * exact arithmetic (dspy/evaluate/metrics.py), plus the dispatcher of
 * dspex_metrics_score. */
#include <float.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dspex/arena.h"
#include "dspex/metrics.h"
#include "dspex/utf8.h"
#include "metrics/text.h"

/* Bit-identical doubles need plain IEEE binary64 evaluation of each operation (no x87
 * extended precision). GCC/Clang in ISO C mode do not contract a*b+c into FMA, and no
 * expression below has that shape anyway. */
#if !defined(FLT_EVAL_METHOD) || FLT_EVAL_METHOD != 0
#error "metrics need FLT_EVAL_METHOD == 0 (SSE2 / AArch64 doubles) for DSPy's exact floats"
#endif

#define SCORE_STACK_BYTES 4096
#define SMALL_SORT 16

typedef struct {
    const char *p;
    size_t len;
} span;

static int span_cmp(const void *x, const void *y) {
    const span *a = x, *b = y;
    size_t n = a->len < b->len ? a->len : b->len;
    int c = n ? memcmp(a->p, b->p, n) : 0;
    if (c) return c;
    return (a->len > b->len) - (a->len < b->len);
}

/* str.split() of a normalized text: its only separators are single ASCII spaces. The
 * spans are sorted (for the multiset intersection). Returns the count, or SIZE_MAX when
 * out of memory. */
static size_t sorted_tokens(dspex_arena *a, const char *s, size_t len, span **out) {
    size_t n = 0;
    if (len) {
        n = 1;
        for (size_t i = 0; i < len; i++) n += s[i] == ' ';
    }
    span *t = dspex_arena_alloc(a, (n ? n : 1) * sizeof(span));
    if (t == NULL) return SIZE_MAX;
    size_t k = 0, start = 0;
    for (size_t i = 0; i <= len && n; i++) {
        if (i == len || s[i] == ' ') {
            t[k].p = s + start;
            t[k].len = i - start;
            k++;
            start = i + 1;
        }
    }
    if (n > SMALL_SORT) {
        qsort(t, n, sizeof(span), span_cmp);
    } else {
        for (size_t i = 1; i < n; i++) { /* a few tokens: insertion sort beats qsort's setup */
            span cur = t[i];
            size_t j = i;
            while (j > 0 && span_cmp(&t[j - 1], &cur) > 0) {
                t[j] = t[j - 1];
                j--;
            }
            t[j] = cur;
        }
    }
    *out = t;
    return n;
}

/* sum((Counter(a) & Counter(b)).values()) of two sorted token lists. */
static size_t common_count(const span *a, size_t na, const span *b, size_t nb) {
    size_t i = 0, j = 0, same = 0;
    while (i < na && j < nb) {
        int c = span_cmp(&a[i], &b[j]);
        if (c < 0) {
            i++;
        } else if (c > 0) {
            j++;
        } else {
            size_t ci = 1, cj = 1;
            while (i + ci < na && span_cmp(&a[i], &a[i + ci]) == 0) ci++;
            while (j + cj < nb && span_cmp(&b[j], &b[j + cj]) == 0) cj++;
            same += ci < cj ? ci : cj;
            i += ci;
            j += cj;
        }
    }
    return same;
}

/* f1_score's arithmetic, operation for operation:
 *   precision = 1.0 * num_same / len(p); recall = 1.0 * num_same / len(g)
 *   f1 = (2 * precision * recall) / (precision + recall) */
static double f1_of(size_t same, size_t np, size_t ng) {
    if (same == 0) return 0.0;
    double precision = 1.0 * (double)same / (double)np;
    double recall = 1.0 * (double)same / (double)ng;
    return (2.0 * precision * recall) / (precision + recall);
}

static int text_eq(const dspex_buf *a, const dspex_buf *b) {
    return a->len == b->len && (a->len == 0 || memcmp(a->p, b->p, a->len) == 0);
}

/* HotPotF1's special labels. */
static int hotpot_label(const dspex_buf *b) {
    return (b->len == 3 && memcmp(b->p, "yes", 3) == 0) || (b->len == 2 && memcmp(b->p, "no", 2) == 0) ||
           (b->len == 8 && memcmp(b->p, "noanswer", 8) == 0);
}

static int normalize_into(dspex_metrics *m, dspex_buf *b, const dspex_text *t, int gold, size_t index) {
    b->len = 0;
    b->oom = 0;
    size_t off = 0;
    int rc = dspex_normalize_text(t->s, t->len, b, &off);
    if (rc != DSPEX_METRICS_OK) {
        m->err.status = (dspex_metrics_status)rc;
        m->err.gold = gold;
        m->err.index = index;
        m->err.offset = rc == DSPEX_METRICS_EUTF8 ? off : 0;
    }
    return rc;
}

static int token_metric(dspex_metrics *m, dspex_metric metric, const dspex_text *pred,
                        const dspex_text *golds, size_t ngolds, double *score) {
    int rc = normalize_into(m, &m->pred, pred, 0, 0);
    if (rc != DSPEX_METRICS_OK) return rc;

    _Alignas(16) unsigned char stack[SCORE_STACK_BYTES];
    dspex_arena a;
    dspex_arena_init_buf(&a, 0, stack, sizeof stack);
    span *pt = NULL;
    size_t np = 0;
    if (metric != DSPEX_METRIC_EM) {
        np = sorted_tokens(&a, m->pred.p ? m->pred.p : "", m->pred.len, &pt);
        if (np == SIZE_MAX) {
            dspex_arena_free(&a);
            m->err.status = DSPEX_METRICS_ENOMEM;
            return DSPEX_METRICS_ENOMEM;
        }
    }

    double best = 0.0;
    for (size_t g = 0; g < ngolds; g++) {
        rc = normalize_into(m, &m->gold, &golds[g], 1, g);
        if (rc != DSPEX_METRICS_OK) break;
        double s;
        if (metric == DSPEX_METRIC_EM) {
            s = text_eq(&m->pred, &m->gold) ? 1.0 : 0.0;
        } else if (metric == DSPEX_METRIC_HOTPOT_F1 && !text_eq(&m->pred, &m->gold) &&
                   (hotpot_label(&m->pred) || hotpot_label(&m->gold))) {
            s = 0.0;
        } else {
            _Alignas(16) unsigned char gstack[SCORE_STACK_BYTES];
            dspex_arena ga;
            dspex_arena_init_buf(&ga, 0, gstack, sizeof gstack);
            span *gt = NULL;
            size_t ng = sorted_tokens(&ga, m->gold.p ? m->gold.p : "", m->gold.len, &gt);
            if (ng == SIZE_MAX) {
                dspex_arena_free(&ga);
                rc = m->err.status = DSPEX_METRICS_ENOMEM;
                break;
            }
            size_t same = common_count(pt, np, gt, ng);
            dspex_arena_free(&ga);
            if (metric == DSPEX_METRIC_PRECISION)
                s = same == 0 ? 0.0 : 1.0 * (double)same / (double)np;
            else
                s = f1_of(same, np, ng);
        }
        /* max() keeps the first maximal element; equal values are the same double. */
        if (g == 0 || s > best) best = s;
    }
    dspex_arena_free(&a);
    if (rc == DSPEX_METRICS_OK) *score = best;
    return rc;
}

void dspex_metrics_init(dspex_metrics *m) {
    dspex_buf_init(&m->pred);
    dspex_buf_init(&m->gold);
    memset(&m->err, 0, sizeof m->err);
}

void dspex_metrics_free(dspex_metrics *m) {
    dspex_buf_free(&m->pred);
    dspex_buf_free(&m->gold);
}

static int check_sizes(dspex_metrics *m, const dspex_text *t, size_t n, int gold) {
    for (size_t i = 0; i < n; i++) {
        if (t[i].len > DSPEX_METRICS_MAX_TEXT) {
            m->err.status = DSPEX_METRICS_ETOOBIG;
            m->err.gold = gold;
            m->err.index = i;
            m->err.offset = 0;
            return DSPEX_METRICS_ETOOBIG;
        }
    }
    return DSPEX_METRICS_OK;
}

int dspex_metrics_score(dspex_metrics *m, dspex_metric metric, const dspex_text *preds,
                        size_t npreds, const dspex_text *golds, size_t ngolds, double *score) {
    memset(&m->err, 0, sizeof m->err);
    int rc = check_sizes(m, preds, npreds, 0);
    if (rc == DSPEX_METRICS_OK) rc = check_sizes(m, golds, ngolds, 1);
    if (rc != DSPEX_METRICS_OK) return rc;

    switch (metric) {
    case DSPEX_METRIC_PASSAGE_MATCH: {
        int match = 0;
        rc = dspex_mt_passage_match(m, preds, npreds, golds, ngolds, &match);
        if (rc == DSPEX_METRICS_OK) *score = match ? 1.0 : 0.0;
        return rc;
    }
    case DSPEX_METRIC_EM:
    case DSPEX_METRIC_F1:
    case DSPEX_METRIC_HOTPOT_F1:
    case DSPEX_METRIC_PRECISION:
        if (npreds != 1) return m->err.status = DSPEX_METRICS_EARG;
        if (ngolds == 0) {
            m->err.gold = 1;
            return m->err.status = DSPEX_METRICS_ENOGOLDS;
        }
        return token_metric(m, metric, &preds[0], golds, ngolds, score);
    default: return m->err.status = DSPEX_METRICS_EARG;
    }
}
