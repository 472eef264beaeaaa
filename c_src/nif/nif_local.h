/* What nif_local.c (models, generations) and nif_grammar.c (constrained decoding) share:
 * the model resource, whose vocabulary index for grammars is built on first use. */
#ifndef DSPEX_NIF_LOCAL_H
#define DSPEX_NIF_LOCAL_H

#include "dspex/infer/grammar.h"
#include "dspex/infer/model.h"
#include "nif_util.h"

#define RES_GRAMMAR 5 /* res_types slots: taken from the end so other concerns can count up */
#define RES_GEN 6
#define RES_MODEL 7

typedef struct {
    dspex_model *m;     /* owned */
    dspex_gvocab *gv;   /* token index for grammars (owned, built on first use) */
    ErlNifMutex *gv_mu; /* guards gv's construction */
} local_model;

/* The model behind a term, or NULL. */
local_model *dspex_nif_local_model(ErlNifEnv *env, ERL_NIF_TERM t);
/* The model's grammar token index (built once; ~60 ms for a 49k vocabulary), or NULL with
 * err set. */
dspex_gvocab *dspex_nif_local_gvocab(local_model *lm, char *err, size_t errlen);
/* The grammar behind a term, or NULL. */
dspex_grammar *dspex_nif_grammar_get(ErlNifEnv *env, ERL_NIF_TERM t);
/* Registers the grammar resource type (from dspex_nif_local_init). */
int dspex_nif_grammar_init(ErlNifEnv *env, DspexNifPriv *priv);

#endif
