/* A loaded model: the GGUF mapping, hyperparameters, the bound weight tensors (views
 * into the mapping, never copied; only the small 1-D norm and bias vectors are converted
 * to float), the tokenizer, the kernel table and the thread pool. A model is immutable
 * after loading and may be shared by any number of contexts (dspex/infer/context.h).
 *
 * Architectures: "llama" (Llama, Mistral, SmolLM, TinyLlama files) and "qwen2".
 * Weight types: f32, f16, q4_0, q4_1, q5_0, q5_1, q8_0, q4_K, q6_K (mixed freely).
 * RoPE: NORM pairing for llama, NEOX for qwen2; freq base; scaling none/linear/yarn;
 * llama3 rope_freqs factors. */
#ifndef DSPEX_INFER_MODEL_H
#define DSPEX_INFER_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "dspex/infer/gguf.h"
#include "dspex/infer/kernels.h"
#include "dspex/infer/pool.h"
#include "dspex/infer/vocab.h"

#define DSPEX_MAX_LAYERS 512 /* llama.cpp's LLAMA_MAX_LAYERS */

enum { DSPEX_ROPE_SCALING_NONE = 0, DSPEX_ROPE_SCALING_LINEAR, DSPEX_ROPE_SCALING_YARN };

typedef struct {
    char arch[16];        /* "llama" or "qwen2" */
    int32_t n_ctx_train;  /* {arch}.context_length */
    int32_t n_embd;       /* embedding width */
    int32_t n_layer;      /* transformer blocks */
    int32_t n_head;       /* query heads */
    int32_t n_head_kv;    /* key/value heads (GQA when < n_head) */
    int32_t head_dim;     /* per-head width (key_length) */
    int32_t n_ff;         /* SwiGLU hidden width */
    int32_t n_vocab;      /* rows of the embedding / output matrices */
    int32_t n_rot;        /* rotated dims per head (== head_dim for llama/qwen2) */
    float rms_eps;        /* RMSNorm epsilon */
    float rope_base;      /* theta base (1e4 llama, 1e6 qwen2) */
    float rope_freq_scale;/* 1/scaling factor (linear, yarn) */
    int rope_neox;        /* 1: pairs (i, i+n_rot/2) (qwen2); 0: adjacent pairs (llama) */
    int rope_scaling;     /* DSPEX_ROPE_SCALING_* */
    float yarn_ext_factor, yarn_attn_factor, yarn_beta_fast, yarn_beta_slow; /* yarn only */
    int32_t yarn_orig_ctx;/* rope.scaling.original_context_length */
} dspex_hparams;

/* A weight matrix (or vector): ne1 rows of ne0 elements in the file's encoding. */
typedef struct {
    const uint8_t *data;  /* inside the mapping */
    int type;             /* ggml type code */
    int64_t ne0, ne1;     /* row length, row count */
    size_t row_bytes;     /* bytes per row */
} dspex_weight;

typedef struct {
    float *attn_norm;                 /* [n_embd] */
    dspex_weight wq, wk, wv, wo;      /* [n_embd -> H*hd], [n_embd -> Hkv*hd] x2, [H*hd -> n_embd] */
    float *bq, *bk, *bv, *bo;         /* optional biases (qwen2 has q/k/v), NULL when absent */
    float *ffn_norm;                  /* [n_embd] */
    dspex_weight w_gate, w_up, w_down;/* SwiGLU */
} dspex_layer;

typedef struct {
    int n_threads; /* pool size (>= 1) */
    int simd;      /* 1: best kernels this CPU runs; 0: scalar reference kernels */
} dspex_model_params;

typedef struct {
    dspex_gguf *gguf;        /* the mapping everything points into */
    dspex_hparams hp;        /* hyperparameters */
    dspex_vocab vocab;       /* tokenizer */
    int vocab_only;          /* 1: no tensors (tokenizer-only file) */
    dspex_weight tok_embd;   /* [n_embd x n_vocab] */
    dspex_weight output;     /* [n_embd x n_vocab], == tok_embd when tied */
    int tied;                /* output shares tok_embd */
    float *output_norm;      /* [n_embd] */
    float *rope_freqs;       /* [n_rot/2] llama3 frequency factors, or NULL */
    dspex_layer *layers;     /* [n_layer] */
    float *vectors;          /* one allocation behind all float vectors above */
    dspex_kernels kern;      /* kernel table (scalar or AVX2) */
    dspex_pool *pool;        /* matmul threads */
    dspex_str chat_template; /* tokenizer.chat_template ("" when absent) */
} dspex_model;

/* Opens and validates path. On error returns NULL and err names the key or tensor. */
dspex_model *dspex_model_load(const char *path, const dspex_model_params *params, char *err, size_t errlen);
/* The same on an already-parsed GGUF (takes ownership of g, also on failure). */
dspex_model *dspex_model_from_gguf(dspex_gguf *g, const dspex_model_params *params, char *err, size_t errlen);
void dspex_model_free(dspex_model *m);

#endif
