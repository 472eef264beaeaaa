/* libFuzzer target: the journal reader (dspex_journal_scan_fd) on arbitrary files.
 *
 * Input: byte 0 = mode, byte 1 = max_record selector, the rest = the file. Random bytes
 * almost never carry valid CRCs, so the mode can make the harness help:
 *   bit 0: prepend a valid 16-byte file header
 *   bit 1: walk the body as records and fix their magic, header CRC and (when the record
 *          fits) record CRC, so sequence, type, spec, length and torn/corrupt logic run
 *   bit 2: require the spec "fuzz-spec" (exercises the ESPEC path)
 * Invariants checked: on success the valid and torn bytes add up to the file size and
 * the spec record was seen; visited payloads lie inside the file. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "dspex/crc32c.h"
#include "dspex/optim/journal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void put32(unsigned char *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static uint32_t get32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static size_t visited_bytes;

static int visit(void *ctx, const dspex_journal_record *r) {
    size_t file_size = *(const size_t *)ctx;
    if (r->offset + 28 + r->len > file_size) abort(); /* a record cannot extend past the file */
    for (uint32_t i = 0; i < r->len; i++) visited_bytes += r->payload[i]; /* touch every byte */
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static int fd = -1;
    if (fd < 0) fd = memfd_create("fuzz_journal", 0);
    if (fd < 0 || size < 2) return 0;
    unsigned mode = data[0];
    dspex_journal_opts o = {.max_record = 16u << (data[1] % 16)};
    data += 2;
    size -= 2;

    size_t hdr = (mode & 1) ? 16 : 0;
    unsigned char *f = malloc(hdr + size + 1);
    if (f == NULL) return 0;
    if (hdr) {
        memcpy(f, "DSPEXJNL", 8);
        put32(f + 8, 1);
        put32(f + 12, dspex_crc32c(0, f, 12));
    }
    if (size) memcpy(f + hdr, data, size);
    size_t n = hdr + size;
    if (mode & 2) {
        size_t off = 16;
        while (off + 28 <= n) {
            unsigned char *h = f + off;
            memcpy(h, "DXJR", 4);
            h[18] = h[19] = 0;
            put32(h + 20, dspex_crc32c(0, h, 20));
            uint32_t len = get32(h + 4);
            if (len > n - off - 28) break;
            put32(h + 24 + len, dspex_crc32c(dspex_crc32c(0, h, 24), h + 24, len));
            off += 28 + (size_t)len;
        }
    }
    if (ftruncate(fd, 0) != 0 || (n && pwrite(fd, f, n, 0) != (ssize_t)n)) {
        free(f);
        return 0;
    }
    free(f);
    dspex_journal_info info;
    dspex_journal_error err;
    const char *spec = (mode & 4) ? "fuzz-spec" : NULL;
    int rc = dspex_journal_scan_fd(fd, spec, spec ? 9 : 0, &o, visit, &n, &info, &err);
    if (rc == DSPEX_JOURNAL_OK && (info.valid_bytes + info.torn_bytes != n || info.records == 0)) abort();
    if (rc != DSPEX_JOURNAL_OK && err.message[0] == 0) abort(); /* every error says what happened */
    return 0;
}
