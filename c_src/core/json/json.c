/* DSPex JSON core: strict RFC 8259 pull parser, bignum digit conversion and string
 * escaping. See include/dspex/json.h. */
#include "dspex/json.h"
#include "dspex/numfmt.h"
#include "dspex/utf8.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { ST_VALUE, ST_ARRAY_FIRST, ST_OBJECT_FIRST, ST_KEY, ST_AFTER, ST_DONE, ST_ERROR };
enum { K_ARRAY = 1, K_OBJECT = 2 };

static const double POW10[23] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                 1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

/* ------------------------------------------------------------------------------------ */
/* Parser                                                                               */

void dspex_json_parser_init(dspex_json_parser *p, const void *buf, size_t len, unsigned max_depth) {
    memset(p, 0, sizeof(*p));
    p->buf = (const unsigned char *)buf;
    p->len = len;
    p->max_depth = max_depth ? max_depth : DSPEX_JSON_DEFAULT_MAX_DEPTH;
    p->state = ST_VALUE;
}

void dspex_json_parser_free(dspex_json_parser *p) {
    free(p->stack);
    free(p->scratch);
    p->stack = NULL;
    p->scratch = NULL;
    p->stack_cap = p->scratch_cap = 0;
}

static int fail(dspex_json_parser *p, int code, size_t offset, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->err_msg, sizeof(p->err_msg), fmt, ap);
    va_end(ap);
    p->err_code = code;
    p->err_offset = offset;
    p->state = ST_ERROR;
    return DSPEX_JSON_EV_ERROR;
}

/* "character 'x'" or "byte 0xNN" */
static void describe_byte(unsigned char c, char *out, size_t cap) {
    if (c > 0x20 && c < 0x7f)
        snprintf(out, cap, "character '%c'", c);
    else if (c == ' ')
        snprintf(out, cap, "space");
    else if (c == '\n')
        snprintf(out, cap, "newline");
    else if (c == '\t')
        snprintf(out, cap, "tab");
    else
        snprintf(out, cap, "byte 0x%02X", c);
}

static int fail_unexpected(dspex_json_parser *p, size_t i, const char *expected) {
    if (i >= p->len)
        return fail(p, DSPEX_JSON_ERR_SYNTAX, i, "unexpected end of input at byte %zu, expected %s", i,
                    expected);
    char what[32];
    describe_byte(p->buf[i], what, sizeof(what));
    return fail(p, DSPEX_JSON_ERR_SYNTAX, i, "unexpected %s at byte %zu, expected %s", what, i, expected);
}

static int scratch_reserve(dspex_json_parser *p, size_t used, size_t extra) {
    if (used + extra <= p->scratch_cap) return 0;
    size_t cap = p->scratch_cap ? p->scratch_cap : 256;
    while (cap < used + extra) {
        if (cap > SIZE_MAX / 2) return -1;
        cap *= 2;
    }
    char *s = realloc(p->scratch, cap);
    if (s == NULL) return -1;
    p->scratch = s;
    p->scratch_cap = cap;
    return 0;
}

static inline size_t skip_ws(const unsigned char *b, size_t n, size_t i) {
    while (i < n) {
        unsigned char c = b[i];
        if (c == ' ' || c == '\n' || c == '\r' || c == '\t')
            i++;
        else
            break;
    }
    return i;
}

#define ONES 0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL

/* Nonzero if any byte of w is '"', '\\', < 0x20 or >= 0x80. */
static inline uint64_t needs_attention(uint64_t w) {
    uint64_t q = w ^ (ONES * '"');
    uint64_t s = w ^ (ONES * '\\');
    uint64_t zq = (q - ONES) & ~q;
    uint64_t zs = (s - ONES) & ~s;
    uint64_t lt = (w - ONES * 0x20) & ~w;
    return (zq | zs | lt | w) & HIGHS;
}

/* Index of the first byte at or after i that is '"', '\\', a control byte or non-ASCII. */
static inline size_t scan_plain(const unsigned char *b, size_t n, size_t i) {
    while (i + 8 <= n) {
        uint64_t w;
        memcpy(&w, b + i, 8);
        if (needs_attention(w)) break;
        i += 8;
    }
    while (i < n) {
        unsigned char c = b[i];
        if (c == '"' || c == '\\' || c < 0x20 || c >= 0x80) break;
        i++;
    }
    return i;
}

