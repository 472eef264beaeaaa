/* Output side of the protocol: every reply is one {packet, 4} frame queued with
 * uv_write (nothing here blocks). ctx->out_bytes counts what is queued and not yet
 * written; flow.c pauses transfers while it is high, and resumes them from here as
 * writes complete. */
#include "port.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    uv_write_t w;
    unsigned char hdr[4];
    ei_x_buff head, tail;
    dp_buf body;
    size_t bytes; /* frame size including the 4-byte length */
    dp_ctx *ctx;
} dp_wreq;

static void wreq_free(dp_wreq *wr) {
    ei_x_free(&wr->head);
    if (wr->tail.buff) ei_x_free(&wr->tail);
    dp_buf_free(&wr->body);
    free(wr);
}

static void on_written(uv_write_t *w, int status) {
    dp_wreq *wr = (dp_wreq *)w;
    dp_ctx *ctx = wr->ctx;
    ctx->writes_pending--;
    ctx->out_bytes -= wr->bytes;
    wreq_free(wr);
    if (status < 0 && !ctx->shutting_down) {
        /* the BEAM is gone (EPIPE): same as stdin EOF */
        fprintf(stderr, "dspex_port: stdout write failed: %s\n", uv_strerror(status));
        ctx->shutting_down = true;
        dp_http_abort_all(ctx);
        uv_stop(ctx->loop);
        return;
    }
    dp_flow_drained(ctx);
}

long long dp_send_parts(dp_ctx *ctx, ei_x_buff *head, dp_buf *body, ei_x_buff *tail) {
    dp_wreq *wr = ctx->shutting_down ? NULL : calloc(1, sizeof(*wr));
    if (wr == NULL) {
        if (!ctx->shutting_down) fprintf(stderr, "dspex_port: out of memory queueing a reply\n");
        ei_x_free(head);
        if (body) dp_buf_free(body);
        if (tail && tail->buff) ei_x_free(tail);
        return -1;
    }
    wr->head = *head;
    memset(head, 0, sizeof(*head));
    if (body) {
        wr->body = *body;
        memset(body, 0, sizeof(*body));
    }
    if (tail) {
        wr->tail = *tail;
        memset(tail, 0, sizeof(*tail));
    }
    wr->ctx = ctx;
    uint64_t n = (uint64_t)wr->head.index + wr->body.len + (uint64_t)(wr->tail.buff ? wr->tail.index : 0);
    if (n > UINT32_MAX) { /* cannot happen below DP_MAX_RESPONSE_CEILING; never send a lying length */
        wreq_free(wr);
        return -1;
    }
    wr->hdr[0] = (unsigned char)(n >> 24);
    wr->hdr[1] = (unsigned char)(n >> 16);
    wr->hdr[2] = (unsigned char)(n >> 8);
    wr->hdr[3] = (unsigned char)n;
    wr->bytes = (size_t)n + 4;
    uv_buf_t bufs[4];
    unsigned nb = 0;
    bufs[nb++] = uv_buf_init((char *)wr->hdr, 4);
    bufs[nb++] = uv_buf_init(wr->head.buff, (unsigned int)wr->head.index);
    if (wr->body.len) bufs[nb++] = uv_buf_init(wr->body.p, (unsigned int)wr->body.len);
    if (wr->tail.buff && wr->tail.index) bufs[nb++] = uv_buf_init(wr->tail.buff, (unsigned int)wr->tail.index);
    if (ctx->sink) {
        ctx->sink(ctx->sink_ud, bufs, nb);
        wreq_free(wr);
        return (long long)n;
    }
    int rc = uv_write(&wr->w, (uv_stream_t *)&ctx->out, bufs, nb, on_written);
    if (rc != 0) {
        fprintf(stderr, "dspex_port: uv_write: %s\n", uv_strerror(rc));
        wreq_free(wr);
        return -1;
    }
    ctx->writes_pending++;
    ctx->out_bytes += wr->bytes;
    return (long long)n;
}

long long dp_send(dp_ctx *ctx, ei_x_buff *x) { return dp_send_parts(ctx, x, NULL, NULL); }

void dp_send_pong(dp_ctx *ctx, long long id) {
    ei_x_buff x;
    if (ei_x_new_with_version(&x) != 0) return;
    ei_x_encode_tuple_header(&x, 2);
    ei_x_encode_atom(&x, "pong");
    ei_x_encode_longlong(&x, id);
    dp_send(ctx, &x);
}

void dp_encode_info(ei_x_buff *x, const dp_req *r) {
    ei_x_encode_map_header(x, 4);
    ei_x_encode_atom(x, "attempts");
    ei_x_encode_long(x, r ? r->attempts : 0);
    ei_x_encode_atom(x, "elapsed_us");
    ei_x_encode_ulonglong(x, r ? (uv_hrtime() / 1000 - r->start_us) : 0);
    ei_x_encode_atom(x, "retry_after_ms");
    if (r && r->retry_after_ms >= 0)
        ei_x_encode_longlong(x, r->retry_after_ms);
    else
        ei_x_encode_atom(x, "nil");
    ei_x_encode_atom(x, "timeout");
    ei_x_encode_atom(x, r && r->timeout_kind ? r->timeout_kind : "nil");
}

void dp_send_error(dp_ctx *ctx, long long id, const char *type, const char *msg, const dp_req *r) {
    ei_x_buff x;
    if (ei_x_new_with_version(&x) != 0) return;
    ei_x_encode_tuple_header(&x, 5);
    ei_x_encode_atom(&x, "error");
    ei_x_encode_longlong(&x, id);
    ei_x_encode_atom(&x, type);
    ei_x_encode_binary(&x, msg, (int)strlen(msg));
    dp_encode_info(&x, r);
    dp_send(ctx, &x);
}

void dp_log(dp_ctx *ctx, const char *level, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    ei_x_buff x;
    if (ctx == NULL || ctx->shutting_down || ei_x_new_with_version(&x) != 0) {
        fprintf(stderr, "dspex_port: %s\n", msg);
        return;
    }
    ei_x_encode_tuple_header(&x, 3);
    ei_x_encode_atom(&x, "log");
    ei_x_encode_atom(&x, level);
    ei_x_encode_binary(&x, msg, (int)strlen(msg));
    if (dp_send(ctx, &x) < 0) fprintf(stderr, "dspex_port: %s\n", msg);
}
