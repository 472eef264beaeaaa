/* DSPy signature string parser. See include/dspex/signature.h for the grammar. */
#include "dspex/signature.h"
#include "dspex/utf8.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------------------
 * Arena: every node of one result lives here; freed in one go. */

typedef struct dspex_sig_block {
    struct dspex_sig_block *next;
    size_t used;
    size_t cap;
    max_align_t data[];
} dspex_sig_block;

struct dspex_sig_arena {
    dspex_sig_block *head;
};

#define ARENA_BLOCK 4096u

static void *arena_alloc(dspex_sig_arena *a, size_t size) {
    const size_t align = sizeof(max_align_t);
    size = (size + align - 1) / align * align;
    if (size == 0) size = align;
    dspex_sig_block *b = a->head;
    if (b == NULL || b->cap - b->used < size) {
        size_t cap = size > ARENA_BLOCK ? size : ARENA_BLOCK;
        b = malloc(sizeof(dspex_sig_block) + cap);
        if (b == NULL) return NULL;
        b->next = a->head;
        b->used = 0;
        b->cap = cap;
        a->head = b;
    }
    void *p = (char *)b->data + b->used;
    b->used += size;
    return p;
}

static void arena_free(dspex_sig_arena *a) {
    if (a == NULL) return;
    dspex_sig_block *b = a->head;
    while (b != NULL) {
        dspex_sig_block *next = b->next;
        free(b);
        b = next;
    }
    free(a);
}

/* ------------------------------------------------------------------------------------
 * Parser state. */

typedef struct {
    const char *src;
    size_t len;
    size_t pos;
    size_t end; /* the current side ends here (exclusive) */
    dspex_sig_arena *arena;
    dspex_sig_error *err;
    dspex_sig_status status;
} sig_parser;

static const char SUPPORTED[] =
    "supported: str, int, float, bool, Any, None, list[T], set[T], dict[K, V], "
    "tuple[A, B], tuple[T, ...], Literal['a', 1, True], Optional[T], Union[A, B], A | B, "
    "History (bare list/dict/tuple/set and typing.List/Dict/Tuple/Set are accepted too)";

#if defined(__GNUC__) || defined(__clang__)
__attribute__((format(printf, 3, 4)))
#endif
static void *fail(sig_parser *p, size_t at, const char *fmt, ...) {
    if (p->status != DSPEX_SIG_OK) return NULL;
    p->status = DSPEX_SIG_ESYNTAX;
    if (p->err != NULL) {
        p->err->column = at + 1;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(p->err->message, sizeof p->err->message, fmt, ap);
        va_end(ap);
    }
    return NULL;
}

static void *oom(sig_parser *p) {
    if (p->status != DSPEX_SIG_OK) return NULL;
    p->status = DSPEX_SIG_ENOMEM;
    if (p->err != NULL) {
        p->err->column = 0;
        snprintf(p->err->message, sizeof p->err->message, "out of memory while parsing the signature");
    }
    return NULL;
}

static void *palloc(sig_parser *p, size_t size) {
    void *mem = arena_alloc(p->arena, size);
    if (mem == NULL) return oom(p);
    memset(mem, 0, size);
    return mem;
}

/* Grows an arena-backed vector of elem-sized items to hold at least n+1. */
static int vec_reserve(sig_parser *p, void **items, size_t *cap, size_t n, size_t elem) {
    if (n < *cap) return 0;
    size_t ncap = *cap ? *cap * 2 : 4;
    void *mem = palloc(p, ncap * elem);
    if (mem == NULL) return -1;
    if (n) memcpy(mem, *items, n * elem);
    *items = mem;
    *cap = ncap;
    return 0;
}

