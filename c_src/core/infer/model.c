/* Model loading: hyperparameters with llama.cpp's key names and types, tensor binding
 * with exact shape checks, tokenizer, kernels, thread pool. See dspex/infer/model.h. */
#include "dspex/infer/model.h"
#include "dspex/errmsg.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ hyperparameters */

/* A required or optional u32 key "{arch}.{name}". Returns 0 found, 1 absent, -1 error. */
static int hp_u32(const dspex_gguf *g, const char *arch, const char *name, uint32_t *out, int required, char *err,
                  size_t errlen) {
    char key[128];
    snprintf(key, sizeof(key), "%s.%s", arch, name);
    int rc = dspex_gguf_get_u32(g, key, out, err, errlen);
    if (rc == 1 && required) {
        dspex_errmsg(err, errlen, "key not found in model: %s", key);
        return -1;
    }
    return rc;
}

/* Like hp_u32 but also accepts a per-layer array whose values are all equal. */
static int hp_u32_or_array(const dspex_gguf *g, const char *arch, const char *name, uint32_t *out, int required,
                           char *err, size_t errlen) {
    char key[128];
    snprintf(key, sizeof(key), "%s.%s", arch, name);
    const dspex_gguf_kv *kv = dspex_gguf_find(g, key);
    if (kv && kv->type == DSPEX_GGUF_ARRAY) {
        if ((kv->arr_type != DSPEX_GGUF_U32 && kv->arr_type != DSPEX_GGUF_I32) || kv->arr_n == 0) {
            dspex_errmsg(err, errlen, "key %s: expected u32 or an array of u32", key);
            return -1;
        }
        uint32_t v0 = dspex_gguf_arr_u32(kv, 0);
        for (uint64_t i = 1; i < kv->arr_n; i++)
            if (dspex_gguf_arr_u32(kv, i) != v0) {
                dspex_errmsg(err, errlen, "key %s: per-layer values differ (not supported by this engine)", key);
                return -1;
            }
        *out = v0;
        return 0;
    }
    return hp_u32(g, arch, name, out, required, err, errlen);
}

static int hp_f32(const dspex_gguf *g, const char *arch, const char *name, float *out, int required, char *err,
                  size_t errlen) {
    char key[128];
    snprintf(key, sizeof(key), "%s.%s", arch, name);
    int rc = dspex_gguf_get_f32(g, key, out, err, errlen);
    if (rc == 1 && required) {
        dspex_errmsg(err, errlen, "key not found in model: %s", key);
        return -1;
    }
    return rc;
}

