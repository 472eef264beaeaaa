/* Response parsing, kept free of curl calls so a fuzz target can feed it bytes
 * (fuzz/fuzz_http_response.c): the status line and header lines, the plain body
 * (bounded by max_response_bytes, pre-sized from Content-Length, handed to the writer
 * without a copy), and a 2xx stream parsed as server-sent events into {sse, Id, Events}
 * frames, one per network read, spending the stream's credit (flow.c). */
#include "port.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DP_MAX_RESP_HEADERS_BYTES (1u << 20)

void dp_resp_reset(dp_req *r) {
    r->status = 0;
    r->headers_done = false;
    r->stream_started = false;
    r->resp_headers.len = 0;
    r->n_resp_headers = 0;
    r->body.len = 0;
    r->body_bytes = 0;
    r->fail_type = r->fail_msg = NULL;
    r->errbuf[0] = 0;
    if (r->sse) dspex_sse_reset(r->sse);
    if (r->sse_events > 0) ei_x_free(&r->sse_frame);
    r->sse_events = 0;
}

static size_t abort_with(dp_req *r, const char *type, const char *msg) {
    r->fail_type = type;
    r->fail_msg = msg;
    return 0;
}

static size_t too_large(dp_req *r) {
    snprintf(r->msgbuf, sizeof(r->msgbuf), "response body larger than max_response_bytes (%lld bytes)",
             r->spec.max_response_bytes);
    return abort_with(r, "response_too_large", r->msgbuf);
}

/* ================================================================= frames */

static void encode_headers(ei_x_buff *x, const dp_req *r) {
    if (r->n_resp_headers > 0) {
        ei_x_encode_list_header(x, (long)r->n_resp_headers);
        const char *p = r->resp_headers.p;
        for (size_t i = 0; i < r->n_resp_headers; i++) {
            size_t nl = strlen(p);
            const char *v = p + nl + 1;
            size_t vl = strlen(v);
            ei_x_encode_tuple_header(x, 2);
            ei_x_encode_binary(x, p, (int)nl);
            ei_x_encode_binary(x, v, (int)vl);
            p = v + vl + 1;
        }
    }
    ei_x_encode_empty_list(x);
}

/* {response, Id, Status, Headers, Body, Info}: the head up to the body's BINARY_EXT
 * length, then the body buffer itself, then the info map, so a 32 MiB body is never
 * copied into the frame. */
void dp_resp_send_response(dp_req *r) {
    ei_x_buff head, tail;
    if (ei_x_new_with_version(&head) != 0) return;
    if (ei_x_new(&tail) != 0) {
        ei_x_free(&head);
        return;
    }
    int rc = 0;
    rc |= ei_x_encode_tuple_header(&head, 6);
    rc |= ei_x_encode_atom(&head, "response");
    rc |= ei_x_encode_longlong(&head, r->id);
    rc |= ei_x_encode_long(&head, r->status);
    encode_headers(&head, r);
    uint32_t n = (uint32_t)r->body.len;
    unsigned char bin[5] = {ERL_BINARY_EXT, (unsigned char)(n >> 24), (unsigned char)(n >> 16),
                            (unsigned char)(n >> 8), (unsigned char)n};
    rc |= ei_x_append_buf(&head, (const char *)bin, 5);
    dp_encode_info(&tail, r);
    if (rc != 0) {
        ei_x_free(&head);
        ei_x_free(&tail);
        dp_send_error(r->ctx, r->id, "network", "out of memory encoding the response", r);
        return;
    }
    dp_send_parts(r->ctx, &head, &r->body, &tail);
}

static void send_stream_start(dp_req *r) {
    ei_x_buff x;
    if (ei_x_new_with_version(&x) != 0) return;
    ei_x_encode_tuple_header(&x, 5);
    ei_x_encode_atom(&x, "stream_start");
    ei_x_encode_longlong(&x, r->id);
    ei_x_encode_long(&x, r->status);
    encode_headers(&x, r);
    dp_encode_info(&x, r);
    dp_send(r->ctx, &x);
}

