/* GGUF reader: valid files parse with the right views; hostile files (truncations at
 * every byte, huge counts, bad offsets, overflowing shapes, wrong types, duplicate keys,
 * nested arrays) give an error naming the problem, never a crash or a huge allocation. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctest.h"
#include "dspex/infer/gguf.h"
#include "dspex/infer/quant.h"
#include "test_infer_gguf_writer.h"

static void small_file(gw_bytes *out) {
    gw_file f = {0};
    gw_kv_str(&f, "general.architecture", "llama");
    gw_kv_u32(&f, "llama.block_count", 2);
    gw_kv_f32(&f, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
    gw_kv_bool(&f, "tokenizer.ggml.add_bos_token", 1);
    const char *toks[3] = {"a", "b", "<s>"};
    gw_kv_arr_str(&f, "tokenizer.ggml.tokens", toks, 3);
    float sc[3] = {0.5f, -1.0f, 0.0f};
    gw_kv_arr_f32(&f, "tokenizer.ggml.scores", sc, 3);
    float w[64];
    for (int i = 0; i < 64; i++) w[i] = (float)i;
    int64_t ne[2] = {32, 2};
    gw_tensor(&f, "w.f32", 2, ne, DSPEX_T_F32, w, sizeof(w));
    uint8_t q[2 * 34];
    dspex_quantize_weights(DSPEX_T_Q8_0, w, q, 64);
    gw_tensor(&f, "w.q8", 2, ne, DSPEX_T_Q8_0, q, sizeof(q));
    gw_finish(&f, out);
}

CTEST(parses_valid_file) {
    gw_bytes b;
    small_file(&b);
    char err[256] = "";
    dspex_gguf *g = dspex_gguf_parse(b.p, b.len, err, sizeof(err));
    CHECK(g != NULL);
    if (g == NULL) {
        fprintf(stderr, "  %s\n", err);
        free(b.p);
        return;
    }
    CHECK(dspex_gguf_n_kv(g) == 6);
    CHECK(dspex_gguf_n_tensors(g) == 2);
    dspex_str s;
    CHECK(dspex_gguf_get_str(g, "general.architecture", &s, err, sizeof(err)) == 0 && dspex_str_eq(s, "llama"));
    uint32_t u = 0;
    CHECK(dspex_gguf_get_u32(g, "llama.block_count", &u, err, sizeof(err)) == 0 && u == 2);
    CHECK(dspex_gguf_get_u32(g, "missing", &u, err, sizeof(err)) == 1);
    CHECK(dspex_gguf_get_u32(g, "general.architecture", &u, err, sizeof(err)) == -1);
    CHECK(strstr(err, "general.architecture") != NULL && strstr(err, "expected u32") != NULL);
    const dspex_gguf_kv *t = dspex_gguf_find(g, "tokenizer.ggml.tokens");
    CHECK(t && t->type == DSPEX_GGUF_ARRAY && t->arr_n == 3 && dspex_str_eq(t->arr_str[2], "<s>"));
    const dspex_gguf_kv *scv = dspex_gguf_find(g, "tokenizer.ggml.scores");
    CHECK(scv && dspex_gguf_arr_f32(scv, 1) == -1.0f);
    const dspex_gguf_tensor *w = dspex_gguf_find_tensor(g, "w.f32");
    CHECK(w && w->ne[0] == 32 && w->ne[1] == 2 && w->nbytes == 256 && ((const float *)w->data)[5] == 5.0f);
    const dspex_gguf_tensor *q = dspex_gguf_find_tensor(g, "w.q8");
    CHECK(q && q->nbytes == 68 && q->offset % 32 == 0);
    float back[64];
    CHECK(dspex_dequantize_row(DSPEX_T_Q8_0, q->data, back, 64) == 0);
    CHECK(back[63] > 62.5f && back[63] < 63.5f);
    dspex_gguf_free(g);
    free(b.p);
}

/* Every prefix that cuts into the last tensor's data (or earlier) is rejected cleanly;
 * only the zero padding after it may go. */
