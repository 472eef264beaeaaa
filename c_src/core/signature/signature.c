/* DSPy signature strings and type expressions. See include/dspex/signature.h. */
#include "dspex/signature.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dspex/pytext.h"
#include "dspex/utf8.h"

/* ------------------------------------------------------------------------------------
 * Parser state. */

typedef struct {
    const char *src;
    size_t len;
    size_t pos;
    size_t end; /* the current side ends here (exclusive) */
    dspex_sig_mode mode;
    dspex_arena *arena;
    dspex_sig_error *err;
    dspex_sig_status status;
} sig_parser;

/* A parsed type and how it was written (for DSPy's string-mode `|` rules). */
typedef struct {
    dspex_type *t;
    int none_const; /* the constant `None` (DSPy's string parser treats it unlike NoneType) */
    int none_type;  /* the name `NoneType` */
} ptype;

static const char SUPPORTED[] =
    "supported: str, int, float, bool, Any, None, datetime.datetime, datetime.date, list[T], set[T], "
    "frozenset[T], dict[K, V], tuple[A, B], tuple[T, ...], Literal['a', 1, True], Optional[T], "
    "Union[A, B], A | B, History, Tool, ToolCalls, Image (bare list/dict/tuple/set/frozenset and typing.List/Dict/Tuple/Set/"
    "FrozenSet are accepted too)";

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
    void *mem = dspex_arena_alloc(p->arena, size);
    if (mem == NULL) return oom(p);
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
static int is_digit(char c) { return c >= '0' && c <= '9'; }

/* Identifier characters: ASCII letters, digits and '_', and non-ASCII characters that
 * can be letters (Python's XID_Start/XID_Continue, approximated: every code point except
 * controls, spaces, punctuation and symbols of Latin-1, the General Punctuation block and
 * CJK punctuation). Returns the byte length at s[i] (0 when not an identifier char). */
static size_t ident_char_at(const char *s, size_t n, size_t i, int start) {
    unsigned char c = (unsigned char)s[i];
    if (c < 0x80) {
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_') return 1;
        return (!start && c >= '0' && c <= '9') ? 1 : 0;
    }
    size_t k = dspex_utf8_seq((const unsigned char *)s, n, i);
    if (k == 0) return 0;
    size_t j = i;
    uint32_t cp = dspex_utf8_next(s, n, &j);
    if (cp < 0xC0 && cp != 0xAA && cp != 0xB5 && cp != 0xBA) return 0;
    if (cp == 0xD7 || cp == 0xF7) return 0;
    if (cp >= 0x2000 && cp <= 0x206F) return 0;
    if (cp >= 0x3000 && cp <= 0x303F) return 0;
    if (cp >= 0xFF00 && cp <= 0xFF0F) return 0;
    if (cp == 0xFEFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return k;
}

static void skip_ws(sig_parser *p) {
    while (p->pos < p->end && is_ws(p->src[p->pos])) p->pos++;
}

static int at_end(sig_parser *p) { return p->pos >= p->end; }

static char peek(sig_parser *p) { return p->pos < p->end ? p->src[p->pos] : '\0'; }

static int at_ident_start(sig_parser *p) {
    return p->pos < p->end && ident_char_at(p->src, p->end, p->pos, 1) > 0;
}

/* End of the identifier starting at i. */
static size_t ident_end(sig_parser *p, size_t i) {
    size_t k;
    while (i < p->end && (k = ident_char_at(p->src, p->end, i, 0)) > 0) i += k;
    return i;
}

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

static int name_is(const char *s, size_t n, const char *lit) {
    return strlen(lit) == n && memcmp(s, lit, n) == 0;
}

static int is_keyword(const char *s, size_t n) {
    for (size_t i = 0; i < sizeof PY_KEYWORDS / sizeof PY_KEYWORDS[0]; i++)
        if (name_is(s, n, PY_KEYWORDS[i])) return 1;
    return 0;
}

static size_t cp_count(const char *s, size_t n) {
    size_t c = 0;
    for (size_t i = 0; i < n; i++) c += ((unsigned char)s[i] & 0xc0) != 0x80;
    return c;
}

int dspex_sig_valid_name(const char *name, size_t len, int allow_keywords) {
    if (len == 0 || (!allow_keywords && is_keyword(name, len)) || cp_count(name, len) > DSPEX_SIG_MAX_NAME) return 0;
    if (dspex_utf8_seq((const unsigned char *)name, len, 0) == 0 && (unsigned char)name[0] >= 0x80) return 0;
    size_t i = 0;
    while (i < len) {
        size_t k = ident_char_at(name, len, i, i == 0);
        if (k == 0) return 0;
        i += k;
    }
    return 1;
}

/* ------------------------------------------------------------------------------------
 * Literal values. */

static dspex_val *new_val(sig_parser *p, dspex_vkind kind) {
    dspex_val *v = dspex_val_new(p->arena, kind);
    return v ? v : oom(p);
}

/* Parses a Python string literal at p->pos (quote char there). */
static dspex_val *parse_string(sig_parser *p) {
    size_t start = p->pos;
    char q = p->src[p->pos++];
    size_t body = p->pos, close = body;
    while (close < p->end && p->src[close] != q) {
        if (p->src[close] == '\n' || p->src[close] == '\r') break;
        close += (p->src[close] == '\\' && close + 1 < p->end) ? 2 : 1;
    }
    if (close >= p->end || p->src[close] != q)
        return fail(p, start, "unterminated string starting at column %zu (close it with %c)", start + 1, q);
    /* escapes never grow the text: \xHH is 4 bytes for at most 2, \uHHHH 6 for 3, \UHHHHHHHH 10 for 4 */
    char *out = palloc(p, close - body + 1);
    if (out == NULL) return NULL;
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
                if (h < 0)
                    return fail(p, esc, "invalid \\%c escape at column %zu (write exactly %d hex digits)", e,
                                esc + 1, digits);
                cp = cp * 16 + (uint32_t)h;
                i++;
            }
            if ((cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
                return fail(p, esc, "escape at column %zu is not a valid Unicode code point", esc + 1);
            o += dspex_utf8_encode(out + o, cp);
            break;
        }
        default:
            if (e >= '0' && e <= '7') {
                uint32_t cp = (uint32_t)(e - '0');
                for (int k = 0; k < 2 && i < close && p->src[i] >= '0' && p->src[i] <= '7'; k++)
                    cp = cp * 8 + (uint32_t)(p->src[i++] - '0');
                o += dspex_utf8_encode(out + o, cp); /* at most 0777: always valid, <= 2 bytes */
            } else {
                /* Python keeps unknown escapes verbatim. */
                out[o++] = '\\';
                out[o++] = e;
            }
        }
    }
    out[o] = '\0';
    p->pos = close + 1;
    dspex_val *v = new_val(p, DSPEX_V_STR);
    if (v == NULL) return NULL;
    v->s = out;
    v->slen = o;
    return v;
}

