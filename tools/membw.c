/* membw: read bandwidth of main memory, the bound for decoding (every weight byte is
 * read once per token). T threads each sum their share of a 256 MiB array (8-byte loads,
 * 4 independent sums), best of 5 passes; prints GB/s. Used by bench/infer.exs.
 *
 *   cc -O2 -std=c11 -D_POSIX_C_SOURCE=200809L tools/membw.c -o _build/membw -lpthread
 *   _build/membw THREADS */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define BYTES (256u << 20)

typedef struct {
    const uint64_t *p;
    size_t n;
    uint64_t sum;
} part;

static void *sum_part(void *a) {
    part *q = a;
    uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (size_t i = 0; i + 4 <= q->n; i += 4) s0 += q->p[i], s1 += q->p[i + 1], s2 += q->p[i + 2], s3 += q->p[i + 3];
    q->sum = s0 + s1 + s2 + s3;
    return NULL;
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    int T = argc > 1 ? atoi(argv[1]) : 1;
    if (T < 1 || T > 64) T = 1;
    size_t n = BYTES / sizeof(uint64_t);
    uint64_t *p = malloc(BYTES);
    if (!p) return 1;
    for (size_t i = 0; i < n; i++) p[i] = i;
    part parts[64];
    pthread_t th[64];
    double best = 1e9;
    uint64_t check = 0;
    for (int pass = 0; pass < 5; pass++) {
        double t0 = now();
        for (int t = 0; t < T; t++) {
            parts[t] = (part){p + n / (size_t)T * (size_t)t, n / (size_t)T, 0};
            if (pthread_create(&th[t], NULL, sum_part, &parts[t]) != 0) return 1;
        }
        for (int t = 0; t < T; t++) pthread_join(th[t], NULL), check += parts[t].sum;
        double dt = now() - t0;
        if (dt < best) best = dt;
    }
    printf("%.2f\n", (double)BYTES / best / 1e9);
    free(p);
    return check == 0; /* keeps the sums alive */
}
