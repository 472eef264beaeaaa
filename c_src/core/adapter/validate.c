/* pydantic's validation (TypeAdapter(T).validate_python(value), lax mode) of a value read
 * from LM text against a field type: scalar coercions, containers, Literal, Enum,
 * datetime/date, and smart-mode unions. Each validator reports how exactly the input
 * matched (pydantic-core's Exactness); a union takes the first member that matches
 * exactly, else the member with the best exactness (the first among equals). Models
 * (DSPex.Schema) fill defaults and check their fields' constraints; a failure names
 * where it happened ("items[2].price: Input should be a valid number"). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dspex/adapter.h"
#include "dspex/pytext.h"

enum { EX_FAIL = 0, EX_LAX = 1, EX_STRICT = 2, EX_EXACT = 3 };

#define VPATH_MAX 256 /* bytes of the path shown in a failure (longer paths are cut) */

typedef struct {
    dspex_arena *a;
    dxa_err *err; /* message of the first failure */
    int failed;
    char path[VPATH_MAX]; /* where the value being validated sits: "items[2].price" */
    size_t plen;
} vctx;

static int fail(vctx *c, const char *msg) {
    if (!c->failed && c->err) {
        if (c->plen)
            snprintf(c->err->message, sizeof c->err->message, "%.*s: %s", (int)c->plen, c->path, msg);
        else
            snprintf(c->err->message, sizeof c->err->message, "%s", msg);
    }
    c->failed = 1;
    return EX_FAIL;
}

/* Path steps: push returns the length to pop back to. */
static size_t push_index(vctx *c, size_t i) {
    size_t old = c->plen;
    int n = snprintf(c->path + c->plen, VPATH_MAX - c->plen, "[%zu]", i);
    if (n > 0) c->plen = c->plen + (size_t)n < VPATH_MAX ? c->plen + (size_t)n : VPATH_MAX - 1;
    return old;
}

static size_t push_key(vctx *c, const char *k, size_t n) {
    size_t old = c->plen;
    int w = snprintf(c->path + c->plen, VPATH_MAX - c->plen, "%s%.*s", c->plen ? "." : "", (int)n, k);
    if (w > 0) c->plen = c->plen + (size_t)w < VPATH_MAX ? c->plen + (size_t)w : VPATH_MAX - 1;
    return old;
}

static void pop(vctx *c, size_t len) {
    c->plen = len;
    c->path[len] = '\0';
}

static int min_ex(int a, int b) { return a < b ? a : b; }

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

/* ---------------------------------------------------------------- numbers */
/* Decimal integer text (sign, digits, '_' between digits) beyond 64 bits: a big int value
 * with its digits (Python prints up to 4300 digits). NULL when the text is not one. */
static dspex_val *big_int_text(vctx *c, const char *s, size_t n) {
    size_t i = 0;
    int neg = 0;
    if (i < n && (s[i] == '-' || s[i] == '+')) neg = s[i++] == '-';
    if (i == n) return NULL;
    dspex_buf b;
    dspex_buf_init(&b);
    if (neg) dspex_buf_putc(&b, '-');
    size_t digits = 0;
    for (; i < n; i++) {
        if (s[i] == '_' && digits > 0 && i + 1 < n && s[i + 1] >= '0' && s[i + 1] <= '9') continue;
        if (s[i] < '0' || s[i] > '9') {
            dspex_buf_free(&b);
            return NULL;
        }
        if (digits == 0 && s[i] == '0' && i + 1 < n) continue; /* leading zeros */
        dspex_buf_putc(&b, s[i]);
        digits++;
    }
    dspex_val *v = NULL;
    if (!b.oom && digits > 0 && digits <= 4300) {
        v = dspex_val_new(c->a, DSPEX_V_INT);
        if (v) {
            v->s = dspex_arena_strndup(c->a, b.p, b.len);
            v->slen = b.len;
            v->i = neg ? -9223372036854775807LL - 1 : 9223372036854775807LL;
            if (v->s == NULL) v = NULL;
        }
    }
    dspex_buf_free(&b);
    return v;
}

/* int(str) as pydantic does in lax mode: surrounding whitespace, '_' between digits;
 * an integral float text ("3.0") too. Sets *big for integers beyond 64 bits. */
