/* AVX2 + FMA + F16C kernels (x86-64), selected at run time by dspex_kernels_select when
 * CPUID reports all three. The file is compiled for the baseline ISA; only the functions
 * below carry the AVX2 target (pragmas), so the library still loads on older CPUs.
 * Integer block sums are exact, as in the scalar kernels; only the order of the float
 * accumulation differs (8 lanes, reduced at the end). */
#include "dspex/infer/kernels.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")
#endif

#include <immintrin.h>
#include <string.h>

static inline float h2f(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}

static inline float hsum_ps(__m256 v) {
    __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
    lo = _mm_add_ps(lo, hi);
    lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
    lo = _mm_add_ss(lo, _mm_movehdup_ps(lo));
    return _mm_cvtss_f32(lo);
}

static inline __m256i ones16(void) { return _mm256_set1_epi16(1); }

/* 8 int32 partial sums of x.y for 32 signed bytes each (the sign trick: |x| * sign(y,x)). */
static inline __m256i dot_s8(__m256i x, __m256i y) {
    __m256i ax = _mm256_sign_epi8(x, x), sy = _mm256_sign_epi8(y, x);
    return _mm256_madd_epi16(_mm256_maddubs_epi16(ax, sy), ones16());
}

/* 8 int32 partial sums of u.y for 32 unsigned bytes u (< 128) and signed y. */
static inline __m256i dot_u8(__m256i u, __m256i y) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, y), ones16());
}

/* 32 nibbles of a 32-element block: low nibbles of 16 bytes, then the high nibbles. */
static inline __m256i nibbles32(const uint8_t *qs) {
    __m128i t = _mm_loadu_si128((const __m128i *)qs);
    __m256i b = _mm256_set_m128i(_mm_srli_epi16(t, 4), t);
    return _mm256_and_si256(b, _mm256_set1_epi8(0x0F));
}

/* Byte j = 0xFF when bit j of the 32-bit word is set. */
static inline __m256i bits_to_bytes(uint32_t bits) {
    const __m256i shuf = _mm256_setr_epi64x(0x0000000000000000LL, 0x0101010101010101LL,
                                            0x0202020202020202LL, 0x0303030303030303LL);
    __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32((int)bits), shuf);
    const __m256i mask = _mm256_set1_epi64x((long long)0x8040201008040201ULL);
    return _mm256_cmpeq_epi8(_mm256_and_si256(v, mask), mask);
}

#if defined(__clang__)
#define KT_UNROLL4 _Pragma("clang loop unroll(full)")
#else
#define KT_UNROLL4 _Pragma("GCC unroll 4")
#endif

static inline uint32_t rd32(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* ---------------------------------------------------------------------------- float */

static float dot_f32(int64_t n, const float *a, const float *b) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
    }
    for (; i + 8 <= n; i += 8) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    float s = hsum_ps(_mm256_add_ps(s0, s1));
    for (; i < n; i++) s += a[i] * b[i];
    return s;
}

static void axpy_f32(int64_t n, float a, const float *x, float *y) {
    __m256 va = _mm256_set1_ps(a);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    for (; i < n; i++) y[i] += a * x[i];
}

static float vdot_f32(int64_t n, const void *w, const void *x) { return dot_f32(n, w, x); }

static float vdot_f16(int64_t n, const void *w, const void *x) {
    const uint16_t *a = w, *b = x;
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256 a0 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(a + i)));
        __m256 b0 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(b + i)));
        __m256 a1 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(a + i + 8)));
        __m256 b1 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(b + i + 8)));
        s0 = _mm256_fmadd_ps(a0, b0, s0);
        s1 = _mm256_fmadd_ps(a1, b1, s1);
    }
    float s = hsum_ps(_mm256_add_ps(s0, s1));
    for (; i < n; i++) s += _cvtsh_ss(a[i]) * _cvtsh_ss(b[i]);
    return s;
}

/* ---------------------------------------------------------------- 32-element blocks */

/* The 32-element kernels follow llama.cpp's AVX2 kernels' float order exactly: one
 * 8-lane accumulator, acc = fma(d_w * d_x, lane sums, acc) block after block, then the
 * same horizontal sum (Q4_1/Q5_1: plus a scalar running sum of m_w * s_x). With equal
 * integer lanes this reproduces llama.cpp's dot products bit for bit, so the activation
 * re-quantization of the next layer sees the same values and no rounding "flip" starts.
 * (A second accumulator is ~10% faster and loses that; measured on the test models.) */

static float vdot_q8_0(int64_t n, const void *w, const void *x) {
    const uint8_t *a = w, *b = x;
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / 32; i++, a += 34, b += 34) {
        __m256i d0 = dot_s8(_mm256_loadu_si256((const __m256i *)(a + 2)), _mm256_loadu_si256((const __m256i *)(b + 2)));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(h2f(a) * h2f(b)), _mm256_cvtepi32_ps(d0), acc);
    }
    return hsum_ps(acc);
}

