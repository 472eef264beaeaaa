/* The runtime: a stack of DFA states (one frame per active rule), advanced byte by byte
 * (g_step); masks built from per-state cache entries (walk); the length budget; the
 * logits hook.
 *
 * A mask for stack S (frames S[0] root .. S[top]) is the union, over the frames that
 * could pop in turn (from the top down while the frame is accepting), of
 *   entry(S[l]).acc                      tokens consumed inside frame l
 *   entry(S[l]).unc that pass S[0..l)    tokens that end frame l after `off` bytes and
 *                                        whose rest the frames below accept
 * and end-of-generation is allowed when every frame is accepting. An entry depends on
 * the state only, so it is computed once (a trie walk) and shared.
 *
 * Budget: with R tokens left (this one included) a token is kept only if the fewest
 * bytes that complete the output after it are <= R - 1 (each byte is one token at
 * worst). entry.max_after bounds that over the entry's tokens, so the per-token check
 * runs only in the last steps before the budget binds. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dspex/json.h"
#include "grammar_int.h"

#define LIST_MAX_FRACTION 32 /* a list when it is smaller than the bitset (4 bytes vs 1/8) */

static uint64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

int g_step(const dspex_grammar *g, int32_t *st, int *depth, int base, uint8_t byte) {
    int c = g->cls[byte];
    for (;;) {
        int top = *depth - 1;
        int32_t s = st[top];
        int32_t t = g->next[(size_t)s * (size_t)g->nc + (size_t)c];
        if (t >= 0) {
            st[top] = t;
            return 1;
        }
        int32_t k = g->call_off[s], ke = g->call_off[s + 1];
        for (; k < ke; k++)
            if ((g->rules[g->calls[k].rule].first[byte >> 3] >> (byte & 7)) & 1) break;
        if (k < ke) {
            if (*depth >= g->max_depth) return 0;
            st[top] = g->calls[k].ret;
            st[(*depth)++] = g->rules[g->calls[k].rule].start;
            continue;
        }
        if (!g->accept[s]) return 0;
        if (top == base) return 2;
        (*depth)--;
    }
}

static int64_t stack_dist(const dspex_grammar *g, const int32_t *st, int depth) {
    int64_t d = 0;
    for (int i = 0; i < depth; i++) d += g->dist[st[i]];
    return d;
}

/* ---------------------------------------------------------------- cache entries */
typedef struct {
    int32_t *v;
    size_t n, cap;
} ivec;

static int ipush(ivec *v, int32_t x) {
    if (v->n == v->cap) {
        size_t nc = v->cap ? v->cap * 2 : 256;
        int32_t *q = realloc(v->v, nc * sizeof(int32_t));
        if (q == NULL) return -1;
        v->v = q;
        v->cap = nc;
    }
    v->v[v->n++] = x;
    return 0;
}

static void entry_free(gentry *e) {
    if (e == NULL) return;
    free(e->acc), free(e->bits), free(e->unc_tok), free(e->unc_off), free(atomic_load(&e->after));
    free(e);
}

/* Walks the trie from state s0 as the only (base) frame. NULL when out of memory. With
 * after != NULL only fills after[token] (the shortest completion in the frame after it,
 * 65535 = not accepted or more). */
