/* BPE pre-tokenizers: the regex splits llama.cpp applies before merging, written out by
 * hand over Unicode category flags (llama.cpp itself uses hand-written matchers for the
 * gpt-2, llama3 and qwen2 expressions and std::regex over category-collapsed text for the
 * others; the simple expressions used here reduce to the scans below).
 *
 * A pre-tokenizer is a list of passes; each pass re-splits every segment produced by the
 * previous one, never across segment boundaries:
 *   gpt-2:      's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 *   llama3:     (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}
 *               | ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
 *   qwen2:      the same with \p{N} (single digits)
 *   starcoder:  \p{N} (every digit alone), then gpt-2
 *   default:    [\p{P}$+<=>^~|]+, then gpt-2, then \p{N}+, then [0-9][0-9][0-9] */
#include <string.h>

#include "dspex/infer/unicode.h"
#include "dspex/infer/vocab.h"

#define OOR 0xFFFFFFFFu /* "no code point": outside the segment */

typedef struct {
    const uint32_t *cps; /* the whole text */
    size_t ini, end;     /* current segment [ini, end) */
    size_t prev;         /* end of the last emitted word */
    dspex_buf *out;      /* word lengths (uint32) */
} seg;

static uint32_t cp_at(const seg *s, size_t p) { return p >= s->ini && p < s->end ? s->cps[p] : OOR; }
static uint16_t fl_at(const seg *s, size_t p) { return p >= s->ini && p < s->end ? dspex_ucd_flags(s->cps[p]) : 0; }

/* Emits the word [prev, end) if non-empty; returns its length. */
static size_t emit(seg *s, size_t end) {
    size_t len = end - s->prev;
    if (len > 0) {
        uint32_t l = (uint32_t)len;
        dspex_buf_put(s->out, (const char *)&l, 4);
    }
    s->prev = end;
    return len;
}

#define IS_WS(f) ((f) & DSPEX_UCD_WHITESPACE)
#define IS_L(f) ((f) & DSPEX_UCD_LETTER)
#define IS_N(f) ((f) & DSPEX_UCD_NUMBER)
#define IS_WLN(f) ((f) & (DSPEX_UCD_WHITESPACE | DSPEX_UCD_LETTER | DSPEX_UCD_NUMBER))

static uint32_t ascii_lower(uint32_t c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; }

/* 's 't 're 've 'm 'll 'd at pos: returns the match length (0 when none). */
static size_t contraction(const seg *s, size_t pos, int fold) {
    if (cp_at(s, pos) != '\'' || pos + 1 >= s->end) return 0;
    uint32_t a = cp_at(s, pos + 1);
    if (fold) a = ascii_lower(a);
    if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
    if (pos + 2 < s->end) {
        uint32_t b = cp_at(s, pos + 2);
        if (fold) b = ascii_lower(b);
        if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
    }
    return 0;
}

/* The trailing whitespace rules shared by all three: \s+(?!\S) keeps the last space for
 * the next word; otherwise \s+. Returns 1 when it consumed something. */
static int whitespace_run(seg *s, size_t *pos) {
    size_t n = 0;
    while (IS_WS(fl_at(s, *pos + n))) n++;
    if (n > 1 && cp_at(s, *pos + n) != OOR) {
        *pos += n - 1;
        emit(s, *pos);
        return 1;
    }
    if (n > 0) {
        *pos += n;
        emit(s, *pos);
        return 1;
    }
    return 0;
}

static void split_gpt2(seg *s) {
    size_t pos = s->ini;
    while (pos < s->end) {
        uint32_t c = cp_at(s, pos);
        size_t k = contraction(s, pos, 0);
        if (k) {
            pos += emit(s, pos + k);
            continue;
        }
        uint16_t f2 = c == ' ' ? fl_at(s, pos + 1) : fl_at(s, pos);
        if (IS_L(f2) || IS_N(f2)) { /* ' ?\p{L}+' and ' ?\p{N}+' */
            uint16_t cls = IS_L(f2) ? DSPEX_UCD_LETTER : DSPEX_UCD_NUMBER;
            pos += (c == ' ');
            while (fl_at(s, pos) & cls) pos++;
            emit(s, pos);
            continue;
        }
        if (!IS_WLN(f2) && f2) { /* ' ?[^\s\p{L}\p{N}]+' */
            pos += (c == ' ');
            while (!IS_WLN(f2) && f2) f2 = fl_at(s, ++pos);
            emit(s, pos);
            continue;
        }
        if (whitespace_run(s, &pos)) continue;
        emit(s, ++pos);
    }
}

