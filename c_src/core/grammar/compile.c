/* NFA -> automaton. Each rule becomes a DFA by subset construction over byte classes
 * (the coarsest partition of 0..255 that every edge's range respects) and call symbols;
 * a DFA state is the set of "important" NFA states (those with a non-epsilon edge, or
 * the rule's end) of an epsilon closure, so equivalent tails of alternatives (the
 * closing quote after each enum value) merge into one state. Then:
 *
 *   - shortest completions: dist[s] = fewest bytes from s to the rule's end (a call
 *     costs its callee's shortest body), callees first (the call graph is acyclic);
 *   - trimming: edges into states that cannot complete are dropped; a root that cannot
 *     complete is an error ("admits no value");
 *   - the determinism check: at every state, the first bytes of each call must differ
 *     from the state's own bytes and from the other calls' (the call is chosen by its
 *     first byte), a called rule must not be empty, and the bytes a called rule may
 *     continue with once it could end (CONT) must differ from every byte that may follow
 *     it at a call site (FOLLOW) - so returning is decided by the next byte too. A rule
 *     that fails is inlined at its call sites and everything is recompiled; JSON needs
 *     no retry, schemas with ambiguous anyOf branches a few.
 *
 * Work is bounded: the memory budget caps DFA states, and a work counter caps the
 * subset construction (an error, not a long compile, on hostile input). */
#include "dspex/errmsg.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grammar_int.h"

#define INF_DIST (INT32_MAX / 4)
#define MAX_WORK ((uint64_t)1 << 28)

dspex_grammar_limits dspex_grammar_default_limits(void) {
    return (dspex_grammar_limits){12, 6, (size_t)64 << 20, (size_t)64 << 20};
}

/* ---------------------------------------------------------------- growable arrays */
typedef struct {
    void *p;
    size_t n, cap, elem;
} vec;

static void *vec_push(vec *v, size_t k) {
    if (v->n + k > v->cap) {
        size_t nc = v->cap ? v->cap * 2 : 256;
        while (nc < v->n + k) nc *= 2;
        void *q = realloc(v->p, nc * v->elem);
        if (q == NULL) return NULL;
        v->p = q;
        v->cap = nc;
    }
    void *r = (char *)v->p + v->n * v->elem;
    v->n += k;
    return r;
}

/* ---------------------------------------------------------------- determinization */
typedef struct {
    const gb *b;
    size_t nfa_ns;
    int32_t *eoff;   /* CSR of the NFA edges by source */
    int32_t *eidx;
    uint8_t *important;
    uint32_t *mark;  /* closure visit stamps */
    uint32_t stamp;
    int32_t *stack;
    int nc;
    uint8_t cls[256];
    uint8_t cls_lo[256], cls_hi[256];
    /* DFA */
    vec sets;        /* int32 pool of member lists */
    vec set_off;     /* size_t per DFA state: offset in sets */
    vec set_len;     /* int32 per DFA state */
    vec next;        /* int32 [ns * nc] */
    vec accept;      /* uint8 */
    vec srule;       /* int32 */
    vec call_off;    /* int32 [ns + 1] (built at the end) */
    vec calls_tmp;   /* (state, rule, ret) triples */
    int32_t *hash;   /* DFA ids + 1 */
    size_t hcap, ns;
    uint64_t work;
    size_t max_bytes;
    char *err;
    size_t errlen;
    int failed;
} det;

static uint64_t hash_set(const int32_t *s, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (uint32_t)s[i];
        h *= 1099511628211ull;
    }
    return h ^ (h >> 29);
}

