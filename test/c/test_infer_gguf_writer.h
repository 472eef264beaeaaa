/* A tiny in-memory GGUF writer for the C tests: builds valid files (random-weight
 * models) and, by poking the bytes afterwards, hostile ones. Test-only; aborts on OOM. */
#ifndef TEST_INFER_GGUF_WRITER_H
#define TEST_INFER_GGUF_WRITER_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    uint8_t *p;
    size_t len, cap;
} gw_bytes;

static inline void gw_put(gw_bytes *b, const void *s, size_t n) {
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 4096;
        while (cap < b->len + n) cap *= 2;
        b->p = realloc(b->p, cap);
        if (b->p == NULL) abort();
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
}
static inline void gw_u32(gw_bytes *b, uint32_t v) { gw_put(b, &v, 4); }
static inline void gw_u64(gw_bytes *b, uint64_t v) { gw_put(b, &v, 8); }
static inline void gw_str(gw_bytes *b, const char *s) {
    gw_u64(b, strlen(s));
    gw_put(b, s, strlen(s));
}

#define GW_MAX_T 256
typedef struct {
    gw_bytes kv;        /* encoded key/value pairs */
    uint64_t n_kv;
    gw_bytes info;      /* encoded tensor infos */
    gw_bytes data;      /* tensor data, each padded to 32 */
    uint64_t n_t;
} gw_file;

static inline void gw_kv_u32(gw_file *f, const char *k, uint32_t v) { gw_str(&f->kv, k); gw_u32(&f->kv, 4); gw_u32(&f->kv, v); f->n_kv++; }
static inline void gw_kv_f32(gw_file *f, const char *k, float v) { gw_str(&f->kv, k); gw_u32(&f->kv, 6); gw_put(&f->kv, &v, 4); f->n_kv++; }
static inline void gw_kv_bool(gw_file *f, const char *k, int v) { uint8_t b = (uint8_t)v; gw_str(&f->kv, k); gw_u32(&f->kv, 7); gw_put(&f->kv, &b, 1); f->n_kv++; }
static inline void gw_kv_str(gw_file *f, const char *k, const char *v) { gw_str(&f->kv, k); gw_u32(&f->kv, 8); gw_str(&f->kv, v); f->n_kv++; }
static inline void gw_kv_arr_str(gw_file *f, const char *k, const char *const *v, uint64_t n) {
    gw_str(&f->kv, k); gw_u32(&f->kv, 9); gw_u32(&f->kv, 8); gw_u64(&f->kv, n);
    for (uint64_t i = 0; i < n; i++) gw_str(&f->kv, v[i]);
    f->n_kv++;
}
static inline void gw_kv_arr_f32(gw_file *f, const char *k, const float *v, uint64_t n) {
    gw_str(&f->kv, k); gw_u32(&f->kv, 9); gw_u32(&f->kv, 6); gw_u64(&f->kv, n); gw_put(&f->kv, v, 4 * n);
    f->n_kv++;
}
static inline void gw_kv_arr_i32(gw_file *f, const char *k, const int32_t *v, uint64_t n) {
    gw_str(&f->kv, k); gw_u32(&f->kv, 9); gw_u32(&f->kv, 5); gw_u64(&f->kv, n); gw_put(&f->kv, v, 4 * n);
    f->n_kv++;
}

/* Adds a tensor of dims ne[0..nd) and ggml type with nbytes of data. */
static inline void gw_tensor(gw_file *f, const char *name, int nd, const int64_t *ne, uint32_t type, const void *data,
                      size_t nbytes) {
    gw_str(&f->info, name);
    gw_u32(&f->info, (uint32_t)nd);
    for (int d = 0; d < nd; d++) gw_u64(&f->info, (uint64_t)ne[d]);
    gw_u32(&f->info, type);
    gw_u64(&f->info, f->data.len);
    gw_put(&f->data, data, nbytes);
    static const uint8_t zeros[32] = {0};
    if (f->data.len % 32) gw_put(&f->data, zeros, 32 - f->data.len % 32);
    f->n_t++;
}

/* The whole file; caller frees out->p. */
static inline void gw_finish(gw_file *f, gw_bytes *out) {
    memset(out, 0, sizeof(*out));
    gw_u32(out, 0x46554747u);
    gw_u32(out, 3);
    gw_u64(out, f->n_t);
    gw_u64(out, f->n_kv);
    gw_put(out, f->kv.p, f->kv.len);
    gw_put(out, f->info.p, f->info.len);
    static const uint8_t zeros[32] = {0};
    if (f->n_t && out->len % 32) gw_put(out, zeros, 32 - out->len % 32);
    if (f->data.len) gw_put(out, f->data.p, f->data.len);
    free(f->kv.p);
    free(f->info.p);
    free(f->data.p);
    memset(f, 0, sizeof(*f));
}

#endif
