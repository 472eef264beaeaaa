/* NIF bindings: repair. Placeholder until implemented. */
#include "nif_util.h"

ERL_NIF_TERM dspex_nif_json_repair(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    (void)argc;
    (void)argv;
    return dspex_error(env, dspex_atoms(env)->not_implemented, "json_repair is not implemented yet", -1);
}

ERL_NIF_TERM dspex_nif_json_extract(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    (void)argc;
    (void)argv;
    return dspex_error(env, dspex_atoms(env)->not_implemented, "json_extract is not implemented yet", -1);
}

