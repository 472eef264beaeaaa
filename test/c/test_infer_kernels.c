/* Kernel tables: every table this CPU runs (scalar, AVX2, AVX-512 VNNI, whichever are
 * present) against each other and against the tile kernels. A tile kernel must equal its
 * own table's dot product bit for bit for every tile shape (full tiles, leftover rows and
 * columns, decode's single column); the VNNI table must equal the AVX2 table bit for bit
 * (same integer lanes, same float order); scalar and SIMD agree to float rounding.
 * (Forcing a level needs DSPEX_SIMD unset; `make ctest` also reruns the inference tests
 * with DSPEX_SIMD=0 and DSPEX_SIMD=avx2.) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctest.h"
#include "dspex/infer/kernels.h"
#include "test_infer_gguf_writer.h"

static const int k_types[] = {DSPEX_T_F32, DSPEX_T_F16, DSPEX_T_Q8_0, DSPEX_T_Q4_0, DSPEX_T_Q4_1,
                              DSPEX_T_Q5_0, DSPEX_T_Q5_1, DSPEX_T_Q4_K, DSPEX_T_Q6_K};

/* nr weight rows and nc activation rows of n elements, random but with sane scales */
typedef struct {
    int ty, vt, n, nr, nc;
    size_t wrow, xrow;
    uint8_t *w, *x;
} mats;

static int mats_new(mats *m, int ty, int n, int nr, int nc, uint64_t *seed) {
    m->ty = ty, m->vt = dspex_vec_dot_type(ty), m->n = n, m->nr = nr, m->nc = nc;
    m->wrow = dspex_row_bytes(ty, n), m->xrow = dspex_row_bytes(m->vt, n);
    m->w = malloc(m->wrow * (size_t)nr);
    m->x = malloc(m->xrow * (size_t)nc);
    float *f = malloc(sizeof(float) * (size_t)n);
    if (!m->w || !m->x || !f) {
        free(m->w), free(m->x), free(f);
        return -1;
    }
    for (int r = 0; r < nr; r++) {
        uint8_t *wr = m->w + (size_t)r * m->wrow;
        for (int i = 0; i < n; i++) f[i] = gw_rand(seed);
        if (dspex_quantize_weights(ty, f, wr, n) != 0) { /* no quantizer: random blocks, fp16 scales */
            for (size_t i = 0; i < m->wrow; i++) wr[i] = (uint8_t)(gw_rand(seed) * 127 + 128);
            size_t bs = (size_t)dspex_type(ty)->bytes;
            for (size_t b = 0; b < m->wrow / bs; b++) {
                uint16_t d = dspex_fp32_to_fp16(0.01f + 0.002f * (float)(b % 3));
                memcpy(wr + b * bs + (ty == DSPEX_T_Q6_K ? 208 : 0), &d, 2);
                if (ty == DSPEX_T_Q5_1 || ty == DSPEX_T_Q4_K) memcpy(wr + b * bs + 2, &d, 2);
            }
        }
    }
    for (int c = 0; c < nc; c++) {
        for (int i = 0; i < n; i++) f[i] = gw_rand(seed) * (float)(1 + c % 3);
        if (m->vt == DSPEX_T_F32)
            memcpy(m->x + (size_t)c * m->xrow, f, sizeof(float) * (size_t)n);
        else
            dspex_quantize_row(m->vt, f, m->x + (size_t)c * m->xrow, n);
    }
    free(f);
    return 0;
}

static void mats_free(mats *m) { free(m->w), free(m->x); }

/* y[c * nr + r] through the table's tile kernel when it has one, else its dot */
static void product(const dspex_kernels *k, const mats *m, float *y) {
    if (k->gemm[m->ty]) {
        k->gemm[m->ty](m->n, m->w, m->wrow, m->nr, m->x, m->xrow, m->nc, y, m->nr);
        return;
    }
    for (int r = 0; r < m->nr; r++)
        for (int c = 0; c < m->nc; c++)
            y[c * m->nr + r] = k->dot[m->ty](m->n, m->w + (size_t)r * m->wrow, m->x + (size_t)c * m->xrow);
}