static int cmp_i32(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static int fail(det *d, const char *msg) {
    if (!d->failed) dspex_errmsg(d->err, d->errlen, "%s", msg);
    d->failed = 1;
    return -1;
}

/* Epsilon closure of seeds -> sorted important states in out (a vec of int32). */
static int closure(det *d, const int32_t *seeds, size_t n, vec *out) {
    out->n = 0;
    if (++d->stamp == 0) {
        memset(d->mark, 0, d->nfa_ns * sizeof(uint32_t));
        d->stamp = 1;
    }
    size_t sp = 0;
    for (size_t i = 0; i < n; i++)
        if (d->mark[seeds[i]] != d->stamp) {
            d->mark[seeds[i]] = d->stamp;
            d->stack[sp++] = seeds[i];
        }
    while (sp) {
        int32_t q = d->stack[--sp];
        d->work++;
        if (d->important[q]) {
            int32_t *slot = vec_push(out, 1);
            if (slot == NULL) return fail(d, "out of memory");
            *slot = q;
        }
        for (int32_t k = d->eoff[q]; k < d->eoff[q + 1]; k++) {
            const gb_edge *e = &d->b->e[d->eidx[k]];
            if (e->kind == GE_EPS && d->mark[e->to] != d->stamp) {
                d->mark[e->to] = d->stamp;
                d->stack[sp++] = e->to;
            }
        }
    }
    if (out->n > 1) qsort(out->p, out->n, sizeof(int32_t), cmp_i32);
    if (d->work > MAX_WORK) return fail(d, "the grammar is too large to compile (work limit)");
    return 0;
}

static int rehash(det *d) {
    size_t nc = d->hcap ? d->hcap * 2 : 1024;
    int32_t *h = calloc(nc, sizeof(int32_t));
    if (h == NULL) return -1;
    for (size_t i = 0; i < d->ns; i++) {
        const int32_t *s = (int32_t *)d->sets.p + ((size_t *)d->set_off.p)[i];
        size_t n = (size_t)((int32_t *)d->set_len.p)[i];
        size_t j = hash_set(s, n) & (nc - 1);
        while (h[j]) j = (j + 1) & (nc - 1);
        h[j] = (int32_t)i + 1;
    }
    free(d->hash);
    d->hash = h;
    d->hcap = nc;
    return 0;
}

/* The DFA state for a member set (a new one when unseen). -1 on failure. */
static int32_t intern(det *d, const int32_t *s, size_t n, int32_t rule, int32_t rule_end) {
    if (n == 0) return -1;
    uint64_t hv = hash_set(s, n);
    if (d->hcap) {
        size_t j = hv & (d->hcap - 1);
        while (d->hash[j]) {
            int32_t id = d->hash[j] - 1;
            if ((size_t)((int32_t *)d->set_len.p)[id] == n &&
                memcmp((int32_t *)d->sets.p + ((size_t *)d->set_off.p)[id], s, n * sizeof(int32_t)) == 0)
                return id;
            j = (j + 1) & (d->hcap - 1);
        }
    }
    size_t bytes = (d->ns + 1) * ((size_t)d->nc * 4 + 24) + (d->sets.n + n) * 4;
    if (bytes > d->max_bytes) {
        char msg[160];
        snprintf(msg, sizeof msg, "the grammar is too large (its automaton would exceed %zu MiB)", d->max_bytes >> 20);
        fail(d, msg);
        return -1;
    }
    if ((d->ns + 1) * 2 > d->hcap && rehash(d) != 0) {
        fail(d, "out of memory");
        return -1;
    }
    int32_t id = (int32_t)d->ns;
    size_t off = d->sets.n;
    int32_t *dst = vec_push(&d->sets, n);
    size_t *po = vec_push(&d->set_off, 1);
    int32_t *pl = vec_push(&d->set_len, 1);
    int32_t *nx = vec_push(&d->next, (size_t)d->nc);
    uint8_t *acc = vec_push(&d->accept, 1);
    int32_t *sr = vec_push(&d->srule, 1);
    if (!dst || !po || !pl || !nx || !acc || !sr) {
        fail(d, "out of memory");
        return -1;
    }
    memcpy(dst, s, n * sizeof(int32_t));
    *po = off;
    *pl = (int32_t)n;
    for (int c = 0; c < d->nc; c++) nx[c] = -1;
    *acc = 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] == rule_end) *acc = 1;
    *sr = rule;
    d->ns++;
    size_t j = hv & (d->hcap - 1);
    while (d->hash[j]) j = (j + 1) & (d->hcap - 1);
    d->hash[j] = id + 1;
    return id;
}

