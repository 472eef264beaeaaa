/* ggml tensor types: block layouts, fp16 conversion, and the row conversions the engine
 * needs (dequantize weights; quantize activations exactly as llama.cpp's CPU backend
 * does before a matmul, which is what makes its results reproducible to ~1e-6).
 *
 * Block layouts (bytes in file order; fp16 = IEEE binary16, little-endian):
 *   Q8_0  32 elems, 34 B: d fp16, qs[32] int8                 x = d*q
 *   Q4_0  32 elems, 18 B: d fp16, qs[16] (lo nibble = j, hi = j+16)   x = d*(q-8)
 *   Q4_1  32 elems, 20 B: d fp16, m fp16, qs[16]              x = d*q + m
 *   Q5_0  32 elems, 22 B: d fp16, qh u32 (5th bits), qs[16]   x = d*(q-16)
 *   Q5_1  32 elems, 24 B: d fp16, m fp16, qh u32, qs[16]      x = d*q + m
 *   Q4_K 256 elems, 144 B: d, dmin fp16, scales[12] (8 x 6-bit scale + 8 x 6-bit min), qs[128]
 *   Q6_K 256 elems, 210 B: ql[128], qh[64], scales[16] int8, d fp16
 *   Q8_1  32 elems, 36 B: d fp16, s fp16 (= d*sum(q)), qs[32]   activations only
 *   Q8_K 256 elems, 292 B: d f32, qs[256] int8, bsums[16] int16  activations only */
#ifndef DSPEX_INFER_QUANT_H
#define DSPEX_INFER_QUANT_H

#include <stddef.h>
#include <stdint.h>

enum {
    DSPEX_T_F32 = 0,
    DSPEX_T_F16 = 1,
    DSPEX_T_Q4_0 = 2,
    DSPEX_T_Q4_1 = 3,
    DSPEX_T_Q5_0 = 6,
    DSPEX_T_Q5_1 = 7,
    DSPEX_T_Q8_0 = 8,
    DSPEX_T_Q8_1 = 9,
    DSPEX_T_Q2_K = 10,
    DSPEX_T_Q3_K = 11,
    DSPEX_T_Q4_K = 12,
    DSPEX_T_Q5_K = 13,
    DSPEX_T_Q6_K = 14,
    DSPEX_T_Q8_K = 15,
    DSPEX_T_BF16 = 30,
    DSPEX_T_COUNT = 43 /* codes are < this (ggml's GGML_TYPE_COUNT as of llama.cpp v0.5.0) */
};

#define DSPEX_QK 32   /* block size of the 32-element types */
#define DSPEX_QK_K 256 /* block size of the K-quants */

/* What the engine knows about a type code. */
typedef struct {
    const char *name; /* ggml's name, e.g. "q4_K"; NULL for codes that do not exist */
    int block;        /* elements per block */
    int bytes;        /* bytes per block */
    int weights;      /* 1 when the engine can use it as a weight type in a matmul */
} dspex_type_info;

/* NULL for a code that ggml does not define (or defined once and removed). */
const dspex_type_info *dspex_type(int type);
/* "q4_0", or "type 31" style text for unknown codes (buf needs 16 bytes). */
const char *dspex_type_name(int type, char *buf);
/* Bytes of a row of n elements; 0 when n is not a multiple of the block size or the
 * type is unknown, or the size would overflow. */
size_t dspex_row_bytes(int type, int64_t n);

/* The activation encoding a weight type's dot product consumes (llama.cpp's
 * vec_dot_type): F32->F32, F16->F16, Q4_0/Q5_0/Q8_0->Q8_0, Q4_1/Q5_1->Q8_1,
 * Q4_K/Q6_K->Q8_K. -1 for types the engine cannot multiply. */
int dspex_vec_dot_type(int wtype);

float dspex_fp16_to_fp32(uint16_t h);
uint16_t dspex_fp32_to_fp16(float f); /* round to nearest even, like F16C */

/* Dequantizes n elements (a multiple of the block size) of a supported weight type or
 * of Q8_0/Q8_K into dst. Returns 0, or -1 for a type it cannot decode. */
int dspex_dequantize_row(int type, const void *src, float *dst, int64_t n);

/* Encodes an activation row of n floats as `type` (F32: copy, F16, Q8_0, Q8_1, Q8_K),
 * bit for bit as llama.cpp's x86 CPU path does. n is a multiple of the block size. */
void dspex_quantize_row(int type, const float *x, void *dst, int64_t n);

/* Reference quantizers for weights (ggml's *_ref rounding), used by tests and tools to
 * write models: F32, F16, Q8_0, Q4_0, Q4_1. Returns 0, or -1 for other types. */
int dspex_quantize_weights(int type, const float *x, void *dst, int64_t n);

#endif
