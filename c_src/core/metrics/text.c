/* normalize_text and its Unicode steps: NFD, str.lower, punctuation, articles and
 * whitespace, each exactly as CPython 3.11 runs them (see include/dspex/metrics.h). */
#include <stdint.h>
#include <string.h>

#include "dspex/metrics.h"
#include "dspex/utf8.h"
#include "metrics/text.h"

/* Hangul syllable decomposition constants (Unicode 3.12, as unicodedata.c uses them). */
#define HANGUL_S_BASE 0xAC00u
#define HANGUL_L_BASE 0x1100u
#define HANGUL_V_BASE 0x1161u
#define HANGUL_T_BASE 0x11A7u
#define HANGUL_T_COUNT 28u
#define HANGUL_N_COUNT 588u /* V_COUNT * T_COUNT */
#define HANGUL_S_COUNT 11172u

/* Runs of combining marks up to this length are insertion-sorted (CPython's own
 * algorithm); longer ones get a stable counting sort so that a string of a million marks
 * costs O(n), not O(n^2). Real text has runs of 1-4 marks. */
#define INSERTION_SORT_MAX 32

/* Bytes of the first (stack) chunk of a normalize call's arena: strings of a few hundred
 * characters never touch malloc. */
#define NORMALIZE_STACK_BYTES 8192

static inline uint8_t ccc_of(uint32_t cp) { return cp < 0x300 ? 0 : dspex_uni(cp)->ccc; }

static inline uint32_t decode_seq(const unsigned char *s, size_t k) {
    switch (k) {
    case 2: return ((uint32_t)(s[0] & 0x1F) << 6) | (s[1] & 0x3F);
    case 3: return ((uint32_t)(s[0] & 0x0F) << 12) | ((uint32_t)(s[1] & 0x3F) << 6) | (s[2] & 0x3F);
    default:
        return ((uint32_t)(s[0] & 0x07) << 18) | ((uint32_t)(s[1] & 0x3F) << 12) |
               ((uint32_t)(s[2] & 0x3F) << 6) | (s[3] & 0x3F);
    }
}

/* Writes the full canonical decomposition of cp to out (when not NULL); returns its
 * length. */
static inline size_t decompose_cp(uint32_t cp, uint32_t *out) {
    if (cp >= HANGUL_S_BASE && cp < HANGUL_S_BASE + HANGUL_S_COUNT) {
        uint32_t s = cp - HANGUL_S_BASE;
        uint32_t t = s % HANGUL_T_COUNT;
        if (out) {
            out[0] = HANGUL_L_BASE + s / HANGUL_N_COUNT;
            out[1] = HANGUL_V_BASE + (s % HANGUL_N_COUNT) / HANGUL_T_COUNT;
            if (t) out[2] = HANGUL_T_BASE + t;
        }
        return t ? 3 : 2;
    }
    const dspex_uni_record *r = dspex_uni(cp);
    if (r->decomp == 0) {
        if (out) out[0] = cp;
        return 1;
    }
    const uint32_t *d = &dspex_uni_decomp[r->decomp];
    size_t n = d[0];
    if (out) memcpy(out, d + 1, n * sizeof(uint32_t));
    return n;
}

/* One pass over the bytes: validates them and decomposes each code point into out (or
 * only counts when out is NULL). Returns the count, or SIZE_MAX with *err_offset set. */
static size_t decompose(const unsigned char *s, size_t len, uint32_t *out, size_t *err_offset) {
    size_t n = 0, i = 0;
    while (i < len) {
        unsigned char c = s[i];
        if (c < 0x80) { /* ASCII has no decomposition */
            if (out) out[n] = c;
            n++;
            i++;
            continue;
        }
        size_t k = dspex_utf8_seq(s, len, i);
        if (k == 0) {
            if (err_offset) *err_offset = i;
            return SIZE_MAX;
        }
        n += decompose_cp(decode_seq(s + i, k), out ? out + n : NULL);
        i += k;
    }
    return n;
}