CTEST(every_truncation_is_an_error) {
    gw_bytes b;
    small_file(&b);
    char err0[256];
    dspex_gguf *full = dspex_gguf_parse(b.p, b.len, err0, sizeof(err0));
    const dspex_gguf_tensor *last = dspex_gguf_tensor_at(full, 1);
    size_t end = (size_t)(last->data - b.p) + (size_t)last->nbytes;
    dspex_gguf_free(full);
    CHECK(end < b.len);
    for (size_t n = 0; n < end; n++) {
        uint8_t *copy = malloc(n ? n : 1);
        memcpy(copy, b.p, n);
        char err[256] = "";
        dspex_gguf *g = dspex_gguf_parse(copy, n, err, sizeof(err));
        if (g != NULL) fprintf(stderr, "  prefix %zu parsed\n", n);
        CHECK(g == NULL && err[0] != 0);
        free(copy);
    }
    free(b.p);
}

/* Flipping any single byte never crashes (ASan/UBSan watch). */
CTEST(byte_flips_do_not_crash) {
    gw_bytes b;
    small_file(&b);
    for (size_t i = 0; i < b.len; i++) {
        for (int v = 0; v < 3; v++) {
            uint8_t *copy = malloc(b.len);
            memcpy(copy, b.p, b.len);
            copy[i] = v == 0 ? 0xFF : v == 1 ? 0x00 : (uint8_t)(copy[i] ^ 0x80);
            char err[256];
            dspex_gguf *g = dspex_gguf_parse(copy, b.len, err, sizeof(err));
            dspex_gguf_free(g);
            free(copy);
        }
    }
    free(b.p);
}

static char *parse_err(gw_bytes *b) {
    static char err[256];
    err[0] = 0;
    dspex_gguf *g = dspex_gguf_parse(b->p, b->len, err, sizeof(err));
    if (g) {
        dspex_gguf_free(g);
        return NULL;
    }
    return err;
}

static void header(gw_bytes *b, uint32_t magic, uint32_t version, uint64_t nt, uint64_t nkv) {
    memset(b, 0, sizeof(*b));
    gw_u32(b, magic);
    gw_u32(b, version);
    gw_u64(b, nt);
    gw_u64(b, nkv);
}

CTEST(bad_headers) {
    gw_bytes b;
    char *e;
    header(&b, 0x12345678, 3, 0, 0);
    CHECK((e = parse_err(&b)) && strstr(e, "magic"));
    free(b.p);
    header(&b, 0x46554747u, 1, 0, 0);
    CHECK((e = parse_err(&b)) && strstr(e, "version 1"));
    free(b.p);
    header(&b, 0x46554747u, 0x03000000u, 0, 0);
    CHECK((e = parse_err(&b)) && strstr(e, "byte-swapped"));
    free(b.p);
    header(&b, 0x46554747u, 3, 0, 0);
    CHECK(parse_err(&b) == NULL); /* empty but valid */
    free(b.p);
}

CTEST(huge_counts_are_refused_before_allocation) {
    gw_bytes b;
    char *e;
    header(&b, 0x46554747u, 3, 0, UINT64_MAX);
    CHECK((e = parse_err(&b)) && strstr(e, "key count"));
    free(b.p);
    header(&b, 0x46554747u, 3, (uint64_t)1 << 60, 0);
    CHECK((e = parse_err(&b)) && strstr(e, "tensor count"));
    free(b.p);
    /* an array claiming 2^62 elements */
    header(&b, 0x46554747u, 3, 0, 1);
    gw_str(&b, "k");
    gw_u32(&b, 9);
    gw_u32(&b, 4);
    gw_u64(&b, (uint64_t)1 << 62);
    CHECK((e = parse_err(&b)) && strstr(e, "'k'") && strstr(e, "does not fit"));
    free(b.p);
    /* a string claiming 2^63 bytes */
    header(&b, 0x46554747u, 3, 0, 1);
    gw_str(&b, "k");
    gw_u32(&b, 8);
    gw_u64(&b, (uint64_t)1 << 63);
    CHECK((e = parse_err(&b)) && strstr(e, "'k'"));
    free(b.p);
}

