/* LM output parsing, like DSPy 3.3.1's ChatAdapter.parse / JSONAdapter.parse and
 * utils.parse_value, with each value validated against its field type (validate.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dspex/adapter.h"
#include "dspex/pytext.h"

/* ---------------------------------------------------------------- parse_value */
/* `str | None`, Optional[str], Union[str, int, None]: DSPy validates the raw text. */
static int is_optional_str(const dspex_type *t) {
    if (t->kind != DSPEX_T_UNION) return 0;
    int has_none = 0, has_str = 0;
    for (size_t i = 0; i < t->nargs; i++) {
        has_none |= t->args[i]->kind == DSPEX_T_NONE;
        has_str |= t->args[i]->kind == DSPEX_T_STR;
    }
    return has_none && has_str;
}

/* Copies text into a fixed buffer, cut at cap - 1 bytes (on a UTF-8 boundary). */
static void copy_cut(char *dst, size_t cap, const char *src) {
    size_t n = strlen(src);
    if (n >= cap) {
        n = cap - 1;
        while (n > 0 && ((unsigned char)src[n] & 0xc0) == 0x80) n--;
    }
    memcpy(dst, src, n);
    dst[n] = '\0';
}

static void set_message(dxa_err *err, dspex_buf *b, const char *fallback) {
    if (err) snprintf(err->message, sizeof err->message, "%s", b->oom || b->p == NULL ? fallback : b->p);
}

static int value_error(dxa_err *err, const char *s, size_t n, const dspex_type *t, const char *why) {
    if (err) copy_cut(err->reason, sizeof err->reason, why);
    dspex_buf b;
    dspex_buf_init(&b);
    dspex_py_repr_str(s, n, &b);
    dspex_buf_puts(&b, " is not a valid ");
    dspex_type_name(t, &b);
    dspex_buf_puts(&b, ": ");
    dspex_buf_puts(&b, why);
    set_message(err, &b, "invalid value");
    dspex_buf_free(&b);
    return 1;
}

/* find_enum_member(enum, identifier): a member by value (Python ==), then by name. */
static int enum_member(const dspex_type *t, const dspex_val *v, dspex_val **out, dxa_err *err) {
    for (size_t i = 0; i < t->nvals; i++)
        if (dspex_val_equal(t->vals[i], v)) {
            *out = t->vals[i];
            return 0;
        }
    for (size_t i = 0; i < t->nvals; i++)
        if (dspex_val_equal(t->names[i], v)) {
            *out = t->vals[i];
            return 0;
        }
    dspex_buf b;
    dspex_buf_init(&b);
    dspex_py_str(v, &b);
    dspex_buf_puts(&b, " is not a valid name or value for the enum ");
    dspex_buf_put(&b, t->name, t->name_len);
    set_message(err, &b, "invalid enum value");
    dspex_buf_free(&b);
    return 1;
}

/* parse_value(value, annotation) where value is text (ChatAdapter) or a JSON value
 * (JSONAdapter). */
static int parse_typed(const dspex_type *t, const dspex_val *value, dspex_arena *a, dspex_val **out, dxa_err *err) {
    if (t->kind == DSPEX_T_STR) {
        /* str(value): strings as they are, other values as Python prints them */
        if (value->kind == DSPEX_V_STR) {
            *out = (dspex_val *)value;
            return 0;
        }
        dspex_buf b;
        dspex_buf_init(&b);
        if (dspex_val_is_container(value))
            dspex_py_repr(value, &b);
        else
            dspex_py_str(value, &b);
        *out = b.oom ? NULL : dspex_val_str(a, b.p ? b.p : "", b.len);
        dspex_buf_free(&b);
        return *out ? 0 : -1;
    }
    if (t->kind == DSPEX_T_ENUM) return enum_member(t, value, out, err);
    if (t->kind == DSPEX_T_LITERAL) {
        /* `value in allowed`: Python == (1 == True), the value itself is returned */
        for (size_t i = 0; i < t->nvals; i++)
            if (dspex_val_equal(t->vals[i], value)) {
                *out = value->kind == DSPEX_V_STR ? t->vals[i] : (dspex_val *)value;
                return 0;
            }
        if (value->kind == DSPEX_V_STR) {
            const char *v = value->s;
            size_t vn = value->slen;
            dspex_py_strip(&v, &vn);
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
            dspex_val tmp = {.kind = DSPEX_V_STR, .s = v, .slen = vn};
            for (size_t i = 0; i < t->nvals; i++)
                if (dspex_val_equal(t->vals[i], &tmp)) {
                    *out = t->vals[i];
                    return 0;
                }
        }
        dspex_buf b;
        dspex_buf_init(&b);
        dspex_py_repr(value, &b);
        dspex_buf_puts(&b, " is not one of (");
        for (size_t i = 0; i < t->nvals; i++) {
            if (i) dspex_buf_puts(&b, ", ");
            dspex_py_repr(t->vals[i], &b);
        }
        if (t->nvals == 1) dspex_buf_putc(&b, ',');
        dspex_buf_putc(&b, ')');
        set_message(err, &b, "invalid literal");
        dspex_buf_free(&b);
        return 1;
    }
    if (value->kind != DSPEX_V_STR || is_optional_str(t)) return dxa_validate(t, value, a, out, err);
    /* json_repair.loads, then ast.literal_eval, then the text itself */
    dspex_val *cand = NULL;
    int rc = dxa_pyliteral(value->s, value->slen, 1, a, &cand);
    if (rc < 0) return -1;
    if (rc != 0) cand = (dspex_val *)value;
    dxa_err e2;
    e2.message[0] = '\0';
    rc = dxa_validate(t, cand, a, out, &e2);
    if (rc > 0) return value_error(err, value->s, value->slen, t, e2.message);
    return rc;
}

