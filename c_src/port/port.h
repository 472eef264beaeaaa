/* dspex_port: shared types of the port program (one libuv loop, one libcurl multi).
 * Protocol: docs/port-protocol.md. No globals: everything hangs off dp_ctx. */
#ifndef DSPEX_PORT_H
#define DSPEX_PORT_H

#include <curl/curl.h>
#include <ei.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "dspex/sse.h"

#define DP_MAX_FRAME (64u << 20)     /* largest frame accepted from the BEAM */
#define DP_MAX_BODY (256u << 20)     /* largest response body buffered */
#define DP_MAX_SSE_EVENT (8u << 20)  /* largest single SSE event */
#define DP_MAX_HEADERS 512           /* request headers */

typedef struct dp_ctx dp_ctx;
typedef struct dp_req dp_req;

/* ---- growable byte buffer (frame.c) ---- */
typedef struct {
    char *p;
    size_t len, cap;
} dp_buf;
int dp_buf_add(dp_buf *b, const void *s, size_t n, size_t limit);
void dp_buf_free(dp_buf *b);

/* ---- a decoded {http, Id, Req} request (frame.c) ---- */
typedef struct {
    char *method, *url, *body;
    size_t body_len;
    struct curl_slist *headers;
    bool stream;
    long long connect_timeout_ms, first_byte_timeout_ms, idle_timeout_ms, total_timeout_ms;
    long long max_retries, retry_base_ms, retry_max_ms;
} dp_spec;
void dp_spec_free(dp_spec *s);

typedef enum { DP_CMD_PING, DP_CMD_HTTP, DP_CMD_CANCEL, DP_CMD_BAD } dp_cmd_kind;

/* Decodes one frame. On DP_CMD_BAD, *id is set when it could be read (else -1) and err
 * holds a message. On DP_CMD_HTTP, spec is filled (caller owns it). */
dp_cmd_kind dp_decode(const char *buf, size_t len, long long *id, dp_spec *spec, char *err, size_t errlen);

/* ---- frame reassembler for {packet, 4} input (frame.c) ---- */
typedef int (*dp_frame_fn)(void *ud, const char *frame, size_t len);
typedef struct {
    dp_buf in;
} dp_reader;
/* Space to read into (at least want bytes). NULL on OOM. */
char *dp_reader_space(dp_reader *r, size_t want, size_t *avail);
/* n bytes were written into the space; calls fn for each complete frame. Returns 0, or
 * -1 on a frame over DP_MAX_FRAME, or fn's non-zero return. */
int dp_reader_commit(dp_reader *r, size_t n, dp_frame_fn fn, void *ud);

/* ---- output (frame.c): every reply is an ei_x_buff queued with uv_write ---- */
int dp_send(dp_ctx *ctx, ei_x_buff *x); /* takes ownership of x's buffer */
void dp_send_pong(dp_ctx *ctx, long long id);
void dp_send_error(dp_ctx *ctx, long long id, const char *type, const char *msg, const dp_req *r);
void dp_encode_info(ei_x_buff *x, const dp_req *r);

/* ---- retry policy (retry.c) ---- */
bool dp_retryable_status(long status);
bool dp_retryable_curl(CURLcode rc);
/* Retry-After header value (delta seconds or HTTP-date) → ms, or -1 when unparsable. */
long long dp_parse_retry_after(const char *v, time_t now);
/* Full-jitter backoff for retry number n (0-based). */
long long dp_backoff_ms(uint64_t *rng, long long base_ms, long long cap_ms, int n);
uint64_t dp_rand(uint64_t *state);

/* ---- requests (http.c) ---- */
typedef enum { DP_RS_RUNNING, DP_RS_BACKOFF, DP_RS_DONE } dp_req_state;

struct dp_req {
    dp_ctx *ctx;
    long long id;
    dp_spec spec;
    CURL *easy;
    dp_req_state state;
    bool in_multi;
    int attempts;
    uint64_t start_ms, deadline_ms, attempt_start_ms, last_activity_ms;
    uint64_t start_us;
    /* response of the current attempt */
    long status;
    bool headers_done, stream_started;
    dp_buf resp_headers; /* "name\0value\0" pairs */
    size_t n_resp_headers;
    dp_buf body;
    dspex_sse_parser *sse;
    ei_x_buff sse_frame; /* events collected during one write callback */
    int sse_events;
    const char *fail_msg; /* set by a callback that aborted the transfer */
    long long retry_after_ms;
    const char *timeout_kind; /* "connect", "first_byte", "idle", "total" or NULL */
    uv_timer_t timer;         /* watchdog (first byte / idle / total) and backoff */
    char errbuf[CURL_ERROR_SIZE];
    dp_req *next_in_bucket;
};

/* ---- request table keyed by id (table.c) ---- */
typedef struct {
    dp_req **buckets;
    size_t nbuckets, count;
} dp_table;
dp_req *dp_table_get(const dp_table *t, long long id);
int dp_table_put(dp_table *t, dp_req *r); /* -1 on OOM */
void dp_table_del(dp_table *t, dp_req *r); /* no-op when r is not in t */

struct dp_ctx {
    uv_loop_t *loop;
    uv_pipe_t in, out;
    uv_timer_t curl_timer;
    CURLM *multi;
    dp_reader reader;
    dp_table reqs;
    uint64_t rng;
    bool shutting_down;
    int exit_code;
    unsigned long long bad_frames; /* frames ignored (logged sparingly) */
    size_t writes_pending;
};

int dp_http_init(dp_ctx *ctx);
void dp_http_cleanup(dp_ctx *ctx);
/* Starts a request; takes ownership of spec. Replies with a bad_request error itself
 * when the request cannot be started. */
void dp_http_start(dp_ctx *ctx, long long id, dp_spec *spec);
void dp_http_cancel(dp_ctx *ctx, long long id);
void dp_http_abort_all(dp_ctx *ctx);

#endif
