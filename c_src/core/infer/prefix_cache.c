/* Shared-prefix KV reuse: a radix tree of token segments with their K/V. See
 * dspex/infer/prefix_cache.h. */
#include "dspex/infer/prefix_cache.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct pnode {
    struct pnode *parent, *child, *next; /* tree: first child, next sibling */
    struct pnode *prev_all, *next_all;   /* every node, for eviction scans */
    int32_t *tok;                        /* [n] the segment's tokens */
    float *kv;                           /* [2][n_layer][n][kv_dim]: keys, then values */
    int32_t n;                           /* positions in the segment */
    uint64_t used;                       /* LRU clock of the last touch */
} pnode;

struct dspex_prefix_cache {
    pthread_mutex_t mu;
    int32_t n_layer, kvd;
    size_t capacity, token_bytes;
    uint64_t clock;
    pnode root;           /* no tokens; its children start the prefixes */
    pnode all;            /* sentinel of the list of every node */
    dspex_prefix_stats st;
};

dspex_prefix_cache *dspex_prefix_cache_new(const dspex_model *m, size_t capacity) {
    dspex_prefix_cache *pc = calloc(1, sizeof(*pc));
    if (pc == NULL) return NULL;
    if (pthread_mutex_init(&pc->mu, NULL) != 0) {
        free(pc);
        return NULL;
    }
    pc->n_layer = m->hp.n_layer;
    pc->kvd = m->hp.n_head_kv * m->hp.head_dim;
    pc->capacity = capacity;
    pc->token_bytes = 2 * (size_t)pc->n_layer * (size_t)pc->kvd * sizeof(float) + sizeof(int32_t);
    pc->all.prev_all = pc->all.next_all = &pc->all;
    pc->st.capacity = capacity;
    pc->st.token_bytes = pc->token_bytes;
    return pc;
}

static void node_release(pnode *x) {
    free(x->tok);
    free(x->kv);
    free(x);
}

void dspex_prefix_cache_free(dspex_prefix_cache *pc) {
    if (pc == NULL) return;
    for (pnode *x = pc->all.next_all; x != &pc->all;) {
        pnode *nx = x->next_all;
        node_release(x);
        x = nx;
    }
    pthread_mutex_destroy(&pc->mu);
    free(pc);
}

static size_t node_bytes(const dspex_prefix_cache *pc, int32_t n) { return (size_t)n * pc->token_bytes + sizeof(pnode); }

static float *kv_at(const dspex_prefix_cache *pc, const pnode *x, int which, int32_t l, int32_t i) {
    return x->kv + (((size_t)which * pc->n_layer + (size_t)l) * (size_t)x->n + (size_t)i) * (size_t)pc->kvd;
}

/* A detached node of n positions (contents unset), or NULL. */
static pnode *node_new(const dspex_prefix_cache *pc, int32_t n) {
    pnode *x = calloc(1, sizeof(*x));
    if (x == NULL) return NULL;
    x->n = n;
    x->tok = malloc((size_t)n * sizeof(int32_t));
    x->kv = malloc((size_t)n * (pc->token_bytes - sizeof(int32_t)));
    if (x->tok == NULL || x->kv == NULL) {
        node_release(x);
        return NULL;
    }
    return x;
}

static void link_all(dspex_prefix_cache *pc, pnode *x) {
    x->next_all = pc->all.next_all;
    x->prev_all = &pc->all;
    pc->all.next_all->prev_all = x;
    pc->all.next_all = x;
    pc->st.nodes++;
    pc->st.bytes += node_bytes(pc, x->n);
}

/* Node positions [0, k) -> context positions [off, off + k). */
static void copy_out(const dspex_prefix_cache *pc, const pnode *x, dspex_ctx *c, int32_t off, int32_t k) {
    size_t row = (size_t)pc->kvd, len = (size_t)k * row * sizeof(float);
    for (int32_t l = 0; l < pc->n_layer; l++) {
        size_t at = ((size_t)l * (size_t)c->n_ctx + (size_t)off) * row;
        memcpy(c->k + at, kv_at(pc, x, 0, l, 0), len);
        memcpy(c->v + at, kv_at(pc, x, 1, l, 0), len);
    }
    memcpy(c->tokens + off, x->tok, (size_t)k * sizeof(int32_t));
}

/* Context positions [off, off + x->n) -> the node. */
static void copy_in(const dspex_prefix_cache *pc, pnode *x, const dspex_ctx *c, int32_t off) {
    size_t row = (size_t)pc->kvd, len = (size_t)x->n * row * sizeof(float);
    for (int32_t l = 0; l < pc->n_layer; l++) {
        size_t at = ((size_t)l * (size_t)c->n_ctx + (size_t)off) * row;
        memcpy(kv_at(pc, x, 0, l, 0), c->k + at, len);
        memcpy(kv_at(pc, x, 1, l, 0), c->v + at, len);
    }
    memcpy(x->tok, c->tokens + off, (size_t)x->n * sizeof(int32_t));
}

/* Positions [from, from + k) of node a -> positions [0, k) of node b. */
static void copy_part(const dspex_prefix_cache *pc, const pnode *a, int32_t from, pnode *b, int32_t k) {
    size_t len = (size_t)k * (size_t)pc->kvd * sizeof(float);
    for (int w = 0; w < 2; w++)
        for (int32_t l = 0; l < pc->n_layer; l++) memcpy(kv_at(pc, b, w, l, 0), kv_at(pc, a, w, l, from), len);
    memcpy(b->tok, a->tok + from, (size_t)k * sizeof(int32_t));
}

static pnode *find_child(const pnode *x, int32_t tok) {
    for (pnode *ch = x->child; ch; ch = ch->next)
        if (ch->tok[0] == tok) return ch;
    return NULL;
}