static int str_to_int(vctx *c, const char *s, size_t n, long long *out, dspex_val **big) {
    *big = NULL;
    dspex_py_strip(&s, &n);
    if (n == 0 || n > 5000) return 1;
    char tmp[48];
    if (n < sizeof tmp) {
        size_t k = 0;
        for (size_t i = 0; i < n; i++) {
            if (s[i] == '_' && i > 0 && i + 1 < n) continue;
            tmp[k++] = s[i];
        }
        tmp[k] = '\0';
        char *end;
        errno = 0;
        long long x = strtoll(tmp, &end, 10);
        if (*end == '\0' && end != tmp && errno != ERANGE) {
            *out = x;
            return 0;
        }
        if (errno != ERANGE) {
            double d = strtod(tmp, &end);
            if (*end == '\0' && end != tmp && isfinite(d) && d == trunc(d) && fabs(d) < 9.2e18) {
                *out = (long long)d;
                return 0;
            }
        }
    }
    *big = big_int_text(c, s, n);
    return *big ? 0 : 1;
}

static int str_to_float(const char *s, size_t n, double *out) {
    dspex_py_strip(&s, &n);
    if (n == 0 || n > 400) return 1;
    char tmp[408];
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '_' && i > 0 && i + 1 < n) continue;
        tmp[k++] = s[i];
    }
    tmp[k] = '\0';
    char *end;
    double d = strtod(tmp, &end);
    if (*end != '\0' || end == tmp) return 1;
    if (!isfinite(d)) return 1; /* an Elixir float cannot hold inf or nan */
    *out = d;
    return 0;
}

static double int_as_double(const dspex_val *v) { return v->s ? strtod(v->s, NULL) : (double)v->i; }

/* ---------------------------------------------------------------- datetime */
static int days_in_month(int y, int m) {
    static const int d[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0)) return 29;
    return d[m - 1];
}

typedef struct {
    int y, mo, d, h, mi, s, us;
    int has_time, tz, tzsec;
} dt_parts;

static int digits_at(const char *s, size_t n, size_t at, size_t len, int *out) {
    if (at + len > n) return -1;
    int v = 0;
    for (size_t k = 0; k < len; k++) {
        if (s[at + k] < '0' || s[at + k] > '9') return -1;
        v = v * 10 + (s[at + k] - '0');
    }
    *out = v;
    return 0;
}

/* ISO 8601 as pydantic's speedate reads it: YYYY-MM-DD, optionally [Tt _]HH:MM[:SS[.f]]
 * and Z / ±HH[:MM]. */
static int parse_iso(const char *s, size_t n, dt_parts *p) {
    memset(p, 0, sizeof *p);
    if (n < 10 || digits_at(s, n, 0, 4, &p->y) || s[4] != '-' || digits_at(s, n, 5, 2, &p->mo) || s[7] != '-' ||
        digits_at(s, n, 8, 2, &p->d))
        return -1;
    if (p->mo < 1 || p->mo > 12 || p->d < 1 || p->d > days_in_month(p->y, p->mo) || p->y < 1) return -1;
    size_t i = 10;
    if (i == n) return 0;
    if (s[i] != 'T' && s[i] != 't' && s[i] != ' ' && s[i] != '_') return -1;
    p->has_time = 1;
    if (digits_at(s, n, i + 1, 2, &p->h) || i + 3 >= n || s[i + 3] != ':' || digits_at(s, n, i + 4, 2, &p->mi))
        return -1;
    i += 6;
    if (i < n && s[i] == ':') {
        if (digits_at(s, n, i + 1, 2, &p->s)) return -1;
        i += 3;
        if (i < n && (s[i] == '.' || s[i] == ',')) {
            i++;
            int nd = 0;
            while (i < n && s[i] >= '0' && s[i] <= '9') {
                if (nd < 6) p->us = p->us * 10 + (s[i] - '0');
                nd++;
                i++;
            }
            if (nd == 0 || nd > 6) return -1;
            for (; nd < 6; nd++) p->us *= 10;
        }
    }
    if (p->h > 23 || p->mi > 59 || p->s > 59) return -1;
    if (i == n) return 0;
    if ((s[i] == 'Z' || s[i] == 'z') && i + 1 == n) {
        p->tz = 1;
        return 0;
    }
    if (s[i] == '+' || s[i] == '-') {
        int hh, mm = 0;
        size_t j = i + 1;
        if (digits_at(s, n, j, 2, &hh)) return -1;
        j += 2;
        if (j < n && s[j] == ':') j++;
        if (j < n) {
            if (digits_at(s, n, j, 2, &mm)) return -1;
            j += 2;
        }
        if (j != n || hh > 23 || mm > 59) return -1;
        p->tz = 1;
        p->tzsec = (hh * 3600 + mm * 60) * (s[i] == '-' ? -1 : 1);
        return 0;
    }
    return -1;
}

