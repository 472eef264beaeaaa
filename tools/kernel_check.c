/* kernel_check: our activation quantizers and dot kernels against llama.cpp's own, called
 * through the prebuilt CPU backend of node-llama-cpp 3.22.1 (llama.cpp v0.5.0): equal
 * bits, and the time per call (a row of 2304 elements).
 *
 *   R=_build/gguf-ref; L=$R/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64
 *   cc -O2 -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -Iinclude -Ic_src/core \
 *      tools/kernel_check.c c_src/core/infer/quant.c c_src/core/infer/kernels*.c -o _build/kernel_check -ldl -lm
 *   _build/kernel_check $L/libggml-base.so $L/libggml-cpu-haswell.so [$L/libggml-cpu-zen4.so]
 *
 * The haswell backend is llama.cpp's AVX2 build, the same instruction set as our AVX2
 * table; bits are compared against it for our AVX2 table and, where the CPU has it, our
 * AVX-512 VNNI table (same integer lanes and float order). The optional third library
 * (llama.cpp's AVX-512 build, the one it picks on a Zen 4 or Sapphire Rapids machine) is
 * timed only: its float order differs. "tile" is our gemm kernel's time per weight row
 * and activation row when multiplying by 32 activation rows at once (prefill). */
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dspex/infer/kernels.h"

typedef void (*ggml_dot)(int n, float *s, size_t bs, const void *x, size_t bx, const void *y, size_t by, int nrc);
typedef void (*ggml_quant)(const float *x, void *y, int64_t k);

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static uint64_t seed = 88172645463325252ull;
static float frand(void) {
    seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
    return (float)(seed >> 40) / 8388608.0f - 1.0f;
}

static double best_ns(double (*run)(void *), void *ctx) {
    double best = 1e9;
    for (int round = 0; round < 5; round++) { /* best of 5 (the machine is shared) */
        double t = run(ctx);
        if (t < best) best = t;
    }
    return best * 1e9;
}

typedef struct {
    dspex_vec_dot_fn ours;
    dspex_gemm_fn tile;
    ggml_dot theirs;
    int n;
    const uint8_t *w, *x;
    size_t wb, xb;
    int iters;
} timing;

static volatile float sink;

static double run_ours(void *p) {
    timing *t = p;
    double t0 = now();
    for (int i = 0; i < t->iters; i++) sink += t->ours(t->n, t->w, t->x);
    return (now() - t0) / t->iters;
}

static double run_theirs(void *p) {
    timing *t = p;
    double t0 = now();
    for (int i = 0; i < t->iters; i++) {
        float g;
        t->theirs(t->n, &g, 0, t->w, 0, t->x, 0, 1);
        sink += g;
    }
    return (now() - t0) / t->iters;
}

enum { TILE_ROWS = 8, TILE_COLS = 32 };