static gentry *walk(dspex_grammar *g, int32_t s0, uint16_t *after) {
    const dspex_gvocab *gv = g->gv;
    uint64_t t0 = now_ns();
    int md = g->max_depth;
    size_t levels = (size_t)gv->max_len + 1;
    int32_t *F = malloc(levels * (size_t)md * sizeof(int32_t));
    int *len = malloc(levels * sizeof(int));
    gentry *e = calloc(1, sizeof(*e));
    ivec acc = {0, 0, 0}, utok = {0, 0, 0}, uoff = {0, 0, 0};
    int32_t max_after = 0;
    if (!F || !len || !e) goto oom;
    F[0] = s0;
    len[0] = 1;
    for (int32_t i = 0; i < gv->n_nodes;) {
        int d = gv->ndepth[i];
        int32_t *P = F + (size_t)(d - 1) * (size_t)md, *C = F + (size_t)d * (size_t)md;
        int dep = len[d - 1];
        memcpy(C, P, (size_t)dep * sizeof(int32_t));
        int r = g_step(g, C, &dep, 0, gv->nbyte[i]);
        if (r == 1) {
            len[d] = dep;
            uint32_t a = gv->ntok[i], z = gv->ntok[i + 1];
            if (a < z) {
                int32_t da = (int32_t)stack_dist(g, C, dep);
                if (da > max_after) max_after = da;
                for (uint32_t k = a; k < z; k++)
                    if (after) after[gv->tok[k]] = (uint16_t)(da < 65535 ? da : 65535);
                    else if (ipush(&acc, gv->tok[k]) != 0) goto oom;
            }
            i++;
        } else {
            if (r == 2 && d > 1 && !after) /* the frame ends before this byte: its subtree is uncertain */
                for (uint32_t k = gv->ntok[i]; k < gv->ntok[gv->nskip[i]]; k++)
                    if (ipush(&utok, gv->tok[k]) != 0 || ipush(&uoff, d - 1) != 0) goto oom;
            i = (int32_t)gv->nskip[i];
        }
    }
    e->n_acc = (uint32_t)acc.n;
    e->max_after = max_after;
    if (acc.n * LIST_MAX_FRACTION <= (size_t)gv->n) {
        e->acc = acc.v;
        acc.v = NULL;
        e->bytes = acc.n * sizeof(int32_t);
    } else {
        size_t words = ((size_t)gv->n + 63) / 64;
        e->bits = calloc(words, sizeof(uint64_t));
        if (e->bits == NULL) goto oom;
        for (size_t k = 0; k < acc.n; k++) e->bits[acc.v[k] >> 6] |= 1ull << (acc.v[k] & 63);
        e->bytes = words * 8;
    }
    e->n_unc = (uint32_t)utok.n;
    if (utok.n) {
        e->unc_tok = utok.v;
        utok.v = NULL;
        e->unc_off = malloc(uoff.n * sizeof(uint16_t));
        if (e->unc_off == NULL) goto oom;
        for (size_t k = 0; k < uoff.n; k++) e->unc_off[k] = (uint16_t)uoff.v[k];
    }
    e->bytes += sizeof(*e) + utok.n * 6;
    free(acc.v), free(utok.v), free(uoff.v), free(F), free(len);
    atomic_fetch_add(&g->walks, 1);
    atomic_fetch_add(&g->walk_ns, now_ns() - t0);
    return e;
oom:
    free(acc.v), free(utok.v), free(uoff.v), free(F), free(len);
    entry_free(e);
    return NULL;
}

/* The entry for state s: cached, or computed (and kept while the cache has room).
 * *temp = 1 when the caller must free it. */
static gentry *entry(dspex_grammar *g, int32_t s, int *temp) {
    *temp = 0;
    gentry *e = atomic_load_explicit(&g->entries[s], memory_order_acquire);
    if (e) return e;
    e = walk(g, s, NULL);
    if (e == NULL) return NULL;
    pthread_mutex_lock(&g->mu);
    gentry *have = atomic_load_explicit(&g->entries[s], memory_order_relaxed);
    if (have) {
        pthread_mutex_unlock(&g->mu);
        entry_free(e);
        return have;
    }
    if (g->cache_bytes + e->bytes <= g->cache_limit) {
        g->cache_bytes += e->bytes;
        atomic_store_explicit(&g->entries[s], e, memory_order_release);
        atomic_fetch_add(&g->n_entries, 1);
    } else {
        *temp = 1;
    }
    pthread_mutex_unlock(&g->mu);
    return e;
}

/* The per-token completions of a wide entry (see walk), computed once and kept with it
 * while the cache budget allows; otherwise *own = 1 and the caller frees them. */
static uint16_t *entry_after(dspex_grammar *g, gentry *e, int32_t s, int *own) {
    *own = 0;
    uint16_t *a = atomic_load_explicit(&e->after, memory_order_acquire);
    if (a) return a;
    size_t n = (size_t)g->gv->n;
    a = malloc(n * sizeof(uint16_t));
    if (a == NULL) return NULL;
    memset(a, 0xFF, n * sizeof(uint16_t));
    gentry *tmp = walk(g, s, a);
    if (tmp == NULL) {
        free(a);
        return NULL;
    }
    entry_free(tmp);
    pthread_mutex_lock(&g->mu);
    uint16_t *have = atomic_load_explicit(&e->after, memory_order_relaxed);
    if (have) {
        free(a);
        a = have;
    } else if (g->cache_bytes + n * sizeof(uint16_t) <= g->cache_limit) {
        g->cache_bytes += n * sizeof(uint16_t);
        atomic_store_explicit(&e->after, a, memory_order_release);
    } else {
        *own = 1;
    }
    pthread_mutex_unlock(&g->mu);
    return a;
}

