/* Embeddings of local models (c_src/core/infer/embed.c): one text's token ids per call,
 * on a dirty CPU scheduler (a forward pass without logits; the Elixir side loops over
 * texts, so no call holds a scheduler for more than one text). */
#include <stdlib.h>

#include "dspex/infer/embed.h"
#include "nif_local.h"

#define ERRLEN 256

/* local_embed(model, ids, pooling, normalize): pooling :mean | :last | nil (the file's);
 * {:ok, [float]} or {:error, {:inference, message, nil}}. */
ERL_NIF_TERM dspex_nif_local_embed(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    (void)argc;
    const DspexAtoms *a = dspex_atoms(env);
    local_model *lm = dspex_nif_local_model(env, argv[0]);
    unsigned n;
    if (lm == NULL || !enif_get_list_length(env, argv[1], &n))
        return dspex_raise_badarg(env, "local_embed/4 expects a model and a list of token ids");
    int pooling;
    if (enif_is_identical(argv[2], a->nil)) pooling = dspex_embed_pooling(lm->m);
    else if (enif_is_identical(argv[2], a->em_mean)) pooling = DSPEX_POOL_MEAN;
    else if (enif_is_identical(argv[2], a->em_last)) pooling = DSPEX_POOL_LAST;
    else return dspex_raise_badarg(env, "local_embed/4: pooling must be :mean, :last or nil");
    int32_t *ids = malloc((n ? n : 1) * sizeof(int32_t));
    float *out = malloc((size_t)lm->m->hp.n_embd * sizeof(float));
    if (ids == NULL || out == NULL) {
        free(ids), free(out);
        return enif_raise_exception(env, a->out_of_memory);
    }
    ERL_NIF_TERM h, t = argv[1];
    for (unsigned i = 0; i < n; i++) {
        int v;
        if (!enif_get_list_cell(env, t, &h, &t) || !enif_get_int(env, h, &v)) {
            free(ids), free(out);
            return dspex_raise_badarg(env, "local_embed/4: token ids must be integers");
        }
        ids[i] = v;
    }
    char err[ERRLEN];
    ERL_NIF_TERM res;
    if (dspex_embed(lm->m, ids, n, pooling, enif_is_identical(argv[3], a->true_), out, err, sizeof err) != 0) {
        res = dspex_error(env, a->lo_inference, err, -1);
    } else {
        ERL_NIF_TERM l = enif_make_list(env, 0);
        for (int64_t k = lm->m->hp.n_embd; k > 0; k--) l = enif_make_list_cell(env, enif_make_double(env, out[k - 1]), l);
        res = dspex_ok(env, l);
    }
    free(ids), free(out);
    return res;
}
