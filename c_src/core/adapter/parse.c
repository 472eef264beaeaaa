/* LM output parsing, like DSPy 3.3.1's ChatAdapter.parse / JSONAdapter.parse and
 * utils.parse_value, with pydantic-style (lax) validation of each value against its
 * field type. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dspex/adapter.h"

/* ---------------------------------------------------------------- validation */
static int fail(dxa_err *err, const char *fmt, const char *arg) {
    if (err) snprintf(err->message, sizeof err->message, fmt, arg ? arg : "");
    return 1;
}

static int ieq(const char *s, size_t n, const char *w) {
    size_t l = strlen(w);
    if (n != l) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c >= 'A' && c <= 'Z') c = (char)(c - 'A' + 'a');
        if (c != w[i]) return 0;
    }
    return 1;
}

static int str_to_int(const char *s, size_t n, long long *out) {
    dxa_pystrip(&s, &n);
    if (n == 0 || n > 40) return 1;
    char tmp[48];
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '_' && i > 0 && i + 1 < n) continue;
        tmp[k++] = s[i];
    }
    tmp[k] = '\0';
    char *end;
    long long x = strtoll(tmp, &end, 10);
    if (*end == '\0' && end != tmp) {
        *out = x;
        return 0;
    }
    double d = strtod(tmp, &end);
    if (*end == '\0' && end != tmp && isfinite(d) && d == trunc(d) && fabs(d) < 9.2e18) {
        *out = (long long)d;
        return 0;
    }
    return 1;
}

static int str_to_float(const char *s, size_t n, double *out) {
    dxa_pystrip(&s, &n);
    if (n == 0 || n > 400) return 1;
    char tmp[408];
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    char *end;
    double d = strtod(tmp, &end);
    if (*end != '\0' || end == tmp) return 1;
    if (!isfinite(d)) return 1; /* Elixir floats cannot hold inf/nan */
    *out = d;
    return 0;
}

static double int_as_double(const dxa_val *v) { return v->s ? strtod(v->s, NULL) : (double)v->i; }

static int py_equal(const dxa_val *a, const dxa_val *b) {
    int an = a->kind == DXA_INT || a->kind == DXA_FLOAT || a->kind == DXA_BOOL;
    int bn = b->kind == DXA_INT || b->kind == DXA_FLOAT || b->kind == DXA_BOOL;
    if (an && bn) {
        double x = a->kind == DXA_FLOAT ? a->f : a->kind == DXA_INT ? int_as_double(a) : a->b;
        double y = b->kind == DXA_FLOAT ? b->f : b->kind == DXA_INT ? int_as_double(b) : b->b;
        return x == y;
    }
    if (a->kind != b->kind) return 0;
    if (a->kind == DXA_NONE) return 1;
    if (a->kind == DXA_STR) return a->slen == b->slen && memcmp(a->s, b->s, a->slen) == 0;
    return 0;
}

static int validate(const dxa_type *t, const dxa_val *v, int strict, dspex_arena *a, dxa_val **out, dxa_err *err,
                    int depth);

static int validate_seq(const dxa_type *t, const dxa_val *v, int strict, dspex_arena *a, dxa_val **out, dxa_err *err,
                        int depth) {
    if (v->kind != DXA_LIST && v->kind != DXA_TUPLE && v->kind != DXA_SET)
        return fail(err, "Input should be a valid %s", t->kind == DXT_TUPLE ? "tuple" : t->kind == DXT_SET ? "set" : "list");
    dxa_vkind kind = t->kind == DXT_TUPLE ? DXA_TUPLE : t->kind == DXT_SET ? DXA_SET : DXA_LIST;
    if (strict && t->kind == DXT_LIST && v->kind != DXA_LIST) return fail(err, "Input should be a valid list", NULL);
    if (t->kind == DXT_TUPLE && t->nargs && !t->variadic && v->n != t->nargs)
        return fail(err, "Tuple should have exactly the declared number of items", NULL);
    dxa_val *r = dxa_val_new(a, kind);
    if (r == NULL) return -1;
    r->items = dspex_arena_alloc(a, (v->n + 1) * sizeof(dxa_val *));
    if (r->items == NULL) return -1;
    for (size_t i = 0; i < v->n; i++) {
        const dxa_type *et = t->nargs ? t->args[(t->kind == DXT_TUPLE && !t->variadic) ? i : 0] : NULL;
        dxa_val *x = v->items[i];
        if (et) {
            int rc = validate(et, v->items[i], strict, a, &x, err, depth + 1);
            if (rc) return rc;
        }
        if (kind == DXA_SET) {
            int dup = 0;
            for (size_t j = 0; j < r->n && !dup; j++) dup = py_equal(r->items[j], x);
            if (dup) continue;
        }
        r->items[r->n++] = x;
    }
    *out = r;
    return 0;
}

