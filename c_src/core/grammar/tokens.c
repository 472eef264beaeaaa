/* The vocabulary index: every token's bytes and a trie over them, stored in preorder so
 * a mask walk is a linear scan in which a rejected node skips its subtree (nskip), and
 * the tokens of a subtree are one contiguous range of tok[] (a prefix is sorted before
 * its extensions). Built once per model: O(total bytes) memory, O(n log n) time. */
#include "dspex/errmsg.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grammar_int.h"

typedef struct {
    const char *p;
    uint32_t len;
    int32_t id;
} tokref;

static int cmp_tok(const void *a, const void *b) {
    const tokref *x = a, *y = b;
    uint32_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->p, y->p, n);
    if (c) return c;
    if (x->len != y->len) return x->len < y->len ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

void dspex_gvocab_retain(dspex_gvocab *gv) { atomic_fetch_add(&gv->refs, 1); }

static void gv_free(dspex_gvocab *gv) {
    free(gv->off), free(gv->len), free(gv->bytes), free(gv->eog);
    free(gv->nbyte), free(gv->ndepth), free(gv->nskip), free(gv->ntok), free(gv->tok);
    free(gv);
}

void dspex_gvocab_release(dspex_gvocab *gv) {
    if (gv && atomic_fetch_sub(&gv->refs, 1) == 1) gv_free(gv);
}

int32_t dspex_gvocab_size(const dspex_gvocab *gv) { return gv->n; }

const char *dspex_gvocab_piece(const dspex_gvocab *gv, int32_t id, size_t *len) {
    if (id < 0 || id >= gv->n) {
        *len = 0;
        return "";
    }
    *len = gv->len[id];
    return gv->bytes + gv->off[id];
}

int dspex_gvocab_is_eog(const dspex_gvocab *gv, int32_t id) { return id >= 0 && id < gv->n && gv->eog[id]; }

dspex_gvocab *dspex_gvocab_from_pieces(const char *const *pieces, const size_t *lens, const uint8_t *eog, int32_t n,
                                       char *err, size_t errlen) {
    if (n <= 0 || n > (1 << 24)) {
        dspex_errmsg(err, errlen, "vocabulary size %d out of range (1..16777216)", n);
        return NULL;
    }
    dspex_gvocab *gv = calloc(1, sizeof(*gv));
    if (gv == NULL) goto oom;
    atomic_init(&gv->refs, 1);
    gv->n = n;
    size_t total = 0;
    for (int32_t i = 0; i < n; i++)
        if (lens[i] <= DSPEX_GRAMMAR_MAX_TOKEN_BYTES && !(eog && eog[i])) total += lens[i];
    if (total > UINT32_MAX) {
        dspex_errmsg(err, errlen, "vocabulary too large");
        gv_free(gv);
        return NULL;
    }
    gv->off = calloc((size_t)n, sizeof(uint32_t));
    gv->len = calloc((size_t)n, sizeof(uint16_t));
    gv->bytes = malloc(total + 1);
    gv->eog = calloc((size_t)n, 1);
    tokref *refs = malloc((size_t)n * sizeof(tokref));
    if (!gv->off || !gv->len || !gv->bytes || !gv->eog || !refs) {
        free(refs);
        goto oom;
    }
    size_t at = 0, nref = 0, nodes_max = 0;
    for (int32_t i = 0; i < n; i++) {
        if (eog && eog[i]) {
            gv->eog[i] = 1;
            gv->n_eog++;
            continue;
        }
        if (lens[i] == 0 || lens[i] > DSPEX_GRAMMAR_MAX_TOKEN_BYTES) continue;
        memcpy(gv->bytes + at, pieces[i], lens[i]);
        gv->off[i] = (uint32_t)at;
        gv->len[i] = (uint16_t)lens[i];
        refs[nref++] = (tokref){gv->bytes + at, (uint32_t)lens[i], i};
        at += lens[i];
        nodes_max += lens[i];
        if ((int32_t)lens[i] > gv->max_len) gv->max_len = (int32_t)lens[i];
    }
    qsort(refs, nref, sizeof(tokref), cmp_tok);
    gv->nbyte = malloc(nodes_max + 1);
    gv->ndepth = malloc((nodes_max + 1) * sizeof(uint16_t));
    gv->nskip = malloc((nodes_max + 1) * sizeof(uint32_t));
    gv->ntok = malloc((nodes_max + 2) * sizeof(uint32_t));
    gv->tok = malloc((nref + 1) * sizeof(int32_t));
    uint32_t *path = malloc(((size_t)gv->max_len + 1) * sizeof(uint32_t));
    if (!gv->nbyte || !gv->ndepth || !gv->nskip || !gv->ntok || !gv->tok || !path) {
        free(refs);
        free(path);
        goto oom;
    }
    uint32_t nn = 0, depth = 0;
    const tokref *prev = NULL;
    for (size_t t = 0; t < nref; t++) {
        const tokref *r = &refs[t];
        uint32_t lcp = 0;
        if (prev) {
            uint32_t m = prev->len < r->len ? prev->len : r->len;
            while (lcp < m && prev->p[lcp] == r->p[lcp]) lcp++;
        }
        while (depth > lcp) gv->nskip[path[--depth]] = nn; /* subtrees that ended */
        for (uint32_t k = lcp; k < r->len; k++) {
            gv->nbyte[nn] = (uint8_t)r->p[k];
            gv->ndepth[nn] = (uint16_t)(k + 1);
            gv->ntok[nn] = (uint32_t)t;
            path[depth++] = nn++;
        }
        gv->tok[t] = r->id; /* attaches to the newest node (sorted order) */
        prev = r;
    }
    while (depth > 0) gv->nskip[path[--depth]] = nn;
    gv->ntok[nn] = (uint32_t)nref;
    gv->n_nodes = (int32_t)nn;
    free(refs);
    free(path);
    return gv;
oom:
    dspex_errmsg(err, errlen, "out of memory building the vocabulary index");
    if (gv) gv_free(gv);
    return NULL;
}