CTEST(kv_errors_name_the_key) {
    gw_bytes b;
    char *e;
    header(&b, 0x46554747u, 3, 0, 2);
    gw_str(&b, "dup");
    gw_u32(&b, 4);
    gw_u32(&b, 1);
    gw_str(&b, "dup");
    gw_u32(&b, 4);
    gw_u32(&b, 2);
    CHECK((e = parse_err(&b)) && strstr(e, "duplicate metadata key 'dup'"));
    free(b.p);
    header(&b, 0x46554747u, 3, 0, 1);
    gw_str(&b, "nest");
    gw_u32(&b, 9);
    gw_u32(&b, 9);
    gw_u64(&b, 1);
    CHECK((e = parse_err(&b)) && strstr(e, "'nest'") && strstr(e, "nested array"));
    free(b.p);
    header(&b, 0x46554747u, 3, 0, 1);
    gw_str(&b, "weird");
    gw_u32(&b, 77);
    CHECK((e = parse_err(&b)) && strstr(e, "'weird'") && strstr(e, "unknown value type 77"));
    free(b.p);
    header(&b, 0x46554747u, 3, 0, 1);
    gw_str(&b, "flag");
    gw_u32(&b, 7);
    uint8_t two = 2;
    gw_put(&b, &two, 1);
    CHECK((e = parse_err(&b)) && strstr(e, "'flag'") && strstr(e, "bool"));
    free(b.p);
    header(&b, 0x46554747u, 3, 0, 1);
    gw_str(&b, "");
    gw_u32(&b, 4);
    gw_u32(&b, 1);
    CHECK((e = parse_err(&b)) && strstr(e, "empty"));
    free(b.p);
    header(&b, 0x46554747u, 3, 0, 1);
    gw_str(&b, "general.alignment");
    gw_u32(&b, 4);
    gw_u32(&b, 24);
    CHECK((e = parse_err(&b)) && strstr(e, "general.alignment") && strstr(e, "power of two"));
    free(b.p);
    header(&b, 0x46554747u, 3, 0, 1);
    gw_str(&b, "general.alignment");
    gw_u32(&b, 10);
    gw_u64(&b, 32);
    CHECK((e = parse_err(&b)) && strstr(e, "general.alignment") && strstr(e, "expected u32"));
    free(b.p);
}

/* One tensor info with the given fields, no metadata, then `data` bytes of payload. */
static void one_tensor(gw_bytes *b, const char *name, uint32_t nd, const uint64_t *ne, uint32_t type, uint64_t off,
                       size_t data) {
    header(b, 0x46554747u, 3, 1, 0);
    gw_str(b, name);
    gw_u32(b, nd);
    for (uint32_t i = 0; i < nd; i++) gw_u64(b, ne[i]);
    gw_u32(b, type);
    gw_u64(b, off);
    while (b->len % 32) {
        uint8_t z = 0;
        gw_put(b, &z, 1);
    }
    for (size_t i = 0; i < data; i++) {
        uint8_t z = 0;
        gw_put(b, &z, 1);
    }
}

