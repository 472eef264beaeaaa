/* The one rule for dirty scheduling. See nif_util.h. */
#include <string.h>

#include "nif_util.h"

int dspex_work_over(const dspex_work *w) { return w->units > DSPEX_DIRTY_WORK; }

int dspex_work_add(dspex_work *w, size_t n) {
    w->units = n > DSPEX_DIRTY_WORK ? DSPEX_DIRTY_WORK + 1 : w->units + n;
    return dspex_work_over(w);
}

int dspex_on_normal_scheduler(void) { return enif_thread_type() == ERL_NIF_THR_NORMAL_SCHEDULER; }

/* Bytes of a bignum's magnitude, from its external term format (linear, and only for
 * integers that do not fit 64 bits). */
static size_t bignum_bytes(ErlNifEnv *env, ERL_NIF_TERM t) {
    ErlNifBinary ext;
    if (!enif_term_to_binary(env, t, &ext)) return DSPEX_DIRTY_WORK;
    size_t n = ext.size;
    enif_release_binary(&ext);
    return n;
}

/* An explicit stack (no recursion: a term may nest 100 000 levels deep); it never holds
 * more than DSPEX_DIRTY_WORK / DSPEX_COST_TERM terms because each push is paid first. */
typedef struct {
    ERL_NIF_TERM local[128];
    ERL_NIF_TERM *items;
    size_t n, cap;
} tstack;

static int push(tstack *s, ERL_NIF_TERM t) {
    if (s->n == s->cap) {
        size_t nc = s->cap * 2;
        ERL_NIF_TERM *ni = enif_alloc(nc * sizeof *ni);
        if (ni == NULL) return -1;
        memcpy(ni, s->items, s->n * sizeof *ni);
        if (s->items != s->local) enif_free(s->items);
        s->items = ni;
        s->cap = nc;
    }
    s->items[s->n++] = t;
    return 0;
}

int dspex_work_term(ErlNifEnv *env, dspex_work *w, ERL_NIF_TERM t, unsigned per_byte) {
    tstack s;
    s.items = s.local;
    s.n = 0;
    s.cap = sizeof s.local / sizeof s.local[0];
    if (push(&s, t) != 0) return dspex_work_add(w, DSPEX_DIRTY_WORK + 1);
    while (s.n > 0 && !dspex_work_over(w)) {
        ERL_NIF_TERM x = s.items[--s.n];
        ErlNifBinary bin;
        ERL_NIF_TERM head, tail;
        const ERL_NIF_TERM *el;
        int arity;
        size_t size;
        if (enif_is_binary(env, x) && enif_inspect_binary(env, x, &bin)) {
            dspex_work_add(w, DSPEX_COST_TERM + bin.size * per_byte);
        } else if (enif_get_list_cell(env, x, &head, &tail)) {
            if (dspex_work_add(w, DSPEX_COST_TERM)) break;
            if (push(&s, tail) != 0 || push(&s, head) != 0) dspex_work_add(w, DSPEX_DIRTY_WORK + 1);
        } else if (enif_get_tuple(env, x, &arity, &el)) {
            if (dspex_work_add(w, DSPEX_COST_TERM * ((size_t)arity + 1))) break;
            for (int i = 0; i < arity; i++)
                if (push(&s, el[i]) != 0) dspex_work_add(w, DSPEX_DIRTY_WORK + 1);
        } else if (enif_get_map_size(env, x, &size)) {
            if (dspex_work_add(w, DSPEX_COST_TERM * (2 * size + 1))) break;
            ErlNifMapIterator it;
            if (!enif_map_iterator_create(env, x, &it, ERL_NIF_MAP_ITERATOR_FIRST)) continue;
            ERL_NIF_TERM k, v;
            while (enif_map_iterator_get_pair(env, &it, &k, &v)) {
                if (push(&s, k) != 0 || push(&s, v) != 0) dspex_work_add(w, DSPEX_DIRTY_WORK + 1);
                enif_map_iterator_next(env, &it);
            }
            enif_map_iterator_destroy(env, &it);
        } else if (enif_is_number(env, x)) {
            ErlNifSInt64 i;
            double d;
            if (enif_get_int64(env, x, &i) || enif_get_double(env, x, &d)) {
                dspex_work_add(w, DSPEX_COST_TERM);
            } else {
                /* a bignum: decimal conversion is quadratic in its size */
                size_t nb = bignum_bytes(env, x);
                dspex_work_add(w, DSPEX_COST_TERM + nb * nb / 16);
            }
        } else {
            dspex_work_add(w, DSPEX_COST_TERM);
        }
    }
    if (s.items != s.local) enif_free(s.items);
    return dspex_work_over(w);
}

ERL_NIF_TERM dspex_run(ErlNifEnv *env, const dspex_work *w, const char *name, dspex_nif_fn fun, int argc,
                       const ERL_NIF_TERM argv[]) {
    if (dspex_work_over(w) && dspex_on_normal_scheduler())
        return enif_schedule_nif(env, name, ERL_NIF_DIRTY_JOB_CPU_BOUND, fun, argc, argv);
    return fun(env, argc, argv);
}
