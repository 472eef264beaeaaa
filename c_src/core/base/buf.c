/* The growable byte buffer (see include/dspex/buf.h). */
#include "dspex/buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void dspex_buf_init(dspex_buf *b) {
    b->p = NULL;
    b->len = b->cap = 0;
    b->oom = 0;
}

void dspex_buf_free(dspex_buf *b) {
    free(b->p);
    dspex_buf_init(b);
}

int dspex_buf_reserve(dspex_buf *b, size_t extra) {
    if (b->oom) return -1;
    if (b->len + extra + 1 <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra + 1) {
        if (cap > ((size_t)1 << 40)) {
            b->oom = 1;
            return -1;
        }
        cap *= 2;
    }
    char *p = realloc(b->p, cap);
    if (p == NULL) {
        b->oom = 1;
        return -1;
    }
    b->p = p;
    b->cap = cap;
    return 0;
}

void dspex_buf_printf(dspex_buf *b, const char *fmt, ...) {
    char tmp[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n < sizeof tmp) {
        dspex_buf_put(b, tmp, (size_t)n);
        return;
    }
    if (dspex_buf_reserve(b, (size_t)n) != 0) return;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

char *dspex_buf_take(dspex_buf *b, dspex_arena *a, size_t *len) {
    if (b->oom) return NULL;
    char *s = dspex_arena_strndup(a, b->p ? b->p : "", b->len);
    if (s && len) *len = b->len;
    b->len = 0;
    if (b->p) b->p[0] = '\0';
    return s;
}

