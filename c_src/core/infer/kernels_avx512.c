/* AVX-512 VNNI kernels (x86-64), selected at run time by dspex_kernels_select when CPUID
 * reports AVX-512 F/BW/VL with VNNI and the OS saves the AVX-512 state. They fill the
 * AVX2 table first and replace the Q8_0, Q4_0 and Q4_1 dot and tile kernels.
 *
 * VNNI's vpdpbusd adds four u8 x s8 products per 32-bit lane in one instruction, without
 * the 16-bit intermediate that forces AVX2's sign trick. Signed weights are made unsigned
 * by an offset (Q8_0: w + 128, Q4_0: the raw nibble, w + 8) and the offset's share,
 * offset * (sum of the 4 activation bytes), is the lane's starting value, subtracted
 * exactly: every 32-bit lane equals the AVX2 kernels' lane. The vectors stay 256 bits
 * wide (AVX512VL encoding), so the float order is the AVX2 one too and all three tables
 * (scalar aside) give equal bits; at this width Zen 4 runs the same work as with 512-bit
 * vectors (it splits those in two), and the 32 vector registers hold larger tiles.
 * A 512-bit variant for cores with two full-width FMA ports is not written: this
 * project's machines cannot measure it. */
#include "dspex/infer/kernels.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni"))),          \
                             apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")
#endif

#include <immintrin.h>
#include <string.h>

static inline float h2f(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}

static inline float hsum_ps(__m256 v) { /* the AVX2 file's reduction, step for step */
    __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
    lo = _mm_add_ps(lo, hi);
    lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
    lo = _mm_add_ss(lo, _mm_movehdup_ps(lo));
    return _mm_cvtss_f32(lo);
}

static inline __m256i nibbles32(const uint8_t *qs) {
    __m128i t = _mm_loadu_si128((const __m128i *)qs);
    __m256i b = _mm256_set_m128i(_mm_srli_epi16(t, 4), t);
    return _mm256_and_si256(b, _mm256_set1_epi8(0x0F));
}

/* minus k * (sum of each 4 activation bytes): the lane start that cancels offset k */
static inline __m256i neg_offset(__m256i y, char k) {
    return _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_set1_epi8(k), y));
}

typedef __m256i wq8; /* w + 128 as unsigned bytes */
typedef struct {
    __m256i y, off; /* activations; -128 * their 4-byte sums */
} yq8;
static inline wq8 wq8_prep(__m256i w) { return _mm256_xor_si256(w, _mm256_set1_epi8((char)0x80)); }
static inline yq8 yq8_prep(__m256i y) { return (yq8){y, neg_offset(y, (char)0x80)}; }
static inline __m256i lanes_q8(wq8 u, yq8 y) { return _mm256_dpbusd_epi32(y.off, u, y.y); }

typedef __m256i wq4; /* the nibble = w + 8 */
typedef yq8 yq4;     /* activations; -8 * their 4-byte sums */
static inline wq4 wq4_prep(__m256i nib) { return nib; }
static inline yq4 yq4_prep(__m256i y) { return (yq4){y, neg_offset(y, 8)}; }
static inline __m256i lanes_q4(wq4 u, yq4 y) { return _mm256_dpbusd_epi32(y.off, u, y.y); }

static inline __m256i lanes_u8(__m256i u, __m256i y) { return _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, y); }

#define KT_RM 4 /* 32 vector registers: 4 x 4 accumulators plus the operands */
#define KT_RN 4
#include "kernels_gemm.inc"
KT_DOT(vdot_q8_0, mk_q8_0)
KT_DOT(vdot_q4_0, mk_q4_0)

/* Q4_1's decode kernel spelled out like the AVX2 one (one conversion for the four block
 * constants); its 1 x 1 tile measured 20-40% slower. */
static float vdot_q4_1(int64_t n, const void *w, const void *x) {
    const uint8_t *a = w, *b = x;
    __m256 acc = _mm256_setzero_ps();
    float summ = 0.0f;
    for (int64_t i = 0; i < n / 32; i++, a += 20, b += 36) {
        uint32_t cw, cx;
        memcpy(&cw, a, 4);
        memcpy(&cx, b, 4);
        __m128 c = _mm_cvtph_ps(_mm_setr_epi32((int)cw, (int)cx, 0, 0)); /* [d_w, m_w, d_x, s_x] */
        __m128 p = _mm_mul_ps(c, _mm_movehl_ps(c, c));
        summ += _mm_cvtss_f32(_mm_movehdup_ps(p));
        __m256i d0 = lanes_u8(nibbles32(a + 4), _mm256_loadu_si256((const __m256i *)(b + 4)));
        acc = _mm256_fmadd_ps(_mm256_broadcastss_ps(p), _mm256_cvtepi32_ps(d0), acc);
    }
    return hsum_ps(acc) + summ;
}
KT_GEMM(gemm_q8_0, mk_q8_0, vdot_q8_0)
KT_GEMM(gemm_q4_0, mk_q4_0, vdot_q4_0)
KT_GEMM(gemm_q4_1, mk_q4_1, vdot_q4_1)

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

void dspex_kernels_fill_avx512(dspex_kernels *k) {
    k->isa = "avx512vnni";
    k->dot[DSPEX_T_Q8_0] = vdot_q8_0;
    k->dot[DSPEX_T_Q4_0] = vdot_q4_0;
    k->dot[DSPEX_T_Q4_1] = vdot_q4_1;
    k->gemm[DSPEX_T_Q8_0] = gemm_q8_0;
    k->gemm[DSPEX_T_Q4_0] = gemm_q4_0;
    k->gemm[DSPEX_T_Q4_1] = gemm_q4_1;
}

#else

void dspex_kernels_fill_avx512(dspex_kernels *k) { (void)k; }

#endif