static int validate(const dxa_type *t, const dxa_val *v, int strict, dspex_arena *a, dxa_val **out, dxa_err *err,
                    int depth) {
    if (depth > DXA_MAX_DEPTH) return fail(err, "value nested too deeply", NULL);
    dxa_val *r;
    switch (t->kind) {
    case DXT_ANY:
    case DXT_HISTORY: *out = (dxa_val *)v; return 0;
    case DXT_NONE:
        if (v->kind != DXA_NONE) return fail(err, "Input should be None", NULL);
        *out = (dxa_val *)v;
        return 0;
    case DXT_STR:
        if (v->kind != DXA_STR) return fail(err, "Input should be a valid string", NULL);
        *out = (dxa_val *)v;
        return 0;
    case DXT_INT: {
        long long x;
        if (v->kind == DXA_INT) {
            *out = (dxa_val *)v;
            return 0;
        }
        if (strict) return fail(err, "Input should be a valid integer", NULL);
        if (v->kind == DXA_BOOL)
            x = v->b;
        else if (v->kind == DXA_FLOAT) {
            if (!isfinite(v->f) || v->f != trunc(v->f) || fabs(v->f) > 9.2e18)
                return fail(err, "Input should be a valid integer, got a number with a fractional part", NULL);
            x = (long long)v->f;
        } else if (v->kind == DXA_STR) {
            if (str_to_int(v->s, v->slen, &x)) {
                /* an integer string beyond 64 bits */
                dxa_val *big = NULL;
                const char *t = v->s;
                size_t tn = v->slen;
                dxa_pystrip(&t, &tn);
                int digits = tn > 0;
                for (size_t i = (tn && (t[0] == '-' || t[0] == '+')); i < tn; i++)
                    if ((t[i] < '0' || t[i] > '9') && t[i] != '_') digits = 0;
                if (digits && dxa_pyliteral(t, tn, 0, a, &big) == 0 && big->kind == DXA_INT) {
                    *out = big;
                    return 0;
                }
                return fail(err, "Input should be a valid integer, unable to parse string as an integer", NULL);
            }
        } else
            return fail(err, "Input should be a valid integer", NULL);
        r = dxa_val_new(a, DXA_INT);
        if (r == NULL) return -1;
        r->i = x;
        *out = r;
        return 0;
    }
    case DXT_FLOAT: {
        double x;
        if (v->kind == DXA_FLOAT) {
            if (!isfinite(v->f)) return fail(err, "Input should be a finite number", NULL);
            *out = (dxa_val *)v;
            return 0;
        }
        if (v->kind == DXA_INT)
            x = int_as_double(v);
        else if (strict)
            return fail(err, "Input should be a valid number", NULL);
        else if (v->kind == DXA_BOOL)
            x = v->b;
        else if (v->kind == DXA_STR) {
            if (str_to_float(v->s, v->slen, &x))
                return fail(err, "Input should be a valid number, unable to parse string as a number", NULL);
        } else
            return fail(err, "Input should be a valid number", NULL);
        r = dxa_val_new(a, DXA_FLOAT);
        if (r == NULL) return -1;
        r->f = x;
        *out = r;
        return 0;
    }
    case DXT_BOOL: {
        int b;
        if (v->kind == DXA_BOOL) {
            *out = (dxa_val *)v;
            return 0;
        }
        if (strict) return fail(err, "Input should be a valid boolean", NULL);
        if (v->kind == DXA_INT && (v->i == 0 || v->i == 1))
            b = (int)v->i;
        else if (v->kind == DXA_FLOAT && (v->f == 0.0 || v->f == 1.0))
            b = v->f == 1.0;
        else if (v->kind == DXA_STR) {
            const char *s = v->s;
            size_t n = v->slen;
            dxa_pystrip(&s, &n);
            if (ieq(s, n, "0") || ieq(s, n, "off") || ieq(s, n, "f") || ieq(s, n, "false") || ieq(s, n, "n") ||
                ieq(s, n, "no"))
                b = 0;
            else if (ieq(s, n, "1") || ieq(s, n, "on") || ieq(s, n, "t") || ieq(s, n, "true") || ieq(s, n, "y") ||
                     ieq(s, n, "yes"))
                b = 1;
            else
                return fail(err, "Input should be a valid boolean, unable to interpret input", NULL);
        } else
            return fail(err, "Input should be a valid boolean", NULL);
        r = dxa_val_new(a, DXA_BOOL);
        if (r == NULL) return -1;
        r->b = b;
        *out = r;
        return 0;
    }
    case DXT_LIST:
    case DXT_SET:
    case DXT_TUPLE: return validate_seq(t, v, strict, a, out, err, depth);
    case DXT_DICT: {
        if (v->kind != DXA_DICT) return fail(err, "Input should be a valid dictionary", NULL);
        if (t->nargs < 2) {
            *out = (dxa_val *)v;
            return 0;
        }
        r = dxa_val_new(a, DXA_DICT);
        if (r == NULL) return -1;
        r->keys = dspex_arena_alloc(a, (v->n + 1) * sizeof(dxa_val *));
        r->items = dspex_arena_alloc(a, (v->n + 1) * sizeof(dxa_val *));
        if (r->keys == NULL || r->items == NULL) return -1;
        for (size_t i = 0; i < v->n; i++) {
            dxa_val *k, *x;
            int rc = validate(t->args[0], v->keys[i], strict, a, &k, err, depth + 1);
            if (rc) return rc;
            rc = validate(t->args[1], v->items[i], strict, a, &x, err, depth + 1);
            if (rc) return rc;
            r->keys[r->n] = k;
            r->items[r->n] = x;
            r->n++;
        }
        *out = r;
        return 0;
    }
    case DXT_LITERAL:
        for (size_t i = 0; i < t->nlits; i++) {
            const dxa_val *l = t->lits[i];
            if (py_equal(l, v) && (l->kind == DXA_BOOL) == (v->kind == DXA_BOOL)) {
                *out = (dxa_val *)l;
                return 0;
            }
        }
        return fail(err, "Input should be one of the literal values", NULL);
    case DXT_ENUM:
        if (v->kind == DXA_STR)
            for (size_t i = 0; i < t->nenum; i++)
                if (py_equal(t->enum_vals[i], v)) {
                    *out = t->enum_vals[i];
                    return 0;
                }
        return fail(err, "Input should be one of the enum values", NULL);
    case DXT_OPTIONAL:
    case DXT_UNION: {
        if (t->kind == DXT_OPTIONAL && v->kind == DXA_NONE) {
            *out = (dxa_val *)v;
            return 0;
        }
        /* smart mode: an exact (strict) match first, then lax in order */
        for (int pass = strict ? 1 : 0; pass < 2; pass++) {
            for (size_t i = 0; i < t->nargs; i++) {
                dxa_err tmp;
                int rc = validate(t->args[i], v, pass == 0, a, out, &tmp, depth + 1);
                if (rc < 0) return rc;
                if (rc == 0) return 0;
            }
        }
        return fail(err, "Input does not match any member of the union", NULL);
    }
    }
    return fail(err, "unsupported type", NULL);
}

