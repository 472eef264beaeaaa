/* DSPy's passage match: _passage_match(passages, answers) is true iff, for some passage
 * and some answer, DPR_normalize(normalize_text(answer)) occurs as a contiguous token
 * sub-list of DPR_normalize(normalize_text(passage)) (dspy/dsp/utils/dpr.py).
 *
 * DPR_normalize(t) = unicodedata.normalize("NFD", t), then the tokens of DSPy's
 * SimpleTokenizer regex `[\p{L}\p{N}\p{M}]+|[^\p{Z}\p{C}]` (maximal letter/number/mark
 * runs, or one other non-separator, non-control code point; the rest is skipped), each
 * token lowered on its own. The NFD is not a no-op: deleting punctuation can leave two
 * combining marks out of canonical order.
 *
 * DSPy compares token lists with a quadratic scan; here tokens become integer ids (the
 * answers' tokens, sorted and deduplicated) and each answer is found with KMP, so a
 * passage costs O(tokens x log(answer vocabulary) + tokens x answers). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dspex/arena.h"
#include "dspex/metrics.h"
#include "dspex/utf8.h"
#include "metrics/text.h"

#define PASSAGE_STACK_BYTES 8192

typedef struct {
    const uint32_t *p;
    size_t len;
} cp_span;

static int cp_span_cmp(const void *x, const void *y) {
    const cp_span *a = x, *b = y;
    if (a->len != b->len) return (a->len > b->len) - (a->len < b->len);
    for (size_t i = 0; i < a->len; i++)
        if (a->p[i] != b->p[i]) return (a->p[i] > b->p[i]) - (a->p[i] < b->p[i]);
    return 0;
}

/* DPR_normalize of a normalized text: its tokens (lowered code points, on the arena). */
static int dpr_tokens(dspex_arena *a, const char *s, size_t len, cp_span **out, size_t *ntok) {
    uint32_t *v = NULL;
    size_t n = 0;
    int rc = dspex_mt_nfd(a, s, len, &v, &n, NULL);
    if (rc != DSPEX_METRICS_OK) return rc;
    /* At most one token per code point; lowered text at most MAX_LOWER per code point. */
    cp_span *t = dspex_arena_alloc(a, (n ? n : 1) * sizeof(cp_span));
    uint32_t *low = dspex_arena_alloc(a, (n * DSPEX_UNI_MAX_LOWER + 1) * sizeof(uint32_t));
    if (t == NULL || low == NULL) return DSPEX_METRICS_ENOMEM;
    size_t k = 0, used = 0, i = 0;
    while (i < n) {
        uint8_t f = dspex_mt_flags(v[i]);
        size_t j = i + 1;
        if (f & DSPEX_UNI_DPR_RUN) {
            while (j < n && (dspex_mt_flags(v[j]) & DSPEX_UNI_DPR_RUN)) j++;
        } else if (!(f & DSPEX_UNI_DPR_SINGLE)) {
            i = j; /* separator or control: not a token */
            continue;
        }
        size_t m = dspex_mt_lower_into(v + i, j - i, 0, low + used);
        t[k].p = low + used;
        t[k].len = m;
        used += m;
        k++;
        i = j;
    }
    *out = t;
    *ntok = k;
    return DSPEX_METRICS_OK;
}

int dspex_mt_dpr_join(const char *s, size_t len, dspex_buf *out) {
    _Alignas(16) unsigned char stack[PASSAGE_STACK_BYTES];
    dspex_arena a;
    dspex_arena_init_buf(&a, 0, stack, sizeof stack);
    cp_span *t = NULL;
    size_t n = 0;
    int rc = dpr_tokens(&a, s, len, &t, &n);
    for (size_t i = 0; rc == DSPEX_METRICS_OK && i < n; i++) {
        if (i) dspex_buf_putc(out, 0x1F);
        dspex_mt_put_utf8(out, t[i].p, t[i].len);
    }
    dspex_arena_free(&a);
    if (rc == DSPEX_METRICS_OK && out->oom) rc = DSPEX_METRICS_ENOMEM;
    return rc;
}

