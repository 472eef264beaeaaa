/* The forward pass's operations (ops.c), each over a batch of T rows, with llama.cpp's
 * numerics: RMSNorm summed in double; matmuls on activations encoded in the weight's
 * vec_dot_type; RoPE tables built by repeated float multiplication; softmax summed in
 * double. Internal to c_src/core/infer. */
#ifndef DSPEX_INFER_OPS_H
#define DSPEX_INFER_OPS_H

#include "dspex/infer/context.h"

/* y[t] = x[t] / sqrt(mean(x[t]^2) + eps) * w, for T rows of n. */
void dspex_op_rmsnorm(float *y, const float *x, const float *w, int64_t n, int T, float eps);

/* y[t][r] = W_row(r) . x[t] for T rows of w->ne0 inputs; y rows have stride ystride. */
void dspex_op_matmul(dspex_ctx *c, const dspex_weight *w, const float *x, int T, float *y, int64_t ystride);

/* cos/sin tables for positions pos[0..T) into c->rope. */
void dspex_op_rope_table(dspex_ctx *c, const int32_t *pos, int T);
/* Rotates n_heads heads of head_dim in each of T rows (row stride = n_heads*head_dim). */
void dspex_op_rope(const dspex_ctx *c, float *x, int T, int n_heads);

/* Causal attention of T query rows, row t at position pos[t] over layer `layer` of its
 * own sequence's cache (rows[t].seq, which already holds the row's key and value);
 * output [T][n_head*head_dim] into out; s is the scratch (score rows). */
void dspex_op_attention(dspex_ctx *s, int layer, const dspex_row *rows, const float *q, const int32_t *pos, int T,
                        float *out);

/* a[i] = silu(a[i]) * b[i] */
void dspex_op_swiglu(float *a, const float *b, int64_t n);

#endif
