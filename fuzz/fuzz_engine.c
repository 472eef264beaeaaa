/* libFuzzer target: the optimizer engine's replay of a journal (c_src/core/optim/engine.c).
 * The input is a list of records -- [u8 type][u16 length LE][payload] -- written with
 * valid framing and CRCs (the journal's checks pass), so the fuzzer reaches the engine's
 * own record parsers (SETUP, ASKED, TOLD, BATCH) and its replay checks; then a few
 * asks and tells run on whatever state the replay built. Every path must end in a clean
 * error or a consistent engine: no crash, no leak, no overread (ASan/UBSan). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dspex/optim/engine.h"

static int noop(void *ctx, const dspex_engine_event *ev) {
    (void)ctx;
    (void)ev;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[64];
    snprintf(path, sizeof(path), "/tmp/dspex_fuzz_engine_%d.j", (int)getpid());
    unlink(path);
    dspex_journal *j = NULL;
    dspex_journal_error err;
    dspex_journal_opts jo = {1u << 16, NULL};
    if (dspex_journal_open(path, "spec", 4, &jo, NULL, NULL, &j, NULL, &err) != DSPEX_JOURNAL_OK) return 0;
    size_t pos = 0;
    while (size - pos >= 3) {
        uint16_t type = (uint16_t)(DSPEX_ENGINE_REC_RUN + data[pos] % 8); /* 16..23: 23 is unknown */
        size_t len = (size_t)data[pos + 1] | (size_t)data[pos + 2] << 8;
        pos += 3;
        if (len > size - pos) len = size - pos;
        if (dspex_journal_append(j, type, data + pos, len, &err) != DSPEX_JOURNAL_OK) break;
        pos += len;
    }
    dspex_journal_sync(j, &err);
    dspex_journal_close(j);

    dspex_engine *e = NULL;
    if (dspex_engine_open(path, "spec", 4, &jo, "r", 1, noop, NULL, &e, NULL, &err) == DSPEX_ENGINE_OK) {
        dspex_engine_usage u = {1, 1, 1, 0.5};
        for (int i = 0; i < 8; i++) {
            dspex_engine_trial t;
            int rc = dspex_engine_ask(e, &t, &err);
            if (rc != DSPEX_ENGINE_OK) break;
            dspex_engine_tell(e, t.number, i == 3, 10.0 * i, &u, "t", 1, &err);
        }
        dspex_engine_stats st;
        dspex_engine_status(e, &st);
        dspex_engine_free(e);
    }
    unlink(path);
    return 0;
}