void dp_resp_send_stream_end(dp_req *r) {
    ei_x_buff x;
    if (ei_x_new_with_version(&x) != 0) return;
    ei_x_encode_tuple_header(&x, 3);
    ei_x_encode_atom(&x, "stream_end");
    ei_x_encode_longlong(&x, r->id);
    dp_encode_info(&x, r);
    dp_send(r->ctx, &x);
}

/* Events parsed during one write callback go out as one {sse, Id, Events} frame. */
static int on_sse_event(void *ud, const char *ev, size_t evlen, const char *data, size_t dlen) {
    dp_req *r = ud;
    int rc = 0;
    if (r->sse_events == 0) {
        if (ei_x_new_with_version(&r->sse_frame) != 0) return DSPEX_SSE_ENOMEM;
        rc |= ei_x_encode_tuple_header(&r->sse_frame, 3);
        rc |= ei_x_encode_atom(&r->sse_frame, "sse");
        rc |= ei_x_encode_longlong(&r->sse_frame, r->id);
    }
    r->sse_events++; /* from here on sse_frame is ours to free */
    rc |= ei_x_encode_list_header(&r->sse_frame, 1);
    rc |= ei_x_encode_tuple_header(&r->sse_frame, 2);
    if (ev)
        rc |= ei_x_encode_binary(&r->sse_frame, ev, (int)evlen);
    else
        rc |= ei_x_encode_atom(&r->sse_frame, "nil");
    rc |= ei_x_encode_binary(&r->sse_frame, data, (int)dlen);
    if (rc != 0) { /* never send a half-encoded frame */
        ei_x_free(&r->sse_frame);
        r->sse_events = 0;
        return DSPEX_SSE_ENOMEM;
    }
    return 0;
}

static void flush_sse(dp_req *r) {
    if (r->sse_events == 0) return;
    r->sse_events = 0;
    if (ei_x_encode_empty_list(&r->sse_frame) != 0) {
        ei_x_free(&r->sse_frame);
        return;
    }
    long long n = dp_send(r->ctx, &r->sse_frame);
    if (n > 0) dp_flow_spent(r, n);
}

int dp_resp_stream_finish(dp_req *r) {
    int e = dspex_sse_finish(r->sse, on_sse_event, r);
    flush_sse(r);
    if (e != 0) {
        abort_with(r, "network", e == DSPEX_SSE_ETOOBIG ? "SSE event larger than the event limit" : "out of memory parsing SSE");
        return -1;
    }
    return 0;
}

/* ================================================================= headers */

const char *dp_resp_find_header(const dp_req *r, const char *name) {
    const char *p = r->resp_headers.p;
    for (size_t i = 0; i < r->n_resp_headers; i++) {
        size_t nl = strlen(p);
        const char *v = p + nl + 1;
        if (strcmp(p, name) == 0) return v;
        p = v + strlen(v) + 1;
    }
    return NULL;
}

/* "HTTP/1.1 200 OK" or "HTTP/2 200": the three-digit code, or 0. */
static long parse_status(const char *buf, size_t len) {
    size_t i = 5;
    while (i < len && buf[i] != ' ') i++;
    while (i < len && buf[i] == ' ') i++;
    if (i + 3 > len || !isdigit((unsigned char)buf[i]) || !isdigit((unsigned char)buf[i + 1]) ||
        !isdigit((unsigned char)buf[i + 2]) || (i + 3 < len && isdigit((unsigned char)buf[i + 3])))
        return 0;
    return (buf[i] - '0') * 100 + (buf[i + 1] - '0') * 10 + (buf[i + 2] - '0');
}

/* Content-Length of an unencoded body, or -1 (absent, malformed, or content-encoded:
 * curl decodes, so the announced size is not what the write callback will see). */
static long long plain_content_length(const dp_req *r) {
    const char *v = dp_resp_find_header(r, "content-length");
    if (v == NULL || dp_resp_find_header(r, "content-encoding") != NULL) return -1;
    long long n = 0;
    if (*v == 0) return -1;
    for (; *v; v++) {
        if (!isdigit((unsigned char)*v) || n > (1LL << 50)) return -1;
        n = n * 10 + (*v - '0');
    }
    return n;
}