static int32_t match_len(const pnode *x, const int32_t *tokens, int32_t n) {
    int32_t k = 0;
    while (k < x->n && k < n && x->tok[k] == tokens[k]) k++;
    return k;
}

/* Splits x after its first i positions (0 < i < x->n): x keeps them, a new child takes
 * the rest and x's children. Returns -1 (nothing changed) when out of memory. */
static int split(dspex_prefix_cache *pc, pnode *x, int32_t i) {
    pnode *head = node_new(pc, i), *tail = node_new(pc, x->n - i);
    if (head == NULL || tail == NULL) {
        if (head) node_release(head);
        if (tail) node_release(tail);
        return -1;
    }
    copy_part(pc, x, 0, head, i);
    copy_part(pc, x, i, tail, x->n - i);
    pc->st.bytes -= node_bytes(pc, x->n);
    /* x takes head's storage; tail becomes x's only child, adopting x's children */
    free(x->tok);
    free(x->kv);
    x->tok = head->tok;
    x->kv = head->kv;
    x->n = i;
    free(head);
    pc->st.bytes += node_bytes(pc, x->n);
    tail->child = x->child;
    for (pnode *ch = tail->child; ch; ch = ch->next) ch->parent = tail;
    tail->parent = x;
    tail->used = x->used;
    x->child = tail;
    link_all(pc, tail);
    return 0;
}

static void remove_leaf(dspex_prefix_cache *pc, pnode *x) {
    pnode **pp = &x->parent->child;
    while (*pp != x) pp = &(*pp)->next;
    *pp = x->next;
    x->prev_all->next_all = x->next_all;
    x->next_all->prev_all = x->prev_all;
    pc->st.nodes--;
    pc->st.bytes -= node_bytes(pc, x->n);
    pc->st.evictions++;
    node_release(x);
}

static void evict(dspex_prefix_cache *pc) {
    while ((pc->st.bytes > pc->capacity || pc->st.nodes > DSPEX_PREFIX_MAX_NODES) && pc->st.nodes > 0) {
        pnode *victim = NULL;
        for (pnode *x = pc->all.next_all; x != &pc->all; x = x->next_all)
            if (x->child == NULL && (victim == NULL || x->used < victim->used)) victim = x;
        remove_leaf(pc, victim); /* a non-empty tree always has a leaf */
    }
}

int32_t dspex_prefix_cache_lookup(dspex_prefix_cache *pc, dspex_ctx *c, const int32_t *tokens, int32_t n, int32_t max) {
    if (pc == NULL) return 0;
    pthread_mutex_lock(&pc->mu);
    pc->st.lookups++;
    int32_t pos = 0;
    if (max > n) max = n;
    if (max > c->n_ctx) max = c->n_ctx;
    if (pc->capacity > 0 && c->n_past == 0 && c->k != NULL) {
        pnode *x = &pc->root;
        while (pos < max) {
            pnode *ch = find_child(x, tokens[pos]);
            if (ch == NULL) break;
            int32_t k = match_len(ch, tokens + pos, max - pos);
            copy_out(pc, ch, c, pos, k);
            ch->used = ++pc->clock;
            pos += k;
            if (k < ch->n) break;
            x = ch;
        }
        for (pnode *p = x; p != &pc->root; p = p->parent) p->used = pc->clock; /* the path stays young */
        c->n_past = pos;
    }
    if (pos > 0) {
        pc->st.hits++;
        pc->st.reused_tokens += (uint64_t)pos;
    }
    pthread_mutex_unlock(&pc->mu);
    return pos;
}

void dspex_prefix_cache_insert(dspex_prefix_cache *pc, const dspex_ctx *c, int32_t n) {
    if (pc == NULL) return;
    if (n > c->n_past) n = c->n_past;
    pthread_mutex_lock(&pc->mu);
    if (pc->capacity == 0 || n <= 0 || c->k == NULL || node_bytes(pc, 1) > pc->capacity) goto out;
    pnode *x = &pc->root;
    int32_t pos = 0;
    uint64_t now = ++pc->clock;
    while (pos < n) {
        pnode *ch = find_child(x, c->tokens[pos]);
        if (ch == NULL) break;
        int32_t k = match_len(ch, c->tokens + pos, n - pos);
        ch->used = now;
        if (k < ch->n) {
            if (pos + k == n) { /* the prompt ends inside this node: all of it is held */
                pos = n;
                break;
            }
            if (split(pc, ch, k) != 0) goto out;
        }
        pos += k;
        x = ch;
    }
    if (pos < n) {
        /* a segment bigger than the whole cache would only be evicted again: its start fits */
        int32_t k = n - pos;
        size_t fit = (pc->capacity - sizeof(pnode)) / pc->token_bytes;
        if ((size_t)k > fit) k = (int32_t)fit;
        pnode *leaf = node_new(pc, k);
        if (leaf == NULL) goto out;
        copy_in(pc, leaf, c, pos);
        leaf->parent = x;
        leaf->next = x->child;
        x->child = leaf;
        leaf->used = now;
        link_all(pc, leaf);
        pc->st.inserted_tokens += (uint64_t)k;
    }
    evict(pc);
out:
    pthread_mutex_unlock(&pc->mu);
}

void dspex_prefix_cache_note_prefill(dspex_prefix_cache *pc, int32_t n) {
    if (pc == NULL || n <= 0) return;
    pthread_mutex_lock(&pc->mu);
    pc->st.prefilled_tokens += (uint64_t)n;
    pthread_mutex_unlock(&pc->mu);
}

void dspex_prefix_cache_stats(dspex_prefix_cache *pc, dspex_prefix_stats *out) {
    pthread_mutex_lock(&pc->mu);
    *out = pc->st;
    pthread_mutex_unlock(&pc->mu);
}