/* Civil date of a day count since 1970-01-01 (Howard Hinnant's algorithm). */
static void civil(long long z, int *y, int *m, int *d) {
    z += 719468;
    long long era = (z >= 0 ? z : z - 146096) / 146097;
    long long doe = z - era * 146097;
    long long yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    long long yy = yoe + era * 400;
    long long doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    long long mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = (int)(yy + (*m <= 2));
}

/* A unix timestamp (seconds; milliseconds when above 2e10, as pydantic reads them) in UTC. */
static int from_timestamp(double ts, dt_parts *p) {
    if (!isfinite(ts)) return -1;
    if (fabs(ts) > 2e10) ts /= 1000.0;
    if (fabs(ts) > 2.5e11) return -1;
    double fl = floor(ts);
    long long secs = (long long)fl;
    long long us = (long long)llround((ts - fl) * 1e6);
    if (us >= 1000000) {
        secs++;
        us -= 1000000;
    }
    long long days = secs >= 0 ? secs / 86400 : -((-secs + 86399) / 86400);
    long long rem = secs - days * 86400;
    memset(p, 0, sizeof *p);
    civil(days, &p->y, &p->mo, &p->d);
    if (p->y < 1 || p->y > 9999) return -1;
    p->h = (int)(rem / 3600);
    p->mi = (int)(rem / 60 % 60);
    p->s = (int)(rem % 60);
    p->us = (int)us;
    p->has_time = 1;
    p->tz = 1;
    return 0;
}

/* Python's isoformat() of the datetime (or date) as a value. */
static dspex_val *dt_value(vctx *c, const dt_parts *p, int date_only) {
    char buf[48];
    int n;
    if (date_only) {
        n = snprintf(buf, sizeof buf, "%04d-%02d-%02d", p->y, p->mo, p->d);
    } else {
        n = snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d", p->y, p->mo, p->d, p->h, p->mi, p->s);
        if (p->us) n += snprintf(buf + n, sizeof buf - (size_t)n, ".%06d", p->us);
        if (p->tz) {
            int off = p->tzsec < 0 ? -p->tzsec : p->tzsec;
            n += snprintf(buf + n, sizeof buf - (size_t)n, "%c%02d:%02d", p->tzsec < 0 ? '-' : '+', off / 3600,
                          off / 60 % 60);
        }
    }
    dspex_val *v = dspex_val_str(c->a, buf, (size_t)n);
    if (v) v->kind = date_only ? DSPEX_V_DATE : DSPEX_V_DATETIME;
    return v;
}

static int validate_datetime(vctx *c, const dspex_type *t, const dspex_val *v, dspex_val **out) {
    int date = t->kind == DSPEX_T_DATE;
    dt_parts p;
    if ((date && v->kind == DSPEX_V_DATE) || (!date && v->kind == DSPEX_V_DATETIME)) {
        *out = (dspex_val *)v;
        return EX_EXACT;
    }
    int ok = -1;
    if (v->kind == DSPEX_V_STR) {
        const char *s = v->s;
        size_t n = v->slen;
        dspex_py_strip(&s, &n);
        ok = parse_iso(s, n, &p);
        if (ok != 0) {
            double ts;
            if (str_to_float(s, n, &ts) == 0) ok = from_timestamp(ts, &p);
        }
    } else if (v->kind == DSPEX_V_INT || v->kind == DSPEX_V_FLOAT) {
        ok = from_timestamp(v->kind == DSPEX_V_INT ? int_as_double(v) : v->f, &p);
    }
    if (ok != 0) return fail(c, date ? "Input should be a valid date" : "Input should be a valid datetime");
    if (date && p.has_time && (p.h || p.mi || p.s || p.us))
        return fail(c, "Datetimes provided to dates should have zero time");
    *out = dt_value(c, &p, date);
    return *out ? EX_LAX : -1;
}

/* ---------------------------------------------------------------- validators */
static int validate(vctx *c, const dspex_type *t, const dspex_val *v, dspex_val **out, int depth);

