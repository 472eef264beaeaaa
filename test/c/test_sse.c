/* SSE parser: framing rules and reassembly across arbitrary splits. */
#include "ctest.h"
#include "dspex/sse.h"

#include <stdlib.h>

typedef struct {
    char out[8192]; /* "type|data\x1e" per event; "-" for a NULL type */
    size_t len;
    int events;
} collect;

static int on_event(void *ud, const char *ev, size_t evlen, const char *data, size_t dlen) {
    collect *c = ud;
    if (c->len + evlen + dlen + 4 > sizeof(c->out)) return 99;
    if (ev) {
        memcpy(c->out + c->len, ev, evlen);
        c->len += evlen;
    } else {
        c->out[c->len++] = '-';
    }
    c->out[c->len++] = '|';
    memcpy(c->out + c->len, data, dlen);
    c->len += dlen;
    c->out[c->len++] = ';';
    c->out[c->len] = 0;
    c->events++;
    return 0;
}

static void parse_whole(const char *in, collect *c) {
    memset(c, 0, sizeof(*c));
    dspex_sse_parser *p = dspex_sse_new(4096);
    if (p == NULL) return;
    dspex_sse_feed(p, in, strlen(in), on_event, c);
    dspex_sse_finish(p, on_event, c);
    dspex_sse_free(p);
}

CTEST(basic_events) {
    collect c;
    parse_whole("data: hello\n\nevent: delta\ndata: {\"a\":1}\n\n", &c);
    CHECK_STREQ(c.out, "-|hello;delta|{\"a\":1};");
    CHECK(c.events == 2);
}

CTEST(crlf_and_cr_line_endings) {
    collect c;
    parse_whole("data: a\r\n\r\ndata: b\r\rdata: c\n\n", &c);
    CHECK_STREQ(c.out, "-|a;-|b;-|c;");
}

CTEST(multiline_data_joined_with_newline) {
    collect c;
    parse_whole("data: line1\ndata: line2\ndata:\n\n", &c);
    CHECK_STREQ(c.out, "-|line1\nline2\n;");
}

CTEST(comments_and_unknown_fields_ignored) {
    collect c;
    parse_whole(": keepalive\nid: 7\nretry: 100\nfoo: bar\ndata: x\n\n: another\n\n", &c);
    CHECK_STREQ(c.out, "-|x;");
}

CTEST(done_passthrough_and_no_space) {
    collect c;
    parse_whole("data:[DONE]\n\ndata:  two spaces\n\n", &c);
    CHECK_STREQ(c.out, "-|[DONE];-| two spaces;");
}

CTEST(field_without_colon_and_empty_event) {
    collect c;
    parse_whole("data\n\nevent\ndata: y\n\n", &c);
    CHECK_STREQ(c.out, "-|;-|y;");
}

CTEST(event_without_data_is_not_dispatched) {
    collect c;
    parse_whole("event: ping\n\ndata: z\n\n", &c);
    CHECK_STREQ(c.out, "-|z;");
}

CTEST(bom_skipped) {
    collect c;
    parse_whole("\xEF\xBB\xBF" "data: bom\n\n", &c);
    CHECK_STREQ(c.out, "-|bom;");
}

CTEST(finish_dispatches_unterminated_event) {
    collect c;
    parse_whole("data: tail", &c);
    CHECK_STREQ(c.out, "-|tail;");
}

CTEST(oversized_event_is_an_error) {
    dspex_sse_parser *p = dspex_sse_new(32);
    CHECK(p != NULL);
    if (p == NULL) return;
    collect c;
    memset(&c, 0, sizeof(c));
    const char *big = "data: 0123456789012345678901234567890123456789\n\n";
    CHECK(dspex_sse_feed(p, big, strlen(big), on_event, &c) == DSPEX_SSE_ETOOBIG);
    dspex_sse_reset(p);
    CHECK(dspex_sse_feed(p, "data: ok\n\n", 10, on_event, &c) == 0);
    CHECK_STREQ(c.out, "-|ok;");
    /* many data lines adding up past the bound also fail */
    dspex_sse_reset(p);
    int rc = 0;
    for (int i = 0; i < 20 && rc == 0; i++) rc = dspex_sse_feed(p, "data: abc\n", 10, on_event, &c);
    CHECK(rc == DSPEX_SSE_ETOOBIG);
    dspex_sse_free(p);
}

CTEST(callback_stop_propagates) {
    dspex_sse_parser *p = dspex_sse_new(1024);
    if (p == NULL) return;
    collect c;
    memset(&c, 0, sizeof(c));
    c.len = sizeof(c.out) - 2; /* forces on_event to return 99 */
    CHECK(dspex_sse_feed(p, "data: x\n\n", 9, on_event, &c) == 99);
    dspex_sse_free(p);
}

static const char *k_stream =
    "\xEF\xBB\xBF: comment\r\n"
    "event: message_start\r\n"
    "data: {\"type\":\"message_start\"}\r\n\r\n"
    "data: part1\n"
    "data: part2\n\n"
    "event: delta\r"
    "data: {\"t\":\"h\\u00e9llo\"}\r\r"
    "data: [DONE]\n\n";

static const char *k_expected =
    "message_start|{\"type\":\"message_start\"};-|part1\npart2;delta|{\"t\":\"h\\u00e9llo\"};-|[DONE];";

/* Every single split point, fed as two slices. */
CTEST(split_at_every_offset) {
    size_t n = strlen(k_stream);
    for (size_t cut = 0; cut <= n; cut++) {
        collect c;
        memset(&c, 0, sizeof(c));
        dspex_sse_parser *p = dspex_sse_new(4096);
        if (p == NULL) return;
        CHECK(dspex_sse_feed(p, k_stream, cut, on_event, &c) == 0);
        CHECK(dspex_sse_feed(p, k_stream + cut, n - cut, on_event, &c) == 0);
        CHECK(dspex_sse_finish(p, on_event, &c) == 0);
        dspex_sse_free(p);
        if (strcmp(c.out, k_expected) != 0) {
            fprintf(stderr, "  cut=%zu got %s\n", cut, c.out);
            CHECK(0);
        }
    }
}

/* One byte at a time, and every pair of split points. */
CTEST(split_into_single_bytes_and_pairs) {
    size_t n = strlen(k_stream);
    collect c;
    memset(&c, 0, sizeof(c));
    dspex_sse_parser *p = dspex_sse_new(4096);
    if (p == NULL) return;
    for (size_t i = 0; i < n; i++) CHECK(dspex_sse_feed(p, k_stream + i, 1, on_event, &c) == 0);
    CHECK(dspex_sse_finish(p, on_event, &c) == 0);
    CHECK_STREQ(c.out, k_expected);
    for (size_t a = 0; a <= n; a += 3) {
        for (size_t b = a; b <= n; b += 5) {
            dspex_sse_reset(p);
            memset(&c, 0, sizeof(c));
            dspex_sse_feed(p, k_stream, a, on_event, &c);
            dspex_sse_feed(p, k_stream + a, b - a, on_event, &c);
            dspex_sse_feed(p, k_stream + b, n - b, on_event, &c);
            dspex_sse_finish(p, on_event, &c);
            CHECK(strcmp(c.out, k_expected) == 0);
        }
    }
    dspex_sse_free(p);
}

int main(void) { return ctest_run(); }
