/* SHA-256 (FIPS 180-4), incremental. Pure C, no allocation. */
#ifndef DSPEX_SHA256_H
#define DSPEX_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define DSPEX_SHA256_DIGEST_LEN 32

typedef struct {
    uint32_t h[8];
    uint64_t total; /* bytes hashed so far */
    unsigned char block[64];
    size_t used; /* bytes pending in block */
} dspex_sha256_ctx;

void dspex_sha256_init(dspex_sha256_ctx *c);
void dspex_sha256_update(dspex_sha256_ctx *c, const void *data, size_t len);
void dspex_sha256_final(dspex_sha256_ctx *c, unsigned char out[DSPEX_SHA256_DIGEST_LEN]);
/* One-shot convenience. */
void dspex_sha256(const void *data, size_t len, unsigned char out[DSPEX_SHA256_DIGEST_LEN]);

#endif