static int validate_seq(vctx *c, const dspex_type *t, const dspex_val *v, dspex_val **out, int depth) {
    static const dspex_vkind KIND[] = {[DSPEX_T_LIST] = DSPEX_V_LIST, [DSPEX_T_SET] = DSPEX_V_SET,
                                       [DSPEX_T_FROZENSET] = DSPEX_V_FROZENSET, [DSPEX_T_TUPLE] = DSPEX_V_TUPLE};
    static const char *const NAME[] = {[DSPEX_T_LIST] = "list", [DSPEX_T_SET] = "set",
                                       [DSPEX_T_FROZENSET] = "frozenset", [DSPEX_T_TUPLE] = "tuple"};
    dspex_vkind kind = KIND[t->kind];
    int seq = v->kind == DSPEX_V_LIST || v->kind == DSPEX_V_TUPLE || v->kind == DSPEX_V_SET ||
              v->kind == DSPEX_V_FROZENSET;
    if (!seq) {
        char msg[64];
        snprintf(msg, sizeof msg, "Input should be a valid %s", NAME[t->kind]);
        return fail(c, msg);
    }
    /* a list/tuple/set input for another sequence type is a lax coercion (strict refuses it) */
    int ex = v->kind == kind ? EX_EXACT : EX_LAX;
    int variadic = (t->flags & DSPEX_TF_VARIADIC) != 0;
    if (t->kind == DSPEX_T_TUPLE && t->nargs && !variadic && v->n != t->nargs)
        return fail(c, "Tuple should have exactly the declared number of items");
    dspex_val *r = dspex_val_new(c->a, kind);
    if (r == NULL) return -1;
    r->items = dspex_arena_alloc(c->a, (v->n + 1) * sizeof(dspex_val *));
    if (r->items == NULL) return -1;
    int set = kind == DSPEX_V_SET || kind == DSPEX_V_FROZENSET;
    for (size_t i = 0; i < v->n; i++) {
        const dspex_type *et = t->nargs ? t->args[(t->kind == DSPEX_T_TUPLE && !variadic) ? i : 0] : NULL;
        dspex_val *x = v->items[i];
        if (et) {
            size_t mark = push_index(c, i);
            int e = validate(c, et, v->items[i], &x, depth + 1);
            pop(c, mark);
            if (e <= 0) return e;
            ex = min_ex(ex, e);
        }
        if (set) {
            int dup = 0;
            for (size_t j = 0; j < r->n && !dup; j++) dup = dspex_val_equal(r->items[j], x);
            if (dup) continue;
        }
        r->items[r->n++] = x;
    }
    *out = r;
    return ex;
}

static int validate_dict(vctx *c, const dspex_type *t, const dspex_val *v, dspex_val **out, int depth) {
    if (v->kind != DSPEX_V_DICT) return fail(c, "Input should be a valid dictionary");
    if (t->nargs < 2) {
        *out = (dspex_val *)v;
        return EX_EXACT;
    }
    dspex_val *r = dspex_val_new(c->a, DSPEX_V_DICT);
    if (r == NULL) return -1;
    r->keys = dspex_arena_alloc(c->a, (v->n + 1) * sizeof(dspex_val *));
    r->items = dspex_arena_alloc(c->a, (v->n + 1) * sizeof(dspex_val *));
    if (r->keys == NULL || r->items == NULL) return -1;
    int ex = EX_EXACT;
    for (size_t i = 0; i < v->n; i++) {
        dspex_val *k, *x;
        int e = validate(c, t->args[0], v->keys[i], &k, depth + 1);
        if (e <= 0) return e;
        ex = min_ex(ex, e);
        size_t mark = k->kind == DSPEX_V_STR ? push_key(c, k->s, k->slen) : push_index(c, i);
        e = validate(c, t->args[1], v->items[i], &x, depth + 1);
        pop(c, mark);
        if (e <= 0) return e;
        ex = min_ex(ex, e);
        /* keys equal after validation ("1" and 1 for dict[int, ...]): the last value wins */
        size_t j = 0;
        while (j < r->n && !dspex_val_equal(r->keys[j], k)) j++;
        r->keys[j] = j < r->n ? r->keys[j] : k;
        r->items[j] = x;
        if (j == r->n) r->n++;
    }
    *out = r;
    return ex;
}

