/* NIF library entry point: the function table, load/upgrade/unload.
 * One C file per concern implements the functions listed in nif_table.h. */
#include "nif_util.h"

#include <string.h>

int dspex_nif_local_init(ErlNifEnv *env, DspexNifPriv *priv); /* nif_local.c: resource types */

static int make_priv(ErlNifEnv *env, void **priv_data) {
    DspexNifPriv *priv = enif_alloc(sizeof(*priv));
    if (priv == NULL) return 1;
    memset(priv, 0, sizeof(*priv));
#define DSPEX_ATOM(field, text) priv->atoms.field = enif_make_atom(env, text);
#include "nif_atoms.h"
#undef DSPEX_ATOM
    if (dspex_nif_local_init(env, priv) != 0) {
        enif_free(priv);
        return 1;
    }
    *priv_data = priv;
    return 0;
}

static int load(ErlNifEnv *env, void **priv_data, ERL_NIF_TERM info) {
    (void)info;
    return make_priv(env, priv_data);
}

static int upgrade(ErlNifEnv *env, void **priv_data, void **old_priv_data, ERL_NIF_TERM info) {
    (void)old_priv_data;
    (void)info;
    return make_priv(env, priv_data);
}

static void unload(ErlNifEnv *env, void *priv_data) {
    (void)env;
    enif_free(priv_data);
}

ERL_NIF_TERM dspex_nif_loaded(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    (void)argc;
    (void)argv;
    return dspex_atoms(env)->true_;
}

static ErlNifFunc nif_funcs[] = {
#define DSPEX_NIF(name, arity, fun, flags) {#name, arity, fun, flags},
#include "nif_table.h"
#undef DSPEX_NIF
};

ERL_NIF_INIT(Elixir.DSPex.NIF, nif_funcs, load, NULL, upgrade, unload)
