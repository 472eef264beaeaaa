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

static int buf_reserve(dspex_buf *b, size_t extra) {
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

void dspex_buf_put(dspex_buf *b, const char *s, size_t n) {
    if (n == 0 || buf_reserve(b, n) != 0) return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void dspex_buf_puts(dspex_buf *b, const char *s) { dspex_buf_put(b, s, strlen(s)); }

void dspex_buf_putc(dspex_buf *b, char c) { dspex_buf_put(b, &c, 1); }

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
    if (buf_reserve(b, (size_t)n) != 0) return;
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