/* ---------------------------------------------------------------- dspy.ToolCalls */
static const dspex_val *dget(const dspex_val *d, const char *k) { return dspex_dict_get(d, k, strlen(k)); }

/* _is_tool_call_dict */
static int is_call_dict(const dspex_val *d) {
    return d->kind == DSPEX_V_DICT && ((dget(d, "name") && (dget(d, "args") || dget(d, "arguments"))) || dget(d, "function"));
}

static dspex_val *dict_of(vctx *c, size_t cap) {
    dspex_val *d = dspex_val_new(c->a, DSPEX_V_DICT);
    if (d) {
        d->keys = dspex_arena_alloc(c->a, cap * sizeof(dspex_val *));
        d->items = dspex_arena_alloc(c->a, cap * sizeof(dspex_val *));
    }
    return d && d->keys && d->items ? d : NULL;
}

static int put(vctx *c, dspex_val *d, const char *k, dspex_val *v) {
    dspex_val *key = dspex_val_str(c->a, k, strlen(k));
    if (key == NULL || v == NULL) return -1;
    d->keys[d->n] = key;
    d->items[d->n++] = v;
    return 0;
}

/* _normalize_tool_call_dict, then ToolCall's fields: {"id", "name", "args"}. EX_LAX on
 * success, EX_FAIL (message set), -1 when out of memory. */
static int tool_call(vctx *c, const dspex_val *d, dspex_val **out) {
    if (d->kind != DSPEX_V_DICT) return fail(c, "tool_calls: each call should be a dictionary with `name` and `args`");
    const dspex_val *fn = dget(d, "function"), *name, *args;
    if (fn) {
        if (fn->kind != DSPEX_V_DICT) return fail(c, "Received invalid function value for `dspy.ToolCalls`");
        args = dget(fn, "arguments");
        name = dget(fn, "name");
        if (name == NULL || (name->kind == DSPEX_V_STR && name->slen == 0)) name = dget(d, "name");
    } else {
        args = dget(d, "args");
        if (args == NULL) args = dget(d, "arguments");
        name = dget(d, "name");
    }
    dspex_val *parsed = NULL;
    if (args && args->kind == DSPEX_V_STR) {
        /* json_repair.loads(arguments) */
        int rc = dxa_pyliteral(args->s, args->slen, 1, c->a, &parsed);
        if (rc < 0) return -1;
        if (rc > 0 || parsed->kind != DSPEX_V_DICT) return fail(c, "args: Input should be a valid dictionary");
    } else if (args && args->kind == DSPEX_V_DICT) {
        parsed = (dspex_val *)args;
    } else {
        parsed = dict_of(c, 1);
        if (parsed == NULL) return -1;
    }
    if (name == NULL || name->kind != DSPEX_V_STR) return fail(c, "name: Input should be a valid string");
    const dspex_val *id = dget(d, "id");
    if (id == NULL || id->kind != DSPEX_V_STR || id->slen == 0) id = dget(d, "call_id");
    dspex_val *none = dspex_val_new(c->a, DSPEX_V_NONE);
    dspex_val *r = dict_of(c, 3);
    if (r == NULL || none == NULL) return -1;
    if (put(c, r, "id", id && id->kind == DSPEX_V_STR ? (dspex_val *)id : none) || put(c, r, "name", (dspex_val *)name) ||
        put(c, r, "args", parsed))
        return -1;
    *out = r;
    return EX_LAX;
}

/* ---------------------------------------------------------------- models */
static double num_of(const dspex_val *v) {
    return v->kind == DSPEX_V_FLOAT ? v->f : v->kind == DSPEX_V_BOOL ? v->b : int_as_double(v);
}

static int is_num(const dspex_val *v) {
    return v->kind == DSPEX_V_INT || v->kind == DSPEX_V_FLOAT || v->kind == DSPEX_V_BOOL;
}

static size_t utf8_len(const char *s, size_t n) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (((unsigned char)s[i] & 0xc0) != 0x80) k++;
    return k;
}