/* ---------------------------------------------------------------- matchers */
struct dspex_matcher {
    dspex_grammar *g;
    int32_t *st;      /* the stack */
    int depth;
    int32_t *tmp;     /* scratch stack */
    uint64_t *mask;   /* [words] */
    size_t words;
    size_t n_seen;    /* generated tokens accepted so far */
    int64_t budget;   /* tokens the sequence may generate (<= 0: unbounded) */
    int failed;
};

dspex_matcher *dspex_matcher_new(dspex_grammar *g, int64_t budget) {
    dspex_matcher *m = calloc(1, sizeof(*m));
    if (m == NULL) return NULL;
    m->st = malloc((size_t)g->max_depth * sizeof(int32_t));
    m->tmp = malloc((size_t)g->max_depth * sizeof(int32_t));
    m->words = ((size_t)g->gv->n + 63) / 64;
    m->mask = malloc(m->words * sizeof(uint64_t));
    if (!m->st || !m->tmp || !m->mask) {
        free(m->st), free(m->tmp), free(m->mask), free(m);
        return NULL;
    }
    dspex_grammar_retain(g);
    m->g = g;
    m->st[0] = g->rules[0].start;
    m->depth = 1;
    m->budget = budget;
    return m;
}

void dspex_matcher_free(dspex_matcher *m) {
    if (m == NULL) return;
    dspex_grammar_release(m->g);
    free(m->st), free(m->tmp), free(m->mask), free(m);
}

static int all_accepting(const dspex_grammar *g, const int32_t *st, int depth) {
    for (int i = 0; i < depth; i++)
        if (!g->accept[st[i]]) return 0;
    return 1;
}

int dspex_matcher_can_end(const dspex_matcher *m) { return !m->failed && all_accepting(m->g, m->st, m->depth); }
int dspex_matcher_failed(const dspex_matcher *m) { return m->failed; }
int64_t dspex_matcher_remaining(const dspex_matcher *m) { return stack_dist(m->g, m->st, m->depth); }

int dspex_matcher_accept(dspex_matcher *m, int32_t tok) {
    const dspex_gvocab *gv = m->g->gv;
    if (m->failed) return -1;
    if (tok < 0 || tok >= gv->n) goto bad;
    if (gv->eog[tok]) {
        if (!all_accepting(m->g, m->st, m->depth)) goto bad;
        return 0;
    }
    if (gv->len[tok] == 0) goto bad;
    const uint8_t *p = (const uint8_t *)gv->bytes + gv->off[tok];
    for (uint16_t i = 0; i < gv->len[tok]; i++)
        if (g_step(m->g, m->st, &m->depth, 0, p[i]) != 1) goto bad;
    return 0;
bad:
    m->failed = 1;
    return -1;
}

/* Runs token bytes p[0..n) on a copy of st[0..depth); the resulting shortest completion
 * (or -1 when rejected). */
static int64_t try_bytes(dspex_matcher *m, const int32_t *st, int depth, const uint8_t *p, size_t n) {
    memcpy(m->tmp, st, (size_t)depth * sizeof(int32_t));
    int dep = depth;
    for (size_t i = 0; i < n; i++)
        if (g_step(m->g, m->tmp, &dep, 0, p[i]) != 1) return -1;
    return stack_dist(m->g, m->tmp, dep);
}

static void set_bit(uint64_t *w, int32_t t) { w[t >> 6] |= 1ull << (t & 63); }
static int has_bit(const uint64_t *w, int32_t t) { return (int)((w[t >> 6] >> (t & 63)) & 1); }

/* Builds m->mask; returns whether end-of-generation is allowed. limit: the largest
 * shortest-completion a kept token may leave (INT64_MAX: no budget check). */
