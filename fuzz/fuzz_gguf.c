/* libFuzzer target for the GGUF reader: any byte string either parses into an index
 * whose every view lies inside the input, or yields an error message; never a crash. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dspex/infer/gguf.h"

static void inside(const uint8_t *buf, size_t len, const void *p, size_t n) {
    const uint8_t *q = p;
    if (n == 0) return;
    if (q < buf || q > buf + len || n > (size_t)(buf + len - q)) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char err[DSPEX_GGUF_ERR_LEN];
    dspex_gguf *g = dspex_gguf_parse(data, size, err, sizeof(err));
    if (g == NULL) {
        if (err[0] == 0) abort();
        return 0;
    }
    for (size_t i = 0; i < dspex_gguf_n_kv(g); i++) {
        const dspex_gguf_kv *kv = dspex_gguf_kv_at(g, i);
        inside(data, size, kv->key.p, kv->key.n);
        if (kv->type == DSPEX_GGUF_STRING) inside(data, size, kv->v.s.p, kv->v.s.n);
        if (kv->type == DSPEX_GGUF_ARRAY && kv->arr_type == DSPEX_GGUF_STRING)
            for (uint64_t j = 0; j < kv->arr_n; j++) inside(data, size, kv->arr_str[j].p, kv->arr_str[j].n);
        char key[80];
        size_t n = kv->key.n < 79 ? kv->key.n : 79;
        memcpy(key, kv->key.p, n);
        key[n] = 0;
        if (memchr(key, 0, n) == NULL && dspex_gguf_find(g, key) == NULL && n == kv->key.n) abort();
    }
    for (size_t i = 0; i < dspex_gguf_n_tensors(g); i++) {
        const dspex_gguf_tensor *t = dspex_gguf_tensor_at(g, i);
        inside(data, size, t->name.p, t->name.n);
        inside(data, size, t->data, (size_t)t->nbytes);
    }
    dspex_gguf_free(g);
    return 0;
}