static double run_tile(void *p) { /* w: TILE_ROWS rows, x: TILE_COLS rows */
    timing *t = p;
    float y[TILE_ROWS * TILE_COLS];
    int reps = t->iters / (TILE_ROWS * TILE_COLS) + 1;
    double t0 = now();
    for (int i = 0; i < reps; i++) {
        t->tile(t->n, t->w, t->wb, TILE_ROWS, t->x, t->xb, TILE_COLS, y, TILE_ROWS);
        sink += y[i % (TILE_ROWS * TILE_COLS)];
    }
    return (now() - t0) / reps / (TILE_ROWS * TILE_COLS);
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s libggml-base.so libggml-cpu-haswell.so [libggml-cpu-zen4.so]\n", argv[0]);
        return 2;
    }
    if (!dlopen(argv[1], RTLD_NOW | RTLD_GLOBAL)) {
        fprintf(stderr, "%s\n", dlerror());
        return 2;
    }
    void *cpu = dlopen(argv[2], RTLD_NOW | RTLD_LOCAL);
    if (!cpu) {
        fprintf(stderr, "%s\n", dlerror());
        return 2;
    }
    void (*cpu_init)(void) = (void (*)(void))dlsym(cpu, "ggml_cpu_init"); /* fills its fp16 tables */
    if (cpu_init) cpu_init();
    void *cpu2 = argc > 3 ? dlopen(argv[3], RTLD_NOW | RTLD_LOCAL) : NULL;
    if (argc > 3 && !cpu2) fprintf(stderr, "%s (timing without it)\n", dlerror());
    if (cpu2) {
        void (*init2)(void) = (void (*)(void))dlsym(cpu2, "ggml_cpu_init");
        if (init2) init2();
    }
    dspex_kernels k2, k3;
    dspex_kernels_fill_scalar(&k2);
    dspex_kernels_fill_avx2(&k2);
    k3 = k2;
    int have512 = dspex_simd_level(1) >= 2;
    if (have512) dspex_kernels_fill_avx512(&k3);
    const struct {
        int type;
        const char *dot, *quant;
    } cases[] = {{DSPEX_T_Q4_0, "ggml_vec_dot_q4_0_q8_0", "quantize_row_q8_0"},
                 {DSPEX_T_Q4_1, "ggml_vec_dot_q4_1_q8_1", "quantize_row_q8_1"},
                 {DSPEX_T_Q5_0, "ggml_vec_dot_q5_0_q8_0", "quantize_row_q8_0"},
                 {DSPEX_T_Q5_1, "ggml_vec_dot_q5_1_q8_1", "quantize_row_q8_1"},
                 {DSPEX_T_Q8_0, "ggml_vec_dot_q8_0_q8_0", "quantize_row_q8_0"},
                 {DSPEX_T_Q4_K, "ggml_vec_dot_q4_K_q8_K", "quantize_row_q8_K"},
                 {DSPEX_T_Q6_K, "ggml_vec_dot_q6_K_q8_K", "quantize_row_q8_K"}};
    int bad = 0;
    printf("ours: avx2%s; llama.cpp: %s%s%s\n", have512 ? " and avx512vnni" : "", argv[2], cpu2 ? " and " : "",
           cpu2 ? argv[3] : "");
    printf("%-24s %-11s %-14s | ns per %d-element row: ours avx2, ours avx512vnni, ours tile, llama.cpp %s\n",
           "kernel", "activations", "dot", 256 * 9, cpu2 ? "avx2, llama.cpp avx512" : "avx2");
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        ggml_dot gd = (ggml_dot)dlsym(cpu, cases[c].dot);
        ggml_quant gq = (ggml_quant)dlsym(cpu, cases[c].quant);
        ggml_dot gd2 = cpu2 ? (ggml_dot)dlsym(cpu2, cases[c].dot) : NULL;
        if (!gd || !gq) {
            printf("%-24s missing\n", cases[c].dot);
            continue;
        }
        int ty = cases[c].type, vt = dspex_vec_dot_type(ty), n = 256 * 9; /* 2304: a multiple of every block */
        size_t wb = dspex_row_bytes(ty, n), xb = dspex_row_bytes(vt, n);
        uint8_t *w = malloc(wb * TILE_ROWS), *xa = malloc(xb), *xg = malloc(xb * TILE_COLS);
        float *x = malloc(sizeof(float) * (size_t)n);
        int q_equal = 1, d_equal = 1;
        const dspex_type_info *ti = dspex_type(ty);
        for (int rep = 0; rep < 200 + TILE_COLS; rep++) {
            for (int i = 0; i < n; i++) x[i] = frand() * (rep % 7 + 0.5f);
            for (size_t i = 0; i < wb; i++) w[i] = (uint8_t)(frand() * 128 + 128);
            for (size_t b = 0; b < wb / (size_t)ti->bytes; b++) { /* sane fp16 scales */
                uint16_t d = dspex_fp32_to_fp16(0.01f + 0.001f * (float)(b % 5));
                size_t at = ty == DSPEX_T_Q6_K ? 208 : 0;
                memcpy(w + b * (size_t)ti->bytes + at, &d, 2);
                if (ty == DSPEX_T_Q4_1 || ty == DSPEX_T_Q5_1 || ty == DSPEX_T_Q4_K) memcpy(w + b * (size_t)ti->bytes + 2, &d, 2);
            }
            dspex_quantize_row(vt, x, xa, n);
            gq(x, xg, n);
            if (memcmp(xa, xg, xb) != 0) q_equal = 0;
            float g, a2 = k2.dot[ty](n, w, xg), a3 = k3.dot[ty](n, w, xg);
            gd(n, &g, 0, w, 0, xg, 0, 1);
            if (memcmp(&a2, &g, 4) != 0 || memcmp(&a3, &g, 4) != 0) {
                if (d_equal) printf("  first difference: ours %.9g / %.9g, llama.cpp %.9g\n", a2, a3, g);
                d_equal = 0;
            }
            if (rep >= 200) memcpy(xg + (size_t)(rep - 200) * xb, xg, xb); /* the tile's activation rows */
        }
        for (int r = 1; r < TILE_ROWS; r++) memcpy(w + (size_t)r * wb, w, wb);
        timing t = {k2.dot[ty], k3.gemm[ty], gd, n, w, xg, wb, xb, 20000};
        double o2 = best_ns(run_ours, &t);
        t.ours = k3.dot[ty];
        double o3 = have512 ? best_ns(run_ours, &t) : 0, ot = t.tile ? best_ns(run_tile, &t) : 0;
        double th = best_ns(run_theirs, &t), th2 = 0;
        if (gd2) {
            t.theirs = gd2;
            th2 = best_ns(run_theirs, &t);
        }
        printf("%-24s %-11s %-14s | %4.0f %4.0f %4.0f %4.0f", cases[c].dot + 13, q_equal ? "equal" : "DIFFER",
               d_equal ? "bit-identical" : "DIFFERS", o2, o3, ot, th);
        if (cpu2) printf(" %4.0f", th2);
        printf("\n");
        bad += !q_equal || !d_equal;
        free(w), free(xa), free(xg), free(x);
    }
    printf("(0 = not available)\n");
    return bad ? 1 : 0;
}