static int is_ws(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}
static int is_ident_start(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
static int is_digit(char c) { return c >= '0' && c <= '9'; }
static int is_ident_char(char c) { return is_ident_start(c) || is_digit(c); }

static void skip_ws(sig_parser *p) {
    while (p->pos < p->end && is_ws(p->src[p->pos])) p->pos++;
}

static int at_end(sig_parser *p) { return p->pos >= p->end; }

static char peek(sig_parser *p) { return p->pos < p->end ? p->src[p->pos] : '\0'; }

/* Describes the byte at pos for messages: "'x'" or "the end of the side". */
static const char *describe(sig_parser *p, char *buf, size_t cap) {
    if (p->pos >= p->end) {
        snprintf(buf, cap, "%s", p->end == p->len ? "the end of the signature" : "'->'");
    } else {
        unsigned char c = (unsigned char)p->src[p->pos];
        if (c >= 0x20 && c < 0x7f)
            snprintf(buf, cap, "'%c'", c);
        else
            snprintf(buf, cap, "byte 0x%02X", c);
    }
    return buf;
}

static const char *const PY_KEYWORDS[] = {
    "False", "None",   "True",    "and",      "as",       "assert", "async",
    "await", "break",  "class",   "continue", "def",      "del",    "elif",
    "else",  "except", "finally", "for",      "from",     "global", "if",
    "import", "in",    "is",      "lambda",   "nonlocal", "not",    "or",
    "pass",  "raise",  "return",  "try",      "while",    "with",   "yield"};

static int is_keyword(const char *s, size_t n) {
    for (size_t i = 0; i < sizeof PY_KEYWORDS / sizeof PY_KEYWORDS[0]; i++) {
        if (strlen(PY_KEYWORDS[i]) == n && memcmp(PY_KEYWORDS[i], s, n) == 0) return 1;
    }
    return 0;
}

static int name_is(const char *s, size_t n, const char *lit) {
    return strlen(lit) == n && memcmp(s, lit, n) == 0;
}

/* ------------------------------------------------------------------------------------
 * Type nodes. */

static dspex_sig_type *new_type(sig_parser *p, dspex_sig_type_kind kind) {
    dspex_sig_type *t = palloc(p, sizeof *t);
    if (t != NULL) t->kind = kind;
    return t;
}

static int lit_eq(const dspex_sig_literal *a, const dspex_sig_literal *b) {
    if (a->kind != b->kind) return 0;
    switch (a->kind) {
    case DSPEX_SIG_LIT_STR: return a->str_len == b->str_len && memcmp(a->str, b->str, a->str_len) == 0;
    case DSPEX_SIG_LIT_INT: return a->i == b->i;
    case DSPEX_SIG_LIT_FLOAT: return a->f == b->f;
    case DSPEX_SIG_LIT_BOOL: return a->b == b->b;
    case DSPEX_SIG_LIT_NONE: return 1;
    }
    return 0;
}

static int type_eq(const dspex_sig_type *a, const dspex_sig_type *b) {
    if (a->kind != b->kind || a->has_args != b->has_args || a->variadic != b->variadic ||
        a->nargs != b->nargs || a->nlits != b->nlits)
        return 0;
    for (size_t i = 0; i < a->nargs; i++)
        if (!type_eq(a->args[i], b->args[i])) return 0;
    for (size_t i = 0; i < a->nlits; i++)
        if (!lit_eq(&a->lits[i], &b->lits[i])) return 0;
    return 1;
}

typedef struct {
    dspex_sig_type **items;
    size_t n;
    size_t cap;
} type_vec;

static int tv_push(sig_parser *p, type_vec *v, dspex_sig_type *t, size_t at) {
    if (v->n >= DSPEX_SIG_MAX_MEMBERS) {
        fail(p, at, "too many type arguments at column %zu (the limit is %d)", at + 1,
             DSPEX_SIG_MAX_MEMBERS);
        return -1;
    }
    if (vec_reserve(p, (void **)&v->items, &v->cap, v->n, sizeof(dspex_sig_type *)) != 0) return -1;
    v->items[v->n++] = t;
    return 0;
}

static int tv_add_unique(sig_parser *p, type_vec *v, dspex_sig_type *t, size_t at) {
    for (size_t i = 0; i < v->n; i++)
        if (type_eq(v->items[i], t)) return 0;
    return tv_push(p, v, t, at);
}

/* Builds Union[members...] the way typing.Union normalizes: flatten nested unions and
 * optionals, drop duplicates, pull None out into OPTIONAL, unwrap single members. */
static dspex_sig_type *make_union(sig_parser *p, dspex_sig_type **members, size_t n, size_t at) {
    type_vec flat = {0};
    int has_none = 0;
    for (size_t i = 0; i < n; i++) {
        dspex_sig_type *m = members[i];
        if (m->kind == DSPEX_SIG_T_OPTIONAL) {
            has_none = 1;
            m = m->args[0];
        }
        if (m->kind == DSPEX_SIG_T_NONE) {
            has_none = 1;
        } else if (m->kind == DSPEX_SIG_T_UNION) {
            for (size_t j = 0; j < m->nargs; j++)
                if (tv_add_unique(p, &flat, m->args[j], at) != 0) return NULL;
        } else {
            if (tv_add_unique(p, &flat, m, at) != 0) return NULL;
        }
    }
    dspex_sig_type *inner;
    if (flat.n == 0) return new_type(p, DSPEX_SIG_T_NONE);
    if (flat.n == 1) {
        inner = flat.items[0];
    } else {
        inner = new_type(p, DSPEX_SIG_T_UNION);
        if (inner == NULL) return NULL;
        inner->has_args = 1;
        inner->nargs = flat.n;
        inner->args = flat.items;
    }
    if (!has_none) return inner;
    dspex_sig_type *opt = new_type(p, DSPEX_SIG_T_OPTIONAL);
    if (opt == NULL) return NULL;
    opt->has_args = 1;
    opt->nargs = 1;
    opt->args = palloc(p, sizeof(dspex_sig_type *));
    if (opt->args == NULL) return NULL;
    opt->args[0] = inner;
    return opt;
}

/* ------------------------------------------------------------------------------------
 * Literal values. */

static int utf8_put(char *out, size_t *o, uint32_t cp) {
    if ((cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF) return -1;
    *o += dspex_utf8_encode(out + *o, cp);
    return 0;
}

/* Parses a Python string literal at p->pos (quote char there). */
static int parse_string(sig_parser *p, dspex_sig_literal *lit) {
    size_t start = p->pos;
    char q = p->src[p->pos++];
    size_t body = p->pos, close = body;
    while (close < p->end && p->src[close] != q) {
        if (p->src[close] == '\n' || p->src[close] == '\r') break;
        close += (p->src[close] == '\\' && close + 1 < p->end) ? 2 : 1;
    }
    if (close >= p->end || p->src[close] != q) {
        fail(p, start, "unterminated string starting at column %zu (close it with %c)", start + 1, q);
        return -1;
    }
    char *out = palloc(p, close - body + 1);
    if (out == NULL) return -1;
    size_t o = 0, i = body;
    while (i < close) {
        char c = p->src[i];
        if (c != '\\') {
            out[o++] = c;
            i++;
            continue;
        }
        size_t esc = i;
        char e = p->src[i + 1];
        i += 2;
        switch (e) {
        case '\\': out[o++] = '\\'; break;
        case '\'': out[o++] = '\''; break;
        case '"': out[o++] = '"'; break;
        case 'n': out[o++] = '\n'; break;
        case 't': out[o++] = '\t'; break;
        case 'r': out[o++] = '\r'; break;
        case 'a': out[o++] = '\a'; break;
        case 'b': out[o++] = '\b'; break;
        case 'f': out[o++] = '\f'; break;
        case 'v': out[o++] = '\v'; break;
        case 'x':
        case 'u':
        case 'U': {
            int digits = e == 'x' ? 2 : e == 'u' ? 4 : 8;
            uint32_t cp = 0;
            for (int k = 0; k < digits; k++) {
                int h = i < close ? dspex_hexval((unsigned char)p->src[i]) : -1;
                if (h < 0) {
                    fail(p, esc, "invalid \\%c escape at column %zu (write exactly %d hex digits)", e,
                         esc + 1, digits);
                    return -1;
                }
                cp = cp * 16 + (uint32_t)h;
                i++;
            }
            if (utf8_put(out, &o, cp) != 0) {
                fail(p, esc, "escape at column %zu is not a valid Unicode code point", esc + 1);
                return -1;
            }
            break;
        }
        default:
            if (e >= '0' && e <= '7') {
                uint32_t cp = (uint32_t)(e - '0');
                for (int k = 0; k < 2 && i < close && p->src[i] >= '0' && p->src[i] <= '7'; k++)
                    cp = cp * 8 + (uint32_t)(p->src[i++] - '0');
                (void)utf8_put(out, &o, cp); /* at most 0777: always valid */
            } else {
                /* Python keeps unknown escapes verbatim. */
                out[o++] = '\\';
                out[o++] = e;
            }
        }
    }
    out[o] = '\0';
    lit->kind = DSPEX_SIG_LIT_STR;
    lit->str = out;
    lit->str_len = o;
    p->pos = close + 1;
    return 0;
}

static int parse_number(sig_parser *p, dspex_sig_literal *lit) {
    size_t start = p->pos, i = p->pos;
    if (i < p->end && (p->src[i] == '-' || p->src[i] == '+')) i++;
    size_t digits_start = i;
    while (i < p->end && is_digit(p->src[i])) i++;
    int is_float = 0;
    if (i == digits_start) {
        fail(p, start, "expected a number after the sign at column %zu", start + 1);
        return -1;
    }
    if (i < p->end && p->src[i] == '.') {
        is_float = 1;
        i++;
        while (i < p->end && is_digit(p->src[i])) i++;
    }
    if (i < p->end && (p->src[i] == 'e' || p->src[i] == 'E')) {
        size_t e = i + 1;
        if (e < p->end && (p->src[e] == '-' || p->src[e] == '+')) e++;
        if (e < p->end && is_digit(p->src[e])) {
            is_float = 1;
            i = e;
            while (i < p->end && is_digit(p->src[i])) i++;
        }
    }
    if (i < p->end && (is_ident_char(p->src[i]) || p->src[i] == '.')) {
        fail(p, start,
             "invalid number at column %zu (write a decimal integer like 42 or a float like 0.5)",
             start + 1);
        return -1;
    }
    char buf[80];
    size_t n = i - start;
    if (n >= sizeof buf) {
        fail(p, start, "number at column %zu is too long", start + 1);
        return -1;
    }
    memcpy(buf, p->src + start, n);
    buf[n] = '\0';
    errno = 0;
    char *endp = NULL;
    if (is_float) {
        double d = strtod(buf, &endp);
        if (endp != buf + n || !isfinite(d)) {
            fail(p, start, "float literal at column %zu is out of range", start + 1);
            return -1;
        }
        lit->kind = DSPEX_SIG_LIT_FLOAT;
        lit->f = d;
    } else {
        if (n - (size_t)(digits_start - start) > 1 && p->src[digits_start] == '0') {
            /* Python rejects leading zeros ("01") unless the value is zero. */
            int all_zero = 1;
            for (size_t k = digits_start; k < i; k++)
                if (p->src[k] != '0') all_zero = 0;
            if (!all_zero) {
                fail(p, start, "integer literal at column %zu has a leading zero (write it without)",
                     start + 1);
                return -1;
            }
        }
        long long v = strtoll(buf, &endp, 10);
        if (endp != buf + n || errno == ERANGE) {
            fail(p, start, "integer literal at column %zu does not fit in 64 bits", start + 1);
            return -1;
        }
        lit->kind = DSPEX_SIG_LIT_INT;
        lit->i = v;
    }
    p->pos = i;
    return 0;
}

static int parse_literal_value(sig_parser *p, dspex_sig_literal *lit) {
    char c = peek(p);
    size_t start = p->pos;
    if (c == '\'' || c == '"') return parse_string(p, lit);
    if (is_digit(c) || c == '-' || c == '+') return parse_number(p, lit);
    if (is_ident_start(c)) {
        size_t i = p->pos;
        while (i < p->end && is_ident_char(p->src[i])) i++;
        const char *s = p->src + start;
        size_t n = i - start;
        if (name_is(s, n, "True") || name_is(s, n, "False")) {
            lit->kind = DSPEX_SIG_LIT_BOOL;
            lit->b = name_is(s, n, "True");
            p->pos = i;
            return 0;
        }
        if (name_is(s, n, "None")) {
            lit->kind = DSPEX_SIG_LIT_NONE;
            p->pos = i;
            return 0;
        }
    }
    char d[32];
    fail(p, start,
         "expected a Literal value at column %zu, found %s (Literal values are quoted strings, "
         "numbers, True, False or None, e.g. Literal['yes', 'no'])",
         start + 1, describe(p, d, sizeof d));
    return -1;
}

static dspex_sig_type *parse_literal(sig_parser *p, size_t name_at) {
    /* p->pos is just past '[' */
    dspex_sig_literal *lits = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        skip_ws(p);
        if (peek(p) == ']' && n > 0) break;
        if (n >= DSPEX_SIG_MAX_LITERALS) {
            fail(p, p->pos, "too many Literal values at column %zu (the limit is %d)", p->pos + 1,
                 DSPEX_SIG_MAX_LITERALS);
            return NULL;
        }
        if (peek(p) == ']') {
            fail(p, name_at, "Literal at column %zu needs at least one value, e.g. Literal['a', 'b']",
                 name_at + 1);
            return NULL;
        }
        if (vec_reserve(p, (void **)&lits, &cap, n, sizeof *lits) != 0) return NULL;
        memset(&lits[n], 0, sizeof lits[n]);
        if (parse_literal_value(p, &lits[n]) != 0) return NULL;
        /* typing.Literal drops repeated values (same type and value) */
        int dup = 0;
        for (size_t k = 0; k < n && !dup; k++) dup = lit_eq(&lits[k], &lits[n]);
        if (!dup) n++;
        skip_ws(p);
        if (peek(p) == ',') {
            p->pos++;
            continue;
        }
        if (peek(p) == ']') break;
        char d[32];
        fail(p, p->pos, "expected ',' or ']' in Literal[...] at column %zu, found %s", p->pos + 1,
             describe(p, d, sizeof d));
        return NULL;
    }
    p->pos++; /* ']' */
    dspex_sig_type *t = new_type(p, DSPEX_SIG_T_LITERAL);
    if (t == NULL) return NULL;
    t->has_args = 1;
    t->lits = lits;
    t->nlits = n;
    return t;
}

/* ------------------------------------------------------------------------------------
 * Types. */

typedef enum {
    NAME_UNKNOWN,
    NAME_SCALAR,   /* kind in `kind` */
    NAME_GENERIC,  /* list/set/dict/tuple */
    NAME_LITERAL,
    NAME_OPTIONAL,
    NAME_UNION
} name_class;

typedef struct {
    const char *name;
    name_class cls;
    dspex_sig_type_kind kind;
    int typing; /* may be written as typing.<name> */
} name_entry;

static const name_entry NAMES[] = {
    {"str", NAME_SCALAR, DSPEX_SIG_T_STR, 0},
    {"int", NAME_SCALAR, DSPEX_SIG_T_INT, 0},
    {"float", NAME_SCALAR, DSPEX_SIG_T_FLOAT, 0},
    {"bool", NAME_SCALAR, DSPEX_SIG_T_BOOL, 0},
    {"Any", NAME_SCALAR, DSPEX_SIG_T_ANY, 1},
    {"None", NAME_SCALAR, DSPEX_SIG_T_NONE, 0},
    {"NoneType", NAME_SCALAR, DSPEX_SIG_T_NONE, 0},
    {"History", NAME_SCALAR, DSPEX_SIG_T_HISTORY, 0},
    {"dspy.History", NAME_SCALAR, DSPEX_SIG_T_HISTORY, 0},
    {"list", NAME_GENERIC, DSPEX_SIG_T_LIST, 0},
    {"List", NAME_GENERIC, DSPEX_SIG_T_LIST, 1},
    {"set", NAME_GENERIC, DSPEX_SIG_T_SET, 0},
    {"Set", NAME_GENERIC, DSPEX_SIG_T_SET, 1},
    {"frozenset", NAME_GENERIC, DSPEX_SIG_T_SET, 0},
    {"FrozenSet", NAME_GENERIC, DSPEX_SIG_T_SET, 1},
    {"dict", NAME_GENERIC, DSPEX_SIG_T_DICT, 0},
    {"Dict", NAME_GENERIC, DSPEX_SIG_T_DICT, 1},
    {"tuple", NAME_GENERIC, DSPEX_SIG_T_TUPLE, 0},
    {"Tuple", NAME_GENERIC, DSPEX_SIG_T_TUPLE, 1},
    {"Literal", NAME_LITERAL, DSPEX_SIG_T_LITERAL, 1},
    {"Optional", NAME_OPTIONAL, DSPEX_SIG_T_OPTIONAL, 1},
    {"Union", NAME_UNION, DSPEX_SIG_T_UNION, 1},
};

static const name_entry *lookup_name(const char *s, size_t n) {
    int typing = 0;
    if (n > 7 && memcmp(s, "typing.", 7) == 0) {
        s += 7;
        n -= 7;
        typing = 1;
    }
    for (size_t i = 0; i < sizeof NAMES / sizeof NAMES[0]; i++) {
        if (name_is(s, n, NAMES[i].name) && (!typing || NAMES[i].typing)) return &NAMES[i];
    }
    return NULL;
}

static dspex_sig_type *parse_type(sig_parser *p, int depth);

static const char *generic_example(dspex_sig_type_kind k) {
    switch (k) {
    case DSPEX_SIG_T_LIST: return "list[str]";
    case DSPEX_SIG_T_SET: return "set[str]";
    case DSPEX_SIG_T_DICT: return "dict[str, int]";
    default: return "tuple[str, int]";
    }
}

static dspex_sig_type *parse_primary(sig_parser *p, int depth) {
    char d[32];
    skip_ws(p);
    size_t start = p->pos;
    char c = peek(p);
    if (!is_ident_start(c)) {
        if (c == '\'' || c == '"')
            return fail(p, start,
                        "quoted type at column %zu is not supported (write the type itself, e.g. "
                        "list[str]; for a set of allowed strings write Literal['a', 'b'])",
                        start + 1);
        return fail(p, start, "expected a type at column %zu, found %s (e.g. str, int, list[str])",
                    start + 1, describe(p, d, sizeof d));
    }
    size_t i = p->pos;
    for (;;) {
        while (i < p->end && is_ident_char(p->src[i])) i++;
        if (i + 1 < p->end && p->src[i] == '.' && is_ident_start(p->src[i + 1])) {
            i++;
            continue;
        }
        break;
    }
    const char *name = p->src + start;
    size_t nlen = i - start;
    const name_entry *ne = lookup_name(name, nlen);
    if (ne == NULL) {
        int shown = nlen > 64 ? 64 : (int)nlen;
        return fail(p, start, "unknown type '%.*s%s' at column %zu; %s", shown, name,
                    nlen > 64 ? "..." : "", start + 1, SUPPORTED);
    }
    p->pos = i;
    skip_ws(p);
    int subscripted = peek(p) == '[';
    size_t bracket = p->pos;

    if (ne->cls == NAME_SCALAR) {
        if (subscripted)
            return fail(p, bracket, "'%.*s' at column %zu does not take type arguments (remove the [...])",
                        (int)nlen, name, start + 1);
        return new_type(p, ne->kind);
    }
    if (!subscripted) {
        if (ne->cls == NAME_GENERIC) return new_type(p, ne->kind);
        const char *ex = ne->cls == NAME_LITERAL ? "Literal['a', 'b']"
                         : ne->cls == NAME_OPTIONAL ? "Optional[int]"
                                                    : "Union[int, str]";
        return fail(p, start, "'%.*s' at column %zu needs arguments in brackets, e.g. %s", (int)nlen,
                    name, start + 1, ex);
    }
    if (depth + 1 >= DSPEX_SIG_MAX_DEPTH)
        return fail(p, bracket, "type nesting deeper than %d levels at column %zu (flatten the type)",
                    DSPEX_SIG_MAX_DEPTH, bracket + 1);
    p->pos++; /* '[' */
    if (ne->cls == NAME_LITERAL) return parse_literal(p, start);

    type_vec args = {0};
    int variadic = 0;
    for (;;) {
        skip_ws(p);
        size_t arg_at = p->pos;
        if (peek(p) == ']') {
            if (args.n == 0)
                return fail(p, arg_at, "empty [] at column %zu (write a type inside, e.g. %s)",
                            arg_at + 1, ne->cls == NAME_GENERIC ? generic_example(ne->kind)
                                                                : "Optional[int]");
            break;
        }
        if (peek(p) == '.' && p->pos + 2 < p->end && p->src[p->pos + 1] == '.' &&
            p->src[p->pos + 2] == '.') {
            if (ne->kind != DSPEX_SIG_T_TUPLE || args.n != 1)
                return fail(p, arg_at, "'...' at column %zu is only allowed as tuple[T, ...]", arg_at + 1);
            p->pos += 3;
            variadic = 1;
            skip_ws(p);
            if (peek(p) == ',') p->pos++;
            skip_ws(p);
            if (peek(p) != ']')
                return fail(p, p->pos, "expected ']' after '...' at column %zu", p->pos + 1);
            break;
        }
        dspex_sig_type *a = parse_type(p, depth + 1);
        if (a == NULL) return NULL;
        if (tv_push(p, &args, a, arg_at) != 0) return NULL;
        skip_ws(p);
        if (peek(p) == ',') {
            p->pos++;
            continue;
        }
        if (peek(p) == ']') break;
        return fail(p, p->pos, "expected ',' or ']' at column %zu, found %s", p->pos + 1,
                    describe(p, d, sizeof d));
    }
    p->pos++; /* ']' */

    if (ne->cls == NAME_OPTIONAL) {
        if (args.n != 1)
            return fail(p, bracket, "Optional at column %zu takes exactly one type, e.g. Optional[int]",
                        start + 1);
        dspex_sig_type *none = new_type(p, DSPEX_SIG_T_NONE);
        if (none == NULL) return NULL;
        dspex_sig_type *pair[2] = {args.items[0], none};
        return make_union(p, pair, 2, start);
    }
    if (ne->cls == NAME_UNION) return make_union(p, args.items, args.n, start);

    size_t want = ne->kind == DSPEX_SIG_T_DICT ? 2 : ne->kind == DSPEX_SIG_T_TUPLE ? 0 : 1;
    if (want && args.n != want)
        return fail(p, bracket, "'%.*s' at column %zu takes %zu type argument%s, e.g. %s", (int)nlen,
                    name, start + 1, want, want == 1 ? "" : "s", generic_example(ne->kind));
    dspex_sig_type *t = new_type(p, ne->kind);
    if (t == NULL) return NULL;
    t->has_args = 1;
    t->variadic = variadic;
    t->nargs = args.n;
    t->args = args.items;
    return t;
}

static dspex_sig_type *parse_type(sig_parser *p, int depth) {
    skip_ws(p);
    size_t start = p->pos;
    if (depth >= DSPEX_SIG_MAX_DEPTH)
        return fail(p, start, "type nesting deeper than %d levels at column %zu (flatten the type)",
                    DSPEX_SIG_MAX_DEPTH, start + 1);
    dspex_sig_type *first = parse_primary(p, depth);
    if (first == NULL) return NULL;
    skip_ws(p);
    if (peek(p) != '|') return first;
    type_vec members = {0};
    if (tv_push(p, &members, first, start) != 0) return NULL;
    while (peek(p) == '|') {
        p->pos++;
        skip_ws(p);
        size_t at = p->pos;
        dspex_sig_type *m = parse_primary(p, depth);
        if (m == NULL) return NULL;
        if (tv_push(p, &members, m, at) != 0) return NULL;
        skip_ws(p);
    }
    return make_union(p, members.items, members.n, start);
}

/* ------------------------------------------------------------------------------------
 * Prefix inference. */

static int up(char c) { return c >= 'A' && c <= 'Z'; }
static int lo(char c) { return c >= 'a' && c <= 'z'; }
static int alpha(char c) { return up(c) || lo(c); }

/* One of DSPy's four regex substitutions, each inserting '_' between the two groups,
 * with Python's left-to-right non-overlapping matching:
 *   0: (.)([A-Z][a-z]+)   1: ([a-z0-9])([A-Z])   2: ([a-zA-Z])(\d)   3: (\d)([a-zA-Z])
 * out must hold 2 * n bytes. Returns the output length. */
static size_t prefix_pass(int which, const char *in, size_t n, char *out) {
    size_t o = 0, i = 0;
    while (i < n) {
        char a = in[i];
        if (which == 0) {
            if (i + 2 < n && a != '\n' && up(in[i + 1]) && lo(in[i + 2])) {
                out[o++] = a;
                out[o++] = '_';
                out[o++] = in[i + 1];
                i += 2;
                while (i < n && lo(in[i])) out[o++] = in[i++];
                continue;
            }
        } else if (i + 1 < n) {
            char b = in[i + 1];
            int hit = which == 1   ? ((lo(a) || is_digit(a)) && up(b))
                      : which == 2 ? (alpha(a) && is_digit(b))
                                   : (is_digit(a) && alpha(b));
            if (hit) {
                out[o++] = a;
                out[o++] = '_';
                out[o++] = b;
                i += 2;
                continue;
            }
        }
        out[o++] = a;
        i++;
    }
    return o;
}

size_t dspex_sig_infer_prefix(const char *name, size_t len, char *out, size_t cap) {
    /* each pass at most doubles the length; four passes */
    if (len > SIZE_MAX / 32) return (size_t)-1;
    size_t big = len * 16 + 1;
    char sa[512], sb[512];
    int heap = big > sizeof sa;
    char *a = heap ? malloc(big) : sa, *b = heap ? malloc(big) : sb;
    if (a == NULL || b == NULL) {
        if (heap) {
            free(a);
            free(b);
        }
        return (size_t)-1;
    }
    char *const a0 = a, *const b0 = b;
    size_t n = len;
    if (len) memcpy(a, name, len);
    for (int w = 0; w < 4; w++) {
        n = prefix_pass(w, a, n, b);
        char *t = a;
        a = b;
        b = t;
    }
    /* words: keep all-uppercase words, capitalize the rest; '_' -> ' ' */
    size_t start = 0;
    while (start <= n) {
        size_t end = start;
        while (end < n && a[end] != '_') end++;
        int has_up = 0, has_lo = 0;
        for (size_t k = start; k < end; k++) {
            has_up |= up(a[k]);
            has_lo |= lo(a[k]);
        }
        if (!(has_up && !has_lo)) {
            for (size_t k = start; k < end; k++) {
                char c = a[k];
                if (k == start && lo(c)) c = (char)(c - 'a' + 'A');
                else if (k > start && up(c)) c = (char)(c - 'A' + 'a');
                a[k] = c;
            }
        }
        if (end < n) a[end] = ' ';
        start = end + 1;
    }
    if (cap > 0) {
        size_t m = n < cap ? n : cap - 1;
        memcpy(out, a, m);
        out[m] = '\0';
    }
    if (heap) {
        free(a0);
        free(b0);
    }
    return n;
}

/* ------------------------------------------------------------------------------------
 * Fields and sides. */

typedef struct {
    dspex_sig_field *items;
    size_t n;
    size_t cap;
} field_vec;

static int parse_side(sig_parser *p, size_t from, size_t to, dspex_sig_field_kind kind, field_vec *fv) {
    char d[32];
    p->pos = from;
    p->end = to;
    const char *side = kind == DSPEX_SIG_INPUT ? "input" : "output";
    skip_ws(p);
    if (at_end(p)) return 0;
    for (;;) {
        skip_ws(p);
        size_t at = p->pos;
        if (!is_ident_start(peek(p))) {
            if (peek(p) == ',') {
                fail(p, at, "empty %s field at column %zu (remove the extra ',')", side, at + 1);
            } else if (is_digit(peek(p))) {
                fail(p, at,
                     "field name at column %zu starts with a digit (names are identifiers: "
                     "letters, digits and '_', not starting with a digit, e.g. question)",
                     at + 1);
            } else {
                fail(p, at,
                     "expected an %s field name at column %zu, found %s (names are identifiers "
                     "like question or context_2)",
                     side, at + 1, describe(p, d, sizeof d));
            }
            return -1;
        }
        size_t i = p->pos;
        while (i < p->end && is_ident_char(p->src[i])) i++;
        const char *name = p->src + at;
        size_t nlen = i - at;
        if (is_keyword(name, nlen)) {
            fail(p, at, "field name '%.*s' at column %zu is a Python keyword (choose another name)",
                 (int)nlen, name, at + 1);
            return -1;
        }
        p->pos = i;
        if (fv->n >= DSPEX_SIG_MAX_FIELDS) {
            fail(p, at, "too many fields at column %zu (the limit is %d)", at + 1, DSPEX_SIG_MAX_FIELDS);
            return -1;
        }
        for (size_t k = 0; k < fv->n; k++) {
            if (fv->items[k].name_len == nlen && memcmp(fv->items[k].name, name, nlen) == 0) {
                if (fv->items[k].kind != kind)
                    fail(p, at,
                         "duplicate field name '%.*s' at column %zu (input and output fields must "
                         "have distinct names)",
                         (int)nlen, name, at + 1);
                else
                    fail(p, at,
                         "duplicate field name '%.*s' at column %zu (each %s field name may appear "
                         "only once)",
                         (int)nlen, name, at + 1, side);
                return -1;
            }
        }
        char *copy = palloc(p, nlen + 1);
        if (copy == NULL) return -1;
        memcpy(copy, name, nlen);
        copy[nlen] = '\0';
        /* the prefix has as many bytes as the name plus one per inserted word break */
        size_t plen = dspex_sig_infer_prefix(name, nlen, NULL, 0);
        if (plen == (size_t)-1) {
            oom(p);
            return -1;
        }
        char *prefix = palloc(p, plen + 1);
        if (prefix == NULL) return -1;
        dspex_sig_infer_prefix(name, nlen, prefix, plen + 1);

        dspex_sig_type *type;
        int defined = 0;
        skip_ws(p);
        if (peek(p) == ':') {
            p->pos++;
            skip_ws(p);
            if (at_end(p) || peek(p) == ',') {
                fail(p, p->pos, "missing type after '%.*s:' at column %zu (e.g. %.*s: str)", (int)nlen,
                     name, p->pos + 1, (int)nlen, name);
                return -1;
            }
            type = parse_type(p, 0);
            defined = 1;
        } else {
            type = new_type(p, DSPEX_SIG_T_STR);
        }
        if (type == NULL) return -1;
        if (vec_reserve(p, (void **)&fv->items, &fv->cap, fv->n, sizeof(dspex_sig_field)) != 0)
            return -1;
        dspex_sig_field *f = &fv->items[fv->n++];
        f->name = copy;
        f->name_len = nlen;
        f->kind = kind;
        f->type = type;
        f->type_defined = defined;
        f->column = at + 1;
        f->prefix = prefix;
        f->prefix_len = plen;

        skip_ws(p);
        if (at_end(p)) return 0;
        if (peek(p) == ',') {
            p->pos++;
            skip_ws(p);
            if (at_end(p)) return 0; /* trailing comma */
            continue;
        }
        if (peek(p) == '=') {
            fail(p, p->pos,
                 "default value at column %zu is not supported (write just '%.*s' or '%.*s: type')",
                 p->pos + 1, (int)nlen, name, (int)nlen, name);
            return -1;
        }
        if (peek(p) == ']' || peek(p) == ')')
            fail(p, p->pos, "unbalanced '%c' at column %zu", peek(p), p->pos + 1);
        else
            fail(p, p->pos, "expected ',' or '->' after field '%.*s' at column %zu, found %s",
                 (int)nlen, name, p->pos + 1, describe(p, d, sizeof d));
        return -1;
    }
}

/* Checks UTF-8 validity and the absence of NUL; returns the offset of the first bad byte
 * or len when all is well. */
static size_t utf8_check(const unsigned char *s, size_t len) {
    size_t i = 0;
    while (i < len) {
        unsigned char c = s[i];
        if (c == 0) return i;
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t n = dspex_utf8_seq(s, len, i);
        if (n == 0) return i;
        i += n;
    }
    return len;
}

/* Finds the '->' separators outside string literals. */
static int find_arrow(sig_parser *p, size_t *arrow) {
    size_t count = 0, first = 0, second = 0;
    size_t i = 0;
    while (i < p->len) {
        char c = p->src[i];
        if (c == '\'' || c == '"') {
            size_t j = i + 1;
            while (j < p->len && p->src[j] != c && p->src[j] != '\n' && p->src[j] != '\r')
                j += (p->src[j] == '\\' && j + 1 < p->len) ? 2 : 1;
            if (j >= p->len || p->src[j] != c) {
                fail(p, i, "unterminated string starting at column %zu (close it with %c)", i + 1, c);
                return -1;
            }
            i = j + 1;
            continue;
        }
        if (c == '-' && i + 1 < p->len && p->src[i + 1] == '>') {
            if (count == 0) first = i;
            else if (count == 1) second = i;
            count++;
            i += 2;
            continue;
        }
        i++;
    }
    if (count == 0) {
        fail(p, p->len,
             "expected exactly one '->' but found none (write \"inputs -> outputs\", e.g. "
             "\"question -> answer\")");
        return -1;
    }
    if (count > 1) {
        fail(p, second,
             "expected exactly one '->' but found a second one at column %zu (write \"inputs -> "
             "outputs\", e.g. \"question, context -> answer\")",
             second + 1);
        return -1;
    }
    *arrow = first;
    return 0;
}

dspex_sig_status dspex_sig_parse(const char *src, size_t len, dspex_signature **out,
                                 dspex_sig_error *err) {
    if (out != NULL) *out = NULL;
    if (err != NULL) {
        err->column = 0;
        err->message[0] = '\0';
    }
    sig_parser p = {0};
    p.src = src;
    p.len = len;
    p.end = len;
    p.err = err;
    if (out == NULL || (src == NULL && len > 0)) {
        if (err != NULL) snprintf(err->message, sizeof err->message, "invalid arguments");
        return DSPEX_SIG_ESYNTAX;
    }
    if (len > DSPEX_SIG_MAX_INPUT) {
        fail(&p, DSPEX_SIG_MAX_INPUT,
             "signature is %zu bytes; the limit is %u bytes (split it or shorten the types)", len,
             DSPEX_SIG_MAX_INPUT);
        return p.status;
    }
    size_t bad = utf8_check((const unsigned char *)src, len);
    if (bad < len) {
        if (src[bad] == '\0')
            fail(&p, bad, "NUL byte at column %zu (remove it)", bad + 1);
        else
            fail(&p, bad, "invalid UTF-8 at column %zu (signatures must be UTF-8 text)", bad + 1);
        return p.status;
    }
    size_t arrow = 0;
    if (find_arrow(&p, &arrow) != 0) return p.status;

    p.arena = calloc(1, sizeof *p.arena);
    if (p.arena == NULL) {
        oom(&p);
        return p.status;
    }
    field_vec fv = {0};
    dspex_signature *sig = NULL;
    if (parse_side(&p, 0, arrow, DSPEX_SIG_INPUT, &fv) != 0) goto fail;
    size_t ninputs = fv.n;
    if (parse_side(&p, arrow + 2, len, DSPEX_SIG_OUTPUT, &fv) != 0) goto fail;
    sig = palloc(&p, sizeof *sig);
    if (sig == NULL) goto fail;
    sig->fields = fv.items;
    sig->nfields = fv.n;
    sig->ninputs = ninputs;
    sig->arena = p.arena;
    *out = sig;
    return DSPEX_SIG_OK;
fail:
    arena_free(p.arena);
    return p.status == DSPEX_SIG_OK ? DSPEX_SIG_ENOMEM : p.status;
}

void dspex_sig_free(dspex_signature *sig) {
    if (sig == NULL) return;
    arena_free(sig->arena); /* sig itself lives in the arena */
}

/* ------------------------------------------------------------------------------------
 * Rendering. */

typedef struct {
    char *buf;
    size_t cap;
    size_t n;
} sbuf;

static void sb_putn(sbuf *b, const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (b->n + 1 < b->cap) b->buf[b->n] = s[i];
        b->n++;
    }
}
static void sb_puts(sbuf *b, const char *s) { sb_putn(b, s, strlen(s)); }