/* Subset construction of one rule; returns its start DFA state or -1. */
static int32_t build_rule(det *d, int32_t r) {
    const gb *b = d->b;
    int32_t end = b->rules[r].end;
    vec cl = {0, 0, 0, sizeof(int32_t)}, moves = {0, 0, 0, sizeof(uint64_t)}, tg = {0, 0, 0, sizeof(int32_t)};
    int32_t seed = b->rules[r].start, start = -1;
    if (closure(d, &seed, 1, &cl) != 0) goto out;
    size_t first = d->ns;
    start = intern(d, cl.p, cl.n, r, end);
    if (start < 0) {
        if (!d->failed) fail(d, "a rule of the grammar is empty");
        goto out;
    }
    for (size_t cur = first; cur < d->ns && !d->failed; cur++) {
        size_t off = ((size_t *)d->set_off.p)[cur];
        size_t n = (size_t)((int32_t *)d->set_len.p)[cur];
        /* moves: (class << 32 | target) for bytes, ((nc + rule) << 32 | target) for calls */
        moves.n = 0;
        for (size_t i = 0; i < n; i++) {
            int32_t q = ((int32_t *)d->sets.p)[off + i];
            for (int32_t k = d->eoff[q]; k < d->eoff[q + 1]; k++) {
                const gb_edge *e = &b->e[d->eidx[k]];
                if (e->kind == GE_EPS) continue;
                if (e->kind == GE_BYTES) {
                    for (int c = d->cls[e->lo]; c <= d->cls[e->hi]; c++) {
                        uint64_t *m = vec_push(&moves, 1);
                        if (m == NULL) goto oom;
                        *m = ((uint64_t)c << 32) | (uint32_t)e->to;
                    }
                } else {
                    uint64_t *m = vec_push(&moves, 1);
                    if (m == NULL) goto oom;
                    *m = ((uint64_t)(d->nc + e->kind) << 32) | (uint32_t)e->to;
                }
            }
        }
        d->work += moves.n;
        if (d->work > MAX_WORK) {
            fail(d, "the grammar is too large to compile (work limit)");
            break;
        }
        if (moves.n > 1) qsort(moves.p, moves.n, sizeof(uint64_t), cmp_u64);
        uint64_t *mv = moves.p;
        int32_t prev_id = -1;
        size_t prev_lo = 0, prev_hi = 0; /* the previous group's move span (to reuse equal target lists) */
        for (size_t i = 0; i < moves.n && !d->failed;) {
            uint64_t sym = mv[i] >> 32;
            size_t j = i;
            tg.n = 0;
            while (j < moves.n && (mv[j] >> 32) == sym) {
                int32_t t = (int32_t)(uint32_t)mv[j];
                if (tg.n == 0 || ((int32_t *)tg.p)[tg.n - 1] != t) {
                    int32_t *slot = vec_push(&tg, 1);
                    if (slot == NULL) goto oom;
                    *slot = t;
                }
                j++;
            }
            int32_t id;
            int same = prev_id >= 0 && sym < (uint64_t)d->nc && prev_hi - prev_lo == j - i;
            for (size_t k = 0; same && k < j - i; k++)
                same = (uint32_t)mv[prev_lo + k] == (uint32_t)mv[i + k];
            if (same) {
                id = prev_id;
            } else {
                if (closure(d, tg.p, tg.n, &cl) != 0) break;
                id = intern(d, cl.p, cl.n, r, end);
                if (id < 0 && d->failed) break;
            }
            if (sym < (uint64_t)d->nc) {
                ((int32_t *)d->next.p)[cur * (size_t)d->nc + sym] = id;
                prev_id = id;
                prev_lo = i;
                prev_hi = j;
            } else if (id >= 0) {
                int32_t *c3 = vec_push(&d->calls_tmp, 3);
                if (c3 == NULL) goto oom;
                c3[0] = (int32_t)cur;
                c3[1] = (int32_t)(sym - (uint64_t)d->nc);
                c3[2] = id;
            }
            i = j;
        }
    }
    goto out;
oom:
    fail(d, "out of memory");
out:
    free(cl.p);
    free(moves.p);
    free(tg.p);
    return d->failed ? -1 : start;
}

/* ---------------------------------------------------------------- analysis */
typedef struct {
    det *d;
    int32_t nr;
    grule *rules;
    int32_t *order;   /* callees before callers */
    int32_t norder;
    uint8_t *state;   /* DFS: 0 new, 1 open, 2 done */
    int32_t *call_off;
    gcall *calls;
    int32_t *dist;
    int32_t *rlo, *rhi; /* the DFA states of rule r are [rlo[r], rhi[r]) */
} ana;

