/* dspex_port: shared types of the port program (one libuv loop, one libcurl multi).
 * Protocol: docs/port-protocol.md. No globals: everything hangs off dp_ctx.
 *
 * Files, one concern each:
 *   main.c      stdin reading, command dispatch, the loop
 *   frame.c     {packet, 4} reassembly, the bounds-checked ETF walker, command decoding
 *   validate.c  the one place request bytes are checked before anything is sent
 *   output.c    the stdout writer (queued uv_write, byte accounting), replies, log frames
 *   response.c  response parsing: status/header lines, plain bodies, SSE → frames
 *   flow.c      back-pressure: pausing transfers on a full stdout queue or no credit
 *   http.c      libcurl multi on libuv, request lifecycle, watchdog timeouts, retries
 *   retry.c     retry policy; table.c: requests by id
 *   optim.c     optimizer jobs: {optim_*, ...} commands on c_src/core/optim/engine.c */
#ifndef DSPEX_PORT_H
#define DSPEX_PORT_H

#include <curl/curl.h>
#include <ei.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "dspex/sse.h"

/* ---- limits ---- */
#define DP_MAX_FRAME (64u << 20)      /* largest frame accepted from the BEAM */
#define DP_MAX_SSE_EVENT (8u << 20)   /* largest single SSE event (or max_response_bytes) */
#define DP_MAX_HEADERS 512            /* request headers */
#define DP_MAX_METHOD 64              /* bytes in a request method */
#define DP_MAX_URL (64u << 10)        /* bytes in a request URL */
#define DP_MAX_HEADER_NAME 256        /* bytes in a request header name */
#define DP_MAX_HEADER_VALUE (64u << 10) /* bytes in a request header value */
/* max_response_bytes: default and the largest value a request may ask for. 32 MiB is
 * ~140k OpenAI stream chunks (~230 bytes each) or a 32 MB JSON reply: well above any
 * completion; the ceiling keeps one reply far below the BEAM's 4 GiB frame limit. */
#define DP_MAX_RESPONSE_DEFAULT (32u << 20)
#define DP_MAX_RESPONSE_CEILING (256u << 20)
/* Back-pressure (flow.c). While more than DP_OUT_HIGH bytes of replies wait to be
 * written to stdout, every transfer that receives data is paused; they resume when the
 * queue drains below DP_OUT_LOW (hysteresis: no pause/resume flapping at the bound).
 * 8 MiB is 512 frames of one 16 KiB network read, and ~240 ms of what the BEAM takes
 * from one port under a flood (~34 MiB/s on a loaded 2-core machine, bench/port.exs):
 * the most a pong or a timeout reply can wait behind it, far inside the 2 s health
 * check. */
#define DP_OUT_HIGH (8u << 20)
#define DP_OUT_LOW (2u << 20)
/* Credit window per stream: SSE frame bytes sent but not yet acknowledged by the BEAM
 * ({ack, Id, Bytes}). At zero credit the transfer is paused, so a consumer that cannot
 * keep up holds at most this much of one stream in flight. 1 MiB is ~4500 typical
 * events, ~64 frames of one 16 KiB network read each. */
#define DP_STREAM_WINDOW (1u << 20)
/* Optimizer jobs open in one port at once (DSPex.Optimize uses one port per job). */
#define DP_MAX_JOBS 64

typedef struct dp_ctx dp_ctx;
typedef struct dp_req dp_req;

/* ---- growable byte buffer with a hard limit (frame.c) ---- */
typedef struct {
    char *p;
    size_t len, cap;
} dp_buf;
/* 0, -1 when len + n would exceed limit, -2 on OOM. */
int dp_buf_add(dp_buf *b, const void *s, size_t n, size_t limit);
/* Grows the capacity to at least cap (no-op when already larger). 0 or -2 on OOM. */
int dp_buf_reserve(dp_buf *b, size_t cap);
void dp_buf_free(dp_buf *b);

