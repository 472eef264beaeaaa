/* Unicode pieces the tokenizers need, with llama.cpp's exact semantics:
 * code point category flags (Unicode 15.1), a lenient UTF-8 decoder (invalid bytes
 * become U+FFFD one byte at a time), and GPT-2's byte <-> code point table. */
#ifndef DSPEX_INFER_UNICODE_H
#define DSPEX_INFER_UNICODE_H

#include <stddef.h>
#include <stdint.h>

/* Category flags (llama.cpp's bit meanings). */
#define DSPEX_UCD_UNDEFINED 0x001
#define DSPEX_UCD_NUMBER 0x002      /* \p{N} */
#define DSPEX_UCD_LETTER 0x004      /* \p{L} */
#define DSPEX_UCD_SEPARATOR 0x008   /* \p{Z} */
#define DSPEX_UCD_MARK 0x010        /* \p{M} */
#define DSPEX_UCD_PUNCTUATION 0x020 /* \p{P} */
#define DSPEX_UCD_SYMBOL 0x040      /* \p{S} */
#define DSPEX_UCD_CONTROL 0x080     /* \p{C} */
#define DSPEX_UCD_WHITESPACE 0x100  /* White_Space */

typedef struct {
    uint32_t first; /* first code point of the range */
    uint16_t flags; /* DSPEX_UCD_* bits */
} dspex_ucd_range;

/* Flags of code point cp; DSPEX_UCD_UNDEFINED above U+10FFFF. */
uint16_t dspex_ucd_flags(uint32_t cp);

/* Decodes one code point at s[*i] (i < len) like llama.cpp's unicode_cpt_from_utf8:
 * lead-byte driven, continuation bytes checked, no overlong/surrogate checks; a bad
 * sequence yields U+FFFD and advances one byte. */
uint32_t dspex_utf8_next_lenient(const unsigned char *s, size_t len, size_t *i);

/* UTF-8 byte length implied by a lead byte's high nibble (1 for 0x0-0xB, 2, 2, 3, 4). */
static inline size_t dspex_utf8_lead_len(unsigned char c) {
    static const unsigned char k[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return k[c >> 4];
}

/* GPT-2 byte-level encoding: every byte maps to a printable code point. */
uint32_t dspex_gpt2_byte_to_cp(uint8_t b);
/* The byte a code point stands for, or -1 when it is not in the table. */
int dspex_gpt2_cp_to_byte(uint32_t cp);

#endif