static float vdot_q4_0(int64_t n, const void *w, const void *x) {
    const uint8_t *a = w, *b = x;
    __m256 acc = _mm256_setzero_ps();
    const __m256i off = _mm256_set1_epi8(8);
    for (int64_t i = 0; i < n / 32; i++, a += 18, b += 34) {
        __m256i d0 = dot_s8(_mm256_sub_epi8(nibbles32(a + 2), off), _mm256_loadu_si256((const __m256i *)(b + 2)));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(h2f(a) * h2f(b)), _mm256_cvtepi32_ps(d0), acc);
    }
    return hsum_ps(acc);
}

static float vdot_q4_1(int64_t n, const void *w, const void *x) {
    const uint8_t *a = w, *b = x;
    __m256 acc = _mm256_setzero_ps();
    float summ = 0.0f;
    for (int64_t i = 0; i < n / 32; i++, a += 20, b += 36) {
        /* one conversion for the four block constants [d_w, m_w, d_x, s_x]; the products
         * d_w*d_x and m_w*s_x are the same floats llama.cpp forms one at a time */
        __m128 c = _mm_cvtph_ps(_mm_setr_epi32((int)rd32(a), (int)rd32(b), 0, 0));
        __m128 p = _mm_mul_ps(c, _mm_movehl_ps(c, c));
        summ += _mm_cvtss_f32(_mm_movehdup_ps(p));
        __m256i d0 = dot_u8(nibbles32(a + 4), _mm256_loadu_si256((const __m256i *)(b + 4)));
        acc = _mm256_fmadd_ps(_mm256_broadcastss_ps(p), _mm256_cvtepi32_ps(d0), acc);
    }
    return hsum_ps(acc) + summ;
}

static float vdot_q5_0(int64_t n, const void *w, const void *x) {
    const uint8_t *a = w, *b = x;
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / 32; i++, a += 22, b += 34) {
        __m256i hb = _mm256_andnot_si256(bits_to_bytes(rd32(a + 2)), _mm256_set1_epi8((char)0xF0));
        __m256i qa = _mm256_or_si256(nibbles32(a + 6), hb); /* nibble - 16 when bit is clear */
        __m256i qb = _mm256_loadu_si256((const __m256i *)(b + 2));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(h2f(a) * h2f(b)), _mm256_cvtepi32_ps(dot_s8(qa, qb)), acc);
    }
    return hsum_ps(acc);
}

static float vdot_q5_1(int64_t n, const void *w, const void *x) {
    const uint8_t *a = w, *b = x;
    __m256 acc = _mm256_setzero_ps();
    float summ = 0.0f;
    for (int64_t i = 0; i < n / 32; i++, a += 24, b += 36) {
        __m256i hb = _mm256_and_si256(bits_to_bytes(rd32(a + 4)), _mm256_set1_epi8(0x10));
        __m256i qa = _mm256_or_si256(nibbles32(a + 8), hb);
        __m256i qb = _mm256_loadu_si256((const __m256i *)(b + 4));
        __m128 c = _mm_cvtph_ps(_mm_setr_epi32((int)rd32(a), (int)rd32(b), 0, 0)); /* [d_w, m_w, d_x, s_x] */
        __m128 p = _mm_mul_ps(c, _mm_movehl_ps(c, c));
        summ += _mm_cvtss_f32(_mm_movehdup_ps(p));
        acc = _mm256_fmadd_ps(_mm256_broadcastss_ps(p), _mm256_cvtepi32_ps(dot_u8(qa, qb)), acc);
    }
    return hsum_ps(acc) + summ;
}

/* ----------------------------------------------------------------------- K-quants */

/* K-quants, again in llama.cpp's AVX2 order: integer lanes per block, then one fma per
 * block into an 8-lane accumulator. Q4_K keeps its min terms in a 4-lane accumulator
 * (lane i: mins 2i and 2i+1 times their pairs of 16-element sums); Q6_K subtracts its
 * "-32" offset lane by lane before the fma. */