/* Stable sort of a run of combining marks by combining class. */
static void sort_run(uint32_t *v, size_t n, uint32_t *tmp) {
    if (n <= INSERTION_SORT_MAX || tmp == NULL) {
        for (size_t i = 1; i < n; i++) {
            uint32_t cur = v[i];
            uint8_t c = ccc_of(cur);
            size_t j = i;
            while (j > 0 && ccc_of(v[j - 1]) > c) {
                v[j] = v[j - 1];
                j--;
            }
            v[j] = cur;
        }
        return;
    }
    size_t start[257] = {0};
    for (size_t i = 0; i < n; i++) start[ccc_of(v[i]) + 1]++;
    for (int k = 1; k <= 256; k++) start[k] += start[k - 1];
    for (size_t i = 0; i < n; i++) tmp[start[ccc_of(v[i])]++] = v[i];
    memcpy(v, tmp, n * sizeof(uint32_t));
}

/* Canonical ordering: every maximal run of non-starters is stably sorted by class. */
static int canonical_order(dspex_arena *a, uint32_t *v, size_t n) {
    uint32_t *tmp = NULL;
    size_t i = 0;
    while (i < n) {
        if (ccc_of(v[i]) == 0) {
            i++;
            continue;
        }
        size_t j = i;
        uint8_t prev = 0;
        int sorted = 1;
        for (; j < n; j++) {
            uint8_t c = ccc_of(v[j]);
            if (c == 0) break;
            if (c < prev) sorted = 0;
            prev = c;
        }
        if (!sorted) {
            if (j - i > INSERTION_SORT_MAX && tmp == NULL) {
                tmp = dspex_arena_alloc(a, n * sizeof(uint32_t));
                if (tmp == NULL) return DSPEX_METRICS_ENOMEM;
            }
            sort_run(v + i, j - i, tmp);
        }
        i = j;
    }
    return DSPEX_METRICS_OK;
}

int dspex_mt_nfd(dspex_arena *a, const char *s, size_t len, uint32_t **out, size_t *n,
                 size_t *err_offset) {
    const unsigned char *u = (const unsigned char *)s;
    size_t count = decompose(u, len, NULL, err_offset);
    if (count == SIZE_MAX) return DSPEX_METRICS_EUTF8;
    uint32_t *v = dspex_arena_alloc(a, (count ? count : 1) * sizeof(uint32_t));
    if (v == NULL) return DSPEX_METRICS_ENOMEM;
    decompose(u, len, v, NULL);
    int rc = canonical_order(a, v, count);
    if (rc != DSPEX_METRICS_OK) return rc;
    *out = v;
    *n = count;
    return DSPEX_METRICS_OK;
}

/* CPython's handle_capital_sigma: U+03A3 at v[i] lowers to final sigma iff, skipping
 * case-ignorable code points, the one before is cased and the one after is missing or
 * not cased. */
static int final_sigma(const uint32_t *v, size_t n, size_t i) {
    uint8_t f = 0;
    size_t j = i;
    int found = 0;
    while (j > 0) {
        f = dspex_mt_flags(v[--j]);
        if (!(f & DSPEX_UNI_CASE_IGNORABLE)) {
            found = 1;
            break;
        }
    }
    if (!found || !(f & DSPEX_UNI_CASED)) return 0;
    for (j = i + 1; j < n; j++) {
        f = dspex_mt_flags(v[j]);
        if (!(f & DSPEX_UNI_CASE_IGNORABLE)) return !(f & DSPEX_UNI_CASED);
    }
    return 1;
}

size_t dspex_mt_lower_into(const uint32_t *v, size_t n, int drop_punct, uint32_t *o) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t cp = v[i];
        if (cp < 0x80) {
            if (cp >= 'A' && cp <= 'Z') cp += 32;
            if (drop_punct && (dspex_mt_flags(cp) & DSPEX_UNI_PUNCT)) continue;
            o[k++] = cp;
            continue;
        }
        const dspex_uni_record *r = dspex_uni(cp);
        if (cp == 0x03A3) {
            o[k++] = final_sigma(v, n, i) ? 0x03C2 : 0x03C3;
        } else if (r->flags & DSPEX_UNI_LOWER_EXP) {
            const uint32_t *e = &dspex_uni_lower[r->lower];
            for (uint32_t x = 1; x <= e[0]; x++) {
                if (drop_punct && e[x] < 0x80 && (dspex_mt_flags(e[x]) & DSPEX_UNI_PUNCT)) continue;
                o[k++] = e[x];
            }
        } else {
            uint32_t l = (uint32_t)((int64_t)cp + r->lower);
            if (drop_punct && l < 0x80 && (dspex_mt_flags(l) & DSPEX_UNI_PUNCT)) continue;
            o[k++] = l;
        }
    }
    return k;
}