static dspex_val *parse_number(sig_parser *p) {
    size_t start = p->pos, i = p->pos;
    if (i < p->end && (p->src[i] == '-' || p->src[i] == '+')) i++;
    size_t digits_start = i;
    while (i < p->end && is_digit(p->src[i])) i++;
    int is_float = 0;
    if (i == digits_start) return fail(p, start, "expected a number after the sign at column %zu", start + 1);
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
    if (i < p->end && (ident_char_at(p->src, p->end, i, 0) || p->src[i] == '.'))
        return fail(p, start, "invalid number at column %zu (write a decimal integer like 42 or a float like 0.5)",
                    start + 1);
    char buf[80];
    size_t n = i - start;
    if (n >= sizeof buf) return fail(p, start, "number at column %zu is too long", start + 1);
    memcpy(buf, p->src + start, n);
    buf[n] = '\0';
    errno = 0;
    char *endp = NULL;
    dspex_val *v;
    if (is_float) {
        double d = strtod(buf, &endp);
        if (endp != buf + n || !isfinite(d))
            return fail(p, start, "float literal at column %zu is out of range", start + 1);
        v = new_val(p, DSPEX_V_FLOAT);
        if (v) v->f = d;
    } else {
        if (i - digits_start > 1 && p->src[digits_start] == '0') {
            /* Python rejects leading zeros ("01") unless the value is zero. */
            for (size_t k = digits_start; k < i; k++)
                if (p->src[k] != '0')
                    return fail(p, start, "integer literal at column %zu has a leading zero (write it without)",
                                start + 1);
        }
        long long x = strtoll(buf, &endp, 10);
        if (endp != buf + n || errno == ERANGE)
            return fail(p, start, "integer literal at column %zu does not fit in 64 bits", start + 1);
        v = new_val(p, DSPEX_V_INT);
        if (v) v->i = x;
    }
    p->pos = i;
    return v;
}