static int read_hparams(const dspex_gguf *g, dspex_hparams *hp, char *err, size_t errlen) {
    dspex_str a;
    int rc = dspex_gguf_get_str(g, "general.architecture", &a, err, errlen);
    if (rc == 1) dspex_errmsg(err, errlen, "key not found in model: general.architecture");
    if (rc != 0) return -1;
    if (!dspex_str_eq(a, "llama") && !dspex_str_eq(a, "qwen2")) {
        dspex_errmsg(err, errlen, "architecture '%.*s' is not supported (supported: llama, qwen2)", (int)(a.n > 40 ? 40 : a.n),
               a.p);
        return -1;
    }
    memcpy(hp->arch, a.p, a.n);
    hp->arch[a.n] = 0;
    const char *A = hp->arch;
    hp->rope_neox = strcmp(A, "qwen2") == 0;
    uint32_t ctx, embd, layers, ff, heads, heads_kv, key_len, val_len, rot;
    if (hp_u32(g, A, "context_length", &ctx, 1, err, errlen) < 0) return -1;
    if (hp_u32(g, A, "embedding_length", &embd, 1, err, errlen) < 0) return -1;
    if (hp_u32(g, A, "block_count", &layers, 1, err, errlen) < 0) return -1;
    if (hp_u32_or_array(g, A, "feed_forward_length", &ff, 1, err, errlen) < 0) return -1;
    if (hp_u32_or_array(g, A, "attention.head_count", &heads, 1, err, errlen) < 0) return -1;
    if ((rc = hp_u32_or_array(g, A, "attention.head_count_kv", &heads_kv, 0, err, errlen)) < 0) return -1;
    if (rc == 1) heads_kv = heads;
    if (hp_f32(g, A, "attention.layer_norm_rms_epsilon", &hp->rms_eps, 1, err, errlen) < 0) return -1;
    const struct {
        const char *name;
        uint32_t v, lo, hi;
    } lim[] = {{"context_length", ctx, 1, 1u << 24},          {"embedding_length", embd, 1, 1u << 20},
               {"block_count", layers, 1, DSPEX_MAX_LAYERS},  {"feed_forward_length", ff, 1, 1u << 22},
               {"attention.head_count", heads, 1, 4096},      {"attention.head_count_kv", heads_kv, 1, 4096}};
    for (size_t i = 0; i < sizeof(lim) / sizeof(lim[0]); i++)
        if (lim[i].v < lim[i].lo || lim[i].v > lim[i].hi) {
            dspex_errmsg(err, errlen, "%s.%s = %u is out of range (%u..%u)", A, lim[i].name, lim[i].v, lim[i].lo, lim[i].hi);
            return -1;
        }
    if (heads % heads_kv != 0) {
        dspex_errmsg(err, errlen, "%s.attention.head_count %u is not a multiple of head_count_kv %u", A, heads, heads_kv);
        return -1;
    }
    key_len = embd / heads; /* default head width; key_length overrides it */
    if ((rc = hp_u32(g, A, "attention.key_length", &key_len, 0, err, errlen)) < 0) return -1;
    val_len = key_len;
    if ((rc = hp_u32(g, A, "attention.value_length", &val_len, 0, err, errlen)) < 0) return -1;
    if (key_len == 0 || key_len != val_len || key_len % 2 != 0 || key_len > 4096) {
        dspex_errmsg(err, errlen, "%s.attention.key_length/value_length %u/%u: need equal, even head widths (<= 4096)", A,
               key_len, val_len);
        return -1;
    }
    rot = key_len;
    if (hp_u32(g, A, "rope.dimension_count", &rot, 0, err, errlen) < 0) return -1;
    if (rot != key_len) {
        dspex_errmsg(err, errlen, "%s.rope.dimension_count = %u must equal the head width %u for %s", A, rot, key_len, A);
        return -1;
    }
    hp->n_ctx_train = (int32_t)ctx;
    hp->n_embd = (int32_t)embd;
    hp->n_layer = (int32_t)layers;
    hp->n_ff = (int32_t)ff;
    hp->n_head = (int32_t)heads;
    hp->n_head_kv = (int32_t)heads_kv;
    hp->head_dim = (int32_t)key_len;
    hp->n_rot = (int32_t)rot;
    hp->rope_base = 10000.0f;
    if (hp_f32(g, A, "rope.freq_base", &hp->rope_base, 0, err, errlen) < 0) return -1;
    if (!(hp->rope_base > 1.0f) || !isfinite(hp->rope_base)) {
        dspex_errmsg(err, errlen, "%s.rope.freq_base = %g is not a finite value > 1", A, (double)hp->rope_base);
        return -1;
    }
    if (!(hp->rms_eps >= 0.0f) || !isfinite(hp->rms_eps)) {
        dspex_errmsg(err, errlen, "%s.attention.layer_norm_rms_epsilon = %g is not a finite value >= 0", A, (double)hp->rms_eps);
        return -1;
    }
    /* rope scaling */
    hp->rope_freq_scale = 1.0f;
    hp->rope_scaling = DSPEX_ROPE_SCALING_NONE;
    char key[128];
    snprintf(key, sizeof(key), "%s.rope.scaling.type", A);
    dspex_str st;
    if ((rc = dspex_gguf_get_str(g, key, &st, err, errlen)) < 0) return -1;
    float factor = 0.0f;
    if (hp_f32(g, A, "rope.scaling.factor", &factor, 0, err, errlen) < 0) return -1;
    float lin = 0.0f;
    if (hp_f32(g, A, "rope.scale_linear", &lin, 0, err, errlen) < 0) return -1;
    if (rc == 0) {
        if (dspex_str_eq(st, "none")) hp->rope_scaling = DSPEX_ROPE_SCALING_NONE;
        else if (dspex_str_eq(st, "linear")) hp->rope_scaling = DSPEX_ROPE_SCALING_LINEAR;
        else if (dspex_str_eq(st, "yarn")) hp->rope_scaling = DSPEX_ROPE_SCALING_YARN;
        else {
            dspex_errmsg(err, errlen, "%s: rope scaling '%.*s' is not supported (none, linear, yarn)", key,
                   (int)(st.n > 20 ? 20 : st.n), st.p);
            return -1;
        }
    } else if (lin > 0.0f) {
        hp->rope_scaling = DSPEX_ROPE_SCALING_LINEAR;
        factor = lin;
    }
    if (hp->rope_scaling != DSPEX_ROPE_SCALING_NONE && factor > 0.0f && isfinite(factor)) hp->rope_freq_scale = 1.0f / factor;
    if (hp->rope_scaling == DSPEX_ROPE_SCALING_NONE) hp->rope_freq_scale = 1.0f;
    uint32_t orig = ctx;
    if (hp_u32(g, A, "rope.scaling.original_context_length", &orig, 0, err, errlen) < 0) return -1;
    hp->yarn_orig_ctx = (int32_t)orig;
    hp->yarn_ext_factor = hp->rope_scaling == DSPEX_ROPE_SCALING_YARN ? 1.0f : 0.0f;
    hp->yarn_attn_factor = 1.0f;
    hp->yarn_beta_fast = 32.0f;
    hp->yarn_beta_slow = 1.0f;
    if (hp->rope_scaling == DSPEX_ROPE_SCALING_YARN && hp->rope_freq_scale < 1.0f) {
        /* llama.cpp: attn_factor = mscale(factor) = 0.1 ln(factor) + 1, then divided by
         * the same term that rope_yarn multiplies in, so the product stays 1 */
        float f = 1.0f / hp->rope_freq_scale;
        hp->yarn_attn_factor = (0.1f * logf(f) + 1.0f) / (1.0f + 0.1f * logf(f));
    }
    return 0;
}