static int read_hex4(const unsigned char *b, size_t n, size_t i, unsigned *out) {
    long v = dspex_hex4(b, n, i);
    if (v < 0) return -1;
    *out = (unsigned)v;
    return 0;
}

/* Length of the maximal subpart of an ill-formed UTF-8 sequence at b[i] (a byte >= 0x80
 * that dspex_utf8_seq rejected): the lead byte plus the continuation bytes that could
 * still have completed it. Each maximal subpart becomes one U+FFFD, as in the WHATWG
 * Encoding Standard's decoder (browsers) and Unicode's recommended practice (3.9). */
static size_t utf8_invalid_len(const unsigned char *b, size_t n, size_t i) {
    unsigned char c = b[i];
    size_t need;
    unsigned char lo = 0x80, hi = 0xBF; /* the range of the first continuation byte */
    if (c >= 0xC2 && c <= 0xDF) need = 1;
    else if (c >= 0xE0 && c <= 0xEF) {
        need = 2;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 3;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else {
        return 1;
    }
    size_t k = 1;
    while (k <= need && i + k < n && b[i + k] >= lo && b[i + k] <= hi) {
        k++;
        lo = 0x80;
        hi = 0xBF;
    }
    return k;
}

/* Parses a string whose opening quote is at b[i-1]. Returns 0 and sets ev->str/len and
 * p->pos past the closing quote, or returns -1 after fail(). With
 * DSPEX_JSON_PARSE_REPLACE_INVALID, ill-formed UTF-8 and lone surrogate escapes become
 * U+FFFD instead of errors. */
static int parse_string(dspex_json_parser *p, size_t i, dspex_json_event *ev) {
    const unsigned char *b = p->buf;
    size_t n = p->len;
    size_t start = i, j = i;
    int esc = 0;
    size_t out = 0;       /* bytes in scratch (escape mode) */
    size_t run = start;   /* start of the pending plain run (escape mode) */
    const int replace = p->flags & DSPEX_JSON_PARSE_REPLACE_INVALID;

    for (;;) {
        j = scan_plain(b, n, j);
        if (j >= n) {
            fail(p, DSPEX_JSON_ERR_STRING, start - 1, "unterminated string starting at byte %zu", start - 1);
            return -1;
        }
        unsigned char c = b[j];
        if (c == '"') {
            ev->offset = start;
            if (!esc) {
                ev->str = (const char *)b + start;
                ev->len = j - start;
                ev->in_input = 1;
            } else {
                size_t r = j - run;
                if (scratch_reserve(p, out, r) < 0) goto nomem;
                memcpy(p->scratch + out, b + run, r);
                out += r;
                ev->str = p->scratch;
                ev->len = out;
                ev->in_input = 0;
            }
            p->pos = j + 1;
            return 0;
        }
        if (c >= 0x80) {
            /* a run of multi-byte characters (CJK, Cyrillic, emoji...) */
            do {
                size_t k = dspex_utf8_seq(b, n, j);
                if (k == 0) {
                    if (!replace) {
                        fail(p, DSPEX_JSON_ERR_STRING, j, "invalid UTF-8 byte 0x%02X in string at byte %zu", b[j], j);
                        return -1;
                    }
                    esc = 1; /* from here the string is built in scratch */
                    size_t r = j - run;
                    if (scratch_reserve(p, out, r + 3) < 0) goto nomem;
                    memcpy(p->scratch + out, b + run, r);
                    out += r;
                    out += dspex_utf8_encode(p->scratch + out, 0xFFFD);
                    j = run = j + utf8_invalid_len(b, n, j);
                    continue;
                }
                j += k;
            } while (j < n && b[j] >= 0x80);
            continue;
        }
        if (c < 0x20) {
            fail(p, DSPEX_JSON_ERR_STRING, j,
                 "unescaped control character 0x%02X in string at byte %zu (write it as \\u%04X)", c, j, c);
            return -1;
        }
        /* backslash */
        esc = 1;
        {
            size_t r = j - run;
            if (scratch_reserve(p, out, r + 4) < 0) goto nomem;
            memcpy(p->scratch + out, b + run, r);
            out += r;
        }
        if (j + 1 >= n) {
            fail(p, DSPEX_JSON_ERR_STRING, start - 1, "unterminated string starting at byte %zu", start - 1);
            return -1;
        }
        unsigned char e = b[j + 1];
        char ch;
        switch (e) {
        case '"': ch = '"'; break;
        case '\\': ch = '\\'; break;
        case '/': ch = '/'; break;
        case 'b': ch = '\b'; break;
        case 'f': ch = '\f'; break;
        case 'n': ch = '\n'; break;
        case 'r': ch = '\r'; break;
        case 't': ch = '\t'; break;
        case 'u': {
            unsigned cp;
            if (read_hex4(b, n, j + 2, &cp) < 0) {
                fail(p, DSPEX_JSON_ERR_STRING, j, "invalid \\u escape at byte %zu, expected 4 hex digits", j);
                return -1;
            }
            size_t next = j + 6;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                unsigned lo;
                if (next + 1 < n && b[next] == '\\' && b[next + 1] == 'u' && read_hex4(b, n, next + 2, &lo) == 0 &&
                    lo >= 0xDC00 && lo <= 0xDFFF) {
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    next += 6;
                } else if (replace) {
                    cp = 0xFFFD; /* a lone high surrogate (Python's json.dumps writes them) */
                } else {
                    fail(p, DSPEX_JSON_ERR_STRING, j,
                         "lone surrogate \\u%04X at byte %zu (a high surrogate must be followed by a \\uDC00-\\uDFFF escape)",
                         cp, j);
                    return -1;
                }
            } else if (cp >= 0xDC00 && cp <= 0xDFFF && replace) {
                cp = 0xFFFD;
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                fail(p, DSPEX_JSON_ERR_STRING, j, "lone surrogate \\u%04X at byte %zu (low surrogate without a high one)",
                     cp, j);
                return -1;
            }
            out += dspex_utf8_encode(p->scratch + out, cp);
            j = run = next;
            continue;
        }
        default: {
            char what[32];
            describe_byte(e, what, sizeof(what));
            fail(p, DSPEX_JSON_ERR_STRING, j, "invalid escape at byte %zu: backslash followed by %s", j, what);
            return -1;
        }
        }
        p->scratch[out++] = ch;
        j = run = j + 2;
    }
nomem:
    fail(p, DSPEX_JSON_ERR_NOMEM, j, "out of memory");
    return -1;
}