CTEST(tile_kernels_equal_their_dot_products_for_every_shape) {
    int top = dspex_simd_level(1);
    uint64_t seed = 11;
    for (int level = 1; level <= top; level++) {
        dspex_kernels k;
        dspex_kernels_fill_scalar(&k);
        dspex_kernels_fill_avx2(&k);
        if (level == 2) dspex_kernels_fill_avx512(&k);
        for (size_t t = 0; t < sizeof(k_types) / sizeof(k_types[0]); t++) {
            int ty = k_types[t];
            if (!k.gemm[ty]) continue;
            for (int nr = 1; nr <= 9; nr++)
                for (int nc = 1; nc <= 10; nc++) {
                    mats m;
                    CHECK(mats_new(&m, ty, nr % 2 ? 96 : 576, nr, nc, &seed) == 0);
                    float *y = calloc((size_t)nr * nc, sizeof(float));
                    CHECK(y != NULL);
                    if (!y) continue;
                    k.gemm[ty](m.n, m.w, m.wrow, nr, m.x, m.xrow, nc, y, nr);
                    int same = 1;
                    for (int r = 0; r < nr; r++)
                        for (int c = 0; c < nc; c++) {
                            float d = k.dot[ty](m.n, m.w + (size_t)r * m.wrow, m.x + (size_t)c * m.xrow);
                            same &= memcmp(&d, &y[c * nr + r], sizeof(float)) == 0;
                        }
                    if (!same) fprintf(stderr, "  %s type %d tile %dx%d differs from dot\n", k.isa, ty, nr, nc);
                    CHECK(same);
                    free(y);
                    mats_free(&m);
                }
        }
    }
}

CTEST(simd_tables_agree_with_each_other_and_with_scalar) {
    int top = dspex_simd_level(1);
    if (top == 0) {
        fprintf(stderr, "  (scalar only on this CPU or DSPEX_SIMD: nothing to compare)\n");
        return;
    }
    dspex_kernels ks, k2, k3;
    dspex_kernels_fill_scalar(&ks);
    dspex_kernels_fill_scalar(&k2);
    dspex_kernels_fill_avx2(&k2);
    k3 = k2;
    if (top == 2) dspex_kernels_fill_avx512(&k3);
    uint64_t seed = 5;
    for (size_t t = 0; t < sizeof(k_types) / sizeof(k_types[0]); t++) {
        int ty = k_types[t];
        mats m;
        CHECK(mats_new(&m, ty, 512, 7, 9, &seed) == 0);
        size_t ny = (size_t)m.nr * m.nc;
        float *a = malloc(ny * sizeof(float)), *b = malloc(ny * sizeof(float)), *c = malloc(ny * sizeof(float));
        CHECK(a && b && c);
        if (a && b && c) {
            product(&ks, &m, a);
            product(&k2, &m, b);
            product(&k3, &m, c);
            CHECK(memcmp(b, c, ny * sizeof(float)) == 0); /* VNNI = AVX2, bit for bit */
            for (size_t i = 0; i < ny; i++) {
                double tol = 1e-4 * (fabs(a[i]) + 1.0);
                if (dspex_vec_dot_type(ty) == DSPEX_T_Q8_1) tol = 1e-3 * (fabs(a[i]) + 1.0);
                if (fabs(a[i] - b[i]) > tol) {
                    fprintf(stderr, "  type %d: scalar %g simd %g\n", ty, a[i], b[i]);
                    CHECK(0);
                    break;
                }
            }
        }
        free(a), free(b), free(c);
        mats_free(&m);
    }
}

CTEST(simd_level_follows_the_cpu_and_the_cap) {
    int have = dspex_cpu_has_avx512vnni() ? 2 : dspex_cpu_has_avx2() ? 1 : 0;
    CHECK(dspex_simd_level(0) == 0);
    CHECK(dspex_simd_level(1) <= have);
    dspex_kernels k;
    dspex_kernels_select(&k, 0);
    CHECK(strcmp(k.isa, "scalar") == 0);
    for (int t = 0; t < DSPEX_T_COUNT; t++) CHECK(k.gemm[t] == NULL); /* the reference path: one dot per pair */
    dspex_kernels_select(&k, 1);
    const char *want = dspex_simd_level(1) == 2 ? "avx512vnni" : dspex_simd_level(1) == 1 ? "avx2" : "scalar";
    CHECK(strcmp(k.isa, want) == 0);
}

int main(void) { return ctest_run(); }
