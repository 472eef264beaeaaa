/* dspex_port: the supervised port program (docs/port-protocol.md).
 *
 * One libuv loop drives everything: stdin frames ({packet, 4} + external term format)
 * are reassembled and dispatched, HTTP transfers run on one libcurl multi handle whose
 * sockets and timers are libuv handles, replies are queued with uv_write (flow.c keeps
 * that queue bounded). Logs go to the BEAM as {log, Level, Message} frames (stderr only
 * when the BEAM cannot be reached). On stdin EOF every transfer is aborted and the
 * program exits 0, so a dead VM never leaves it behind. Optimizer jobs ({optim_*} commands,
 * optim.c) run between frames on the same loop. */
#include "port.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int on_frame(void *ud, const char *frame, size_t len) {
    dp_ctx *ctx = ud;
    long long id, ack = 0;
    dp_spec spec;
    char err[256];
    switch (dp_decode(frame, len, &id, &ack, &spec, err, sizeof(err))) {
    case DP_CMD_PING:
        dp_send_pong(ctx, id);
        break;
    case DP_CMD_HTTP:
        dp_http_start(ctx, id, &spec);
        break;
    case DP_CMD_CANCEL:
        dp_http_cancel(ctx, id);
        break;
    case DP_CMD_ACK:
        dp_flow_ack(ctx, id, ack);
        break;
    case DP_CMD_OPTIM:
        dp_optim_handle(ctx, frame, len, id);
        break;
    case DP_CMD_BAD:
        if (id >= 0)
            dp_send_error(ctx, id, "bad_request", err, NULL);
        else if (++ctx->bad_frames <= 5 || ctx->bad_frames % 1000 == 0)
            dp_log(ctx, "warning", "ignored frame (%llu so far): %s", ctx->bad_frames, err);
        break;
    }
    return 0;
}

static void begin_shutdown(dp_ctx *ctx) {
    if (ctx->shutting_down) return;
    ctx->shutting_down = true;
    uv_read_stop((uv_stream_t *)&ctx->in);
    dp_http_abort_all(ctx);
    uv_stop(ctx->loop);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
    (void)suggested;
    dp_ctx *ctx = h->data;
    size_t avail = 0;
    char *p = dp_reader_space(&ctx->reader, 65536, &avail);
    *buf = uv_buf_init(p, p ? (unsigned int)(avail > (1u << 30) ? (1u << 30) : avail) : 0);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
    (void)buf;
    dp_ctx *ctx = s->data;
    if (nread < 0) {
        if (nread != UV_EOF) fprintf(stderr, "dspex_port: stdin: %s\n", uv_strerror((int)nread));
        begin_shutdown(ctx);
        return;
    }
    if (nread == 0) return;
    int rc = dp_reader_commit(&ctx->reader, (size_t)nread, on_frame, ctx);
    if (rc != 0) {
        fprintf(stderr, "dspex_port: %s; exiting\n",
                rc == -1 ? "frame larger than 64 MiB (protocol error)" : "out of memory reading a frame");
        ctx->exit_code = 2;
        begin_shutdown(ctx);
    }
}

static void close_walk(uv_handle_t *h, void *arg) {
    (void)arg;
    if (!uv_is_closing(h)) uv_close(h, NULL);
}

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    ei_init();
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "dspex_port: curl_global_init failed\n");
        return 1;
    }
    uv_loop_t loop;
    dp_ctx ctx;
    memset(&ctx, 0, sizeof(ctx));
    if (uv_loop_init(&loop) != 0) return 1;
    ctx.loop = &loop;
    ctx.rng = (uv_hrtime() ^ ((uint64_t)getpid() << 32)) | 1;
    if (uv_pipe_init(&loop, &ctx.in, 0) != 0 || uv_pipe_open(&ctx.in, STDIN_FILENO) != 0 ||
        uv_pipe_init(&loop, &ctx.out, 0) != 0 || uv_pipe_open(&ctx.out, STDOUT_FILENO) != 0) {
        fprintf(stderr, "dspex_port: stdin/stdout must be pipes (run me as an Erlang port)\n");
        return 1;
    }
    ctx.in.data = &ctx;
    ctx.out.data = &ctx;
    if (dp_http_init(&ctx) != 0) {
        fprintf(stderr, "dspex_port: curl multi init failed\n");
        return 1;
    }
    if (uv_read_start((uv_stream_t *)&ctx.in, on_alloc, on_read) != 0) return 1;

    uv_run(&loop, UV_RUN_DEFAULT);

    dp_http_cleanup(&ctx); /* may close curl's sockets through the socket callback */
    dp_optim_close_all(&ctx);
    uv_walk(&loop, close_walk, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    dp_buf_free(&ctx.reader.in);
    curl_global_cleanup();
    return ctx.exit_code;
}
