/* NIF binding for nearest-neighbour search (c_src/core/optim/knn.c), for DSPex.KNN.
 *
 *   knn_search(Rows, Dim, Queries, K) -> [[{RowIndex, Score}]]   one list per query
 *
 * Rows and Queries are binaries of native-endian float32 values, row after row, Dim
 * values each (DSPex.KNN packs them once). Every list holds the min(K, rows) best rows,
 * best first, in numpy's tie order (include/dspex/optim/knn.h).
 *
 * Calls whose work (rows x dim x queries multiply-adds) stays under KNN_NORMAL_WORK run
 * on the normal scheduler; above it they reschedule onto a dirty CPU scheduler: one
 * multiply-add costs ~1 ns here, so 2^18 of them (plus the sort) stay well under 1 ms.
 * Bad arguments raise {badarg, Message} (ArgumentError via DSPex.NIF.guard/1). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dspex/optim/knn.h"
#include "nif_util.h"

#define KNN_NORMAL_WORK ((uint64_t)1 << 18)

typedef struct {
    const float *p;  /* the floats, aligned */
    float *owned;    /* a copy when the binary's data was not float-aligned */
    size_t count;    /* number of floats */
} floats_view;

/* 1 ok, 0 not a binary of whole float32 rows of `dim`, -1 out of memory. */
static int view_floats(ErlNifEnv *env, ERL_NIF_TERM t, size_t dim, floats_view *out) {
    ErlNifBinary b;
    out->owned = NULL;
    if (!enif_inspect_binary(env, t, &b) || b.size % (dim * sizeof(float)) != 0) return 0;
    out->count = b.size / sizeof(float);
    if (((uintptr_t)b.data % _Alignof(float)) == 0) {
        out->p = (const float *)(const void *)b.data;
        return 1;
    }
    out->owned = malloc(b.size ? b.size : 1);
    if (out->owned == NULL) return -1;
    memcpy(out->owned, b.data, b.size);
    out->p = out->owned;
    return 1;
}

typedef struct {
    size_t dim, k;
} knn_args;

static const char *check_scalars(ErlNifEnv *env, const ERL_NIF_TERM argv[], knn_args *a) {
    ErlNifUInt64 dim, k;
    if (!enif_get_uint64(env, argv[1], &dim) || dim == 0 || dim > DSPEX_KNN_MAX_DIM)
        return "knn_search: the dimension must be an integer from 1 to 1048576";
    if (!enif_get_uint64(env, argv[3], &k) || k == 0) return "knn_search: k must be a positive integer";
    a->dim = (size_t)dim;
    a->k = (size_t)k;
    return NULL;
}

static ERL_NIF_TERM knn_run(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    (void)argc;
    knn_args a;
    const char *bad = check_scalars(env, argv, &a);
    if (bad) return dspex_raise_badarg(env, bad);

    floats_view rows, queries;
    int r1 = view_floats(env, argv[0], a.dim, &rows);
    if (r1 == 0) return dspex_raise_badarg(env, "knn_search: rows must be float32 values, a multiple of dim");
    if (r1 < 0) return enif_raise_exception(env, dspex_atoms(env)->out_of_memory);
    int r2 = view_floats(env, argv[2], a.dim, &queries);
    if (r2 <= 0) {
        free(rows.owned);
        return r2 == 0 ? dspex_raise_badarg(env, "knn_search: queries must be float32 values, a multiple of dim")
                       : enif_raise_exception(env, dspex_atoms(env)->out_of_memory);
    }

    size_t n = rows.count / a.dim, m = queries.count / a.dim;
    size_t kk = a.k < n ? a.k : n;
    uint32_t *idx = NULL;
    float *scores = NULL;
    ERL_NIF_TERM *cells = NULL;
    ERL_NIF_TERM result;
    if (n >= DSPEX_KNN_MAX_ROWS || m > DSPEX_KNN_MAX_QUERIES) {
        result = dspex_raise_badarg(env, "knn_search: at most 2^31 - 1 rows and 2^20 queries");
        goto done;
    }
    if (kk > 0 && m > 0) {
        idx = malloc(m * kk * sizeof(uint32_t));
        scores = malloc(m * kk * sizeof(float));
        cells = malloc(kk * sizeof(ERL_NIF_TERM));
        if (idx == NULL || scores == NULL || cells == NULL) {
            result = enif_raise_exception(env, dspex_atoms(env)->out_of_memory);
            goto done;
        }
    }
    int rc = dspex_knn_search(rows.p, n, a.dim, queries.p, m, a.k, idx, scores);
    if (rc == DSPEX_KNN_ENOMEM) {
        result = enif_raise_exception(env, dspex_atoms(env)->out_of_memory);
        goto done;
    }
    if (rc != DSPEX_KNN_OK) {
        result = dspex_raise_badarg(env, "knn_search: the matrix exceeds the limits in include/dspex/optim/knn.h");
        goto done;
    }
    result = enif_make_list(env, 0);
    for (size_t q = m; q-- > 0;) {
        for (size_t t = 0; t < kk; t++)
            cells[t] = enif_make_tuple2(env, enif_make_uint(env, idx[q * kk + t]),
                                        enif_make_double(env, (double)scores[q * kk + t]));
        ERL_NIF_TERM one = enif_make_list_from_array(env, cells, (unsigned)kk);
        result = enif_make_list_cell(env, one, result);
    }
done:
    free(idx);
    free(scores);
    free(cells);
    free(rows.owned);
    free(queries.owned);
    return result;
}

ERL_NIF_TERM dspex_nif_knn_search(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    knn_args a;
    const char *bad = check_scalars(env, argv, &a);
    if (bad) return dspex_raise_badarg(env, bad);
    ErlNifBinary rows, queries;
    if (!enif_inspect_binary(env, argv[0], &rows) || !enif_inspect_binary(env, argv[2], &queries))
        return dspex_raise_badarg(env, "knn_search: rows and queries must be binaries of float32 values");
    /* rows x dim x queries, saturating at the threshold */
    uint64_t n = rows.size / (sizeof(float) * a.dim), m = queries.size / (sizeof(float) * a.dim);
    uint64_t work = 0;
    if (n > 0 && m > 0)
        work = (a.dim > KNN_NORMAL_WORK / n || n * a.dim > KNN_NORMAL_WORK / m) ? KNN_NORMAL_WORK + 1 : n * a.dim * m;
    if (work > KNN_NORMAL_WORK)
        return enif_schedule_nif(env, "knn_search_dirty", ERL_NIF_DIRTY_JOB_CPU_BOUND, knn_run, argc, argv);
    return knn_run(env, argc, argv);
}
