/* JSON extraction and repair for LM output.
 *
 * A single-pass recursive-descent repairer. The output is a growable buffer that is
 * appended to; the only edits of already written output are
 *   - inserting a short token (",", ":", "}", "]", "\"") before the trailing whitespace,
 *   - removing the last comma before the trailing whitespace,
 *   - truncating back to a saved length (a string re-parse, at most twice per string),
 * and the first two are capped at REPAIR_TAIL_CAP bytes of moved whitespace (beyond that
 * the token is appended, or the comma blanked). Lookaheads are bounded by
 * REPAIR_LOOKAHEAD bytes. Nesting is limited by max_depth.
 *
 * Work is linear in the input on every path, because
 *   - every scan either consumes what it reads or is a bounded lookahead;
 *   - string re-parses draw on one budget per input (may_rescan);
 *   - after an error no further alternative runs (parse_value), so unwinding max_depth
 *     levels costs max_depth steps, not max_depth scans of the rest of the input;
 *   - the only per-level cost that does not consume input is closing the open containers
 *     before trailing whitespace: at most max_depth * REPAIR_TAIL_CAP bytes moved, a
 *     constant (2 MiB at the default depth, about 0.1 ms).
 * test/c/test_repair_linear.c holds the shapes that once broke this (issue 8 #5).
 *
 * No global mutable state: everything lives in the RepairParser context. */
#include "dspex/repair.h"
#include "dspex/utf8.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define REPAIR_TAIL_CAP 4096
#define REPAIR_LOOKAHEAD 256
/* String re-parses may re-read this many bytes plus the input length in all. */
#define REPAIR_RESCAN_SLACK (64 * 1024)
#define NOPOS ((size_t)-1)
#define REPAIR_STACK_SMALL 32

enum { QK_NONE = 0, QK_DQ = 1, QK_SQ = 2, QK_DQL = 3, QK_SQL = 4 };

typedef struct {
    const unsigned char *in;
    size_t len;
    size_t i;
    char *out;
    size_t olen, ocap;
    size_t depth, max_depth;
    size_t calls;         /* how many of the open levels are calls (kind 'f') */
    int bare_text;        /* unquoted text was read outside any container (prose) */
    unsigned char *stack; /* container kinds: 'o' object, 'a' array, 's' set, 't' tuple, 'f' call */
    size_t stack_cap;
    /* the first levels live here: extracting many small values (`{}{}{}...`, one call each)
     * then costs no allocation per value */
    unsigned char stack_small[REPAIR_STACK_SMALL];
    int err;
    const char *err_msg;
    size_t err_off;
    size_t last_close; /* output position of the last ']' written by parse_seq */
    int last_seq_empty; /* that sequence holds no element */
    int in_key;        /* parsing an object key */
    size_t rescan_left;    /* string re-parse allowance (see may_rescan) */
    size_t *rescan_shared; /* the caller's allowance shared by extract calls, or NULL */
} RepairParser;

/* ------------------------------------------------------------------------------------ */
/* errors and output buffer */

static int fail(RepairParser *p, int code, const char *msg, size_t off) {
    if (!p->err) {
        p->err = code;
        p->err_msg = msg;
        p->err_off = off;
    }
    return 0;
}

static int grow(RepairParser *p, size_t n) {
    if (p->err) return 0;
    size_t cap = p->ocap ? p->ocap : 64;
    while (cap < p->olen + n + 1) {
        if (cap > SIZE_MAX / 2) return fail(p, DSPEX_REPAIR_ERR_NOMEM, "out of memory", p->i);
        cap *= 2;
    }
    char *nb = realloc(p->out, cap);
    if (nb == NULL) return fail(p, DSPEX_REPAIR_ERR_NOMEM, "out of memory", p->i);
    p->out = nb;
    p->ocap = cap;
    return 1;
}

static inline int reserve(RepairParser *p, size_t n) {
    if (p->olen + n + 1 <= p->ocap && !p->err) return 1;
    return grow(p, n);
}

static void emit(RepairParser *p, const char *s, size_t n) {
    if (!reserve(p, n)) return;
    memcpy(p->out + p->olen, s, n);
    p->olen += n;
}

static inline void emitc(RepairParser *p, char c) {
    if (!reserve(p, 1)) return;
    p->out[p->olen++] = c;
}