/* ------------------------------------------------------------------ tensors */

static const dspex_gguf_tensor *tensor(const dspex_gguf *g, const char *name, int required, char *err, size_t errlen) {
    const dspex_gguf_tensor *t = dspex_gguf_find_tensor(g, name);
    if (t == NULL && required) dspex_errmsg(err, errlen, "missing tensor: %s", name);
    return t;
}

/* Checks the tensor is [ne0, ne1] (trailing dims 1). */
static int shape_is(const dspex_gguf_tensor *t, const char *name, int64_t ne0, int64_t ne1, char *err, size_t errlen) {
    if (t->ne[0] != ne0 || t->ne[1] != ne1 || t->ne[2] != 1 || t->ne[3] != 1) {
        dspex_errmsg(err, errlen, "tensor %s has wrong shape [%lld, %lld, %lld, %lld]; expected [%lld, %lld]", name,
               (long long)t->ne[0], (long long)t->ne[1], (long long)t->ne[2], (long long)t->ne[3], (long long)ne0,
               (long long)ne1);
        return -1;
    }
    return 0;
}

static int bind_matrix(dspex_model *m, const char *name, int64_t ne0, int64_t ne1, dspex_weight *w, char *err,
                       size_t errlen) {
    const dspex_gguf_tensor *t = tensor(m->gguf, name, 1, err, errlen);
    if (t == NULL || shape_is(t, name, ne0, ne1, err, errlen) != 0) return -1;
    const dspex_type_info *ti = dspex_type(t->type);
    char tb[16];
    if (ti == NULL || !ti->weights || m->kern.dot[t->type] == NULL) {
        dspex_errmsg(err, errlen,
               "tensor %s has type %s, which this engine does not support (supported: f32, f16, q4_0, q4_1, q5_0, "
               "q5_1, q8_0, q4_K, q6_K)",
               name, dspex_ggml_type_name(t->type, tb));
        return -1;
    }
    w->data = t->data;
    w->type = t->type;
    w->ne0 = ne0;
    w->ne1 = ne1;
    w->row_bytes = dspex_row_bytes(t->type, ne0);
    return 0;
}

