/* UTF-8 and hex-digit helpers shared by the core parsers and printers (JSON codec,
 * JSON repair, Python literals, signatures). Header-only (static inline): they sit in
 * hot loops of the decoders. Pure C, no allocation. */
#ifndef DSPEX_UTF8_H
#define DSPEX_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* Value of one hex digit, or -1. */
static inline int dspex_hexval(unsigned char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Value of the 4 hex digits at s[i..i+4) (a \uXXXX escape), or -1 when s is shorter or
 * a digit is not hex. */
static inline long dspex_hex4(const unsigned char *s, size_t len, size_t i) {
    if (i + 4 > len) return -1;
    long v = 0;
    for (size_t k = 0; k < 4; k++) {
        int d = dspex_hexval(s[i + k]);
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

/* Length (2..4) of the well-formed UTF-8 sequence starting at s[i], a byte >= 0x80, or
 * 0 when it is not one (a stray continuation byte, an overlong form, a surrogate, a code
 * point above U+10FFFF, or a sequence cut off at len). */
static inline size_t dspex_utf8_seq(const unsigned char *s, size_t len, size_t i) {
    unsigned char c = s[i];
    size_t rem = len - i;
    if (c >= 0xC2 && c <= 0xDF) {
        if (rem >= 2 && (s[i + 1] & 0xC0) == 0x80) return 2;
        return 0;
    }
    if (c >= 0xE0 && c <= 0xEF) {
        if (rem < 3) return 0;
        unsigned char c1 = s[i + 1], c2 = s[i + 2];
        if ((c2 & 0xC0) != 0x80) return 0;
        if (c == 0xE0) return (c1 >= 0xA0 && c1 <= 0xBF) ? 3 : 0;
        if (c == 0xED) return (c1 >= 0x80 && c1 <= 0x9F) ? 3 : 0;
        return (c1 & 0xC0) == 0x80 ? 3 : 0;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        if (rem < 4) return 0;
        unsigned char c1 = s[i + 1], c2 = s[i + 2], c3 = s[i + 3];
        if ((c2 & 0xC0) != 0x80 || (c3 & 0xC0) != 0x80) return 0;
        if (c == 0xF0) return (c1 >= 0x90 && c1 <= 0xBF) ? 4 : 0;
        if (c == 0xF4) return (c1 >= 0x80 && c1 <= 0x8F) ? 4 : 0;
        return (c1 & 0xC0) == 0x80 ? 4 : 0;
    }
    return 0;
}

/* Writes code point cp as UTF-8 into out (room for 4 bytes) and returns the byte count.
 * cp is not checked: callers pass a scalar value (<= U+10FFFF, no surrogate) unless they
 * mean to write the generalized form. */
static inline size_t dspex_utf8_encode(char *out, uint32_t cp) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

#endif