/* Postorder of the call graph from the root (callees first); a cycle is an internal
 * error (recursion is unrolled by the front ends). */
static int topo(ana *a, int32_t r, int depth) {
    if (a->state[r] == 2) return 0;
    if (a->state[r] == 1 || depth > G_MAX_RULES) return -1;
    a->state[r] = 1;
    /* every call from a state of rule r */
    for (int32_t s = a->rlo[r]; s < a->rhi[r]; s++) {
        for (int32_t k = a->call_off[s]; k < a->call_off[s + 1]; k++)
            if (topo(a, a->calls[k].rule, depth + 1) != 0) return -1;
    }
    a->state[r] = 2;
    a->order[a->norder++] = r;
    return 0;
}

/* Dijkstra over the reversed DFA of every rule, callees first. */
typedef struct {
    int32_t d, s;
} hitem;

static void heap_push(hitem *h, size_t *n, hitem x) {
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (h[p].d <= x.d) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = x;
}

static hitem heap_pop(hitem *h, size_t *n) {
    hitem top = h[0], x = h[--(*n)];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && h[c + 1].d < h[c].d) c++;
        if (h[c].d >= x.d) break;
        h[i] = h[c];
        i = c;
    }
    if (*n) h[i] = x;
    return top;
}

static int distances(ana *a) {
    det *d = a->d;
    size_t ns = d->ns;
    int nc = d->nc;
    const int32_t *next = d->next.p;
    const uint8_t *acc = d->accept.p;
    /* reverse edges: for each target, (source, rule-of-cost or -1) */
    int32_t *roff = calloc(ns + 1, sizeof(int32_t));
    size_t ne = 0;
    for (size_t s = 0; s < ns; s++) {
        for (int c = 0; c < nc; c++) {
            int32_t t = next[s * (size_t)nc + c];
            if (t >= 0 && (c == 0 || next[s * (size_t)nc + c - 1] != t)) ne++;
        }
        ne += (size_t)(a->call_off[s + 1] - a->call_off[s]);
    }
    int32_t *rsrc = malloc((ne + 1) * sizeof(int32_t)), *rcost = malloc((ne + 1) * sizeof(int32_t));
    int32_t *fill = calloc(ns + 1, sizeof(int32_t));
    hitem *heap = malloc((ne + ns + 1) * sizeof(hitem));
    if (!roff || !rsrc || !rcost || !fill || !heap) {
        free(roff), free(rsrc), free(rcost), free(fill), free(heap);
        return fail(d, "out of memory");
    }
    for (size_t s = 0; s < ns; s++) {
        for (int c = 0; c < nc; c++) {
            int32_t t = next[s * (size_t)nc + c];
            if (t >= 0 && (c == 0 || next[s * (size_t)nc + c - 1] != t)) roff[t + 1]++;
        }
        for (int32_t k = a->call_off[s]; k < a->call_off[s + 1]; k++) roff[a->calls[k].ret + 1]++;
    }
    for (size_t s = 0; s < ns; s++) roff[s + 1] += roff[s];
    for (size_t s = 0; s < ns; s++) {
        for (int c = 0; c < nc; c++) {
            int32_t t = next[s * (size_t)nc + c];
            if (t >= 0 && (c == 0 || next[s * (size_t)nc + c - 1] != t)) {
                int32_t at = roff[t] + fill[t]++;
                rsrc[at] = (int32_t)s;
                rcost[at] = -1;
            }
        }
        for (int32_t k = a->call_off[s]; k < a->call_off[s + 1]; k++) {
            int32_t t = a->calls[k].ret, at = roff[t] + fill[t]++;
            rsrc[at] = (int32_t)s;
            rcost[at] = a->calls[k].rule;
        }
    }
    for (size_t s = 0; s < ns; s++) a->dist[s] = INF_DIST;
    for (int32_t oi = 0; oi < a->norder; oi++) {
        int32_t r = a->order[oi];
        size_t hn = 0;
        for (int32_t s = a->rlo[r]; s < a->rhi[r]; s++)
            if (acc[s]) {
                a->dist[s] = 0;
                heap_push(heap, &hn, (hitem){0, (int32_t)s});
            }
        while (hn) {
            hitem x = heap_pop(heap, &hn);
            if (x.d != a->dist[x.s]) continue;
            for (int32_t k = roff[x.s]; k < roff[x.s + 1]; k++) {
                int32_t src = rsrc[k];
                int32_t cost = rcost[k] < 0 ? 1 : a->rules[rcost[k]].minlen;
                if (cost >= INF_DIST) continue;
                int32_t nd = x.d + cost;
                if (nd > INF_DIST) nd = INF_DIST;
                if (nd < a->dist[src]) {
                    a->dist[src] = nd;
                    heap_push(heap, &hn, (hitem){nd, src});
                }
            }
        }
        a->rules[r].minlen = a->dist[a->rules[r].start];
    }
    free(roff), free(rsrc), free(rcost), free(fill), free(heap);
    return 0;
}