static dspex_val *parse_literal_value(sig_parser *p) {
    char c = peek(p);
    size_t start = p->pos;
    if (c == '\'' || c == '"') return parse_string(p);
    if (is_digit(c) || c == '-' || c == '+') return parse_number(p);
    if (at_ident_start(p)) {
        size_t i = ident_end(p, p->pos);
        const char *s = p->src + start;
        size_t n = i - start;
        if (name_is(s, n, "True") || name_is(s, n, "False")) {
            dspex_val *v = new_val(p, DSPEX_V_BOOL);
            if (v) v->b = name_is(s, n, "True");
            p->pos = i;
            return v;
        }
        if (name_is(s, n, "None")) {
            p->pos = i;
            return new_val(p, DSPEX_V_NONE);
        }
    }
    char d[32];
    return fail(p, start,
                "expected a Literal value at column %zu, found %s (Literal values are quoted strings, "
                "numbers, True, False or None, e.g. Literal['yes', 'no'])",
                start + 1, describe(p, d, sizeof d));
}

static dspex_type *parse_literal(sig_parser *p, size_t name_at) {
    /* p->pos is just past '[' */
    dspex_val **vals = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        skip_ws(p);
        if (peek(p) == ']' && n > 0) break;
        if (n >= DSPEX_TYPE_MAX_MEMBERS)
            return fail(p, p->pos, "too many Literal values at column %zu (the limit is %d)", p->pos + 1,
                        DSPEX_TYPE_MAX_MEMBERS);
        if (peek(p) == ']')
            return fail(p, name_at, "Literal at column %zu needs at least one value, e.g. Literal['a', 'b']",
                        name_at + 1);
        if (vec_reserve(p, (void **)&vals, &cap, n, sizeof *vals) != 0) return NULL;
        vals[n] = parse_literal_value(p);
        if (vals[n] == NULL) return NULL;
        n++;
        skip_ws(p);
        if (peek(p) == ',') {
            p->pos++;
            continue;
        }
        if (peek(p) == ']') break;
        char d[32];
        return fail(p, p->pos, "expected ',' or ']' in Literal[...] at column %zu, found %s", p->pos + 1,
                    describe(p, d, sizeof d));
    }
    p->pos++; /* ']' */
    dspex_type *t = dspex_type_literal(p->arena, vals, n);
    return t ? t : oom(p);
}

/* ------------------------------------------------------------------------------------
 * Types. */

typedef enum {
    NAME_SCALAR,  /* kind in `kind` */
    NAME_GENERIC, /* list/set/frozenset/dict/tuple */
    NAME_LITERAL,
    NAME_OPTIONAL,
    NAME_UNION
} name_class;

typedef struct {
    const char *name;
    name_class cls;
    dspex_type_kind kind;
    int typing; /* a typing-module name: may be written typing.<name>; generics: the alias */
} name_entry;

static const name_entry NAMES[] = {
    {"str", NAME_SCALAR, DSPEX_T_STR, 0},
    {"int", NAME_SCALAR, DSPEX_T_INT, 0},
    {"float", NAME_SCALAR, DSPEX_T_FLOAT, 0},
    {"bool", NAME_SCALAR, DSPEX_T_BOOL, 0},
    {"Any", NAME_SCALAR, DSPEX_T_ANY, 1},
    {"None", NAME_SCALAR, DSPEX_T_NONE, 0},
    {"NoneType", NAME_SCALAR, DSPEX_T_NONE, 0},
    {"History", NAME_SCALAR, DSPEX_T_HISTORY, 0},
    {"dspy.History", NAME_SCALAR, DSPEX_T_HISTORY, 0},
    {"datetime.datetime", NAME_SCALAR, DSPEX_T_DATETIME, 0},
    {"datetime.date", NAME_SCALAR, DSPEX_T_DATE, 0},
    {"Tool", NAME_SCALAR, DSPEX_T_TOOL, 0},
    {"dspy.Tool", NAME_SCALAR, DSPEX_T_TOOL, 0},
    {"ToolCalls", NAME_SCALAR, DSPEX_T_TOOL_CALLS, 0},
    {"dspy.ToolCalls", NAME_SCALAR, DSPEX_T_TOOL_CALLS, 0},
    {"Image", NAME_SCALAR, DSPEX_T_IMAGE, 0},
    {"dspy.Image", NAME_SCALAR, DSPEX_T_IMAGE, 0},
    {"list", NAME_GENERIC, DSPEX_T_LIST, 0},
    {"List", NAME_GENERIC, DSPEX_T_LIST, 1},
    {"set", NAME_GENERIC, DSPEX_T_SET, 0},
    {"Set", NAME_GENERIC, DSPEX_T_SET, 1},
    {"frozenset", NAME_GENERIC, DSPEX_T_FROZENSET, 0},
    {"FrozenSet", NAME_GENERIC, DSPEX_T_FROZENSET, 1},
    {"dict", NAME_GENERIC, DSPEX_T_DICT, 0},
    {"Dict", NAME_GENERIC, DSPEX_T_DICT, 1},
    {"tuple", NAME_GENERIC, DSPEX_T_TUPLE, 0},
    {"Tuple", NAME_GENERIC, DSPEX_T_TUPLE, 1},
    {"Literal", NAME_LITERAL, DSPEX_T_LITERAL, 1},
    {"Optional", NAME_OPTIONAL, DSPEX_T_UNION, 1},
    {"Union", NAME_UNION, DSPEX_T_UNION, 1},
};