static int build_mask(dspex_matcher *m, int64_t limit) {
    dspex_grammar *g = m->g;
    const dspex_gvocab *gv = g->gv;
    memset(m->mask, 0, m->words * sizeof(uint64_t));
    int64_t lower = stack_dist(g, m->st, m->depth);
    int eos = 0;
    for (int l = m->depth - 1; l >= 0; l--) {
        lower -= g->dist[m->st[l]]; /* the frames below l */
        int temp;
        gentry *e = entry(g, m->st[l], &temp);
        if (e == NULL) break; /* out of memory: fewer tokens allowed, never wrong ones */
        int check = limit != INT64_MAX && lower + e->max_after > limit;
        if (!check) {
            if (e->bits)
                for (size_t w = 0; w < m->words; w++) m->mask[w] |= e->bits[w];
            else
                for (uint32_t k = 0; k < e->n_acc; k++) set_bit(m->mask, e->acc[k]);
        } else if (e->bits) { /* near the budget: tokens whose completion fits */
            int own;
            uint16_t *after = temp ? NULL : entry_after(g, e, m->st[l], &own);
            int64_t room = limit - lower;
            for (size_t w = 0; w < m->words; w++)
                for (uint64_t x = e->bits[w] & ~m->mask[w]; x; x &= x - 1) {
                    int32_t t = (int32_t)(w * 64 + (size_t)__builtin_ctzll(x));
                    if (after) {
                        if (after[t] <= room) set_bit(m->mask, t);
                        continue;
                    }
                    int64_t d = try_bytes(m, m->st, l + 1, (const uint8_t *)gv->bytes + gv->off[t], gv->len[t]);
                    if (d >= 0 && d <= limit) set_bit(m->mask, t);
                }
            if (after && own) free(after);
        } else {
            for (uint32_t k = 0; k < e->n_acc; k++) {
                int32_t t = e->acc[k];
                if (has_bit(m->mask, t)) continue;
                int64_t d = try_bytes(m, m->st, l + 1, (const uint8_t *)gv->bytes + gv->off[t], gv->len[t]);
                if (d >= 0 && d <= limit) set_bit(m->mask, t);
            }
        }
        if (l > 0 && e->n_unc) {
            /* the bytes the frames below can take next: most uncertain tokens fail there */
            uint8_t next_ok[32] = {0};
            for (int c = 0; c < 256; c++) {
                memcpy(m->tmp, m->st, (size_t)l * sizeof(int32_t));
                int dep = l;
                if (g_step(g, m->tmp, &dep, 0, (uint8_t)c) == 1) next_ok[c >> 3] |= (uint8_t)(1u << (c & 7));
            }
            for (uint32_t k = 0; k < e->n_unc; k++) {
                int32_t t = e->unc_tok[k];
                uint16_t off = e->unc_off[k];
                uint8_t first = (uint8_t)gv->bytes[gv->off[t] + off];
                if (!((next_ok[first >> 3] >> (first & 7)) & 1) || has_bit(m->mask, t)) continue;
                int64_t d = try_bytes(m, m->st, l, (const uint8_t *)gv->bytes + gv->off[t] + off,
                                      (size_t)(gv->len[t] - off));
                if (d >= 0 && d <= limit) set_bit(m->mask, t);
            }
        }
        if (temp) entry_free(e);
        if (!g->accept[m->st[l]]) break;
        if (l == 0) eos = 1;
    }
    return eos;
}

static int mask_empty(const dspex_matcher *m) {
    for (size_t w = 0; w < m->words; w++)
        if (m->mask[w]) return 0;
    return 1;
}

void dspex_matcher_mask(dspex_matcher *m, float *logits, int32_t n_vocab, size_t n_generated) {
    uint64_t t0 = now_ns();
    dspex_grammar *g = m->g;
    const dspex_gvocab *gv = g->gv;
    int eos = 0;
    if (!m->failed) {
        int64_t limit = INT64_MAX;
        if (m->budget > 0) {
            int64_t left = m->budget - (int64_t)n_generated; /* tokens left, this one included */
            int64_t need = stack_dist(g, m->st, m->depth);
            limit = left - 1 > need - 1 ? left - 1 : need - 1; /* at least progress */
        }
        eos = build_mask(m, limit);
        if (!eos && mask_empty(m) && limit != INT64_MAX) eos = build_mask(m, INT64_MAX);
        if (!eos && mask_empty(m)) m->failed = 1; /* a dead end: end the output */
    } else {
        memset(m->mask, 0, m->words * sizeof(uint64_t));
    }
    if (eos || m->failed)
        for (int32_t t = 0; t < gv->n; t++)
            if (gv->eog[t]) set_bit(m->mask, t);
    int32_t n = n_vocab < gv->n ? n_vocab : gv->n;
    for (int32_t w = 0; w * 64 < n; w++) {
        uint64_t bits = m->mask[w];
        int32_t base = w * 64, hi = base + 64 < n ? base + 64 : n;
        if (bits == 0) {
            for (int32_t t = base; t < hi; t++) logits[t] = -INFINITY;
            continue;
        }
        for (uint64_t off = ~bits; off; off &= off - 1) {
            int32_t t = base + __builtin_ctzll(off);
            if (t < hi) logits[t] = -INFINITY;
        }
    }
    for (int32_t t = n; t < n_vocab; t++) logits[t] = -INFINITY;
    atomic_fetch_add(&g->masks, 1);
    atomic_fetch_add(&g->mask_ns, now_ns() - t0);
}

