/* One way to write an error message into a caller's buffer, used by the GGUF engine and
 * the grammar compiler (their APIs take `char *err, size_t errlen`). */
#ifndef DSPEX_ERRMSG_H
#define DSPEX_ERRMSG_H

#include <stddef.h>

/* printf into err[0..n) (always NUL-terminated when n > 0); a NULL err or n == 0 is a
 * no-op, so callers may pass no buffer. */
void dspex_errmsg(char *err, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