dspex_gvocab *dspex_gvocab_new(const dspex_vocab *v, char *err, size_t errlen) {
    int32_t n = v->n_tokens;
    if (n <= 0) {
        dspex_errmsg(err, errlen, "the model has no vocabulary");
        return NULL;
    }
    dspex_buf all;
    dspex_buf_init(&all);
    size_t *offs = malloc((size_t)n * sizeof(size_t)), *lens = malloc((size_t)n * sizeof(size_t));
    const char **pieces = malloc((size_t)n * sizeof(char *));
    uint8_t *eog = calloc((size_t)n, 1);
    dspex_gvocab *gv = NULL;
    if (!offs || !lens || !pieces || !eog) {
        dspex_errmsg(err, errlen, "out of memory");
        goto out;
    }
    for (int32_t i = 0; i < n; i++) {
        offs[i] = all.len;
        uint16_t at = v->attr ? v->attr[i] : 0;
        eog[i] = v->eog && v->eog[i];
        if (!eog[i] && !(at & (DSPEX_ATTR_CONTROL | DSPEX_ATTR_UNKNOWN | DSPEX_ATTR_UNUSED))) dspex_token_piece(v, i, 0, &all);
        lens[i] = all.len - offs[i];
    }
    if (all.oom) {
        dspex_errmsg(err, errlen, "out of memory");
        goto out;
    }
    for (int32_t i = 0; i < n; i++) pieces[i] = all.p ? all.p + offs[i] : "";
    gv = dspex_gvocab_from_pieces(pieces, lens, eog, n, err, errlen);
    if (gv && gv->n_eog == 0) {
        dspex_errmsg(err, errlen, "the model has no end-of-generation token; constrained decoding needs one to end outputs");
        dspex_gvocab_release(gv);
        gv = NULL;
    }
out:
    dspex_buf_free(&all);
    free(offs), free(lens), free(pieces), free(eog);
    return gv;
}