static inline int is_digit(unsigned char c) { return c >= '0' && c <= '9'; }

/* m * 10^e10 correctly rounded, for m < 2^64 and |e10| <= 19 (when the product fits in
 * 128 bits); -1.0 when out of that range. A positive power is an exact 128-bit product
 * converted once (integer-to-double conversion rounds correctly). A negative one is a
 * 128-bit division of m scaled by 2^s, whose quotient keeps at least 62 significant bits
 * and a sticky bit for a nonzero remainder, so the one conversion rounds correctly too. */
static double exact_scale(uint64_t m, long long e10) {
    if (m == 0 || e10 < -19 || e10 > 19) return -1.0;
    if (e10 >= 0) return (double)((unsigned __int128)m * dspex_pow10_u64[e10]);
    int lz = __builtin_clzll(m);
    int sh = 63 + lz; /* m << sh < 2^127 */
    unsigned __int128 num = (unsigned __int128)m << sh;
    uint64_t d = dspex_pow10_u64[-e10];
    unsigned __int128 q = num / d;
    unsigned __int128 r = num - q * d;
    q |= (r != 0);
    return ldexp((double)q, -sh);
}

/* Parses a number starting at b[i]. Returns 0 with ev filled and p->pos set, or -1. */
static int parse_number(dspex_json_parser *p, size_t i, dspex_json_event *ev) {
    const unsigned char *b = p->buf;
    size_t n = p->len;
    size_t start = i;
    int neg = 0;
    if (b[i] == '-') {
        neg = 1;
        i++;
    }
    if (i >= n || !is_digit(b[i])) {
        if (i >= n) {
            fail(p, DSPEX_JSON_ERR_NUMBER, i, "unexpected end of input at byte %zu, expected a digit after '-'", i);
        } else {
            char what[32];
            describe_byte(b[i], what, sizeof(what));
            fail(p, DSPEX_JSON_ERR_NUMBER, i, "unexpected %s at byte %zu, expected a digit after '-'", what, i);
        }
        return -1;
    }
    size_t int_start = i;
    if (b[i] == '0') {
        i++;
        if (i < n && is_digit(b[i])) {
            fail(p, DSPEX_JSON_ERR_NUMBER, int_start, "invalid number at byte %zu: leading zeros are not allowed",
                 int_start);
            return -1;
        }
    } else {
        while (i < n && is_digit(b[i])) i++;
    }
    size_t int_end = i;
    size_t frac_start = 0, frac_end = 0;
    int is_float = 0;
    long long exp = 0;
    if (i < n && b[i] == '.') {
        i++;
        if (i >= n || !is_digit(b[i])) {
            fail(p, DSPEX_JSON_ERR_NUMBER, i, "invalid number at byte %zu: expected a digit after '.'", i);
            return -1;
        }
        frac_start = i;
        while (i < n && is_digit(b[i])) i++;
        frac_end = i;
        is_float = 1;
    }
    if (i < n && (b[i] == 'e' || b[i] == 'E')) {
        i++;
        int eneg = 0;
        if (i < n && (b[i] == '+' || b[i] == '-')) {
            eneg = b[i] == '-';
            i++;
        }
        if (i >= n || !is_digit(b[i])) {
            fail(p, DSPEX_JSON_ERR_NUMBER, i, "invalid number at byte %zu: expected a digit in the exponent", i);
            return -1;
        }
        while (i < n && is_digit(b[i])) {
            if (exp < 100000000) exp = exp * 10 + (b[i] - '0');
            i++;
        }
        if (eneg) exp = -exp;
        is_float = 1;
    }
    p->pos = i;
    ev->offset = start;

    if (!is_float) {
        size_t nd = int_end - int_start;
        if (nd <= 18) {
            int64_t v = 0;
            for (size_t k = int_start; k < int_end; k++) v = v * 10 + (b[k] - '0');
            ev->type = DSPEX_JSON_EV_INT;
            ev->i = neg ? -v : v;
            return 0;
        }
        if (nd > DSPEX_JSON_MAX_INT_DIGITS) {
            fail(p, DSPEX_JSON_ERR_NUMBER, start, "integer at byte %zu has %zu digits, more than the limit of %d", start,
                 nd, DSPEX_JSON_MAX_INT_DIGITS);
            return -1;
        }
        if (nd <= 19) {
            uint64_t v = 0;
            for (size_t k = int_start; k < int_end; k++) v = v * 10 + (uint64_t)(b[k] - '0');
            if (!neg && v <= (uint64_t)INT64_MAX) {
                ev->type = DSPEX_JSON_EV_INT;
                ev->i = (int64_t)v;
                return 0;
            }
            if (neg && v <= (uint64_t)INT64_MAX + 1) {
                ev->type = DSPEX_JSON_EV_INT;
                ev->i = v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;
                return 0;
            }
        }
        ev->type = DSPEX_JSON_EV_BIGINT;
        ev->str = (const char *)b + start;
        ev->len = int_end - start;
        ev->in_input = 1;
        return 0;
    }

    /* Float: exact fast path for <= 15 significant digits and |exponent| <= 22. */
    uint64_t m = 0;
    int nd = 0, inexact = 0;
    long long e10 = 0;
    for (size_t k = int_start; k < int_end; k++) {
        int d = b[k] - '0';
        if (m == 0 && d == 0) continue;
        if (nd < 19) {
            m = m * 10 + (uint64_t)d;
            nd++;
        } else {
            e10++;
            if (d) inexact = 1;
        }
    }
    for (size_t k = frac_start; k < frac_end; k++) {
        int d = b[k] - '0';
        if (m == 0 && d == 0) {
            e10--;
            continue;
        }
        if (nd < 19) {
            m = m * 10 + (uint64_t)d;
            nd++;
            e10--;
        } else if (d) {
            inexact = 1;
        }
    }
    e10 += exp;
    double v;
    if (m == 0) {
        v = 0.0;
    } else if (!inexact && nd <= 15 && e10 >= -22 && e10 <= 22) {
        v = (double)m;
        if (e10 < 0)
            v /= POW10[-e10];
        else
            v *= POW10[e10];
    } else if (!inexact && (v = exact_scale(m, e10)) >= 0) {
        /* 16-19 digits or a larger exponent: exact 128-bit integer arithmetic */
    } else {
        size_t tl = i - start;
        if (scratch_reserve(p, 0, tl + 1) < 0) {
            fail(p, DSPEX_JSON_ERR_NOMEM, start, "out of memory");
            return -1;
        }
        memcpy(p->scratch, b + start, tl);
        p->scratch[tl] = 0;
        v = strtod(p->scratch, NULL);
        if (isinf(v)) {
            fail(p, DSPEX_JSON_ERR_NUMBER, start, "number at byte %zu is out of range for a 64-bit float", start);
            return -1;
        }
        ev->type = DSPEX_JSON_EV_FLOAT;
        ev->d = v;
        return 0;
    }
    ev->type = DSPEX_JSON_EV_FLOAT;
    ev->d = neg ? -v : v;
    return 0;
}

