/* Text embeddings from a GGUF model: the final hidden states (after the last layer and
 * the output RMSNorm, i.e. what the output matrix reads) pooled over the tokens.
 *
 * Pooling: llama.cpp's `{arch}.pooling_type` key decides when the file has one (1 mean,
 * 3 last; embedding models trained for a pooling write it); otherwise mean. Mean pooling
 * is the robust choice for a plain chat model such as SmolLM2, whose states were never
 * trained to summarise a text; last-token pooling is the convention for decoder models
 * trained as embedders (e5-mistral, gte-Qwen2: the last token of a causal model is the
 * only one that has seen the whole text). Vectors are L2-normalized on request.
 *
 * Work: one forward pass over the tokens (no logits), in chunks of at most 512 tokens;
 * memory: one context of n positions. */
#ifndef DSPEX_INFER_EMBED_H
#define DSPEX_INFER_EMBED_H

#include <stddef.h>
#include <stdint.h>

#include "dspex/infer/model.h"

enum { DSPEX_POOL_MEAN = 1, DSPEX_POOL_LAST = 3 }; /* llama.cpp's pooling_type values */

/* The file's pooling (DSPEX_POOL_MEAN when it names none or one this engine lacks). */
int dspex_embed_pooling(const dspex_model *m);

/* Embeds tokens[0..n) into out[0..n_embd). Returns 0, or -1 with err set (empty input,
 * vocab-only model, bad token, out of memory). */
int dspex_embed(const dspex_model *m, const int32_t *tokens, size_t n, int pooling, int normalize, float *out,
                char *err, size_t errlen);

#endif
