/* Incremental server-sent-events parser. See include/dspex/sse.h. */
#include "dspex/sse.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    char *p;
    size_t len, cap;
} sse_buf;

struct dspex_sse_parser {
    size_t max;     /* bound on line + data + event bytes held at once */
    sse_buf line;   /* current unterminated line */
    sse_buf data;   /* data lines of the current event, joined by '\n' */
    sse_buf event;  /* event type of the current event */
    int has_data;   /* at least one data field seen */
    int skip_lf;    /* previous byte was '\r': a following '\n' belongs to it */
    int bom_pos;    /* bytes of a leading UTF-8 BOM matched so far; -1 when done */
};

static const unsigned char k_bom[3] = {0xEF, 0xBB, 0xBF};

dspex_sse_parser *dspex_sse_new(size_t max_event_bytes) {
    dspex_sse_parser *p = calloc(1, sizeof(*p));
    if (p == NULL) return NULL;
    p->max = max_event_bytes ? max_event_bytes : 1;
    return p;
}

void dspex_sse_free(dspex_sse_parser *p) {
    if (p == NULL) return;
    free(p->line.p);
    free(p->data.p);
    free(p->event.p);
    free(p);
}

void dspex_sse_reset(dspex_sse_parser *p) {
    p->line.len = p->data.len = p->event.len = 0;
    p->has_data = 0;
    p->skip_lf = 0;
    p->bom_pos = 0;
}

static size_t held(const dspex_sse_parser *p) { return p->line.len + p->data.len + p->event.len; }

/* Appends n bytes to b, keeping the parser's total under its bound. */
static int buf_add(dspex_sse_parser *p, sse_buf *b, const char *s, size_t n) {
    if (n == 0) return DSPEX_SSE_OK;
    if (n > p->max || held(p) > p->max - n) return DSPEX_SSE_ETOOBIG;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n) cap *= 2;
        if (cap > p->max) cap = p->max;
        char *np = realloc(b->p, cap);
        if (np == NULL) return DSPEX_SSE_ENOMEM;
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    return DSPEX_SSE_OK;
}

static int dispatch(dspex_sse_parser *p, dspex_sse_event_fn fn, void *ud) {
    int rc = 0;
    if (p->has_data) {
        const char *ev = p->event.len ? p->event.p : NULL;
        rc = fn(ud, ev, p->event.len, p->data.len ? p->data.p : "", p->data.len);
    }
    p->data.len = 0;
    p->event.len = 0;
    p->has_data = 0;
    return rc;
}

static int process_line(dspex_sse_parser *p, const char *l, size_t n, dspex_sse_event_fn fn, void *ud) {
    if (n == 0) return dispatch(p, fn, ud);
    if (l[0] == ':') return DSPEX_SSE_OK; /* comment */
    const char *colon = memchr(l, ':', n);
    size_t flen = colon ? (size_t)(colon - l) : n;
    const char *v = colon ? colon + 1 : l + n;
    size_t vlen = (size_t)(l + n - v);
    if (vlen > 0 && v[0] == ' ') {
        v++;
        vlen--;
    }
    if (flen == 4 && memcmp(l, "data", 4) == 0) {
        int rc;
        if (p->has_data && (rc = buf_add(p, &p->data, "\n", 1)) != 0) return rc;
        if ((rc = buf_add(p, &p->data, v, vlen)) != 0) return rc;
        p->has_data = 1;
    } else if (flen == 5 && memcmp(l, "event", 5) == 0) {
        p->event.len = 0;
        return buf_add(p, &p->event, v, vlen);
    }
    return DSPEX_SSE_OK; /* id, retry and unknown fields are ignored */
}

int dspex_sse_feed(dspex_sse_parser *p, const char *buf, size_t len, dspex_sse_event_fn fn, void *ud) {
    size_t i = 0;
    while (p->bom_pos >= 0 && i < len) {
        if ((unsigned char)buf[i] == k_bom[p->bom_pos]) {
            i++;
            if (++p->bom_pos == 3) p->bom_pos = -1;
        } else {
            /* not a BOM: replay the bytes matched so far as content */
            int matched = p->bom_pos;
            p->bom_pos = -1;
            if (matched > 0) {
                int rc = buf_add(p, &p->line, (const char *)k_bom, (size_t)matched);
                if (rc != 0) return rc;
            }
        }
    }
    while (i < len) {
        if (p->skip_lf) {
            p->skip_lf = 0;
            if (buf[i] == '\n') {
                i++;
                continue;
            }
        }
        size_t j = i;
        while (j < len && buf[j] != '\n' && buf[j] != '\r') j++;
        if (j == len) return buf_add(p, &p->line, buf + i, len - i);
        int rc;
        if (p->line.len == 0) {
            rc = process_line(p, buf + i, j - i, fn, ud);
        } else {
            rc = buf_add(p, &p->line, buf + i, j - i);
            if (rc == 0) {
                size_t n = p->line.len;
                p->line.len = 0; /* the line's bytes stay valid until the next add */
                rc = process_line(p, p->line.p, n, fn, ud);
            }
        }
        if (rc != 0) return rc;
        if (buf[j] == '\r') p->skip_lf = 1;
        i = j + 1;
    }
    return DSPEX_SSE_OK;
}

int dspex_sse_finish(dspex_sse_parser *p, dspex_sse_event_fn fn, void *ud) {
    int rc = 0;
    if (p->bom_pos > 0) {
        int matched = p->bom_pos;
        p->bom_pos = -1;
        rc = buf_add(p, &p->line, (const char *)k_bom, (size_t)matched);
        if (rc != 0) return rc;
    }
    if (p->line.len > 0) {
        size_t n = p->line.len;
        p->line.len = 0;
        rc = process_line(p, p->line.p, n, fn, ud);
        if (rc != 0) return rc;
    }
    return dispatch(p, fn, ud);
}