static int push(dspex_json_parser *p, int kind, size_t at) {
    if (p->depth >= p->max_depth) {
        fail(p, DSPEX_JSON_ERR_DEPTH, at, "nesting depth exceeds max_depth (%u) at byte %zu", p->max_depth, at);
        return -1;
    }
    if (p->depth >= p->stack_cap) {
        size_t cap = p->stack_cap ? p->stack_cap * 2 : 64;
        if (cap > p->max_depth) cap = p->max_depth;
        unsigned char *s = realloc(p->stack, cap);
        if (s == NULL) {
            fail(p, DSPEX_JSON_ERR_NOMEM, at, "out of memory");
            return -1;
        }
        p->stack = s;
        p->stack_cap = cap;
    }
    p->stack[p->depth++] = (unsigned char)kind;
    return 0;
}

static int literal(dspex_json_parser *p, size_t i, const char *word, size_t wl) {
    const unsigned char *b = p->buf;
    for (size_t k = 0; k < wl; k++) {
        if (i + k >= p->len || b[i + k] != (unsigned char)word[k]) {
            char exp[32];
            snprintf(exp, sizeof(exp), "'%s'", word);
            fail_unexpected(p, i + k, exp);
            return -1;
        }
    }
    p->pos = i + wl;
    return 0;
}

