/* libFuzzer target for the port's response path (c_src/port/response.c, flow.c): the
 * bytes a server sends, fed to the same functions curl's header and write callbacks
 * call, without a socket. The first input byte picks the mode:
 *   bit 0      streamed request (SSE) or plain
 *   bits 1-2   max_response_bytes: 64, 4096, 1 MiB or the default 32 MiB
 *   bit 3      a full stdout queue (flow control pauses; then drains)
 *   bits 4-7   body read size (1..16 bytes, times 64 when bit 3 is clear)
 * The rest is the response: header lines up to the first empty line, then the body.
 * Every frame the port would write must be one well-formed external term of exactly
 * its announced length; a paused transfer must take the same bytes again after its
 * stream credit is restored (as curl redelivers them); no crash, leak or UB. */
#include "port.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    size_t frames;
} fz_out;

static void sink(void *ud, const uv_buf_t *bufs, unsigned n) {
    fz_out *o = ud;
    size_t len = 0;
    for (unsigned i = 0; i < n; i++) len += bufs[i].len;
    char *frame = malloc(len ? len : 1);
    if (frame == NULL) return;
    size_t off = 0;
    for (unsigned i = 0; i < n; i++) {
        memcpy(frame + off, bufs[i].base, bufs[i].len);
        off += bufs[i].len;
    }
    if (len < 4) abort();
    const unsigned char *h = (const unsigned char *)frame;
    size_t announced = ((size_t)h[0] << 24) | ((size_t)h[1] << 16) | ((size_t)h[2] << 8) | h[3];
    if (announced != len - 4 || !dp_etf_valid(frame + 4, len - 4)) abort();
    o->frames++;
    free(frame);
}

static uv_loop_t *loop_once(void) {
    static uv_loop_t loop;
    static int ready;
    if (!ready && uv_loop_init(&loop) == 0) ready = 1;
    return ready ? &loop : NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    uv_loop_t *loop = loop_once();
    if (loop == NULL) return 0;
    uint8_t mode = data[0];
    const char *in = (const char *)data + 1;
    size_t len = size - 1;
    static const long long caps[4] = {64, 4096, 1 << 20, DP_MAX_RESPONSE_DEFAULT};

    fz_out out = {0};
    dp_ctx ctx;
    memset(&ctx, 0, sizeof(ctx));
    ctx.loop = loop;
    ctx.sink = sink;
    ctx.sink_ud = &out;

    dp_req *r = calloc(1, sizeof(*r));
    if (r == NULL) return 0;
    r->ctx = &ctx;
    r->id = 7;
    r->state = DP_RS_RUNNING;
    r->spec.stream = mode & 1;
    r->spec.max_response_bytes = caps[(mode >> 1) & 3];
    r->spec.idle_timeout_ms = 60000;
    r->deadline_ms = uv_now(loop) + 600000;
    r->retry_after_ms = -1;
    r->credit = DP_STREAM_WINDOW;
    uv_timer_init(loop, &r->timer);
    r->timer.data = r;
    size_t max_event = (size_t)r->spec.max_response_bytes < DP_MAX_SSE_EVENT ? (size_t)r->spec.max_response_bytes
                                                                             : DP_MAX_SSE_EVENT;
    if (r->spec.stream) r->sse = dspex_sse_new(max_event);
    if (dp_table_put(&ctx.reqs, r) != 0 || (r->spec.stream && r->sse == NULL)) goto done;
    if (mode & 8) ctx.out_bytes = DP_OUT_HIGH + 1;

    /* header lines, each with its line ending, as curl hands them over */
    size_t i = 0;
    int failed = 0;
    while (i < len && !r->headers_done && !failed) {
        const char *nl = memchr(in + i, '\n', len - i);
        size_t n = nl ? (size_t)(nl - (in + i)) + 1 : len - i;
        if (dp_resp_header(r, in + i, n) != n) failed = 1;
        i += n;
    }
    /* the body in reads of a size taken from the mode byte */
    size_t step = ((size_t)(mode >> 4) + 1) * ((mode & 8) ? 1 : 64);
    int pauses = 0;
    while (i < len && !failed) {
        size_t n = len - i < step ? len - i : step;
        size_t got = dp_resp_body(r, in + i, n);
        if (got == CURL_WRITEFUNC_PAUSE) {
            if (r->paused == 0 || ++pauses > 1000) abort(); /* paused means linked */
            ctx.out_bytes = 0;
            dp_flow_drained(&ctx);
            dp_flow_ack(&ctx, r->id, DP_STREAM_WINDOW);
            if (r->paused != 0) abort(); /* both reasons cleared: resumed */
            continue;                    /* curl delivers the same bytes again */
        }
        if (got != n) failed = 1;
        i += n;
    }
    if (!failed && r->headers_done) {
        if (r->stream_started)
            (void)dp_resp_stream_finish(r);
        else
            dp_resp_send_response(r);
    }
    if (failed && r->fail_msg == NULL) abort(); /* an abort always says why */

done:
    dp_flow_forget(r);
    dp_table_del(&ctx.reqs, r);
    free(ctx.reqs.buckets);
    dp_buf_free(&r->resp_headers);
    dp_buf_free(&r->body);
    if (r->sse) dspex_sse_free(r->sse);
    if (r->sse_events > 0) ei_x_free(&r->sse_frame);
    uv_close((uv_handle_t *)&r->timer, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    free(r);
    return 0;
}
