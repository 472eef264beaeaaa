/* The arena: bump allocation in chunks, freed all at once (see include/dspex/arena.h). */
#include "dspex/arena.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct dspex_arena_chunk {
    dspex_arena_chunk *next;
    size_t used, cap;
    int borrowed; /* caller-provided memory: not freed */
    _Alignas(16) unsigned char data[];
};

void dspex_arena_init(dspex_arena *a, size_t limit) {
    a->head = NULL;
    a->bytes = 0;
    a->limit = limit;
}

void dspex_arena_init_buf(dspex_arena *a, size_t limit, void *buf, size_t size) {
    dspex_arena_init(a, limit);
    uintptr_t p = ((uintptr_t)buf + 15u) & ~(uintptr_t)15u;
    size_t skip = (size_t)(p - (uintptr_t)buf);
    if (buf == NULL || size < skip + sizeof(dspex_arena_chunk) + 256) return;
    dspex_arena_chunk *c = (dspex_arena_chunk *)p;
    c->next = NULL;
    c->used = 0;
    c->cap = size - skip - sizeof(dspex_arena_chunk);
    c->borrowed = 1;
    a->head = c;
}

/* n bytes, not cleared */
static void *bump(dspex_arena *a, size_t n) {
    n = (n + 15u) & ~(size_t)15u;
    if (n == 0) n = 16;
    if (a->limit && a->bytes + n > a->limit) return NULL;
    dspex_arena_chunk *c = a->head;
    if (c == NULL || c->cap - c->used < n) {
        size_t cap = n > 16384 ? n : 16384;
        c = malloc(sizeof(dspex_arena_chunk) + cap);
        if (c == NULL) return NULL;
        c->used = 0;
        c->cap = cap;
        c->borrowed = 0;
        c->next = a->head;
        a->head = c;
    }
    void *p = c->data + c->used;
    c->used += n;
    a->bytes += n;
    return p;
}

void *dspex_arena_alloc(dspex_arena *a, size_t n) {
    void *p = bump(a, n);
    if (p != NULL) memset(p, 0, n);
    return p;
}

char *dspex_arena_strndup(dspex_arena *a, const char *s, size_t n) {
    char *p = bump(a, n + 1);
    if (p == NULL) return NULL;
    if (n) memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

void dspex_arena_free(dspex_arena *a) {
    dspex_arena_chunk *c = a->head;
    while (c) {
        dspex_arena_chunk *next = c->next;
        if (!c->borrowed) free(c);
        c = next;
    }
    a->head = NULL;
    a->bytes = 0;
}