int dspex_json_next(dspex_json_parser *p, dspex_json_event *ev) {
    const unsigned char *b = p->buf;
    size_t n = p->len;
    size_t i = p->pos;
    ev->in_input = 0;

    for (;;) {
        i = skip_ws(b, n, i);
        switch (p->state) {
        case ST_DONE:
            ev->type = DSPEX_JSON_EV_END;
            return DSPEX_JSON_EV_END;
        case ST_ERROR:
            ev->type = DSPEX_JSON_EV_ERROR;
            return DSPEX_JSON_EV_ERROR;
        case ST_AFTER: {
            if (p->depth == 0) {
                if (i == n) {
                    p->pos = i;
                    p->state = ST_DONE;
                    ev->type = DSPEX_JSON_EV_END;
                    ev->offset = i;
                    return DSPEX_JSON_EV_END;
                }
                return ev->type = fail_unexpected(p, i, "end of input after the top-level value");
            }
            int kind = p->stack[p->depth - 1];
            if (i < n) {
                unsigned char c = b[i];
                if (c == ',') {
                    i++;
                    p->state = kind == K_OBJECT ? ST_KEY : ST_VALUE;
                    continue;
                }
                if ((kind == K_ARRAY && c == ']') || (kind == K_OBJECT && c == '}')) {
                    p->depth--;
                    p->pos = i + 1;
                    ev->offset = i;
                    return ev->type = kind == K_ARRAY ? DSPEX_JSON_EV_ARRAY_END : DSPEX_JSON_EV_OBJECT_END;
                }
            }
            return ev->type = fail_unexpected(p, i, kind == K_ARRAY ? "',' or ']'" : "',' or '}'");
        }
        case ST_ARRAY_FIRST:
            if (i < n && b[i] == ']') {
                p->depth--;
                p->pos = i + 1;
                p->state = ST_AFTER;
                ev->offset = i;
                return ev->type = DSPEX_JSON_EV_ARRAY_END;
            }
            break; /* a value */
        case ST_OBJECT_FIRST:
        case ST_KEY:
            if (i < n && b[i] == '}' && p->state == ST_OBJECT_FIRST) {
                p->depth--;
                p->pos = i + 1;
                p->state = ST_AFTER;
                ev->offset = i;
                return ev->type = DSPEX_JSON_EV_OBJECT_END;
            }
            if (i >= n || b[i] != '"')
                return ev->type = fail_unexpected(
                           p, i, p->state == ST_OBJECT_FIRST ? "a string key or '}'" : "a string key");
            if (parse_string(p, i + 1, ev) < 0) return ev->type = DSPEX_JSON_EV_ERROR;
            i = skip_ws(b, n, p->pos);
            if (i >= n || b[i] != ':') return ev->type = fail_unexpected(p, i, "':' after the object key");
            p->pos = i + 1;
            p->state = ST_VALUE;
            return ev->type = DSPEX_JSON_EV_KEY;
        default:
            break;
        }

        /* A value is expected at b[i]. */
        if (i >= n)
            return ev->type = fail_unexpected(p, i, p->state == ST_ARRAY_FIRST ? "a value or ']'" : "a value");
        unsigned char c = b[i];
        ev->offset = i;
        switch (c) {
        case '{':
            if (push(p, K_OBJECT, i) < 0) return ev->type = DSPEX_JSON_EV_ERROR;
            p->pos = i + 1;
            p->state = ST_OBJECT_FIRST;
            return ev->type = DSPEX_JSON_EV_OBJECT_START;
        case '[':
            if (push(p, K_ARRAY, i) < 0) return ev->type = DSPEX_JSON_EV_ERROR;
            p->pos = i + 1;
            p->state = ST_ARRAY_FIRST;
            return ev->type = DSPEX_JSON_EV_ARRAY_START;
        case '"':
            if (parse_string(p, i + 1, ev) < 0) return ev->type = DSPEX_JSON_EV_ERROR;
            p->state = ST_AFTER;
            return ev->type = DSPEX_JSON_EV_STRING;
        case 't':
            if (literal(p, i, "true", 4) < 0) return ev->type = DSPEX_JSON_EV_ERROR;
            p->state = ST_AFTER;
            return ev->type = DSPEX_JSON_EV_TRUE;
        case 'f':
            if (literal(p, i, "false", 5) < 0) return ev->type = DSPEX_JSON_EV_ERROR;
            p->state = ST_AFTER;
            return ev->type = DSPEX_JSON_EV_FALSE;
        case 'n':
            if (literal(p, i, "null", 4) < 0) return ev->type = DSPEX_JSON_EV_ERROR;
            p->state = ST_AFTER;
            return ev->type = DSPEX_JSON_EV_NULL;
        default:
            if (c == '-' || is_digit(c)) {
                if (parse_number(p, i, ev) < 0) return ev->type = DSPEX_JSON_EV_ERROR;
                p->state = ST_AFTER;
                return ev->type;
            }
            return ev->type = fail_unexpected(p, i, p->state == ST_ARRAY_FIRST ? "a value or ']'" : "a value");
        }
    }
}