/* A 1-D vector of n elements, converted to float into *dst (from the model's float pool). */
static int bind_vector(dspex_model *m, const char *name, int64_t n, int required, float **dst, float **pool, char *err,
                       size_t errlen) {
    const dspex_gguf_tensor *t = tensor(m->gguf, name, required, err, errlen);
    if (t == NULL) return required ? -1 : 0;
    if (shape_is(t, name, n, 1, err, errlen) != 0) return -1;
    char tb[16];
    if (t->type != DSPEX_T_F32 && t->type != DSPEX_T_F16) {
        dspex_errmsg(err, errlen, "tensor %s has type %s; 1-D norm/bias tensors must be f32 or f16", name,
               dspex_ggml_type_name(t->type, tb));
        return -1;
    }
    *dst = *pool;
    *pool += n;
    dspex_dequantize_row(t->type, t->data, *dst, n);
    for (int64_t i = 0; i < n; i++)
        if (!isfinite((*dst)[i])) {
            dspex_errmsg(err, errlen, "tensor %s holds a non-finite value at %lld", name, (long long)i);
            return -1;
        }
    return 0;
}

static int bind_tensors(dspex_model *m, char *err, size_t errlen) {
    const dspex_hparams *hp = &m->hp;
    int64_t n = hp->n_embd, q = (int64_t)hp->n_head * hp->head_dim, kv = (int64_t)hp->n_head_kv * hp->head_dim;
    const dspex_gguf_tensor *emb = tensor(m->gguf, "token_embd.weight", 1, err, errlen);
    if (emb == NULL) return -1;
    if (emb->ne[0] != n || emb->ne[2] != 1 || emb->ne[3] != 1 || emb->ne[1] < 1 || emb->ne[1] > INT32_MAX) {
        dspex_errmsg(err, errlen, "tensor token_embd.weight has wrong shape [%lld, %lld]; expected [%lld, n_vocab]",
               (long long)emb->ne[0], (long long)emb->ne[1], (long long)n);
        return -1;
    }
    m->hp.n_vocab = (int32_t)emb->ne[1];
    if (m->vocab.type != DSPEX_VOCAB_NONE && m->vocab.n_tokens > m->hp.n_vocab) {
        dspex_errmsg(err, errlen, "token_embd.weight has %d rows but the vocabulary has %d tokens", m->hp.n_vocab,
               m->vocab.n_tokens);
        return -1;
    }
    if (bind_matrix(m, "token_embd.weight", n, hp->n_vocab, &m->tok_embd, err, errlen) != 0) return -1;
    m->tied = dspex_gguf_find_tensor(m->gguf, "output.weight") == NULL;
    if (m->tied)
        m->output = m->tok_embd;
    else if (bind_matrix(m, "output.weight", n, hp->n_vocab, &m->output, err, errlen) != 0)
        return -1;
    m->layers = calloc((size_t)hp->n_layer, sizeof(dspex_layer));
    if (m->layers == NULL) {
        dspex_errmsg(err, errlen, "out of memory");
        return -1;
    }
    char name[96];
#define NAME(fmt) (snprintf(name, sizeof(name), "blk.%d." fmt, i), name)
    /* matrices first: their shapes are checked against tensors that exist in the file, so
     * once they pass, every dimension below is bounded by the file size */
    for (int i = 0; i < hp->n_layer; i++) {
        dspex_layer *L = &m->layers[i];
        if (bind_matrix(m, NAME("attn_q.weight"), n, q, &L->wq, err, errlen) ||
            bind_matrix(m, NAME("attn_k.weight"), n, kv, &L->wk, err, errlen) ||
            bind_matrix(m, NAME("attn_v.weight"), n, kv, &L->wv, err, errlen) ||
            bind_matrix(m, NAME("attn_output.weight"), q, n, &L->wo, err, errlen) ||
            bind_matrix(m, NAME("ffn_gate.weight"), n, hp->n_ff, &L->w_gate, err, errlen) ||
            bind_matrix(m, NAME("ffn_up.weight"), n, hp->n_ff, &L->w_up, err, errlen) ||
            bind_matrix(m, NAME("ffn_down.weight"), hp->n_ff, n, &L->w_down, err, errlen))
            return -1;
    }
    /* float vectors: norms, biases, rope factors */
    size_t nf = (size_t)n * (2 * (size_t)hp->n_layer + 1) + (size_t)hp->n_layer * (size_t)(q + 2 * kv + n) +
                (size_t)hp->n_rot / 2;
    m->vectors = malloc(nf * sizeof(float));
    if (m->vectors == NULL) {
        dspex_errmsg(err, errlen, "out of memory");
        return -1;
    }
    float *pool = m->vectors;
    if (bind_vector(m, "output_norm.weight", n, 1, &m->output_norm, &pool, err, errlen) != 0) return -1;
    if (bind_vector(m, "rope_freqs.weight", hp->n_rot / 2, 0, &m->rope_freqs, &pool, err, errlen) != 0) return -1;
    for (int i = 0; i < hp->n_layer; i++) {
        dspex_layer *L = &m->layers[i];
        if (bind_vector(m, NAME("attn_norm.weight"), n, 1, &L->attn_norm, &pool, err, errlen) ||
            bind_vector(m, NAME("attn_q.bias"), q, 0, &L->bq, &pool, err, errlen) ||
            bind_vector(m, NAME("attn_k.bias"), kv, 0, &L->bk, &pool, err, errlen) ||
            bind_vector(m, NAME("attn_v.bias"), kv, 0, &L->bv, &pool, err, errlen) ||
            bind_vector(m, NAME("attn_output.bias"), n, 0, &L->bo, &pool, err, errlen) ||
            bind_vector(m, NAME("ffn_norm.weight"), n, 1, &L->ffn_norm, &pool, err, errlen))
            return -1;
    }
#undef NAME
    return 0;
}

