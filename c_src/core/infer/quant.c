/* ggml tensor types: block layouts, fp16, dequantization of weights and quantization of
 * activations. See include/dspex/infer/quant.h. Everything here is scalar C; the dot
 * products live behind the kernel table (kernels.c, kernels_avx2.c). */
#include "dspex/infer/quant.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* ----------------------------------------------------------------------------
 * Type table: block sizes of every type ggml defines, so the GGUF reader can size-check
 * tensors of types the engine does not compute with (and name them in errors). */

static const dspex_type_info k_types[DSPEX_T_COUNT] = {
    [0] = {"f32", 1, 4, 1},       [1] = {"f16", 1, 2, 1},
    [2] = {"q4_0", 32, 18, 1},    [3] = {"q4_1", 32, 20, 1},
    [6] = {"q5_0", 32, 22, 1},    [7] = {"q5_1", 32, 24, 1},
    [8] = {"q8_0", 32, 34, 1},    [9] = {"q8_1", 32, 36, 0},
    [10] = {"q2_K", 256, 84, 0},  [11] = {"q3_K", 256, 110, 0},
    [12] = {"q4_K", 256, 144, 1}, [13] = {"q5_K", 256, 176, 0},
    [14] = {"q6_K", 256, 210, 1}, [15] = {"q8_K", 256, 292, 0},
    [16] = {"iq2_xxs", 256, 66, 0}, [17] = {"iq2_xs", 256, 74, 0},
    [18] = {"iq3_xxs", 256, 98, 0}, [19] = {"iq1_s", 256, 50, 0},
    [20] = {"iq4_nl", 32, 18, 0}, [21] = {"iq3_s", 256, 110, 0},
    [22] = {"iq2_s", 256, 82, 0}, [23] = {"iq4_xs", 256, 136, 0},
    [24] = {"i8", 1, 1, 0},       [25] = {"i16", 1, 2, 0},
    [26] = {"i32", 1, 4, 0},      [27] = {"i64", 1, 8, 0},
    [28] = {"f64", 1, 8, 0},      [29] = {"iq1_m", 256, 56, 0},
    [30] = {"bf16", 1, 2, 0},     [34] = {"tq1_0", 256, 54, 0},
    [35] = {"tq2_0", 256, 66, 0}, [39] = {"mxfp4", 32, 17, 0},
    [40] = {"nvfp4", 64, 36, 0},  [41] = {"q1_0", 128, 18, 0},
    [42] = {"q2_0", 64, 18, 0},
};

const dspex_type_info *dspex_type(int type) {
    if (type < 0 || type >= DSPEX_T_COUNT || k_types[type].name == NULL) return NULL;
    return &k_types[type];
}

const char *dspex_type_name(int type, char *buf) {
    const dspex_type_info *t = dspex_type(type);
    if (t) return t->name;
    snprintf(buf, 16, "type %d", type);
    return buf;
}

size_t dspex_row_bytes(int type, int64_t n) {
    const dspex_type_info *t = dspex_type(type);
    if (t == NULL || n < 0 || n % t->block != 0) return 0;
    uint64_t blocks = (uint64_t)n / (uint64_t)t->block;
    if (blocks > SIZE_MAX / (uint64_t)t->bytes) return 0;
    return (size_t)(blocks * (uint64_t)t->bytes);
}

int dspex_vec_dot_type(int wtype) {
    switch (wtype) {
    case DSPEX_T_F32: return DSPEX_T_F32;
    case DSPEX_T_F16: return DSPEX_T_F16;
    case DSPEX_T_Q4_0:
    case DSPEX_T_Q5_0:
    case DSPEX_T_Q8_0: return DSPEX_T_Q8_0;
    case DSPEX_T_Q4_1:
    case DSPEX_T_Q5_1: return DSPEX_T_Q8_1;
    case DSPEX_T_Q4_K:
    case DSPEX_T_Q6_K: return DSPEX_T_Q8_K;
    default: return -1;
    }
}

/* ----------------------------------------------------------------------------
 * fp16 <-> fp32 (IEEE binary16), bit manipulation; F16C gives the same results. */

static inline uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static inline float bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

float dspex_fp16_to_fp32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1F, man = h & 0x3FF;
    if (exp == 0x1F) return bits_f32(sign | 0x7F800000u | (man << 13)); /* inf / nan */
    if (exp == 0) {
        if (man == 0) return bits_f32(sign);
        /* subnormal: man * 2^-24, exact in float */
        float v = (float)man * 5.9604644775390625e-8f;
        return sign ? -v : v;
    }
    return bits_f32(sign | ((exp + 112) << 23) | (man << 13));
}