int dxa_parse_value(const dspex_type *t, const char *s, size_t n, dspex_arena *a, dspex_val **out, dxa_err *err) {
    /* a copy: the text may live in a buffer the caller reuses, and a str result keeps it */
    dspex_val *copy = dspex_val_str(a, s, n);
    if (copy == NULL) return -1;
    return parse_typed(t, copy, a, out, err);
}

/* ---------------------------------------------------------------- errors */
/* AdapterParseError's text: "Adapter X failed to parse the LM response. ..." */
static void parse_error(dspex_arena *a, dxa_err *err, const char *adapter, const dspex_signature *sig,
                        const char *pre, const char *text, size_t len, const dxa_out *how, int with_parsed) {
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
            if (how[k] == DXA_OUT_MISSING) continue;
            if (!first) dspex_buf_puts(&b, ", ");
            first = 0;
            dspex_buf_put(&b, sig->fields[i].name, sig->fields[i].name_len);
        }
        dspex_buf_puts(&b, "] \n\n");
    }
    err->response = text;
    err->response_len = len;
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

/* "Failed to parse field X [with value V] from the LM response. Error message: E" */
static void field_error(dspex_arena *a, dxa_err *err, const char *adapter, const dspex_signature *sig,
                        const dspex_field *f, const char *v, size_t vn, const dxa_err *why, const char *text,
                        size_t len, const dxa_out *how) {
    dspex_buf m;
    dspex_buf_init(&m);
    dspex_buf_puts(&m, "Failed to parse field ");
    dspex_buf_put(&m, f->name, f->name_len);
    if (v) {
        dspex_buf_puts(&m, " with value ");
        dspex_buf_put(&m, v, vn);
    }
    dspex_buf_puts(&m, " from the LM response. Error message: ");
    dspex_buf_puts(&m, why->message);
    err->bad_field = f;
    /* the validation's own words (with where it failed) when it gave them */
    copy_cut(err->reason, sizeof err->reason, why->reason[0] ? why->reason : why->message);
    parse_error(a, err, adapter, sig, m.oom ? "Failed to parse field" : m.p, text, len, how, 0);
    dspex_buf_free(&m);
}

/* apply_output_field_defaults, then the check that every output is there. */
static int finish(const char *adapter, const dspex_signature *sig, const char *text, size_t len, dspex_arena *a,
                  dxa_out *how, dxa_err *err) {
    size_t nout = sig->nfields - sig->ninputs;
    int missing = 0;
    for (size_t k = 0; k < nout; k++) {
        if (how[k] != DXA_OUT_MISSING) continue;
        const dspex_field *f = &sig->fields[sig->ninputs + k];
        if (f->has_default)
            how[k] = DXA_OUT_DEFAULT;
        else if (dspex_type_allows_none(f->type))
            how[k] = DXA_OUT_NONE;
        else
            missing = 1;
    }
    if (missing) {
        parse_error(a, err, adapter, sig, NULL, text, len, how, 1);
        return 1;
    }
    return 0;
}