static void render_lit(sbuf *b, const dspex_sig_literal *l) {
    char tmp[64];
    switch (l->kind) {
    case DSPEX_SIG_LIT_STR:
        sb_puts(b, "'");
        for (size_t i = 0; i < l->str_len; i++) {
            unsigned char c = (unsigned char)l->str[i];
            if (c == '\\' || c == '\'') {
                sb_puts(b, "\\");
                sb_putn(b, (const char *)&l->str[i], 1);
            } else if (c == '\n') {
                sb_puts(b, "\\n");
            } else if (c == '\t') {
                sb_puts(b, "\\t");
            } else if (c == '\r') {
                sb_puts(b, "\\r");
            } else if (c < 0x20 || c == 0x7f) {
                snprintf(tmp, sizeof tmp, "\\x%02x", c);
                sb_puts(b, tmp);
            } else {
                sb_putn(b, (const char *)&l->str[i], 1);
            }
        }
        sb_puts(b, "'");
        break;
    case DSPEX_SIG_LIT_INT:
        snprintf(tmp, sizeof tmp, "%lld", l->i);
        sb_puts(b, tmp);
        break;
    case DSPEX_SIG_LIT_FLOAT: {
        /* shortest round-trip representation */
        for (int prec = 1; prec <= 17; prec++) {
            snprintf(tmp, sizeof tmp, "%.*g", prec, l->f);
            if (strtod(tmp, NULL) == l->f) break;
        }
        sb_puts(b, tmp);
        if (strpbrk(tmp, ".eEn") == NULL) sb_puts(b, ".0");
        break;
    }
    case DSPEX_SIG_LIT_BOOL: sb_puts(b, l->b ? "True" : "False"); break;
    case DSPEX_SIG_LIT_NONE: sb_puts(b, "None"); break;
    }
}