uint16_t dspex_fp32_to_fp16(float f) {
    uint32_t x = f32_bits(f);
    uint32_t sign = (x >> 16) & 0x8000;
    uint32_t ax = x & 0x7FFFFFFFu;
    if (ax >= 0x7F800000u) /* inf or nan (keep a quiet nan) */
        return (uint16_t)(sign | 0x7C00 | (ax > 0x7F800000u ? 0x200 | ((ax >> 13) & 0x3FF) : 0));
    if (ax >= 0x477FF000u) return (uint16_t)(sign | 0x7C00); /* rounds to >= 65520: inf */
    if (ax < 0x38800000u) {
        /* result is subnormal (or zero): value / 2^-24, rounded to nearest even */
        if (ax < 0x33000000u) return (uint16_t)sign; /* < 2^-25: rounds to 0 */
        uint32_t e = ax >> 23, m = (ax & 0x7FFFFF) | 0x800000;
        uint32_t shift = 126 - e; /* 14..24 */
        uint32_t q = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (q & 1))) q++;
        return (uint16_t)(sign | q);
    }
    uint32_t e = (ax >> 23) - 112, m = ax & 0x7FFFFF;
    uint32_t q = (e << 10) | (m >> 13), rem = m & 0x1FFF;
    if (rem > 0x1000 || (rem == 0x1000 && (q & 1))) q++; /* carry into the exponent is right */
    return (uint16_t)(sign | q);
}

static inline uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline float rdh(const uint8_t *p) { return dspex_fp16_to_fp32(rd16(p)); }
static inline void wr16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

/* ----------------------------------------------------------------------------
 * Dequantization (weights: embedding rows, tests, tools). */

