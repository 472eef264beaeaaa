#include "nif_util.h"

#include <string.h>

DspexNifPriv *dspex_priv(ErlNifEnv *env) { return (DspexNifPriv *)enif_priv_data(env); }

const DspexAtoms *dspex_atoms(ErlNifEnv *env) { return &dspex_priv(env)->atoms; }

ERL_NIF_TERM dspex_ok(ErlNifEnv *env, ERL_NIF_TERM term) { return enif_make_tuple2(env, dspex_atoms(env)->ok, term); }

ERL_NIF_TERM dspex_make_binary(ErlNifEnv *env, const char *buf, size_t len) {
    ERL_NIF_TERM bin;
    unsigned char *dst = enif_make_new_binary(env, len, &bin);
    if (dst == NULL) return enif_raise_exception(env, dspex_atoms(env)->out_of_memory);
    if (len) memcpy(dst, buf, len);
    return bin;
}

ERL_NIF_TERM dspex_error(ErlNifEnv *env, ERL_NIF_TERM type, const char *message, long pos) {
    const DspexAtoms *a = dspex_atoms(env);
    ERL_NIF_TERM msg = dspex_make_binary(env, message, strlen(message));
    ERL_NIF_TERM p = pos < 0 ? a->nil : enif_make_long(env, pos);
    return enif_make_tuple2(env, a->error, enif_make_tuple3(env, type, msg, p));
}

ERL_NIF_TERM dspex_raise_badarg(ErlNifEnv *env, const char *message) {
    ERL_NIF_TERM msg = dspex_make_binary(env, message, strlen(message));
    return enif_raise_exception(env, enif_make_tuple2(env, dspex_atoms(env)->badarg, msg));
}

int dspex_atom_text(ErlNifEnv *env, ERL_NIF_TERM t, dspex_arena *a, const char **s, size_t *n) {
    unsigned len;
    if (enif_get_atom_length(env, t, &len, ERL_NIF_LATIN1)) {
        char l1[256];
        if (len >= sizeof l1 || !enif_get_atom(env, t, l1, sizeof l1, ERL_NIF_LATIN1)) return -1;
        char *buf = dspex_arena_alloc(a, 2 * (size_t)len + 1);
        if (buf == NULL) return -1;
        size_t o = 0;
        for (unsigned i = 0; i < len; i++) {
            unsigned char ch = (unsigned char)l1[i];
            if (ch < 0x80) {
                buf[o++] = (char)ch;
            } else {
                buf[o++] = (char)(0xc0 | (ch >> 6));
                buf[o++] = (char)(0x80 | (ch & 0x3f));
            }
        }
        buf[o] = '\0';
        *s = buf;
        *n = o;
        return 0;
    }
    if (!enif_is_atom(env, t)) return -1;
    ErlNifBinary ext;
    if (!enif_term_to_binary(env, t, &ext)) return -1;
    int rc = -1;
    /* 131, then ATOM_UTF8_EXT (118, u16 len) or SMALL_ATOM_UTF8_EXT (119, u8 len) */
    if (ext.size >= 3 && ext.data[0] == 131) {
        size_t off = 0, l = 0;
        if (ext.data[1] == 119) {
            l = ext.data[2];
            off = 3;
        } else if (ext.data[1] == 118 && ext.size >= 4) {
            l = ((size_t)ext.data[2] << 8) | ext.data[3];
            off = 4;
        }
        if (off && off + l <= ext.size) {
            char *buf = dspex_arena_strndup(a, (const char *)ext.data + off, l);
            if (buf) {
                *s = buf;
                *n = l;
                rc = 0;
            }
        }
    }
    enif_release_binary(&ext);
    return rc;
}

int dspex_existing_atom(ErlNifEnv *env, const char *s, size_t n, ERL_NIF_TERM *out) {
    int ascii = 1;
    for (size_t k = 0; k < n; k++)
        if ((unsigned char)s[k] >= 0x80) {
            ascii = 0;
            break;
        }
    if (ascii) return n <= 255 && enif_make_existing_atom_len(env, s, n, out, ERL_NIF_LATIN1);
    if (n > 1020) return 0;
    /* OTP 25's NIF API only looks up Latin-1 atoms; go through the external term format
     * (ATOM_UTF8_EXT) with the safe flag, which refuses to create atoms. */
    unsigned char buf[1024 + 4];
    buf[0] = 131;
    buf[1] = 118;
    buf[2] = (unsigned char)(n >> 8);
    buf[3] = (unsigned char)n;
    memcpy(buf + 4, s, n);
    return enif_binary_to_term(env, buf, n + 4, out, ERL_NIF_BIN2TERM_SAFE) == n + 4 && enif_is_atom(env, *out);
}