int dspex_json_validate(const void *buf, size_t len, unsigned max_depth, char *msg, size_t msg_cap,
                        size_t *offset) {
    dspex_json_parser p;
    dspex_json_event ev;
    dspex_json_parser_init(&p, buf, len, max_depth);
    int t;
    do {
        t = dspex_json_next(&p, &ev);
    } while (t != DSPEX_JSON_EV_ERROR && t != DSPEX_JSON_EV_END);
    int code = t == DSPEX_JSON_EV_END ? DSPEX_JSON_OK : p.err_code;
    if (code != DSPEX_JSON_OK) {
        if (msg && msg_cap) snprintf(msg, msg_cap, "%s", p.err_msg);
        if (offset) *offset = p.err_offset;
    }
    dspex_json_parser_free(&p);
    return code;
}

/* ------------------------------------------------------------------------------------ */
/* Bignum digit conversion                                                              */

size_t dspex_json_decimal_to_bytes(const char *digits, size_t nd, unsigned char *out, size_t cap) {
    size_t maxl = nd / 9 + 2;
    uint32_t *l = calloc(maxl, sizeof(uint32_t));
    if (l == NULL) return 0;
    size_t nl = 0;
    size_t k = 0;
    size_t first = nd % 9 ? nd % 9 : 9;
    while (k < nd) {
        size_t take = k == 0 ? first : 9;
        if (take > nd - k) take = nd - k;
        uint32_t chunk = 0, mul = 1;
        for (size_t t = 0; t < take; t++) {
            chunk = chunk * 10 + (uint32_t)(digits[k + t] - '0');
            mul *= 10;
        }
        k += take;
        uint64_t carry = chunk;
        for (size_t t = 0; t < nl; t++) {
            uint64_t v = (uint64_t)l[t] * mul + carry;
            l[t] = (uint32_t)v;
            carry = v >> 32;
        }
        if (carry) l[nl++] = (uint32_t)carry;
    }
    size_t nb = nl * 4;
    while (nb > 1 && ((l[(nb - 1) / 4] >> (8 * ((nb - 1) % 4))) & 0xFF) == 0) nb--;
    if (nb == 0) nb = 1;
    if (nb > cap) {
        free(l);
        return 0;
    }
    for (size_t t = 0; t < nb; t++) out[t] = nl ? (unsigned char)(l[t / 4] >> (8 * (t % 4))) : 0;
    free(l);
    return nb;
}

