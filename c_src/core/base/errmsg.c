/* See include/dspex/errmsg.h. */
#include "dspex/errmsg.h"

#include <stdarg.h>
#include <stdio.h>

void dspex_errmsg(char *err, size_t n, const char *fmt, ...) {
    if (err == NULL || n == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, n, fmt, ap);
    va_end(ap);
}