static void bset(uint8_t *s, unsigned b) { s[b >> 3] |= (uint8_t)(1u << (b & 7)); }
static int bmeet(const uint8_t *x, const uint8_t *y) {
    for (int i = 0; i < 32; i++)
        if (x[i] & y[i]) return 1;
    return 0;
}
static void bor(uint8_t *x, const uint8_t *y) {
    for (int i = 0; i < 32; i++) x[i] |= y[i];
}

/* Bytes with an edge out of s. */
static void own_bytes(const det *d, const int32_t *next, size_t s, uint8_t *out) {
    memset(out, 0, 32);
    for (int c = 0; c < d->nc; c++)
        if (next[s * (size_t)d->nc + c] >= 0)
            for (unsigned x = d->cls_lo[c]; x <= d->cls_hi[c]; x++) bset(out, x);
}

/* ---------------------------------------------------------------- driver */
typedef enum { R_OK = 0, R_FAIL = -1, R_CONFLICT = 1 } round_rc;

static void det_free(det *d) {
    free(d->eoff), free(d->eidx), free(d->important), free(d->mark), free(d->stack), free(d->hash);
    free(d->sets.p), free(d->set_off.p), free(d->set_len.p), free(d->next.p), free(d->accept.p);
    free(d->srule.p), free(d->call_off.p), free(d->calls_tmp.p);
}

static int cmp_call3(const void *a, const void *b) {
    const int32_t *x = a, *y = b;
    if (x[0] != y[0]) return (x[0] > y[0]) - (x[0] < y[0]);
    return (x[1] > y[1]) - (x[1] < y[1]);
}

