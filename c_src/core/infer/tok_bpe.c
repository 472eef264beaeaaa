/* BPE tokenizer (tokenizer.ggml.model = "gpt2"), as llama.cpp implements it. The
 * fragment is split into words by the pre-tokenizer (pretok.c); each word is mapped
 * byte by byte through GPT-2's byte table into the alphabet the vocabulary and merges
 * are written in; then, inside each word, the adjacent pair with the lowest merge rank is
 * merged until no pair has a rank (ties: leftmost). A final symbol that is not a token is
 * emitted as the tokens of its single bytes (in practice: dropped unless ASCII), exactly
 * as llama.cpp does. With ignore_merges (llama3) a word that is already a token is
 * emitted whole. */
#include <stdlib.h>
#include <string.h>

#include "dspex/infer/unicode.h"
#include "dspex/utf8.h"
#include "dspex/infer/vocab.h"
#include "merge_queue.h"

typedef struct {
    int prev, next; /* neighbours in the symbol chain (-1 = none) */
    size_t off, n;  /* byte range in the encoded word; n = 0 once merged away */
} sym;


static uint64_t fnv(const char *p, size_t n, uint64_t h) {
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)p[i]) * 1099511628211ull;
    return h;
}

/* Rank of the merge "left right", or -1. */
static int32_t merge_rank(const dspex_vocab *v, const char *l, size_t ln, const char *r, size_t rn) {
    if (v->merge_hash == NULL) return -1;
    uint64_t hh = fnv(l, ln, 1469598103934665603ull);
    hh = fnv(" ", 1, hh);
    hh = fnv(r, rn, hh);
    size_t m = v->merge_cap - 1, h = (size_t)hh & m;
    while (v->merge_hash[h]) {
        int32_t rank = (int32_t)v->merge_hash[h] - 1;
        dspex_str s = v->merge[rank];
        if (s.n == ln + 1 + rn && v->merge_split[rank] == ln && memcmp(s.p, l, ln) == 0 &&
            memcmp(s.p + ln + 1, r, rn) == 0)
            return rank;
        h = (h + 1) & m;
    }
    return -1;
}

static int try_add(const dspex_vocab *v, const char *w, const sym *s, int left, int right, dspex_merge_queue *h) {
    if (left < 0 || right < 0) return 0;
    int32_t rank = merge_rank(v, w + s[left].off, s[left].n, w + s[right].off, s[right].n);
    if (rank < 0) return 0;
    dspex_merge b = {left, right, -(double)rank, s[left].n, s[right].n};
    return dspex_mq_push(h, b);
}

static void put_id(dspex_buf *out, int32_t id) { dspex_buf_put(out, (const char *)&id, 4); }

/* Merges one encoded word and appends its tokens. */
static int bpe_word(const dspex_vocab *v, const char *w, size_t wn, sym **sp, size_t *scap, dspex_merge_queue *h, dspex_buf *out) {
    if (wn == 0) return 0;
    if (v->ignore_merges) {
        int32_t id = dspex_vocab_find(v, w, wn);
        if (id >= 0) {
            put_id(out, id);
            return 0;
        }
    }
    if (*scap < wn) {
        sym *ns = realloc(*sp, wn * sizeof(sym));
        if (ns == NULL) return -1;
        *sp = ns;
        *scap = wn;
    }
    sym *s = *sp;
    int n = 0;
    for (size_t off = 0; off < wn;) {
        size_t cl = dspex_utf8_lead_len((unsigned char)w[off]);
        if (cl > wn - off) cl = wn - off;
        s[n] = (sym){n - 1, off + cl == wn ? -1 : n + 1, off, cl};
        off += cl;
        n++;
    }
    h->n = 0;
    int rc = 0;
    for (int i = 1; i < n && rc == 0; i++) rc = try_add(v, w, s, i - 1, i, h);
    while (h->n > 0 && rc == 0) {
        dspex_merge b = dspex_mq_pop(h);
        sym *l = &s[b.left], *r = &s[b.right];
        if (l->n == 0 || r->n == 0 || l->n != b.ln || r->n != b.rn) continue; /* stale */
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0) s[r->next].prev = b.left;
        rc = try_add(v, w, s, l->prev, b.left, h);
        if (rc == 0) rc = try_add(v, w, s, b.left, l->next, h);
    }
    for (int i = 0; i != -1 && rc == 0; i = s[i].next) {
        int32_t id = dspex_vocab_find(v, w + s[i].off, s[i].n);
        if (id >= 0) {
            put_id(out, id);
            continue;
        }
        for (size_t k = 0; k < s[i].n; k++) {
            int32_t bt = dspex_vocab_find(v, w + s[i].off + k, 1);
            if (bt >= 0) put_id(out, bt);
        }
    }
    return rc;
}

int dspex_bpe_tokenize(const dspex_vocab *v, const char *text, size_t len, dspex_buf *out) {
    if (len == 0) return 0;
    uint32_t *cps = malloc(len * sizeof(uint32_t));
    if (cps == NULL) return -1;
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        uint32_t c = dspex_utf8_next_lenient((const unsigned char *)text, len, &i);
        cps[n++] = c > 0x10FFFF ? 0xFFFD : c;
    }
    dspex_buf lens, word;
    dspex_buf_init(&lens);
    dspex_buf_init(&word);
    sym *s = NULL;
    size_t scap = 0;
    dspex_merge_queue h = {0};
    int rc = dspex_pretokenize(v->pre, cps, n, &lens);
    size_t at = 0;
    for (size_t i = 0; rc == 0 && i + 4 <= lens.len; i += 4) {
        uint32_t wl;
        memcpy(&wl, lens.p + i, 4);
        word.len = 0;
        for (size_t k = at; k < at + wl; k++) { /* code point -> UTF-8 -> GPT-2 bytes */
            char u[4];
            size_t un = dspex_utf8_encode(u, cps[k]);
            for (size_t j = 0; j < un; j++) {
                char e[4];
                size_t en = dspex_utf8_encode(e, dspex_gpt2_byte_to_cp((uint8_t)u[j]));
                dspex_buf_put(&word, e, en);
            }
        }
        at += wl;
        if (word.oom) rc = -1;
        else rc = bpe_word(v, word.p, word.len, &s, &scap, &h, out);
    }
    free(cps);
    free(s);
    dspex_mq_free(&h);
    dspex_buf_free(&lens);
    dspex_buf_free(&word);
    return rc != 0 || out->oom ? -1 : 0;
}
