/* The engine's compute kernels behind one small interface: a table of function
 * pointers chosen once per model from the CPU's features (CPUID), so the forward pass
 * never branches on the instruction set. The scalar table is always available and is the
 * reference; the AVX2 table (x86-64 with AVX2+FMA+F16C) computes the same sums in
 * another order (results agree to float rounding). Later ISAs (AVX-512, VNNI) and tiled
 * matrix-matrix kernels plug in here without touching the callers. */
#ifndef DSPEX_INFER_KERNELS_H
#define DSPEX_INFER_KERNELS_H

#include <stdint.h>

#include "dspex/infer/quant.h"

/* Dot product of one weight row (n elements of the weight type) with one activation row
 * already encoded in dspex_vec_dot_type(weight type). n is a multiple of the block. */
typedef float (*dspex_vec_dot_fn)(int64_t n, const void *w, const void *x);

typedef struct {
    const char *isa;                       /* "avx2" or "scalar" */
    dspex_vec_dot_fn dot[DSPEX_T_COUNT];   /* by weight type; NULL = not computable */
    /* float helpers for attention: a.b, and y += a*x */
    float (*dot_f32)(int64_t n, const float *a, const float *b);
    void (*axpy_f32)(int64_t n, float a, const float *x, float *y);
} dspex_kernels;

/* Fills k with the best kernels this CPU runs; simd = 0 forces the scalar table. */
void dspex_kernels_select(dspex_kernels *k, int simd);
/* 1 when the CPU (and OS) support AVX2, FMA and F16C. */
int dspex_cpu_has_avx2(void);

/* Used by dspex_kernels_select; defined in kernels_avx2.c (no-op on other arches). */
void dspex_kernels_fill_avx2(dspex_kernels *k);
void dspex_kernels_fill_scalar(dspex_kernels *k);

#endif
