/* The one place request bytes are checked before anything reaches the wire (RFC 9110
 * §5.1, §5.5, §9.1; RFC 3986). DSPex.Pool checks only types (what it must encode);
 * every byte-level rule lives here, so a request sent by any BEAM process gets the
 * same answer: {error, Id, bad_request, Message, Info}. Messages name the offending
 * byte and its offset, never the value (header values carry API keys, URLs may too). */
#include "port.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

/* tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." / "^" / "_" / "`"
 *       / "|" / "~" / DIGIT / ALPHA */
static int is_tchar(unsigned char c) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return 1;
    return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* Offset of the first byte that is not a tchar, or -1. */
static long bad_token_byte(const char *s, size_t len) {
    for (size_t i = 0; i < len; i++)
        if (!is_tchar((unsigned char)s[i])) return (long)i;
    return -1;
}

int dp_valid_method(const char *m, size_t len, char *err, size_t errlen) {
    if (len == 0 || len > DP_MAX_METHOD) {
        snprintf(err, errlen, "method must be 1 to %d bytes", DP_MAX_METHOD);
        return -1;
    }
    long at = bad_token_byte(m, len);
    if (at >= 0) {
        snprintf(err, errlen,
                 "method must be an HTTP token (letters, digits, !#$%%&'*+-.^_`|~): byte 0x%02X at offset %ld is "
                 "not allowed",
                 (unsigned char)m[at], at);
        return -1;
    }
    return 0;
}

int dp_valid_url(const char *url, size_t len, char *err, size_t errlen) {
    if (len == 0 || len > DP_MAX_URL) {
        snprintf(err, errlen, "url must be 1 to %u bytes", DP_MAX_URL);
        return -1;
    }
    /* control characters (NUL, CR, LF...), space and DEL never belong in a URL; curl would
     * stop at a NUL and send a shorter URL than asked for */
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)url[i];
        if (c <= 0x20 || c == 0x7F) {
            snprintf(err, errlen, "url contains a control character or space (byte 0x%02X at offset %zu)", c, i);
            return -1;
        }
    }
    if (strncasecmp(url, "http://", 7) != 0 && strncasecmp(url, "https://", 8) != 0) {
        snprintf(err, errlen, "url must be an absolute http:// or https:// URL");
        return -1;
    }
    /* the rest (host, port, IPv6 brackets, percent escapes) as curl will parse it */
    CURLU *u = curl_url();
    if (u == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    char *host = NULL;
    CURLUcode rc = curl_url_set(u, CURLUPART_URL, url, 0);
    if (rc == CURLUE_OK) rc = curl_url_get(u, CURLUPART_HOST, &host, 0);
    int ok = rc == CURLUE_OK && host != NULL && host[0] != 0;
    curl_free(host);
    curl_url_cleanup(u);
    if (!ok) {
        snprintf(err, errlen, "url is not a valid absolute URL with a host (%s)",
                 rc == CURLUE_OK ? "empty host" : curl_url_strerror(rc));
        return -1;
    }
    return 0;
}

int dp_valid_header(int index, const char *name, size_t nl, const char *value, size_t vl, char *err,
                    size_t errlen) {
    if (nl == 0 || nl > DP_MAX_HEADER_NAME) {
        snprintf(err, errlen, "header %d: name must be 1 to %d bytes", index, DP_MAX_HEADER_NAME);
        return -1;
    }
    long at = bad_token_byte(name, nl);
    if (at >= 0) {
        snprintf(err, errlen,
                 "header %d: name must be an HTTP token (letters, digits, !#$%%&'*+-.^_`|~): byte 0x%02X at offset "
                 "%ld is not allowed",
                 index, (unsigned char)name[at], at);
        return -1;
    }
    if (vl > DP_MAX_HEADER_VALUE) {
        snprintf(err, errlen, "header %d (%.*s): value is over %u bytes", index, (int)nl, name, DP_MAX_HEADER_VALUE);
        return -1;
    }
    /* field-value: visible characters, obs-text (0x80-0xFF), SP and HTAB; no other
     * control character (CR and LF would start a new header: request smuggling) */
    for (size_t i = 0; i < vl; i++) {
        unsigned char c = (unsigned char)value[i];
        if ((c < 0x20 && c != '\t') || c == 0x7F) {
            snprintf(err, errlen, "header %d (%.*s): value contains a control character (byte 0x%02X at offset %zu)",
                     index, (int)nl, name, c, i);
            return -1;
        }
    }
    return 0;
}