static const name_entry *lookup_name(const char *s, size_t n) {
    int typing = 0;
    if (n > 7 && memcmp(s, "typing.", 7) == 0) {
        s += 7;
        n -= 7;
        typing = 1;
    }
    for (size_t i = 0; i < sizeof NAMES / sizeof NAMES[0]; i++)
        if (name_is(s, n, NAMES[i].name) && (!typing || NAMES[i].typing)) return &NAMES[i];
    return NULL;
}

static ptype parse_type(sig_parser *p, int depth);

static const char *generic_example(dspex_type_kind k) {
    switch (k) {
    case DSPEX_T_LIST: return "list[str]";
    case DSPEX_T_SET: return "set[str]";
    case DSPEX_T_FROZENSET: return "frozenset[str]";
    case DSPEX_T_DICT: return "dict[str, int]";
    default: return "tuple[str, int]";
    }
}

static dspex_type *new_type(sig_parser *p, dspex_type_kind kind) {
    dspex_type *t = dspex_type_new(p->arena, kind);
    return t ? t : oom(p);
}

static dspex_type *union_of(sig_parser *p, dspex_type *const *members, size_t n, int pipe, size_t at) {
    if (p->status != DSPEX_SIG_OK) return NULL;
    dspex_type *u = dspex_type_union(p->arena, members, n, pipe);
    if (u == NULL)
        return fail(p, at, "union at column %zu has too many members (the limit is %d)", at + 1,
                    DSPEX_TYPE_MAX_MEMBERS);
    return u;
}

