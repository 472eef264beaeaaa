/* NIF bindings: CPython's random.Random (c_src/core/optim/pyrandom.c) for DSPex.Random.
 *
 * The generator state travels as a 2500-byte binary (624 words and the position, as
 * random.getstate() holds them), so a DSPex.Random is an immutable value: every call
 * takes a state and returns {Result, NewState}. No resource, no locking, safe to share
 * between processes and to store (a journal can record where a stream stood).
 *
 *   random_seed_int(MagnitudeLE)      -> State     abs(seed), little-endian bytes
 *   random_random(State)              -> {Float, State}
 *   random_getrandbits(State, K)      -> {BitsLE, State}   K <= 2^20
 *   random_below(State, N)            -> {Int, State}      _randbelow, 0 < N < 2^64
 *   random_shuffle(State, List)       -> {List, State}
 *   random_sample(State, List, K)     -> {List, State}
 *   random_sample(State, N, K)        -> {Indices, State}  sample(range(N), K), N < 2^64
 *   random_choices(State, List, CumWeights | nil, K) -> {List, State}
 *
 * Bad arguments raise {badarg, Message} (ArgumentError via DSPex.NIF.guard/1). Lists
 * or counts above 20,000 elements run on a dirty CPU scheduler (~1 ms of work). */
#include "nif_util.h"

#include <math.h>
#include <string.h>

#include "dspex/optim/pyrandom.h"

/* Work per list item drawn or moved (DSPEX_COST_TERM: copying one term out and back). */
#define COST_ITEM DSPEX_COST_TERM
#define RANDOM_MAX_BITS (1u << 20)

static int get_state(ErlNifEnv *env, ERL_NIF_TERM t, dspex_pyrandom *r) {
    ErlNifBinary b;
    if (!enif_inspect_binary(env, t, &b) || b.size != DSPEX_PYRANDOM_STATE_BYTES) return 0;
    return dspex_pyrandom_import(r, b.data) == DSPEX_PYRANDOM_OK;
}

static ERL_NIF_TERM make_state(ErlNifEnv *env, const dspex_pyrandom *r) {
    ERL_NIF_TERM t;
    unsigned char *p = enif_make_new_binary(env, DSPEX_PYRANDOM_STATE_BYTES, &t);
    if (p == NULL) return enif_raise_exception(env, dspex_atoms(env)->out_of_memory);
    dspex_pyrandom_export(r, p);
    return t;
}

static ERL_NIF_TERM with_state(ErlNifEnv *env, ERL_NIF_TERM result, const dspex_pyrandom *r) {
    ERL_NIF_TERM st = make_state(env, r);
    if (enif_is_exception(env, st)) return st;
    return enif_make_tuple2(env, result, st);
}

static ERL_NIF_TERM bad_state(ErlNifEnv *env) {
    return dspex_raise_badarg(env, "expected a DSPex.Random state (build one with DSPex.Random.new/1)");
}

/* The elements of a proper list, in an enif_alloc'd array (*n of them). */
static ERL_NIF_TERM *list_array(ErlNifEnv *env, ERL_NIF_TERM list, unsigned *n) {
    if (!enif_get_list_length(env, list, n)) return NULL;
    ERL_NIF_TERM *a = enif_alloc((*n ? *n : 1) * sizeof(ERL_NIF_TERM)), h;
    if (a == NULL) return NULL;
    for (unsigned i = 0; enif_get_list_cell(env, list, &h, &list); i++) a[i] = h;
    return a;
}

ERL_NIF_TERM dspex_nif_random_seed_int(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    (void)argc;
    ErlNifBinary b;
    if (!enif_inspect_binary(env, argv[0], &b)) return dspex_raise_badarg(env, "seed must be an integer");
    dspex_pyrandom r;
    if (dspex_pyrandom_seed_int(&r, b.data, b.size) != DSPEX_PYRANDOM_OK)
        return dspex_raise_badarg(env, "integer seeds are limited to 2^(8 * 1048576)");
    return make_state(env, &r);
}

ERL_NIF_TERM dspex_nif_random_random(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    (void)argc;
    dspex_pyrandom r;
    if (!get_state(env, argv[0], &r)) return bad_state(env);
    double x = dspex_pyrandom_random(&r);
    return with_state(env, enif_make_double(env, x), &r);
}

