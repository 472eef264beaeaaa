/* Thread pool for the forward pass. See include/dspex/infer/pool.h.
 *
 * Tasks are claimed through one 64-bit word, `claim` = (run generation << 32) | next task
 * index, with compare-and-swap: a claim names the run it belongs to, so a worker that
 * was descheduled in the middle of a run can never take a task of a later run by
 * mistake. The caller therefore waits only for the tasks to finish, never for every
 * worker to check in: on a loaded machine a preempted worker costs the run nothing
 * unless it holds a task (the caller does the rest itself). */
#include "dspex/infer/pool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CPU_RELAX() _mm_pause()
#else
#define CPU_RELAX() ((void)0)
#endif

#define SPIN_LOOPS 2000        /* ~50 us of pause before a worker sleeps */
#define IDX_SETUP 0xFFFFFFFFu /* claim index while a run is being set up */

typedef struct {
    dspex_pool *pool; /* back pointer */
    int id;           /* thread index, 1..n-1 (the caller is 0) */
    pthread_t th;     /* the worker */
} worker;

struct dspex_pool {
    int n;                        /* threads including the caller */
    worker *w;                    /* [n-1] */
    pthread_mutex_t run_mu;       /* one run at a time */
    pthread_mutex_t mu;           /* sleeping workers wait on cv under it */
    pthread_cond_t cv;            /* wakes them */
    atomic_int sleeping;          /* workers about to block or blocked on cv */
    atomic_int stop;              /* set on free */
    _Atomic uint64_t claim;       /* (generation << 32) | next task index */
    uint32_t gen;                 /* last generation started (under run_mu) */
    _Atomic(dspex_task_fn) fn;    /* current run: the task function */
    _Atomic(void *) arg;          /* its argument */
    atomic_int n_tasks;           /* its task count */
    atomic_int finished;          /* its tasks completed */
};

static inline uint32_t gen_of(uint64_t c) { return (uint32_t)(c >> 32); }

/* Claims and runs tasks of generation g until none are left or a later run started. */
static void work(dspex_pool *p, uint32_t g, int thread) {
    for (;;) {
        uint64_t c = atomic_load(&p->claim);
        if (gen_of(c) != g) return;
        uint32_t idx = (uint32_t)c;
        if (idx == IDX_SETUP) { /* the caller is still publishing run g */
            CPU_RELAX();
            continue;
        }
        /* read before the claim: if the claim succeeds the word still said (g, idx), so
         * no later run had begun its set-up, and these are run g's values */
        dspex_task_fn fn = atomic_load(&p->fn);
        void *arg = atomic_load(&p->arg);
        if (idx >= (uint32_t)atomic_load(&p->n_tasks)) return;
        if (!atomic_compare_exchange_weak(&p->claim, &c, c + 1)) continue;
        fn(arg, (int)idx, thread);
        atomic_fetch_add(&p->finished, 1);
    }
}

static void *worker_main(void *a) {
    worker *w = a;
    dspex_pool *p = w->pool;
    uint32_t seen = 0;
    for (;;) {
        int spins = 0;
        while (gen_of(atomic_load(&p->claim)) == seen && !atomic_load(&p->stop)) {
            if (++spins < SPIN_LOOPS) {
                CPU_RELAX();
                continue;
            }
            /* announce first, then re-check: with both sides sequentially consistent, a
             * run either sees sleeping > 0 (and broadcasts under mu) or this check sees
             * its new generation; no wakeup is lost */
            pthread_mutex_lock(&p->mu);
            atomic_fetch_add(&p->sleeping, 1);
            while (gen_of(atomic_load(&p->claim)) == seen && !atomic_load(&p->stop)) pthread_cond_wait(&p->cv, &p->mu);
            atomic_fetch_sub(&p->sleeping, 1);
            pthread_mutex_unlock(&p->mu);
        }
        if (atomic_load(&p->stop)) return NULL;
        seen = gen_of(atomic_load(&p->claim));
        work(p, seen, w->id);
    }
}

dspex_pool *dspex_pool_new(int n_threads) {
    if (n_threads < 1) n_threads = 1;
    if (n_threads > DSPEX_POOL_MAX_THREADS) n_threads = DSPEX_POOL_MAX_THREADS;
    dspex_pool *p = calloc(1, sizeof(*p));
    if (p == NULL) return NULL;
    p->n = n_threads;
    pthread_mutex_init(&p->run_mu, NULL);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    atomic_init(&p->sleeping, 0);
    atomic_init(&p->stop, 0);
    atomic_init(&p->claim, 0);
    atomic_init(&p->fn, NULL);
    atomic_init(&p->arg, NULL);
    atomic_init(&p->n_tasks, 0);
    atomic_init(&p->finished, 0);
    if (n_threads > 1) {
        p->w = calloc((size_t)n_threads - 1, sizeof(worker));
        if (p->w == NULL) {
            free(p);
            return NULL;
        }
        for (int i = 0; i < n_threads - 1; i++) {
            p->w[i].pool = p;
            p->w[i].id = i + 1;
            if (pthread_create(&p->w[i].th, NULL, worker_main, &p->w[i]) != 0) {
                p->n = i + 1; /* keep the threads that started */
                break;
            }
        }
    }
    return p;
}

void dspex_pool_free(dspex_pool *p) {
    if (p == NULL) return;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->stop, 1);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->n - 1; i++) pthread_join(p->w[i].th, NULL);
    pthread_mutex_destroy(&p->run_mu);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p->w);
    free(p);
}

int dspex_pool_threads(const dspex_pool *p) { return p->n; }

void dspex_pool_run(dspex_pool *p, int n_tasks, dspex_task_fn fn, void *arg) {
    if (n_tasks <= 0) return;
    if (p->n == 1 || n_tasks == 1) { /* nothing to share */
        for (int t = 0; t < n_tasks; t++) fn(arg, t, 0);
        return;
    }
    pthread_mutex_lock(&p->run_mu);
    /* every task of the previous run has finished, so no worker is inside one; a
     * straggler can only be reading the claim word, and the set-up state stops it */
    uint64_t g = ++p->gen;
    atomic_store(&p->claim, (g << 32) | IDX_SETUP);
    atomic_store(&p->fn, fn);
    atomic_store(&p->arg, arg);
    atomic_store(&p->n_tasks, n_tasks);
    atomic_store(&p->finished, 0);
    atomic_store(&p->claim, g << 32); /* spinning workers start now, without a lock */
    if (atomic_load(&p->sleeping) > 0) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
    }
    work(p, (uint32_t)g, 0);
    int spins = 0;
    while (atomic_load(&p->finished) < n_tasks) {
        if (++spins < SPIN_LOOPS)
            CPU_RELAX();
        else
            sched_yield(); /* a worker holding a task was descheduled: let it run */
    }
    pthread_mutex_unlock(&p->run_mu);
}