int dxa_validate(const dxa_type *t, const dxa_val *v, dspex_arena *a, dxa_val **out, dxa_err *err) {
    return validate(t, v, 0, a, out, err, 0);
}

/* ---------------------------------------------------------------- parse_value */
static int is_optional_str(const dxa_type *t) {
    /* `str | None`, Optional[str], Union[str, int, None] (flattened args) */
    int has_none = t->kind == DXT_OPTIONAL, has_str = 0;
    const dxa_type *stack[64];
    size_t sp = 0;
    if (t->kind != DXT_OPTIONAL && t->kind != DXT_UNION) return 0;
    stack[sp++] = t;
    while (sp) {
        const dxa_type *u = stack[--sp];
        if (u->kind == DXT_OPTIONAL) has_none = 1;
        for (size_t i = 0; i < u->nargs; i++) {
            const dxa_type *m = u->args[i];
            if ((m->kind == DXT_UNION || m->kind == DXT_OPTIONAL) && sp < 64)
                stack[sp++] = m;
            else if (m->kind == DXT_NONE)
                has_none = 1;
            else if (m->kind == DXT_STR)
                has_str = 1;
        }
    }
    return has_none && has_str;
}

static int value_error(dxa_err *err, const char *s, size_t n, const dxa_type *t, const char *why) {
    dspex_buf b;
    dspex_buf_init(&b);
    dxa_py_repr_str(s, n, &b);
    dspex_buf_puts(&b, " is not a valid ");
    dxa_type_name(t, &b);
    dspex_buf_puts(&b, ": ");
    dspex_buf_puts(&b, why);
    if (err) snprintf(err->message, sizeof err->message, "%s", b.oom ? "invalid value" : b.p);
    dspex_buf_free(&b);
    return 1;
}

