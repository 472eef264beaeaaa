/* dspy.Tool's argument schemas and text. See include/dspex/tool.h. */
#include "dspex/tool.h"

#include <string.h>

#include "dspex/pytext.h"

/* schema + "default" + "description", appended last as DSPy does (args[k]["default"] = ...) */
static dspex_val *arg_schema(const dspex_tool_param *p, dspex_arena *a) {
    dspex_val *s = dspex_type_json_schema_inline_val(p->type, a);
    if (s == NULL || s->kind != DSPEX_V_DICT) return NULL;
    dspex_val *d = dspex_val_new(a, DSPEX_V_DICT);
    if (d == NULL) return NULL;
    d->keys = dspex_arena_alloc(a, (s->n + 2) * sizeof(dspex_val *));
    d->items = dspex_arena_alloc(a, (s->n + 2) * sizeof(dspex_val *));
    if (d->keys == NULL || d->items == NULL) return NULL;
    for (size_t i = 0; i < s->n; i++) {
        d->keys[d->n] = s->keys[i];
        d->items[d->n++] = s->items[i];
    }
    if (p->default_value) {
        d->keys[d->n] = dspex_val_str(a, "default", 7);
        d->items[d->n] = (dspex_val *)p->default_value;
        if (d->keys[d->n++] == NULL) return NULL;
    }
    if (p->desc) {
        d->keys[d->n] = dspex_val_str(a, "description", 11);
        d->items[d->n] = dspex_val_str(a, p->desc, p->desc_len);
        if (d->keys[d->n] == NULL || d->items[d->n] == NULL) return NULL;
        d->n++;
    }
    return d;
}

dspex_val *dspex_tool_args(const dspex_tool_param *params, size_t n, dspex_arena *a) {
    if (n > DSPEX_TOOL_MAX_PARAMS) return NULL;
    dspex_val *d = dspex_val_new(a, DSPEX_V_DICT);
    if (d == NULL) return NULL;
    d->keys = dspex_arena_alloc(a, (n + 1) * sizeof(dspex_val *));
    d->items = dspex_arena_alloc(a, (n + 1) * sizeof(dspex_val *));
    if (d->keys == NULL || d->items == NULL) return NULL;
    for (size_t i = 0; i < n; i++) {
        d->keys[i] = dspex_val_str(a, params[i].name, params[i].name_len);
        d->items[i] = arg_schema(&params[i], a);
        if (d->keys[i] == NULL || d->items[i] == NULL) return NULL;
        d->n++;
    }
    return d;
}

int dspex_tool_text(const char *name, size_t name_len, const char *desc, size_t desc_len,
                    const dspex_tool_param *params, size_t n, dspex_arena *a, dspex_buf *out) {
    dspex_val *args = dspex_tool_args(params, n, a);
    if (args == NULL) return -1;
    dspex_buf_put(out, name, name_len);
    if (desc && desc_len > 0) {
        /* f", whose description is <desc>{desc}</desc>.".replace("\n", "  ") */
        dspex_buf_puts(out, ", whose description is <desc>");
        size_t run = 0;
        for (size_t i = 0; i < desc_len; i++) {
            if (desc[i] != '\n') continue;
            dspex_buf_put(out, desc + run, i - run);
            dspex_buf_puts(out, "  ");
            run = i + 1;
        }
        dspex_buf_put(out, desc + run, desc_len - run);
        dspex_buf_puts(out, "</desc>.");
    } else {
        dspex_buf_putc(out, '.');
    }
    dspex_buf_puts(out, " It takes arguments ");
    dspex_py_repr(args, out);
    dspex_buf_putc(out, '.');
    return out->oom ? -1 : 0;
}
