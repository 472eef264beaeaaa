/* NIF bindings: signature. Placeholder until implemented. */
#include "nif_util.h"

ERL_NIF_TERM dspex_nif_signature_parse(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    (void)argc;
    (void)argv;
    return dspex_error(env, dspex_atoms(env)->not_implemented, "signature_parse is not implemented yet", -1);
}

