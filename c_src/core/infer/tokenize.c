/* Tokenization entry point and detokenization (llama_tokenize / llama_token_to_piece /
 * llama_detokenize semantics). Special tokens are split out of the text first, longest
 * first: user-defined tokens always, control and unknown tokens only with parse_special;
 * the raw-text fragments in between go to the SPM or BPE tokenizer. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "dspex/infer/unicode.h"
#include "dspex/infer/vocab.h"

typedef struct {
    int32_t token; /* >= 0: a special token; -1: raw text */
    size_t off, n; /* raw text range */
} frag;

typedef struct {
    frag *a;       /* fragments in text order */
    size_t n, cap; /* used, allocated */
} frags;

static int frags_push(frags *f, frag x) {
    if (f->n == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 16;
        frag *na = realloc(f->a, cap * sizeof(frag));
        if (na == NULL) return -1;
        f->a = na;
        f->cap = cap;
    }
    f->a[f->n++] = x;
    return 0;
}

static const char *find(const char *h, size_t hn, const char *nd, size_t nn) {
    if (nn == 0 || nn > hn) return NULL;
    const char *end = h + hn - nn;
    for (const char *p = h; p <= end; p++) {
        p = memchr(p, nd[0], (size_t)(end - p) + 1);
        if (p == NULL) return NULL;
        if (memcmp(p, nd, nn) == 0) return p;
    }
    return NULL;
}

/* Splits every raw fragment at each occurrence of each special token. */
static int partition(const dspex_vocab *v, const char *text, size_t len, int parse_special, frags *out) {
    frags cur = {0}, next = {0};
    if (len > 0 && frags_push(&cur, (frag){-1, 0, len}) != 0) return -1;
    for (int32_t si = 0; si < v->n_special; si++) {
        int32_t id = v->special[si];
        uint16_t attr = v->attr[id];
        if (!parse_special && (attr & (DSPEX_ATTR_CONTROL | DSPEX_ATTR_UNKNOWN))) continue;
        dspex_str t = v->text[id];
        next.n = 0;
        for (size_t i = 0; i < cur.n; i++) {
            frag f = cur.a[i];
            if (f.token >= 0) {
                if (frags_push(&next, f) != 0) goto oom;
                continue;
            }
            size_t off = f.off, n = f.n;
            for (;;) {
                const char *m = find(text + off, n, t.p, t.n);
                if (m == NULL) {
                    if (n > 0 && frags_push(&next, (frag){-1, off, n}) != 0) goto oom;
                    break;
                }
                size_t mpos = (size_t)(m - text), left = mpos - off;
                if (attr & DSPEX_ATTR_LSTRIP)
                    while (left > 0 && isspace((unsigned char)text[off + left - 1])) left--;
                if (left > 0 && frags_push(&next, (frag){-1, off, left}) != 0) goto oom;
                if (frags_push(&next, (frag){id, 0, 0}) != 0) goto oom;
                size_t roff = mpos + t.n, rn = off + n - roff;
                if (attr & DSPEX_ATTR_RSTRIP)
                    while (rn > 0 && isspace((unsigned char)text[roff])) {
                        roff++;
                        rn--;
                    }
                off = roff;
                n = rn;
                if (n == 0) break;
            }
        }
        frags tmp = cur;
        cur = next;
        next = tmp;
    }
    free(next.a);
    *out = cur;
    return 0;
oom:
    free(cur.a);
    free(next.a);
    return -1;
}

static void put_id(dspex_buf *out, int32_t id) { dspex_buf_put(out, (const char *)&id, 4); }

int dspex_tokenize(const dspex_vocab *v, const char *text, size_t len, int add_special, int parse_special,
                   dspex_buf *out) {
    if (v->type == DSPEX_VOCAB_NONE) return -1;
    frags f = {0};
    if (partition(v, text, len, parse_special, &f) != 0) return -1;
    int rc = 0;
    if (add_special && v->add_bos) put_id(out, v->bos);
    if (v->type == DSPEX_VOCAB_SPM) {
        int prev_special = 1; /* the first fragment gets the space prefix */
        dspex_buf esc;
        dspex_buf_init(&esc);
        for (size_t i = 0; i < f.n && rc == 0; i++) {
            if (f.a[i].token >= 0) {
                put_id(out, f.a[i].token);
                prev_special = 1;
                continue;
            }
            esc.len = 0;
            if (v->add_space_prefix && prev_special) dspex_buf_put(&esc, "\xe2\x96\x81", 3);
            for (size_t k = 0; k < f.a[i].n; k++) {
                char c = text[f.a[i].off + k];
                if (c == ' ')
                    dspex_buf_put(&esc, "\xe2\x96\x81", 3);
                else
                    dspex_buf_putc(&esc, c);
            }
            rc = esc.oom ? -1 : dspex_spm_tokenize(v, esc.p, esc.len, out);
            prev_special = 0;
        }
        dspex_buf_free(&esc);
    } else {
        for (size_t i = 0; i < f.n && rc == 0; i++) {
            if (f.a[i].token >= 0)
                put_id(out, f.a[i].token);
            else
                rc = dspex_bpe_tokenize(v, text + f.a[i].off, f.a[i].n, out);
        }
    }
    if (add_special && v->add_eos) put_id(out, v->eos);
    free(f.a);
    return rc != 0 || out->oom ? -1 : 0;
}