/* Determinizes b into a grammar (*out) or reports the key of a rule to inline. */
static round_rc determinize(const gb *b, dspex_gvocab *gv, dspex_grammar **out, gkey *conflict, char *err,
                            size_t errlen) {
    det d;
    memset(&d, 0, sizeof d);
    d.b = b;
    d.nfa_ns = b->ns;
    d.err = err;
    d.errlen = errlen;
    d.max_bytes = b->lim.max_bytes;
    d.sets.elem = sizeof(int32_t);
    d.set_off.elem = sizeof(size_t);
    d.set_len.elem = sizeof(int32_t);
    d.next.elem = sizeof(int32_t);
    d.accept.elem = 1;
    d.srule.elem = sizeof(int32_t);
    d.call_off.elem = sizeof(int32_t);
    d.calls_tmp.elem = sizeof(int32_t);
    ana a;
    memset(&a, 0, sizeof a);
    dspex_grammar *g = NULL;
    round_rc rc = R_FAIL;
    size_t ns = b->ns;
    d.eoff = calloc(ns + 1, sizeof(int32_t));
    d.eidx = malloc((b->ne + 1) * sizeof(int32_t));
    d.important = calloc(ns + 1, 1);
    d.mark = calloc(ns + 1, sizeof(uint32_t));
    d.stack = malloc((ns + 1) * sizeof(int32_t));
    if (!d.eoff || !d.eidx || !d.important || !d.mark || !d.stack) goto oom;
    for (size_t i = 0; i < b->ne; i++) d.eoff[b->e[i].from + 1]++;
    for (size_t i = 0; i < ns; i++) d.eoff[i + 1] += d.eoff[i];
    {
        int32_t *fill = calloc(ns + 1, sizeof(int32_t));
        if (fill == NULL) goto oom;
        for (size_t i = 0; i < b->ne; i++) {
            int32_t f = b->e[i].from;
            d.eidx[d.eoff[f] + fill[f]++] = (int32_t)i;
            if (b->e[i].kind != GE_EPS) d.important[f] = 1;
        }
        free(fill);
    }
    for (size_t r = 0; r < b->nr; r++) d.important[b->rules[r].end] = 1;
    /* byte classes: a boundary at every edge's lo and hi + 1 */
    {
        uint8_t cut[257] = {0};
        cut[0] = 1;
        for (size_t i = 0; i < b->ne; i++)
            if (b->e[i].kind == GE_BYTES) {
                cut[b->e[i].lo] = 1;
                cut[b->e[i].hi + 1] = 1;
            }
        int c = -1;
        for (int x = 0; x < 256; x++) {
            if (cut[x]) {
                c++;
                d.cls_lo[c] = (uint8_t)x;
            }
            d.cls[x] = (uint8_t)c;
            d.cls_hi[c] = (uint8_t)x;
        }
        d.nc = c + 1;
    }
    int32_t nr = (int32_t)b->nr;
    a.d = &d;
    a.nr = nr;
    a.rules = calloc((size_t)nr, sizeof(grule));
    a.order = malloc((size_t)nr * sizeof(int32_t));
    a.state = calloc((size_t)nr, 1);
    if (!a.rules || !a.order || !a.state) goto oom;
    for (int32_t r = 0; r < nr; r++) {
        a.rules[r].key = b->rules[r].key;
        a.rules[r].start = build_rule(&d, r);
        if (a.rules[r].start < 0) goto fail;
    }
    a.rlo = malloc((size_t)nr * sizeof(int32_t));
    a.rhi = malloc((size_t)nr * sizeof(int32_t));
    if (!a.rlo || !a.rhi) goto oom;
    for (int32_t r = 0; r < nr; r++) {
        a.rlo[r] = a.rules[r].start;
        a.rhi[r] = r + 1 < nr ? a.rules[r + 1].start : (int32_t)d.ns;
    }
    /* calls in CSR form */
    if (d.calls_tmp.n > 3) qsort(d.calls_tmp.p, d.calls_tmp.n / 3, 3 * sizeof(int32_t), cmp_call3);
    size_t ncalls = d.calls_tmp.n / 3;
    a.call_off = calloc(d.ns + 1, sizeof(int32_t));
    a.calls = malloc((ncalls + 1) * sizeof(gcall));
    a.dist = malloc((d.ns + 1) * sizeof(int32_t));
    if (!a.call_off || !a.calls || !a.dist) goto oom;
    for (size_t i = 0; i < ncalls; i++) {
        const int32_t *c3 = (int32_t *)d.calls_tmp.p + 3 * i;
        a.call_off[c3[0] + 1]++;
        a.calls[i] = (gcall){c3[1], c3[2]};
    }
    for (size_t s = 0; s < d.ns; s++) a.call_off[s + 1] += a.call_off[s];
    if (topo(&a, 0, 0) != 0) {
        fail(&d, "internal error: the grammar's rules call each other in a cycle");
        goto fail;
    }
    if (distances(&a) != 0) goto fail;
    if (a.rules[0].minlen >= INF_DIST) {
        fail(&d, "the schema admits no value (every alternative is empty or unsatisfiable)");
        goto fail;
    }
    /* trim: edges into states that cannot complete, calls of rules that cannot */
    {
        int32_t *next = d.next.p;
        for (size_t i = 0; i < d.ns * (size_t)d.nc; i++)
            if (next[i] >= 0 && a.dist[next[i]] >= INF_DIST) next[i] = -1;
        size_t w = 0;
        int32_t prev = 0;
        for (size_t s = 0; s < d.ns; s++) {
            int32_t lo = prev, hi = a.call_off[s + 1];
            prev = hi;
            a.call_off[s] = (int32_t)w;
            for (int32_t k = lo; k < hi; k++)
                if (a.dist[a.calls[k].ret] < INF_DIST && a.rules[a.calls[k].rule].minlen < INF_DIST)
                    a.calls[w++] = a.calls[k];
        }
        a.call_off[d.ns] = (int32_t)w;
        ncalls = w;
    }
    /* FIRST sets, callees first */
    {
        const int32_t *next = d.next.p;
        for (int32_t oi = 0; oi < a.norder; oi++) {
            int32_t r = a.order[oi], s = a.rules[r].start;
            own_bytes(&d, next, (size_t)s, a.rules[r].first);
            for (int32_t k = a.call_off[s]; k < a.call_off[s + 1]; k++) bor(a.rules[r].first, a.rules[a.calls[k].rule].first);
        }
    }
    /* determinism: calls decided by the first byte; returns by the next byte */
    {
        const int32_t *next = d.next.p;
        const uint8_t *accept = d.accept.p;
        const int32_t *srule = d.srule.p;
        uint8_t (*follow)[32] = calloc((size_t)nr, 32);
        uint8_t (*cont)[32] = calloc((size_t)nr, 32);
        if (!follow || !cont) {
            free(follow), free(cont);
            goto oom;
        }
        int32_t bad = -1;
        for (size_t s = 0; s < d.ns && bad < 0; s++) {
            uint8_t own[32], seen[32];
            own_bytes(&d, next, s, own);
            memcpy(seen, own, 32);
            for (int32_t k = a.call_off[s]; k < a.call_off[s + 1] && bad < 0; k++) {
                int32_t c = a.calls[k].rule;
                if (accept[a.rules[c].start] || bmeet(seen, a.rules[c].first)) bad = c;
                bor(seen, a.rules[c].first);
            }
            if (accept[s]) bor(cont[srule[s]], seen);
        }
        /* FOLLOW, callers first (reverse postorder) */
        for (int32_t oi = a.norder - 1; oi >= 0 && bad < 0; oi--) {
            int32_t r = a.order[oi];
            for (int32_t s = a.rlo[r]; s < a.rhi[r]; s++) {
                for (int32_t k = a.call_off[s]; k < a.call_off[s + 1]; k++) {
                    int32_t ret = a.calls[k].ret;
                    uint8_t fp[32];
                    own_bytes(&d, next, (size_t)ret, fp);
                    for (int32_t j = a.call_off[ret]; j < a.call_off[ret + 1]; j++) bor(fp, a.rules[a.calls[j].rule].first);
                    if (accept[ret]) bor(fp, follow[r]);
                    bor(follow[a.calls[k].rule], fp);
                }
            }
        }
        for (int32_t r = 1; r < nr && bad < 0; r++)
            if (bmeet(cont[r], follow[r])) bad = r;
        free(follow), free(cont);
        if (bad > 0) {
            *conflict = a.rules[bad].key;
            rc = R_CONFLICT;
            goto done;
        }
    }
    /* deepest call chain */
    int32_t maxd = 1;
    {
        int32_t *depth = calloc((size_t)nr, sizeof(int32_t));
        if (depth == NULL) goto oom;
        for (int32_t oi = 0; oi < a.norder; oi++) {
            int32_t r = a.order[oi], best = 0;
            for (int32_t s = a.rlo[r]; s < a.rhi[r]; s++)
                for (int32_t k = a.call_off[s]; k < a.call_off[s + 1]; k++)
                    if (depth[a.calls[k].rule] > best) best = depth[a.calls[k].rule];
            depth[r] = best + 1;
        }
        maxd = depth[0];
        free(depth);
        if (maxd > G_MAX_DEPTH) {
            fail(&d, "the grammar nests rules too deeply");
            goto fail;
        }
    }
    /* the grammar */
    g = calloc(1, sizeof(*g));
    if (g == NULL) goto oom;
    atomic_init(&g->refs, 1);
    g->nc = d.nc;
    memcpy(g->cls, d.cls, 256);
    g->ns = (int32_t)d.ns;
    g->next = d.next.p;
    d.next.p = NULL;
    g->accept = d.accept.p;
    d.accept.p = NULL;
    g->srule = d.srule.p;
    d.srule.p = NULL;
    g->call_off = a.call_off;
    a.call_off = NULL;
    g->calls = a.calls;
    a.calls = NULL;
    g->dist = a.dist;
    a.dist = NULL;
    g->nr = nr;
    g->rules = a.rules;
    a.rules = NULL;
    g->max_depth = maxd;
    g->bytes = (size_t)g->ns * ((size_t)g->nc * 4 + 13) + ncalls * sizeof(gcall) + (size_t)nr * sizeof(grule);
    g->entries = calloc((size_t)g->ns, sizeof(*g->entries));
    if (g->entries == NULL || pthread_mutex_init(&g->mu, NULL) != 0) {
        free(g->entries);
        g->entries = NULL;
        free(g->next), free(g->accept), free(g->srule), free(g->call_off), free(g->calls), free(g->dist), free(g->rules);
        free(g);
        g = NULL;
        goto oom;
    }
    g->cache_limit = b->lim.cache_bytes;
    g->gv = gv;
    dspex_gvocab_retain(gv);
    *out = g;
    rc = R_OK;
    goto done;
oom:
    fail(&d, "out of memory");
fail:
    rc = R_FAIL;
done:
    free(a.rules), free(a.order), free(a.state), free(a.call_off), free(a.calls), free(a.dist);
    free(a.rlo), free(a.rhi);
    det_free(&d);
    return rc;
}