/* llama3 (max_digits 3) and qwen2 (max_digits 1). */
static void split_llama3(seg *s, size_t max_digits) {
    size_t pos = s->ini;
    while (pos < s->end) {
        uint32_t c = cp_at(s, pos);
        uint16_t f = fl_at(s, pos);
        size_t k = contraction(s, pos, 1);
        if (k) {
            pos += emit(s, pos + k);
            continue;
        }
        /* [^\r\n\p{L}\p{N}]?\p{L}+ */
        if (!(c == '\r' || c == '\n' || IS_N(f)) && (IS_L(f) || IS_L(fl_at(s, pos + 1)))) {
            pos++;
            while (IS_L(fl_at(s, pos))) pos++;
            emit(s, pos);
            continue;
        }
        /* \p{N}{1,max} */
        if (IS_N(f)) {
            size_t ini = pos;
            while (IS_N(fl_at(s, pos))) {
                if (++pos - ini >= max_digits) {
                    emit(s, pos);
                    ini = pos;
                }
            }
            emit(s, pos);
            continue;
        }
        /*  ?[^\s\p{L}\p{N}]+[\r\n]* */
        uint16_t f2 = c == ' ' ? fl_at(s, pos + 1) : f;
        if (!IS_WLN(f2) && f) {
            pos += (c == ' ');
            while (!IS_WLN(f2) && f2) f2 = fl_at(s, ++pos);
            uint32_t c2 = cp_at(s, pos);
            while (c2 == '\r' || c2 == '\n') c2 = cp_at(s, ++pos);
            emit(s, pos);
            continue;
        }
        /* \s*[\r\n]+ : up to the last \r or \n of the whitespace run */
        size_t n = 0, last_rn = 0;
        while (IS_WS(fl_at(s, pos + n))) {
            uint32_t c2 = cp_at(s, pos + n);
            if (c2 == '\r' || c2 == '\n') last_rn = pos + n + 1;
            n++;
        }
        if (last_rn > 0) {
            pos = last_rn;
            emit(s, pos);
            continue;
        }
        if (whitespace_run(s, &pos)) continue;
        emit(s, ++pos);
    }
}

/* The std::regex passes: leftmost matches of a simple pattern; the text between matches
 * becomes words too. match() returns the match length at pos (0 = none). */
static size_t m_digit(const seg *s, size_t pos) { return IS_N(fl_at(s, pos)) ? 1 : 0; }

static size_t m_digits(const seg *s, size_t pos) {
    size_t p = pos;
    while (IS_N(fl_at(s, p))) p++;
    return p - pos;
}

static size_t m_ascii3(const seg *s, size_t pos) {
    for (size_t k = 0; k < 3; k++) {
        uint32_t c = cp_at(s, pos + k);
        if (c < '0' || c > '9') return 0;
    }
    return 3;
}

/* [\p{P}$+<=>^~|]+ over llama.cpp's collapsed text: non-ASCII punctuation, or one of
 * the ASCII characters its punctuation/symbol substitution lists ($+<=>^~| added). */
static int punct_cp(uint32_t c) {
    if (c < 0x80) return c != '`' && strchr("!\"#%&'()*,-./:;?@[\\]_{}$+<=>^~|", (int)c) != NULL && c != 0;
    return !IS_WS(dspex_ucd_flags(c)) && (dspex_ucd_flags(c) & 0xFF) == DSPEX_UCD_PUNCTUATION;
}

static size_t m_punct(const seg *s, size_t pos) {
    size_t p = pos;
    while (p < s->end && punct_cp(s->cps[p])) p++;
    return p - pos;
}

static void split_matches(seg *s, size_t (*match)(const seg *, size_t)) {
    size_t pos = s->ini;
    while (pos < s->end) {
        size_t k = match(s, pos);
        if (k == 0) {
            pos++;
            continue;
        }
        emit(s, pos); /* the gap before the match */
        pos += k;
        emit(s, pos);
    }
    emit(s, s->end);
}

enum { P_GPT2, P_LLAMA3, P_QWEN2, P_DIGIT, P_DIGITS, P_ASCII3, P_PUNCT };

int dspex_pretokenize(int pre, const uint32_t *cps, size_t n, dspex_buf *lens) {
    int passes[4], np = 0;
    switch (pre) {
    case DSPEX_PRE_GPT2: passes[np++] = P_GPT2; break;
    case DSPEX_PRE_LLAMA3: passes[np++] = P_LLAMA3; break;
    case DSPEX_PRE_QWEN2: passes[np++] = P_QWEN2; break;
    case DSPEX_PRE_STARCODER:
        passes[np++] = P_DIGIT;
        passes[np++] = P_GPT2;
        break;
    default:
        passes[np++] = P_PUNCT;
        passes[np++] = P_GPT2;
        passes[np++] = P_DIGITS;
        passes[np++] = P_ASCII3;
        break;
    }
    dspex_buf cur, next;
    dspex_buf_init(&cur);
    dspex_buf_init(&next);
    uint32_t all = (uint32_t)n;
    if (n > 0) dspex_buf_put(&cur, (const char *)&all, 4);
    for (int p = 0; p < np; p++) {
        next.len = 0;
        size_t start = 0;
        for (size_t i = 0; i + 4 <= cur.len; i += 4) {
            uint32_t len;
            memcpy(&len, cur.p + i, 4);
            seg s = {cps, start, start + len, start, &next};
            switch (passes[p]) {
            case P_GPT2: split_gpt2(&s); break;
            case P_LLAMA3: split_llama3(&s, 3); break;
            case P_QWEN2: split_llama3(&s, 1); break;
            case P_DIGIT: split_matches(&s, m_digit); break;
            case P_DIGITS: split_matches(&s, m_digits); break;
            case P_ASCII3: split_matches(&s, m_ascii3); break;
            default: split_matches(&s, m_punct); break;
            }
            start += len;
        }
        dspex_buf tmp = cur;
        cur = next;
        next = tmp;
    }
    if (!cur.oom && cur.len) dspex_buf_put(lens, cur.p, cur.len);
    int oom = cur.oom || next.oom || lens->oom;
    dspex_buf_free(&cur);
    dspex_buf_free(&next);
    return oom ? -1 : 0;
}