static void render(sbuf *b, const dspex_sig_type *t) {
    const char *name = "str";
    switch (t->kind) {
    case DSPEX_SIG_T_STR: name = "str"; break;
    case DSPEX_SIG_T_INT: name = "int"; break;
    case DSPEX_SIG_T_FLOAT: name = "float"; break;
    case DSPEX_SIG_T_BOOL: name = "bool"; break;
    case DSPEX_SIG_T_ANY: name = "Any"; break;
    case DSPEX_SIG_T_NONE: name = "None"; break;
    case DSPEX_SIG_T_HISTORY: name = "History"; break;
    case DSPEX_SIG_T_LIST: name = "list"; break;
    case DSPEX_SIG_T_SET: name = "set"; break;
    case DSPEX_SIG_T_DICT: name = "dict"; break;
    case DSPEX_SIG_T_TUPLE: name = "tuple"; break;
    case DSPEX_SIG_T_LITERAL: name = "Literal"; break;
    case DSPEX_SIG_T_OPTIONAL: name = "Optional"; break;
    case DSPEX_SIG_T_UNION: name = "Union"; break;
    }
    sb_puts(b, name);
    if (!t->has_args) return;
    sb_puts(b, "[");
    if (t->kind == DSPEX_SIG_T_LITERAL) {
        for (size_t i = 0; i < t->nlits; i++) {
            if (i) sb_puts(b, ", ");
            render_lit(b, &t->lits[i]);
        }
    } else {
        for (size_t i = 0; i < t->nargs; i++) {
            if (i) sb_puts(b, ", ");
            render(b, t->args[i]);
        }
        if (t->variadic) sb_puts(b, ", ...");
    }
    sb_puts(b, "]");
}

size_t dspex_sig_type_render(const dspex_sig_type *t, char *buf, size_t cap) {
    sbuf b = {buf, cap, 0};
    if (t != NULL) render(&b, t);
    if (cap > 0) buf[b.n < cap ? b.n : cap - 1] = '\0';
    return b.n;
}
