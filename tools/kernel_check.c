/* kernel_check: our activation quantizers and dot kernels against llama.cpp's own, called
 * through the prebuilt CPU backend of node-llama-cpp 3.22.1 (llama.cpp v0.5.0): equal
 * bits, and the time per call (a row of 576 elements: SmolLM2-135M's width).
 *
 *   R=_build/gguf-ref; L=$R/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64
 *   cc -O2 -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -Iinclude -Ic_src/core \
 *      tools/kernel_check.c c_src/core/infer/quant.c c_src/core/infer/kernels*.c -o _build/kernel_check -ldl -lm
 *   _build/kernel_check $L/libggml-base.so $L/libggml-cpu-haswell.so
 *
 * The haswell backend is llama.cpp's AVX2 build, the same instruction set as our kernels. */
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

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s libggml-base.so libggml-cpu-haswell.so\n", argv[0]);
        return 2;
    }
    if (!dlopen(argv[1], RTLD_NOW | RTLD_GLOBAL)) {
        fprintf(stderr, "%s\n", dlerror());
        return 2;
    }
    void *cpu = dlopen(argv[2], RTLD_NOW);
    if (!cpu) {
        fprintf(stderr, "%s\n", dlerror());
        return 2;
    }
    void (*cpu_init)(void) = (void (*)(void))dlsym(cpu, "ggml_cpu_init"); /* fills its fp16 tables */
    if (cpu_init) cpu_init();
    dspex_kernels k;
    dspex_kernels_select(&k, 1);
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
    printf("kernels: ours %s vs llama.cpp %s\n", k.isa, argv[2]);
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        ggml_dot gd = (ggml_dot)dlsym(cpu, cases[c].dot);
        ggml_quant gq = (ggml_quant)dlsym(cpu, cases[c].quant);
        if (!gd || !gq) {
            printf("%-26s missing\n", cases[c].dot);
            continue;
        }
        int ty = cases[c].type, vt = dspex_vec_dot_type(ty), n = 256 * 9; /* 2304: a multiple of every block */
        size_t wb = dspex_row_bytes(ty, n), xb = dspex_row_bytes(vt, n);
        uint8_t *w = malloc(wb), *xa = malloc(xb), *xg = malloc(xb);
        float *x = malloc(sizeof(float) * (size_t)n);
        int q_equal = 1, d_equal = 1;
        for (int rep = 0; rep < 200; rep++) {
            for (int i = 0; i < n; i++) x[i] = frand() * (rep % 7 + 0.5f);
            for (size_t i = 0; i < wb; i++) w[i] = (uint8_t)(frand() * 128 + 128);
            const dspex_type_info *ti = dspex_type(ty);
            for (size_t b = 0; b < wb / (size_t)ti->bytes; b++) { /* sane fp16 scales */
                uint16_t d = dspex_fp32_to_fp16(0.01f + 0.001f * (float)(b % 5));
                size_t at = ty == DSPEX_T_Q6_K ? 208 : 0;
                memcpy(w + b * (size_t)ti->bytes + at, &d, 2);
                if (ty == DSPEX_T_Q4_1 || ty == DSPEX_T_Q5_1 || ty == DSPEX_T_Q4_K) memcpy(w + b * (size_t)ti->bytes + 2, &d, 2);
            }
            dspex_quantize_row(vt, x, xa, n);
            gq(x, xg, n);
            if (memcmp(xa, xg, xb) != 0) q_equal = 0;
            float a = k.dot[ty](n, w, xg), g;
            gd(n, &g, 0, w, 0, xg, 0, 1);
            if (memcmp(&a, &g, 4) != 0) {
                if (d_equal) printf("  first difference: ours %.9g, llama.cpp %.9g\n", a, g);
                d_equal = 0;
            }
        }
        /* best of 5 alternating rounds (the machine is shared) */
        const int iters = 20000;
        volatile float sink = 0;
        double ours = 1e9, theirs = 1e9;
        for (int round = 0; round < 5; round++) {
            double t0 = now();
            for (int i = 0; i < iters; i++) sink += k.dot[ty](n, w, xg);
            double t1 = now();
            for (int i = 0; i < iters; i++) {
                float g;
                gd(n, &g, 0, w, 0, xg, 0, 1);
                sink += g;
            }
            double t2 = now();
            if (t1 - t0 < ours) ours = t1 - t0;
            if (t2 - t1 < theirs) theirs = t2 - t1;
        }
        printf("%-26s activations %s, dot %s, ours %.0f ns, llama.cpp %.0f ns per %d-element row\n", cases[c].dot,
               q_equal ? "equal" : "DIFFER", d_equal ? "bit-identical" : "DIFFERS", ours / iters * 1e9,
               theirs / iters * 1e9, n);
        bad += !q_equal || !d_equal;
        free(w), free(xa), free(xg), free(x);
    }
    return bad ? 1 : 0;
}
