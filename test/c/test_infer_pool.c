/* The forward pass's thread pool: every task of every run executes exactly once, with its
 * own run's argument, for pools larger than the machine (workers get preempted mid-run
 * and must not take a later run's tasks), runs of 1..many tasks, and back-to-back runs
 * with nothing in between (the straggler path: the caller returns once the tasks are
 * done, without waiting for idle workers). */
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#include "ctest.h"
#include "dspex/infer/pool.h"

typedef struct {
    atomic_int *hits; /* [n_tasks], this run's own counters: another run's task lands elsewhere */
    int slow;         /* sleep in task 0 (a worker holding a task while others finish) */
} job;

static void task(void *arg, int t, int thread) {
    job *j = arg;
    (void)thread;
    if (j->slow && t == 0) nanosleep(&(struct timespec){0, 200000}, NULL);
    atomic_fetch_add(&j->hits[t], 1);
}

CTEST(every_task_runs_exactly_once_per_run) {
    const int threads[] = {1, 2, 3, 8};
    for (size_t k = 0; k < sizeof(threads) / sizeof(threads[0]); k++) {
        dspex_pool *p = dspex_pool_new(threads[k]);
        CHECK(p != NULL);
        if (!p) continue;
        CHECK(dspex_pool_threads(p) == threads[k]);
        int bad = 0;
        for (int run = 0; run < 2000; run++) {
            int n = 1 + (run * 7) % 37;
            atomic_int hits[37];
            for (int i = 0; i < n; i++) atomic_init(&hits[i], 0);
            job j = {hits, run % 97 == 0};
            dspex_pool_run(p, n, task, &j);
            for (int i = 0; i < n; i++) bad += atomic_load(&hits[i]) != 1;
        }
        CHECK(bad == 0);
        dspex_pool_free(p);
    }
}

static void count(void *arg, int t, int thread) {
    (void)t;
    atomic_int *c = arg;
    atomic_fetch_add(&c[thread], 1);
}

CTEST(thread_ids_are_in_range_and_zero_tasks_is_a_no_op) {
    dspex_pool *p = dspex_pool_new(4);
    CHECK(p != NULL);
    if (!p) return;
    atomic_int per[4];
    for (int i = 0; i < 4; i++) atomic_init(&per[i], 0);
    dspex_pool_run(p, 0, count, per);
    for (int i = 0; i < 4; i++) CHECK(atomic_load(&per[i]) == 0);
    for (int r = 0; r < 200; r++) dspex_pool_run(p, 64, count, per);
    int total = 0;
    for (int i = 0; i < 4; i++) total += atomic_load(&per[i]);
    CHECK(total == 200 * 64);
    dspex_pool_free(p);
}

int main(void) { return ctest_run(); }