static ptype parse_primary(sig_parser *p, int depth) {
    ptype r = {0};
    char d[32];
    skip_ws(p);
    size_t start = p->pos;
    char c = peek(p);
    if (!at_ident_start(p)) {
        if (c == '\'' || c == '"')
            fail(p, start,
                 "quoted type at column %zu is not supported (write the type itself, e.g. list[str]; for a set "
                 "of allowed strings write Literal['a', 'b'])",
                 start + 1);
        else if (c == '(' && p->mode == DSPEX_SIG_CLASS)
            fail(p, start, "parentheses at column %zu are not supported in a type (write Union[A, B])", start + 1);
        else
            fail(p, start, "expected a type at column %zu, found %s (e.g. str, int, list[str])", start + 1,
                 describe(p, d, sizeof d));
        return r;
    }
    size_t i = p->pos;
    for (;;) {
        i = ident_end(p, i);
        if (i + 1 < p->end && p->src[i] == '.' && ident_char_at(p->src, p->end, i + 1, 1)) {
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
        fail(p, start, "unknown type '%.*s%s' at column %zu; %s", shown, name, nlen > 64 ? "..." : "", start + 1,
             SUPPORTED);
        return r;
    }
    p->pos = i;
    skip_ws(p);
    int subscripted = peek(p) == '[';
    size_t bracket = p->pos;

    if (ne->cls == NAME_SCALAR) {
        if (subscripted) {
            fail(p, bracket, "'%.*s' at column %zu does not take type arguments (remove the [...])", (int)nlen, name,
                 start + 1);
            return r;
        }
        r.t = new_type(p, ne->kind);
        r.none_const = ne->kind == DSPEX_T_NONE && name_is(name, nlen, "None");
        r.none_type = ne->kind == DSPEX_T_NONE && !r.none_const;
        return r;
    }
    if (!subscripted) {
        if (ne->cls == NAME_GENERIC) {
            r.t = new_type(p, ne->kind);
            if (r.t && ne->typing) r.t->flags |= DSPEX_TF_ALIAS;
            return r;
        }
        const char *ex = ne->cls == NAME_LITERAL    ? "Literal['a', 'b']"
                         : ne->cls == NAME_OPTIONAL ? "Optional[int]"
                                                    : "Union[int, str]";
        fail(p, start, "'%.*s' at column %zu needs arguments in brackets, e.g. %s", (int)nlen, name, start + 1, ex);
        return r;
    }
    if (depth + 1 >= DSPEX_TYPE_MAX_DEPTH) {
        fail(p, bracket, "type nesting deeper than %d levels at column %zu (flatten the type)", DSPEX_TYPE_MAX_DEPTH,
             bracket + 1);
        return r;
    }
    p->pos++; /* '[' */
    if (ne->cls == NAME_LITERAL) {
        r.t = parse_literal(p, start);
        return r;
    }

    dspex_type **args = NULL;
    size_t nargs = 0, cap = 0;
    int variadic = 0;
    for (;;) {
        skip_ws(p);
        size_t arg_at = p->pos;
        if (peek(p) == ']') {
            if (nargs == 0) {
                fail(p, arg_at, "empty [] at column %zu (write a type inside, e.g. %s)", arg_at + 1,
                     ne->cls == NAME_GENERIC ? generic_example(ne->kind) : "Optional[int]");
                return r;
            }
            break;
        }
        if (peek(p) == '.' && p->pos + 2 < p->end && p->src[p->pos + 1] == '.' && p->src[p->pos + 2] == '.') {
            if (ne->kind != DSPEX_T_TUPLE || nargs != 1) {
                fail(p, arg_at, "'...' at column %zu is only allowed as tuple[T, ...]", arg_at + 1);
                return r;
            }
            p->pos += 3;
            variadic = 1;
            skip_ws(p);
            if (peek(p) == ',') p->pos++;
            skip_ws(p);
            if (peek(p) != ']') {
                fail(p, p->pos, "expected ']' after '...' at column %zu", p->pos + 1);
                return r;
            }
            break;
        }
        if (nargs >= DSPEX_TYPE_MAX_MEMBERS) {
            fail(p, arg_at, "too many type arguments at column %zu (the limit is %d)", arg_at + 1,
                 DSPEX_TYPE_MAX_MEMBERS);
            return r;
        }
        ptype a = parse_type(p, depth + 1);
        if (a.t == NULL) return r;
        if (vec_reserve(p, (void **)&args, &cap, nargs, sizeof *args) != 0) return r;
        args[nargs++] = a.t;
        skip_ws(p);
        if (peek(p) == ',') {
            p->pos++;
            continue;
        }
        if (peek(p) == ']') break;
        fail(p, p->pos, "expected ',' or ']' at column %zu, found %s", p->pos + 1, describe(p, d, sizeof d));
        return r;
    }
    p->pos++; /* ']' */

    if (ne->cls == NAME_OPTIONAL) {
        if (nargs != 1) {
            fail(p, bracket, "Optional at column %zu takes exactly one type, e.g. Optional[int]", start + 1);
            return r;
        }
        dspex_type *none = new_type(p, DSPEX_T_NONE);
        if (none == NULL) return r;
        dspex_type *pair[2] = {args[0], none};
        r.t = union_of(p, pair, 2, 0, start);
        return r;
    }
    if (ne->cls == NAME_UNION) {
        r.t = union_of(p, args, nargs, 0, start);
        return r;
    }
    size_t want = ne->kind == DSPEX_T_DICT ? 2 : ne->kind == DSPEX_T_TUPLE ? 0 : 1;
    if (want && nargs != want) {
        fail(p, bracket, "'%.*s' at column %zu takes %zu type argument%s, e.g. %s", (int)nlen, name, start + 1, want,
             want == 1 ? "" : "s", generic_example(ne->kind));
        return r;
    }
    dspex_type *t = new_type(p, ne->kind);
    if (t == NULL) return r;
    t->flags = (variadic ? DSPEX_TF_VARIADIC : 0) | (ne->typing ? DSPEX_TF_ALIAS : 0);
    t->nargs = nargs;
    t->args = args;
    r.t = t;
    return r;
}

/* `a | b | c`. String mode: DSPy's BinOp rule, left to right: `X | NoneType` and
 * `NoneType | X` are Optional[X]; anything else (including the constant None) is
 * Union[left, right]. Class mode: Python's `|` on the whole chain. */
static ptype parse_type(sig_parser *p, int depth) {
    ptype r = {0};
    skip_ws(p);
    size_t start = p->pos;
    if (depth >= DSPEX_TYPE_MAX_DEPTH) {
        fail(p, start, "type nesting deeper than %d levels at column %zu (flatten the type)", DSPEX_TYPE_MAX_DEPTH,
             start + 1);
        return r;
    }
    ptype left = parse_primary(p, depth);
    if (left.t == NULL) return r;
    skip_ws(p);
    if (peek(p) != '|') return left;
    dspex_type **members = NULL;
    size_t n = 0, cap = 0;
    if (p->mode == DSPEX_SIG_CLASS) {
        if (vec_reserve(p, (void **)&members, &cap, n, sizeof *members) != 0) return r;
        members[n++] = left.t;
    }
    while (peek(p) == '|') {
        p->pos++;
        skip_ws(p);
        size_t at = p->pos;
        ptype right = parse_primary(p, depth);
        if (right.t == NULL) return r;
        if (p->mode == DSPEX_SIG_CLASS) {
            if (n >= DSPEX_TYPE_MAX_MEMBERS) {
                fail(p, at, "union at column %zu has too many members (the limit is %d)", start + 1,
                     DSPEX_TYPE_MAX_MEMBERS);
                return r;
            }
            if (vec_reserve(p, (void **)&members, &cap, n, sizeof *members) != 0) return r;
            members[n++] = right.t;
        } else {
            dspex_type *none = NULL;
            dspex_type *pair[2];
            if (right.none_type || left.none_type) {
                none = new_type(p, DSPEX_T_NONE);
                if (none == NULL) return r;
                pair[0] = right.none_type ? left.t : right.t;
                pair[1] = none;
            } else {
                pair[0] = left.t;
                pair[1] = right.t;
            }
            left.t = union_of(p, pair, 2, 0, start);
            if (left.t == NULL) return r;
            left.none_const = left.none_type = 0;
        }
        skip_ws(p);
    }
    if (p->mode == DSPEX_SIG_CLASS) left.t = union_of(p, members, n, 1, start);
    left.none_const = left.none_type = 0;
    return left;
}

/* ------------------------------------------------------------------------------------
 * Prefix inference. */

static int up(char c) { return c >= 'A' && c <= 'Z'; }
static int lo(char c) { return c >= 'a' && c <= 'z'; }
static int alpha(char c) { return up(c) || lo(c); }

/* One of DSPy's four regex substitutions, each inserting '_' between the two groups,
 * with Python's left-to-right non-overlapping matching (the character classes are ASCII;
 * '.' matches any character but a newline, so a multi-byte character behaves like one):
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

int dspex_sig_infer_prefix(const char *name, size_t len, dspex_buf *out) {
    /* each pass at most doubles the length; four passes */
    if (len > SIZE_MAX / 32) return -1;
    size_t big = len * 16 + 1;
    char sa[1024], sb[1024];
    int heap = big > sizeof sa;
    char *a = heap ? malloc(big) : sa, *b = heap ? malloc(big) : sb;
    if (a == NULL || b == NULL) {
        if (heap) {
            free(a);
            free(b);
        }
        return -1;
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
    /* words: keep all-uppercase words (str.isupper), capitalize the rest; '_' -> ' ' */
    size_t start = 0;
    for (;;) {
        size_t end = start;
        while (end < n && a[end] != '_') end++;
        if (start > 0) dspex_buf_putc(out, ' ');
        if (dspex_py_isupper(a + start, end - start))
            dspex_buf_put(out, a + start, end - start);
        else
            dspex_py_capitalize(a + start, end - start, out);
        if (end >= n) break;
        start = end + 1;
    }
    if (heap) {
        free(a0);
        free(b0);
    }
    return out->oom ? -1 : 0;
}

/* ------------------------------------------------------------------------------------
 * Constraints. */

void dspex_constraints_text(const dspex_field *f, dspex_buf *out) {
    static const char *const map[][2] = {
        {"gt", "greater than: "},
        {"ge", "greater than or equal to: "},
        {"lt", "less than: "},
        {"le", "less than or equal to: "},
        {"min_length", "minimum length: "},
        {"max_length", "maximum length: "},
        {"multiple_of", "a multiple of the given number: "},
        {"allow_inf_nan", "allow 'inf', '-inf', 'nan' values: "},
    };
    int any = 0;
    for (size_t k = 0; k < f->nconstraints; k++) {
        for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
            if (strcmp(map[i][0], f->constraints[k].key) != 0) continue;
            if (any) dspex_buf_puts(out, ", ");
            any = 1;
            dspex_buf_puts(out, map[i][1]);
            dspex_py_str(f->constraints[k].value, out);
        }
    }
}