/* pydantic's constraint checks and messages for one validated field value. */
static int check_constraints(vctx *c, const dspex_model_field *f, const dspex_val *v) {
    for (size_t k = 0; k < f->nconstraints; k++) {
        const char *key = f->constraints[k].key;
        const dspex_val *lim = f->constraints[k].value;
        if (lim == NULL || !is_num(lim)) continue;
        double L = num_of(lim);
        char msg[256], num[64];
        dspex_buf b;
        dspex_buf_init(&b);
        dspex_py_str(lim, &b);
        snprintf(num, sizeof num, "%s", b.oom || b.p == NULL ? "?" : b.p);
        dspex_buf_free(&b);
        const char *op = NULL;
        if (is_num(v)) {
            double x = num_of(v);
            if (strcmp(key, "gt") == 0 && !(x > L)) op = "greater than";
            else if (strcmp(key, "ge") == 0 && !(x >= L)) op = "greater than or equal to";
            else if (strcmp(key, "lt") == 0 && !(x < L)) op = "less than";
            else if (strcmp(key, "le") == 0 && !(x <= L)) op = "less than or equal to";
            else if (strcmp(key, "multiple_of") == 0 && L != 0) {
                /* pydantic-core's float test: the remainder is within |x| / 1e9 of 0 or of L */
                double rem = fmod(x, L), thr = fabs(x) / 1e9;
                if (fabs(rem) > thr && fabs(rem - L) > thr && fabs(rem + L) > thr) op = "a multiple of";
            }
            if (op) {
                snprintf(msg, sizeof msg, "Input should be %s %s", op, num);
                return fail(c, msg);
            }
        }
        int min = strcmp(key, "min_length") == 0, max = strcmp(key, "max_length") == 0;
        if (!min && !max) continue;
        size_t len;
        const char *what;
        if (v->kind == DSPEX_V_STR) {
            len = utf8_len(v->s, v->slen);
            what = "String";
        } else if (v->kind == DSPEX_V_LIST || v->kind == DSPEX_V_TUPLE || v->kind == DSPEX_V_SET ||
                   v->kind == DSPEX_V_FROZENSET || v->kind == DSPEX_V_DICT) {
            len = v->n;
            what = v->kind == DSPEX_V_DICT ? "Dictionary" : v->kind == DSPEX_V_LIST ? "List"
                   : v->kind == DSPEX_V_TUPLE ? "Tuple" : "Set";
        } else {
            continue;
        }
        if ((min && (double)len >= L) || (max && (double)len <= L)) continue;
        int plural = L != 1;
        if (v->kind == DSPEX_V_STR)
            snprintf(msg, sizeof msg, "String should have %s %s character%s", min ? "at least" : "at most", num,
                     plural ? "s" : "");
        else
            snprintf(msg, sizeof msg, "%s should have %s %s item%s after validation, not %zu", what,
                     min ? "at least" : "at most", num, plural ? "s" : "", len);
        return fail(c, msg);
    }
    return EX_EXACT;
}

/* A model from a dict (pydantic's model validation, extra keys ignored): every field
 * validated at its path, missing ones take their default or fail as required. */
static int validate_model(vctx *c, const dspex_type *t, const dspex_val *v, dspex_val **out, int depth) {
    if (v->kind != DSPEX_V_DICT) {
        char msg[300];
        snprintf(msg, sizeof msg, "Input should be a valid dictionary or instance of %.*s", (int)t->name_len, t->name);
        return fail(c, msg);
    }
    dspex_val *r = dict_of(c, t->nfields + 1);
    if (r == NULL) return -1;
    int ex = EX_STRICT;
    for (size_t i = 0; i < t->nfields; i++) {
        const dspex_model_field *f = &t->fields[i];
        size_t mark = push_key(c, f->name, f->name_len);
        const dspex_val *x = dspex_dict_get(v, f->name, f->name_len);
        dspex_val *y;
        if (x == NULL) {
            if (f->default_value == NULL) {
                fail(c, "Field required");
                pop(c, mark);
                return EX_FAIL;
            }
            y = f->default_value;
        } else {
            int e = validate(c, f->type, x, &y, depth + 1);
            if (e > 0) e = check_constraints(c, f, y) > 0 ? e : EX_FAIL;
            if (e <= 0) {
                pop(c, mark);
                return e;
            }
            ex = min_ex(ex, e);
        }
        pop(c, mark);
        if (put(c, r, f->name, y)) return -1;
    }
    *out = r;
    return ex;
}

