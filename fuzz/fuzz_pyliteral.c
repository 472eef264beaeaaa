/* libFuzzer target: the lenient JSON / Python-literal reader, plus rendering what it
 * read back through json.dumps, str() and repr() (exercises pytext.c on arbitrary trees)
 * and validating it against a nested type (validate.c). */
#include <stddef.h>
#include <stdint.h>

#include "dspex/adapter.h"
#include "dspex/pytext.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char TYPE[] = "list[Union[int, dict[str, tuple[float, ...]], set[str], None]]";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    dspex_arena a;
    dspex_arena_init(&a, 64u << 20);
    dspex_val *v = NULL;
    if (dxa_pyliteral((const char *)data, size, 1, &a, &v) == 0 && v != NULL) {
        dspex_buf b;
        dspex_buf_init(&b);
        dspex_json_dumps(v, 2, &b);
        dspex_py_str(v, &b);
        dspex_py_repr(v, &b);
        dspex_buf_free(&b);
        dspex_type *t = NULL;
        dspex_sig_error err;
        dxa_err verr;
        dspex_val *out;
        if (dspex_sig_parse_type(TYPE, sizeof TYPE - 1, DSPEX_SIG_CLASS, &a, &t, &err) == DSPEX_SIG_OK)
            dxa_validate(t, v, &a, &out, &verr);
    }
    size_t s, e;
    dxa_find_object((const char *)data, size, &s, &e);
    dspex_arena_free(&a);
    return 0;
}
