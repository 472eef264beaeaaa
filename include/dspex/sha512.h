/* SHA-512 (FIPS 180-4), incremental. Pure C, no allocation.
 * Used to seed CPython-compatible generators from strings: random.Random("text")
 * hashes the text's UTF-8 bytes with SHA-512 (include/dspex/optim/pyrandom.h). */
#ifndef DSPEX_SHA512_H
#define DSPEX_SHA512_H

#include <stddef.h>
#include <stdint.h>

#define DSPEX_SHA512_DIGEST_LEN 64

typedef struct {
    uint64_t h[8];
    uint64_t total; /* bytes hashed so far (inputs are < 2^61 bytes) */
    unsigned char block[128];
    size_t used; /* bytes pending in block */
} dspex_sha512_ctx;

void dspex_sha512_init(dspex_sha512_ctx *c);
void dspex_sha512_update(dspex_sha512_ctx *c, const void *data, size_t len);
void dspex_sha512_final(dspex_sha512_ctx *c, unsigned char out[DSPEX_SHA512_DIGEST_LEN]);
/* One-shot convenience. */
void dspex_sha512(const void *data, size_t len, unsigned char out[DSPEX_SHA512_DIGEST_LEN]);

#endif
