/* libcurl multi driven by libuv (sockets via uv_poll_t, curl's timer via uv_timer_t),
 * per-request state, watchdog timeouts (first byte, idle, total), retries with backoff,
 * SSE streaming and the request table keyed by id. */
#include "port.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define DP_MAX_RESP_HEADERS_BYTES (1u << 20)
#define DP_CONNECT_RECHECK_MS 250

/* ================================================================= curl <-> uv glue */

typedef struct {
    uv_poll_t poll;
    curl_socket_t fd;
    dp_ctx *ctx;
} dp_sock;

static void check_done(dp_ctx *ctx);

static void on_poll(uv_poll_t *h, int status, int events) {
    dp_sock *s = h->data;
    dp_ctx *ctx = s->ctx;
    int flags = 0;
    if (status < 0) {
        flags = CURL_CSELECT_ERR;
    } else {
        if (events & UV_READABLE) flags |= CURL_CSELECT_IN;
        if (events & UV_WRITABLE) flags |= CURL_CSELECT_OUT;
    }
    int running;
    curl_multi_socket_action(ctx->multi, s->fd, flags, &running);
    check_done(ctx);
}

static void on_sock_closed(uv_handle_t *h) { free(h->data); }

static int sock_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp) {
    (void)easy;
    dp_ctx *ctx = userp;
    dp_sock *s = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (s) {
            uv_poll_stop(&s->poll);
            uv_close((uv_handle_t *)&s->poll, on_sock_closed);
            curl_multi_assign(ctx->multi, fd, NULL);
        }
        return 0;
    }
    if (s == NULL) {
        s = calloc(1, sizeof(*s));
        if (s == NULL) return -1;
        s->fd = fd;
        s->ctx = ctx;
        if (uv_poll_init_socket(ctx->loop, &s->poll, fd) != 0) {
            free(s);
            return -1;
        }
        s->poll.data = s;
        curl_multi_assign(ctx->multi, fd, s);
    }
    int ev = 0;
    if (what & CURL_POLL_IN) ev |= UV_READABLE;
    if (what & CURL_POLL_OUT) ev |= UV_WRITABLE;
    uv_poll_start(&s->poll, ev, on_poll);
    return 0;
}