static int parse_typed(const dxa_type *t, const dxa_val *value, dspex_arena *a, dxa_val **out, dxa_err *err) {
    if (t->kind == DXT_STR) {
        if (value->kind == DXA_STR) {
            *out = (dxa_val *)value;
            return 0;
        }
        dspex_buf b;
        dspex_buf_init(&b);
        dxa_py_repr(value, &b);
        if (value->kind == DXA_INT || value->kind == DXA_FLOAT || value->kind == DXA_BOOL || value->kind == DXA_NONE) {
            b.len = 0;
            dxa_py_str(value, &b);
        }
        *out = b.oom ? NULL : dxa_val_str(a, b.p ? b.p : "", b.len);
        dspex_buf_free(&b);
        return *out ? 0 : -1;
    }
    if (value->kind != DXA_STR) {
        if (t->kind == DXT_ENUM) {
            return fail(err, "value is not a valid name or value for the enum %s", t->enum_name);
        }
        return validate(t, value, 0, a, out, err, 0);
    }
    const char *s = value->s;
    size_t n = value->slen;
    if (t->kind == DXT_ENUM) {
        for (size_t i = 0; i < t->nenum; i++)
            if (py_equal(t->enum_vals[i], value)) {
                *out = t->enum_vals[i];
                return 0;
            }
        dspex_buf b;
        dspex_buf_init(&b);
        dspex_buf_put(&b, s, n);
        dspex_buf_puts(&b, " is not a valid name or value for the enum ");
        dspex_buf_puts(&b, t->enum_name ? t->enum_name : "Enum");
        if (err) snprintf(err->message, sizeof err->message, "%s", b.oom ? "invalid enum value" : b.p);
        dspex_buf_free(&b);
        return 1;
    }
    if (t->kind == DXT_LITERAL) {
        for (size_t i = 0; i < t->nlits; i++)
            if (py_equal(t->lits[i], value)) {
                *out = t->lits[i];
                return 0;
            }
        const char *v = s;
        size_t vn = n;
        dxa_pystrip(&v, &vn);
        if (vn >= 1 && v[vn - 1] == ']' &&
            ((vn >= 8 && memcmp(v, "Literal[", 8) == 0) || (vn >= 4 && memcmp(v, "str[", 4) == 0))) {
            const char *br = memchr(v, '[', vn);
            size_t off = (size_t)(br - v) + 1;
            v += off;
            vn = vn - off - 1;
        }
        if (vn > 1 && v[0] == v[vn - 1] && (v[0] == '"' || v[0] == '\'')) {
            v++;
            vn -= 2;
        }
        dxa_val tmp = {.kind = DXA_STR, .s = v, .slen = vn};
        for (size_t i = 0; i < t->nlits; i++)
            if (py_equal(t->lits[i], &tmp)) {
                *out = t->lits[i];
                return 0;
            }
        dspex_buf b;
        dspex_buf_init(&b);
        dxa_py_repr_str(s, n, &b);
        dspex_buf_puts(&b, " is not one of (");
        for (size_t i = 0; i < t->nlits; i++) {
            if (i) dspex_buf_puts(&b, ", ");
            dxa_py_repr(t->lits[i], &b);
        }
        if (t->nlits == 1) dspex_buf_putc(&b, ',');
        dspex_buf_putc(&b, ')');
        if (err) snprintf(err->message, sizeof err->message, "%s", b.oom ? "invalid literal" : b.p);
        dspex_buf_free(&b);
        return 1;
    }
    if (is_optional_str(t)) return validate(t, value, 0, a, out, err, 0);
    dxa_val *cand = NULL;
    int rc = dxa_pyliteral(s, n, 1, a, &cand);
    if (rc < 0) return -1;
    if (rc != 0) cand = (dxa_val *)value;
    dxa_err e2;
    rc = validate(t, cand, 0, a, out, &e2, 0);
    if (rc > 0) return value_error(err, s, n, t, e2.message);
    return rc;
}

