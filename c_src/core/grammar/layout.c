/* The outputs DSPy's adapters parse (parse.c), written as grammars over a signature's
 * output fields.
 *
 * ChatAdapter: "[[ ## f1 ## ]]\n" value "\n\n[[ ## f2 ## ]]\n" value ... then
 * "\n\n[[ ## completed ## ]]" (and an optional newline) - nothing before the first marker:
 * DSPy slices a marker line at the marker's end in the stripped line, so leading
 * whitespace would leak the marker's last bytes into the value. Values by type, each the text
 * parse_value reads back as that type:
 *   str, Any, History, unions with str  free text (the TEXT rule below)
 *   int                                  -?digits (at most 18), within the field's
 *                                        gt/ge/lt/le constraints (both adapters)
 *   float                                a JSON number, within them too
 *   bool                                 True | False
 *   Literal / Enum                       one of the str values, raw (parse.c compares the
 *                                        raw text; a non-str member can never match it)
 *   Optional[T]                          T | None
 *   list, dict, tuple, set, other unions JSON of the type's pydantic schema (jsonschema.c)
 * Free text is non-empty (its first character is not whitespace), has no "[[" (so no
 * line of it can be read as a field marker) and no control characters but tab and
 * newline, and ends with a newline followed by the next marker. The TEXT rule consumes
 * that "\n...[[" itself, so the rule is left by the byte after it, deterministically.
 *
 * JSONAdapter: { "f1": v1, "f2": v2 } with every output field, in order, each value of
 * its type's pydantic schema. */
#include <string.h>

#include "dspex/pytext.h"
#include "grammar_int.h"

/* Free text, ending with "\n" (more newlines) "[[". States: T0 start (first character
 * visible), IN in a line, INB after '[' (no second '['), NL at a line start, NLB after
 * "\n[" (only '[' to end). */
void gl_text_body(gb *b, int32_t from, int32_t to) {
    int32_t in = gb_state(b), inb = gb_state(b), nl = gb_state(b), nlb = gb_state(b);
    /* first character: visible ASCII or a non-ASCII character that is not Unicode
     * whitespace (str.strip would remove it) */
    gb_range(b, from, 0x21, 0x5A, in);
    gb_byte(b, from, '[', inb);
    gb_range(b, from, 0x5C, 0x7E, in);
    static const uint32_t not_ws[][2] = {{0x80, 0x84},     {0x86, 0x9F},     {0xA1, 0x167F}, {0x1681, 0x1FFF},
                                         {0x200B, 0x2027}, {0x202A, 0x202E}, {0x2030, 0x205E}, {0x2060, 0x2FFF},
                                         {0x3001, 0x10FFFF}};
    for (size_t i = 0; i < sizeof not_ws / sizeof not_ws[0]; i++) gb_cp_range(b, from, not_ws[i][0], not_ws[i][1], in);
    /* in a line */
    int32_t rest[2] = {in, inb};
    for (int i = 0; i < 2; i++) {
        int32_t s = rest[i];
        gb_byte(b, s, '\t', in);
        gb_range(b, s, 0x20, 0x5A, in);
        if (i == 0) gb_byte(b, s, '[', inb);
        gb_range(b, s, 0x5C, 0x7E, in);
        gb_cp_range(b, s, 0x80, 0x10FFFF, in);
        gb_byte(b, s, '\n', nl);
    }
    /* at a line start: more newlines, a line, or the marker's "[[" */
    gb_byte(b, nl, '\n', nl);
    gb_byte(b, nl, '\t', in);
    gb_range(b, nl, 0x20, 0x5A, in);
    gb_range(b, nl, 0x5C, 0x7E, in);
    gb_cp_range(b, nl, 0x80, 0x10FFFF, in);
    gb_byte(b, nl, '[', nlb);
    gb_byte(b, nlb, '[', to);
}

typedef struct {
    dxa_adapter ad;
    const dspex_signature *sig;
} layout;

static int is_texty(const dspex_type *t, int depth) {
    if (depth > 8) return 0;
    switch (t->kind) {
    case DSPEX_T_STR:
    case DSPEX_T_ANY:
    case DSPEX_T_HISTORY: return 1;
    case DSPEX_T_UNION:
        for (size_t i = 0; i < t->nargs; i++)
            if (is_texty(t->args[i], depth + 1)) return 1;
        return 0;
    default: return 0;
    }
}