/* ---- a decoded {http, Id, Req} request (frame.c) ---- */
typedef struct {
    char *method, *url, *body;
    size_t body_len;
    struct curl_slist *headers;
    bool stream;
    long long connect_timeout_ms, first_byte_timeout_ms, idle_timeout_ms, total_timeout_ms;
    long long max_retries, retry_base_ms, retry_max_ms;
    long long max_response_bytes;
} dp_spec;
void dp_spec_free(dp_spec *s);

typedef enum { DP_CMD_PING, DP_CMD_HTTP, DP_CMD_CANCEL, DP_CMD_ACK, DP_CMD_OPTIM, DP_CMD_BAD } dp_cmd_kind;

/* Decodes one frame. On DP_CMD_BAD, *id is set when it could be read (else -1) and err
 * holds a message. On DP_CMD_HTTP, spec is filled (caller owns it). On DP_CMD_ACK,
 * *ack holds the acknowledged byte count. DP_CMD_OPTIM: an {optim_*, Id, ...} command,
 * decoded by dp_optim_handle. */
dp_cmd_kind dp_decode(const char *buf, size_t len, long long *id, long long *ack, dp_spec *spec, char *err,
                      size_t errlen);
/* 1 when buf[0..len) is exactly one external term made only of the types a command or
 * reply can contain (integers, floats, atoms, binaries, strings, lists, tuples, maps),
 * nested at most 32 deep. ei's decoders trust the lengths inside a term: check first. */
int dp_etf_valid(const char *buf, size_t len);

/* ---- request validation (validate.c), bounded by the DP_MAX_* limits above ---- */
/* Each returns 0, or -1 with a message in err that never quotes the offending value
 * (header values carry secrets). */
int dp_valid_method(const char *m, size_t len, char *err, size_t errlen);
int dp_valid_url(const char *url, size_t len, char *err, size_t errlen);
int dp_valid_header(int index, const char *name, size_t nl, const char *value, size_t vl, char *err,
                    size_t errlen);

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

/* ---- output (output.c): every reply is queued with uv_write ---- */
/* Sends one frame made of head, then body bytes (may be NULL), then tail (may be NULL):
 * a large body is written from its own buffer, never copied into the frame. Takes
 * ownership of all three. Returns the frame's size, or -1 (frame dropped). */
long long dp_send_parts(dp_ctx *ctx, ei_x_buff *head, dp_buf *body, ei_x_buff *tail);
long long dp_send(dp_ctx *ctx, ei_x_buff *x);
void dp_send_pong(dp_ctx *ctx, long long id);
void dp_send_error(dp_ctx *ctx, long long id, const char *type, const char *msg, const dp_req *r);
void dp_encode_info(ei_x_buff *x, const dp_req *r);
/* {log, Level, Message} to the BEAM (DSPex.Port hands it to Logger); stderr when the
 * BEAM cannot be reached. level: "error", "warning", "info". */
void dp_log(dp_ctx *ctx, const char *level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

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

/* why a transfer is paused (flow.c); a bit set per reason */
#define DP_PAUSE_QUEUE 1  /* stdout queue above DP_OUT_HIGH */
#define DP_PAUSE_CREDIT 2 /* stream window used up */

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
    /* response of the current attempt (response.c) */
    long status;
    bool headers_done, stream_started;
    dp_buf resp_headers; /* "name\0value\0" pairs */
    size_t n_resp_headers;
    dp_buf body;          /* plain (non-streamed) body */
    uint64_t body_bytes;  /* body bytes received this attempt (plain and streamed) */
    dspex_sse_parser *sse;
    ei_x_buff sse_frame; /* events collected during one write callback */
    int sse_events;
    const char *fail_type; /* set by a callback that aborted the transfer... */
    const char *fail_msg;  /* ...with this message (a static string or msgbuf) */
    char msgbuf[128];
    long long retry_after_ms;
    const char *timeout_kind; /* "connect", "first_byte", "idle", "total" or NULL */
    uv_timer_t timer;         /* watchdog (first byte / idle / total) and backoff */
    char errbuf[CURL_ERROR_SIZE];
    /* flow control (flow.c) */
    int paused;          /* DP_PAUSE_* bits; non-zero = curl transfer paused */
    long long credit;    /* stream bytes that may still be sent before an ack */
    dp_req *paused_prev, *paused_next;
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

/* Where frames go instead of stdout when set (fuzz targets feed the response path
 * bytes without a pipe): called once per frame with its pieces; the pieces are freed
 * after it returns. */
typedef void (*dp_sink_fn)(void *ud, const uv_buf_t *bufs, unsigned n);

struct dspex_engine;

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
    size_t out_bytes;  /* bytes queued on stdout, not yet written */
    dp_req *paused;    /* transfers paused by flow control (doubly linked) */
    dp_sink_fn sink;   /* NULL: stdout */
    void *sink_ud;
    struct dspex_engine *jobs[DP_MAX_JOBS]; /* optimizer jobs; the BEAM's job number is index + 1 */
    uint64_t optim_ns; /* time spent handling optim_* commands (decode, engine, journal, reply) */
};

