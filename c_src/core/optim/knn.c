/* Nearest neighbours with numpy's argsort tie order (see include/dspex/optim/knn.h). */
#include "dspex/optim/knn.h"

#include <stdlib.h>

/* numpy's float "less": NaN sorts after every number. */
static int fless(float a, float b) { return a < b || (b != b && a == a); }

/* npysort's SMALL_QUICKSORT: partitions of more than 16 elements (pr - pl > 15) are
 * split, smaller ones insertion-sorted. */
#define SMALL_QUICKSORT 15
/* Two entries per level of the largest-first stack, bounded by log2 of 2^31 rows. */
#define QS_STACK 128

void dspex_knn_scores(const float *rows, size_t n, size_t dim, const float *query, float *scores) {
    for (size_t i = 0; i < n; i++) {
        const float *r = rows + i * dim;
        double s = 0.0;
        for (size_t j = 0; j < dim; j++) s += (double)r[j] * (double)query[j];
        scores[i] = (float)s;
    }
}

static int msb(size_t n) {
    int d = 0;
    while (n >>= 1) d++;
    return d;
}

/* npysort's aheapsort_ over tosort[0..n), 1-based as numpy writes it. */
static void aheapsort(const float *v, uint32_t *tosort, size_t n) {
    uint32_t *a = tosort - 1, tmp;
    size_t i, j, l;
    for (l = n >> 1; l > 0; --l) {
        tmp = a[l];
        for (i = l, j = l << 1; j <= n;) {
            if (j < n && fless(v[a[j]], v[a[j + 1]])) j += 1;
            if (fless(v[tmp], v[a[j]])) {
                a[i] = a[j];
                i = j;
                j += j;
            } else {
                break;
            }
        }
        a[i] = tmp;
    }
    for (; n > 1;) {
        tmp = a[n];
        a[n] = a[1];
        n -= 1;
        for (i = 1, j = 2; j <= n;) {
            if (j < n && fless(v[a[j]], v[a[j + 1]])) j++;
            if (fless(v[tmp], v[a[j]])) {
                a[i] = a[j];
                i = j;
                j += j;
            } else {
                break;
            }
        }
        a[i] = tmp;
    }
}

static void swap_u32(uint32_t *a, uint32_t *b) {
    uint32_t t = *a;
    *a = *b;
    *b = t;
}

void dspex_knn_argsort(const float *v, size_t num, uint32_t *tosort) {
    for (size_t i = 0; i < num; i++) tosort[i] = (uint32_t)i;
    if (num < 2) return;

    uint32_t *pl = tosort, *pr = tosort + num - 1;
    uint32_t *stack[QS_STACK], **sptr = stack;
    int depth[QS_STACK], *psdepth = depth;
    int cdepth = msb(num) * 2;
    uint32_t *pm, *pi, *pj, *pk, vi;
    float vp;

    for (;;) {
        if (cdepth < 0) {
            aheapsort(v, pl, (size_t)(pr - pl) + 1);
            goto stack_pop;
        }
        while ((pr - pl) > SMALL_QUICKSORT) {
            /* median of three, then a Hoare partition around it */
            pm = pl + ((pr - pl) >> 1);
            if (fless(v[*pm], v[*pl])) swap_u32(pm, pl);
            if (fless(v[*pr], v[*pm])) swap_u32(pr, pm);
            if (fless(v[*pm], v[*pl])) swap_u32(pm, pl);
            vp = v[*pm];
            pi = pl;
            pj = pr - 1;
            swap_u32(pm, pj);
            for (;;) {
                do {
                    ++pi;
                } while (fless(v[*pi], vp));
                do {
                    --pj;
                } while (fless(vp, v[*pj]));
                if (pi >= pj) break;
                swap_u32(pi, pj);
            }
            pk = pr - 1;
            swap_u32(pi, pk);
            /* push the larger partition, continue with the smaller */
            if (pi - pl < pr - pi) {
                *sptr++ = pi + 1;
                *sptr++ = pr;
                pr = pi - 1;
            } else {
                *sptr++ = pl;
                *sptr++ = pi - 1;
                pl = pi + 1;
            }
            *psdepth++ = --cdepth;
        }

        /* insertion sort */
        for (pi = pl + 1; pi <= pr; ++pi) {
            vi = *pi;
            vp = v[vi];
            pj = pi;
            pk = pi - 1;
            while (pj > pl && fless(vp, v[*pk])) *pj-- = *pk--;
            *pj = vi;
        }
    stack_pop:
        if (sptr == stack) break;
        pr = *(--sptr);
        pl = *(--sptr);
        cdepth = *(--psdepth);
    }
}

int dspex_knn_search(const float *rows, size_t n, size_t dim, const float *queries, size_t m, size_t k,
                     uint32_t *out_idx, float *out_scores) {
    if (dim == 0 || k == 0 || n >= DSPEX_KNN_MAX_ROWS || dim > DSPEX_KNN_MAX_DIM || m > DSPEX_KNN_MAX_QUERIES)
        return DSPEX_KNN_EINVAL;
    if ((n && dim > DSPEX_KNN_MAX_ELEMENTS / n) || (m && dim > DSPEX_KNN_MAX_ELEMENTS / m)) return DSPEX_KNN_EINVAL;
    if (n == 0 || m == 0) return DSPEX_KNN_OK;

    size_t kk = k < n ? k : n;
    float *scores = malloc(n * sizeof(float));
    uint32_t *order = malloc(n * sizeof(uint32_t));
    if (scores == NULL || order == NULL) {
        free(scores);
        free(order);
        return DSPEX_KNN_ENOMEM;
    }
    for (size_t q = 0; q < m; q++) {
        dspex_knn_scores(rows, n, dim, queries + q * dim, scores);
        dspex_knn_argsort(scores, n, order);
        /* argsort()[-k:][::-1]: the last kk positions, from the end */
        for (size_t t = 0; t < kk; t++) {
            uint32_t row = order[n - 1 - t];
            out_idx[q * kk + t] = row;
            if (out_scores) out_scores[q * kk + t] = scores[row];
        }
    }
    free(scores);
    free(order);
    return DSPEX_KNN_OK;
}
