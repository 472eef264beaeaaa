/* Scalar reference kernels and the CPUID dispatch. See include/dspex/infer/kernels.h.
 * Each dot product follows ggml's block formula: integer sums inside a block, one float
 * multiply-add per block (K-quants: per sub-block scale, then the block scale). */
#include "dspex/infer/kernels.h"

#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#endif

static inline float h2f(const uint8_t *p) { return dspex_fp16_to_fp32((uint16_t)(p[0] | (p[1] << 8))); }

/* ---------------------------------------------------------------------------- float */

static float dot_f32(int64_t n, const float *a, const float *b) {
    float s = 0.0f;
    for (int64_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

static void axpy_f32(int64_t n, float a, const float *x, float *y) {
    for (int64_t i = 0; i < n; i++) y[i] += a * x[i];
}

static float vdot_f32(int64_t n, const void *w, const void *x) { return dot_f32(n, w, x); }

static float vdot_f16(int64_t n, const void *w, const void *x) {
    const uint8_t *a = w, *b = x;
    float s = 0.0f;
    for (int64_t i = 0; i < n; i++) s += h2f(a + 2 * i) * h2f(b + 2 * i);
    return s;
}

/* ---------------------------------------------------------------- 32-element blocks */

static float vdot_q8_0(int64_t n, const void *w, const void *x) {
    const uint8_t *a = w, *b = x;
    float s = 0.0f;
    for (int64_t i = 0; i < n / 32; i++, a += 34, b += 34) {
        int sum = 0;
        for (int j = 0; j < 32; j++) sum += (int8_t)a[2 + j] * (int8_t)b[2 + j];
        s += h2f(a) * h2f(b) * (float)sum;
    }
    return s;
}

static float vdot_q4_0(int64_t n, const void *w, const void *x) {
    const uint8_t *a = w, *b = x;
    float s = 0.0f;
    for (int64_t i = 0; i < n / 32; i++, a += 18, b += 34) {
        const int8_t *q8 = (const int8_t *)(b + 2);
        int sum = 0;
        for (int j = 0; j < 16; j++) {
            sum += ((a[2 + j] & 0xF) - 8) * q8[j];
            sum += ((a[2 + j] >> 4) - 8) * q8[j + 16];
        }
        s += h2f(a) * h2f(b) * (float)sum;
    }
    return s;
}

static float vdot_q4_1(int64_t n, const void *w, const void *x) {
    const uint8_t *a = w, *b = x; /* b: Q8_1 blocks (d, s, qs) */
    float s = 0.0f;
    for (int64_t i = 0; i < n / 32; i++, a += 20, b += 36) {
        const int8_t *q8 = (const int8_t *)(b + 4);
        int sum = 0;
        for (int j = 0; j < 16; j++) sum += (a[4 + j] & 0xF) * q8[j] + (a[4 + j] >> 4) * q8[j + 16];
        s += h2f(a) * h2f(b) * (float)sum + h2f(a + 2) * h2f(b + 2);
    }
    return s;
}

static inline uint32_t rd32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static float vdot_q5_0(int64_t n, const void *w, const void *x) {
    const uint8_t *a = w, *b = x;
    float s = 0.0f;
    for (int64_t i = 0; i < n / 32; i++, a += 22, b += 34) {
        uint32_t qh = rd32(a + 2);
        const int8_t *q8 = (const int8_t *)(b + 2);
        int sum = 0;
        for (int j = 0; j < 16; j++) {
            int lo = ((a[6 + j] & 0xF) | (int)(((qh >> j) & 1) << 4)) - 16;
            int hi = ((a[6 + j] >> 4) | (int)(((qh >> (j + 16)) & 1) << 4)) - 16;
            sum += lo * q8[j] + hi * q8[j + 16];
        }
        s += h2f(a) * h2f(b) * (float)sum;
    }
    return s;
}

static float vdot_q5_1(int64_t n, const void *w, const void *x) {
    const uint8_t *a = w, *b = x;
    float s = 0.0f;
    for (int64_t i = 0; i < n / 32; i++, a += 24, b += 36) {
        uint32_t qh = rd32(a + 4);
        const int8_t *q8 = (const int8_t *)(b + 4);
        int sum = 0;
        for (int j = 0; j < 16; j++) {
            int lo = (a[8 + j] & 0xF) | (int)(((qh >> j) & 1) << 4);
            int hi = (a[8 + j] >> 4) | (int)(((qh >> (j + 16)) & 1) << 4);
            sum += lo * q8[j] + hi * q8[j + 16];
        }
        s += h2f(a) * h2f(b) * (float)sum + h2f(a + 2) * h2f(b + 2);
    }
    return s;
}

/* ----------------------------------------------------------------------- K-quants */

static inline float q8k_d(const uint8_t *b) {
    float d;
    memcpy(&d, b, 4);
    return d;
}

static inline int q8k_bsum(const uint8_t *b, int j) {
    int16_t v;
    memcpy(&v, b + 260 + 2 * j, 2);
    return v;
}

static float vdot_q4_k(int64_t n, const void *w, const void *x) {
    const uint8_t *a = w, *b = x;
    float s = 0.0f;
    for (int64_t i = 0; i < n / 256; i++, a += 144, b += 292) {
        const uint8_t *sc = a + 4, *qs = a + 16;
        const int8_t *q8 = (const int8_t *)(b + 4);
        int sumi = 0, summ = 0;
        for (int j = 0; j < 8; j++) {
            int scale, mn;
            if (j < 4) {
                scale = sc[j] & 63;
                mn = sc[j + 4] & 63;
            } else {
                scale = (sc[j + 4] & 0x0F) | ((sc[j - 4] >> 6) << 4);
                mn = (sc[j + 4] >> 4) | ((sc[j] >> 6) << 4);
            }
            const uint8_t *q4 = qs + 32 * (j / 2);
            int shift = (j & 1) * 4, dot = 0;
            for (int l = 0; l < 32; l++) dot += ((q4[l] >> shift) & 0xF) * q8[32 * j + l];
            sumi += scale * dot;
            summ += mn * (q8k_bsum(b, 2 * j) + q8k_bsum(b, 2 * j + 1));
        }
        float dx = q8k_d(b);
        s += h2f(a) * dx * (float)sumi - h2f(a + 2) * dx * (float)summ;
    }
    return s;
}

static float vdot_q6_k(int64_t n, const void *w, const void *x) {
    const uint8_t *a = w, *b = x;
    float s = 0.0f;
    for (int64_t i = 0; i < n / 256; i++, a += 210, b += 292) {
        const uint8_t *ql = a, *qh = a + 128;
        const int8_t *sc = (const int8_t *)(a + 192);
        const int8_t *q8 = (const int8_t *)(b + 4);
        int sumi = 0;
        for (int half = 0; half < 2; half++) {
            int g[8] = {0};
            for (int l = 0; l < 32; l++) {
                int is = l / 16;
                int q1 = (int)((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
                int q2 = (int)((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
                int q3 = (int)((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                int q4 = (int)((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                g[is + 0] += q1 * q8[l];
                g[is + 2] += q2 * q8[l + 32];
                g[is + 4] += q3 * q8[l + 64];
                g[is + 6] += q4 * q8[l + 96];
            }
            for (int k = 0; k < 8; k++) sumi += sc[k] * g[k];
            ql += 64;
            qh += 32;
            sc += 8;
            q8 += 128;
        }
        s += h2f(a + 208) * q8k_d(b) * (float)sumi;
    }
    return s;
}

/* ----------------------------------------------------------------------- dispatch */

void dspex_kernels_fill_scalar(dspex_kernels *k) {
    memset(k, 0, sizeof(*k));
    k->isa = "scalar";
    k->dot[DSPEX_T_F32] = vdot_f32;
    k->dot[DSPEX_T_F16] = vdot_f16;
    k->dot[DSPEX_T_Q8_0] = vdot_q8_0;
    k->dot[DSPEX_T_Q4_0] = vdot_q4_0;
    k->dot[DSPEX_T_Q4_1] = vdot_q4_1;
    k->dot[DSPEX_T_Q5_0] = vdot_q5_0;
    k->dot[DSPEX_T_Q5_1] = vdot_q5_1;
    k->dot[DSPEX_T_Q4_K] = vdot_q4_k;
    k->dot[DSPEX_T_Q6_K] = vdot_q6_k;
    k->dot_f32 = dot_f32;
    k->axpy_f32 = axpy_f32;
}

int dspex_cpu_has_avx2(void) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    /* CPUID leaf 1: ECX bit 12 FMA, 27 OSXSAVE, 28 AVX, 29 F16C; leaf 7: EBX bit 5 AVX2;
     * XCR0 bits 1-2: the OS saves SSE and AVX state. */
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    const unsigned need1 = (1u << 12) | (1u << 27) | (1u << 28) | (1u << 29);
    if ((c & need1) != need1) return 0;
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    if ((lo & 6u) != 6u) return 0;
    if (__get_cpuid_max(0, NULL) < 7) return 0;
    __cpuid_count(7, 0, a, b, c, d);
    return (b & (1u << 5)) != 0;
#else
    return 0;
#endif
}

int dspex_cpu_has_avx512vnni(void) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    /* leaf 7: EBX bit 16 AVX512F, 30 AVX512BW, 31 AVX512VL; ECX bit 11 AVX512_VNNI;
     * XCR0 bits 5-7: the OS saves the opmask and upper ZMM state. */
    if (!dspex_cpu_has_avx2()) return 0;
    unsigned a, b, c, d;
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    if ((lo & 0xE6u) != 0xE6u) return 0;
    __cpuid_count(7, 0, a, b, c, d);
    const unsigned needb = (1u << 16) | (1u << 30) | (1u << 31);
    return (b & needb) == needb && (c & (1u << 11)) != 0;
#else
    return 0;
#endif
}

int dspex_simd_level(int simd) {
    const char *e = getenv("DSPEX_SIMD");
    int cap = 2;
    if (e && (strcmp(e, "0") == 0 || strcmp(e, "scalar") == 0)) cap = 0;
    if (e && strcmp(e, "avx2") == 0) cap = 1;
    if (!simd) cap = 0;
    int have = dspex_cpu_has_avx512vnni() ? 2 : dspex_cpu_has_avx2() ? 1 : 0;
    return have < cap ? have : cap;
}

void dspex_kernels_select(dspex_kernels *k, int simd) {
    dspex_kernels_fill_scalar(k);
    int level = dspex_simd_level(simd);
    if (level >= 1) dspex_kernels_fill_avx2(k);
    if (level >= 2) dspex_kernels_fill_avx512(k);
}
