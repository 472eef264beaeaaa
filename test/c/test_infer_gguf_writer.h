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

/* ------------------------------------------------------------------ tiny models */
#include <math.h>

#include "dspex/infer/quant.h"
#include "dspex/infer/unicode.h"

/* Deterministic pseudo-random floats in [-1, 1). */
static inline float gw_rand(uint64_t *s) {
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((*s >> 40) & 0xFFFFFF) / 8388608.0f - 1.0f;
}

static inline void gw_matrix(gw_file *f, const char *name, int64_t ne0, int64_t ne1, uint32_t type, float scale,
                             uint64_t *seed) {
    float *w = malloc(sizeof(float) * (size_t)(ne0 * ne1));
    for (int64_t i = 0; i < ne0 * ne1; i++) w[i] = gw_rand(seed) * scale;
    size_t nb = dspex_row_bytes((int)type, ne0) * (size_t)ne1;
    uint8_t *q = malloc(nb);
    if (type == DSPEX_T_Q4_K || type == DSPEX_T_Q6_K) { /* any bytes are a valid block; keep scales small */
        for (size_t i = 0; i < nb; i++) q[i] = (uint8_t)(gw_rand(seed) * 127 + 128);
        size_t bs = type == DSPEX_T_Q4_K ? 144 : 210, at = type == DSPEX_T_Q4_K ? 0 : 208;
        for (size_t b = 0; b < nb / bs; b++) {
            uint16_t d = dspex_fp32_to_fp16(scale / 64);
            memcpy(q + b * bs + at, &d, 2);
            if (type == DSPEX_T_Q4_K) memcpy(q + b * bs + 2, &d, 2);
        }
    } else {
        dspex_quantize_weights((int)type, w, q, ne0 * ne1);
    }
    int64_t ne[2] = {ne0, ne1};
    gw_tensor(f, name, ne1 > 1 ? 2 : 1, ne, type, q, nb);
    free(q);
    free(w);
}

static inline void gw_ones(gw_file *f, const char *name, int64_t n) {
    float *w = malloc(sizeof(float) * (size_t)n);
    for (int64_t i = 0; i < n; i++) w[i] = 1.0f;
    gw_tensor(f, name, 1, &n, DSPEX_T_F32, w, sizeof(float) * (size_t)n);
    free(w);
}

/* A random-weight llama (or qwen2, with biases) model with a byte-level BPE vocabulary:
 * the 256 byte symbols, 8 merges, and <|endoftext|> (eos, control). */
static inline void gw_tiny_model(gw_bytes *out, const char *arch, uint32_t type, int n_embd, int n_layer, int n_head,
                                 int n_head_kv, int n_ff) {
    gw_file f = {0};
    char key[96];
    gw_kv_str(&f, "general.architecture", arch);
#define K(s) (snprintf(key, sizeof(key), "%s." s, arch), key)
    gw_kv_u32(&f, K("context_length"), 256);
    gw_kv_u32(&f, K("embedding_length"), (uint32_t)n_embd);
    gw_kv_u32(&f, K("block_count"), (uint32_t)n_layer);
    gw_kv_u32(&f, K("feed_forward_length"), (uint32_t)n_ff);
    gw_kv_u32(&f, K("attention.head_count"), (uint32_t)n_head);
    gw_kv_u32(&f, K("attention.head_count_kv"), (uint32_t)n_head_kv);
    gw_kv_f32(&f, K("attention.layer_norm_rms_epsilon"), 1e-5f);
    gw_kv_f32(&f, K("rope.freq_base"), 10000.0f);
#undef K
    gw_kv_str(&f, "tokenizer.ggml.model", "gpt2");
    gw_kv_str(&f, "tokenizer.ggml.pre", "gpt-2");
    static char sym[256][4];
    const char *toks[256 + 9];
    int n = 0;
    for (int b = 0; b < 256; b++) {
        uint32_t cp = dspex_gpt2_byte_to_cp((uint8_t)b);
        if (cp < 0x80) sym[b][0] = (char)cp, sym[b][1] = 0;
        else sym[b][0] = (char)(0xC0 | (cp >> 6)), sym[b][1] = (char)(0x80 | (cp & 0x3F)), sym[b][2] = 0;
        toks[n++] = sym[b];
    }
    static const char *extra[] = {"he", "ll", "llo", "hello", "\xc4\xa0w", "or", "\xc4\xa0wor", "ld"};
    static const char *merges[] = {"h e", "l l", "ll o", "he llo", "\xc4\xa0 w", "o r", "\xc4\xa0w or", "l d"};
    for (int i = 0; i < 8; i++) toks[n++] = extra[i];
    toks[n++] = "<|endoftext|>";
    gw_kv_arr_str(&f, "tokenizer.ggml.tokens", toks, (uint64_t)n);
    int32_t types[256 + 9];
    for (int i = 0; i < n; i++) types[i] = i == n - 1 ? 3 : 1;
    gw_kv_arr_i32(&f, "tokenizer.ggml.token_type", types, (uint64_t)n);
    gw_kv_arr_str(&f, "tokenizer.ggml.merges", merges, 8);
    gw_kv_u32(&f, "tokenizer.ggml.eos_token_id", (uint32_t)(n - 1));
    gw_kv_u32(&f, "tokenizer.ggml.bos_token_id", (uint32_t)(n - 1));
    gw_kv_str(&f, "tokenizer.chat_template", "{% for m in messages %}<|im_start|>{{ m.role }}...{% endfor %}");
    uint64_t seed = 42;
    int hd = n_embd / n_head;
    gw_matrix(&f, "token_embd.weight", n_embd, n, type, 1.0f, &seed);
    gw_ones(&f, "output_norm.weight", n_embd);
    char name[64];
    for (int l = 0; l < n_layer; l++) {
#define NM(s) (snprintf(name, sizeof(name), "blk.%d." s, l), name)
        gw_ones(&f, NM("attn_norm.weight"), n_embd);
        gw_matrix(&f, NM("attn_q.weight"), n_embd, n_head * hd, type, 0.3f, &seed);
        gw_matrix(&f, NM("attn_k.weight"), n_embd, n_head_kv * hd, type, 0.3f, &seed);
        gw_matrix(&f, NM("attn_v.weight"), n_embd, n_head_kv * hd, type, 0.3f, &seed);
        if (strcmp(arch, "qwen2") == 0) {
            gw_matrix(&f, NM("attn_q.bias"), n_head * hd, 1, DSPEX_T_F32, 0.1f, &seed);
            gw_matrix(&f, NM("attn_k.bias"), n_head_kv * hd, 1, DSPEX_T_F32, 0.1f, &seed);
            gw_matrix(&f, NM("attn_v.bias"), n_head_kv * hd, 1, DSPEX_T_F32, 0.1f, &seed);
        }
        gw_matrix(&f, NM("attn_output.weight"), n_head * hd, n_embd, type, 0.3f, &seed);
        gw_ones(&f, NM("ffn_norm.weight"), n_embd);
        gw_matrix(&f, NM("ffn_gate.weight"), n_embd, n_ff, type, 0.3f, &seed);
        gw_matrix(&f, NM("ffn_up.weight"), n_embd, n_ff, type, 0.3f, &seed);
        gw_matrix(&f, NM("ffn_down.weight"), n_ff, n_embd, type, 0.3f, &seed);
#undef NM
    }
    gw_finish(&f, out);
}
