/* Unicode helpers for the tokenizers. See include/dspex/infer/unicode.h. */
#include "dspex/infer/unicode.h"

#include "unicode_flags.inc"

uint16_t dspex_ucd_flags(uint32_t cp) {
    if (cp >= 0x110000) return DSPEX_UCD_UNDEFINED;
    size_t lo = 0, hi = DSPEX_UCD_N_RANGES; /* last range with first <= cp */
    while (hi - lo > 1) {
        size_t mid = (lo + hi) / 2;
        if (k_ucd_ranges[mid].first <= cp)
            lo = mid;
        else
            hi = mid;
    }
    return k_ucd_ranges[lo].flags;
}

uint32_t dspex_utf8_next_lenient(const unsigned char *s, size_t len, size_t *i) {
    size_t o = *i;
    unsigned char c = s[o];
    if (c < 0x80) {
        *i = o + 1;
        return c;
    }
    size_t n = (c & 0x40) == 0 ? 0 : (c & 0x20) == 0 ? 2 : (c & 0x10) == 0 ? 3 : (c & 0x08) == 0 ? 4 : 0;
    if (n == 0 || o + n > len) goto bad;
    uint32_t cp = c & (0x7F >> n);
    for (size_t k = 1; k < n; k++) {
        if ((s[o + k] & 0xC0) != 0x80) goto bad;
        cp = (cp << 6) | (s[o + k] & 0x3F);
    }
    *i = o + n;
    return cp;
bad:
    *i = o + 1;
    return 0xFFFD;
}

/* Bytes 0x21-0x7E, 0xA1-0xAC and 0xAE-0xFF stand for themselves; the other 68 bytes
 * (0x00-0x20, 0x7F-0xA0, 0xAD), in order, take U+0100.. U+0143. */
uint32_t dspex_gpt2_byte_to_cp(uint8_t b) {
    if (b <= 0x20) return 0x100 + b;
    if (b >= 0x7F && b <= 0xA0) return 0x121 + (b - 0x7F);
    if (b == 0xAD) return 0x143;
    return b;
}

int dspex_gpt2_cp_to_byte(uint32_t cp) {
    if ((cp >= 0x21 && cp <= 0x7E) || (cp >= 0xA1 && cp <= 0xAC) || (cp >= 0xAE && cp <= 0xFF)) return (int)cp;
    if (cp >= 0x100 && cp <= 0x120) return (int)(cp - 0x100);
    if (cp >= 0x121 && cp <= 0x142) return (int)(cp - 0x121 + 0x7F);
    if (cp == 0x143) return 0xAD;
    return -1;
}
