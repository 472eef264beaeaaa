/* libFuzzer target for the DSPy signature parser (c_src/core/signature/signature.c) and
 * the type model's signature-string rendering (type.c).
 *
 * Any input must parse or fail cleanly (no crash, leak or UB), in the mode chosen by the
 * first byte (DSPy's string parser or a class-body annotation). When it parses, every
 * field type is rendered in the signature syntax, parsed back as a type (class mode) and
 * must compare equal; its DSPy name, JSON schema and the field's inferred prefix must
 * render. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dspex/signature.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    dspex_sig_mode mode = (data[0] & 1) ? DSPEX_SIG_CLASS : DSPEX_SIG_STRING;
    dspex_signature *sig = NULL;
    dspex_sig_error err;
    if (dspex_sig_parse((const char *)data + 1, size - 1, mode, &sig, &err) != DSPEX_SIG_OK) {
        if (err.message[0] == '\0' || memchr(err.message, '\0', sizeof err.message) == NULL) abort();
        return 0;
    }
    dspex_arena a;
    dspex_arena_init(&a, 64u << 20);
    for (size_t i = 0; i < sig->nfields; i++) {
        const dspex_field *f = &sig->fields[i];
        if (!dspex_sig_valid_name(f->name, f->name_len, 0)) abort();
        dspex_buf b;
        dspex_buf_init(&b);
        if (dspex_sig_infer_prefix(f->name, f->name_len, &b) != 0) abort();
        b.len = 0;
        dspex_type_name(f->type, &b);
        b.len = 0;
        if (dspex_type_json_schema(f->type, &a, &b) != 0 && !b.oom) abort();
        b.len = 0;
        dspex_type_string(f->type, &b);
        dspex_type *back = NULL;
        if (!b.oom && b.len <= DSPEX_SIG_MAX_INPUT) {
            if (dspex_sig_parse_type(b.p, b.len, DSPEX_SIG_CLASS, &a, &back, &err) != DSPEX_SIG_OK) {
                fprintf(stderr, "rendered type does not parse: %.*s\n  %s (column %zu)\n", (int)b.len, b.p, err.message,
                        err.column);
                abort();
            }
            if (!dspex_type_equal(f->type, back)) {
                fprintf(stderr, "type round trip differs: %.*s\n", (int)b.len, b.p);
                abort();
            }
        }
        dspex_buf_free(&b);
    }
    dspex_arena_free(&a);
    dspex_sig_free(sig);
    return 0;
}