static void on_curl_timer(uv_timer_t *t) {
    dp_ctx *ctx = t->data;
    int running;
    curl_multi_socket_action(ctx->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(ctx);
}

static int timer_cb(CURLM *multi, long timeout_ms, void *userp) {
    (void)multi;
    dp_ctx *ctx = userp;
    if (timeout_ms < 0)
        uv_timer_stop(&ctx->curl_timer);
    else
        uv_timer_start(&ctx->curl_timer, on_curl_timer, (uint64_t)timeout_ms, 0);
    return 0;
}

int dp_http_init(dp_ctx *ctx) {
    ctx->multi = curl_multi_init();
    if (ctx->multi == NULL) return -1;
    if (uv_timer_init(ctx->loop, &ctx->curl_timer) != 0) return -1;
    ctx->curl_timer.data = ctx;
    long max_host = 256;
    const char *env = getenv("DSPEX_PORT_MAX_HOST_CONNECTIONS");
    if (env && atol(env) > 0) max_host = atol(env);
    curl_multi_setopt(ctx->multi, CURLMOPT_SOCKETFUNCTION, sock_cb);
    curl_multi_setopt(ctx->multi, CURLMOPT_SOCKETDATA, ctx);
    curl_multi_setopt(ctx->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
    curl_multi_setopt(ctx->multi, CURLMOPT_TIMERDATA, ctx);
    curl_multi_setopt(ctx->multi, CURLMOPT_MAX_HOST_CONNECTIONS, max_host);
    curl_multi_setopt(ctx->multi, CURLMOPT_MAXCONNECTS, max_host * 2);
    return 0;
}

/* ================================================================= replies */

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

static void send_response(dp_req *r) {
    ei_x_buff x;
    if (ei_x_new_with_version(&x) != 0) return;
    int rc = 0;
    rc |= ei_x_encode_tuple_header(&x, 6);
    rc |= ei_x_encode_atom(&x, "response");
    rc |= ei_x_encode_longlong(&x, r->id);
    rc |= ei_x_encode_long(&x, r->status);
    encode_headers(&x, r);
    rc |= ei_x_encode_binary(&x, r->body.p ? r->body.p : "", (int)r->body.len);
    dp_encode_info(&x, r);
    if (rc != 0) {
        ei_x_free(&x);
        dp_send_error(r->ctx, r->id, "network", "out of memory encoding the response", r);
        return;
    }
    dp_send(r->ctx, &x);
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

static void send_stream_end(dp_req *r) {
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
    rc |= ei_x_encode_list_header(&r->sse_frame, 1);
    rc |= ei_x_encode_tuple_header(&r->sse_frame, 2);
    if (ev)
        rc |= ei_x_encode_binary(&r->sse_frame, ev, (int)evlen);
    else
        rc |= ei_x_encode_atom(&r->sse_frame, "nil");
    rc |= ei_x_encode_binary(&r->sse_frame, data, (int)dlen);
    r->sse_events++;
    return rc == 0 ? 0 : DSPEX_SSE_ENOMEM;
}

static void flush_sse(dp_req *r) {
    if (r->sse_events == 0) return;
    r->sse_events = 0;
    if (ei_x_encode_empty_list(&r->sse_frame) != 0) {
        ei_x_free(&r->sse_frame);
        memset(&r->sse_frame, 0, sizeof(r->sse_frame));
        return;
    }
    dp_send(r->ctx, &r->sse_frame);
}

/* ================================================================= request lifecycle */

static void on_req_closed(uv_handle_t *h) { free(h->data); }

static void req_finish(dp_req *r) {
    dp_ctx *ctx = r->ctx;
    dp_table_del(&ctx->reqs, r);
    if (r->in_multi) {
        curl_multi_remove_handle(ctx->multi, r->easy);
        r->in_multi = false;
    }
    if (r->easy) curl_easy_cleanup(r->easy);
    r->easy = NULL;
    dp_spec_free(&r->spec);
    dp_buf_free(&r->resp_headers);
    dp_buf_free(&r->body);
    if (r->sse) dspex_sse_free(r->sse);
    r->sse = NULL;
    if (r->sse_events > 0) ei_x_free(&r->sse_frame);
    r->sse_events = 0;
    r->state = DP_RS_DONE;
    uv_timer_stop(&r->timer);
    uv_close((uv_handle_t *)&r->timer, on_req_closed);
}

static void fail(dp_req *r, const char *type, const char *msg) {
    dp_send_error(r->ctx, r->id, type, msg, r);
    req_finish(r);
}

static void on_req_timer(uv_timer_t *t);

static void arm(dp_req *r, uint64_t at) {
    uint64_t now = uv_now(r->ctx->loop);
    uv_timer_start(&r->timer, on_req_timer, at > now ? at - now : 0, 0);
}

static uint64_t min_u64(uint64_t a, uint64_t b) { return a < b ? a : b; }

static void start_attempt(dp_req *r) {
    dp_ctx *ctx = r->ctx;
    uint64_t now = uv_now(ctx->loop);
    if (now >= r->deadline_ms) {
        r->timeout_kind = "total";
        fail(r, "timeout", "deadline reached before the request could be sent");
        return;
    }
    r->status = 0;
    r->headers_done = false;
    r->stream_started = false;
    r->resp_headers.len = 0;
    r->n_resp_headers = 0;
    r->body.len = 0;
    r->fail_msg = NULL;
    r->errbuf[0] = 0;
    if (r->sse) dspex_sse_reset(r->sse);
    r->attempts++;
    r->attempt_start_ms = r->last_activity_ms = now;
    r->state = DP_RS_RUNNING;
    long long connect = r->spec.connect_timeout_ms;
    long long left = (long long)(r->deadline_ms - now);
    if (left < connect) connect = left;
    curl_easy_setopt(r->easy, CURLOPT_CONNECTTIMEOUT_MS, (long)(connect > 0 ? connect : 1));
    CURLMcode mc = curl_multi_add_handle(ctx->multi, r->easy);
    if (mc != CURLM_OK) {
        fail(r, "network", curl_multi_strerror(mc));
        return;
    }
    r->in_multi = true;
    arm(r, min_u64(r->deadline_ms, now + (uint64_t)r->spec.first_byte_timeout_ms));
}

static void timeout(dp_req *r, const char *kind, const char *msg) {
    r->timeout_kind = kind;
    fail(r, "timeout", msg);
}

static void watchdog(dp_req *r) {
    uint64_t now = uv_now(r->ctx->loop);
    if (now >= r->deadline_ms) {
        timeout(r, "total", "total deadline exceeded");
        return;
    }
    uint64_t next = r->deadline_ms;
    if (!r->headers_done) {
        curl_off_t pre = 0;
        curl_easy_getinfo(r->easy, CURLINFO_PRETRANSFER_TIME_T, &pre);
        if (pre > 0) {
            uint64_t fb = r->attempt_start_ms + (uint64_t)(pre / 1000) + (uint64_t)r->spec.first_byte_timeout_ms;
            if (now >= fb) {
                timeout(r, "first_byte", "no response within first_byte_timeout_ms");
                return;
            }
            next = min_u64(next, fb);
        } else {
            /* still resolving/connecting (curl enforces the connect timeout) */
            next = min_u64(next, now + DP_CONNECT_RECHECK_MS);
        }
    } else {
        uint64_t idle = r->last_activity_ms + (uint64_t)r->spec.idle_timeout_ms;
        if (now >= idle) {
            timeout(r, "idle", "no data within idle_timeout_ms");
            return;
        }
        next = min_u64(next, idle);
    }
    arm(r, next);
}

static void on_req_timer(uv_timer_t *t) {
    dp_req *r = t->data;
    if (r->state == DP_RS_RUNNING)
        watchdog(r);
    else if (r->state == DP_RS_BACKOFF)
        start_attempt(r);
}

static const char *find_header(const dp_req *r, const char *name) {
    const char *p = r->resp_headers.p;
    for (size_t i = 0; i < r->n_resp_headers; i++) {
        size_t nl = strlen(p);
        const char *v = p + nl + 1;
        if (strcmp(p, name) == 0) return v;
        p = v + strlen(v) + 1;
    }
    return NULL;
}

/* Schedules another attempt when the policy allows it; false = give up now. */
static bool maybe_retry(dp_req *r) {
    if (r->attempts > r->spec.max_retries) return false;
    long long sleep = r->retry_after_ms >= 0
                          ? r->retry_after_ms
                          : dp_backoff_ms(&r->ctx->rng, r->spec.retry_base_ms, r->spec.retry_max_ms, r->attempts - 1);
    uint64_t now = uv_now(r->ctx->loop);
    if (now + (uint64_t)sleep >= r->deadline_ms) return false;
    r->state = DP_RS_BACKOFF;
    arm(r, now + (uint64_t)sleep);
    return true;
}

static void on_done(dp_req *r, CURLcode rc) {
    dp_ctx *ctx = r->ctx;
    curl_multi_remove_handle(ctx->multi, r->easy);
    r->in_multi = false;
    uv_timer_stop(&r->timer);
    if (rc == CURLE_OK) {
        long status = 0;
        curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
        r->status = status;
        if (r->stream_started) {
            int e = dspex_sse_finish(r->sse, on_sse_event, r);
            flush_sse(r);
            if (e != 0)
                fail(r, "network", "SSE event too large or out of memory");
            else {
                send_stream_end(r);
                req_finish(r);
            }
            return;
        }
        const char *ra = find_header(r, "retry-after");
        r->retry_after_ms = ra ? dp_parse_retry_after(ra, time(NULL)) : -1;
        if (dp_retryable_status(status) && maybe_retry(r)) return;
        send_response(r);
        req_finish(r);
        return;
    }
    if (r->fail_msg) {
        fail(r, "network", r->fail_msg);
        return;
    }
    r->retry_after_ms = -1;
    if (!r->stream_started && dp_retryable_curl(rc) && maybe_retry(r)) return;
    char msg[CURL_ERROR_SIZE + 64];
    snprintf(msg, sizeof(msg), "%s", r->errbuf[0] ? r->errbuf : curl_easy_strerror(rc));
    if (rc == CURLE_OPERATION_TIMEDOUT) {
        timeout(r, "connect", msg);
        return;
    }
    fail(r, "network", msg);
}

static void check_done(dp_ctx *ctx) {
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(ctx->multi, &left)) != NULL) {
        if (m->msg != CURLMSG_DONE) continue;
        CURL *easy = m->easy_handle;
        CURLcode rc = m->data.result;
        dp_req *r = NULL;
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&r);
        if (r && r->state == DP_RS_RUNNING && r->in_multi) on_done(r, rc);
    }
}