/* ------------------------------------------------------------------ load / free */

void dspex_model_free(dspex_model *m) {
    if (m == NULL) return;
    dspex_pool_free(m->pool);
    dspex_vocab_free(&m->vocab);
    free(m->layers);
    free(m->vectors);
    dspex_gguf_free(m->gguf);
    free(m);
}

dspex_model *dspex_model_from_gguf(dspex_gguf *g, const dspex_model_params *params, char *err, size_t errlen) {
    dspex_model *m = calloc(1, sizeof(*m));
    if (m == NULL) {
        dspex_gguf_free(g);
        dspex_errmsg(err, errlen, "out of memory");
        return NULL;
    }
    m->gguf = g;
    dspex_kernels_select(&m->kern, params ? params->simd : 1);
    m->chat_template = (dspex_str){"", 0};
    if (dspex_gguf_get_str(g, "tokenizer.chat_template", &m->chat_template, err, errlen) < 0) goto fail;
    if (dspex_gguf_n_tensors(g) == 0) {
        /* a tokenizer-only file (llama.cpp ships them for every vocabulary): any
         * architecture name will do, only the tokenizer is loaded */
        dspex_str a = {"", 0};
        if (dspex_gguf_get_str(g, "general.architecture", &a, err, errlen) < 0) goto fail;
        size_t n = a.n < sizeof(m->hp.arch) - 1 ? a.n : sizeof(m->hp.arch) - 1;
        memcpy(m->hp.arch, a.p, n);
        m->hp.arch[n] = 0;
        if (dspex_vocab_load(&m->vocab, g, m->hp.arch, err, errlen) != 0) goto fail;
        m->vocab_only = 1;
        m->hp.n_vocab = m->vocab.n_tokens;
        err[0] = 0;
        return m;
    }
    if (read_hparams(g, &m->hp, err, errlen) != 0) goto fail;
    if (dspex_vocab_load(&m->vocab, g, m->hp.arch, err, errlen) != 0) goto fail;
    if (bind_tensors(m, err, errlen) != 0) goto fail;
    m->pool = dspex_pool_new(params && params->n_threads > 0 ? params->n_threads : 1);
    if (m->pool == NULL) {
        dspex_errmsg(err, errlen, "cannot start the thread pool");
        goto fail;
    }
    err[0] = 0;
    return m;
fail:
    dspex_model_free(m);
    return NULL;
}

dspex_model *dspex_model_load(const char *path, const dspex_model_params *params, char *err, size_t errlen) {
    dspex_gguf *g = dspex_gguf_open(path, err, errlen);
    if (g == NULL) return NULL;
    return dspex_model_from_gguf(g, params, err, errlen);
}
