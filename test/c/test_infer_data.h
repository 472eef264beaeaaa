/* Locating the shared llama.cpp test data for the C tests (test/c/test_infer_*.c).
 *   DSPEX_GGUF_TESTDATA  the gguf test-data directory (models/, vocab/, real/); default:
 *                        ../shared/testdata/gguf or ../../shared/testdata/gguf
 *   DSPEX_GGUF_REF       the directory setup_ref.sh filled (vocab-only GGUFs in vocab/);
 *                        default: _build/gguf-ref
 * Tests that need data which is absent print "skipped: ..." and pass: CI runs on a clean
 * clone where the shared directory may not exist. */
#ifndef TEST_INFER_DATA_H
#define TEST_INFER_DATA_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static inline int td_exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0;
}

static inline const char *td_dir(void) {
    static char buf[1024];
    const char *e = getenv("DSPEX_GGUF_TESTDATA");
    if (e && td_exists(e)) return e;
    const char *cands[] = {"../shared/testdata/gguf", "../../shared/testdata/gguf"};
    for (int i = 0; i < 2; i++) {
        snprintf(buf, sizeof(buf), "%s/models", cands[i]);
        if (td_exists(buf)) return cands[i];
    }
    return NULL;
}

static inline const char *td_ref_dir(void) {
    const char *e = getenv("DSPEX_GGUF_REF");
    if (e && td_exists(e)) return e;
    return td_exists("_build/gguf-ref/vocab") ? "_build/gguf-ref" : NULL;
}

/* Whole file into a NUL-terminated malloc'd buffer; NULL when unreadable. */
static inline char *td_read(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (f == NULL) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    if (b) {
        b[n] = 0;
        if (len) *len = (size_t)n;
    }
    return b;
}

#define TD_SKIP(...)                                                                \
    do {                                                                            \
        fprintf(stderr, "  skipped: ");                                             \
        fprintf(stderr, __VA_ARGS__);                                               \
        fprintf(stderr, "\n");                                                      \
    } while (0)

#endif