static int is_ws(int c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

/* Inserts s before the whitespace that ends the output (not below `floor`). */
static size_t ins_before_ws(RepairParser *p, size_t floor, const char *s, size_t n) {
    size_t k = p->olen;
    while (k > floor && is_ws((unsigned char)p->out[k - 1]) && p->olen - k < REPAIR_TAIL_CAP) k--;
    if (k > floor && is_ws((unsigned char)p->out[k - 1])) k = p->olen; /* long run: append */
    if (!reserve(p, n)) return k;
    memmove(p->out + k + n, p->out + k, p->olen - k);
    memcpy(p->out + k, s, n);
    p->olen += n;
    return k;
}

/* Between two members of an array, tuple or object: copies the ',' the input has, or
 * inserts the missing one before the whitespace already emitted. Returns 1 when the input
 * had the comma. */
static int member_separator(RepairParser *p) {
    if (p->in[p->i] == ',') {
        emitc(p, ',');
        p->i++;
        return 1;
    }
    ins_before_ws(p, 0, ",", 1);
    return 0;
}

/* Removes a ',' that precedes only whitespace at the end of the output. */
static void strip_last_comma(RepairParser *p) {
    size_t k = p->olen;
    while (k > 0 && is_ws((unsigned char)p->out[k - 1])) {
        if (p->olen - k >= REPAIR_TAIL_CAP) return;
        k--;
    }
    if (k == 0 || p->out[k - 1] != ',') return;
    if (p->olen - k >= REPAIR_TAIL_CAP / 2) {
        p->out[k - 1] = ' ';
        return;
    }
    memmove(p->out + k - 1, p->out + k, p->olen - k);
    p->olen--;
}

static int ends_with_comma_or_newline(const RepairParser *p) {
    size_t k = p->olen;
    while (k > 0 && (p->out[k - 1] == ' ' || p->out[k - 1] == '\t' || p->out[k - 1] == '\r')) k--;
    return k > 0 && (p->out[k - 1] == ',' || p->out[k - 1] == '\n');
}

/* ------------------------------------------------------------------------------------ */
/* character classes */

static int at(const RepairParser *p, size_t i) { return i < p->len ? p->in[i] : -1; }

static int is_digit(int c) { return c >= '0' && c <= '9'; }
static int is_hex(int c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
static int is_ident_start(int c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == '$';
}
static int is_ident(int c) { return is_ident_start(c) || is_digit(c); }

static int is_delim(int c) {
    switch (c) {
    case ',': case ':': case '[': case ']': case '/': case '{': case '}':
    case '(': case ')': case '\n': case '+':
        return 1;
    default:
        return 0;
    }
}

static int is_closer(int c) { return c == '}' || c == ']' || c == ')'; }

/* Delimiter of an unquoted string: '/' only when it starts a comment. */
static int is_uq_delim(const RepairParser *p, size_t i) {
    int c = at(p, i);
    switch (c) {
    case ',': case '[': case ']': case '{': case '}': case '\n': case '+':
        return 1;
    case '/': {
        int d = at(p, i + 1);
        return d == '/' || d == '*';
    }
    default:
        return 0;
    }
}

/* Length of a valid UTF-8 sequence at i (1 for ASCII), or 0. */
static size_t utf8_len(const unsigned char *s, size_t len, size_t i) {
    return s[i] < 0x80 ? 1 : dspex_utf8_seq(s, len, i);
}

/* Quote kind at i; *n receives its byte length. */
static int quote_kind(const RepairParser *p, size_t i, size_t *n) {
    int c = at(p, i);
    if (c == '"') { *n = 1; return QK_DQ; }
    if (c == '\'') { *n = 1; return QK_SQ; }
    if (c == '`') { *n = 1; return QK_SQL; }
    if (c == 0xC2 && at(p, i + 1) == 0xB4) { *n = 2; return QK_SQL; } /* ´ */
    if (c == 0xE2 && at(p, i + 1) == 0x80) {
        int d = at(p, i + 2);
        *n = 3;
        if (d == 0x9C || d == 0x9D) return QK_DQL; /* “ ” */
        if (d == 0x98 || d == 0x99) return QK_SQL; /* ‘ ’ */
    }
    return QK_NONE;
}

static int is_quote(const RepairParser *p, size_t i) {
    size_t n;
    return quote_kind(p, i, &n) != QK_NONE;
}

static int is_end_quote(const RepairParser *p, int open, size_t i, size_t *n) {
    int k = quote_kind(p, i, n);
    switch (open) {
    case QK_DQ: return k == QK_DQ;
    case QK_SQ: return k == QK_SQ;
    case QK_SQL: return k == QK_SQL || k == QK_SQ;
    case QK_DQL: return k == QK_DQL || k == QK_DQ;
    default: return 0;
    }
}

/* Byte length of a non-ASCII whitespace character at i (shown as ' '), or 0. */
static size_t special_ws(const RepairParser *p, size_t i) {
    int c = at(p, i), d = at(p, i + 1), e = at(p, i + 2);
    if (c == 0xC2 && d == 0xA0) return 2;
    if (c == 0xE2 && d == 0x80 && ((e >= 0x80 && e <= 0x8A) || e == 0xAF)) return 3;
    if (c == 0xE2 && d == 0x81 && e == 0x9F) return 3;
    if (c == 0xE3 && d == 0x80 && e == 0x80) return 3;
    if (c == 0xEF && d == 0xBB && e == 0xBF) return 3;
    return 0;
}

static int starts_with(const RepairParser *p, size_t i, const char *s) {
    size_t n = strlen(s);
    return i + n <= p->len && memcmp(p->in + i, s, n) == 0;
}

/* Keyword spelled by in[i..j): returns its JSON text or NULL. */
static const char *keyword(const RepairParser *p, size_t i, size_t j) {
    size_t n = j - i;
    const unsigned char *s = p->in + i;
    char low[10];
    if (n < 3 || n > 9) return NULL;
    if (n == 9 && memcmp(s, "undefined", 9) == 0) return "null";
    if (n == 3 && memcmp(s, "NaN", 3) == 0) return "null";
    if (n == 8 && memcmp(s, "Infinity", 8) == 0) return "null";
    if (n > 5) return NULL;
    for (size_t k = 0; k < n; k++) low[k] = (char)((s[k] >= 'A' && s[k] <= 'Z') ? s[k] + 32 : s[k]);
    low[n] = 0;
    if (strcmp(low, "true") == 0) return "true";
    if (strcmp(low, "false") == 0) return "false";
    if (strcmp(low, "null") == 0 || strcmp(low, "none") == 0) return "null";
    return NULL;
}

static int is_start_of_value(const RepairParser *p, size_t i) {
    int c = at(p, i);
    return is_quote(p, i) || c == '[' || c == '{' || is_ident(c) || c == '-';
}

/* A value start that is clearly JSON (not prose). */
static int strong_start(const RepairParser *p, size_t i) {
    int c = at(p, i);
    size_t n;
    int q = quote_kind(p, i, &n);
    if (c == '{' || c == '[' || q == QK_DQ || q == QK_SQ || q == QK_DQL) return 1;
    if (is_digit(c)) return 1;
    if ((c == '-' || c == '.') && is_digit(at(p, i + 1))) return 1;
    if (is_ident_start(c)) {
        size_t j = i;
        while (j < p->len && is_ident(p->in[j])) j++;
        return keyword(p, i, j) != NULL;
    }
    return 0;
}

/* A keyword token (true, None, ...) at i that ends at a non-identifier character. */
static int keyword_at(const RepairParser *p, size_t i) {
    if (!is_ident_start(at(p, i))) return 0;
    size_t j = i;
    while (j < p->len && j - i < 10 && is_ident(p->in[j])) j++;
    return !is_ident(at(p, j)) && keyword(p, i, j) != NULL;
}

/* In an array, after a candidate end quote at j: is the next thing a new value with a
 * missing start quote (["a" b", "c"] or ["a" b])? Bounded lookahead. */
static int array_next_unquoted(const RepairParser *p, size_t j) {
    size_t lim = j + REPAIR_LOOKAHEAD < p->len ? j + REPAIR_LOOKAHEAD : p->len;
    size_t k = j, n;
    while (k < lim && !is_quote(p, k) && !is_delim(p->in[k])) k++;
    if (k >= lim || k == j) return 0;
    if (p->in[k] == ',' || p->in[k] == ']') return 1;
    if (quote_kind(p, k, &n) != QK_DQ) return 0;
    k += n;
    while (k < p->len && (p->in[k] == ' ' || p->in[k] == '\t')) k++;
    return k >= p->len || p->in[k] == ',' || p->in[k] == ']' || p->in[k] == '\n';
}

/* ------------------------------------------------------------------------------------ */
/* whitespace, comments, fences */

/* Copies whitespace (special whitespace as ' ') and skips comments. `#` comments only when
 * allow_hash; they end at a newline, or inside a container at a closing bracket. */
static void ws_comments_slow(RepairParser *p, int skip_newline, int allow_hash) {
    for (;;) {
        if (p->err) return;
        int c = at(p, p->i);
        size_t sw;
        if (c >= 0 && c < 0x80 && c != ' ' && c != '\t' && c != '\r' && c != '\n' && c != '/' && c != '#') return;
        if (c == ' ' || c == '\t' || c == '\r' || (c == '\n' && skip_newline)) {
            size_t s = p->i;
            while (p->i < p->len) {
                int d = p->in[p->i];
                if (d == ' ' || d == '\t' || d == '\r' || (d == '\n' && skip_newline)) p->i++;
                else break;
            }
            emit(p, (const char *)p->in + s, p->i - s);
        } else if ((sw = special_ws(p, p->i)) != 0) {
            emitc(p, ' ');
            p->i += sw;
        } else if (c == '/' && at(p, p->i + 1) == '*') {
            p->i += 2;
            while (p->i < p->len && !(p->in[p->i] == '*' && at(p, p->i + 1) == '/')) p->i++;
            p->i = p->i + 2 <= p->len ? p->i + 2 : p->len;
        } else if (c == '/' && at(p, p->i + 1) == '/') {
            while (p->i < p->len && p->in[p->i] != '\n') p->i++;
        } else if (c == '#' && allow_hash) {
            while (p->i < p->len && p->in[p->i] != '\n' &&
                   !(p->depth > 0 && (p->in[p->i] == '}' || p->in[p->i] == ']')))
                p->i++;
        } else {
            return;
        }
    }
}

static inline void ws_comments(RepairParser *p, int skip_newline, int allow_hash) {
    if (p->i < p->len) {
        int c = p->in[p->i];
        if (c < 0x80 && c != ' ' && c != '\t' && c != '\r' && c != '\n' && c != '/' && c != '#') return;
    }
    ws_comments_slow(p, skip_newline, allow_hash);
}

/* Skips an opening Markdown fence and its language tag. */
/* A fence language tag that announces JSON (or nothing to go by). */
static int json_lang(const unsigned char *s, size_t n) {
    static const char *const langs[] = {"json", "jsonc", "json5", "jsonl", "ndjson", "js", "javascript"};
    if (n == 0) return 1;
    for (size_t k = 0; k < sizeof(langs) / sizeof(langs[0]); k++) {
        size_t m = strlen(langs[k]), j = 0;
        if (m != n) continue;
        while (j < n && (s[j] | 0x20) == langs[k][j]) j++;
        if (j == n) return 1;
    }
    return 0;
}

/* Skips an opening Markdown fence and its language tag: returns 1. A block in another
 * language (```python) whose content does not start like JSON is skipped whole, up to
 * and including its closing fence: returns 2. Not a fence: 0. */
static int fence_open(RepairParser *p) {
    size_t n = 0;
    if (starts_with(p, p->i, "```")) n = 3;
    else if (starts_with(p, p->i, "[```") || starts_with(p, p->i, "{```")) n = 4;
    if (!n) return 0;
    size_t ls = p->i + n, le = ls;
    while (le < p->len && (is_ident(p->in[le]) || p->in[le] == '-' || p->in[le] == '+')) le++;
    if (n == 3 && !json_lang(p->in + ls, le - ls)) {
        size_t k = le;
        while (k < p->len && is_ws(p->in[k])) k++;
        if (!(strong_start(p, k) || is_quote(p, k))) {
            while (k < p->len && !starts_with(p, k, "```")) k++;
            p->i = k + 3 <= p->len ? k + 3 : p->len;
            return 2;
        }
    }
    p->i = le;
    ws_comments(p, 1, 1);
    return 1;
}

static int fence_close(RepairParser *p) {
    size_t n = 0;
    if (starts_with(p, p->i, "```]") || starts_with(p, p->i, "```}")) n = 4;
    else if (starts_with(p, p->i, "```")) n = 3;
    if (!n) return 0;
    p->i += n;
    ws_comments(p, 1, 1);
    return 1;
}

/* ------------------------------------------------------------------------------------ */
/* container stack */

static int push(RepairParser *p, unsigned char kind) {
    if (p->depth >= p->max_depth)
        return fail(p, DSPEX_REPAIR_ERR_DEPTH, "nesting too deep (raise :max_depth)", p->i);
    if (p->depth == p->stack_cap) { /* past the small stack: one allocation of max_depth */
        unsigned char *s = malloc(p->max_depth);
        if (s == NULL) return fail(p, DSPEX_REPAIR_ERR_NOMEM, "out of memory", p->i);
        memcpy(s, p->stack, p->depth);
        p->stack = s;
        p->stack_cap = p->max_depth;
    }
    p->stack[p->depth++] = kind;
    if (kind == 'f') p->calls++;
    return 1;
}

static void pop(RepairParser *p) {
    if (p->depth > 0 && p->stack[--p->depth] == 'f') p->calls--;
}

static int top(const RepairParser *p) { return p->depth ? p->stack[p->depth - 1] : 0; }

/* ------------------------------------------------------------------------------------ */
/* values */

static int parse_value(RepairParser *p);

/* Emits in[s..e) as a JSON string (quotes added, escapes and invalid UTF-8 repaired). */
static void emit_json_string(RepairParser *p, size_t s, size_t e) {
    static const char hex[] = "0123456789abcdef";
    emitc(p, '"');
    size_t run = s;
    for (size_t k = s; k < e && !p->err;) {
        unsigned c = p->in[k];
        if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
            k++;
            continue;
        }
        size_t n = c >= 0x80 ? utf8_len(p->in, e, k) : 0;
        if (n) {
            k += n;
            continue;
        }
        emit(p, (const char *)p->in + run, k - run);
        if (c == '"') emit(p, "\\\"", 2);
        else if (c == '\\') emit(p, "\\\\", 2);
        else if (c == '\n') emit(p, "\\n", 2);
        else if (c == '\r') emit(p, "\\r", 2);
        else if (c == '\t') emit(p, "\\t", 2);
        else if (c == '\b') emit(p, "\\b", 2);
        else if (c == '\f') emit(p, "\\f", 2);
        else if (c < 0x20) {
            char u[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            emit(p, u, 6);
        } else {
            emit(p, "\xEF\xBF\xBD", 3); /* invalid UTF-8 byte -> U+FFFD */
        }
        k++;
        run = k;
    }
    emit(p, (const char *)p->in + run, e - run);
    emitc(p, '"');
}

/* Index of the last non-whitespace input byte before i and above floor, or NOPOS. */
static size_t prev_nonws(const RepairParser *p, size_t i, size_t floor) {
    while (i > floor) {
        i--;
        if (!is_ws(p->in[i])) return i;
    }
    return NOPOS;
}

/* After a quote that follows a comma: does the text at i look like the start of the next
 * member (object: "key":, array: "value" followed by a delimiter)? Bounded lookahead. */
static int looks_like_next(const RepairParser *p, size_t i) {
    int t = top(p);
    if (t == 0) return 1;
    size_t lim = i + REPAIR_LOOKAHEAD < p->len ? i + REPAIR_LOOKAHEAD : p->len;
    size_t j = i;
    while (j < lim && p->in[j] != '"' && p->in[j] != '\n') j++;
    if (j >= lim) return j >= p->len; /* truncated output: trust the comma */
    if (p->in[j] == '\n') return t != 'o';
    j++;
    while (j < lim && (p->in[j] == ' ' || p->in[j] == '\t' || p->in[j] == '\r')) j++;
    if (j >= p->len) return 1;
    int c = p->in[j];
    if (t == 'o') return c == ':';
    return c == ',' || c == '\n' || is_closer(c);
}

/* Before a ':' at ip: is there a member name preceded by ',' or '{' (", b:")? Bounded. */
static int colon_member_before(const RepairParser *p, size_t ip, size_t floor) {
    size_t k = ip, lim = ip > 64 ? ip - 64 : 0, n0;
    (void)floor;
    while (k > lim && (p->in[k - 1] == ' ' || p->in[k - 1] == '\t')) k--;
    if (k > lim && (p->in[k - 1] == '"' || p->in[k - 1] == '\'')) k--;
    n0 = k;
    while (k > lim && (is_ident(p->in[k - 1]) || p->in[k - 1] == '-')) k--;
    if (k == n0) return 0;
    if (k > lim && (p->in[k - 1] == '"' || p->in[k - 1] == '\'')) k--;
    while (k > lim && is_ws(p->in[k - 1])) k--;
    return k > lim && (p->in[k - 1] == ',' || p->in[k - 1] == '{');
}

/* At j (after a comma): does an object member ("key": or key:) or the end follow? */
static int member_follows(const RepairParser *p, size_t j) {
    size_t k = j, lim = j + REPAIR_LOOKAHEAD < p->len ? j + REPAIR_LOOKAHEAD : p->len, n;
    while (k < lim && is_ws(p->in[k])) k++;
    if (k >= lim) return 1;
    if (p->in[k] == '}') return 1;
    int q = quote_kind(p, k, &n);
    if (q) {
        k += n;
        while (k < lim && !is_quote(p, k) && p->in[k] != '\n') k++;
        if (k >= lim || p->in[k] == '\n') return 0;
        quote_kind(p, k, &n);
        k += n;
    } else {
        size_t s = k;
        while (k < lim && (is_ident(p->in[k]) || p->in[k] == '-')) k++;
        if (k == s) return 0;
    }
    while (k < lim && (p->in[k] == ' ' || p->in[k] == '\t')) k++;
    return k >= lim || p->in[k] == ':';
}

/* After a candidate end quote followed by a newline: a lone '"' on a later line followed
 * by ',' and more members means the first quote was text ("a\n"\n",\n"b": 1). */
static int quote_line_continues(const RepairParser *p, size_t j) {
    size_t k = j, lim = j + REPAIR_LOOKAHEAD < p->len ? j + REPAIR_LOOKAHEAD : p->len;
    if (at(p, k) != '\n') return 0;
    while (k < lim && is_ws(p->in[k])) k++;
    if (k >= lim || p->in[k] != '"') return 0;
    k++;
    while (k < lim && (p->in[k] == ' ' || p->in[k] == '\t')) k++;
    if (k >= lim || p->in[k] != ',') return 0;
    k++;
    while (k < lim && is_ws(p->in[k])) k++;
    return k < lim && p->in[k] != '}' && p->in[k] != ']';
}

/* A closing Markdown fence at i: optional spaces, ``` then end of line or input. */
static int closing_fence_at(const RepairParser *p, size_t i) {
    while (i < p->len && (p->in[i] == ' ' || p->in[i] == '\t')) i++;
    if (!starts_with(p, i, "```")) return 0;
    i += 3;
    while (i < p->len && (p->in[i] == ' ' || p->in[i] == '\t' || p->in[i] == '\r')) i++;
    return i >= p->len || p->in[i] == '\n';
}

/* At j: words, a '"', then more text on the line ("tail" more})? Bounded lookahead. */
static int quoted_words_follow(const RepairParser *p, size_t j) {
    size_t k = j, lim = j + REPAIR_LOOKAHEAD < p->len ? j + REPAIR_LOOKAHEAD : p->len;
    while (k < lim && p->in[k] != '"' && p->in[k] != '\n') k++;
    if (k >= lim || p->in[k] != '"' || k == j) return 0;
    k++;
    while (k < lim && (p->in[k] == ' ' || p->in[k] == '\t')) k++;
    return k < lim && !is_delim(p->in[k]) && !is_closer(p->in[k]);
}

/* At p->i: a bare word followed by a quoted key ("COMMENT "notes": 1)? Returns the
 * index of that quote, or NOPOS. Bounded lookahead. */
static size_t junk_before_key(const RepairParser *p) {
    size_t k = p->i, lim = p->i + REPAIR_LOOKAHEAD < p->len ? p->i + REPAIR_LOOKAHEAD : p->len;
    if (!is_ident_start(at(p, k))) return NOPOS;
    while (k < lim && is_ident(p->in[k])) k++;
    size_t ws = k;
    while (k < lim && (p->in[k] == ' ' || p->in[k] == '\t')) k++;
    if (k == ws || k >= lim || p->in[k] != '"') return NOPOS;
    size_t q = k++;
    while (k < lim && p->in[k] != '"' && p->in[k] != '\n') k++;
    if (k >= lim || p->in[k] != '"') return NOPOS;
    k++;
    while (k < lim && (p->in[k] == ' ' || p->in[k] == '\t')) k++;
    return k < lim && p->in[k] == ':' ? q : NOPOS;
}

/* A string parse that failed to find its end quote starts again from its opening quote
 * (at most twice). Each restart is charged the bytes the failed pass read, against one
 * budget per input (REPAIR_RESCAN_SLACK plus the input length): without it, a run of
 * strings that each read to the end of the input before restarting (`[\"a, "b, "c, ...`)
 * is quadratic. With the budget spent, a string without an acceptable end quote simply
 * runs to the end of the input, as it does on the first pass. Returns 1 when the restart
 * may go ahead. */
static int may_rescan(RepairParser *p, size_t from, size_t to) {
    size_t cost = to - from;
    size_t *left = p->rescan_shared ? p->rescan_shared : &p->rescan_left;
    if (cost > *left) return 0;
    *left -= cost;
    return 1;
}

/* Parses a string starting at p->i (any quote kind, optionally preceded by a backslash
 * for escaped JSON). stop_delim: the end quote is missing, end at the next delimiter.
 * stop_idx: end the string at that input index. *qpos receives the output position of
 * the closing quote. Returns 0 when there is no string at p->i. */
static int parse_string_raw(RepairParser *p, int stop_delim, size_t stop_idx, int omit_open, size_t *qpos,
                            int retries) {
    const size_t i_before = p->i, o_before = p->olen;
    size_t i = p->i, qn = 0;
    int skip_esc = 0;
    if (at(p, i) == '\\' && is_quote(p, i + 1)) {
        skip_esc = 1;
        i++;
    }
    int qk = quote_kind(p, i, &qn);
    if (qk == QK_NONE) return 0;
    if (!omit_open) emitc(p, '"');
    i += qn;
    const size_t content = p->olen;
    size_t o_tail = p->olen; /* output length after the last non-whitespace content */
    int tail_nl = 0;         /* a raw newline since then */
    int escaped_quotes = 0;
    int fences = 0; /* fences opened at a line start inside this string */
    for (;;) {
        if (p->err) return 0;
        if (i >= p->len) {
            size_t ip = prev_nonws(p, i, i_before);
            if (!stop_delim && retries < 2 && ip != NOPOS && is_delim(p->in[ip]) && may_rescan(p, i_before, i)) {
                /* text ends with a delimiter, like ["hello]: the end quote belongs before a
                 * delimiter. If quotes inside were escaped, close before the trailing closers. */
                p->olen = o_before;
                p->i = i_before;
                if (escaped_quotes && !p->in_key && is_closer(p->in[ip])) {
                    size_t k = ip;
                    while (k > i_before + 1 && (is_closer(p->in[k - 1]) || is_ws(p->in[k - 1]))) k--;
                    return parse_string_raw(p, 0, k, omit_open, qpos, retries + 1);
                }
                return parse_string_raw(p, 1, NOPOS, omit_open, qpos, retries + 1);
            }
            *qpos = ins_before_ws(p, content, "\"", 1);
            p->i = p->len;
            return 1;
        }
        if (i == stop_idx) {
            *qpos = ins_before_ws(p, content, "\"", 1);
            p->i = i;
            return 1;
        }
        if (qk == QK_DQ && !stop_delim && !skip_esc && stop_idx == NOPOS) {
            /* fast path: a run of plain ASCII bytes */
            size_t k = i;
            while (k < p->len && p->in[k] >= 0x20 && p->in[k] < 0x80 && p->in[k] != '"' && p->in[k] != '\\') k++;
            if (k > i) {
                emit(p, (const char *)p->in + i, k - i);
                size_t e = k;
                while (e > i && p->in[e - 1] == ' ') e--;
                if (e > i) {
                    o_tail = p->olen - (k - e);
                    tail_nl = 0;
                }
                i = k;
                continue;
            }
        }
        size_t eqn;
        if (is_end_quote(p, qk, i, &eqn)) {
            const size_t i_quote = i, o_quote = p->olen;
            emitc(p, '"');
            p->i = i + eqn;
            ws_comments(p, 0, p->depth > 0);
            if (p->err) return 0;
            size_t j = p->i;
            int c = at(p, j);
            int after = at(p, j + 1);
            int mismatch = !stop_delim && ((p->depth == 0 && is_closer(c)) ||
                                           (c == ']' && top(p) == 'o' && after >= 0 && after != ',' &&
                                            after != '}' && after != ']' && !is_ws(after)) ||
                                           (top(p) == 'o' && quote_line_continues(p, j)));
            if (!stop_delim && p->in[i_quote] == '"' && j == i_quote + 1 && c == '"' && o_quote > content) {
                /* a doubled quote like "72"" at the end: the first one is part of the text */
                size_t k = j + 1;
                while (k < p->len && (p->in[k] == ' ' || p->in[k] == '\t')) k++;
                if (k >= p->len || is_delim(p->in[k])) mismatch = 1;
            }
            if (!mismatch && !stop_delim && top(p) == 'a' && !escaped_quotes && !is_delim(c) &&
                !is_quote(p, j) && j < p->len && prev_nonws(p, i_quote, i_before) != NOPOS &&
                !is_delim(p->in[prev_nonws(p, i_quote, i_before)]) && array_next_unquoted(p, j)) {
                *qpos = o_quote;
                return 1;
            }
            if (!mismatch && !stop_delim && c == ':' && top(p) == 'o' && !p->in_key)
                mismatch = 1; /* a value string is never followed by ':' */
            if (!mismatch && !stop_delim && c == ',' && escaped_quotes && top(p) == 'o' && !member_follows(p, j + 1))
                mismatch = 1; /* "Implementation: "xxx", xxx" : the comma is text */
            if (!mismatch && (stop_delim || j >= p->len || is_delim(c) || is_quote(p, j) || is_digit(c) ||
                              keyword_at(p, j))) {
                if (tail_nl && o_tail < o_quote) {
                    /* drop raw trailing whitespace with a newline before the end quote */
                    size_t m = p->olen - o_quote;
                    memmove(p->out + o_tail, p->out + o_quote, m);
                    p->olen = o_tail + m;
                    *qpos = o_tail;
                } else {
                    *qpos = o_quote;
                }
                return 1;
            }
            if (!mismatch && !stop_delim && retries < 2) {
                size_t ip = prev_nonws(p, i_quote, i_before);
                if (ip != NOPOS) {
                    int pc = p->in[ip];
                    if (pc == ',' && looks_like_next(p, i_quote + eqn) && may_rescan(p, i_before, i_quote)) {
                        /* '{"a":"b,c,"d":"e"}': the end quote was missing before the comma */
                        p->olen = o_before;
                        p->i = i_before;
                        return parse_string_raw(p, 0, ip, omit_open, qpos, retries + 1);
                    }
                    if ((pc == '}' || pc == ']') && !quoted_words_follow(p, j)) {
                        /* "value} "tail: the quote after a closing bracket ends the string */
                        *qpos = o_quote;
                        return 1;
                    }
                    if (pc != ',' && pc != '{' && pc != '[' && pc != '}' && pc != ']' && is_delim(pc) &&
                        (pc != ':' || colon_member_before(p, ip, i_before)) && may_rescan(p, i_before, i_quote)) {
                        p->olen = o_before;
                        p->i = i_before;
                        return parse_string_raw(p, 1, NOPOS, omit_open, qpos, retries + 1);
                    }
                }
            }
            /* an unescaped quote inside the string */
            p->olen = o_quote;
            if (p->in[i_quote] == '"') emit(p, "\\\"", 2);
            else emit(p, (const char *)p->in + i_quote, eqn);
            if (!mismatch) escaped_quotes = 1;
            i = i_quote + eqn;
            o_tail = p->olen;
            tail_nl = 0;
        } else if (stop_delim && (is_uq_delim(p, i) || (p->in_key && p->in[i] == ':'))) {
            /* end quote missing: stop at this delimiter (but keep a URL like https://...) */
            if (i > 0 && p->in[i - 1] == ':' && at(p, i) == '/' && at(p, i + 1) == '/') {
                size_t s = i;
                while (i < p->len && (is_ident(p->in[i]) || (p->in[i] && strchr("-.~:/?#@!$&'()*+;=%", p->in[i])))) i++;
                emit(p, (const char *)p->in + s, i - s);
            }
            *qpos = ins_before_ws(p, content, "\"", 1);
            p->i = i;
            return 1;
        } else {
            unsigned c = p->in[i];
            if (c == '\\') {
                int d = at(p, i + 1);
                if (d < 0) {
                    i++; /* trailing backslash */
                } else if (d == '"' || d == '\\' || d == '/' || d == 'b' || d == 'f' || d == 'n' ||
                           d == 'r' || d == 't') {
                    emit(p, (const char *)p->in + i, 2);
                    i += 2;
                } else if (d == 'u') {
                    size_t k = 0;
                    while (k < 4 && is_hex(at(p, i + 2 + k))) k++;
                    if (k == 4) {
                        long u = dspex_hex4(p->in, p->len, i + 2);
                        long lo = at(p, i + 6) == '\\' && at(p, i + 7) == 'u' ? dspex_hex4(p->in, p->len, i + 8) : -1;
                        if (u >= 0xD800 && u <= 0xDBFF && lo >= 0xDC00 && lo <= 0xDFFF) {
                            emit(p, (const char *)p->in + i, 12); /* a surrogate pair */
                            i += 12;
                        } else if (u >= 0xD800 && u <= 0xDFFF) {
                            emit(p, "\\ufffd", 6); /* a lone surrogate */
                            i += 6;
                        } else {
                            emit(p, (const char *)p->in + i, 6);
                            i += 6;
                        }
                    } else if (i + 2 + k >= p->len) {
                        i = p->len; /* truncated \u escape at the end: drop it */
                    } else {
                        emit(p, "\\\\", 2); /* not an escape: keep the backslash */
                        i++;
                    }
                } else if (d == '\'' || d >= 0x80) {
                    i++; /* \' is an apostrophe */
                } else {
                    emit(p, "\\\\", 2); /* invalid escape like \s in a regex: keep the backslash */
                    i++;
                }
                o_tail = p->olen;
                tail_nl = 0;
            } else if (c == '"') {
                emit(p, "\\\"", 2); /* a double quote inside a single-quoted string */
                i++;
                o_tail = p->olen;
                tail_nl = 0;
            } else if (c == '\n' && closing_fence_at(p, i + 1) && !(fences & 1)) {
                /* "text\n``` : a closing Markdown fence ends an unterminated string */
                *qpos = ins_before_ws(p, content, "\"", 1);
                p->i = i;
                return 1;
            } else if (c < 0x20) {
                static const char hex[] = "0123456789abcdef";
                if (c == '\n' && starts_with(p, i + 1, "```")) fences++;
                if (c == '\n') emit(p, "\\n", 2);
                else if (c == '\r') emit(p, "\\r", 2);
                else if (c == '\t') emit(p, "\\t", 2);
                else if (c == '\b') emit(p, "\\b", 2);
                else if (c == '\f') emit(p, "\\f", 2);
                else {
                    char u[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
                    emit(p, u, 6);
                }
                if (c == '\n') tail_nl = 1;
                else if (c != '\r' && c != '\t') { o_tail = p->olen; tail_nl = 0; }
                i++;
            } else if (c < 0x80) {
                emitc(p, (char)c);
                i++;
                if (c != ' ') { o_tail = p->olen; tail_nl = 0; }
            } else {
                size_t n = utf8_len(p->in, p->len, i);
                if (n) {
                    emit(p, (const char *)p->in + i, n);
                    i += n;
                } else {
                    emit(p, "\xEF\xBF\xBD", 3);
                    i++;
                }
                o_tail = p->olen;
                tail_nl = 0;
            }
        }
        if (skip_esc && at(p, i) == '\\') i++;
    }
}

/* A string, plus concatenations like "a" + "b". */
static int parse_string(RepairParser *p) {
    size_t q;
    if (!parse_string_raw(p, 0, NOPOS, 0, &q, 0)) return 0;
    for (;;) {
        if (p->err) return 0;
        size_t save_i = p->i, save_o = p->olen;
        ws_comments(p, 1, 0);
        if (at(p, p->i) != '+') {
            p->i = save_i;
            p->olen = save_o;
            return 1;
        }
        p->i++;
        ws_comments(p, 1, 0);
        p->olen = q; /* drop the end quote of the first string */
        if (!parse_string_raw(p, 0, NOPOS, 1, &q, 0)) {
            if (p->err) return 0;
            emitc(p, '"');
            return 1;
        }
    }
}

static int at_end_of_number(const RepairParser *p, size_t j) {
    int c = at(p, j);
    if (c < 0 || is_ws(c)) return 1;
    if (c == '/') return !is_digit(at(p, j + 1));
    return is_delim(c);
}

static int parse_number(RepairParser *p) {
    size_t s = p->i, j = s;
    size_t ndig = 0;
    if (at(p, j) == '-') {
        j++;
        if (at_end_of_number(p, j)) {
            size_t k = j;
            while (k < p->len && is_ws(p->in[k])) k++;
            if (k >= p->len && k > j && p->depth > 0) {
                p->i = k; /* [- : a lone minus cut off at the end */
                return 0;
            }
            emit(p, "-0", 2);
            p->i = j;
            return 1;
        }
    }
    size_t int_start = j;
    while (is_digit(at(p, j)) || (at(p, j) == '_' && j > int_start && is_digit(at(p, j - 1)) && is_digit(at(p, j + 1)))) {
        j++;
        ndig++;
    }
    int truncated = 0;
    if (at(p, j) == '.') {
        j++;
        if (at_end_of_number(p, j)) truncated = 1;
        else if (!is_digit(at(p, j))) return 0;
        while (is_digit(at(p, j)) || (at(p, j) == '_' && is_digit(at(p, j - 1)) && is_digit(at(p, j + 1)))) j++;
    } else if (ndig == 0) {
        return 0;
    }
    if (!truncated && (at(p, j) == 'e' || at(p, j) == 'E')) {
        j++;
        if (at(p, j) == '-' || at(p, j) == '+') j++;
        if (at_end_of_number(p, j)) truncated = 1;
        else if (!is_digit(at(p, j))) return 0;
        while (is_digit(at(p, j))) j++;
    }
    if (!at_end_of_number(p, j)) return 0;
    p->i = j;
    size_t d = s + (p->in[s] == '-');
    if (p->in[d] == '0' && d + 1 < j && (is_digit(p->in[d + 1]) || p->in[d + 1] == '_')) {
        emit_json_string(p, s, j); /* leading zeros like 0789: keep as a string */
        return 1;
    }
    if (p->in[s] == '-') emitc(p, '-');
    if (ndig == 0) emitc(p, '0'); /* .5 -> 0.5 */
    for (size_t k = d; k < j; k++)
        if (p->in[k] != '_') emitc(p, (char)p->in[k]);
    if (truncated) emitc(p, '0');
    return 1;
}

static int parse_regex(RepairParser *p) {
    if (at(p, p->i) != '/') return 0;
    size_t s = p->i, j = s + 1;
    while (j < p->len && !(p->in[j] == '/' && p->in[j - 1] != '\\')) j++;
    if (j < p->len) j++;
    emit_json_string(p, s, j);
    p->i = j;
    return 1;
}

static int object_members(RepairParser *p, size_t obrace, int have_key);

/* Elements up to `closer` (the opener is consumed); writes the closing ']' and records its
 * output position (last_close) and whether the sequence is empty (initial: no element was
 * written before). Returns the number of elements; *commas receives whether a comma was
 * seen. */
static size_t parse_seq(RepairParser *p, int closer, int initial, int *commas) {
    size_t count = 0;
    p->last_seq_empty = 0;
    const int empty_before = initial;
    while (p->i < p->len && p->in[p->i] != closer) {
        if (p->err) return count;
        if (starts_with(p, p->i, "```")) break;
        if (closer == ']' && p->in[p->i] == '}') {
            int parent = p->depth >= 2 ? p->stack[p->depth - 2] : 0;
            size_t k = p->i + 1;
            while (k < p->len && is_ws(p->in[k])) k++;
            if (parent != 'o' && parent != 's' && at(p, k) == ',') {
                p->i++; /* a stray '}' inside an array: [{"a":1}},{"a":2}] */
                ws_comments(p, 1, 0);
                continue;
            }
            if ((parent == 'o' || parent == 's') && at(p, k) == ',') {
                p->i++; /* ["a", "b"}, "next": ... : the '}' was meant as ']' */
                p->last_close = p->olen;
                p->last_seq_empty = empty_before && count == 0;
                emitc(p, ']');
                return count;
            }
        }
        if (!initial) {
            if (member_separator(p)) *commas = 1;
        } else {
            initial = 0;
        }
        ws_comments(p, 1, 0);
        if (starts_with(p, p->i, "...")) {
            p->i += 3;
            ws_comments(p, 1, 0);
            if (at(p, p->i) == ',') p->i++;
        }
        size_t o_val = p->olen, i_val = p->i, qn = 0;
        int quoted = quote_kind(p, p->i, &qn) != QK_NONE;
        if (!parse_value(p)) {
            if (p->err) return count;
            strip_last_comma(p);
            break;
        }
        if (quoted && i_val + qn >= p->len) {
            /* ["  : output cut right after an opening quote, nothing to keep */
            p->olen = o_val;
            strip_last_comma(p);
            break;
        }
        count++;
        if (quoted && closer == ']' && at(p, p->i) == ':') {
            /* ["key": "value"]: an object whose braces are missing */
            if (!reserve(p, 1) || !push(p, 'o')) return count;
            memmove(p->out + o_val + 1, p->out + o_val, p->olen - o_val);
            p->out[o_val] = '{';
            p->olen++;
            object_members(p, o_val, 1);
        }
    }
    if (at(p, p->i) == closer) {
        p->last_close = p->olen;
        emitc(p, ']');
        p->i++;
    } else {
        p->last_close = ins_before_ws(p, 0, "]", 1);
    }
    p->last_seq_empty = empty_before && count == 0;
    return count;
}

static int parse_array(RepairParser *p) {
    if (at(p, p->i) != '[') return 0;
    if (!push(p, 'a')) return 0;
    emitc(p, '[');
    p->i++;
    ws_comments(p, 1, 0);
    if (at(p, p->i) == ',') {
        p->i++;
        ws_comments(p, 1, 0);
    }
    int commas = 0;
    parse_seq(p, ']', 1, &commas);
    pop(p);
    return !p->err;
}

/* Python tuple: (1, 2) -> [1, 2]; (1) -> 1. */
static int parse_tuple(RepairParser *p) {
    if (at(p, p->i) != '(') return 0;
    if (!push(p, 't')) return 0;
    size_t ob = p->olen;
    emitc(p, '[');
    p->i++;
    ws_comments(p, 1, 0);
    int commas = 0;
    size_t n = parse_seq(p, ')', 1, &commas);
    if (!p->err && n == 1 && !commas) {
        p->out[ob] = ' ';
        p->out[p->last_close] = ' ';
    }
    pop(p);
    return !p->err;
}

static int parse_unquoted(RepairParser *p, int is_key);

static int parse_object(RepairParser *p) {
    if (at(p, p->i) != '{') return 0;
    if (!push(p, 'o')) return 0;
    size_t obrace = p->olen;
    emitc(p, '{');
    p->i++;
    ws_comments(p, 1, 1);
    if (at(p, p->i) == ',') {
        p->i++;
        ws_comments(p, 1, 1);
    }
    return object_members(p, obrace, 0) == 1;
}

/* A lone '"' before a ',' or '}' (a stray quote line). */
static int stray_quote(const RepairParser *p) {
    if (at(p, p->i) != '"') return 0;
    size_t k = p->i + 1;
    while (k < p->len && is_ws(p->in[k])) k++;
    return k >= p->len || p->in[k] == ',' || p->in[k] == '}';
}

/* Object members after '{' (pushed as 'o'); with have_key, a first key was just written.
 * Writes the closing '}' and pops. */
static int object_members(RepairParser *p, size_t obrace, int have_key) {
    int initial = 1;
    size_t members = 0;
    while (have_key || (p->i < p->len && p->in[p->i] != '}')) {
        if (p->err) return 0;
        size_t o_member = p->olen;
        int quoted_key = 1, key_empty = 0;
        if (!have_key) {
            if (starts_with(p, p->i, "```")) break;
            if (!initial && stray_quote(p)) {
                p->i++;
                ws_comments(p, 1, 1);
                continue;
            }
            if (!initial) {
                member_separator(p);
                ws_comments(p, 1, 1);
            } else {
                initial = 0;
            }
            if (starts_with(p, p->i, "...")) {
                p->i += 3;
                ws_comments(p, 1, 1);
                if (at(p, p->i) == ',') p->i++;
                ws_comments(p, 1, 1);
            }
            if (members > 0 && at(p, p->i) == '[') {
                /* {"a": [1], [2]}: continue the previous array value */
                strip_last_comma(p);
                while (p->olen > obrace + 1 && is_ws((unsigned char)p->out[p->olen - 1])) p->olen--;
                if (p->out[p->olen - 1] == ']' && p->olen - 1 == p->last_close) {
                    /* whether the previous array was empty is recorded, not found by a
                     * scan back over its whitespace (which repeated continuations would
                     * rescan: quadratic) */
                    int empty = p->last_seq_empty;
                    p->olen--;
                    p->i++;
                    if (!push(p, 'a')) return 0;
                    ws_comments(p, 1, 0);
                    int commas = 0;
                    parse_seq(p, ']', empty, &commas);
                    pop(p);
                    ws_comments(p, 1, 1);
                    continue;
                }
                emitc(p, ',');
            }
            size_t junk = junk_before_key(p);
            if (junk != NOPOS) p->i = junk; /* {"a": 1, COMMENT "b": 2}: drop the bare word */
            quoted_key = is_quote(p, p->i) || (at(p, p->i) == '\\' && is_quote(p, p->i + 1));
            size_t o_key = p->olen;
            p->in_key = 1;
            int key = parse_string(p) || (!p->err && parse_unquoted(p, 1));
            p->in_key = 0;
            if (p->err) return 0;
            if (!key) {
                int c = at(p, p->i);
                if (c == ']' && members == 0 && p->depth >= 2 && p->stack[p->depth - 2] == 'a') {
                    p->olen = obrace; /* [{] : drop the empty, unclosed object */
                    pop(p);
                    return -1;
                }
                if (c < 0 || c == '}' || c == '{' || c == ']' || c == '[' || starts_with(p, p->i, "```")) {
                    strip_last_comma(p);
                    break;
                }
                return fail(p, DSPEX_REPAIR_ERR_SYNTAX, "object key expected", p->i);
            }
            key_empty = p->olen >= o_key + 2 && p->out[o_key] == '"' && p->out[o_key + 1] == '"';
            ws_comments(p, 1, 1);
        } else {
            initial = 0;
            have_key = 0;
        }
        if (members == 0 && quoted_key && at(p, p->i) == ',' && p->out[obrace] == '{') {
            /* a set literal {'a', 'b'}: becomes an array */
            p->out[obrace] = '[';
            p->stack[p->depth - 1] = 's';
            int commas = 0;
            parse_seq(p, '}', 0, &commas);
            pop(p);
            return !p->err;
        }
        int colon = at(p, p->i) == ':';
        if (colon) {
            emitc(p, ':');
            p->i++;
        }
        int truncated = p->i >= p->len;
        if (!colon && ((truncated && (key_empty || !quoted_key)) || at(p, p->i) == '}')) {
            /* a dangling key like {"a": 1, "b"} or a truncated {" : drop it */
            p->olen = o_member;
            strip_last_comma(p);
            if (members == 0) {
                while (p->olen > obrace + 1 && is_ws((unsigned char)p->out[p->olen - 1])) p->olen--;
            }
            break;
        }
        if (!colon) {
            if (is_start_of_value(p, p->i) || truncated) ins_before_ws(p, 0, ":", 1);
            else return fail(p, DSPEX_REPAIR_ERR_SYNTAX, "colon expected", p->i);
        }
        if (!parse_value(p)) {
            if (p->err) return 0;
            if (colon || truncated) emit(p, "null", 4);
            else return fail(p, DSPEX_REPAIR_ERR_SYNTAX, "colon expected", p->i);
        }
        members++;
    }
    if (at(p, p->i) == '}') {
        emitc(p, '}');
        p->i++;
    } else {
        ins_before_ws(p, 0, "}", 1);
    }
    pop(p);
    return !p->err;
}

static int is_url_char(int c) { return c > 0 && (is_ident(c) || strchr("-.~:/?#@!$&'()*+;=%", c)); }

static int parse_unquoted(RepairParser *p, int is_key) {
    size_t s = p->i;
    if (!is_key && is_ident_start(at(p, s))) {
        size_t j = s;
        while (j < p->len && is_ident(p->in[j])) j++;
        size_t k = j;
        while (k < p->len && is_ws(p->in[k])) k++;
        if (at(p, k) == '(') {
            /* a JSONP or MongoDB call like callback({...}) or NumberLong(2) */
            if (!push(p, 'f')) return 0;
            p->i = k + 1;
            if (!parse_value(p)) {
                if (p->err) return 0;
                emit(p, "null", 4);
            }
            if (at(p, p->i) == ')') {
                p->i++;
                if (at(p, p->i) == ';') p->i++;
            }
            pop(p);
            return !p->err;
        }
        const char *kw = keyword(p, s, j);
        if (kw) {
            size_t m = j;
            while (m < p->len && (p->in[m] == ' ' || p->in[m] == '\t' || p->in[m] == '\r')) m++;
            int c = at(p, m);
            if (c < 0 || is_delim(c) || c == ')' || is_quote(p, m) || c == '#') {
                emit(p, kw, strlen(kw));
                p->i = j;
                return 1;
            }
        }
    }
    size_t i = s;
    if (!is_key && top(p) == 'o') {
        /* {"a": ipsum, sic, datum."} : a missing start quote; take the text up to the quote */
        size_t k = s, lim = s + REPAIR_LOOKAHEAD < p->len ? s + REPAIR_LOOKAHEAD : p->len;
        while (k < lim && p->in[k] != '"' && p->in[k] != ':' && p->in[k] != '\n' && p->in[k] != '{' &&
               p->in[k] != '}' && p->in[k] != '[' && p->in[k] != ']')
            k++;
        if (k < lim && k > s && p->in[k] == '"') {
            size_t m = k + 1;
            while (m < p->len && (p->in[m] == ' ' || p->in[m] == '\t')) m++;
            if (m >= p->len || p->in[m] == ',' || p->in[m] == '}') {
                size_t e = k;
                while (e > s && is_ws(p->in[e - 1])) e--;
                emit_json_string(p, s, e);
                p->i = k + 1;
                return 1;
            }
        }
    }
    if (at(p, s) == ')') return 0;
    for (;;) {
        while (i < p->len && !is_uq_delim(p, i) && !(is_key && p->in[i] == ':')) {
            if (is_quote(p, i)) {
                /* an apostrophe inside a word (don't) is text, not a quote */
                if (!(p->in[i] == '\'' && i > s && is_ident(p->in[i - 1]) && is_ident(at(p, i + 1)))) break;
            }
            i++;
        }
        if (is_key || i == s || at(p, i) != '{') break;
        /* words{words in brackets}: a brace group without quotes or colons is text */
        size_t k = i + 1, lim = i + REPAIR_LOOKAHEAD < p->len ? i + REPAIR_LOOKAHEAD : p->len;
        while (k < lim && p->in[k] != '}' && p->in[k] != '{' && p->in[k] != ':' && p->in[k] != '"' &&
               p->in[k] != '\n')
            k++;
        if (k >= lim || p->in[k] != '}') break;
        i = k + 1;
    }
    if (!is_key && i > s && p->in[i - 1] == ':' && at(p, i) == '/' && at(p, i + 1) == '/') {
        while (i < p->len && is_url_char(p->in[i])) i++;
    }
    while (i > s && is_ws(p->in[i - 1])) i--;
    if (i == s) return 0;
    if (!is_key && p->depth == p->calls) p->bare_text = 1; /* prose, perhaps inside words(...) */
    emit_json_string(p, s, i);
    p->i = i;
    if (at(p, i) == '"') p->i++; /* the missing start quote's end quote */
    return 1;
}

/* Each alternative returns 0 without consuming input when the value is not its kind. After
 * an error (depth limit, memory) no further alternative may run: parse_unquoted would scan
 * the rest of the input again at every enclosing level, max_depth times in all (issue 8
 * #5: `cb(` + objects nested to the limit + whitespace ran at 0.25 MB/s). */
static int parse_value(RepairParser *p) {
    ws_comments(p, 1, 0);
    int r = parse_object(p);
    if (!r && !p->err) r = parse_array(p);
    if (!r && !p->err) r = parse_tuple(p);
    if (!r && !p->err) r = parse_string(p);
    if (!r && !p->err) r = parse_number(p);
    if (!r && !p->err) r = parse_regex(p);
    if (!r && !p->err) r = parse_unquoted(p, 0);
    if (p->err) return 0;
    ws_comments(p, 1, 1);
    return r;
}

/* ------------------------------------------------------------------------------------ */
/* roots */

/* At p->i: if this is prose (not a value, not a call, not a keyword) and a '{', '[' or
 * fence follows, jump there (dropping the output so far). */
static void skip_prose(RepairParser *p) {
    int after_fence = 0;
    for (int guard = 0; guard < 64; guard++) {
        size_t i = p->i;
        int c = at(p, i);
        if (c < 0 || strong_start(p, i) || is_quote(p, i) || c == '/' || (after_fence && c == '(')) return;
        if (is_ident_start(c)) {
            size_t j = i;
            while (j < p->len && is_ident(p->in[j])) j++;
            while (j < p->len && is_ws(p->in[j])) j++;
            if (at(p, j) == '(') return;
        }
        /* one forward scan to the first '{', '[' or fence: linear over repeated calls */
        size_t k = i, f = NOPOS;
        while (k < p->len && p->in[k] != '{' && p->in[k] != '[') {
            if (p->in[k] == '`' && starts_with(p, k, "```")) {
                f = k;
                break;
            }
            k++;
        }
        size_t lim = k;
        if (f == NOPOS && k >= p->len) return;
        p->olen = 0;
        if (f != NOPOS) {
            p->i = f;
            after_fence = fence_open(p) == 1;
            if (!after_fence) ws_comments(p, 1, 1); /* a skipped ```python block */
            continue;                               /* prose could follow inside the fence */
        }
        p->i = lim;
        return;
    }
}

/* At j (after a top-level comma): "key" followed by ':' or by another string? */
static int members_follow_root(const RepairParser *p, size_t j) {
    size_t k = j, lim = j + REPAIR_LOOKAHEAD < p->len ? j + REPAIR_LOOKAHEAD : p->len;
    while (k < lim && is_ws(p->in[k])) k++;
    if (k >= lim || p->in[k] != '"') return 0;
    k++;
    while (k < lim && p->in[k] != '"' && p->in[k] != '\n') k++;
    if (k >= lim || p->in[k] != '"') return 0;
    k++;
    while (k < lim && (p->in[k] == ' ' || p->in[k] == '\t')) k++;
    return k < lim && (p->in[k] == ':' || p->in[k] == '"');
}

static void parser_init(RepairParser *p, const char *in, size_t len, const dspex_repair_opts *o) {
    memset(p, 0, sizeof(*p));
    p->in = (const unsigned char *)in;
    p->len = len;
    p->max_depth = o && o->max_depth ? o->max_depth : DSPEX_REPAIR_DEFAULT_MAX_DEPTH;
    p->stack = p->stack_small;
    p->stack_cap = REPAIR_STACK_SMALL;
    p->rescan_left = dspex_repair_rescan_budget(len);
    p->rescan_shared = o ? o->rescan_budget : NULL;
}

size_t dspex_repair_rescan_budget(size_t len) {
    return len > SIZE_MAX - REPAIR_RESCAN_SLACK ? SIZE_MAX : len + REPAIR_RESCAN_SLACK;
}

static int finish(RepairParser *p, dspex_repair_result *r) {
    if (!p->err && !reserve(p, 1)) {
        /* fallthrough to error */
    }
    if (p->stack != p->stack_small) free(p->stack);
    p->stack = NULL;
    if (p->err) {
        free(p->out);
        r->out = NULL;
        r->out_len = 0;
        r->err = p->err;
        r->err_msg = p->err_msg;
        r->err_offset = p->err_off;
        return p->err;
    }
    p->out[p->olen] = 0;
    r->out = p->out;
    r->out_len = p->olen;
    r->err = DSPEX_REPAIR_OK;
    return DSPEX_REPAIR_OK;
}

void dspex_repair_opts_init(dspex_repair_opts *o) {
    o->max_depth = DSPEX_REPAIR_DEFAULT_MAX_DEPTH;
    o->multi = 1;
    o->skip_valid = 0;
    o->rescan_budget = NULL;
}

void dspex_repair_result_free(dspex_repair_result *r) {
    if (r == NULL) return;
    free(r->out);
    r->out = NULL;
    r->out_len = 0;
}


int dspex_json_repair(const char *in, size_t len, const dspex_repair_opts *o, dspex_repair_result *r) {
    memset(r, 0, sizeof(*r));
    RepairParser p;
    parser_init(&p, in, len, o);
    int multi = o ? o->multi : 1;
    if (!(o && o->skip_valid) && dspex_json_is_valid(in, len, p.max_depth)) {
        r->out = malloc(len + 1);
        if (r->out == NULL) {
            r->err = DSPEX_REPAIR_ERR_NOMEM;
            r->err_msg = "out of memory";
            return r->err;
        }
        if (len) memcpy(r->out, in, len);
        r->out[len] = 0;
        r->out_len = len;
        r->end = len;
        return DSPEX_REPAIR_OK;
    }
    r->repaired = 1;
    ws_comments(&p, 1, 1);
    while (fence_open(&p) == 2) ws_comments(&p, 1, 1);
    skip_prose(&p);
    if (p.i >= p.len) {
        fail(&p, DSPEX_REPAIR_ERR_EMPTY, "no JSON value found", p.i);
        return finish(&p, r);
    }
    r->start = p.i;
    int first = p.in[p.i];
    int container = first == '{' || first == '[';
    if (!parse_value(&p)) {
        fail(&p, DSPEX_REPAIR_ERR_SYNTAX, "unexpected character", p.i);
        return finish(&p, r);
    }
    fence_close(&p);
    if (first == '{' && at(&p, p.i) == ',' && members_follow_root(&p, p.i + 1)) {
        /* {"a": 1}, "b": 2} : the object was closed too early; reopen it */
        while (p.olen > 0 && is_ws((unsigned char)p.out[p.olen - 1])) p.olen--;
        if (p.olen > 0 && p.out[p.olen - 1] == '}' && push(&p, 'o')) {
            p.olen--;
            size_t k = p.olen;
            while (k > 0 && is_ws((unsigned char)p.out[k - 1])) k--;
            if (k > 0 && p.out[k - 1] != '{') emitc(&p, ',');
            p.i++;
            ws_comments(&p, 1, 1);
            object_members(&p, 0, 0);
            if (p.err) return finish(&p, r);
            fence_close(&p);
        }
    }
    int comma = 0;
    if (at(&p, p.i) == ',') {
        emitc(&p, ',');
        p.i++;
        comma = 1;
        ws_comments(&p, 1, 1);
    }
    while (fence_open(&p) == 2) ws_comments(&p, 1, 1);
    int weak_ok = !container && comma;
    int cont = multi && p.i < p.len &&
               (strong_start(&p, p.i) || (weak_ok && is_start_of_value(&p, p.i))) &&
               (ends_with_comma_or_newline(&p) || (container && (at(&p, p.i) == '{' || at(&p, p.i) == '[')) ||
                comma);
    if (cont) {
        /* several top-level values (NDJSON, concatenated objects): wrap in an array */
        for (;;) {
            if (!comma) ins_before_ws(&p, 0, ",", 1);
            if (!parse_value(&p)) break;
            if (p.err) break;
            fence_close(&p);
            comma = 0;
            if (at(&p, p.i) == ',') {
                emitc(&p, ',');
                p.i++;
                comma = 1;
                ws_comments(&p, 1, 1);
            }
            while (fence_open(&p) == 2) ws_comments(&p, 1, 1);
            if (p.i >= p.len || !(strong_start(&p, p.i) || (weak_ok && is_start_of_value(&p, p.i)))) break;
        }
        if (p.err) return finish(&p, r);
        strip_last_comma(&p);
        if (reserve(&p, 4)) {
            memmove(p.out + 2, p.out, p.olen);
            p.out[0] = '[';
            p.out[1] = '\n';
            p.olen += 2;
            emit(&p, "\n]", 2);
        }
    } else if (comma) {
        strip_last_comma(&p);
    }
    /* redundant closing brackets */
    while (at(&p, p.i) == '}' || at(&p, p.i) == ']') {
        p.i++;
        ws_comments(&p, 1, 1);
    }
    r->end = p.i; /* anything after this is trailing prose, ignored */
    return finish(&p, r);
}

int dspex_json_extract(const char *in, size_t len, size_t from, const dspex_repair_opts *o,
                       dspex_repair_result *r) {
    memset(r, 0, sizeof(*r));
    RepairParser p;
    parser_init(&p, in, len, o);
    if (from > len) from = len;
    p.i = from;
    for (;;) {
        size_t before = p.i;
        ws_comments(&p, 1, 1);
        if (from > 0) fence_close(&p); /* the fence after the previous value; at 0 it opens one */
        while (at(&p, p.i) == ',' || at(&p, p.i) == '}' || at(&p, p.i) == ']' || at(&p, p.i) == ';') p.i++;
        if (p.i == before) break;
    }
    while (fence_open(&p) == 2) ws_comments(&p, 1, 1);
    if (from > 0 && p.i < p.len && !strong_start(&p, p.i)) {
        /* a continuation: only clear JSON values or values after prose */
        size_t save = p.i;
        skip_prose(&p);
        if (p.i == save) p.i = p.len;
    } else {
        skip_prose(&p);
    }
    if (p.i >= p.len) {
        fail(&p, DSPEX_REPAIR_ERR_EMPTY, "no JSON value found", p.i);
        return finish(&p, r);
    }
    p.olen = 0;
    r->start = p.i;
    if (!parse_value(&p)) {
        fail(&p, DSPEX_REPAIR_ERR_SYNTAX, "unexpected character", p.i);
        return finish(&p, r);
    }
    r->end = p.i;
    r->repaired = 1;
    r->bare_text = p.bare_text;
    return finish(&p, r);
}

/* ------------------------------------------------------------------------------------ */
/* strict validator (RFC 8259), used for the byte-identical fast path */

typedef struct {
    const unsigned char *s;
    size_t len, i, max_depth;
} Validator;

static void v_ws(Validator *v) {
    while (v->i < v->len && is_ws(v->s[v->i])) v->i++;
}

static int v_string(Validator *v) {
    v->i++;
    while (v->i < v->len) {
        unsigned c = v->s[v->i];
        if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
            v->i++;
            continue;
        }
        if (c == '"') {
            v->i++;
            return 1;
        }
        if (c < 0x20) return 0;
        if (c == '\\') {
            int d = v->i + 1 < v->len ? v->s[v->i + 1] : -1;
            if (d == 'u') {
                long u = dspex_hex4(v->s, v->len, v->i + 2);
                if (u < 0 || (u >= 0xDC00 && u <= 0xDFFF)) return 0;
                v->i += 6;
                if (u >= 0xD800 && u <= 0xDBFF) {
                    long lo = v->i + 1 < v->len && v->s[v->i] == '\\' && v->s[v->i + 1] == 'u' ? dspex_hex4(v->s, v->len, v->i + 2) : -1;
                    if (lo < 0xDC00 || lo > 0xDFFF) return 0;
                    v->i += 6;
                }
            } else if (d == '"' || d == '\\' || d == '/' || d == 'b' || d == 'f' || d == 'n' || d == 'r' ||
                       d == 't') {
                v->i += 2;
            } else {
                return 0;
            }
        } else if (c < 0x80) {
            v->i++;
        } else {
            size_t n = utf8_len(v->s, v->len, v->i);
            if (!n) return 0;
            v->i += n;
        }
    }
    return 0;
}

static int v_number(Validator *v) {
    size_t i = v->i;
    if (i < v->len && v->s[i] == '-') i++;
    if (i >= v->len) return 0;
    if (v->s[i] == '0') i++;
    else if (v->s[i] >= '1' && v->s[i] <= '9') while (i < v->len && is_digit(v->s[i])) i++;
    else return 0;
    if (i < v->len && v->s[i] == '.') {
        i++;
        if (i >= v->len || !is_digit(v->s[i])) return 0;
        while (i < v->len && is_digit(v->s[i])) i++;
    }
    if (i < v->len && (v->s[i] == 'e' || v->s[i] == 'E')) {
        i++;
        if (i < v->len && (v->s[i] == '+' || v->s[i] == '-')) i++;
        if (i >= v->len || !is_digit(v->s[i])) return 0;
        while (i < v->len && is_digit(v->s[i])) i++;
    }
    v->i = i;
    return 1;
}

static int v_value(Validator *v, size_t depth) {
    v_ws(v);
    if (v->i >= v->len) return 0;
    unsigned c = v->s[v->i];
    if (c == '{' || c == '[') {
        if (depth >= v->max_depth) return 0;
        int obj = c == '{';
        v->i++;
        v_ws(v);
        if (v->i < v->len && v->s[v->i] == (obj ? '}' : ']')) {
            v->i++;
            return 1;
        }
        for (;;) {
            if (obj) {
                v_ws(v);
                if (v->i >= v->len || v->s[v->i] != '"' || !v_string(v)) return 0;
                v_ws(v);
                if (v->i >= v->len || v->s[v->i] != ':') return 0;
                v->i++;
            }
            if (!v_value(v, depth + 1)) return 0;
            v_ws(v);
            if (v->i >= v->len) return 0;
            if (v->s[v->i] == ',') {
                v->i++;
                continue;
            }
            if (v->s[v->i] == (obj ? '}' : ']')) {
                v->i++;
                return 1;
            }
            return 0;
        }
    }
    if (c == '"') return v_string(v);
    if (c == '-' || is_digit(c)) return v_number(v);
    if (v->i + 4 <= v->len && memcmp(v->s + v->i, "true", 4) == 0) { v->i += 4; return 1; }
    if (v->i + 5 <= v->len && memcmp(v->s + v->i, "false", 5) == 0) { v->i += 5; return 1; }
    if (v->i + 4 <= v->len && memcmp(v->s + v->i, "null", 4) == 0) { v->i += 4; return 1; }
    return 0;
}

int dspex_json_is_valid(const char *in, size_t len, size_t max_depth) {
    Validator v = {(const unsigned char *)in, len, 0, max_depth ? max_depth : DSPEX_REPAIR_DEFAULT_MAX_DEPTH};
    if (!v_value(&v, 0)) return 0;
    v_ws(&v);
    return v.i == len;
}
