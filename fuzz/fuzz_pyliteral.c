/* libFuzzer target: the lenient JSON / Python-literal reader, plus rendering what it
 * read back through json.dumps and str() (exercises pyvalue.c on arbitrary trees). */
#include <stddef.h>
#include <stdint.h>

#include "dspex/adapter.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    dspex_arena a;
    dspex_arena_init(&a, 64u << 20);
    dxa_val *v = NULL;
    if (dxa_pyliteral((const char *)data, size, 1, &a, &v) == 0 && v != NULL) {
        dspex_buf b;
        dspex_buf_init(&b);
        dxa_json_dumps(v, 2, &b);
        dxa_py_str(v, &b);
        dspex_buf_free(&b);
    }
    size_t s, e;
    dxa_find_object((const char *)data, size, &s, &e);
    dspex_arena_free(&a);
    return 0;
}