/* Id of token x in the sorted vocabulary, or -1. */
static long vocab_id(const cp_span *vocab, size_t nv, const cp_span *x) {
    size_t lo = 0, hi = nv;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = cp_span_cmp(&vocab[mid], x);
        if (c == 0) return (long)mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

typedef struct {
    long *ids;   /* token ids */
    size_t len;
    size_t *fail; /* KMP failure function */
} answer;

/* Whether pattern a occurs in text[0..n) (KMP). */
static int kmp_find(const answer *a, const long *text, size_t n) {
    if (a->len == 0) return 1; /* DSPy: an answer without tokens matches every passage */
    size_t q = 0;
    for (size_t i = 0; i < n; i++) {
        while (q > 0 && a->ids[q] != text[i]) q = a->fail[q - 1];
        if (a->ids[q] == text[i]) q++;
        if (q == a->len) return 1;
    }
    return 0;
}

static void kmp_prepare(answer *a) {
    if (a->len == 0) return;
    a->fail[0] = 0;
    size_t k = 0;
    for (size_t i = 1; i < a->len; i++) {
        while (k > 0 && a->ids[i] != a->ids[k]) k = a->fail[k - 1];
        if (a->ids[i] == a->ids[k]) k++;
        a->fail[i] = k;
    }
}

static int fail_at(dspex_metrics *m, int rc, int gold, size_t index, size_t offset) {
    m->err.status = (dspex_metrics_status)rc;
    m->err.gold = gold;
    m->err.index = index;
    m->err.offset = offset;
    return rc;
}

/* Tokenizes every answer into `a` (ids against one sorted vocabulary). */
static int prepare_answers(dspex_metrics *m, dspex_arena *a, const dspex_text *answers, size_t nanswers,
                           answer **out, cp_span **vocab_out, size_t *nvocab_out) {
    cp_span **toks = dspex_arena_alloc(a, (nanswers ? nanswers : 1) * sizeof(cp_span *));
    size_t *ntoks = dspex_arena_alloc(a, (nanswers ? nanswers : 1) * sizeof(size_t));
    answer *ans = dspex_arena_alloc(a, (nanswers ? nanswers : 1) * sizeof(answer));
    if (toks == NULL || ntoks == NULL || ans == NULL) return fail_at(m, DSPEX_METRICS_ENOMEM, 1, 0, 0);
    size_t total = 0;
    for (size_t i = 0; i < nanswers; i++) {
        size_t off = 0;
        m->gold.len = 0;
        m->gold.oom = 0;
        int rc = dspex_normalize_text(answers[i].s, answers[i].len, &m->gold, &off);
        if (rc != DSPEX_METRICS_OK) return fail_at(m, rc, 1, i, rc == DSPEX_METRICS_EUTF8 ? off : 0);
        rc = dpr_tokens(a, m->gold.p ? m->gold.p : "", m->gold.len, &toks[i], &ntoks[i]);
        if (rc != DSPEX_METRICS_OK) return fail_at(m, rc, 1, i, 0);
        total += ntoks[i];
    }
    cp_span *vocab = dspex_arena_alloc(a, (total ? total : 1) * sizeof(cp_span));
    if (vocab == NULL) return fail_at(m, DSPEX_METRICS_ENOMEM, 1, 0, 0);
    size_t nv = 0;
    for (size_t i = 0; i < nanswers; i++)
        for (size_t k = 0; k < ntoks[i]; k++) vocab[nv++] = toks[i][k];
    if (nv > 1) qsort(vocab, nv, sizeof(cp_span), cp_span_cmp);
    size_t u = 0;
    for (size_t k = 0; k < nv; k++)
        if (u == 0 || cp_span_cmp(&vocab[u - 1], &vocab[k]) != 0) vocab[u++] = vocab[k];
    for (size_t i = 0; i < nanswers; i++) {
        ans[i].len = ntoks[i];
        ans[i].ids = dspex_arena_alloc(a, (ntoks[i] ? ntoks[i] : 1) * sizeof(long));
        ans[i].fail = dspex_arena_alloc(a, (ntoks[i] ? ntoks[i] : 1) * sizeof(size_t));
        if (ans[i].ids == NULL || ans[i].fail == NULL) return fail_at(m, DSPEX_METRICS_ENOMEM, 1, i, 0);
        for (size_t k = 0; k < ntoks[i]; k++) ans[i].ids[k] = vocab_id(vocab, u, &toks[i][k]);
        kmp_prepare(&ans[i]);
    }
    *out = ans;
    *vocab_out = vocab;
    *nvocab_out = u;
    return DSPEX_METRICS_OK;
}

int dspex_mt_passage_match(dspex_metrics *m, const dspex_text *passages, size_t npassages,
                           const dspex_text *answers, size_t nanswers, int *match) {
    _Alignas(16) unsigned char stack[PASSAGE_STACK_BYTES];
    dspex_arena a;
    dspex_arena_init_buf(&a, 0, stack, sizeof stack);
    answer *ans = NULL;
    cp_span *vocab = NULL;
    size_t nv = 0;
    int found = 0;
    int rc = prepare_answers(m, &a, answers, nanswers, &ans, &vocab, &nv);

    for (size_t p = 0; p < npassages && rc == DSPEX_METRICS_OK; p++) {
        size_t off = 0;
        if (found) {
            /* The result is known; still reject invalid input, whatever its position. */
            const unsigned char *s = (const unsigned char *)passages[p].s;
            for (size_t i = 0; i < passages[p].len && rc == DSPEX_METRICS_OK;) {
                if (s[i] < 0x80) {
                    i++;
                    continue;
                }
                size_t k = dspex_utf8_seq(s, passages[p].len, i);
                if (k == 0) rc = fail_at(m, DSPEX_METRICS_EUTF8, 0, p, i);
                i += k;
            }
            continue;
        }
        m->pred.len = 0;
        m->pred.oom = 0;
        rc = dspex_normalize_text(passages[p].s, passages[p].len, &m->pred, &off);
        if (rc != DSPEX_METRICS_OK) {
            fail_at(m, rc, 0, p, rc == DSPEX_METRICS_EUTF8 ? off : 0);
            break;
        }
        if (nanswers == 0) continue;
        _Alignas(16) unsigned char pstack[PASSAGE_STACK_BYTES];
        dspex_arena pa;
        dspex_arena_init_buf(&pa, 0, pstack, sizeof pstack);
        cp_span *toks = NULL;
        size_t nt = 0;
        long *ids = NULL;
        rc = dpr_tokens(&pa, m->pred.p ? m->pred.p : "", m->pred.len, &toks, &nt);
        if (rc == DSPEX_METRICS_OK) {
            ids = dspex_arena_alloc(&pa, (nt ? nt : 1) * sizeof(long));
            if (ids == NULL) rc = DSPEX_METRICS_ENOMEM;
        }
        if (rc != DSPEX_METRICS_OK) {
            fail_at(m, rc, 0, p, 0);
        } else {
            for (size_t k = 0; k < nt; k++) ids[k] = vocab_id(vocab, nv, &toks[k]);
            for (size_t i = 0; i < nanswers && !found; i++) found = kmp_find(&ans[i], ids, nt);
        }
        dspex_arena_free(&pa);
    }
    dspex_arena_free(&a);
    if (rc == DSPEX_METRICS_OK) *match = found;
    return rc;
}
