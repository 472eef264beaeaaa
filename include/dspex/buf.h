/* One growable byte buffer for the whole C core. Always NUL-terminated after a put.
 * Allocation failure is sticky (`oom`), so a caller can append freely and check once.
 * Capacity is capped at 1 TiB. */
#ifndef DSPEX_BUF_H
#define DSPEX_BUF_H

#include <stddef.h>

#include "dspex/arena.h"

typedef struct {
    char *p;
    size_t len, cap;
    int oom;
} dspex_buf;

void dspex_buf_init(dspex_buf *b);
void dspex_buf_free(dspex_buf *b);
void dspex_buf_put(dspex_buf *b, const char *s, size_t n);
void dspex_buf_puts(dspex_buf *b, const char *s);
void dspex_buf_putc(dspex_buf *b, char c);
void dspex_buf_printf(dspex_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Takes the contents into the arena as a NUL-terminated string and resets the buffer. */
char *dspex_buf_take(dspex_buf *b, dspex_arena *a, size_t *len);

#endif