/* ------------------------------------------------------------------- detokenize */

/* Appends one token's text; lstrip removes one leading space. */
static int piece(const dspex_vocab *v, int32_t id, int special, int lstrip, dspex_buf *out) {
    if (id < 0 || id >= v->n_tokens) return -1;
    if (v->type == DSPEX_VOCAB_NONE) return 0;
    uint16_t a = v->attr[id];
    const uint16_t special_attr = DSPEX_ATTR_UNKNOWN | DSPEX_ATTR_CONTROL;
    if (!special && (a & special_attr)) return 0;
    dspex_str t = v->text[id];
    size_t start = out->len;
    if (a & (special_attr | DSPEX_ATTR_USER_DEFINED)) {
        dspex_buf_put(out, t.p, t.n);
    } else if (a & DSPEX_ATTR_NORMAL) {
        if (v->type == DSPEX_VOCAB_SPM) {
            for (size_t i = 0; i < t.n; i++) {
                if (i + 3 <= t.n && memcmp(t.p + i, "\xe2\x96\x81", 3) == 0) {
                    dspex_buf_putc(out, ' ');
                    i += 2;
                } else {
                    dspex_buf_putc(out, t.p[i]);
                }
            }
        } else { /* GPT-2 byte-level: each code point stands for one byte */
            for (size_t i = 0; i < t.n;) {
                size_t s = i;
                uint32_t cp = dspex_utf8_next_lenient((const unsigned char *)t.p, t.n, &i);
                int b = dspex_gpt2_cp_to_byte(cp);
                if (b >= 0) {
                    dspex_buf_putc(out, (char)b);
                } else { /* llama.cpp's marker for a code point outside the table */
                    dspex_buf_puts(out, "[UNK_BYTE_0x");
                    for (size_t k = s; k < i; k++) dspex_buf_printf(out, "%02x", (unsigned char)t.p[k]);
                    dspex_buf_put(out, t.p, t.n);
                    dspex_buf_putc(out, ']');
                }
            }
        }
    } else if (a & DSPEX_ATTR_BYTE) {
        unsigned v8 = 0;
        for (size_t i = 3; i < 5 && i < t.n; i++) {
            char c = t.p[i];
            v8 = v8 * 16 + (unsigned)(c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                                                        : c >= 'A' && c <= 'F' ? c - 'A' + 10 : 0);
        }
        dspex_buf_putc(out, (char)v8);
    }
    if (lstrip && out->len > start && out->p[start] == ' ') {
        memmove(out->p + start, out->p + start + 1, out->len - start - 1);
        out->len--;
        out->p[out->len] = 0;
    }
    return out->oom ? -1 : 0;
}

int dspex_token_piece(const dspex_vocab *v, int32_t id, int special, dspex_buf *out) {
    return piece(v, id, special, 0, out);
}

int dspex_detokenize(const dspex_vocab *v, const int32_t *ids, size_t n, int remove_special, int unparse_special,
                     dspex_buf *out) {
    int remove_space = v->add_space_prefix;
    if (remove_special && v->add_bos && n > 0 && ids[0] == v->bos) {
        remove_space = 0;
        ids++;
        n--;
    }
    if (remove_special && v->add_eos && n > 0 && ids[n - 1] == v->eos) n--;
    size_t start = out->len;
    for (size_t i = 0; i < n; i++) {
        if (piece(v, ids[i], unparse_special, remove_space, out) != 0) return -1;
        remove_space = 0;
    }
    if (!v->clean_spaces || out->len - start < 2) return 0;
    /* the clean_spaces passes, in llama.cpp's order */
    char *t = out->p + start;
    size_t total = out->len - start, w;
    w = 1; /* " ?", " !", " .", " ," */
    for (size_t i = 1; i < total; i++) {
        char x = t[i];
        if (t[i - 1] == ' ' && (x == '?' || x == '!' || x == '.' || x == ',')) w--;
        t[w++] = x;
    }
    total = w;
    w = total ? 1 : 0; /* " ' " */
    for (size_t i = 1; i < total; i++) {
        char x = t[i];
        if (x == '\'' && i + 1 < total && t[i - 1] == ' ' && t[i + 1] == ' ') {
            w--;
            t[++i] = 0;
        }
        t[w++] = x;
    }
    total = w;
    w = total ? 1 : 0; /* " 's", " 'm", " 're", " 've" */
    for (size_t i = 1; i < total; i++) {
        char x = t[i];
        if (t[i - 1] == ' ' && x == '\'' && i + 1 < total) {
            char x1 = t[i + 1];
            if (x1 == 's' || x1 == 'm')
                w--;
            else if (x1 != 't' && x1 != 'd' && i + 2 < total) {
                char x2 = t[i + 2];
                if ((x1 == 'r' && x2 == 'e') || (x1 == 'v' && x2 == 'e')) w--;
            }
        }
        t[w++] = x;
    }
    out->len = start + w;
    out->p[out->len] = 0;
    return 0;
}