/* ---------------------------------------------------------------- ChatAdapter */
/* A Python \w+ header "[[ ## name ## ]]" at the start of s: returns the byte length of
 * the marker (0 when none) and the name span. */
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

static int parse_chat(const dspex_signature *sig, const char *text, size_t len, dspex_arena *a, dspex_val **out,
                      dxa_out *how, dxa_err *err) {
    const char **lines;
    size_t *lens;
    size_t nl = dspex_py_splitlines(a, text, len, &lines, &lens);
    if (nl == (size_t)-1) return -1;
    size_t nout = sig->nfields - sig->ninputs;
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
            dspex_py_strip(&st, &sn);
            mlen = header_at(st, sn, &name, &nlen);
            if (mlen) {
                /* DSPy slices the *unstripped* line at the match end in the stripped one */
                size_t end_cp = cp_count(st, mlen);
                size_t off = cp_offset(lines[li], lens[li], end_cp);
                rest = lines[li] + off;
                restlen = lens[li] - off;
                dspex_py_strip(&rest, &restlen);
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
                dspex_py_strip(&v, &vn);
                const dspex_field *f = &sig->fields[sig->ninputs + (size_t)cur];
                dxa_err e;
                e.message[0] = '\0';
                e.reason[0] = '\0';
                int r = dxa_parse_value(f->type, v, vn, a, &out[cur], &e);
                if (r < 0) {
                    rc = -1;
                    break;
                }
                if (r > 0) {
                    out[cur] = NULL;
                    field_error(a, err, "ChatAdapter", sig, f, v, vn, &e, text, len, how);
                    rc = 1;
                    break;
                }
                how[cur] = DXA_OUT_PARSED;
            }
            if (li == nl) break;
            cur = -1;
            for (size_t k = 0; k < nout; k++) {
                const dspex_field *f = &sig->fields[sig->ninputs + k];
                if (f->name_len == nlen && memcmp(f->name, name, nlen) == 0 && how[k] == DXA_OUT_MISSING)
                    cur = (long)k;
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
    return finish("ChatAdapter", sig, text, len, a, how, err);
}

/* ---------------------------------------------------------------- JSONAdapter */
static int parse_json(const dspex_signature *sig, const char *text, size_t len, dspex_arena *a, dspex_val **out,
                      dxa_out *how, dxa_err *err) {
    dspex_val *obj = NULL;
    const char *resp = text;
    size_t resplen = len;
    int rc = dxa_pyliteral(text, len, 1, a, &obj);
    if (rc < 0) return -1;
    if (rc != 0 || obj->kind != DSPEX_V_DICT) {
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
    if (obj == NULL || obj->kind != DSPEX_V_DICT) {
        parse_error(a, err, "JSONAdapter", sig, "LM response cannot be serialized to a JSON object.", resp, resplen,
                    how, 0);
        return 1;
    }
    for (size_t i = 0; i < obj->n; i++) {
        const dspex_val *k = obj->keys[i];
        if (k->kind != DSPEX_V_STR) continue;
        for (size_t j = 0; j < nout; j++) {
            const dspex_field *f = &sig->fields[sig->ninputs + j];
            if (f->name_len != k->slen || memcmp(f->name, k->s, k->slen) != 0) continue;
            dxa_err e;
            e.message[0] = '\0';
            e.reason[0] = '\0';
            int r = parse_typed(f->type, obj->items[i], a, &out[j], &e);
            if (r < 0) return -1;
            if (r > 0) {
                out[j] = NULL;
                field_error(a, err, "JSONAdapter", sig, f, NULL, 0, &e, resp, resplen, how);
                return 1;
            }
            how[j] = DXA_OUT_PARSED;
        }
    }
    return finish("JSONAdapter", sig, resp, resplen, a, how, err);
}

int dxa_parse(dxa_adapter ad, const dspex_signature *sig, const char *text, size_t len, dspex_arena *a,
              dspex_val **vals, dxa_out *how, dxa_err *err) {
    size_t nout = sig->nfields - sig->ninputs;
    for (size_t k = 0; k < nout; k++) {
        vals[k] = NULL;
        how[k] = DXA_OUT_MISSING;
    }
    err->message[0] = '\0';
    err->full = NULL;
    err->full_len = 0;
    err->bad_field = NULL;
    err->reason[0] = '\0';
    err->response = text;
    err->response_len = len;
    return ad == DXA_JSON ? parse_json(sig, text, len, a, vals, how, err)
                          : parse_chat(sig, text, len, a, vals, how, err);
}
