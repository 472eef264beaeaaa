/* Prompt rendering, byte-identical to DSPy 3.3.1's ChatAdapter and JSONAdapter
 * (dspy/adapters/base.py format/format_demos/format_conversation_history,
 * chat_adapter.py, json_adapter.py, utils.py format_field_value/translate_field_type). */
#include <string.h>

#include "dspex/adapter.h"

/* A signature with (optionally) the History field removed. */
typedef struct {
    const dxa_sig *sig;
    const dxa_field **in;
    size_t nin;
    const dxa_field **out;
    size_t nout;
} sview;

typedef struct {
    dxa_adapter ad;
    dspex_arena *a;
    int oom;
} rctx;

static int view_init(dspex_arena *a, const dxa_sig *sig, const dxa_field *skip, sview *v) {
    v->sig = sig;
    v->in = dspex_arena_alloc(a, (sig->nfields + 1) * sizeof *v->in);
    v->out = dspex_arena_alloc(a, (sig->nfields + 1) * sizeof *v->out);
    if (v->in == NULL || v->out == NULL) return -1;
    v->nin = v->nout = 0;
    for (size_t i = 0; i < sig->nfields; i++) {
        const dxa_field *f = &sig->fields[i];
        if (f == skip) continue;
        if (i < sig->ninputs)
            v->in[v->nin++] = f;
        else
            v->out[v->nout++] = f;
    }
    return 0;
}

static const dxa_val *dget(const dxa_val *d, const dxa_field *f) { return dxa_dict_get(d, f->name, f->name_len); }
static int dhas(const dxa_val *d, const dxa_field *f) { return dxa_dict_has(d, f->name, f->name_len); }

/* Appends the Python-stripped form of src[0..n) to out. */
static void put_stripped(dspex_buf *out, const char *s, size_t n) {
    dxa_pystrip(&s, &n);
    dspex_buf_put(out, s, n);
}

/* ---------------------------------------------------------------- values */
static void format_blob(const dxa_val *item, dspex_buf *out) {
    /* DSPy formats each item with an f-string: str() of the item, which for containers
     * is Python's repr (not JSON) */
    dspex_buf t;
    dspex_buf_init(&t);
    if (item->kind == DXA_LIST || item->kind == DXA_TUPLE || item->kind == DXA_SET || item->kind == DXA_DICT ||
        item->kind == DXA_HISTORY)
        dxa_py_repr(item, &t);
    else
        dxa_py_str(item, &t);
    const char *s = t.p ? t.p : "";
    /* `"\n" not in blob` tests membership for containers: their items, not their text */
    int container = item->kind != DXA_STR;
    size_t n = t.len;
    int plain = container || memchr(s, '\n', n) == NULL;
    for (size_t i = 0; plain && !container && i + 1 < n; i++)
        if ((unsigned char)s[i] == 0xc2 && ((unsigned char)s[i + 1] == 0xab || (unsigned char)s[i + 1] == 0xbb))
            plain = 0;
    if (plain) {
        dspex_buf_puts(out, "\xc2\xab");
        dspex_buf_put(out, s, n);
        dspex_buf_puts(out, "\xc2\xbb");
    } else {
        dspex_buf_puts(out, "\xc2\xab\xc2\xab\xc2\xab\n    ");
        size_t run = 0;
        for (size_t i = 0; i < n; i++) {
            if (s[i] == '\n') {
                dspex_buf_put(out, s + run, i + 1 - run);
                dspex_buf_puts(out, "    ");
                run = i + 1;
            }
        }
        dspex_buf_put(out, s + run, n - run);
        dspex_buf_puts(out, "\n\xc2\xbb\xc2\xbb\xc2\xbb");
    }
    if (t.oom) out->oom = 1;
    dspex_buf_free(&t);
}

/* format_field_value(field_info, value) */
static void field_value(const dxa_field *f, const dxa_val *v, dspex_buf *out) {
    if (v->kind == DXA_LIST && f->type->kind == DXT_STR) {
        if (v->n == 0) {
            dspex_buf_puts(out, "N/A");
        } else if (v->n == 1) {
            format_blob(v->items[0], out);
        } else {
            for (size_t i = 0; i < v->n; i++) {
                if (i) dspex_buf_putc(out, '\n');
                dspex_buf_printf(out, "[%zu] ", i + 1);
                format_blob(v->items[i], out);
            }
        }
        return;
    }
    dxa_py_str(v, out);
}