/* ------------------------------------------------------------------------------------
 * Fields and sides. */

typedef struct {
    dspex_field *items;
    size_t n;
    size_t cap;
} field_vec;

static int parse_side(sig_parser *p, size_t from, size_t to, int is_input, field_vec *fv) {
    char d[32];
    p->pos = from;
    p->end = to;
    const char *side = is_input ? "input" : "output";
    skip_ws(p);
    if (at_end(p)) return 0;
    for (;;) {
        skip_ws(p);
        size_t at = p->pos;
        if (!at_ident_start(p)) {
            if (peek(p) == ',')
                fail(p, at, "empty %s field at column %zu (remove the extra ',')", side, at + 1);
            else if (is_digit(peek(p)))
                fail(p, at,
                     "field name at column %zu starts with a digit (names are identifiers: letters, digits and "
                     "'_', not starting with a digit, e.g. question)",
                     at + 1);
            else
                fail(p, at,
                     "expected an %s field name at column %zu, found %s (names are identifiers like question or "
                     "context_2)",
                     side, at + 1, describe(p, d, sizeof d));
            return -1;
        }
        size_t i = ident_end(p, p->pos);
        const char *name = p->src + at;
        size_t nlen = i - at;
        if (is_keyword(name, nlen)) {
            fail(p, at, "field name '%.*s' at column %zu is a Python keyword (choose another name)", (int)nlen, name,
                 at + 1);
            return -1;
        }
        if (cp_count(name, nlen) > DSPEX_SIG_MAX_NAME) {
            fail(p, at, "field name at column %zu is %zu characters long; the limit is %d (Erlang's atom limit)",
                 at + 1, cp_count(name, nlen), DSPEX_SIG_MAX_NAME);
            return -1;
        }
        p->pos = i;
        if (fv->n >= DSPEX_SIG_MAX_FIELDS) {
            fail(p, at, "too many fields at column %zu (the limit is %d)", at + 1, DSPEX_SIG_MAX_FIELDS);
            return -1;
        }
        for (size_t k = 0; k < fv->n; k++) {
            if (fv->items[k].name_len == nlen && memcmp(fv->items[k].name, name, nlen) == 0) {
                if (fv->items[k].is_input != is_input)
                    fail(p, at,
                         "duplicate field name '%.*s' at column %zu (input and output fields must have distinct "
                         "names)",
                         (int)nlen, name, at + 1);
                else
                    fail(p, at, "duplicate field name '%.*s' at column %zu (each %s field name may appear only once)",
                         (int)nlen, name, at + 1, side);
                return -1;
            }
        }
        char *copy = dspex_arena_strndup(p->arena, name, nlen);
        if (copy == NULL) {
            oom(p);
            return -1;
        }
        dspex_type *type;
        int defined = 0;
        skip_ws(p);
        if (peek(p) == ':') {
            p->pos++;
            skip_ws(p);
            if (at_end(p) || peek(p) == ',') {
                fail(p, p->pos, "missing type after '%.*s:' at column %zu (e.g. %.*s: str)", (int)nlen, name,
                     p->pos + 1, (int)nlen, name);
                return -1;
            }
            ptype pt = parse_type(p, 0);
            type = pt.t;
            /* DSPy's make_signature turns a None annotation into str (and refuses a bare
             * typing alias, which DSPex reads as the builtin generic) */
            if (type && pt.none_const && p->mode == DSPEX_SIG_STRING) type = new_type(p, DSPEX_T_STR);
            if (type && p->mode == DSPEX_SIG_STRING && type->nargs == 0) type->flags &= ~DSPEX_TF_ALIAS;
            defined = 1;
        } else {
            type = new_type(p, DSPEX_T_STR);
        }
        if (type == NULL) return -1;
        if (vec_reserve(p, (void **)&fv->items, &fv->cap, fv->n, sizeof(dspex_field)) != 0) return -1;
        dspex_field *f = &fv->items[fv->n++];
        memset(f, 0, sizeof *f);
        f->name = copy;
        f->name_len = nlen;
        f->is_input = is_input;
        f->type = type;
        f->type_defined = defined;
        f->column = at + 1;

        skip_ws(p);
        if (at_end(p)) return 0;
        if (peek(p) == ',') {
            p->pos++;
            skip_ws(p);
            if (at_end(p)) return 0; /* trailing comma */
            continue;
        }
        if (peek(p) == '=') {
            fail(p, p->pos, "default value at column %zu is not supported (write just '%.*s' or '%.*s: type')",
                 p->pos + 1, (int)nlen, name, (int)nlen, name);
            return -1;
        }
        if (peek(p) == ']' || peek(p) == ')')
            fail(p, p->pos, "unbalanced '%c' at column %zu", peek(p), p->pos + 1);
        else
            fail(p, p->pos, "expected ',' or '->' after field '%.*s' at column %zu, found %s", (int)nlen, name,
                 p->pos + 1, describe(p, d, sizeof d));
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
            if (count == 0)
                first = i;
            else if (count == 1)
                second = i;
            count++;
            i += 2;
            continue;
        }
        i++;
    }
    if (count == 0) {
        fail(p, p->len,
             "expected exactly one '->' but found none (write \"inputs -> outputs\", e.g. \"question -> answer\")");
        return -1;
    }
    if (count > 1) {
        fail(p, second,
             "expected exactly one '->' but found a second one at column %zu (write \"inputs -> outputs\", e.g. "
             "\"question, context -> answer\")",
             second + 1);
        return -1;
    }
    *arrow = first;
    return 0;
}

