/* libFuzzer target for the port's input side (c_src/port/frame.c, validate.c): the
 * {packet, 4} reassembler fed the input in pieces whose sizes come from the input, every
 * complete frame through the bounds-checked ETF walker and the command decoder
 * (ei + request validation), and the whole input decoded as one frame as well.
 * Invariants: no crash, leak or sanitizer report; a frame the walker accepts decodes
 * without reading outside it; an http command that decodes has a valid URL and method. */
#include "port.h"

#include <stdlib.h>
#include <string.h>

static void check_command(const char *frame, size_t len) {
    long long id = -1, ack = 0;
    dp_spec spec;
    char err[256];
    dp_cmd_kind k = dp_decode(frame, len, &id, &ack, &spec, err, sizeof(err));
    switch (k) {
    case DP_CMD_HTTP:
        if (!dp_etf_valid(frame, len) || id < 0 || spec.url == NULL || spec.method == NULL) abort();
        if (dp_valid_url(spec.url, strlen(spec.url), err, sizeof(err)) != 0) abort();
        if (dp_valid_method(spec.method, strlen(spec.method), err, sizeof(err)) != 0) abort();
        if (spec.max_response_bytes < 1 || spec.max_response_bytes > (long long)DP_MAX_RESPONSE_CEILING) abort();
        dp_spec_free(&spec);
        break;
    case DP_CMD_PING:
    case DP_CMD_CANCEL:
        if (id < 0) abort();
        break;
    case DP_CMD_ACK:
        if (id < 0 || ack < 0) abort();
        break;
    case DP_CMD_BAD:
        if (err[0] == 0) abort();
        break;
    }
}

static int on_frame(void *ud, const char *frame, size_t len) {
    size_t *frames = ud;
    (*frames)++;
    check_command(frame, len);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* the whole input as one frame payload (what dp_reader hands over) */
    check_command((const char *)data, size);

    /* the input as a {packet, 4} byte stream, arriving in uneven reads */
    dp_reader reader;
    memset(&reader, 0, sizeof(reader));
    size_t frames = 0, i = 0, step = size ? (size_t)(data[0] % 13) + 1 : 1;
    int rc = 0;
    while (i < size && rc == 0) {
        size_t avail = 0;
        char *space = dp_reader_space(&reader, step, &avail);
        if (space == NULL) break;
        size_t n = size - i < step ? size - i : step;
        memcpy(space, data + i, n);
        rc = dp_reader_commit(&reader, n, on_frame, &frames);
        i += n;
        step = (step * 7 + 5) % 29 + 1;
    }
    dp_buf_free(&reader.in);
    return 0;
}