int dspex_mt_lower(dspex_arena *a, const uint32_t *v, size_t n, int drop_punct, uint32_t **out,
                   size_t *out_n) {
    if (n > SIZE_MAX / (DSPEX_UNI_MAX_LOWER * sizeof(uint32_t)) - 1) return DSPEX_METRICS_ENOMEM;
    uint32_t *o = dspex_arena_alloc(a, (n * DSPEX_UNI_MAX_LOWER + 1) * sizeof(uint32_t));
    if (o == NULL) return DSPEX_METRICS_ENOMEM;
    *out = o;
    *out_n = dspex_mt_lower_into(v, n, drop_punct, o);
    return DSPEX_METRICS_OK;
}

/* Small staging area in front of dspex_buf_put: one call per 256 bytes, not per
 * character. */
typedef struct {
    dspex_buf *b;
    size_t len;
    char data[256];
} utf8_out; /* only data[0..len) is ever read, so `data` needs no initialization */

static inline void out_flush(utf8_out *o) {
    dspex_buf_put(o->b, o->data, o->len);
    o->len = 0;
}

static inline void out_cp(utf8_out *o, uint32_t cp) {
    if (o->len + 4 > sizeof o->data) out_flush(o);
    if (cp < 0x80)
        o->data[o->len++] = (char)cp;
    else
        o->len += dspex_utf8_encode(o->data + o->len, cp);
}

void dspex_mt_put_utf8(dspex_buf *b, const uint32_t *v, size_t n) {
    utf8_out o;
    o.b = b;
    o.len = 0;
    for (size_t i = 0; i < n; i++) out_cp(&o, v[i]);
    out_flush(&o);
}

static inline int is_word(uint32_t cp) {
    if (cp < 0x80)
        return (cp >= 'a' && cp <= 'z') || (cp >= '0' && cp <= '9') || (cp >= 'A' && cp <= 'Z') ||
               cp == '_';
    return (dspex_mt_flags(cp) & DSPEX_UNI_WORD) != 0;
}

static inline int is_space(uint32_t cp) {
    if (cp < 0x80) return cp == ' ' || (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x1F);
    return (dspex_mt_flags(cp) & DSPEX_UNI_SPACE) != 0;
}

/* A whole word (maximal run of \w) that \b(a|an|the)\b matches. */
static inline int is_article(const uint32_t *w, size_t n) {
    switch (n) {
    case 1: return w[0] == 'a';
    case 2: return w[0] == 'a' && w[1] == 'n';
    case 3: return w[0] == 't' && w[1] == 'h' && w[2] == 'e';
    default: return 0;
    }
}

/* re.sub(r"\b(a|an|the)\b", " ", text) then " ".join(text.split()), in one pass: an
 * article becomes a separator, runs of whitespace become one space, none at the ends. */
static void articles_and_spaces(const uint32_t *v, size_t n, dspex_buf *b) {
    utf8_out o;
    o.b = b;
    o.len = 0;
    int pending = 0, any = 0;
    size_t i = 0;
    while (i < n) {
        if (is_word(v[i])) {
            size_t j = i + 1;
            while (j < n && is_word(v[j])) j++;
            if (is_article(v + i, j - i)) {
                pending = any;
            } else {
                if (pending) out_cp(&o, ' ');
                for (size_t k = i; k < j; k++) out_cp(&o, v[k]);
                pending = 0;
                any = 1;
            }
            i = j;
        } else if (is_space(v[i])) {
            pending = any;
            i++;
        } else {
            if (pending) out_cp(&o, ' ');
            out_cp(&o, v[i]);
            pending = 0;
            any = 1;
            i++;
        }
    }
    out_flush(&o);
}

