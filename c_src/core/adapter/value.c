/* The Python value tree. See include/dspex/value.h. */
#include "dspex/value.h"

#include <stdlib.h>
#include <string.h>

dspex_val *dspex_val_new(dspex_arena *a, dspex_vkind kind) {
    dspex_val *v = dspex_arena_alloc(a, sizeof *v);
    if (v) v->kind = kind;
    return v;
}

dspex_val *dspex_val_str(dspex_arena *a, const char *s, size_t n) {
    dspex_val *v = dspex_val_new(a, DSPEX_V_STR);
    if (v == NULL) return NULL;
    char *c = dspex_arena_strndup(a, s, n);
    if (c == NULL) return NULL;
    v->s = c;
    v->slen = n;
    return v;
}

dspex_val *dspex_val_int(dspex_arena *a, long long i) {
    dspex_val *v = dspex_val_new(a, DSPEX_V_INT);
    if (v) v->i = i;
    return v;
}

dspex_val *dspex_dict_get(const dspex_val *d, const char *key, size_t klen) {
    if (d == NULL || d->kind != DSPEX_V_DICT) return NULL;
    for (size_t i = 0; i < d->n; i++) {
        const dspex_val *k = d->keys[i];
        /* keys made from the signature's own names point at the same bytes */
        if (k->kind == DSPEX_V_STR && k->slen == klen && (k->s == key || memcmp(k->s, key, klen) == 0))
            return d->items[i];
    }
    return NULL;
}

int dspex_val_is_container(const dspex_val *v) {
    return v->kind == DSPEX_V_LIST || v->kind == DSPEX_V_TUPLE || v->kind == DSPEX_V_SET ||
           v->kind == DSPEX_V_FROZENSET || v->kind == DSPEX_V_DICT || v->kind == DSPEX_V_HISTORY;
}

static double as_double(const dspex_val *v) {
    switch (v->kind) {
    case DSPEX_V_FLOAT: return v->f;
    case DSPEX_V_BOOL: return v->b;
    default: return v->s ? strtod(v->s, NULL) : (double)v->i;
    }
}

static int is_num(const dspex_val *v) {
    return v->kind == DSPEX_V_INT || v->kind == DSPEX_V_FLOAT || v->kind == DSPEX_V_BOOL;
}

static int set_like(const dspex_val *v) { return v->kind == DSPEX_V_SET || v->kind == DSPEX_V_FROZENSET; }

static int equal_rec(const dspex_val *a, const dspex_val *b, int depth) {
    if (depth > 256) return 0;
    if (is_num(a) && is_num(b)) {
        if (a->kind == DSPEX_V_INT && b->kind == DSPEX_V_INT && (a->s || b->s)) {
            if (!a->s || !b->s) return 0;
            return a->slen == b->slen && memcmp(a->s, b->s, a->slen) == 0;
        }
        return as_double(a) == as_double(b);
    }
    if (set_like(a) && set_like(b)) {
        if (a->n != b->n) return 0;
        for (size_t i = 0; i < a->n; i++) {
            int found = 0;
            for (size_t j = 0; j < b->n && !found; j++) found = equal_rec(a->items[i], b->items[j], depth + 1);
            if (!found) return 0;
        }
        return 1;
    }
    if (a->kind != b->kind) return 0;
    switch (a->kind) {
    case DSPEX_V_NONE: return 1;
    case DSPEX_V_STR:
    case DSPEX_V_DATETIME:
    case DSPEX_V_DATE: return a->slen == b->slen && memcmp(a->s, b->s, a->slen) == 0;
    case DSPEX_V_LIST:
    case DSPEX_V_TUPLE:
    case DSPEX_V_HISTORY:
        if (a->n != b->n) return 0;
        for (size_t i = 0; i < a->n; i++)
            if (!equal_rec(a->items[i], b->items[i], depth + 1)) return 0;
        return 1;
    case DSPEX_V_DICT:
        if (a->n != b->n) return 0;
        for (size_t i = 0; i < a->n; i++) {
            size_t j = 0;
            while (j < b->n && !equal_rec(a->keys[i], b->keys[j], depth + 1)) j++;
            if (j == b->n || !equal_rec(a->items[i], b->items[j], depth + 1)) return 0;
        }
        return 1;
    default: return 0;
    }
}

int dspex_val_equal(const dspex_val *a, const dspex_val *b) { return equal_rec(a, b, 0); }

static dspex_val *copy_rec(const dspex_val *v, dspex_arena *a, int depth) {
    if (v == NULL || depth > 512) return NULL;
    dspex_val *c = dspex_val_new(a, v->kind);
    if (c == NULL) return NULL;
    *c = *v;
    if (v->s) {
        char *s = dspex_arena_strndup(a, v->s, v->slen);
        if (s == NULL) return NULL;
        c->s = s;
    }
    if (v->n) {
        c->items = dspex_arena_alloc(a, v->n * sizeof(dspex_val *));
        if (c->items == NULL) return NULL;
        for (size_t i = 0; i < v->n; i++)
            if ((c->items[i] = copy_rec(v->items[i], a, depth + 1)) == NULL) return NULL;
        if (v->keys) {
            c->keys = dspex_arena_alloc(a, v->n * sizeof(dspex_val *));
            if (c->keys == NULL) return NULL;
            for (size_t i = 0; i < v->n; i++)
                if ((c->keys[i] = copy_rec(v->keys[i], a, depth + 1)) == NULL) return NULL;
        }
    }
    return c;
}

dspex_val *dspex_val_copy(const dspex_val *v, dspex_arena *a) { return copy_rec(v, a, 0); }
