/* What nif_local.c (models, generations) and nif_grammar.c (constrained decoding) share:
 * the model resource, whose vocabulary index for grammars is built on first use. */
#ifndef DSPEX_NIF_LOCAL_H
#define DSPEX_NIF_LOCAL_H

#include "dspex/infer/grammar.h"
#include "nif_util.h"

/* Opaque here (nif_local.c): the engine's headers and the type model's cannot meet in one
 * file (quant.h's dspex_type() function vs type.h's dspex_type). */
typedef struct local_model local_model;

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