ERL_NIF_TERM dspex_nif_random_getrandbits(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    (void)argc;
    dspex_pyrandom r;
    unsigned k;
    if (!get_state(env, argv[0], &r)) return bad_state(env);
    if (!enif_get_uint(env, argv[1], &k) || k > RANDOM_MAX_BITS)
        return dspex_raise_badarg(env, "getrandbits: k must be an integer from 0 to 1048576");
    size_t words = (k + 31) / 32;
    uint32_t *w = enif_alloc(words ? words * 4 : 4);
    if (w == NULL) return enif_raise_exception(env, dspex_atoms(env)->out_of_memory);
    dspex_pyrandom_getrandbits(&r, w, k);
    ERL_NIF_TERM bin;
    unsigned char *p = enif_make_new_binary(env, words * 4, &bin);
    if (p == NULL) {
        enif_free(w);
        return enif_raise_exception(env, dspex_atoms(env)->out_of_memory);
    }
    for (size_t i = 0; i < words; i++)
        for (int b = 0; b < 4; b++) p[4 * i + b] = (unsigned char)(w[i] >> (8 * b));
    enif_free(w);
    return with_state(env, bin, &r);
}

ERL_NIF_TERM dspex_nif_random_below(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    (void)argc;
    dspex_pyrandom r;
    ErlNifUInt64 n;
    if (!get_state(env, argv[0], &r)) return bad_state(env);
    if (!enif_get_uint64(env, argv[1], &n) || n == 0)
        return dspex_raise_badarg(env, "randbelow: n must be an integer from 1 to 2^64 - 1");
    uint64_t v = dspex_pyrandom_randbelow(&r, n);
    return with_state(env, enif_make_uint64(env, v), &r);
}

static ERL_NIF_TERM shuffle_run(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    (void)argc;
    dspex_pyrandom r;
    unsigned n;
    if (!get_state(env, argv[0], &r)) return bad_state(env);
    ERL_NIF_TERM *a = list_array(env, argv[1], &n);
    if (a == NULL) return dspex_raise_badarg(env, "shuffle: expected a list");
    dspex_pyrandom_shuffle(&r, a, n, sizeof(ERL_NIF_TERM));
    ERL_NIF_TERM list = enif_make_list_from_array(env, a, n);
    enif_free(a);
    return with_state(env, list, &r);
}

ERL_NIF_TERM dspex_nif_random_shuffle(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    unsigned n = 0;
    dspex_work w = {0};
    if (enif_get_list_length(env, argv[1], &n)) dspex_work_add(&w, (size_t)n * COST_ITEM);
    return dspex_run(env, &w, "random_shuffle", shuffle_run, argc, argv);
}

static ERL_NIF_TERM sample_run(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    (void)argc;
    dspex_pyrandom r;
    unsigned k, len;
    ErlNifUInt64 n;
    ERL_NIF_TERM *a = NULL; /* NULL: the population is range(n) and we return indices */
    if (!get_state(env, argv[0], &r)) return bad_state(env);
    if (!enif_get_uint(env, argv[2], &k)) return dspex_raise_badarg(env, "sample: k must be a non-negative integer");
    if (!enif_get_uint64(env, argv[1], &n)) {
        a = list_array(env, argv[1], &len);
        if (a == NULL) return dspex_raise_badarg(env, "sample: expected a list");
        n = len;
    }
    if (k > n) {
        if (a) enif_free(a);
        return dspex_raise_badarg(env, "sample: sample larger than population or is negative");
    }
    uint64_t *idx = enif_alloc((k ? k : 1) * sizeof(uint64_t));
    ERL_NIF_TERM *out = enif_alloc((k ? k : 1) * sizeof(ERL_NIF_TERM));
    int rc = idx && out ? dspex_pyrandom_sample(&r, n, k, idx) : DSPEX_PYRANDOM_ENOMEM;
    ERL_NIF_TERM res;
    if (rc == DSPEX_PYRANDOM_OK) {
        for (unsigned i = 0; i < k; i++) out[i] = a ? a[idx[i]] : enif_make_uint64(env, idx[i]);
        res = with_state(env, enif_make_list_from_array(env, out, k), &r);
    } else {
        res = enif_raise_exception(env, dspex_atoms(env)->out_of_memory);
    }
    if (idx) enif_free(idx);
    if (out) enif_free(out);
    if (a) enif_free(a);
    return res;
}

