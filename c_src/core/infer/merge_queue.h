/* The priority queue of candidate merges that both tokenizers (tok_bpe.c, tok_spm.c) run
 * llama.cpp's greedy merging with: a binary heap of adjacent symbol pairs, best first,
 * ties to the leftmost pair. Entries are not removed when a merge makes them stale; the
 * consumer checks the symbol lengths recorded at push time against the current ones.
 * Internal to c_src/core/infer. */
#ifndef DSPEX_INFER_MERGE_QUEUE_H
#define DSPEX_INFER_MERGE_QUEUE_H

#include <stddef.h>

typedef struct {
    int left, right; /* symbol indexes */
    double prio;     /* higher merges first: SPM the token's score, BPE minus the merge rank */
    size_t ln, rn;   /* symbol lengths when queued (staleness check) */
} dspex_merge;

typedef struct {
    dspex_merge *a;
    size_t n, cap; /* used, allocated */
} dspex_merge_queue;

/* 0, or -1 when out of memory (the queue is unchanged). */
int dspex_mq_push(dspex_merge_queue *q, dspex_merge m);
/* The best entry; q->n must be > 0. */
dspex_merge dspex_mq_pop(dspex_merge_queue *q);
void dspex_mq_free(dspex_merge_queue *q);

#endif