/* ================================================================= curl callbacks */

static size_t on_header(char *buf, size_t size, size_t n, void *ud) {
    dp_req *r = ud;
    size_t len = size * n;
    r->last_activity_ms = uv_now(r->ctx->loop);
    if (len >= 5 && memcmp(buf, "HTTP/", 5) == 0) {
        r->resp_headers.len = 0;
        r->n_resp_headers = 0;
        r->headers_done = false;
        return len;
    }
    size_t l = len;
    while (l > 0 && (buf[l - 1] == '\r' || buf[l - 1] == '\n')) l--;
    if (l == 0) {
        long status = 0;
        curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
        if (status >= 100 && status < 200) return len; /* interim response */
        if (r->headers_done) return len;               /* end of trailers */
        r->status = status;
        r->headers_done = true;
        /* from now on the watchdog measures silence between body bytes */
        arm(r, min_u64(r->deadline_ms, r->last_activity_ms + (uint64_t)r->spec.idle_timeout_ms));
        if (r->spec.stream && status >= 200 && status < 300) {
            r->stream_started = true;
            send_stream_start(r);
        }
        return len;
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
        r->fail_msg = "response headers too large";
        return 0;
    }
    for (size_t i = 0; i < nl; i++) {
        char *c = r->resp_headers.p + start + i;
        *c = (char)tolower((unsigned char)*c);
    }
    r->n_resp_headers++;
    return len;
}