/* ToolCalls.validate_input: {"tool_calls": [call]}, [call, ...] or one call */
static int validate_tool_calls(vctx *c, const dspex_val *v, dspex_val **out) {
    const dspex_val *list = NULL;
    dspex_val one = {.kind = DSPEX_V_LIST};
    dspex_val *single[1];
    if (v->kind == DSPEX_V_LIST) {
        for (size_t i = 0; i < v->n; i++)
            if (!is_call_dict(v->items[i])) return fail(c, "Received invalid value for `dspy.ToolCalls`");
        list = v;
    } else if (v->kind == DSPEX_V_DICT && dget(v, "tool_calls")) {
        list = dget(v, "tool_calls");
        if (list->kind != DSPEX_V_LIST) return fail(c, "Received invalid value for `dspy.ToolCalls`");
    } else if (is_call_dict(v)) {
        single[0] = (dspex_val *)v;
        one.items = single;
        one.n = 1;
        list = &one;
    } else {
        return fail(c, "Received invalid value for `dspy.ToolCalls`");
    }
    dspex_val *calls = dspex_val_new(c->a, DSPEX_V_LIST);
    if (calls == NULL) return -1;
    calls->items = dspex_arena_alloc(c->a, (list->n + 1) * sizeof(dspex_val *));
    if (calls->items == NULL) return -1;
    for (size_t i = 0; i < list->n; i++) {
        int e = tool_call(c, list->items[i], &calls->items[calls->n]);
        if (e <= 0) return e;
        calls->n++;
    }
    dspex_val *r = dict_of(c, 1);
    if (r == NULL || put(c, r, "tool_calls", calls)) return -1;
    *out = r;
    return EX_LAX;
}

