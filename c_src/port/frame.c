/* Input side of the protocol: {packet, 4} reassembly, the bounds-checked ETF walker,
 * and decoding of commands into dp_spec (request bytes are checked by validate.c). */
#include "port.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int dp_buf_add(dp_buf *b, const void *s, size_t n, size_t limit) {
    if (n == 0) return 0;
    if (n > limit || b->len > limit - n) return -1;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < b->len + n) cap *= 2;
        if (cap > limit) cap = limit; /* >= len + n, checked above */
        char *np = realloc(b->p, cap);
        if (np == NULL) return -2;
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    return 0;
}

int dp_buf_reserve(dp_buf *b, size_t cap) {
    if (cap <= b->cap) return 0;
    char *np = realloc(b->p, cap);
    if (np == NULL) return -2;
    b->p = np;
    b->cap = cap;
    return 0;
}

void dp_buf_free(dp_buf *b) {
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

void dp_spec_free(dp_spec *s) {
    free(s->method);
    free(s->url);
    free(s->body);
    curl_slist_free_all(s->headers);
    memset(s, 0, sizeof(*s));
}

/* ------------------------------------------------------------------ reader */

char *dp_reader_space(dp_reader *r, size_t want, size_t *avail) {
    dp_buf *b = &r->in;
    if (b->cap - b->len < want) {
        size_t cap = b->cap ? b->cap : 65536;
        while (cap - b->len < want) cap *= 2;
        char *np = realloc(b->p, cap);
        if (np == NULL) return NULL;
        b->p = np;
        b->cap = cap;
    }
    *avail = b->cap - b->len;
    return b->p + b->len;
}

int dp_reader_commit(dp_reader *r, size_t n, dp_frame_fn fn, void *ud) {
    dp_buf *b = &r->in;
    b->len += n;
    size_t off = 0;
    int rc = 0;
    while (b->len - off >= 4) {
        const unsigned char *h = (const unsigned char *)b->p + off;
        uint32_t flen = ((uint32_t)h[0] << 24) | ((uint32_t)h[1] << 16) | ((uint32_t)h[2] << 8) | h[3];
        if (flen > DP_MAX_FRAME) {
            rc = -1;
            break;
        }
        if (b->len - off - 4 < flen) {
            /* make room for the whole frame up front: one realloc, no quadratic growth */
            size_t have = b->len - off;
            if (off > 0) memmove(b->p, b->p + off, have);
            b->len = have;
            off = 0;
            size_t avail;
            if (dp_reader_space(r, (size_t)flen + 4 - have, &avail) == NULL) rc = -2;
            return rc;
        }
        rc = fn(ud, b->p + off + 4, flen);
        off += 4 + (size_t)flen;
        if (rc != 0) break;
    }
    if (off > 0) {
        memmove(b->p, b->p + off, b->len - off);
        b->len -= off;
    }
    /* give back memory after a huge frame */
    if (b->len == 0 && b->cap > (1u << 20)) {
        free(b->p);
        b->p = NULL;
        b->cap = 0;
    }
    return rc;
}

/* ------------------------------------------------------------------ decode */

static int dec_binary(const char *buf, int *idx, char **out, size_t *out_len) {
    int type, size;
    if (ei_get_type(buf, idx, &type, &size) != 0 || type != ERL_BINARY_EXT || size < 0) return -1;
    char *p = malloc((size_t)size + 1);
    if (p == NULL) return -2;
    long got = 0;
    if (ei_decode_binary(buf, idx, p, &got) != 0) {
        free(p);
        return -1;
    }
    p[got] = 0;
    *out = p;
    if (out_len) *out_len = (size_t)got;
    return 0;
}

static int dec_int(const char *buf, int *idx, long long *out, long long lo, long long hi) {
    long long v;
    if (ei_decode_longlong(buf, idx, &v) != 0) return -1;
    if (v < lo) v = lo;
    if (v > hi) v = hi;
    *out = v;
    return 0;
}

static int dec_headers(const char *buf, int *idx, struct curl_slist **out, char *err, size_t errlen) {
    int n;
    if (ei_decode_list_header(buf, idx, &n) != 0) {
        snprintf(err, errlen, "headers must be a list of {name, value} binaries");
        return -1;
    }
    if (n > DP_MAX_HEADERS) {
        snprintf(err, errlen, "too many headers (%d > %d)", n, DP_MAX_HEADERS);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        int arity;
        char *name = NULL, *value = NULL;
        size_t nl = 0, vl = 0;
        if (ei_decode_tuple_header(buf, idx, &arity) != 0 || arity != 2 || dec_binary(buf, idx, &name, &nl) != 0 ||
            dec_binary(buf, idx, &value, &vl) != 0) {
            free(name);
            snprintf(err, errlen, "headers must be a list of {name, value} binaries");
            return -1;
        }
        if (dp_valid_header(i, name, nl, value, vl, err, errlen) != 0) {
            free(name);
            free(value);
            return -1;
        }
        char *line = malloc(nl + vl + 3);
        if (line == NULL) {
            free(name);
            free(value);
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        /* "name;" is curl's way to send a header with an empty value */
        if (vl == 0)
            snprintf(line, nl + vl + 3, "%s;", name);
        else
            snprintf(line, nl + vl + 3, "%s: %s", name, value);
        free(name);
        free(value);
        struct curl_slist *nl2 = curl_slist_append(*out, line);
        free(line);
        if (nl2 == NULL) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        *out = nl2;
    }
    if (n > 0 && (ei_decode_list_header(buf, idx, &n) != 0 || n != 0)) {
        snprintf(err, errlen, "headers must be a proper list");
        return -1;
    }
    return 0;
}

static int dec_req_map(const char *buf, int *idx, dp_spec *s, char *err, size_t errlen) {
    int n;
    if (ei_decode_map_header(buf, idx, &n) != 0) {
        snprintf(err, errlen, "request must be a map");
        return -1;
    }
    /* defaults: docs/port-protocol.md */
    s->connect_timeout_ms = 10000;
    s->first_byte_timeout_ms = 60000;
    s->idle_timeout_ms = 60000;
    s->total_timeout_ms = 600000;
    s->max_retries = 3;
    s->retry_base_ms = 500;
    s->retry_max_ms = 5000;
    s->max_response_bytes = DP_MAX_RESPONSE_DEFAULT;
    const long long day = 86400000LL;
    size_t url_len = 0, method_len = 0;
    for (int i = 0; i < n; i++) {
        char key[MAXATOMLEN_UTF8];
        if (ei_decode_atom(buf, idx, key) != 0) {
            snprintf(err, errlen, "request map keys must be atoms");
            return -1;
        }
        int rc = 0;
        if (strcmp(key, "url") == 0) {
            free(s->url);
            s->url = NULL;
            rc = dec_binary(buf, idx, &s->url, &url_len);
        } else if (strcmp(key, "method") == 0) {
            free(s->method);
            s->method = NULL;
            rc = dec_binary(buf, idx, &s->method, &method_len);
        } else if (strcmp(key, "body") == 0) {
            free(s->body);
            s->body = NULL;
            rc = dec_binary(buf, idx, &s->body, &s->body_len);
        } else if (strcmp(key, "headers") == 0) {
            if (dec_headers(buf, idx, &s->headers, err, errlen) != 0) return -1;
        } else if (strcmp(key, "stream") == 0) {
            int b;
            rc = ei_decode_boolean(buf, idx, &b);
            s->stream = b != 0;
        } else if (strcmp(key, "connect_timeout_ms") == 0) {
            rc = dec_int(buf, idx, &s->connect_timeout_ms, 1, day);
        } else if (strcmp(key, "first_byte_timeout_ms") == 0) {
            rc = dec_int(buf, idx, &s->first_byte_timeout_ms, 1, day);
        } else if (strcmp(key, "idle_timeout_ms") == 0) {
            rc = dec_int(buf, idx, &s->idle_timeout_ms, 1, day);
        } else if (strcmp(key, "total_timeout_ms") == 0) {
            rc = dec_int(buf, idx, &s->total_timeout_ms, 1, day);
        } else if (strcmp(key, "max_retries") == 0) {
            rc = dec_int(buf, idx, &s->max_retries, 0, 100);
        } else if (strcmp(key, "retry_base_ms") == 0) {
            rc = dec_int(buf, idx, &s->retry_base_ms, 0, day);
        } else if (strcmp(key, "retry_max_ms") == 0) {
            rc = dec_int(buf, idx, &s->retry_max_ms, 0, day);
        } else if (strcmp(key, "max_response_bytes") == 0) {
            rc = dec_int(buf, idx, &s->max_response_bytes, 1, DP_MAX_RESPONSE_CEILING);
        } else {
            rc = ei_skip_term(buf, idx); /* unknown keys are ignored */
        }
        if (rc != 0) {
            snprintf(err, errlen, "bad value for request key %s", key);
            return -1;
        }
    }
    if (s->url == NULL) {
        snprintf(err, errlen, "request has no url");
        return -1;
    }
    if (dp_valid_url(s->url, url_len, err, errlen) != 0) return -1;
    if (s->method == NULL) {
        s->method = strdup("POST");
        if (s->method == NULL) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        method_len = 4;
    }
    return dp_valid_method(s->method, method_len, err, errlen);
}

/* ei's decoders trust the length fields inside a term and take no buffer size, so a
 * frame is first walked here with explicit bounds: only the term types a request can
 * contain are accepted, nesting is limited, and the term must fill the frame exactly. */
#define DP_ETF_MAX_DEPTH 32

static uint32_t be(const unsigned char *p, int n) {
    uint32_t v = 0;
    for (int i = 0; i < n; i++) v = (v << 8) | p[i];
    return v;
}

static int etf_walk(const unsigned char *b, size_t len, size_t *pos, int depth) {
    if (depth > DP_ETF_MAX_DEPTH || *pos >= len) return -1;
    unsigned char tag = b[(*pos)++];
    size_t left = len - *pos;
    uint64_t n;
    switch (tag) {
    case 97: /* SMALL_INTEGER */
        n = 1;
        break;
    case 98: /* INTEGER */
        n = 4;
        break;
    case 70: /* NEW_FLOAT */
        n = 8;
        break;
    case 106: /* NIL */
        n = 0;
        break;
    case 115: /* SMALL_ATOM */
    case 119: /* SMALL_ATOM_UTF8 */
        if (left < 1) return -1;
        n = 1 + (uint64_t)b[*pos];
        break;
    case 100: /* ATOM */
    case 118: /* ATOM_UTF8 */
    case 107: /* STRING */
        if (left < 2) return -1;
        n = 2 + (uint64_t)be(b + *pos, 2);
        break;
    case 109: /* BINARY */
        if (left < 4) return -1;
        n = 4 + (uint64_t)be(b + *pos, 4);
        break;
    case 77: /* BIT_BINARY */
        if (left < 5) return -1;
        n = 5 + (uint64_t)be(b + *pos, 4);
        break;
    case 110: /* SMALL_BIG */
        if (left < 1) return -1;
        n = 2 + (uint64_t)b[*pos];
        break;
    case 111: /* LARGE_BIG */
        if (left < 4) return -1;
        n = 5 + (uint64_t)be(b + *pos, 4);
        break;
    case 104: /* SMALL_TUPLE */
    case 105: /* LARGE_TUPLE */
    case 108: /* LIST */
    case 116: { /* MAP */
        int hdr = tag == 104 ? 1 : 4;
        if (left < (size_t)hdr) return -1;
        uint64_t count = be(b + *pos, hdr);
        if (tag == 116) count *= 2;
        if (tag == 108) count += 1; /* the tail */
        *pos += (size_t)hdr;
        if (count > len - *pos) return -1; /* every element takes at least one byte */
        for (uint64_t i = 0; i < count; i++)
            if (etf_walk(b, len, pos, depth + 1) != 0) return -1;
        return 0;
    }
    default:
        return -1; /* pids, refs, funs, ports...: never part of a command */
    }
    if (n > left) return -1;
    *pos += (size_t)n;
    return 0;
}

int dp_etf_valid(const char *buf, size_t len) {
    const unsigned char *b = (const unsigned char *)buf;
    if (len < 2 || b[0] != 131) return 0;
    size_t pos = 1;
    return etf_walk(b, len, &pos, 0) == 0 && pos == len;
}

dp_cmd_kind dp_decode(const char *buf, size_t len, long long *id, long long *ack, dp_spec *spec, char *err,
                      size_t errlen) {
    int idx = 0, ver, arity;
    char tag[MAXATOMLEN_UTF8];
    *id = -1;
    if (!dp_etf_valid(buf, len)) {
        snprintf(err, errlen, "frame is not a well-formed external term");
        return DP_CMD_BAD;
    }
    if (ei_decode_version(buf, &idx, &ver) != 0 || ei_decode_tuple_header(buf, &idx, &arity) != 0 || arity < 2 ||
        ei_decode_atom(buf, &idx, tag) != 0) {
        snprintf(err, errlen, "frame is not a {tag, id, ...} tuple");
        return DP_CMD_BAD;
    }
    if (ei_decode_longlong(buf, &idx, id) != 0 || *id < 0) {
        *id = -1;
        snprintf(err, errlen, "request id must be a non-negative integer");
        return DP_CMD_BAD;
    }
    if (strcmp(tag, "ping") == 0 && arity == 2) return DP_CMD_PING;
    if (strcmp(tag, "cancel") == 0 && arity == 2) return DP_CMD_CANCEL;
    if (strcmp(tag, "ack") == 0 && arity == 3) {
        if (ei_decode_longlong(buf, &idx, ack) != 0 || *ack < 0) {
            snprintf(err, errlen, "ack byte count must be a non-negative integer");
            return DP_CMD_BAD;
        }
        return DP_CMD_ACK;
    }
    if (strcmp(tag, "http") == 0 && arity == 3) {
        memset(spec, 0, sizeof(*spec));
        if (dec_req_map(buf, &idx, spec, err, errlen) != 0) {
            dp_spec_free(spec);
            return DP_CMD_BAD;
        }
        return DP_CMD_HTTP;
    }
    if (strncmp(tag, "optim_", 6) == 0) return DP_CMD_OPTIM;
    snprintf(err, errlen, "unknown command %s/%d", tag, arity);
    return DP_CMD_BAD;
}
