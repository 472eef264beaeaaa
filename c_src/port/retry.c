/* Retry policy: what is retryable, full-jitter backoff, Retry-After parsing. */
#include "port.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

bool dp_retryable_status(long status) {
    return status == 408 || status == 409 || status == 429 || (status >= 500 && status <= 599);
}

/* Connection-level failures: nothing (or not all) of a response was received, so the
 * request can be sent again. Our own aborts (CURLE_WRITE_ERROR) are not retried. */
bool dp_retryable_curl(CURLcode rc) {
    switch (rc) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT: /* only the connect phase: curl enforces CONNECTTIMEOUT */
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
        return true;
    default:
        return false;
    }
}

long long dp_parse_retry_after(const char *v, time_t now) {
    while (*v == ' ' || *v == '\t') v++;
    if (*v == 0) return -1;
    if (isdigit((unsigned char)*v)) {
        char *end;
        double secs = strtod(v, &end);
        while (*end == ' ' || *end == '\t') end++;
        if (*end != 0 || secs < 0) return -1;
        if (secs > 86400.0) secs = 86400.0;
        return (long long)(secs * 1000.0);
    }
    time_t t = curl_getdate(v, NULL);
    if (t == (time_t)-1) return -1;
    if (t <= now) return 0;
    long long d = (long long)(t - now);
    if (d > 86400) d = 86400;
    return d * 1000;
}

uint64_t dp_rand(uint64_t *s) {
    /* xorshift64* */
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1DULL;
}

long long dp_backoff_ms(uint64_t *rng, long long base_ms, long long cap_ms, int n) {
    if (base_ms <= 0 || cap_ms <= 0) return 0;
    long long ceiling = base_ms;
    for (int i = 0; i < n && ceiling < cap_ms; i++) ceiling *= 2;
    if (ceiling > cap_ms) ceiling = cap_ms;
    return (long long)(dp_rand(rng) % (uint64_t)(ceiling + 1));
}
