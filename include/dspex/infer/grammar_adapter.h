/* Grammars for the output of DSPy's adapters (c_src/core/grammar/layout.c): separate from
 * grammar.h because it needs the type model (adapter.h, type.h). */
#ifndef DSPEX_INFER_GRAMMAR_ADAPTER_H
#define DSPEX_INFER_GRAMMAR_ADAPTER_H

#include "dspex/adapter.h"
#include "dspex/infer/grammar.h"

/* The output of DSPy's ChatAdapter (DXA_CHAT) or JSONAdapter (DXA_JSON) for the output
 * fields of sig, typed as the adapters parse them (see layout.c). */
dspex_grammar *dspex_grammar_adapter(dxa_adapter ad, const dspex_signature *sig, dspex_gvocab *gv,
                                     const dspex_grammar_limits *lim, char *err, size_t errlen);

#endif