/* The JSON of t's pydantic schema. */
static void json_of(gb *b, const dspex_type *t, int32_t from, int32_t to) {
    dspex_val *s = dspex_type_json_schema_val(t, b->a);
    if (s == NULL) {
        gb_fail(b, "out of memory");
        return;
    }
    gj_schema(b, s, s, 0, from, to);
}

/* A str value as parse.c matches it: kept only when it reads back exactly (no
 * surrounding whitespace, no marker). */
static int raw_ok(const char *s, size_t n) {
    if (n == 0) return 0;
    const char *p = s;
    size_t k = n;
    dspex_py_strip(&p, &k);
    if (k != n) return 0;
    for (size_t i = 0; i + 1 < n; i++)
        if (s[i] == '[' && s[i + 1] == '[') return 0;
    return 1;
}

/* The field's numeric constraints (gt ge lt le) as bounds; 0 when it has none. */
static int field_bounds(gb *b, const dspex_field *f, gdec *lo, gdec *hi) {
    memset(lo, 0, sizeof *lo);
    memset(hi, 0, sizeof *hi);
    int any = 0;
    for (size_t i = 0; i < f->nconstraints; i++) {
        const char *k = f->constraints[i].key;
        const dspex_val *v = f->constraints[i].value;
        int low = strcmp(k, "gt") == 0 || strcmp(k, "ge") == 0, high = strcmp(k, "lt") == 0 || strcmp(k, "le") == 0;
        if ((!low && !high) || v == NULL || (v->kind != DSPEX_V_INT && v->kind != DSPEX_V_FLOAT)) continue;
        dspex_buf t;
        dspex_buf_init(&t);
        dspex_json_dumps(v, -1, &t);
        gdec d;
        if (!t.oom && gn_parse(t.p, t.len, &d) == 0) {
            d.excl = k[1] == 't';
            *(low ? lo : hi) = d;
            any = 1;
        }
        if (t.oom) gb_fail(b, "out of memory");
        dspex_buf_free(&t);
    }
    return any;
}

static void chat_value(gb *b, const dspex_field *f, const dspex_type *t, int32_t from, int32_t to) {
    gdec lo, hi;
    int bounded = t == f->type && field_bounds(b, f, &lo, &hi);
    switch (t->kind) {
    case DSPEX_T_INT: gn_integer(b, bounded ? &lo : NULL, bounded ? &hi : NULL, from, to); return;
    case DSPEX_T_FLOAT: gn_number(b, bounded ? &lo : NULL, bounded ? &hi : NULL, from, to); return;
    case DSPEX_T_BOOL:
        gb_lits(b, from, "True", to);
        gb_lits(b, from, "False", to);
        return;
    case DSPEX_T_NONE: gb_lits(b, from, "None", to); return;
    case DSPEX_T_LITERAL:
    case DSPEX_T_ENUM: { /* Literal: str values; Enum: member values, then names */
        int any = 0;
        for (int pass = 0; pass < (t->kind == DSPEX_T_ENUM ? 2 : 1); pass++)
            for (size_t i = 0; i < t->nvals; i++) {
                const dspex_val *v = pass ? t->names[i] : t->vals[i];
                if (v && v->kind == DSPEX_V_STR && raw_ok(v->s, v->slen)) {
                    gb_lit(b, from, v->s, v->slen, to);
                    any = 1;
                }
            }
        if (!any)
            gb_fail(b, "output field `%.*s`: no value of its %s can be written so that the ChatAdapter parses it back "
                       "(only str values without surrounding whitespace can)",
                    (int)f->name_len, f->name, t->kind == DSPEX_T_LITERAL ? "Literal" : "Enum");
        return;
    }
    case DSPEX_T_UNION: { /* X | None: X or "None"; other unions (no str): JSON */
        const dspex_type *other = NULL;
        int none = 0, n = 0;
        for (size_t i = 0; i < t->nargs; i++) {
            if (t->args[i]->kind == DSPEX_T_NONE) none = 1;
            else other = t->args[i], n++;
        }
        if (none && n == 1) {
            chat_value(b, f, other, from, to);
            gb_lits(b, from, "None", to);
            return;
        }
        json_of(b, t, from, to);
        return;
    }
    default: json_of(b, t, from, to); return;
    }
}

