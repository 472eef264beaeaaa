/* See merge_queue.h. */
#include "merge_queue.h"

#include <stdlib.h>

static int before(const dspex_merge *a, const dspex_merge *b) {
    return a->prio > b->prio || (a->prio == b->prio && a->left < b->left);
}

static void swap(dspex_merge *a, dspex_merge *b) {
    dspex_merge t = *a;
    *a = *b;
    *b = t;
}

int dspex_mq_push(dspex_merge_queue *q, dspex_merge m) {
    if (q->n == q->cap) {
        size_t cap = q->cap ? q->cap * 2 : 64;
        dspex_merge *na = realloc(q->a, cap * sizeof(dspex_merge));
        if (na == NULL) return -1;
        q->a = na;
        q->cap = cap;
    }
    size_t i = q->n++;
    q->a[i] = m;
    while (i > 0 && before(&q->a[i], &q->a[(i - 1) / 2])) {
        swap(&q->a[i], &q->a[(i - 1) / 2]);
        i = (i - 1) / 2;
    }
    return 0;
}

dspex_merge dspex_mq_pop(dspex_merge_queue *q) {
    dspex_merge top = q->a[0];
    q->a[0] = q->a[--q->n];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < q->n && before(&q->a[l], &q->a[m])) m = l;
        if (r < q->n && before(&q->a[r], &q->a[m])) m = r;
        if (m == i) break;
        swap(&q->a[i], &q->a[m]);
        i = m;
    }
    return top;
}

void dspex_mq_free(dspex_merge_queue *q) {
    free(q->a);
    q->a = NULL;
    q->n = q->cap = 0;
}