/* The eight 6-bit scales and mins of a Q4_K block (the 12-byte packing). */
static void q4k_scale_min(const uint8_t *s, int j, int *sc, int *m) {
    if (j < 4) {
        *sc = s[j] & 63;
        *m = s[j + 4] & 63;
    } else {
        *sc = (s[j + 4] & 0x0F) | ((s[j - 4] >> 6) << 4);
        *m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
}

int dspex_dequantize_row(int type, const void *src, float *dst, int64_t n) {
    const uint8_t *b = src;
    switch (type) {
    case DSPEX_T_F32: memcpy(dst, src, (size_t)n * 4); return 0;
    case DSPEX_T_F16:
        for (int64_t i = 0; i < n; i++) dst[i] = rdh(b + 2 * i);
        return 0;
    case DSPEX_T_Q8_0:
        for (int64_t i = 0; i < n / 32; i++, b += 34) {
            float d = rdh(b);
            for (int j = 0; j < 32; j++) dst[i * 32 + j] = d * (float)(int8_t)b[2 + j];
        }
        return 0;
    case DSPEX_T_Q4_0:
        for (int64_t i = 0; i < n / 32; i++, b += 18) {
            float d = rdh(b);
            for (int j = 0; j < 16; j++) {
                dst[i * 32 + j] = d * (float)((b[2 + j] & 0xF) - 8);
                dst[i * 32 + j + 16] = d * (float)((b[2 + j] >> 4) - 8);
            }
        }
        return 0;
    case DSPEX_T_Q4_1:
        for (int64_t i = 0; i < n / 32; i++, b += 20) {
            float d = rdh(b), m = rdh(b + 2);
            for (int j = 0; j < 16; j++) {
                dst[i * 32 + j] = d * (float)(b[4 + j] & 0xF) + m;
                dst[i * 32 + j + 16] = d * (float)(b[4 + j] >> 4) + m;
            }
        }
        return 0;
    case DSPEX_T_Q5_0:
    case DSPEX_T_Q5_1: {
        int one = type == DSPEX_T_Q5_1, bs = one ? 24 : 22, hoff = one ? 4 : 2;
        for (int64_t i = 0; i < n / 32; i++, b += bs) {
            float d = rdh(b), m = one ? rdh(b + 2) : 0.0f;
            uint32_t qh = (uint32_t)b[hoff] | ((uint32_t)b[hoff + 1] << 8) |
                          ((uint32_t)b[hoff + 2] << 16) | ((uint32_t)b[hoff + 3] << 24);
            const uint8_t *qs = b + hoff + 4;
            for (int j = 0; j < 16; j++) {
                int lo = (qs[j] & 0xF) | (int)(((qh >> j) & 1) << 4);
                int hi = (qs[j] >> 4) | (int)(((qh >> (j + 16)) & 1) << 4);
                dst[i * 32 + j] = one ? d * (float)lo + m : d * (float)(lo - 16);
                dst[i * 32 + j + 16] = one ? d * (float)hi + m : d * (float)(hi - 16);
            }
        }
        return 0;
    }
    case DSPEX_T_Q4_K:
        for (int64_t i = 0; i < n / 256; i++, b += 144) {
            float d = rdh(b), dmin = rdh(b + 2);
            const uint8_t *sc = b + 4, *qs = b + 16;
            float *y = dst + i * 256;
            for (int c = 0; c < 4; c++) {
                int s0, m0, s1, m1;
                q4k_scale_min(sc, 2 * c, &s0, &m0);
                q4k_scale_min(sc, 2 * c + 1, &s1, &m1);
                float d0 = d * (float)s0, mn0 = dmin * (float)m0;
                float d1 = d * (float)s1, mn1 = dmin * (float)m1;
                for (int l = 0; l < 32; l++) {
                    y[64 * c + l] = d0 * (float)(qs[32 * c + l] & 0xF) - mn0;
                    y[64 * c + 32 + l] = d1 * (float)(qs[32 * c + l] >> 4) - mn1;
                }
            }
        }
        return 0;
    case DSPEX_T_Q6_K:
        for (int64_t i = 0; i < n / 256; i++, b += 210) {
            const uint8_t *ql = b, *qh = b + 128;
            const int8_t *sc = (const int8_t *)(b + 192);
            float d = rdh(b + 208);
            float *y = dst + i * 256;
            for (int half = 0; half < 2; half++) {
                for (int l = 0; l < 32; l++) {
                    int is = l / 16;
                    int q1 = (int)((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
                    int q2 = (int)((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
                    int q3 = (int)((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                    int q4 = (int)((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                    y[l] = d * (float)sc[is + 0] * (float)q1;
                    y[l + 32] = d * (float)sc[is + 2] * (float)q2;
                    y[l + 64] = d * (float)sc[is + 4] * (float)q3;
                    y[l + 96] = d * (float)sc[is + 6] * (float)q4;
                }
                y += 128;
                ql += 64;
                qh += 32;
                sc += 8;
            }
        }
        return 0;
    case DSPEX_T_Q8_K:
        for (int64_t i = 0; i < n / 256; i++, b += 292) {
            float d;
            memcpy(&d, b, 4);
            for (int j = 0; j < 256; j++) dst[i * 256 + j] = d * (float)(int8_t)b[4 + j];
        }
        return 0;
    default: return -1;
    }
}

/* ----------------------------------------------------------------------------
 * Activation quantization, bit-exact with llama.cpp's x86 CPU backend:
 *   Q8_0/Q8_1: d = amax/127 (stored fp16), q = round-half-even(x * (127/amax));
 *              Q8_1 also stores s = fp16(d * sum(q)) with d the float value.
 *   Q8_K:      max = the element of largest |x| (first one, sign kept),
 *              iscale = -127/max, q = min(127, round-half-even(iscale*x)), d = 1/iscale
 *              as f32, bsums = sums of 16 consecutive q. */

/* Round half to even for |v| < 2^22 (here |v| <= 127.5): adding 1.5*2^23 leaves the
 * rounded integer in the low mantissa bits (ggml's nearest_int; the same result as
 * nearbyintf in the default rounding mode, without a libm call). */
static inline int round_even(float v) {
    float t = v + 12582912.f;
    int32_t i;
    memcpy(&i, &t, 4);
    return (i & 0x007FFFFF) - 0x00400000;
}

static void quantize_q8_0(const float *x, uint8_t *y, int64_t n, int with_sum) {
    int bs = with_sum ? 36 : 34, qoff = with_sum ? 4 : 2;
    for (int64_t i = 0; i < n / 32; i++, x += 32, y += bs) {
        float amax = 0.0f;
        for (int j = 0; j < 32; j++) {
            float a = fabsf(x[j]);
            if (a > amax) amax = a;
        }
        float d = amax / 127.f;
        float id = amax != 0.0f ? 127.f / amax : 0.0f;
        int sum = 0;
        for (int j = 0; j < 32; j++) {
            int q = round_even(x[j] * id);
            y[qoff + j] = (uint8_t)(int8_t)q;
            sum += q;
        }
        wr16(y, dspex_fp32_to_fp16(d));
        if (with_sum) wr16(y + 2, dspex_fp32_to_fp16(d * (float)sum));
    }
}

static void quantize_q8_k(const float *x, uint8_t *y, int64_t n) {
    for (int64_t i = 0; i < n / 256; i++, x += 256, y += 292) {
        float max = 0.0f, amax = 0.0f;
        for (int j = 0; j < 256; j++) {
            float a = fabsf(x[j]);
            if (a > amax) {
                amax = a;
                max = x[j];
            }
        }
        if (amax == 0.0f) {
            memset(y, 0, 292);
            continue;
        }
        float iscale = -127.f / max;
        int8_t *qs = (int8_t *)(y + 4);
        for (int j = 0; j < 256; j++) {
            int v = round_even(iscale * x[j]);
            qs[j] = (int8_t)(v < 127 ? v : 127);
        }
        for (int j = 0; j < 16; j++) {
            int s = 0;
            for (int k = 0; k < 16; k++) s += qs[16 * j + k];
            int16_t s16 = (int16_t)s;
            memcpy(y + 260 + 2 * j, &s16, 2);
        }
        float d = 1.0f / iscale;
        memcpy(y, &d, 4);
    }
}

void dspex_quantize_row(int type, const float *x, void *dst, int64_t n) {
    uint8_t *y = dst;
    switch (type) {
    case DSPEX_T_F32: memcpy(dst, x, (size_t)n * 4); break;
    case DSPEX_T_F16:
        for (int64_t i = 0; i < n; i++) wr16(y + 2 * i, dspex_fp32_to_fp16(x[i]));
        break;
    case DSPEX_T_Q8_0: quantize_q8_0(x, y, n, 0); break;
    case DSPEX_T_Q8_1: quantize_q8_0(x, y, n, 1); break;
    case DSPEX_T_Q8_K: quantize_q8_k(x, y, n); break;
    default: break;
    }
}

/* ----------------------------------------------------------------------------
 * Reference weight quantizers (ggml's *_ref functions' rounding), for writing models. */

int dspex_quantize_weights(int type, const float *x, void *dst, int64_t n) {
    uint8_t *y = dst;
    switch (type) {
    case DSPEX_T_F32:
    case DSPEX_T_F16: dspex_quantize_row(type, x, dst, n); return 0;
    case DSPEX_T_Q8_0:
        for (int64_t i = 0; i < n / 32; i++, x += 32, y += 34) {
            float amax = 0.0f;
            for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[j]));
            float d = amax / 127.f, id = d != 0.0f ? 1.0f / d : 0.0f;
            wr16(y, dspex_fp32_to_fp16(d));
            for (int j = 0; j < 32; j++) y[2 + j] = (uint8_t)(int8_t)roundf(x[j] * id);
        }
        return 0;
    case DSPEX_T_Q4_0:
        for (int64_t i = 0; i < n / 32; i++, x += 32, y += 18) {
            float amax = 0.0f, max = 0.0f;
            for (int j = 0; j < 32; j++)
                if (fabsf(x[j]) > amax) {
                    amax = fabsf(x[j]);
                    max = x[j];
                }
            float d = max / -8.f, id = d != 0.0f ? 1.0f / d : 0.0f;
            wr16(y, dspex_fp32_to_fp16(d));
            for (int j = 0; j < 16; j++) {
                int a = (int)(x[j] * id + 8.5f), b = (int)(x[j + 16] * id + 8.5f);
                a = a < 15 ? a : 15;
                b = b < 15 ? b : 15;
                y[2 + j] = (uint8_t)(a | (b << 4));
            }
        }
        return 0;
    case DSPEX_T_Q4_1:
        for (int64_t i = 0; i < n / 32; i++, x += 32, y += 20) {
            float mn = x[0], mx = x[0];
            for (int j = 1; j < 32; j++) {
                mn = fminf(mn, x[j]);
                mx = fmaxf(mx, x[j]);
            }
            float d = (mx - mn) / 15.f, id = d != 0.0f ? 1.0f / d : 0.0f;
            wr16(y, dspex_fp32_to_fp16(d));
            wr16(y + 2, dspex_fp32_to_fp16(mn));
            for (int j = 0; j < 16; j++) {
                int a = (int)((x[j] - mn) * id + 0.5f), b = (int)((x[j + 16] - mn) * id + 0.5f);
                a = a < 15 ? a : 15;
                b = b < 15 ? b : 15;
                y[4 + j] = (uint8_t)(a | (b << 4));
            }
        }
        return 0;
    default: return -1;
    }
}