static float vdot_q4_k(int64_t n, const void *w, const void *x) {
    const uint8_t *a = w, *b = x;
    __m256 acc = _mm256_setzero_ps();
    __m128 acc_m = _mm_setzero_ps();
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    for (int64_t i = 0; i < n / 256; i++, a += 144, b += 292) {
        const uint8_t *sc = a + 4, *qs = a + 16;
        const int8_t *q8 = (const int8_t *)(b + 4);
        float dx;
        memcpy(&dx, b, 4);
        const float d = dx * h2f(a), dmin = -dx * h2f(a + 2);
        /* the 12 scale bytes unpacked to 8 six-bit scales (bytes 0-7) and mins (8-15) */
        uint32_t u[4];
        memcpy(u, sc, 12);
        u[3] = ((u[2] >> 4) & 0x0F0F0F0Fu) | (((u[1] >> 6) & 0x03030303u) << 4);
        uint32_t mins_lo = u[1] & 0x3F3F3F3Fu;
        u[1] = (u[2] & 0x0F0F0F0Fu) | (((u[0] >> 6) & 0x03030303u) << 4);
        u[2] = mins_lo;
        u[0] &= 0x3F3F3F3Fu;
        __m256i ms = _mm256_cvtepu8_epi16(_mm_setr_epi32((int)u[0], (int)u[1], (int)u[2], (int)u[3]));
        __m128i sc128 = _mm256_castsi256_si128(ms);
        __m256i scales = _mm256_set_m128i(sc128, sc128);
        /* mins: 8 pair sums of the 16 bsums, times the 8 mins, pairwise into 4 lanes */
        __m128i b_lo = _mm_loadu_si128((const __m128i *)(b + 260)), b_hi = _mm_loadu_si128((const __m128i *)(b + 276));
        __m128i prod = _mm_madd_epi16(_mm256_extracti128_si256(ms, 1), _mm_hadd_epi16(b_lo, b_hi));
        acc_m = _mm_fmadd_ps(_mm_set1_ps(dmin), _mm_cvtepi32_ps(prod), acc_m);
        __m256i sumi = _mm256_setzero_si256();
        KT_UNROLL4 for (int c = 0; c < 4; c++) {
            /* broadcast 16-bit scales 2c and 2c+1 */
            __m256i sl = _mm256_shuffle_epi8(scales, _mm256_set1_epi16((short)(((4 * c + 1) << 8) | (4 * c))));
            __m256i sh = _mm256_shuffle_epi8(scales, _mm256_set1_epi16((short)(((4 * c + 3) << 8) | (4 * c + 2))));
            __m256i q4 = _mm256_loadu_si256((const __m256i *)(qs + 32 * c));
            __m256i lo = _mm256_and_si256(q4, m4), hi = _mm256_and_si256(_mm256_srli_epi16(q4, 4), m4);
            __m256i y0 = _mm256_loadu_si256((const __m256i *)(q8 + 64 * c));
            __m256i y1 = _mm256_loadu_si256((const __m256i *)(q8 + 64 * c + 32));
            __m256i p0 = _mm256_madd_epi16(sl, _mm256_maddubs_epi16(lo, y0));
            __m256i p1 = _mm256_madd_epi16(sh, _mm256_maddubs_epi16(hi, y1));
            sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p0, p1));
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    }
    acc_m = _mm_add_ps(acc_m, _mm_movehl_ps(acc_m, acc_m));
    acc_m = _mm_add_ss(acc_m, _mm_movehdup_ps(acc_m));
    return hsum_ps(acc) + _mm_cvtss_f32(acc_m);
}

/* Shuffle masks selecting scale bytes (2j, 2j+1) of a Q6_K block: 8 copies of each. */
static const uint8_t k_q6_pick[8][16] = {
    {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1},         {2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3},
    {4, 4, 4, 4, 4, 4, 4, 4, 5, 5, 5, 5, 5, 5, 5, 5},         {6, 6, 6, 6, 6, 6, 6, 6, 7, 7, 7, 7, 7, 7, 7, 7},
    {8, 8, 8, 8, 8, 8, 8, 8, 9, 9, 9, 9, 9, 9, 9, 9},         {10, 10, 10, 10, 10, 10, 10, 10, 11, 11, 11, 11, 11, 11, 11, 11},
    {12, 12, 12, 12, 12, 12, 12, 12, 13, 13, 13, 13, 13, 13, 13, 13}, {14, 14, 14, 14, 14, 14, 14, 14, 15, 15, 15, 15, 15, 15, 15, 15}};

