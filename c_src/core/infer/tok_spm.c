/* SPM tokenizer (tokenizer.ggml.model = "llama"), as llama.cpp implements it: not
 * SentencePiece's lattice search but greedy bigram merging. Split the fragment into
 * UTF-8 characters, queue every adjacent pair whose concatenation is a token, keyed by
 * that token's score (highest first; ties: leftmost first), and repeatedly merge the best
 * pair that is still current. A final symbol is always a token (merges only make tokens)
 * or a single character; characters outside the vocabulary become byte tokens <0xXX>.
 * The caller has already prefixed the space and replaced spaces by U+2581. */
#include <stdlib.h>
#include <string.h>

#include "dspex/infer/unicode.h"
#include "dspex/infer/vocab.h"
#include "merge_queue.h"

typedef struct {
    int prev, next; /* neighbours in the symbol chain (-1 = none) */
    size_t off, n;  /* byte range in the text; n = 0 once merged away */
} sym;


static int try_add(const dspex_vocab *v, const char *text, const sym *s, int left, int right, dspex_merge_queue *h) {
    if (left < 0 || right < 0) return 0;
    size_t n = s[left].n + s[right].n;
    int32_t id = dspex_vocab_find(v, text + s[left].off, n);
    if (id < 0) return 0;
    dspex_merge b = {left, right, v->score[id], s[left].n, s[right].n};
    return dspex_mq_push(h, b);
}

static void put_id(dspex_buf *out, int32_t id) { dspex_buf_put(out, (const char *)&id, 4); }

int dspex_spm_tokenize(const dspex_vocab *v, const char *text, size_t len, dspex_buf *out) {
    if (len == 0) return 0;
    sym *s = malloc(len * sizeof(sym));
    dspex_merge_queue h = {0};
    if (s == NULL) return -1;
    int n = 0;
    for (size_t off = 0; off < len;) {
        size_t cl = dspex_utf8_lead_len((unsigned char)text[off]);
        if (cl > len - off) cl = len - off;
        s[n] = (sym){n - 1, off + cl == len ? -1 : n + 1, off, cl};
        off += cl;
        n++;
    }
    int rc = 0;
    for (int i = 1; i < n && rc == 0; i++) rc = try_add(v, text, s, i - 1, i, &h);
    while (h.n > 0 && rc == 0) {
        dspex_merge b = dspex_mq_pop(&h);
        sym *l = &s[b.left], *r = &s[b.right];
        if (l->n == 0 || r->n == 0 || l->n != b.ln || r->n != b.rn) continue; /* stale */
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0) s[r->next].prev = b.left;
        rc = try_add(v, text, s, l->prev, b.left, &h);
        if (rc == 0) rc = try_add(v, text, s, b.left, l->next, &h);
    }
    for (int i = 0; i != -1 && rc == 0; i = s[i].next) {
        int32_t id = dspex_vocab_find(v, text + s[i].off, s[i].n);
        if (id >= 0) {
            put_id(out, id);
            continue;
        }
        for (size_t k = 0; k < s[i].n; k++) { /* byte fallback */
            int32_t bt = v->byte_token[(unsigned char)text[s[i].off + k]];
            if (bt < 0) bt = v->unk;
            if (bt >= 0) put_id(out, bt);
        }
    }
    free(s);
    dspex_mq_free(&h);
    return rc != 0 || out->oom ? -1 : 0;
}
