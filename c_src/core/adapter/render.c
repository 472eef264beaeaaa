/* Prompt rendering, byte-identical to DSPy 3.3.1's ChatAdapter and JSONAdapter
 * (dspy/adapters/base.py format/format_demos/format_conversation_history,
 * chat_adapter.py, json_adapter.py, utils.py format_field_value/translate_field_type).
 *
 * Everything a call writes goes into one growing buffer; messages record offsets into it
 * and Python's str.strip() is applied in place, so a format costs a handful of
 * allocations whatever the number of demos. */
#include <string.h>

#include "dspex/adapter.h"
#include "dspex/pytext.h"

/* The signature's inputs and outputs, optionally without its History field. */
typedef struct {
    const dspex_signature *sig;
    const dspex_field **in;
    size_t nin;
    const dspex_field **out;
    size_t nout;
} sview;

static int view_init(dspex_arena *a, const dspex_signature *sig, const dspex_field *skip, sview *v) {
    v->sig = sig;
    v->in = dspex_arena_alloc(a, (sig->nfields + 1) * sizeof *v->in);
    v->out = dspex_arena_alloc(a, (sig->nfields + 1) * sizeof *v->out);
    if (v->in == NULL || v->out == NULL) return -1;
    v->nin = v->nout = 0;
    for (size_t i = 0; i < sig->nfields; i++) {
        const dspex_field *f = &sig->fields[i];
        if (f == skip) continue;
        if (i < sig->ninputs)
            v->in[v->nin++] = f;
        else
            v->out[v->nout++] = f;
    }
    return 0;
}

static const dspex_field *history_field(const dspex_signature *sig) {
    for (size_t i = 0; i < sig->ninputs; i++)
        if (sig->fields[i].type->kind == DSPEX_T_HISTORY) return &sig->fields[i];
    return NULL;
}

static const dspex_val *dget(const dspex_val *d, const dspex_field *f) {
    return dspex_dict_get(d, f->name, f->name_len);
}

/* Python's str.strip() of what was written to out since `start`, in place. */
static void strip_from(dspex_buf *out, size_t start) {
    if (out->oom || out->p == NULL) return;
    const char *s = out->p + start;
    size_t n = out->len - start;
    dspex_py_strip(&s, &n);
    if (s != out->p + start) memmove(out->p + start, s, n);
    out->len = start + n;
    out->p[out->len] = '\0';
}

static void put_name(dspex_buf *out, const dspex_field *f) { dspex_buf_put(out, f->name, f->name_len); }

static void header(dspex_buf *out, const dspex_field *f) {
    dspex_buf_puts(out, "[[ ## ");
    put_name(out, f);
    dspex_buf_puts(out, " ## ]]\n");
}

/* ---------------------------------------------------------------- values */
/* _format_blob(item): DSPy formats each item with an f-string, i.e. str() of the item,
 * which for containers is Python's repr (not JSON). */
static void format_blob(const dspex_val *item, dspex_buf *out) {
    size_t start = out->len;
    dspex_buf_puts(out, "\xc2\xab");
    size_t body = out->len;
    if (dspex_val_is_container(item))
        dspex_py_repr(item, out);
    else
        dspex_py_str(item, out);
    if (out->oom) return;
    size_t n = out->len - body;
    const char *s = out->p + body;
    /* `"\n" not in blob` tests membership for containers: their items, not their text */
    int plain = item->kind != DSPEX_V_STR || memchr(s, '\n', n) == NULL;
    for (size_t i = 0; plain && item->kind == DSPEX_V_STR && i + 1 < n; i++)
        if ((unsigned char)s[i] == 0xc2 && ((unsigned char)s[i + 1] == 0xab || (unsigned char)s[i + 1] == 0xbb))
            plain = 0;
    if (plain) {
        dspex_buf_puts(out, "\xc2\xbb");
        return;
    }
    /* «««\n    <item, each newline followed by 4 spaces>\n»»» */
    dspex_buf t;
    dspex_buf_init(&t);
    dspex_buf_put(&t, s, n);
    out->len = start;
    if (t.oom) {
        out->oom = 1;
        dspex_buf_free(&t);
        return;
    }
    dspex_buf_puts(out, "\xc2\xab\xc2\xab\xc2\xab\n    ");
    size_t run = 0;
    for (size_t i = 0; i < t.len; i++) {
        if (t.p[i] == '\n') {
            dspex_buf_put(out, t.p + run, i + 1 - run);
            dspex_buf_puts(out, "    ");
            run = i + 1;
        }
    }
    dspex_buf_put(out, t.p + run, t.len - run);
    dspex_buf_puts(out, "\n\xc2\xbb\xc2\xbb\xc2\xbb");
    dspex_buf_free(&t);
}

