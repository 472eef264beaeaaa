/* NIF bindings: json. Placeholder until implemented. */
#include "nif_util.h"

ERL_NIF_TERM dspex_nif_json_decode(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    (void)argc;
    (void)argv;
    return dspex_error(env, dspex_atoms(env)->not_implemented, "json_decode is not implemented yet", -1);
}

ERL_NIF_TERM dspex_nif_json_encode(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    (void)argc;
    (void)argv;
    return dspex_error(env, dspex_atoms(env)->not_implemented, "json_encode is not implemented yet", -1);
}

