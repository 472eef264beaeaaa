/* libFuzzer target for the JSON core: the pull parser (every input must end in END or
 * ERROR with an in-range offset, never crash or leak), and, on the values it produces,
 * the writer helpers: escaping must succeed on parsed strings and decode back to the
 * same bytes, floats must format and re-parse to the same bits, bignum digit
 * conversion must round-trip. The lenient mode (DSPEX_JSON_PARSE_REPLACE_INVALID) must
 * give the same events wherever the strict mode succeeds, and only valid UTF-8 strings
 * everywhere. Also drives the cJSON bridge (test/c/cjson_bridge.h). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cjson_bridge.h"
#include "dspex/json.h"

static void check(int cond) {
    if (!cond) abort();
}

static void check_string(const dspex_json_event *ev) {
    for (int flags = 0; flags <= DSPEX_JSON_ESCAPE_UNICODE; flags += DSPEX_JSON_ESCAPE_UNICODE) {
        size_t bad = 0;
        size_t el = dspex_json_escaped_len((const unsigned char *)ev->str, ev->len, flags, &bad);
        check(el != SIZE_MAX);
        char *buf = malloc(el + 2);
        check(buf != NULL);
        buf[0] = '"';
        check(dspex_json_escape(buf + 1, (const unsigned char *)ev->str, ev->len, flags, &bad) == el);
        buf[el + 1] = '"';
        dspex_json_parser p;
        dspex_json_event e2;
        dspex_json_parser_init(&p, buf, el + 2, 0);
        check(dspex_json_next(&p, &e2) == DSPEX_JSON_EV_STRING);
        check(e2.len == ev->len && memcmp(e2.str, ev->str, ev->len) == 0);
        check(dspex_json_next(&p, &e2) == DSPEX_JSON_EV_END);
        dspex_json_parser_free(&p);
        free(buf);
    }
}

static void check_float(double d) {
    char out[40];
    int n = dspex_json_format_double(out, d);
    check(n > 0 && n < 40);
    dspex_json_parser p;
    dspex_json_event e2;
    dspex_json_parser_init(&p, out, (size_t)n, 0);
    check(dspex_json_next(&p, &e2) == DSPEX_JSON_EV_FLOAT);
    check(memcmp(&e2.d, &d, sizeof(d)) == 0);
    dspex_json_parser_free(&p);
}

static void check_bigint(const dspex_json_event *ev) {
    const char *s = ev->str;
    size_t n = ev->len;
    if (n && s[0] == '-') {
        s++;
        n--;
    }
    if (n > 2000) return;
    size_t cap = n / 2 + 16;
    unsigned char *bytes = malloc(cap);
    char *back = malloc(n + 16);
    check(bytes && back);
    size_t nb = dspex_json_decimal_to_bytes(s, n, bytes, cap);
    check(nb > 0);
    size_t nd = dspex_json_bytes_to_decimal(bytes, nb, back, n + 16);
    check(nd == n && memcmp(back, s, n) == 0);
    free(bytes);
    free(back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* FNV-1a over the event stream (types and payloads). */
static uint64_t mix(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ULL;
    return h;
}

static uint64_t event_hash(uint64_t h, int t, const dspex_json_event *ev) {
    h = mix(h, &t, sizeof t);
    switch (t) {
    case DSPEX_JSON_EV_INT: return mix(h, &ev->i, sizeof ev->i);
    case DSPEX_JSON_EV_FLOAT: return mix(h, &ev->d, sizeof ev->d);
    case DSPEX_JSON_EV_BIGINT:
    case DSPEX_JSON_EV_STRING:
    case DSPEX_JSON_EV_KEY: return mix(h, ev->str, ev->len);
    default: return h;
    }
}

/* Lenient decoding: returns the event hash, or 0 when it failed. Its strings must be
 * valid UTF-8. */
static uint64_t lenient_hash(const uint8_t *data, size_t size, unsigned depth) {
    dspex_json_parser p;
    dspex_json_event ev;
    dspex_json_parser_init(&p, data, size, depth);
    p.flags = DSPEX_JSON_PARSE_REPLACE_INVALID;
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t steps = 0;; steps++) {
        check(steps <= size + 1);
        int t = dspex_json_next(&p, &ev);
        if (t == DSPEX_JSON_EV_ERROR) {
            check(p.err_offset <= size);
            h = 0;
            break;
        }
        if (t == DSPEX_JSON_EV_END) break;
        if (t == DSPEX_JSON_EV_STRING || t == DSPEX_JSON_EV_KEY) {
            size_t bad;
            check(dspex_json_escaped_len((const unsigned char *)ev.str, ev.len, 0, &bad) != SIZE_MAX);
        }
        h = event_hash(h, t, &ev);
    }
    dspex_json_parser_free(&p);
    return h;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    unsigned depth = size ? (data[0] % 4 == 0 ? 8u : 0u) : 0u;
    dspex_json_parser p;
    dspex_json_event ev;
    dspex_json_parser_init(&p, data, size, depth);
    long open = 0;
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t steps = 0;; steps++) {
        check(steps <= size + 1);
        int t = dspex_json_next(&p, &ev);
        if (t == DSPEX_JSON_EV_ERROR) {
            check(p.err_offset <= size);
            check(p.err_msg[0] != 0);
            break;
        }
        if (t == DSPEX_JSON_EV_END) {
            check(open == 0);
            check(lenient_hash(data, size, depth) == h); /* same events where strict succeeds */
            break;
        }
        h = event_hash(h, t, &ev);
        switch (t) {
        case DSPEX_JSON_EV_OBJECT_START:
        case DSPEX_JSON_EV_ARRAY_START: open++; break;
        case DSPEX_JSON_EV_OBJECT_END:
        case DSPEX_JSON_EV_ARRAY_END: open--; check(open >= 0); break;
        case DSPEX_JSON_EV_STRING:
        case DSPEX_JSON_EV_KEY: check_string(&ev); break;
        case DSPEX_JSON_EV_FLOAT: check_float(ev.d); break;
        case DSPEX_JSON_EV_BIGINT: check_bigint(&ev); break;
        default: break;
        }
    }
    dspex_json_parser_free(&p);
    lenient_hash(data, size, depth); /* on every input: no crash, valid UTF-8 strings */

    size_t off = 0;
    cJSON *j = json_to_cjson(data, size, depth, NULL, 0, &off);
    cJSON_Delete(j);
    return 0;
}
