/* The request table: in-flight requests keyed by the BEAM-chosen id (chained hash,
 * grows at load factor 1). */
#include "port.h"

#include <stdlib.h>

static size_t tslot(const dp_table *t, long long id) {
    return (size_t)(((uint64_t)id * 0x9E3779B97F4A7C15ULL) >> 17) & (t->nbuckets - 1);
}

static int table_grow(dp_table *t) {
    size_t n = t->nbuckets ? t->nbuckets * 2 : 64;
    dp_req **b = calloc(n, sizeof(*b));
    if (b == NULL) return -1;
    dp_table nt = {b, n, t->count};
    for (size_t i = 0; i < t->nbuckets; i++) {
        dp_req *r = t->buckets[i];
        while (r) {
            dp_req *next = r->next_in_bucket;
            size_t s = tslot(&nt, r->id);
            r->next_in_bucket = b[s];
            b[s] = r;
            r = next;
        }
    }
    free(t->buckets);
    *t = nt;
    return 0;
}

dp_req *dp_table_get(const dp_table *t, long long id) {
    if (t->nbuckets == 0) return NULL;
    for (dp_req *r = t->buckets[tslot(t, id)]; r; r = r->next_in_bucket)
        if (r->id == id) return r;
    return NULL;
}

int dp_table_put(dp_table *t, dp_req *r) {
    if (t->count + 1 > t->nbuckets && table_grow(t) != 0) return -1;
    size_t s = tslot(t, r->id);
    r->next_in_bucket = t->buckets[s];
    t->buckets[s] = r;
    t->count++;
    return 0;
}

void dp_table_del(dp_table *t, dp_req *r) {
    if (t->nbuckets == 0) return;
    dp_req **pp = &t->buckets[tslot(t, r->id)];
    while (*pp) {
        if (*pp == r) {
            *pp = r->next_in_bucket;
            r->next_in_bucket = NULL;
            t->count--;
            return;
        }
        pp = &(*pp)->next_in_bucket;
    }
}