ERL_NIF_TERM dspex_nif_random_sample(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    unsigned n = 0, k = 0;
    dspex_work w = {0};
    if (enif_get_list_length(env, argv[1], &n)) dspex_work_add(&w, (size_t)n * COST_ITEM);
    if (enif_get_uint(env, argv[2], &k)) dspex_work_add(&w, (size_t)k * COST_ITEM);
    return dspex_run(env, &w, "random_sample", sample_run, argc, argv);
}

static int get_number(ErlNifEnv *env, ERL_NIF_TERM t, double *out) {
    ErlNifSInt64 i;
    if (enif_get_double(env, t, out)) return 1;
    if (enif_get_int64(env, t, &i)) {
        *out = (double)i;
        return 1;
    }
    return 0;
}

static ERL_NIF_TERM choices_run(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    (void)argc;
    dspex_pyrandom r;
    unsigned n, k, nw = 0;
    if (!get_state(env, argv[0], &r)) return bad_state(env);
    if (!enif_get_uint(env, argv[3], &k)) return dspex_raise_badarg(env, "choices: k must be a non-negative integer");
    ERL_NIF_TERM *a = list_array(env, argv[1], &n);
    if (a == NULL) return dspex_raise_badarg(env, "choices: expected a list population");
    double *cum = NULL;
    const char *msg = NULL;
    if (!enif_is_identical(argv[2], dspex_atoms(env)->nil)) {
        ERL_NIF_TERM *w = list_array(env, argv[2], &nw);
        if (w == NULL) {
            msg = "choices: weights must be a list of numbers";
        } else if (nw != n) {
            msg = "choices: the number of weights does not match the population";
        } else if ((cum = enif_alloc((n ? n : 1) * sizeof(double))) != NULL) {
            for (unsigned i = 0; i < n && msg == NULL; i++)
                if (!get_number(env, w[i], &cum[i])) msg = "choices: weights must be numbers (within 64-bit range)";
        }
        if (w) enif_free(w);
    }
    uint64_t *idx = enif_alloc((k ? k : 1) * sizeof(uint64_t));
    ERL_NIF_TERM *out = enif_alloc((k ? k : 1) * sizeof(ERL_NIF_TERM)), res;
    int rc = DSPEX_PYRANDOM_ENOMEM;
    if (msg == NULL && idx && out && (cum || nw == 0 || n == 0))
        rc = cum ? dspex_pyrandom_choices_cum(&r, cum, n, k, idx) : dspex_pyrandom_choices(&r, n, k, idx);
    if (msg != NULL) {
        res = dspex_raise_badarg(env, msg);
    } else if (rc == DSPEX_PYRANDOM_EVALUE) {
        res = dspex_raise_badarg(env, n == 0 ? "choices: cannot choose from an empty population"
                                             : "choices: total of weights must be greater than zero and finite");
    } else if (rc != DSPEX_PYRANDOM_OK) {
        res = rc == DSPEX_PYRANDOM_ELIMIT ? dspex_raise_badarg(env, "choices: population larger than 2^53")
                                          : enif_raise_exception(env, dspex_atoms(env)->out_of_memory);
    } else {
        for (unsigned i = 0; i < k; i++) out[i] = a[idx[i]];
        res = with_state(env, enif_make_list_from_array(env, out, k), &r);
    }
    if (cum) enif_free(cum);
    if (idx) enif_free(idx);
    if (out) enif_free(out);
    enif_free(a);
    return res;
}

ERL_NIF_TERM dspex_nif_random_choices(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    unsigned n = 0, k = 0;
    dspex_work w = {0};
    if (enif_get_list_length(env, argv[1], &n)) dspex_work_add(&w, (size_t)n * COST_ITEM);
    if (enif_get_uint(env, argv[3], &k)) dspex_work_add(&w, (size_t)k * COST_ITEM);
    return dspex_run(env, &w, "random_choices", choices_run, argc, argv);
}