static size_t on_body(char *ptr, size_t size, size_t n, void *ud) {
    dp_req *r = ud;
    size_t len = size * n;
    r->last_activity_ms = uv_now(r->ctx->loop);
    if (r->stream_started) {
        int rc = dspex_sse_feed(r->sse, ptr, len, on_sse_event, r);
        flush_sse(r);
        if (rc != 0) {
            r->fail_msg = rc == DSPEX_SSE_ETOOBIG ? "SSE event larger than 8 MiB" : "out of memory parsing SSE";
            return 0;
        }
        return len;
    }
    int rc = dp_buf_add(&r->body, ptr, len, DP_MAX_BODY);
    if (rc != 0) {
        r->fail_msg = rc == -1 ? "response body larger than 256 MiB" : "out of memory buffering the body";
        return 0;
    }
    return len;
}

/* ================================================================= public */

static CURLcode setup_easy(dp_req *r) {
    CURL *e = r->easy;
    dp_spec *s = &r->spec;
    CURLcode c = CURLE_OK;
#define SET(opt, val) \
    if (c == CURLE_OK) c = curl_easy_setopt(e, opt, val)
    SET(CURLOPT_URL, s->url);
    SET(CURLOPT_PROTOCOLS_STR, "http,https");
    SET(CURLOPT_PRIVATE, (void *)r);
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_ERRORBUFFER, r->errbuf);
    SET(CURLOPT_WRITEFUNCTION, on_body);
    SET(CURLOPT_WRITEDATA, (void *)r);
    SET(CURLOPT_HEADERFUNCTION, on_header);
    SET(CURLOPT_HEADERDATA, (void *)r);
    SET(CURLOPT_TCP_KEEPALIVE, 1L);
    SET(CURLOPT_ACCEPT_ENCODING, "");
    SET(CURLOPT_USERAGENT, "dspex_port/0.1");
    SET(CURLOPT_HTTPHEADER, s->headers);
    if (strcasecmp(s->method, "GET") == 0) {
        SET(CURLOPT_HTTPGET, 1L);
    } else if (strcasecmp(s->method, "HEAD") == 0) {
        SET(CURLOPT_NOBODY, 1L);
    } else {
        SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)s->body_len);
        SET(CURLOPT_POSTFIELDS, s->body ? s->body : "");
        if (strcasecmp(s->method, "POST") != 0) SET(CURLOPT_CUSTOMREQUEST, s->method);
    }
