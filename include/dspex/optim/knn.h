/* Nearest neighbours by dot product over an embedding matrix, ranked exactly as DSPy's
 * `dspy.KNN` ranks them: scores = rows . query, then numpy's
 * `scores.argsort()[-k:][::-1]` (best first).
 *
 * Tie order. numpy's default argsort ("quicksort") is an introsort that is not
 * stable; equal scores come out in the order its partitions leave them. This file
 * reproduces numpy's portable implementation (npysort/quicksort: median-of-3 Hoare
 * partitions down to 16 elements, then insertion sort; heapsort past a depth of
 * 2*floor(log2 n); NaN sorts above everything) bit for bit, checked against numpy on
 * tie-heavy arrays (test/fixtures/optimizers/argsort.json). On x86 CPUs with AVX2 or
 * AVX-512, numpy >= 2.0 dispatches float32 argsort to x86-simd-sort instead, whose tie
 * order differs between CPU generations; with distinct scores every path agrees.
 *
 * Scores. numpy computes float32 dot products with BLAS (summation order depends on
 * the BLAS kernel); here each product and the sum are exact-ish doubles rounded once
 * to float32, so a score can differ from numpy's in its last bit. Equal rows always get
 * equal scores, so exact ties are ties on both sides.
 *
 * Limits (DSPEX_KNN_EINVAL beyond them): rows < 2^31, dim <= 2^20, queries <= 2^20,
 * rows * dim and queries * dim below 2^40 elements. Work is O(queries * rows * dim) plus
 * O(queries * rows log rows); memory is one scratch of 8 bytes per row, freed before
 * return. Pure C, no global state. */
#ifndef DSPEX_OPTIM_KNN_H
#define DSPEX_OPTIM_KNN_H

#include <stddef.h>
#include <stdint.h>

enum {
    DSPEX_KNN_OK = 0,
    DSPEX_KNN_EINVAL = -1, /* zero dim, k 0, or a limit exceeded */
    DSPEX_KNN_ENOMEM = -2,
};

#define DSPEX_KNN_MAX_ROWS ((size_t)1 << 31)
#define DSPEX_KNN_MAX_DIM ((size_t)1 << 20)
#define DSPEX_KNN_MAX_QUERIES ((size_t)1 << 20)
#define DSPEX_KNN_MAX_ELEMENTS ((size_t)1 << 40)

/* scores[i] = (float)(sum_j (double)rows[i*dim + j] * (double)query[j]), i < n. */
void dspex_knn_scores(const float *rows, size_t n, size_t dim, const float *query, float *scores);

/* numpy's `np.argsort(v)` (kind "quicksort", portable path) for n float32 values:
 * writes the permutation into idx[0..n). n must be < DSPEX_KNN_MAX_ROWS. */
void dspex_knn_argsort(const float *v, size_t n, uint32_t *idx);

/* For each of `m` queries (query q at queries + q*dim): the min(k, n) best rows, best
 * first, as `scores.argsort()[-k:][::-1]`. Writes m * min(k, n) row indices into
 * out_idx and, when out_scores is not NULL, their scores. n may be 0 (nothing is
 * written). Returns DSPEX_KNN_OK, DSPEX_KNN_EINVAL or DSPEX_KNN_ENOMEM. */
int dspex_knn_search(const float *rows, size_t n, size_t dim, const float *queries, size_t m, size_t k,
                     uint32_t *out_idx, float *out_scores);

#endif