static int validate(vctx *c, const dspex_type *t, const dspex_val *v, dspex_val **out, int depth) {
    if (depth > DXA_MAX_DEPTH) return fail(c, "value nested too deeply");
    dspex_val *r;
    switch (t->kind) {
    case DSPEX_T_ANY:
    case DSPEX_T_HISTORY: *out = (dspex_val *)v; return EX_EXACT;
    case DSPEX_T_NONE:
        if (v->kind != DSPEX_V_NONE) return fail(c, "Input should be None");
        *out = (dspex_val *)v;
        return EX_EXACT;
    case DSPEX_T_STR:
        if (v->kind != DSPEX_V_STR) return fail(c, "Input should be a valid string");
        *out = (dspex_val *)v;
        return EX_EXACT;
    case DSPEX_T_INT: {
        long long x;
        if (v->kind == DSPEX_V_INT) {
            *out = (dspex_val *)v;
            return EX_EXACT;
        }
        if (v->kind == DSPEX_V_BOOL) {
            x = v->b;
        } else if (v->kind == DSPEX_V_FLOAT) {
            if (!isfinite(v->f) || v->f != trunc(v->f))
                return fail(c, "Input should be a valid integer, got a number with a fractional part");
            if (fabs(v->f) >= 9.2e18) {
                char tmp[400];
                snprintf(tmp, sizeof tmp, "%.0f", v->f);
                *out = big_int_text(c, tmp, strlen(tmp));
                return *out ? EX_LAX : -1;
            }
            x = (long long)v->f;
        } else if (v->kind == DSPEX_V_STR) {
            dspex_val *big;
            if (str_to_int(c, v->s, v->slen, &x, &big))
                return fail(c, "Input should be a valid integer, unable to parse string as an integer");
            if (big) {
                *out = big;
                return EX_LAX;
            }
        } else {
            return fail(c, "Input should be a valid integer");
        }
        r = dspex_val_int(c->a, x);
        if (r == NULL) return -1;
        *out = r;
        return EX_LAX;
    }
    case DSPEX_T_FLOAT: {
        double x;
        if (v->kind == DSPEX_V_FLOAT) {
            if (!isfinite(v->f)) return fail(c, "Input should be a finite number");
            *out = (dspex_val *)v;
            return EX_EXACT;
        }
        int ex = EX_LAX;
        if (v->kind == DSPEX_V_INT) {
            x = int_as_double(v);
            ex = EX_STRICT;
        } else if (v->kind == DSPEX_V_BOOL) {
            x = v->b;
        } else if (v->kind == DSPEX_V_STR) {
            if (str_to_float(v->s, v->slen, &x))
                return fail(c, "Input should be a valid number, unable to parse string as a number");
        } else {
            return fail(c, "Input should be a valid number");
        }
        r = dspex_val_new(c->a, DSPEX_V_FLOAT);
        if (r == NULL) return -1;
        r->f = x;
        *out = r;
        return ex;
    }
    case DSPEX_T_BOOL: {
        int b;
        if (v->kind == DSPEX_V_BOOL) {
            *out = (dspex_val *)v;
            return EX_EXACT;
        }
        if (v->kind == DSPEX_V_INT && !v->s && (v->i == 0 || v->i == 1)) {
            b = (int)v->i;
        } else if (v->kind == DSPEX_V_FLOAT && (v->f == 0.0 || v->f == 1.0)) {
            b = v->f == 1.0;
        } else if (v->kind == DSPEX_V_STR) {
            const char *s = v->s;
            size_t n = v->slen;
            dspex_py_strip(&s, &n);
            if (ieq(s, n, "0") || ieq(s, n, "off") || ieq(s, n, "f") || ieq(s, n, "false") || ieq(s, n, "n") ||
                ieq(s, n, "no"))
                b = 0;
            else if (ieq(s, n, "1") || ieq(s, n, "on") || ieq(s, n, "t") || ieq(s, n, "true") || ieq(s, n, "y") ||
                     ieq(s, n, "yes"))
                b = 1;
            else
                return fail(c, "Input should be a valid boolean, unable to interpret input");
        } else {
            return fail(c, "Input should be a valid boolean");
        }
        r = dspex_val_new(c->a, DSPEX_V_BOOL);
        if (r == NULL) return -1;
        r->b = b;
        *out = r;
        return EX_LAX;
    }
    case DSPEX_T_DATETIME:
    case DSPEX_T_DATE: return validate_datetime(c, t, v, out);
    case DSPEX_T_LIST:
    case DSPEX_T_SET:
    case DSPEX_T_FROZENSET:
    case DSPEX_T_TUPLE: return validate_seq(c, t, v, out, depth);
    case DSPEX_T_DICT: return validate_dict(c, t, v, out, depth);
    case DSPEX_T_LITERAL:
        /* pydantic compares Literal values by value and type (True is not 1) */
        for (size_t i = 0; i < t->nvals; i++) {
            const dspex_val *l = t->vals[i];
            if ((l->kind == DSPEX_V_BOOL) == (v->kind == DSPEX_V_BOOL) && dspex_val_equal(l, v) &&
                (l->kind == DSPEX_V_STR) == (v->kind == DSPEX_V_STR)) {
                *out = (dspex_val *)l;
                return EX_EXACT;
            }
        }
        return fail(c, "Input should be one of the literal values");
    case DSPEX_T_ENUM:
        for (size_t i = 0; i < t->nvals; i++)
            if (dspex_val_equal(t->vals[i], v) && (t->vals[i]->kind == DSPEX_V_STR) == (v->kind == DSPEX_V_STR)) {
                *out = t->vals[i];
                return EX_LAX; /* a value, not a member of the class */
            }
        return fail(c, "Input should be one of the enum values");
    case DSPEX_T_UNION: {
        dspex_val *best = NULL;
        int best_ex = EX_FAIL;
        for (size_t i = 0; i < t->nargs; i++) {
            dspex_val *x = NULL;
            int e = validate(c, t->args[i], v, &x, depth + 1);
            if (e < 0) return e;
            if (e == EX_EXACT) {
                *out = x;
                c->failed = 0;
                return EX_EXACT;
            }
            if (e > best_ex) {
                best_ex = e;
                best = x;
            }
        }
        if (best) {
            *out = best;
            c->failed = 0;
            return best_ex;
        }
        c->failed = 0;
        return fail(c, "Input does not match any member of the union");
    }
    case DSPEX_T_TOOL_CALLS: return validate_tool_calls(c, v, out);
    case DSPEX_T_MODEL: return validate_model(c, t, v, out, depth);
    case DSPEX_T_TOOL:
    case DSPEX_T_IMAGE:
        /* inputs: the caller renders them to text first */
        if (v->kind != DSPEX_V_STR) return fail(c, "Input should be a tool or an image (an input value)");
        *out = (dspex_val *)v;
        return EX_EXACT;
    }
    return fail(c, "unsupported type");
}

int dxa_validate(const dspex_type *t, const dspex_val *v, dspex_arena *a, dspex_val **out, dxa_err *err) {
    vctx c = {.a = a, .err = err};
    int e = validate(&c, t, v, out, 0);
    return e < 0 ? -1 : e == EX_FAIL ? 1 : 0;
}
