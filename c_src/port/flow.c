/* Back-pressure: a transfer stops reading from its socket (CURL_WRITEFUNC_PAUSE, so
 * TCP flow control then slows the server) when
 *   - more than DP_OUT_HIGH bytes of replies wait to be written to stdout (the BEAM is
 *     not reading fast enough): every receiving transfer pauses, all resume below
 *     DP_OUT_LOW (hysteresis, so they do not flap at the bound); or
 *   - a stream has used its credit window: DP_STREAM_WINDOW bytes of {sse, ...} frames
 *     sent that the BEAM has not acknowledged with {ack, Id, Bytes}. DSPex.Port acks
 *     once the events are handed to a consumer that keeps up, so a slow consumer slows
 *     its own stream and nothing else (the idea of muontrap's flow-control credits).
 * So the port's memory is bounded by DP_OUT_HIGH plus one network read per transfer,
 * and the loop never has more than that to write before a pong or a timeout reply.
 * While a transfer is paused by us its idle timeout is suspended (the silence is ours);
 * its total deadline still runs. */
#include "port.h"

static void link_paused(dp_req *r) {
    dp_ctx *ctx = r->ctx;
    r->paused_prev = NULL;
    r->paused_next = ctx->paused;
    if (ctx->paused) ctx->paused->paused_prev = r;
    ctx->paused = r;
}

static void unlink_paused(dp_req *r) {
    dp_ctx *ctx = r->ctx;
    if (r->paused_prev)
        r->paused_prev->paused_next = r->paused_next;
    else if (ctx->paused == r)
        ctx->paused = r->paused_next;
    if (r->paused_next) r->paused_next->paused_prev = r->paused_prev;
    r->paused_prev = r->paused_next = NULL;
}

int dp_flow_should_pause(dp_req *r) {
    int why = 0;
    if (r->ctx->out_bytes > DP_OUT_HIGH) why |= DP_PAUSE_QUEUE;
    if (r->stream_started && r->credit <= 0) why |= DP_PAUSE_CREDIT;
    if (why == 0) return 0;
    if (r->paused == 0) link_paused(r);
    r->paused |= why;
    return 1;
}

void dp_flow_spent(dp_req *r, long long n) { r->credit -= n; }

/* r is unlinked and has no pause bit left: let curl deliver what it held back. */
static void resume(dp_req *r) {
    if (r->easy == NULL || r->state != DP_RS_RUNNING) return;
    r->last_activity_ms = uv_now(r->ctx->loop);
    /* may call the write callback at once with the bytes curl kept, which may pause
     * the transfer again (it is then linked anew) */
    CURLcode rc = curl_easy_pause(r->easy, CURLPAUSE_CONT);
    if (rc != CURLE_OK) {
        dp_http_fail(r, r->fail_type ? r->fail_type : "network",
                     r->fail_msg ? r->fail_msg : "could not resume the transfer");
        return;
    }
    dp_http_watch(r);
}

void dp_flow_ack(dp_ctx *ctx, long long id, long long bytes) {
    dp_req *r = dp_table_get(&ctx->reqs, id);
    if (r == NULL) return; /* finished meanwhile */
    r->credit += bytes;
    if (r->credit > (long long)DP_STREAM_WINDOW) r->credit = DP_STREAM_WINDOW; /* no hoarding */
    if ((r->paused & DP_PAUSE_CREDIT) && r->credit > 0) {
        r->paused &= ~DP_PAUSE_CREDIT;
        if (r->paused == 0) {
            unlink_paused(r);
            resume(r);
        }
    }
}

void dp_flow_drained(dp_ctx *ctx) {
    if (ctx->paused == NULL || ctx->out_bytes > DP_OUT_LOW) return;
    /* detach the list first: resuming can pause (and link) a transfer again */
    dp_req *r = ctx->paused;
    ctx->paused = NULL;
    while (r) {
        dp_req *next = r->paused_next;
        r->paused_prev = r->paused_next = NULL;
        r->paused &= ~DP_PAUSE_QUEUE;
        if (r->paused)
            link_paused(r); /* still waiting for credit */
        else
            resume(r);
        r = next;
    }
}

void dp_flow_forget(dp_req *r) {
    if (r->paused) unlink_paused(r);
    r->paused = 0;
}
