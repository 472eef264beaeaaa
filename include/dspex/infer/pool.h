/* A small fixed-size thread pool owned by one model: run(n_tasks, fn) executes
 * fn(arg, task, thread) for every task index, with the calling thread working too, and
 * returns when all are done. Tasks are handed out through an atomic counter, so uneven
 * tasks balance themselves. Workers spin briefly (up to ~50 us, 2000 pause loops)
 * between the many short parallel sections of a forward pass, then sleep on a condition
 * variable, so an idle model costs no CPU. Concurrent callers are serialized (one run at
 * a time); the pool itself holds no global state. */
#ifndef DSPEX_INFER_POOL_H
#define DSPEX_INFER_POOL_H

#define DSPEX_POOL_MAX_THREADS 256

typedef struct dspex_pool dspex_pool;
typedef void (*dspex_task_fn)(void *arg, int task, int thread);

/* n_threads >= 1 (1 = run everything on the caller). NULL on failure. */
dspex_pool *dspex_pool_new(int n_threads);
void dspex_pool_free(dspex_pool *p);
int dspex_pool_threads(const dspex_pool *p);
void dspex_pool_run(dspex_pool *p, int n_tasks, dspex_task_fn fn, void *arg);

#endif