#undef SET
    return c;
}

void dp_http_start(dp_ctx *ctx, long long id, dp_spec *spec) {
    if (dp_table_get(&ctx->reqs, id) != NULL) {
        dp_send_error(ctx, id, "bad_request", "duplicate request id", NULL);
        dp_spec_free(spec);
        return;
    }
    dp_req *r = calloc(1, sizeof(*r));
    if (r == NULL) {
        dp_send_error(ctx, id, "network", "out of memory", NULL);
        dp_spec_free(spec);
        return;
    }
    r->ctx = ctx;
    r->id = id;
    r->spec = *spec;
    memset(spec, 0, sizeof(*spec));
    r->retry_after_ms = -1;
    r->start_ms = uv_now(ctx->loop);
    r->start_us = uv_hrtime() / 1000;
    r->deadline_ms = r->start_ms + (uint64_t)r->spec.total_timeout_ms;
    uv_timer_init(ctx->loop, &r->timer);
    r->timer.data = r;
    /* never send "Expect: 100-continue" (a second round trip for large bodies) */
    struct curl_slist *h = curl_slist_append(r->spec.headers, "Expect:");
    if (h == NULL) {
        fail(r, "network", "out of memory");
        return;
    }
    r->spec.headers = h;
    if (r->spec.stream && (r->sse = dspex_sse_new(DP_MAX_SSE_EVENT)) == NULL) {
        fail(r, "network", "out of memory");
        return;
    }
    r->easy = curl_easy_init();
    if (r->easy == NULL) {
        fail(r, "network", "curl_easy_init failed");
        return;
    }
    CURLcode c = setup_easy(r);
    if (c != CURLE_OK) {
        char msg[256];
        snprintf(msg, sizeof(msg), "invalid request: %s", curl_easy_strerror(c));
        fail(r, "bad_request", msg);
        return;
    }
    if (dp_table_put(&ctx->reqs, r) != 0) {
        fail(r, "network", "out of memory");
        return;
    }
    start_attempt(r);
}

void dp_http_cancel(dp_ctx *ctx, long long id) {
    dp_req *r = dp_table_get(&ctx->reqs, id);
    if (r == NULL) return;
    fail(r, "cancelled", "cancelled");
}

void dp_http_abort_all(dp_ctx *ctx) {
    dp_table *t = &ctx->reqs;
    for (size_t i = 0; i < t->nbuckets; i++) {
        while (t->buckets[i]) req_finish(t->buckets[i]);
    }
}

void dp_http_cleanup(dp_ctx *ctx) {
    dp_http_abort_all(ctx);
    if (ctx->multi) curl_multi_cleanup(ctx->multi);
    ctx->multi = NULL;
    free(ctx->reqs.buckets);
    ctx->reqs.buckets = NULL;
    ctx->reqs.nbuckets = 0;
}