int dxa_parse_value(const dxa_type *t, const char *s, size_t n, dspex_arena *a, dxa_val **out, dxa_err *err) {
    dxa_val *v = dxa_val_str(a, s, n);
    if (v == NULL) return -1;
    return parse_typed(t, v, a, out, err);
}

/* ---------------------------------------------------------------- errors */
static int allows_none(const dxa_type *t, int depth) {
    if (depth > DXA_MAX_DEPTH) return 0;
    if (t->kind == DXT_NONE || t->kind == DXT_OPTIONAL) return 1;
    if (t->kind == DXT_UNION)
        for (size_t i = 0; i < t->nargs; i++)
            if (allows_none(t->args[i], depth + 1)) return 1;
    return 0;
}

static void parse_error(dspex_arena *a, dxa_err *err, const char *adapter, const dxa_sig *sig, const char *pre,
                        const char *text,
                        size_t len, dxa_val **vals, int with_parsed) {
    dspex_buf b;
    dspex_buf_init(&b);
    if (pre) {
        dspex_buf_puts(&b, pre);
        dspex_buf_puts(&b, "\n\n");
    }
    dspex_buf_printf(&b, "Adapter %s failed to parse the LM response. \n\nLM Response: ", adapter);
    dspex_buf_put(&b, text, len);
    dspex_buf_puts(&b, " \n\nExpected to find output fields in the LM response: [");
    for (size_t i = sig->ninputs, k = 0; i < sig->nfields; i++, k++) {
        if (k) dspex_buf_puts(&b, ", ");
        dspex_buf_put(&b, sig->fields[i].name, sig->fields[i].name_len);
    }
    dspex_buf_puts(&b, "] \n\n");
    if (with_parsed) {
        dspex_buf_puts(&b, "Actual output fields parsed from the LM response: [");
        int first = 1;
        for (size_t i = sig->ninputs, k = 0; i < sig->nfields; i++, k++) {
            if (!vals[k]) continue;
            if (!first) dspex_buf_puts(&b, ", ");
            first = 0;
            dspex_buf_put(&b, sig->fields[i].name, sig->fields[i].name_len);
        }
        dspex_buf_puts(&b, "] \n\n");
    }
    if (b.oom) {
        snprintf(err->message, sizeof err->message, "Adapter %s failed to parse the LM response.", adapter);
    } else {
        size_t n = b.len < sizeof err->message - 1 ? b.len : sizeof err->message - 1;
        /* a long LM response is cut at a UTF-8 character boundary */
        if (n < b.len)
            while (n > 0 && ((unsigned char)b.p[n] & 0xc0) == 0x80) n--;
        memcpy(err->message, b.p, n);
        err->message[n] = '\0';
        if (n < b.len) {
            err->full = dspex_arena_strndup(a, b.p, b.len);
            err->full_len = err->full ? b.len : 0;
        }
    }
    dspex_buf_free(&b);
}