dspex_grammar *g_compile(groot_fn root, void *ud, dspex_gvocab *gv, const dspex_grammar_limits *lim, char *err,
                         size_t errlen) {
    dspex_grammar_limits L = lim ? *lim : dspex_grammar_default_limits();
    if (L.json_depth < 1 || L.json_depth > 32 || L.ref_depth < 1 || L.ref_depth > 32 || L.max_bytes < 4096) {
        dspex_errmsg(err, errlen, "grammar limits out of range (json_depth and ref_depth 1..32, max_bytes >= 4096)");
        return NULL;
    }
    gkey *inl = NULL;
    size_t ninl = 0;
    dspex_arena arena;
    dspex_arena_init(&arena, L.max_bytes);
    dspex_grammar *g = NULL;
    for (int round = 0; round <= G_MAX_RETRIES; round++) {
        gb b;
        memset(&b, 0, sizeof b);
        b.inl = inl;
        b.ninl = ninl;
        b.lim = L;
        b.a = &arena;
        /* the root rule */
        b.rules = malloc(sizeof(gb_rule) * 16);
        b.cap_r = b.rules ? 16 : 0;
        if (b.rules == NULL) {
            dspex_errmsg(err, errlen, "out of memory");
            break;
        }
        b.nr = 1;
        b.rules[0] = (gb_rule){{GK_ROOT, NULL, NULL, 0}, 0, 0};
        b.cur = 0;
        b.rules[0].start = gb_state(&b);
        b.rules[0].end = gb_state(&b);
        root(&b, ud, b.rules[0].start, b.rules[0].end);
        for (size_t r = 1; r < b.nr && !b.failed; r++) {
            b.cur = (int32_t)r;
            g_emit_body(&b, b.rules[r].key, b.rules[r].start, b.rules[r].end);
        }
        round_rc rc = R_FAIL;
        gkey conflict;
        if (b.failed)
            dspex_errmsg(err, errlen, "%s", b.err);
        else
            rc = determinize(&b, gv, &g, &conflict, err, errlen);
        inl = b.inl;
        free(b.e), free(b.srule), free(b.rules);
        if (rc != R_CONFLICT) break;
        if (round == G_MAX_RETRIES) {
            dspex_errmsg(err, errlen, "the grammar is ambiguous in too many places (more than %d rules had to be inlined)",
                   G_MAX_RETRIES);
            break;
        }
        gkey *ni = realloc(inl, (ninl + 1) * sizeof(gkey));
        if (ni == NULL) {
            dspex_errmsg(err, errlen, "out of memory");
            break;
        }
        inl = ni;
        inl[ninl++] = conflict;
    }
    free(inl);
    dspex_arena_free(&arena);
    return g;
}

void dspex_grammar_retain(dspex_grammar *g) { atomic_fetch_add(&g->refs, 1); }

void dspex_grammar_release(dspex_grammar *g) {
    if (g == NULL || atomic_fetch_sub(&g->refs, 1) != 1) return;
    for (int32_t s = 0; s < g->ns; s++) {
        gentry *e = atomic_load(&g->entries[s]);
        if (e) {
            free(e->acc), free(e->bits), free(e->unc_tok), free(e->unc_off), free(atomic_load(&e->after));
            free(e);
        }
    }
    free(g->entries);
    pthread_mutex_destroy(&g->mu);
    free(g->next), free(g->accept), free(g->srule), free(g->call_off), free(g->calls), free(g->dist), free(g->rules);
    dspex_gvocab_release(g->gv);
    free(g);
}