size_t dspex_json_bytes_to_decimal(const unsigned char *bytes, size_t nb, char *out, size_t cap) {
    size_t nl = (nb + 3) / 4;
    if (nl == 0) {
        if (cap < 1) return 0;
        out[0] = '0';
        return 1;
    }
    uint32_t *l = calloc(nl, sizeof(uint32_t));
    size_t maxg = nb * 25 / 90 + 2; /* 9-digit groups: 8*nb*log10(2)/9 */
    uint32_t *g = malloc(maxg * sizeof(uint32_t));
    if (l == NULL || g == NULL) {
        free(l);
        free(g);
        return 0;
    }
    for (size_t t = 0; t < nb; t++) l[t / 4] |= (uint32_t)bytes[t] << (8 * (t % 4));
    while (nl > 0 && l[nl - 1] == 0) nl--;
    size_t ng = 0;
    while (nl > 0 && ng < maxg) {
        uint64_t rem = 0;
        for (size_t t = nl; t-- > 0;) {
            uint64_t cur = (rem << 32) | l[t];
            l[t] = (uint32_t)(cur / 1000000000u);
            rem = cur % 1000000000u;
        }
        g[ng++] = (uint32_t)rem;
        while (nl > 0 && l[nl - 1] == 0) nl--;
    }
    size_t len = 0;
    if (ng == 0) {
        if (cap >= 1) out[len++] = '0';
    } else {
        char tmp[16];
        int w = snprintf(tmp, sizeof(tmp), "%u", g[ng - 1]);
        if ((size_t)w + (ng - 1) * 9 <= cap) {
            memcpy(out, tmp, (size_t)w);
            len = (size_t)w;
            for (size_t t = ng - 1; t-- > 0;) {
                uint32_t v = g[t];
                for (int d = 8; d >= 0; d--) {
                    out[len + (size_t)d] = (char)('0' + v % 10);
                    v /= 10;
                }
                len += 9;
            }
        }
    }
    free(l);
    free(g);
    return len;
}

/* ------------------------------------------------------------------------------------ */
/* Writer helpers                                                                       */

/* Escaped length of a byte < 0x80 that needs attention. */
static inline size_t esc_ascii_len(unsigned char c) {
    if (c == '"' || c == '\\' || c == '\b' || c == '\f' || c == '\n' || c == '\r' || c == '\t') return 2;
    if (c < 0x20) return 6;
    return 1;
}

