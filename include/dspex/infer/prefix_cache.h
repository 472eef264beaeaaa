/* Shared-prefix KV reuse: a per-model store of prompt K/V keyed by token sequence, so
 * requests that share a prefix (a DSPy program's instructions and demos, repeated for
 * every example of an Evaluate) compute it once.
 *
 * Structure: a radix tree of token segments. Each node holds the K/V (F32, every layer)
 * of its segment's positions; a path from the root spells a cached prompt prefix, and two
 * prompts that share a prefix share the nodes that spell it (a node splits where they
 * diverge), so memory holds each distinct token position once. Lookup walks the tree
 * along a new prompt and copies the matched positions' K/V into a fresh context (a copy
 * is ~10 us per position, against ~10 ms to compute one); insert adds the positions a
 * prefilled prompt has beyond what the tree holds. K/V at a position depends only on the
 * tokens before it, so the copied values are exactly the ones a prefill would compute.
 *
 * Bounds: at most `capacity` bytes of K/V plus node overhead and DSPEX_PREFIX_MAX_NODES
 * nodes; over either, the least recently used leaves are evicted (a shared interior node
 * outlives its leaves because every lookup through it touches it). capacity 0 disables
 * reuse (the counters still run). Thread-safe: one mutex; lookups copy under it. */
#ifndef DSPEX_INFER_PREFIX_CACHE_H
#define DSPEX_INFER_PREFIX_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "dspex/infer/context.h"

#define DSPEX_PREFIX_MAX_NODES 8192

typedef struct dspex_prefix_cache dspex_prefix_cache;

typedef struct {
    uint64_t lookups;          /* prompts looked up */
    uint64_t hits;             /* lookups that reused at least one position */
    uint64_t reused_tokens;    /* positions copied instead of computed */
    uint64_t prefilled_tokens; /* prompt positions computed (dspex_prefix_cache_note_prefill) */
    uint64_t inserted_tokens;  /* positions stored */
    uint64_t evictions;        /* nodes evicted */
    size_t bytes;              /* bytes held now */
    size_t capacity;           /* the bound */
    size_t nodes;              /* nodes now (the root excluded) */
    size_t token_bytes;        /* bytes of K/V per cached position */
} dspex_prefix_stats;

/* A cache for contexts of model m holding at most capacity bytes. NULL on OOM. */
dspex_prefix_cache *dspex_prefix_cache_new(const dspex_model *m, size_t capacity);
void dspex_prefix_cache_free(dspex_prefix_cache *pc);

/* Copies the K/V of the longest cached prefix of tokens[0..n), at most max positions,
 * into c (which must be empty: n_past 0, same model) and sets c->n_past to it. Returns
 * the positions reused (0 when nothing matched or the cache is disabled). */
int32_t dspex_prefix_cache_lookup(dspex_prefix_cache *pc, dspex_ctx *c, const int32_t *tokens, int32_t n, int32_t max);

/* Stores positions [0, n) of c (its tokens and K/V): only the positions the tree does not
 * hold yet are copied. Then evicts down to the bounds. Out of memory: nothing stored. */
void dspex_prefix_cache_insert(dspex_prefix_cache *pc, const dspex_ctx *c, int32_t n);

/* Counts n prompt positions computed by a forward pass (the stats' prefilled_tokens). */
void dspex_prefix_cache_note_prefill(dspex_prefix_cache *pc, int32_t n);

void dspex_prefix_cache_stats(dspex_prefix_cache *pc, dspex_prefix_stats *out);

#endif
