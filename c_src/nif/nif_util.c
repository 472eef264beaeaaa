#include "nif_util.h"

#include <string.h>

DspexNifPriv *dspex_priv(ErlNifEnv *env) { return (DspexNifPriv *)enif_priv_data(env); }

const DspexAtoms *dspex_atoms(ErlNifEnv *env) { return &dspex_priv(env)->atoms; }

ERL_NIF_TERM dspex_ok(ErlNifEnv *env, ERL_NIF_TERM term) {
    return enif_make_tuple2(env, dspex_atoms(env)->ok, term);
}

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