static int finish(const char *adapter, const dxa_sig *sig, const char *text, size_t len, dspex_arena *a, dxa_val **out,
                  dxa_err *err) {
    size_t nout = sig->nfields - sig->ninputs;
    int missing = 0;
    for (size_t k = 0; k < nout; k++) {
        if (out[k]) continue;
        if (allows_none(sig->fields[sig->ninputs + k].type, 0)) {
            out[k] = dxa_val_new(a, DXA_NONE);
            if (out[k] == NULL) return -1;
        } else {
            missing = 1;
        }
    }
    if (missing) {
        parse_error(a, err, adapter, sig, NULL, text, len, out, 1);
        return 1;
    }
    return 0;
}

/* Index of a Python \w+ header "[[ ## name ## ]]" at the start of s; returns the byte
 * length of the marker (0 when none) and the name span. */
static size_t header_at(const char *s, size_t n, const char **name, size_t *nlen) {
    if (n < 12 || memcmp(s, "[[ ## ", 6) != 0) return 0;
    size_t i = 6;
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c >= 0x80)
            i++;
        else
            break;
    }
    if (i == 6) return 0;
    /* \w+ is greedy but may backtrack; the suffix must follow the name directly */
    if (i + 6 > n || memcmp(s + i, " ## ]]", 6) != 0) return 0;
    *name = s + 6;
    *nlen = i - 6;
    return i + 6;
}

static size_t cp_count(const char *s, size_t n) {
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        if (((unsigned char)s[i] & 0xc0) != 0x80) c++;
    return c;
}

static size_t cp_offset(const char *s, size_t n, size_t cps) {
    size_t i = 0, c = 0;
    while (i < n) {
        if (((unsigned char)s[i] & 0xc0) != 0x80) {
            if (c == cps) return i;
            c++;
        }
        i++;
    }
    return n;
}

static int parse_chat(const dxa_sig *sig, const char *text, size_t len, dspex_arena *a, dxa_val **out, dxa_err *err) {
    const char **lines;
    size_t *lens;
    size_t nl = dxa_splitlines(a, text, len, &lines, &lens);
    if (nl == (size_t)-1) return -1;
    size_t nout = sig->nfields - sig->ninputs;
    /* section state */
    long cur = -1; /* output index of the current section, -1 = none/ignored */
    dspex_buf sec;
    dspex_buf_init(&sec);
    int rc = 0;
    for (size_t li = 0; li <= nl; li++) {
        const char *name = NULL;
        size_t nlen = 0, mlen = 0;
        const char *rest = NULL;
        size_t restlen = 0;
        if (li < nl) {
            const char *st = lines[li];
            size_t sn = lens[li];
            dxa_pystrip(&st, &sn);
            mlen = header_at(st, sn, &name, &nlen);
            if (mlen) {
                /* DSPy slices the *unstripped* line at the match end in the stripped one */
                size_t end_cp = cp_count(st, mlen);
                size_t off = cp_offset(lines[li], lens[li], end_cp);
                rest = lines[li] + off;
                restlen = lens[li] - off;
                dxa_pystrip(&rest, &restlen);
            }
        }
        if (li == nl || mlen) {
            /* close the current section */
            if (cur >= 0) {
                const char *v = sec.p ? sec.p : "";
                size_t vn = sec.len;
                if (sec.oom) {
                    rc = -1;
                    break;
                }
                dxa_pystrip(&v, &vn);
                const dxa_field *f = &sig->fields[sig->ninputs + (size_t)cur];
                dxa_err e;
                int r = dxa_parse_value(f->type, v, vn, a, &out[cur], &e);
                if (r < 0) {
                    rc = -1;
                    break;
                }
                if (r > 0) {
                    dspex_buf m;
                    dspex_buf_init(&m);
                    dspex_buf_puts(&m, "Failed to parse field ");
                    dspex_buf_put(&m, f->name, f->name_len);
                    dspex_buf_puts(&m, " with value ");
                    dspex_buf_put(&m, v, vn);
                    dspex_buf_puts(&m, " from the LM response. Error message: ");
                    dspex_buf_puts(&m, e.message);
                    parse_error(a, err, "ChatAdapter", sig, m.oom ? "Failed to parse field" : m.p, text, len, out, 0);
                    dspex_buf_free(&m);
                    rc = 1;
                    break;
                }
            }
            if (li == nl) break;
            cur = -1;
            for (size_t k = 0; k < nout; k++) {
                const dxa_field *f = &sig->fields[sig->ninputs + k];
                if (f->name_len == nlen && memcmp(f->name, name, nlen) == 0 && out[k] == NULL) cur = (long)k;
            }
            sec.len = 0;
            if (sec.p) sec.p[0] = '\0';
            if (cur >= 0 && restlen) dspex_buf_put(&sec, rest, restlen);
            continue;
        }
        /* section lines are joined with "\n"; leading empty lines vanish in the strip */
        if (cur >= 0) {
            if (sec.len > 0) dspex_buf_putc(&sec, '\n');
            dspex_buf_put(&sec, lines[li], lens[li]);
        }
    }
    dspex_buf_free(&sec);
    if (rc) return rc;
    return finish("ChatAdapter", sig, text, len, a, out, err);
}