/* ---------------------------------------------------------------- system message */
static const char *constraint_text(const char *k) {
    static const char *map[][2] = {
        {"gt", "greater than: "},
        {"ge", "greater than or equal to: "},
        {"lt", "less than: "},
        {"le", "less than or equal to: "},
        {"min_length", "minimum length: "},
        {"max_length", "maximum length: "},
        {"multiple_of", "a multiple of the given number: "},
        {"allow_inf_nan", "allow 'inf', '-inf', 'nan' values: "},
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (strcmp(map[i][0], k) == 0) return map[i][1];
    return NULL;
}

static int desc_is_placeholder(const dxa_field *f) {
    return f->desc_len == f->name_len + 3 && f->desc[0] == '$' && f->desc[1] == '{' &&
           memcmp(f->desc + 2, f->name, f->name_len) == 0 && f->desc[f->desc_len - 1] == '}';
}

static void field_descriptions(const dxa_field *const *fs, size_t n, dspex_buf *out) {
    dspex_buf t;
    dspex_buf_init(&t);
    for (size_t i = 0; i < n; i++) {
        const dxa_field *f = fs[i];
        if (i) dspex_buf_putc(&t, '\n');
        dspex_buf_printf(&t, "%zu. `", i + 1);
        dspex_buf_put(&t, f->name, f->name_len);
        dspex_buf_puts(&t, "` (");
        dxa_type_name(f->type, &t);
        dspex_buf_puts(&t, "): ");
        if (f->desc && !desc_is_placeholder(f)) dspex_buf_put(&t, f->desc, f->desc_len);
        int any = 0;
        for (size_t k = 0; k < f->nconstraints; k++) {
            const char *txt = constraint_text(f->constraints[k].key);
            if (txt == NULL) continue;
            dspex_buf_puts(&t, any ? ", " : "\nConstraints: ");
            any = 1;
            dspex_buf_puts(&t, txt);
            dxa_py_str(f->constraints[k].value, &t);
        }
    }
    put_stripped(out, t.p ? t.p : "", t.len);
    if (t.oom) out->oom = 1;
    dspex_buf_free(&t);
}

/* translate_field_type: "{name}" plus the type note for outputs. */
static void placeholder(rctx *c, const dxa_field *f, dspex_buf *out) {
    dspex_buf_putc(out, '{');
    dspex_buf_put(out, f->name, f->name_len);
    dspex_buf_putc(out, '}');
    if (f->is_input || f->type->kind == DXT_STR) return;
    dspex_buf_puts(out, "        # note: the value you produce ");
    const dxa_type *t = f->type;
    switch (t->kind) {
    case DXT_BOOL: dspex_buf_puts(out, "must be True or False"); break;
    case DXT_INT: dspex_buf_puts(out, "must be a single int value"); break;
    case DXT_FLOAT: dspex_buf_puts(out, "must be a single float value"); break;
    case DXT_ENUM:
        dspex_buf_puts(out, "must be one of: ");
        for (size_t i = 0; i < t->nenum; i++) {
            if (i) dspex_buf_puts(out, "; ");
            dxa_py_str(t->enum_vals[i], out);
        }
        break;
    case DXT_LITERAL:
        dspex_buf_puts(out, "must exactly match (no extra characters) one of: ");
        for (size_t i = 0; i < t->nlits; i++) {
            if (i) dspex_buf_puts(out, "; ");
            dxa_py_str(t->lits[i], out);
        }
        break;
    default:
        dspex_buf_puts(out, "must adhere to the JSON schema: ");
        if (dxa_json_schema(t, c->a, out) != 0) c->oom = 1;
    }
}

static void chat_block(rctx *c, const dxa_field *const *fs, size_t n, dspex_buf *out) {
    dspex_buf t;
    dspex_buf_init(&t);
    for (size_t i = 0; i < n; i++) {
        if (i) dspex_buf_puts(&t, "\n\n");
        dspex_buf_puts(&t, "[[ ## ");
        dspex_buf_put(&t, fs[i]->name, fs[i]->name_len);
        dspex_buf_puts(&t, " ## ]]\n");
        placeholder(c, fs[i], &t);
    }
    put_stripped(out, t.p ? t.p : "", t.len);
    if (t.oom) out->oom = 1;
    dspex_buf_free(&t);
}

static void system_message(rctx *c, const sview *v, dspex_buf *out) {
    static const char intro[] =
        "All interactions will be structured in the following way, with the appropriate values filled in.";
    dspex_buf_puts(out, "Your input fields are:\n");
    field_descriptions(v->in, v->nin, out);
    dspex_buf_puts(out, "\nYour output fields are:\n");
    field_descriptions(v->out, v->nout, out);
    dspex_buf_putc(out, '\n');

    dspex_buf s;
    dspex_buf_init(&s);
    dspex_buf_puts(&s, intro);
    if (c->ad == DXA_CHAT) {
        dspex_buf_puts(&s, "\n\n");
        chat_block(c, v->in, v->nin, &s);
        dspex_buf_puts(&s, "\n\n");
        chat_block(c, v->out, v->nout, &s);
        dspex_buf_puts(&s, "\n\n[[ ## completed ## ]]\n");
    } else {
        dspex_buf_puts(&s, "\n\nInputs will have the following structure:\n\n");
        chat_block(c, v->in, v->nin, &s);
        dspex_buf_puts(&s, "\n\nOutputs will be a JSON object with the following fields.\n\n");
        dxa_val d = {.kind = DXA_DICT};
        d.keys = dspex_arena_alloc(c->a, (v->nout + 1) * sizeof(dxa_val *));
        d.items = dspex_arena_alloc(c->a, (v->nout + 1) * sizeof(dxa_val *));
        if (d.keys == NULL || d.items == NULL) {
            c->oom = 1;
        } else {
            dspex_buf p;
            dspex_buf_init(&p);
            for (size_t i = 0; i < v->nout; i++) {
                placeholder(c, v->out[i], &p);
                d.keys[i] = dxa_val_str(c->a, v->out[i]->name, v->out[i]->name_len);
                d.items[i] = p.oom ? NULL : dxa_val_str(c->a, p.p ? p.p : "", p.len);
                if (d.keys[i] == NULL || d.items[i] == NULL) c->oom = 1;
                p.len = 0;
            }
            dspex_buf_free(&p);
            if (!c->oom) {
                d.n = v->nout;
                dxa_json_dumps(&d, 2, &s);
            }
        }
    }
    put_stripped(out, s.p ? s.p : "", s.len);
    if (s.oom) out->oom = 1;
    dspex_buf_free(&s);

    dspex_buf_puts(out, "\nIn adhering to this structure, your objective is: ");
    size_t dl = 0;
    const dxa_sig *sig = v->sig;
    char *ded = dxa_dedent(c->a, sig->instructions ? sig->instructions : "", sig->instructions_len, &dl);
    const char **lines;
    size_t *lens;
    size_t nl = ded ? dxa_splitlines(c->a, ded, dl, &lines, &lens) : (size_t)-1;
    if (nl == (size_t)-1) {
        c->oom = 1;
        return;
    }
    for (size_t i = 0; i < nl; i++) {
        dspex_buf_puts(out, "\n        ");
        dspex_buf_put(out, lines[i], lens[i]);
    }
}

/* ---------------------------------------------------------------- user / assistant */
static void output_requirements(const sview *v, dxa_adapter ad, dspex_buf *out) {
    if (ad == DXA_CHAT)
        dspex_buf_puts(out, "Respond with the corresponding output fields, starting with the field ");
    else
        dspex_buf_puts(out, "Respond with a JSON object in the following order of fields: ");
    for (size_t i = 0; i < v->nout; i++) {
        const dxa_field *f = v->out[i];
        if (i) dspex_buf_puts(out, ", then ");
        dspex_buf_puts(out, ad == DXA_CHAT ? "`[[ ## " : "`");
        dspex_buf_put(out, f->name, f->name_len);
        dspex_buf_puts(out, ad == DXA_CHAT ? " ## ]]`" : "`");
        if (f->type->kind != DXT_STR) {
            dspex_buf_puts(out, " (must be formatted as a valid Python ");
            dxa_type_name(f->type, out);
            dspex_buf_putc(out, ')');
        }
    }
    if (ad == DXA_CHAT)
        dspex_buf_puts(out, ", and then ending with the marker for `[[ ## completed ## ]]`.");
    else
        dspex_buf_putc(out, '.');
}

static void user_content(const sview *v, dxa_adapter ad, const dxa_val *inputs, const char *prefix,
                         int main_request, dspex_buf *out) {
    dspex_buf t;
    dspex_buf_init(&t);
    dspex_buf_puts(&t, prefix);
    for (size_t i = 0; i < v->nin; i++) {
        const dxa_field *f = v->in[i];
        if (!dhas(inputs, f)) continue;
        dspex_buf_puts(&t, "\n\n[[ ## ");
        dspex_buf_put(&t, f->name, f->name_len);
        dspex_buf_puts(&t, " ## ]]\n");
        field_value(f, dget(inputs, f), &t);
    }
    if (main_request) {
        dspex_buf_puts(&t, "\n\n");
        output_requirements(v, ad, &t);
    }
    dspex_buf_puts(&t, "\n\n");
    put_stripped(out, t.p ? t.p : "", t.len);
    if (t.oom) out->oom = 1;
    dspex_buf_free(&t);
}

static int assistant_content(rctx *c, const sview *v, const dxa_val *outputs, const char *missing,
                             dspex_buf *out) {
    dxa_val miss_none = {.kind = DXA_NONE};
    dxa_val miss_str = {.kind = DXA_STR};
    const dxa_val *miss = &miss_none;
    if (missing) {
        miss_str.s = missing;
        miss_str.slen = strlen(missing);
        miss = &miss_str;
    }
    if (c->ad == DXA_CHAT) {
        dspex_buf t;
        dspex_buf_init(&t);
        for (size_t i = 0; i < v->nout; i++) {
            const dxa_field *f = v->out[i];
            const dxa_val *val = dhas(outputs, f) ? dget(outputs, f) : miss;
            if (i) dspex_buf_puts(&t, "\n\n");
            dspex_buf_puts(&t, "[[ ## ");
            dspex_buf_put(&t, f->name, f->name_len);
            dspex_buf_puts(&t, " ## ]]\n");
            field_value(f, val, &t);
        }
        put_stripped(out, t.p ? t.p : "", t.len);
        if (t.oom) out->oom = 1;
        dspex_buf_free(&t);
        dspex_buf_puts(out, "\n\n[[ ## completed ## ]]\n");
    } else {
        dxa_val d = {.kind = DXA_DICT};
        d.keys = dspex_arena_alloc(c->a, (v->nout + 1) * sizeof(dxa_val *));
        d.items = dspex_arena_alloc(c->a, (v->nout + 1) * sizeof(dxa_val *));
        if (d.keys == NULL || d.items == NULL) return -1;
        for (size_t i = 0; i < v->nout; i++) {
            const dxa_field *f = v->out[i];
            d.keys[i] = dxa_val_str(c->a, f->name, f->name_len);
            if (d.keys[i] == NULL) return -1;
            d.items[i] = (dxa_val *)(dhas(outputs, f) ? dget(outputs, f) : miss);
        }
        d.n = v->nout;
        dxa_json_dumps(&d, 2, out);
    }
    return out->oom ? -1 : 0;
}

/* ---------------------------------------------------------------- format */
static int push(rctx *c, dxa_msgs *m, dxa_role role, dspex_buf *b) {
    size_t len = 0;
    char *s = dspex_buf_take(b, c->a, &len);
    if (s == NULL) return -1;
    m->msgs[m->n].role = role;
    m->msgs[m->n].content = s;
    m->msgs[m->n].len = len;
    m->n++;
    return 0;
}

int dxa_format_assistant(dxa_adapter ad, const dxa_sig *sig, const dxa_val *outputs, const char *missing,
                         dspex_buf *out) {
    dspex_arena a;
    dspex_arena_init(&a, 0);
    rctx c = {.ad = ad, .a = &a};
    sview v;
    int rc = view_init(&a, sig, NULL, &v);
    if (rc == 0) rc = assistant_content(&c, &v, outputs, missing, out);
    dspex_arena_free(&a);
    return rc;
}

int dxa_format(dxa_adapter ad, const dxa_sig *sig, dxa_val *const *demos, size_t ndemos, const dxa_val *inputs,
               dspex_arena *a, dxa_msgs *out) {
    rctx c = {.ad = ad, .a = a};
    sview full, nohist;
    const dxa_field *hist = NULL;
    for (size_t i = 0; i < sig->ninputs; i++)
        if (sig->fields[i].type->kind == DXT_HISTORY) {
            hist = &sig->fields[i];
            break;
        }
    if (view_init(a, sig, NULL, &full) != 0) return -1;
    if (view_init(a, sig, hist, &nohist) != 0) return -1;

    const dxa_val *hval = hist ? dget(inputs, hist) : NULL;
    size_t nhist = (hval && (hval->kind == DXA_HISTORY || hval->kind == DXA_LIST)) ? hval->n : 0;
    out->n = 0;
    out->msgs = dspex_arena_alloc(a, (2 + 2 * ndemos + 2 * nhist) * sizeof(dxa_msg));
    if (out->msgs == NULL) return -1;

    dspex_buf b;
    dspex_buf_init(&b);
    int rc = 0;
    system_message(&c, &full, &b);
    if (c.oom || push(&c, out, DXA_ROLE_SYSTEM, &b) != 0) goto oom;

    /* demos: incomplete first, then complete */
    for (int pass = 0; pass < 2; pass++) {
        for (size_t d = 0; d < ndemos; d++) {
            const dxa_val *demo = demos[d];
            if (demo == NULL || demo->kind != DXA_DICT) continue;
            int complete = 1, has_in = 0, has_out = 0;
            for (size_t i = 0; i < sig->nfields; i++) {
                const dxa_field *f = &sig->fields[i];
                const dxa_val *x = dget(demo, f);
                int present = dhas(demo, f);
                if (!present || x->kind == DXA_NONE) complete = 0;
                if (present && i < sig->ninputs) has_in = 1;
                if (present && i >= sig->ninputs) has_out = 1;
            }
            if (pass == 0 && !complete && has_in && has_out) {
                user_content(&full, ad, demo,
                             "This is an example of the task, though some input or output fields are not supplied.",
                             0, &b);
                if (push(&c, out, DXA_ROLE_USER, &b) != 0) goto oom;
                if (assistant_content(&c, &full, demo, "Not supplied for this particular example. ", &b) != 0 ||
                    push(&c, out, DXA_ROLE_ASSISTANT, &b) != 0)
                    goto oom;
            } else if (pass == 1 && complete) {
                user_content(&full, ad, demo, "", 0, &b);
                if (push(&c, out, DXA_ROLE_USER, &b) != 0) goto oom;
                if (assistant_content(&c, &full, demo, "Not supplied for this conversation history message. ",
                                      &b) != 0 ||
                    push(&c, out, DXA_ROLE_ASSISTANT, &b) != 0)
                    goto oom;
            }
        }
    }

    /* conversation history */
    for (size_t h = 0; h < nhist; h++) {
        const dxa_val *msg = hval->items[h];
        if (msg == NULL || msg->kind != DXA_DICT) continue;
        user_content(&nohist, ad, msg, "", 0, &b);
        if (b.oom) goto oom;
        if (b.len && push(&c, out, DXA_ROLE_USER, &b) != 0) goto oom;
        b.len = 0;
        if (assistant_content(&c, &nohist, msg, NULL, &b) != 0) goto oom;
        if (b.len && push(&c, out, DXA_ROLE_ASSISTANT, &b) != 0) goto oom;
        b.len = 0;
    }

    user_content(hist ? &nohist : &full, ad, inputs, "", 1, &b);
    if (b.oom) goto oom;
    if (b.len && push(&c, out, DXA_ROLE_USER, &b) != 0) goto oom;
    goto done;
oom:
    rc = -1;
done:
    dspex_buf_free(&b);
    return rc;
}