/* normalize_text of pure ASCII (most answers): NFD is the identity and no final sigma
 * can occur, so the steps run on bytes without decoding. Same rules as the general path;
 * the golden tests cover both. */
static int ascii_normalize(const unsigned char *s, size_t len, unsigned char *t, dspex_buf *b) {
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = s[i];
        if (c >= 'A' && c <= 'Z') c += 32;
        if (dspex_mt_flags(c) & DSPEX_UNI_PUNCT) continue;
        t[n++] = c;
    }
    utf8_out o;
    o.b = b;
    o.len = 0;
    int pending = 0, any = 0;
    size_t i = 0;
    while (i < n) {
        unsigned char c = t[i];
        if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) {
            size_t j = i + 1;
            while (j < n && ((t[j] >= 'a' && t[j] <= 'z') || (t[j] >= '0' && t[j] <= '9'))) j++;
            size_t w = j - i;
            int article = (w == 1 && c == 'a') || (w == 2 && c == 'a' && t[i + 1] == 'n') ||
                          (w == 3 && c == 't' && t[i + 1] == 'h' && t[i + 2] == 'e');
            if (article) {
                pending = any;
            } else {
                if (pending) out_cp(&o, ' ');
                for (size_t k = i; k < j; k++) out_cp(&o, t[k]);
                pending = 0;
                any = 1;
            }
            i = j;
        } else if (is_space(c)) {
            pending = any;
            i++;
        } else {
            if (pending) out_cp(&o, ' ');
            out_cp(&o, c);
            pending = 0;
            any = 1;
            i++;
        }
    }
    out_flush(&o);
    return b->oom ? DSPEX_METRICS_ENOMEM : DSPEX_METRICS_OK;
}

int dspex_normalize_text(const char *s, size_t len, dspex_buf *out, size_t *err_offset) {
    if (len > DSPEX_METRICS_MAX_TEXT) return DSPEX_METRICS_ETOOBIG;
    _Alignas(16) unsigned char stack[NORMALIZE_STACK_BYTES];
    dspex_arena a;
    /* Ceiling: NFD (<= 1.5 code points per byte), its sort buffer and the lowered copy
     * (<= 2 per code point), 4 bytes each: 24 bytes per input byte. */
    dspex_arena_init_buf(&a, 32 * len + 65536, stack, sizeof stack);
    const unsigned char *u = (const unsigned char *)s;
    size_t k = 0;
    while (k < len && u[k] < 0x80) k++;
    int rc;
    if (k == len) {
        unsigned char *t = dspex_arena_alloc(&a, len + 1);
        rc = t ? ascii_normalize(u, len, t, out) : DSPEX_METRICS_ENOMEM;
    } else {
        uint32_t *nfd = NULL, *low = NULL;
        size_t n = 0, m = 0;
        rc = dspex_mt_nfd(&a, s, len, &nfd, &n, err_offset);
        if (rc == DSPEX_METRICS_OK) rc = dspex_mt_lower(&a, nfd, n, 1, &low, &m);
        if (rc == DSPEX_METRICS_OK) {
            articles_and_spaces(low, m, out);
            if (out->oom) rc = DSPEX_METRICS_ENOMEM;
        }
    }
    dspex_arena_free(&a);
    return rc;
}

const char *dspex_metrics_strerror(int status) {
    switch (status) {
    case DSPEX_METRICS_OK: return "ok";
    case DSPEX_METRICS_EUTF8: return "invalid UTF-8";
    case DSPEX_METRICS_ETOOBIG: return "string longer than 16 MiB";
    case DSPEX_METRICS_ENOMEM: return "out of memory";
    case DSPEX_METRICS_ENOGOLDS: return "the list of gold answers is empty";
    case DSPEX_METRICS_EARG: return "this metric takes exactly one prediction";
    default: return "unknown error";
    }
}

const char *dspex_metrics_unicode_version(void) { return DSPEX_UNI_UNICODE_VERSION; }
