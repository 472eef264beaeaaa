/* libFuzzer target for the SSE parser: the input is fed whole and in pieces whose
 * sizes come from the input itself; both must give the same events. */
#include "dspex/sse.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    uint64_t hash;
    size_t events;
} fz_acc;

static int fz_event(void *ud, const char *ev, size_t evlen, const char *data, size_t dlen) {
    fz_acc *a = ud;
    a->events++;
    for (size_t i = 0; i < evlen; i++) a->hash = (a->hash ^ (unsigned char)ev[i]) * 1099511628211ull;
    a->hash = (a->hash ^ (ev ? 1u : 2u)) * 1099511628211ull;
    for (size_t i = 0; i < dlen; i++) a->hash = (a->hash ^ (unsigned char)data[i]) * 1099511628211ull;
    a->hash = (a->hash ^ 0xff) * 1099511628211ull;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    dspex_sse_parser *p = dspex_sse_new(1 << 16);
    if (p == NULL) return 0;
    fz_acc whole = {14695981039346656037ull, 0}, parts = {14695981039346656037ull, 0};
    int rc1 = dspex_sse_feed(p, (const char *)data, size, fz_event, &whole);
    if (rc1 == 0) rc1 = dspex_sse_finish(p, fz_event, &whole);
    dspex_sse_reset(p);
    int rc2 = 0;
    size_t i = 0, step = size ? (data[0] % 7) + 1 : 1;
    while (i < size && rc2 == 0) {
        size_t n = size - i < step ? size - i : step;
        rc2 = dspex_sse_feed(p, (const char *)data + i, n, fz_event, &parts);
        i += n;
        step = (step * 5 + 3) % 11 + 1;
    }
    if (rc2 == 0) rc2 = dspex_sse_finish(p, fz_event, &parts);
    if (rc1 == 0 && rc2 == 0 && (whole.hash != parts.hash || whole.events != parts.events)) abort();
    dspex_sse_free(p);
    return 0;
}