static int parse_json(const dxa_sig *sig, const char *text, size_t len, dspex_arena *a, dxa_val **out, dxa_err *err) {
    dxa_val *obj = NULL;
    const char *resp = text;
    size_t resplen = len;
    int rc = dxa_pyliteral(text, len, 1, a, &obj);
    if (rc < 0) return -1;
    if (rc != 0 || obj->kind != DXA_DICT) {
        size_t st, en;
        int f = dxa_find_object(text, len, &st, &en);
        if (f < 0) return -1;
        obj = NULL;
        if (f == 0) {
            resp = text + st;
            resplen = en - st;
            rc = dxa_pyliteral(resp, resplen, 1, a, &obj);
            if (rc < 0) return -1;
            if (rc != 0) obj = NULL;
        }
    }
    size_t nout = sig->nfields - sig->ninputs;
    if (obj == NULL || obj->kind != DXA_DICT) {
        parse_error(a, err, "JSONAdapter", sig, "LM response cannot be serialized to a JSON object.", resp, resplen, out,
                    0);
        return 1;
    }
    for (size_t i = 0; i < obj->n; i++) {
        const dxa_val *k = obj->keys[i];
        if (k->kind != DXA_STR) continue;
        for (size_t j = 0; j < nout; j++) {
            const dxa_field *f = &sig->fields[sig->ninputs + j];
            if (f->name_len != k->slen || memcmp(f->name, k->s, k->slen) != 0) continue;
            dxa_err e;
            int r = parse_typed(f->type, obj->items[i], a, &out[j], &e);
            if (r < 0) return -1;
            if (r > 0) {
                dspex_buf m;
                dspex_buf_init(&m);
                dspex_buf_puts(&m, "Failed to parse field ");
                dspex_buf_put(&m, f->name, f->name_len);
                dspex_buf_puts(&m, " from the LM response. Error message: ");
                dspex_buf_puts(&m, e.message);
                parse_error(a, err, "JSONAdapter", sig, m.oom ? "Failed to parse field" : m.p, resp, resplen, out, 0);
                dspex_buf_free(&m);
                return 1;
            }
        }
    }
    return finish("JSONAdapter", sig, resp, resplen, a, out, err);
}

int dxa_parse(dxa_adapter ad, const dxa_sig *sig, const char *text, size_t len, dspex_arena *a, dxa_val **out,
              dxa_err *err) {
    size_t nout = sig->nfields - sig->ninputs;
    for (size_t k = 0; k < nout; k++) out[k] = NULL;
    err->message[0] = '\0';
    err->full = NULL;
    err->full_len = 0;
    return ad == DXA_JSON ? parse_json(sig, text, len, a, out, err) : parse_chat(sig, text, len, a, out, err);
}