/* Common checks on the input text; returns 0 when it may be parsed. */
static int check_input(sig_parser *p, const char *what) {
    if (p->len > DSPEX_SIG_MAX_INPUT) {
        fail(p, DSPEX_SIG_MAX_INPUT, "%s is %zu bytes; the limit is %u bytes (split it or shorten the types)", what,
             p->len, DSPEX_SIG_MAX_INPUT);
        return -1;
    }
    size_t bad = utf8_check((const unsigned char *)p->src, p->len);
    if (bad < p->len) {
        if (p->src[bad] == '\0')
            fail(p, bad, "NUL byte at column %zu (remove it)", bad + 1);
        else
            fail(p, bad, "invalid UTF-8 at column %zu (%ss must be UTF-8 text)", bad + 1, what);
        return -1;
    }
    return 0;
}

static void reset_error(dspex_sig_error *err) {
    if (err != NULL) {
        err->column = 0;
        err->message[0] = '\0';
    }
}

dspex_signature *dspex_sig_new(void) {
    dspex_signature *sig = calloc(1, sizeof *sig);
    if (sig) dspex_arena_init(&sig->arena, 0);
    return sig;
}

void dspex_sig_free(dspex_signature *sig) {
    if (sig == NULL) return;
    dspex_arena_free(&sig->arena);
    free(sig);
}

