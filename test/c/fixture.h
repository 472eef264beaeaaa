/* Loading committed JSON fixtures (test/fixtures/...) in C unit tests. Tests run from the
 * repository root (make ctest), so paths are relative to it. */
#ifndef DSPEX_TEST_FIXTURE_H
#define DSPEX_TEST_FIXTURE_H

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>

/* The parsed document, or NULL (with a message on stderr). Free with cJSON_Delete. */
static inline cJSON *fixture_load(const char *path) {
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "  cannot open fixture %s (run from the repository root)\n", path);
        return NULL;
    }
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len + 65536 + 1 > cap) {
            cap = cap ? cap * 2 : 1 << 20;
            char *nb = realloc(buf, cap);
            if (nb == NULL) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = nb;
        }
        size_t got = fread(buf + len, 1, 65536, f);
        len += got;
        if (got == 0) break;
    }
    fclose(f);
    buf[len] = 0;
    cJSON *doc = cJSON_ParseWithLength(buf, len);
    free(buf);
    if (doc == NULL) fprintf(stderr, "  fixture %s is not valid JSON\n", path);
    return doc;
}

/* A string member, or "" when absent. */
static inline const char *fixture_str(const cJSON *obj, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(v) ? v->valuestring : "";
}

#endif
