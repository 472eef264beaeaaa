/* Thread pool for the forward pass. See include/dspex/infer/pool.h. */
#include "dspex/infer/pool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CPU_RELAX() _mm_pause()
#else
#define CPU_RELAX() ((void)0)
#endif

#define SPIN_LOOPS 2000 /* ~50 us of pause before a worker sleeps */

typedef struct {
    dspex_pool *pool; /* back pointer */
    int id;           /* thread index, 1..n-1 (the caller is 0) */
    pthread_t th;     /* the worker */
} worker;

struct dspex_pool {
    int n;                   /* threads including the caller */
    worker *w;               /* [n-1] */
    pthread_mutex_t run_mu;  /* one run at a time */
    pthread_mutex_t mu;      /* guards sleeping workers */
    pthread_cond_t cv;       /* wakes them */
    int sleeping;            /* workers blocked on cv (under mu) */
    atomic_uint gen;         /* bumped for each run */
    atomic_int stop;         /* set on free */
    dspex_task_fn fn;        /* current run: the task function */
    void *arg;               /* its argument */
    int n_tasks;             /* its task count */
    atomic_int next;         /* next task index to hand out */
    atomic_int done;         /* workers finished with the current run */
};

static void work(dspex_pool *p, int thread) {
    for (;;) {
        int t = atomic_fetch_add_explicit(&p->next, 1, memory_order_relaxed);
        if (t >= p->n_tasks) break;
        p->fn(p->arg, t, thread);
    }
}

static void *worker_main(void *a) {
    worker *w = a;
    dspex_pool *p = w->pool;
    unsigned seen = 0;
    for (;;) {
        int spins = 0;
        while (atomic_load_explicit(&p->gen, memory_order_acquire) == seen && !atomic_load(&p->stop)) {
            if (++spins < SPIN_LOOPS) {
                CPU_RELAX();
                continue;
            }
            pthread_mutex_lock(&p->mu);
            p->sleeping++;
            while (atomic_load_explicit(&p->gen, memory_order_acquire) == seen && !atomic_load(&p->stop))
                pthread_cond_wait(&p->cv, &p->mu);
            p->sleeping--;
            pthread_mutex_unlock(&p->mu);
        }
        if (atomic_load(&p->stop)) return NULL;
        seen = atomic_load_explicit(&p->gen, memory_order_acquire);
        work(p, w->id);
        atomic_fetch_add_explicit(&p->done, 1, memory_order_release);
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
    atomic_init(&p->gen, 0);
    atomic_init(&p->stop, 0);
    atomic_init(&p->next, 0);
    atomic_init(&p->done, 0);
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
    p->fn = fn;
    p->arg = arg;
    p->n_tasks = n_tasks;
    atomic_store_explicit(&p->next, 0, memory_order_relaxed);
    atomic_store_explicit(&p->done, 0, memory_order_relaxed);
    pthread_mutex_lock(&p->mu);
    atomic_fetch_add_explicit(&p->gen, 1, memory_order_release);
    if (p->sleeping) pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    work(p, 0);
    int spins = 0;
    while (atomic_load_explicit(&p->done, memory_order_acquire) < p->n - 1) {
        if (++spins < SPIN_LOOPS)
            CPU_RELAX();
        else
            sched_yield(); /* a worker was descheduled: let it run */
    }
    pthread_mutex_unlock(&p->run_mu);
}
