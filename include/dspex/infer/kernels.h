/* The engine's compute kernels behind one small interface: a table of function
 * pointers chosen once per model from the CPU's features (CPUID), so the forward pass
 * never branches on the instruction set. The scalar table is always available and is the
 * reference; the AVX2 table (x86-64 with AVX2+FMA+F16C) computes the same sums in
 * another order (results agree to float rounding); the AVX-512 VNNI table computes the
 * AVX2 table's integer lanes with vpdpbusd and keeps its float order (equal bits). Each
 * table may add tile kernels (gemm) that multiply several weight rows by several
 * activation rows per call, equal bit for bit to its dot products. */
#ifndef DSPEX_INFER_KERNELS_H
#define DSPEX_INFER_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "dspex/infer/quant.h"

/* Dot product of one weight row (n elements of the weight type) with one activation row
 * already encoded in dspex_vec_dot_type(weight type). n is a multiple of the block. */
typedef float (*dspex_vec_dot_fn)(int64_t n, const void *w, const void *x);

/* A tile of a matrix product: y[c * ys + r] = dot(weight row r, activation row c) for
 * r < nr (rows wrow bytes apart) and c < nc (rows xrow bytes apart, encoded as for dot).
 * Equal, bit for bit, to nr * nc calls of the same table's dot. */
typedef void (*dspex_gemm_fn)(int64_t n, const void *w, size_t wrow, int nr, const void *x, size_t xrow, int nc,
                              float *y, int64_t ys);

typedef struct {
    const char *isa;                       /* "avx512vnni", "avx2" or "scalar" */
    dspex_vec_dot_fn dot[DSPEX_T_COUNT];   /* by weight type; NULL = not computable */
    dspex_gemm_fn gemm[DSPEX_T_COUNT];     /* tiled products; NULL = loop over dot */
    /* float helpers for attention: a.b, and y += a*x */
    float (*dot_f32)(int64_t n, const float *a, const float *b);
    void (*axpy_f32)(int64_t n, float a, const float *x, float *y);
} dspex_kernels;

/* Fills k with the best kernels this CPU runs; simd = 0 forces the scalar table. The
 * environment variable DSPEX_SIMD caps the choice for testing: "0" (or "scalar") forces
 * the scalar table, "avx2" skips the AVX-512 kernels; unset, the CPU decides. */
void dspex_kernels_select(dspex_kernels *k, int simd);
/* The level dspex_kernels_select picks: 0 scalar, 1 AVX2, 2 AVX-512 VNNI. */
int dspex_simd_level(int simd);
/* 1 when the CPU (and OS) support AVX2, FMA and F16C. */
int dspex_cpu_has_avx2(void);
/* 1 when they support AVX-512 F, BW, VL and VNNI (and AVX2). */
int dspex_cpu_has_avx512vnni(void);

/* Used by dspex_kernels_select; defined in kernels_avx2.c and kernels_avx512.c (no-ops
 * on other arches). The AVX-512 fill goes on top of the AVX2 one. */
void dspex_kernels_fill_avx2(dspex_kernels *k);
void dspex_kernels_fill_avx512(dspex_kernels *k);
void dspex_kernels_fill_scalar(dspex_kernels *k);

#endif
