/* SHA-256 test vectors (FIPS 180-4 examples, NIST CAVS). */
#include "ctest.h"
#include "dspex/sha256.h"

#include <stdlib.h>

static void hex(const unsigned char *d, char out[65]) {
    static const char *digits = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        out[2 * i] = digits[d[i] >> 4];
        out[2 * i + 1] = digits[d[i] & 15];
    }
    out[64] = 0;
}

static void one_shot(const char *msg, size_t len, char out[65]) {
    unsigned char d[32];
    dspex_sha256(msg, len, d);
    hex(d, out);
}

CTEST(empty) {
    char h[65];
    one_shot("", 0, h);
    CHECK_STREQ(h, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

CTEST(abc) {
    char h[65];
    one_shot("abc", 3, h);
    CHECK_STREQ(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

CTEST(two_blocks_448_bits) {
    char h[65];
    const char *m = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    one_shot(m, strlen(m), h);
    CHECK_STREQ(h, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

CTEST(million_a_incremental) {
    dspex_sha256_ctx c;
    char chunk[1000];
    memset(chunk, 'a', sizeof(chunk));
    dspex_sha256_init(&c);
    for (int i = 0; i < 1000; i++) dspex_sha256_update(&c, chunk, sizeof(chunk));
    unsigned char d[32];
    char h[65];
    dspex_sha256_final(&c, d);
    hex(d, h);
    CHECK_STREQ(h, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

CTEST(million_a_one_shot) {
    char *m = malloc(1000000);
    CHECK(m != NULL);
    if (m == NULL) return;
    memset(m, 'a', 1000000);
    char h[65];
    one_shot(m, 1000000, h);
    free(m);
    CHECK_STREQ(h, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

/* Splitting the input at every offset gives the same digest (exercises block joins). */
CTEST(split_any_offset) {
    const char *m = "The quick brown fox jumps over the lazy dog, then over 64-byte block edges again.";
    size_t n = strlen(m);
    unsigned char ref[32], d[32];
    dspex_sha256(m, n, ref);
    for (size_t cut = 0; cut <= n; cut++) {
        dspex_sha256_ctx c;
        dspex_sha256_init(&c);
        dspex_sha256_update(&c, m, cut);
        dspex_sha256_update(&c, m + cut, n - cut);
        dspex_sha256_final(&c, d);
        CHECK(memcmp(d, ref, 32) == 0);
    }
}

CTEST(lengths_55_56_63_64) {
    /* padding boundaries; digests computed with a reference implementation */
    static const struct {
        size_t n;
        const char *hex;
    } v[] = {
        {55, "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318"},
        {56, "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a"},
        {63, "7d3e74a05d7db15bce4ad9ec0658ea98e3f06eeecf16b4c6fff2da457ddc2f34"},
        {64, "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb"},
    };
    char buf[64];
    memset(buf, 'a', sizeof(buf));
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        char h[65];
        one_shot(buf, v[i].n, h);
        CHECK_STREQ(h, v[i].hex);
    }
}

int main(void) { return ctest_run(); }