static void root(gb *b, void *ud, int32_t from, int32_t to) {
    const layout *L = ud;
    const dspex_signature *sig = L->sig;
    int32_t cur = gb_state(b);
    gb_eps(b, from, cur);
    if (L->ad == DXA_JSON) {
        gb_byte(b, from, ' ', cur); /* SentencePiece vocabularies like to start with a space */
        int32_t s = gb_state(b);
        gb_byte(b, cur, '{', s);
        cur = gb_state(b);
        gj_ws(b, s, cur);
        for (size_t k = sig->ninputs; k < sig->nfields && !b->failed; k++) {
            const dspex_field *f = &sig->fields[k];
            if (k > sig->ninputs) {
                int32_t c = gb_state(b), w = gb_state(b);
                gb_byte(b, cur, ',', c);
                gj_ws(b, c, w);
                cur = w;
            }
            dspex_buf name;
            dspex_buf_init(&name);
            dspex_json_string(f->name, f->name_len, &name);
            int32_t kv = gb_state(b), col = gb_state(b), v = gb_state(b), end = gb_state(b);
            if (name.oom) gb_fail(b, "out of memory");
            else gb_lit(b, cur, name.p, name.len, kv);
            dspex_buf_free(&name);
            gb_byte(b, kv, ':', col);
            gb_eps(b, col, v);
            gb_byte(b, col, ' ', v);
            gdec lo, hi;
            if ((f->type->kind == DSPEX_T_INT || f->type->kind == DSPEX_T_FLOAT) && field_bounds(b, f, &lo, &hi)) {
                if (f->type->kind == DSPEX_T_INT) gn_integer(b, &lo, &hi, v, end);
                else gn_number(b, &lo, &hi, v, end);
            } else {
                json_of(b, f->type, v, end);
            }
            cur = end;
        }
        int32_t w = gb_state(b), e = gb_state(b);
        gj_ws(b, cur, w);
        gb_byte(b, w, '}', e);
        gb_eps(b, e, to);
        gb_byte(b, e, '\n', to);
        return;
    }
    int open = 0; /* whether the "[[" of the next marker has been written */
    for (size_t k = sig->ninputs; k < sig->nfields && !b->failed; k++) {
        const dspex_field *f = &sig->fields[k];
        int32_t m = gb_state(b);
        if (!open) gb_lits(b, cur, "[[", m);
        else gb_eps(b, cur, m);
        int32_t h = gb_state(b), v = gb_state(b);
        gb_lits(b, m, " ## ", h);
        int32_t h2 = gb_state(b);
        gb_lit(b, h, f->name, f->name_len, h2);
        gb_lits(b, h2, " ## ]]\n", v);
        int32_t end = gb_state(b);
        if (is_texty(f->type, 0)) {
            gb_ref(b, (gkey){GK_TEXT, NULL, NULL, 0}, v, end);
            cur = end;
        } else {
            chat_value(b, f, f->type, v, end);
            int32_t n1 = gb_state(b), n2 = gb_state(b);
            gb_byte(b, end, '\n', n1);
            gb_eps(b, n1, n2);
            gb_byte(b, n1, '\n', n2);
            cur = gb_state(b);
            gb_lits(b, n2, "[[", cur);
        }
        open = 1;
    }
    int32_t e = gb_state(b);
    if (!open) gb_lits(b, cur, "[[ ## completed ## ]]", e);
    else gb_lits(b, cur, " ## completed ## ]]", e);
    gb_eps(b, e, to);
    gb_byte(b, e, '\n', to);
}

dspex_grammar *dspex_grammar_adapter(dxa_adapter ad, const dspex_signature *sig, dspex_gvocab *gv,
                                     const dspex_grammar_limits *lim, char *err, size_t errlen) {
    layout L = {ad, sig};
    return g_compile(root, &L, gv, lim, err, errlen);
}