CTEST(tensor_errors_name_the_tensor) {
    gw_bytes b;
    char *e;
    uint64_t ne2[2] = {32, 2};
    one_tensor(&b, "ok", 2, ne2, DSPEX_T_F32, 0, 256);
    CHECK(parse_err(&b) == NULL);
    free(b.p);
    one_tensor(&b, "short", 2, ne2, DSPEX_T_F32, 0, 255);
    CHECK((e = parse_err(&b)) && strstr(e, "'short'") && strstr(e, "outside"));
    free(b.p);
    one_tensor(&b, "misaligned", 2, ne2, DSPEX_T_F32, 8, 512);
    CHECK((e = parse_err(&b)) && strstr(e, "'misaligned'") && strstr(e, "alignment"));
    free(b.p);
    one_tensor(&b, "faroff", 2, ne2, DSPEX_T_F32, (uint64_t)1 << 62, 256);
    CHECK((e = parse_err(&b)) && strstr(e, "'faroff'"));
    free(b.p);
    one_tensor(&b, "wraps", 2, ne2, DSPEX_T_F32, UINT64_MAX - 31, 256);
    CHECK((e = parse_err(&b)) && strstr(e, "'wraps'"));
    free(b.p);
    uint64_t big[4] = {(uint64_t)1 << 32, (uint64_t)1 << 32, 4, 1};
    one_tensor(&b, "overflow", 4, big, DSPEX_T_F32, 0, 0);
    CHECK((e = parse_err(&b)) && strstr(e, "'overflow'") && strstr(e, "overflow"));
    free(b.p);
    uint64_t nearly[2] = {(uint64_t)1 << 61, 2};
    one_tensor(&b, "bytesize", 2, nearly, DSPEX_T_F32, 0, 0);
    CHECK((e = parse_err(&b)) && strstr(e, "'bytesize'"));
    free(b.p);
    uint64_t zero[2] = {32, 0};
    one_tensor(&b, "zero", 2, zero, DSPEX_T_F32, 0, 0);
    CHECK((e = parse_err(&b)) && strstr(e, "'zero'") && strstr(e, "dimension 1"));
    free(b.p);
    uint64_t ne5[5] = {32, 1, 1, 1, 1};
    one_tensor(&b, "fivedims", 5, ne5, DSPEX_T_F32, 0, 0);
    CHECK((e = parse_err(&b)) && strstr(e, "'fivedims'") && strstr(e, "5 dimensions"));
    free(b.p);
    one_tensor(&b, "badtype", 2, ne2, 4, 0, 256);
    CHECK((e = parse_err(&b)) && strstr(e, "'badtype'") && strstr(e, "unknown ggml type 4"));
    free(b.p);
    uint64_t odd[2] = {33, 2};
    one_tensor(&b, "oddrow", 2, odd, DSPEX_T_Q8_0, 0, 256);
    CHECK((e = parse_err(&b)) && strstr(e, "'oddrow'") && strstr(e, "block size 32"));
    free(b.p);
    char longname[80];
    memset(longname, 'x', 70);
    longname[70] = 0;
    one_tensor(&b, longname, 2, ne2, DSPEX_T_F32, 0, 256);
    CHECK((e = parse_err(&b)) && strstr(e, "70 bytes"));
    free(b.p);
    /* two tensors with one name */
    header(&b, 0x46554747u, 3, 2, 0);
    for (int i = 0; i < 2; i++) {
        gw_str(&b, "twin");
        gw_u32(&b, 1);
        gw_u64(&b, 8);
        gw_u32(&b, 0);
        gw_u64(&b, 0);
    }
    CHECK((e = parse_err(&b)) && strstr(e, "duplicate tensor name 'twin'"));
    free(b.p);
}

CTEST(open_reports_missing_file) {
    char err[256];
    CHECK(dspex_gguf_open("/nonexistent/x.gguf", err, sizeof(err)) == NULL);
    CHECK(strstr(err, "/nonexistent/x.gguf") != NULL);
}

CTEST(fp16_round_trip) {
    /* every finite half converts to float and back exactly */
    for (uint32_t h = 0; h < 0x10000; h++) {
        if ((h & 0x7C00) == 0x7C00) continue;
        float f = dspex_fp16_to_fp32((uint16_t)h);
        if (dspex_fp32_to_fp16(f) != h) {
            fprintf(stderr, "  half 0x%04x\n", h);
            CHECK(0);
            break;
        }
    }
    CHECK(dspex_fp32_to_fp16(65520.0f) == 0x7C00);
    CHECK(dspex_fp32_to_fp16(65519.0f) == 0x7BFF);
    CHECK(dspex_fp32_to_fp16(1.0f + 1.0f / 2048) == 0x3C00); /* tie -> even */
    CHECK(dspex_fp32_to_fp16(1.0f + 3.0f / 2048) == 0x3C02);
}

int main(void) { return ctest_run(); }