size_t dspex_json_escaped_len(const unsigned char *s, size_t n, int flags, size_t *bad_offset) {
    size_t out = 0, i = 0;
    for (;;) {
        size_t j = scan_plain(s, n, i);
        out += j - i;
        if (j >= n) return out;
        unsigned char c = s[j];
        if (c < 0x80) {
            out += esc_ascii_len(c);
            i = j + 1;
            continue;
        }
        do {
            size_t k = dspex_utf8_seq(s, n, j);
            if (k == 0) {
                if (bad_offset) *bad_offset = j;
                return SIZE_MAX;
            }
            if (flags & DSPEX_JSON_ESCAPE_UNICODE)
                out += k == 4 ? 12 : 6;
            else
                out += k;
            j += k;
        } while (j < n && s[j] >= 0x80);
        i = j;
    }
}

static const char HEX[] = "0123456789abcdef";

static inline char *put_u(char *o, unsigned v) {
    o[0] = '\\';
    o[1] = 'u';
    o[2] = HEX[(v >> 12) & 15];
    o[3] = HEX[(v >> 8) & 15];
    o[4] = HEX[(v >> 4) & 15];
    o[5] = HEX[v & 15];
    return o + 6;
}

size_t dspex_json_escape(char *dst, const unsigned char *s, size_t n, int flags, size_t *bad_offset) {
    char *o = dst;
    size_t i = 0;
    for (;;) {
        size_t j = scan_plain(s, n, i);
        memcpy(o, s + i, j - i);
        o += j - i;
        if (j >= n) return (size_t)(o - dst);
        unsigned char c = s[j];
        if (c < 0x80) {
            switch (c) {
            case '"': *o++ = '\\'; *o++ = '"'; break;
            case '\\': *o++ = '\\'; *o++ = '\\'; break;
            case '\b': *o++ = '\\'; *o++ = 'b'; break;
            case '\f': *o++ = '\\'; *o++ = 'f'; break;
            case '\n': *o++ = '\\'; *o++ = 'n'; break;
            case '\r': *o++ = '\\'; *o++ = 'r'; break;
            case '\t': *o++ = '\\'; *o++ = 't'; break;
            default: o = put_u(o, c); break;
            }
            i = j + 1;
            continue;
        }
        if (!(flags & DSPEX_JSON_ESCAPE_UNICODE)) {
            /* validate and copy the whole run of multi-byte characters */
            size_t r = j;
            do {
                size_t k = dspex_utf8_seq(s, n, r);
                if (k == 0) {
                    if (bad_offset) *bad_offset = r;
                    return SIZE_MAX;
                }
                r += k;
            } while (r < n && s[r] >= 0x80);
            memcpy(o, s + j, r - j);
            o += r - j;
            i = r;
            continue;
        }
        size_t k = dspex_utf8_seq(s, n, j);
        if (k == 0) {
            if (bad_offset) *bad_offset = j;
            return SIZE_MAX;
        }
        unsigned cp;
        if (k == 2)
            cp = ((unsigned)(c & 0x1F) << 6) | (s[j + 1] & 0x3F);
        else if (k == 3)
            cp = ((unsigned)(c & 0x0F) << 12) | ((unsigned)(s[j + 1] & 0x3F) << 6) | (s[j + 2] & 0x3F);
        else
            cp = ((unsigned)(c & 0x07) << 18) | ((unsigned)(s[j + 1] & 0x3F) << 12) |
                 ((unsigned)(s[j + 2] & 0x3F) << 6) | (s[j + 3] & 0x3F);
        if (cp >= 0x10000) {
            cp -= 0x10000;
            o = put_u(o, 0xD800 + (cp >> 10));
            o = put_u(o, 0xDC00 + (cp & 0x3FF));
        } else {
            o = put_u(o, cp);
        }
        i = j + k;
    }
}

/* Number text lives in c_src/core/base/numfmt.c, shared with the adapters. */
int dspex_json_format_int64(char *out, int64_t v) { return dspex_fmt_int64(out, v); }

int dspex_json_format_double(char *out, double d) { return dspex_fmt_double(out, d, DSPEX_FLOAT_JSON); }
