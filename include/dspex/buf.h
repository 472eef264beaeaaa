/* One growable byte buffer for the whole C core. Always NUL-terminated after a put.
 * Allocation failure is sticky (`oom`), so a caller can append freely and check once.
 * Capacity is capped at 1 TiB. The appends are inline: in a prompt renderer most of them
 * are short literals (their strlen folds to a constant) into room already there. */
#ifndef DSPEX_BUF_H
#define DSPEX_BUF_H

#include <stddef.h>
#include <string.h>

#include "dspex/arena.h"

typedef struct {
    char *p;
    size_t len, cap;
    int oom;
} dspex_buf;

void dspex_buf_init(dspex_buf *b);
void dspex_buf_free(dspex_buf *b);
/* Makes room for `extra` more bytes (and the NUL). 0, or -1 (and oom set) on failure. */
int dspex_buf_reserve(dspex_buf *b, size_t extra);
void dspex_buf_printf(dspex_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Takes the contents into the arena as a NUL-terminated string and resets the buffer. */
char *dspex_buf_take(dspex_buf *b, dspex_arena *a, size_t *len);

static inline void dspex_buf_put(dspex_buf *b, const char *s, size_t n) {
    if (n == 0) return;
    if (b->len + n + 1 > b->cap && dspex_buf_reserve(b, n) != 0) return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static inline void dspex_buf_puts(dspex_buf *b, const char *s) { dspex_buf_put(b, s, strlen(s)); }

static inline void dspex_buf_putc(dspex_buf *b, char c) {
    if (b->len + 2 > b->cap && dspex_buf_reserve(b, 1) != 0) return;
    b->p[b->len++] = c;
    b->p[b->len] = '\0';
}

#endif