void dspex_matcher_hook(void *ud, float *logits, int32_t n_vocab, const int32_t *generated, size_t n_generated) {
    dspex_matcher *m = ud;
    while (m->n_seen < n_generated) dspex_matcher_accept(m, generated[m->n_seen++]);
    dspex_matcher_mask(m, logits, n_vocab, n_generated);
}

/* ---------------------------------------------------------------- checks and stats */
int dspex_grammar_match(const dspex_grammar *g, const char *text, size_t n, size_t *at) {
    int32_t *st = malloc((size_t)g->max_depth * sizeof(int32_t));
    if (st == NULL) return 0;
    st[0] = g->rules[0].start;
    int depth = 1;
    for (size_t i = 0; i < n; i++)
        if (g_step(g, st, &depth, 0, (uint8_t)text[i]) != 1) {
            if (at) *at = i;
            free(st);
            return 0;
        }
    int r = all_accepting(g, st, depth) ? 2 : 1;
    free(st);
    return r;
}

dspex_gvocab *dspex_grammar_gvocab(const dspex_grammar *g) { return g->gv; }

void dspex_grammar_get_stats(dspex_grammar *g, dspex_grammar_stats *out) {
    memset(out, 0, sizeof *out);
    out->rules = g->nr;
    out->states = g->ns;
    out->classes = g->nc;
    out->max_depth = g->max_depth;
    out->bytes = g->bytes;
    out->min_bytes = g->rules[0].minlen;
    pthread_mutex_lock(&g->mu);
    out->cache_bytes = g->cache_bytes;
    pthread_mutex_unlock(&g->mu);
    out->cache_entries = atomic_load(&g->n_entries);
    out->walks = atomic_load(&g->walks);
    out->walk_ns = atomic_load(&g->walk_ns);
    out->masks = atomic_load(&g->masks);
    out->mask_ns = atomic_load(&g->mask_ns);
}

/* ---------------------------------------------------------------- entry points */
typedef struct {
    const dspex_val *doc;
    int object_only;
} json_root;

static void json_root_fn(gb *b, void *ud, int32_t from, int32_t to) {
    const json_root *j = ud;
    int32_t s = gb_state(b), e = gb_state(b);
    gb_eps(b, from, s);
    gb_byte(b, from, ' ', s);
    if (j->object_only) gb_ref(b, (gkey){GK_GOBJ, NULL, NULL, b->lim.json_depth}, s, e);
    else gj_schema(b, j->doc, j->doc, 0, s, e);
    gb_eps(b, e, to);
    gb_byte(b, e, '\n', to);
}

dspex_grammar *dspex_grammar_json_schema(const char *schema, size_t len, dspex_gvocab *gv,
                                         const dspex_grammar_limits *lim, char *err, size_t errlen) {
    if (len > DSPEX_GRAMMAR_MAX_SCHEMA_BYTES) {
        snprintf(err, errlen, "the schema is %zu bytes; at most %zu are supported", len, DSPEX_GRAMMAR_MAX_SCHEMA_BYTES);
        return NULL;
    }
    char msg[192];
    size_t off = 0;
    if (dspex_json_validate(schema, len, G_MAX_NEST, msg, sizeof msg, &off) != 0) {
        snprintf(err, errlen, "the schema is not valid JSON (nested at most %d levels): %s at byte %zu", G_MAX_NEST, msg,
                 off);
        return NULL;
    }
    dspex_arena a;
    dspex_arena_init(&a, (size_t)64 << 20);
    dspex_val *doc = NULL;
    dspex_grammar *g = NULL;
    if (dxa_pyliteral(schema, len, 0, &a, &doc) != 0 || doc == NULL) {
        snprintf(err, errlen, "the schema could not be read");
    } else {
        json_root j = {doc, 0};
        g = g_compile(json_root_fn, &j, gv, lim, err, errlen);
    }
    dspex_arena_free(&a);
    return g;
}

dspex_grammar *dspex_grammar_json_object(dspex_gvocab *gv, const dspex_grammar_limits *lim, char *err, size_t errlen) {
    json_root j = {NULL, 1};
    return g_compile(json_root_fn, &j, gv, lim, err, errlen);
}
