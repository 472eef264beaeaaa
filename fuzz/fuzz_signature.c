/* libFuzzer target for the DSPy signature parser (c_src/core/signature/signature.c).
 *
 * Any input must parse or fail cleanly (no crash, leak or UB). When it parses, the
 * signature is rendered back to text ("a: list[str] -> b") and parsed again; the second
 * rendering must equal the first (the parser and renderer agree). Every field carries
 * its inferred prefix. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dspex/signature.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Renders sig into a malloc'd string (caller frees), or NULL on allocation failure. */
static char *render_sig(const dspex_signature *sig, size_t *out_len) {
    size_t cap = 256, n = 0;
    char *buf = malloc(cap);
    if (buf == NULL) return NULL;
    for (size_t i = 0; i < sig->nfields; i++) {
        const dspex_sig_field *f = &sig->fields[i];
        size_t tlen = dspex_sig_type_render(f->type, NULL, 0);
        size_t need = n + f->name_len + tlen + 16;
        if (need > cap) {
            while (cap < need) cap *= 2;
            char *nb = realloc(buf, cap);
            if (nb == NULL) {
                free(buf);
                return NULL;
            }
            buf = nb;
        }
        if (i == sig->ninputs) n += (size_t)snprintf(buf + n, cap - n, " -> ");
        else if (i > 0) n += (size_t)snprintf(buf + n, cap - n, ", ");
        memcpy(buf + n, f->name, f->name_len);
        n += f->name_len;
        memcpy(buf + n, ": ", 2);
        n += 2;
        dspex_sig_type_render(f->type, buf + n, cap - n);
        n += tlen;
    }
    if (sig->ninputs == sig->nfields) {
        if (n + 8 > cap) {
            char *nb = realloc(buf, n + 8);
            if (nb == NULL) {
                free(buf);
                return NULL;
            }
            buf = nb;
        }
        n += (size_t)snprintf(buf + n, 8, " ->");
    }
    *out_len = n;
    return buf;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    dspex_signature *sig = NULL;
    dspex_sig_error err;
    if (dspex_sig_parse((const char *)data, size, &sig, &err) != DSPEX_SIG_OK) {
        if (err.message[0] == '\0' || memchr(err.message, '\0', sizeof err.message) == NULL) abort();
        return 0;
    }
    for (size_t i = 0; i < sig->nfields; i++) {
        const dspex_sig_field *f = &sig->fields[i];
        if (f->prefix == NULL || strlen(f->prefix) != f->prefix_len ||
            dspex_sig_infer_prefix(f->name, f->name_len, NULL, 0) != f->prefix_len)
            abort();
    }
    size_t len1 = 0, len2 = 0;
    char *r1 = render_sig(sig, &len1);
    dspex_sig_free(sig);
    if (r1 == NULL) return 0;
    if (len1 > DSPEX_SIG_MAX_INPUT) { /* rendering can be longer than the input */
        free(r1);
        return 0;
    }
    dspex_signature *again = NULL;
    if (dspex_sig_parse(r1, len1, &again, &err) != DSPEX_SIG_OK) {
        fprintf(stderr, "rendered signature does not parse: %.*s\n  %s (column %zu)\n", (int)len1, r1,
                err.message, err.column);
        abort();
    }
    char *r2 = render_sig(again, &len2);
    dspex_sig_free(again);
    if (r2 != NULL && (len1 != len2 || memcmp(r1, r2, len1) != 0)) {
        fprintf(stderr, "round trip differs:\n  %.*s\n  %.*s\n", (int)len1, r1, (int)len2, r2);
        abort();
    }
    free(r1);
    free(r2);
    return 0;
}
