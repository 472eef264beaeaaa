/* A tiny unit-test harness for the C core. Each test/c/test_*.c is one program:
 *
 *   #include "ctest.h"
 *   CTEST(parses_empty_object) { CHECK(x == 1); CHECK_STREQ(a, "b"); }
 *   int main(void) { return ctest_run(); }
 *
 * Tests register themselves through a constructor; the run prints one line per failure
 * and closes with "N passed, N failed". Built with ASan+UBSan by `make ctest`. */
#ifndef DSPEX_CTEST_H
#define DSPEX_CTEST_H

#include <stdio.h>
#include <string.h>

typedef void (*ctest_fn)(int *failed);

typedef struct {
    const char *name;
    ctest_fn fn;
} ctest_case;

#define CTEST_MAX 1024
/* Test registry: file-local to each test program (tests are separate executables). */
static ctest_case ctest_cases[CTEST_MAX];
static int ctest_count;

#define CTEST(name)                                                                 \
    static void ctest_##name(int *ctest_failed);                                    \
    __attribute__((constructor)) static void ctest_register_##name(void) {          \
        if (ctest_count < CTEST_MAX) ctest_cases[ctest_count++] = (ctest_case){#name, ctest_##name}; \
    }                                                                               \
    static void ctest_##name(int *ctest_failed)

#define CHECK(cond)                                                                 \
    do {                                                                            \
        if (!(cond)) {                                                              \
            fprintf(stderr, "  %s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond); \
            *ctest_failed = 1;                                                      \
        }                                                                           \
    } while (0)

#define CHECK_STREQ(a, b)                                                           \
    do {                                                                            \
        const char *ctest_a_ = (a), *ctest_b_ = (b);                                \
        if (ctest_a_ == NULL || ctest_b_ == NULL || strcmp(ctest_a_, ctest_b_) != 0) { \
            fprintf(stderr, "  %s:%d: expected \"%s\" == \"%s\"\n", __FILE__, __LINE__, \
                    ctest_a_ ? ctest_a_ : "(null)", ctest_b_ ? ctest_b_ : "(null)");     \
            *ctest_failed = 1;                                                      \
        }                                                                           \
    } while (0)

static inline int ctest_run(void) {
    int passed = 0, failed = 0;
    for (int i = 0; i < ctest_count; i++) {
        int f = 0;
        ctest_cases[i].fn(&f);
        if (f) {
            fprintf(stderr, "FAIL %s\n", ctest_cases[i].name);
            failed++;
        } else {
            passed++;
        }
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}

#endif
