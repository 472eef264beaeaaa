/* libFuzzer target for the metrics core: the input is split (at a position taken from
 * its first byte) into a prediction and a gold, both arbitrary bytes. Checks that
 * normalize_text accepts exactly the valid UTF-8 inputs and returns clean text, and the
 * ASCII fast path agrees with the general one, and the invariants of the scores: EM/F1/passage match of a text with itself, F1 symmetric
 * (bit for bit) and in [0, 1], HotPotF1 and precision bounded by their definitions. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dspex/metrics.h"
#include "dspex/utf8.h"

static int valid_utf8(const unsigned char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        size_t k = dspex_utf8_seq(s, n, i);
        if (k == 0) return 0;
        i += k;
    }
    return 1;
}

static void check_normalized(const dspex_buf *b) {
    const unsigned char *s = (const unsigned char *)(b->p ? b->p : "");
    if (!valid_utf8(s, b->len)) abort();
    if (b->len && (s[0] == ' ' || s[b->len - 1] == ' ')) abort();
    for (size_t i = 0; i < b->len; i++) {
        unsigned char c = s[i];
        if (c == ' ' && i + 1 < b->len && s[i + 1] == ' ') abort();
        if (c >= 'A' && c <= 'Z') abort();            /* lowered */
        if (c == '\t' || c == '\n' || c == '\r') abort(); /* whitespace collapsed */
        if (c < 0x80 && c > ' ' && c != 0x7F && !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z')))
            abort(); /* string.punctuation removed */
    }
}

static double score(dspex_metrics *m, dspex_metric k, const dspex_text *p, const dspex_text *g) {
    double s = -1.0;
    if (dspex_metrics_score(m, k, p, 1, g, 1, &s) != DSPEX_METRICS_OK) abort();
    if (!(s >= 0.0 && s <= 1.0)) abort();
    return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    size_t cut = 1 + (size > 1 ? data[0] % size : 0);
    if (cut > size) cut = size;
    dspex_text pred = {(const char *)data + 1, cut - 1};
    dspex_text gold = {(const char *)data + cut, size - cut};

    dspex_buf b;
    dspex_buf_init(&b);
    size_t off = 0;
    int rc = dspex_normalize_text(pred.s, pred.len, &b, &off);
    int valid_p = valid_utf8((const unsigned char *)pred.s, pred.len);
    if ((rc == DSPEX_METRICS_OK) != valid_p) abort();
    if (rc == DSPEX_METRICS_EUTF8 && (off >= pred.len || valid_utf8((const unsigned char *)pred.s, off) == 0))
        abort(); /* the offset points at the first bad sequence */
    if (rc == DSPEX_METRICS_OK) check_normalized(&b);
    size_t plen = b.len;
    if (rc == DSPEX_METRICS_OK) {
        /* A trailing NO-BREAK SPACE (whitespace, a starter, neither cased nor a word
         * character) changes nothing, and forces the general Unicode path: so the ASCII
         * fast path is checked against it. */
        char *t = malloc(pred.len + 2);
        if (t == NULL) abort();
        if (pred.len) memcpy(t, pred.s, pred.len);
        memcpy(t + pred.len, "\xc2\xa0", 2);
        dspex_buf c;
        dspex_buf_init(&c);
        if (dspex_normalize_text(t, pred.len + 2, &c, NULL) != DSPEX_METRICS_OK) abort();
        if (c.len != b.len || (b.len && memcmp(c.p, b.p, b.len) != 0)) abort();
        dspex_buf_free(&c);
        free(t);
    }
    dspex_buf_free(&b);

    int valid_g = valid_utf8((const unsigned char *)gold.s, gold.len);
    dspex_metrics m;
    dspex_metrics_init(&m);
    double s = 0;
    rc = dspex_metrics_score(&m, DSPEX_METRIC_F1, &pred, 1, &gold, 1, &s);
    if ((rc == DSPEX_METRICS_OK) != (valid_p && valid_g)) abort();
    if (rc == DSPEX_METRICS_OK) {
        double f = score(&m, DSPEX_METRIC_F1, &pred, &gold);
        double r = score(&m, DSPEX_METRIC_F1, &gold, &pred);
        if (memcmp(&f, &r, sizeof f) != 0) abort(); /* (2p)r == (2r)p exactly */
        double h = score(&m, DSPEX_METRIC_HOTPOT_F1, &pred, &gold);
        if (h != f && h != 0.0) abort();
        double pr = score(&m, DSPEX_METRIC_PRECISION, &pred, &gold);
        if ((pr == 0.0) != (f == 0.0)) abort();
        double e = score(&m, DSPEX_METRIC_EM, &pred, &gold);
        if (e == 1.0 && plen > 0 && f != 1.0) abort();
        /* a text against itself */
        if (score(&m, DSPEX_METRIC_EM, &pred, &pred) != 1.0) abort();
        if (score(&m, DSPEX_METRIC_F1, &pred, &pred) != (plen ? 1.0 : 0.0)) abort();
        if (score(&m, DSPEX_METRIC_PASSAGE_MATCH, &pred, &pred) != 1.0) abort();
        score(&m, DSPEX_METRIC_PASSAGE_MATCH, &gold, &pred);
    }
    dspex_metrics_free(&m);
    return 0;
}