/* format_field_value(field_info, value) */
static void field_value(const dspex_field *f, const dspex_val *v, dspex_buf *out) {
    if (v->kind == DSPEX_V_LIST && f->type->kind == DSPEX_T_STR) {
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
    dspex_py_str(v, out);
}

/* ---------------------------------------------------------------- system message */
/* DSPy's default description "${name}" means "no description". */
static int desc_is_placeholder(const dspex_field *f) {
    return f->desc_len == f->name_len + 3 && f->desc[0] == '$' && f->desc[1] == '{' &&
           memcmp(f->desc + 2, f->name, f->name_len) == 0 && f->desc[f->desc_len - 1] == '}';
}

/* Whether the annotation holds dspy.ToolCalls anywhere (extract_custom_type_from_annotation;
 * of DSPex's custom types only ToolCalls has a description). */
static int has_tool_calls(const dspex_type *t, int depth) {
    if (t->kind == DSPEX_T_TOOL_CALLS) return 1;
    if (depth > DSPEX_TYPE_MAX_DEPTH) return 0;
    for (size_t i = 0; i < t->nargs; i++)
        if (has_tool_calls(t->args[i], depth + 1)) return 1;
    return 0;
}

static void field_descriptions(const dspex_field *const *fs, size_t n, dspex_buf *out) {
    size_t start = out->len;
    for (size_t i = 0; i < n; i++) {
        const dspex_field *f = fs[i];
        if (i) dspex_buf_putc(out, '\n');
        dspex_buf_printf(out, "%zu. `", i + 1);
        put_name(out, f);
        dspex_buf_puts(out, "` (");
        dspex_type_name(f->type, out);
        dspex_buf_puts(out, "): ");
        if (f->desc && !desc_is_placeholder(f)) dspex_buf_put(out, f->desc, f->desc_len);
        if (has_tool_calls(f->type, 0))
            dspex_buf_puts(out, "\n    Type description of ToolCalls: Tool calls must be a JSON object with "
                                "`tool_calls`, a list of calls. Each call must include `name` and `args`. Example: "
                                "{\"tool_calls\": [{\"name\": \"search\", \"args\": {\"query\": \"cats\"}}]}");
        size_t mark = out->len;
        dspex_buf_puts(out, "\nConstraints: ");
        size_t body = out->len;
        dspex_constraints_text(f, out);
        if (out->len == body) { /* none */
            out->len = mark;
            if (out->p) out->p[mark] = 0;
        }
    }
    strip_from(out, start);
}

/* translate_field_type: "{name}" plus the type note for outputs. */
static int placeholder(dspex_arena *a, const dspex_field *f, dspex_buf *out) {
    dspex_buf_putc(out, '{');
    put_name(out, f);
    dspex_buf_putc(out, '}');
    const dspex_type *t = f->type;
    if (f->is_input || t->kind == DSPEX_T_STR) return 0;
    dspex_buf_puts(out, "        # note: the value you produce ");
    switch (t->kind) {
    case DSPEX_T_BOOL: dspex_buf_puts(out, "must be True or False"); break;
    case DSPEX_T_INT: dspex_buf_puts(out, "must be a single int value"); break;
    case DSPEX_T_FLOAT: dspex_buf_puts(out, "must be a single float value"); break;
    case DSPEX_T_ENUM:
        dspex_buf_puts(out, "must be one of: ");
        for (size_t i = 0; i < t->nvals; i++) {
            if (i) dspex_buf_puts(out, "; ");
            dspex_py_str(t->vals[i], out);
        }
        break;
    case DSPEX_T_LITERAL:
        dspex_buf_puts(out, "must exactly match (no extra characters) one of: ");
        for (size_t i = 0; i < t->nvals; i++) {
            if (i) dspex_buf_puts(out, "; ");
            dspex_py_str(t->vals[i], out);
        }
        break;
    default:
        dspex_buf_puts(out, "must adhere to the JSON schema: ");
        if (dspex_type_json_schema(t, a, out) != 0) return -1;
    }
    return 0;
}

static int chat_block(dspex_arena *a, const dspex_field *const *fs, size_t n, dspex_buf *out) {
    size_t start = out->len;
    for (size_t i = 0; i < n; i++) {
        if (i) dspex_buf_puts(out, "\n\n");
        header(out, fs[i]);
        if (placeholder(a, fs[i], out) != 0) return -1;
    }
    strip_from(out, start);
    return 0;
}

static int system_message(dxa_adapter ad, dspex_arena *a, const sview *v, dspex_buf *out) {
    dspex_buf_puts(out, "Your input fields are:\n");
    field_descriptions(v->in, v->nin, out);
    dspex_buf_puts(out, "\nYour output fields are:\n");
    field_descriptions(v->out, v->nout, out);
    dspex_buf_putc(out, '\n');

    size_t start = out->len;
    dspex_buf_puts(out, "All interactions will be structured in the following way, with the appropriate values "
                        "filled in.");
    if (ad == DXA_CHAT) {
        dspex_buf_puts(out, "\n\n");
        if (chat_block(a, v->in, v->nin, out) != 0) return -1;
        dspex_buf_puts(out, "\n\n");
        if (chat_block(a, v->out, v->nout, out) != 0) return -1;
        dspex_buf_puts(out, "\n\n[[ ## completed ## ]]\n");
    } else {
        dspex_buf_puts(out, "\n\nInputs will have the following structure:\n\n");
        if (chat_block(a, v->in, v->nin, out) != 0) return -1;
        dspex_buf_puts(out, "\n\nOutputs will be a JSON object with the following fields.\n\n");
        /* json.dumps({name: placeholder}, indent=2) */
        dspex_val d = {.kind = DSPEX_V_DICT};
        d.keys = dspex_arena_alloc(a, (v->nout + 1) * sizeof(dspex_val *));
        d.items = dspex_arena_alloc(a, (v->nout + 1) * sizeof(dspex_val *));
        if (d.keys == NULL || d.items == NULL) return -1;
        dspex_buf p;
        dspex_buf_init(&p);
        for (size_t i = 0; i < v->nout; i++) {
            p.len = 0;
            if (placeholder(a, v->out[i], &p) != 0 || p.oom) {
                dspex_buf_free(&p);
                return -1;
            }
            d.keys[i] = dspex_val_str(a, v->out[i]->name, v->out[i]->name_len);
            d.items[i] = dspex_val_str(a, p.p ? p.p : "", p.len);
            if (d.keys[i] == NULL || d.items[i] == NULL) {
                dspex_buf_free(&p);
                return -1;
            }
        }
        dspex_buf_free(&p);
        d.n = v->nout;
        dspex_json_dumps(&d, 2, out);
    }
    strip_from(out, start);

    /* format_task_description: every line of textwrap.dedent(instructions) */
    dspex_buf_puts(out, "\nIn adhering to this structure, your objective is: ");
    const dspex_signature *sig = v->sig;
    size_t dl = 0;
    char *ded = dspex_py_dedent(a, sig->instructions ? sig->instructions : "", sig->instructions_len, &dl);
    if (ded == NULL) return -1;
    const char **lines;
    size_t *lens;
    size_t nl = dspex_py_splitlines(a, ded, dl, &lines, &lens);
    if (nl == (size_t)-1) return -1;
    for (size_t i = 0; i < nl; i++) {
        dspex_buf_puts(out, "\n        ");
        dspex_buf_put(out, lines[i], lens[i]);
    }
    return out->oom ? -1 : 0;
}

/* user_message_output_requirements */
static void output_requirements(const sview *v, dxa_adapter ad, dspex_buf *out) {
    if (ad == DXA_CHAT)
        dspex_buf_puts(out, "Respond with the corresponding output fields, starting with the field ");
    else
        dspex_buf_puts(out, "Respond with a JSON object in the following order of fields: ");
    for (size_t i = 0; i < v->nout; i++) {
        const dspex_field *f = v->out[i];
        if (i) dspex_buf_puts(out, ", then ");
        dspex_buf_puts(out, ad == DXA_CHAT ? "`[[ ## " : "`");
        put_name(out, f);
        dspex_buf_puts(out, ad == DXA_CHAT ? " ## ]]`" : "`");
        if (f->type->kind == DSPEX_T_TOOL_CALLS) {
            dspex_buf_puts(out, " (must be a JSON object like {\"tool_calls\": [{\"name\": \"...\", \"args\": {...}}]})");
        } else if (f->type->kind != DSPEX_T_STR) {
            dspex_buf_puts(out, " (must be formatted as a valid Python ");
            dspex_type_name(f->type, out);
            dspex_buf_putc(out, ')');
        }
    }
    if (ad == DXA_CHAT)
        dspex_buf_puts(out, ", and then ending with the marker for `[[ ## completed ## ]]`.");
    else
        dspex_buf_putc(out, '.');
}

int dxa_prepare(dxa_adapter ad, const dspex_signature *sig, dspex_arena *a, dxa_prepared *out) {
    sview full;
    if (view_init(a, sig, NULL, &full) != 0) return -1;
    dspex_buf b;
    dspex_buf_init(&b);
    int rc = system_message(ad, a, &full, &b);
    if (rc == 0) out->system = dspex_buf_take(&b, a, &out->system_len);
    if (rc == 0 && out->system == NULL) rc = -1;
    if (rc == 0) {
        output_requirements(&full, ad, &b);
        out->reminder = dspex_buf_take(&b, a, &out->reminder_len);
        if (out->reminder == NULL) rc = -1;
    }
    dspex_buf_free(&b);
    return rc;
}

/* ---------------------------------------------------------------- user / assistant */
/* format_user_message_content: [prefix] + input blocks + [reminder], joined by "\n\n",
 * stripped. */
static void user_content(const sview *v, const dspex_val *inputs, const char *prefix, const dxa_prepared *reminder,
                         dspex_buf *out) {
    size_t start = out->len;
    dspex_buf_puts(out, prefix);
    for (size_t i = 0; i < v->nin; i++) {
        const dspex_field *f = v->in[i];
        const dspex_val *x = dget(inputs, f);
        if (x == NULL) continue;
        dspex_buf_puts(out, "\n\n");
        header(out, f);
        field_value(f, x, out);
    }
    if (reminder) {
        dspex_buf_puts(out, "\n\n");
        dspex_buf_put(out, reminder->reminder, reminder->reminder_len);
    }
    strip_from(out, start);
}

static int assistant_content(dxa_adapter ad, dspex_arena *a, const sview *v, const dspex_val *outputs,
                             const char *missing, dspex_buf *out) {
    dspex_val miss_none = {.kind = DSPEX_V_NONE};
    dspex_val miss_str = {.kind = DSPEX_V_STR};
    const dspex_val *miss = &miss_none;
    if (missing) {
        miss_str.s = missing;
        miss_str.slen = strlen(missing);
        miss = &miss_str;
    }
    if (ad == DXA_CHAT) {
        size_t start = out->len;
        for (size_t i = 0; i < v->nout; i++) {
            const dspex_field *f = v->out[i];
            const dspex_val *val = dget(outputs, f);
            if (i) dspex_buf_puts(out, "\n\n");
            header(out, f);
            field_value(f, val ? val : miss, out);
        }
        strip_from(out, start);
        dspex_buf_puts(out, "\n\n[[ ## completed ## ]]\n");
    } else {
        dspex_val d = {.kind = DSPEX_V_DICT};
        d.keys = dspex_arena_alloc(a, (v->nout + 1) * sizeof(dspex_val *));
        d.items = dspex_arena_alloc(a, (v->nout + 1) * sizeof(dspex_val *));
        if (d.keys == NULL || d.items == NULL) return -1;
        for (size_t i = 0; i < v->nout; i++) {
            const dspex_field *f = v->out[i];
            d.keys[i] = dspex_val_str(a, f->name, f->name_len);
            if (d.keys[i] == NULL) return -1;
            const dspex_val *val = dget(outputs, f);
            d.items[i] = (dspex_val *)(val ? val : miss);
        }
        d.n = v->nout;
        dspex_json_dumps(&d, 2, out);
    }
    return out->oom ? -1 : 0;
}

int dxa_format_user(const dspex_signature *sig, const dspex_val *inputs, dspex_buf *out) {
    dspex_arena a;
    dspex_arena_init(&a, 0);
    sview v;
    int rc = view_init(&a, sig, NULL, &v);
    if (rc == 0) user_content(&v, inputs, "", NULL, out);
    dspex_arena_free(&a);
    return rc != 0 || out->oom ? -1 : 0;
}

int dxa_format_assistant(dxa_adapter ad, const dspex_signature *sig, const dspex_val *outputs, const char *missing,
                         dspex_buf *out) {
    dspex_arena a;
    dspex_arena_init(&a, 0);
    sview v;
    int rc = view_init(&a, sig, NULL, &v);
    if (rc == 0) rc = assistant_content(ad, &a, &v, outputs, missing, out);
    dspex_arena_free(&a);
    return rc;
}

/* ---------------------------------------------------------------- format */
typedef struct {
    dxa_role role;
    size_t off, len; /* into the call's buffer */
} pending;

static void push(pending *ps, size_t *n, dxa_role role, const dspex_buf *b, size_t start) {
    ps[*n].role = role;
    ps[*n].off = start;
    ps[*n].len = b->len - start;
    (*n)++;
}

/* Bytes the strings of v take (a lower bound of its rendering, to size the buffer once). */
static size_t text_size(const dspex_val *v, int depth) {
    if (v == NULL || depth > 8) return 0;
    if (v->kind == DSPEX_V_STR) return v->slen;
    size_t n = 8 * v->n;
    for (size_t i = 0; i < v->n; i++) n += text_size(v->items[i], depth + 1);
    return n;
}

int dxa_format(dxa_adapter ad, const dspex_signature *sig, const dxa_prepared *prep, dspex_val *const *demos,
               size_t ndemos, const dspex_val *inputs, dspex_arena *a, dspex_buf *text, dxa_msgs *out) {
    dxa_prepared local;
    if (prep == NULL) {
        if (dxa_prepare(ad, sig, a, &local) != 0) return -1;
        prep = &local;
    }
    const dspex_field *hist = history_field(sig);
    sview full, nohist;
    if (view_init(a, sig, NULL, &full) != 0) return -1;
    if (hist && view_init(a, sig, hist, &nohist) != 0) return -1;

    const dspex_val *hval = hist ? dget(inputs, hist) : NULL;
    size_t nhist = (hval && (hval->kind == DSPEX_V_HISTORY || hval->kind == DSPEX_V_LIST)) ? hval->n : 0;
    size_t cap = 1 + 2 * ndemos + 2 * nhist;
    pending *ps = dspex_arena_alloc(a, cap * sizeof *ps);
    out->msgs = dspex_arena_alloc(a, (cap + 1) * sizeof(dxa_msg));
    if (ps == NULL || out->msgs == NULL) return -1;
    size_t np = 0;

    /* every message goes into the caller's buffer, sized once for the usual case */
    dspex_buf b = *text;
    size_t guess = text_size(inputs, 0) + prep->reminder_len + 64;
    for (size_t d = 0; d < ndemos; d++) guess += 2 * text_size(demos[d], 0) + 96 * sig->nfields;
    dspex_buf_reserve(&b, guess);
    int rc = 0;
    /* demos: incomplete first, then complete */
    for (int pass = 0; pass < 2; pass++) {
        for (size_t d = 0; d < ndemos; d++) {
            const dspex_val *demo = demos[d];
            if (demo == NULL || demo->kind != DSPEX_V_DICT) continue;
            int complete = 1, has_in = 0, has_out = 0;
            for (size_t i = 0; i < sig->nfields; i++) {
                const dspex_val *x = dget(demo, &sig->fields[i]);
                if (x == NULL || x->kind == DSPEX_V_NONE) complete = 0;
                if (x && i < sig->ninputs) has_in = 1;
                if (x && i >= sig->ninputs) has_out = 1;
            }
            size_t start = b.len;
            if (pass == 0 && !complete && has_in && has_out) {
                user_content(&full, demo,
                             "This is an example of the task, though some input or output fields are not supplied.",
                             NULL, &b);
                push(ps, &np, DXA_ROLE_USER, &b, start);
                start = b.len;
                if (assistant_content(ad, a, &full, demo, "Not supplied for this particular example. ", &b) != 0)
                    goto oom;
                push(ps, &np, DXA_ROLE_ASSISTANT, &b, start);
            } else if (pass == 1 && complete) {
                user_content(&full, demo, "", NULL, &b);
                push(ps, &np, DXA_ROLE_USER, &b, start);
                start = b.len;
                if (assistant_content(ad, a, &full, demo, "Not supplied for this conversation history message. ",
                                      &b) != 0)
                    goto oom;
                push(ps, &np, DXA_ROLE_ASSISTANT, &b, start);
            }
        }
    }
    out->ndemo = np;
    /* conversation history: each message as a user turn and an assistant turn (empty
     * turns are left out) */
    for (size_t h = 0; h < nhist; h++) {
        const dspex_val *msg = hval->items[h];
        if (msg == NULL || msg->kind != DSPEX_V_DICT) continue;
        size_t start = b.len;
        user_content(&nohist, msg, "", NULL, &b);
        if (b.len > start) push(ps, &np, DXA_ROLE_USER, &b, start);
        start = b.len;
        if (assistant_content(ad, a, &nohist, msg, NULL, &b) != 0) goto oom;
        if (b.len > start) push(ps, &np, DXA_ROLE_ASSISTANT, &b, start);
    }
    size_t start = b.len;
    user_content(hist ? &nohist : &full, inputs, "", prep, &b);
    if (b.oom) goto oom;
    int last = b.len > start;
    if (last) push(ps, &np, DXA_ROLE_USER, &b, start);

    out->msgs[0] = (dxa_msg){DXA_ROLE_SYSTEM, prep->system, prep->system_len};
    for (size_t i = 0; i < np; i++) out->msgs[i + 1] = (dxa_msg){ps[i].role, b.p + ps[i].off, ps[i].len};
    out->n = np + 1;
    goto done;
oom:
    rc = -1;
done:
    *text = b;
    return rc;
}