static size_t headers_complete(dp_req *r) {
    r->headers_done = true;
    bool streamed = r->spec.stream && r->status >= 200 && r->status < 300;
    long long cl = plain_content_length(r);
    if (cl > r->spec.max_response_bytes) return too_large(r);
    /* one allocation of the announced size instead of doubling (a 32 MiB body would
     * otherwise peak at 32 MiB of buffer after a 16 MiB one was copied) */
    if (!streamed && cl > 0 && dp_buf_reserve(&r->body, (size_t)cl) != 0)
        return abort_with(r, "network", "out of memory buffering the body");
    /* from now on the watchdog measures silence between body bytes */
    dp_http_watch(r);
    if (streamed) {
        r->stream_started = true;
        send_stream_start(r);
    }
    return 1;
}

size_t dp_resp_header(dp_req *r, const char *buf, size_t len) {
    r->last_activity_ms = uv_now(r->ctx->loop);
    if (len >= 5 && memcmp(buf, "HTTP/", 5) == 0) {
        r->resp_headers.len = 0;
        r->n_resp_headers = 0;
        r->headers_done = false;
        r->status = parse_status(buf, len);
        return len;
    }
    size_t l = len;
    while (l > 0 && (buf[l - 1] == '\r' || buf[l - 1] == '\n')) l--;
    if (l == 0) {
        if (r->status >= 100 && r->status < 200) return len; /* interim response */
        if (r->headers_done) return len;                     /* end of trailers */
        return headers_complete(r) ? len : 0;
    }
    if (r->headers_done) return len; /* trailers are not reported */
    const char *colon = memchr(buf, ':', l);
    if (colon == NULL) return len;
    size_t nl = (size_t)(colon - buf);
    while (nl > 0 && (buf[nl - 1] == ' ' || buf[nl - 1] == '\t')) nl--;
    const char *v = colon + 1;
    const char *end = buf + l;
    while (v < end && (*v == ' ' || *v == '\t')) v++;
    while (end > v && (end[-1] == ' ' || end[-1] == '\t')) end--;
    if (nl == 0 || memchr(buf, 0, nl) || memchr(v, 0, (size_t)(end - v))) return len;
    size_t start = r->resp_headers.len;
    if (dp_buf_add(&r->resp_headers, buf, nl, DP_MAX_RESP_HEADERS_BYTES) != 0 ||
        dp_buf_add(&r->resp_headers, "", 1, DP_MAX_RESP_HEADERS_BYTES) != 0 ||
        dp_buf_add(&r->resp_headers, v, (size_t)(end - v), DP_MAX_RESP_HEADERS_BYTES) != 0 ||
        dp_buf_add(&r->resp_headers, "", 1, DP_MAX_RESP_HEADERS_BYTES) != 0) {
        r->resp_headers.len = start;
        return abort_with(r, "network", "response headers larger than 1 MiB");
    }
    for (size_t i = 0; i < nl; i++) {
        char *c = r->resp_headers.p + start + i;
        *c = (char)tolower((unsigned char)*c);
    }
    r->n_resp_headers++;
    return len;
}

/* ================================================================= body */

size_t dp_resp_body(dp_req *r, const char *ptr, size_t len) {
    if (dp_flow_should_pause(r)) return CURL_WRITEFUNC_PAUSE; /* curl keeps the bytes */
    r->last_activity_ms = uv_now(r->ctx->loop);
    if (len > (uint64_t)r->spec.max_response_bytes - r->body_bytes) return too_large(r);
    r->body_bytes += len;
    if (r->stream_started) {
        int rc = dspex_sse_feed(r->sse, ptr, len, on_sse_event, r);
        flush_sse(r);
        if (rc != 0)
            return abort_with(r, "network",
                              rc == DSPEX_SSE_ETOOBIG ? "SSE event larger than the event limit (8 MiB or max_response_bytes)"
                                                      : "out of memory parsing SSE");
        return len;
    }
    int rc = dp_buf_add(&r->body, ptr, len, (size_t)r->spec.max_response_bytes);
    if (rc == -1) return too_large(r);
    if (rc != 0) return abort_with(r, "network", "out of memory buffering the body");
    return len;
}
