/* libcurl multi driven by libuv (sockets via uv_poll_t, curl's timer via uv_timer_t),
 * the request lifecycle, watchdog timeouts (first byte, idle, total) and retries with
 * backoff. What a response's bytes become is response.c's business. */
#include "port.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

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
        /* libuv reports POLLERR/POLLHUP as an error and stops the handle. Let curl read
         * and write so it meets the socket's own error (ECONNRESET: "Connection reset
         * by peer") instead of CURL_CSELECT_ERR's "select/poll returned error". */
        flags = CURL_CSELECT_IN | CURL_CSELECT_OUT;
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

/* ================================================================= request lifecycle */

static void on_req_closed(uv_handle_t *h) { free(h->data); }

static void req_finish(dp_req *r) {
    dp_ctx *ctx = r->ctx;
    dp_table_del(&ctx->reqs, r);
    dp_flow_forget(r);
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

void dp_http_fail(dp_req *r, const char *type, const char *msg) {
    dp_send_error(r->ctx, r->id, type, msg, r);
    req_finish(r);
}

static void fail(dp_req *r, const char *type, const char *msg) { dp_http_fail(r, type, msg); }

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
    dp_resp_reset(r);
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
    } else if (!r->paused) { /* a transfer we paused is silent by our doing */
        uint64_t idle = r->last_activity_ms + (uint64_t)r->spec.idle_timeout_ms;
        if (now >= idle) {
            timeout(r, "idle", "no data within idle_timeout_ms");
            return;
        }
        next = min_u64(next, idle);
    }
    arm(r, next);
}

void dp_http_watch(dp_req *r) {
    if (r->state != DP_RS_RUNNING || !r->headers_done) return;
    uint64_t next = r->deadline_ms;
    if (!r->paused) next = min_u64(next, r->last_activity_ms + (uint64_t)r->spec.idle_timeout_ms);
    arm(r, next);
}

static void on_req_timer(uv_timer_t *t) {
    dp_req *r = t->data;
    if (r->state == DP_RS_RUNNING)
        watchdog(r);
    else if (r->state == DP_RS_BACKOFF)
        start_attempt(r);
}

/* Schedules another attempt when the policy allows it; false = give up now. A server's
 * Retry-After is honoured up to retry_max_ms: a server asking for longer (a 429 with
 * "Retry-After: 3600") gets its response returned at once, info.retry_after_ms telling
 * the caller how long it asked for, instead of holding the caller until its deadline. */
static bool maybe_retry(dp_req *r) {
    if (r->attempts > r->spec.max_retries) return false;
    if (r->retry_after_ms > r->spec.retry_max_ms) return false;
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
            if (dp_resp_stream_finish(r) != 0) {
                fail(r, r->fail_type, r->fail_msg);
            } else {
                dp_resp_send_stream_end(r);
                req_finish(r);
            }
            return;
        }
        const char *ra = dp_resp_find_header(r, "retry-after");
        r->retry_after_ms = ra ? dp_parse_retry_after(ra, time(NULL)) : -1;
        if (dp_retryable_status(status) && maybe_retry(r)) return;
        dp_resp_send_response(r);
        req_finish(r);
        return;
    }
    if (r->fail_msg) { /* one of our callbacks aborted the transfer */
        fail(r, r->fail_type ? r->fail_type : "network", r->fail_msg);
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
    return dp_resp_header(ud, buf, size * n);
}

static size_t on_body(char *ptr, size_t size, size_t n, void *ud) { return dp_resp_body(ud, ptr, size * n); }

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
    r->credit = DP_STREAM_WINDOW;
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
    size_t max_event = DP_MAX_SSE_EVENT;
    if ((long long)max_event > r->spec.max_response_bytes) max_event = (size_t)r->spec.max_response_bytes;
    if (r->spec.stream && (r->sse = dspex_sse_new(max_event)) == NULL) {
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