int dp_http_init(dp_ctx *ctx);
void dp_http_cleanup(dp_ctx *ctx);
/* Starts a request; takes ownership of spec. Replies with a bad_request error itself
 * when the request cannot be started. */
void dp_http_start(dp_ctx *ctx, long long id, dp_spec *spec);
void dp_http_cancel(dp_ctx *ctx, long long id);
void dp_http_abort_all(dp_ctx *ctx);
/* Ends r with a {error, Id, Type, Msg, Info} reply. */
void dp_http_fail(dp_req *r, const char *type, const char *msg);
/* (Re)arms r's watchdog for the current phase. */
void dp_http_watch(dp_req *r);

/* ---- response parsing (response.c): the curl header/write callbacks' bodies ---- */
/* Clears the per-attempt response state. */
void dp_resp_reset(dp_req *r);
/* One header line as curl delivers it (status line, "name: value", blank line).
 * Returns len, or 0 to abort the transfer (r->fail_type/fail_msg set). */
size_t dp_resp_header(dp_req *r, const char *buf, size_t len);
/* Body bytes. Returns len, 0 to abort (r->fail_type/fail_msg set), or
 * CURL_WRITEFUNC_PAUSE when flow control paused the transfer (curl keeps the bytes). */
size_t dp_resp_body(dp_req *r, const char *buf, size_t len);
/* End of a 2xx stream: the final unterminated event, if any. 0 or -1 (fail_* set). */
int dp_resp_stream_finish(dp_req *r);
void dp_resp_send_response(dp_req *r);
void dp_resp_send_stream_end(dp_req *r);
const char *dp_resp_find_header(const dp_req *r, const char *name);

/* ---- optimizer jobs (optim.c) ---- */
/* Runs one {optim_*, Id, ...} command (a frame dp_decode classified as DP_CMD_OPTIM) and
 * sends its one reply. */
void dp_optim_handle(dp_ctx *ctx, const char *buf, size_t len, long long id);
/* Closes every job's journal (at exit). */
void dp_optim_close_all(dp_ctx *ctx);

/* ---- flow control (flow.c) ---- */
/* Non-zero when r must not take more body bytes now (sets the pause bits and links
 * r into ctx->paused); the caller then returns CURL_WRITEFUNC_PAUSE. */
int dp_flow_should_pause(dp_req *r);
/* An SSE frame of n bytes for r was queued: spend credit. */
void dp_flow_spent(dp_req *r, long long n);
/* {ack, Id, Bytes}: restore credit, resume when the window reopens. */
void dp_flow_ack(dp_ctx *ctx, long long id, long long bytes);
/* Called as the stdout queue shrinks: resumes queue-paused transfers below DP_OUT_LOW. */
void dp_flow_drained(dp_ctx *ctx);
/* Unlinks r (request finished). */
void dp_flow_forget(dp_req *r);

#endif