static float vdot_q6_k(int64_t n, const void *w, const void *x) {
    const uint8_t *a = w, *b = x;
    __m256 acc = _mm256_setzero_ps();
    const __m256i m4 = _mm256_set1_epi8(0x0F), m2 = _mm256_set1_epi8(0x03);
    const __m256i m12 = _mm256_set1_epi8(0x0C), m48 = _mm256_set1_epi8(0x30), m192 = _mm256_set1_epi8((char)0xC0);
    for (int64_t i = 0; i < n / 256; i++, a += 210, b += 292) {
        const uint8_t *ql = a, *qh = a + 128;
        const int8_t *q8 = (const int8_t *)(b + 4);
        float dx;
        memcpy(&dx, b, 4);
        const float d = dx * h2f(a + 208);
        /* the -32 offset: 32 * (bsum . scale), pairwise into the same 8 lanes */
        __m128i scales8 = _mm_loadu_si128((const __m128i *)(a + 192));
        __m256i bs = _mm256_loadu_si256((const __m256i *)(b + 260));
        __m256i offset = _mm256_slli_epi32(_mm256_madd_epi16(bs, _mm256_cvtepi8_epi16(scales8)), 5);
        __m256i sumi = _mm256_setzero_si256();
        KT_UNROLL4 for (int h = 0; h < 2; h++) {
            __m256i la = _mm256_loadu_si256((const __m256i *)(ql + 64 * h));
            __m256i lb = _mm256_loadu_si256((const __m256i *)(ql + 64 * h + 32));
            __m256i hv = _mm256_loadu_si256((const __m256i *)(qh + 32 * h));
            /* 6-bit values: low nibbles from ql, two high bits from qh moved to bits 4-5 */
            __m256i q0 = _mm256_or_si256(_mm256_and_si256(la, m4), _mm256_slli_epi16(_mm256_and_si256(hv, m2), 4));
            __m256i q1 = _mm256_or_si256(_mm256_and_si256(lb, m4), _mm256_slli_epi16(_mm256_and_si256(hv, m12), 2));
            __m256i q2 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(la, 4), m4), _mm256_and_si256(hv, m48));
            __m256i q3 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(lb, 4), m4),
                                         _mm256_srli_epi16(_mm256_and_si256(hv, m192), 2));
            const int8_t *y = q8 + 128 * h;
            const __m128i *pick = (const __m128i *)k_q6_pick[4 * h];
            __m256i p0 = _mm256_madd_epi16(_mm256_cvtepi8_epi16(_mm_shuffle_epi8(scales8, _mm_loadu_si128(pick + 0))),
                                           _mm256_maddubs_epi16(q0, _mm256_loadu_si256((const __m256i *)y)));
            __m256i p1 = _mm256_madd_epi16(_mm256_cvtepi8_epi16(_mm_shuffle_epi8(scales8, _mm_loadu_si128(pick + 1))),
                                           _mm256_maddubs_epi16(q1, _mm256_loadu_si256((const __m256i *)(y + 32))));
            __m256i p2 = _mm256_madd_epi16(_mm256_cvtepi8_epi16(_mm_shuffle_epi8(scales8, _mm_loadu_si128(pick + 2))),
                                           _mm256_maddubs_epi16(q2, _mm256_loadu_si256((const __m256i *)(y + 64))));
            __m256i p3 = _mm256_madd_epi16(_mm256_cvtepi8_epi16(_mm_shuffle_epi8(scales8, _mm_loadu_si128(pick + 3))),
                                           _mm256_maddubs_epi16(q3, _mm256_loadu_si256((const __m256i *)(y + 96))));
            sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p0, p1));
            sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p2, p3));
        }
        sumi = _mm256_sub_epi32(sumi, offset);
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    }
    return hsum_ps(acc);
}

/* ----------------------------------------------------------------------- tiles */

/* Integer lanes for kernels_gemm.inc, with AVX2's sign trick (maddubs needs one unsigned
 * operand): |w| times y carrying w's sign. */
typedef struct {
    __m256i w, aw; /* signed values and their magnitudes */
} wq8;
typedef __m256i yq8;
static inline wq8 wq8_prep(__m256i w) { return (wq8){w, _mm256_sign_epi8(w, w)}; }
static inline yq8 yq8_prep(__m256i y) { return y; }
static inline __m256i lanes_q8(wq8 w, yq8 y) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(w.aw, _mm256_sign_epi8(y, w.w)), ones16());
}
typedef wq8 wq4;
typedef yq8 yq4;
static inline wq4 wq4_prep(__m256i nib) { return wq8_prep(_mm256_sub_epi8(nib, _mm256_set1_epi8(8))); }
static inline yq4 yq4_prep(__m256i y) { return y; }
static inline __m256i lanes_q4(wq4 w, yq4 y) { return lanes_q8(w, y); }
static inline __m256i lanes_u8(__m256i u, __m256i y) { return dot_u8(u, y); }

#define KT_RM 2 /* 16 ymm registers: 2 x 4 accumulators plus the operands */
#define KT_RN 4
#include "kernels_gemm.inc"
KT_GEMM(gemm_q8_0, mk_q8_0, vdot_q8_0)
KT_GEMM(gemm_q4_0, mk_q4_0, vdot_q4_0)
KT_GEMM(gemm_q4_1, mk_q4_1, vdot_q4_1)

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

void dspex_kernels_fill_avx2(dspex_kernels *k) {
    k->isa = "avx2";
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
    k->gemm[DSPEX_T_Q8_0] = gemm_q8_0;
    k->gemm[DSPEX_T_Q4_0] = gemm_q4_0;
    k->gemm[DSPEX_T_Q4_1] = gemm_q4_1;
}

#else

void dspex_kernels_fill_avx2(dspex_kernels *k) { (void)k; }

#endif