dspex_sig_status dspex_sig_parse(const char *src, size_t len, dspex_sig_mode mode, dspex_signature **out,
                                 dspex_sig_error *err) {
    if (out != NULL) *out = NULL;
    reset_error(err);
    sig_parser p = {.src = src, .len = len, .end = len, .mode = mode, .err = err};
    if (out == NULL || (src == NULL && len > 0)) {
        if (err != NULL) snprintf(err->message, sizeof err->message, "invalid arguments");
        return DSPEX_SIG_ESYNTAX;
    }
    if (check_input(&p, "signature") != 0) return p.status;
    size_t arrow = 0;
    if (find_arrow(&p, &arrow) != 0) return p.status;
    dspex_signature *sig = dspex_sig_new();
    if (sig == NULL) {
        oom(&p);
        return p.status;
    }
    p.arena = &sig->arena;
    field_vec fv = {0};
    if (parse_side(&p, 0, arrow, 1, &fv) != 0) goto fail;
    size_t ninputs = fv.n;
    if (parse_side(&p, arrow + 2, len, 0, &fv) != 0) goto fail;
    sig->fields = fv.items;
    sig->nfields = fv.n;
    sig->ninputs = ninputs;
    *out = sig;
    return DSPEX_SIG_OK;
fail:
    dspex_sig_free(sig);
    return p.status == DSPEX_SIG_OK ? DSPEX_SIG_ENOMEM : p.status;
}

dspex_sig_status dspex_sig_parse_type(const char *src, size_t len, dspex_sig_mode mode, dspex_arena *a,
                                      dspex_type **out, dspex_sig_error *err) {
    *out = NULL;
    reset_error(err);
    sig_parser p = {.src = src, .len = len, .end = len, .mode = mode, .err = err, .arena = a};
    if (src == NULL && len > 0) return DSPEX_SIG_ESYNTAX;
    if (check_input(&p, "type") != 0) return p.status;
    skip_ws(&p);
    if (at_end(&p)) {
        fail(&p, 0, "empty type (write one type, e.g. list[str])");
        return p.status;
    }
    ptype t = parse_type(&p, 0);
    if (t.t == NULL) return p.status == DSPEX_SIG_OK ? DSPEX_SIG_ENOMEM : p.status;
    skip_ws(&p);
    if (!at_end(&p)) {
        char d[32];
        fail(&p, p.pos, "unexpected %s at column %zu after the type (write one type, e.g. list[str])",
             describe(&p, d, sizeof d), p.pos + 1);
        return p.status;
    }
    *out = t.t;
    return DSPEX_SIG_OK;
}
