/* Forward-pass operations. See ops.h. */
#include "ops.h"

#include <math.h>
#include <string.h>

/* ------------------------------------------------------------------ RMSNorm */

void dspex_op_rmsnorm(float *y, const float *x, const float *w, int64_t n, int T, float eps) {
    for (int t = 0; t < T; t++) {
        const float *xr = x + (int64_t)t * n;
        float *yr = y + (int64_t)t * n;
        double sum = 0.0; /* llama.cpp sums the float squares in double */
        for (int64_t i = 0; i < n; i++) sum += (double)(xr[i] * xr[i]);
        float mean = (float)(sum / (double)n);
        float scale = 1.0f / sqrtf(mean + eps);
        for (int64_t i = 0; i < n; i++) yr[i] = xr[i] * scale * w[i];
    }
}

/* ------------------------------------------------------------------ matmul */

/* Weight rows are split into tasks; a task multiplies its rows by every activation row:
 * with a tile kernel (gemm) in one call that loads each weight block once per few
 * activation rows, otherwise one dot product per (row, activation) pair. The two give
 * equal bits (see kernels.h), so the result does not depend on the path or the split. */
typedef struct {
    dspex_vec_dot_fn dot;  /* kernel for the weight type */
    dspex_gemm_fn gemm;    /* tile kernel, or NULL */
    const dspex_weight *w; /* weights */
    const uint8_t *xq;     /* encoded activation rows */
    size_t xrow;           /* bytes per activation row */
    int T;                 /* rows */
    float *y;              /* output */
    int64_t ystride;       /* output row stride */
    int64_t rows_per_task; /* output rows per task */
} mm_job;

static void mm_task(void *arg, int task, int thread) {
    (void)thread;
    const mm_job *j = arg;
    int64_t r0 = (int64_t)task * j->rows_per_task, r1 = r0 + j->rows_per_task;
    if (r1 > j->w->ne1) r1 = j->w->ne1;
    if (r0 >= r1) return;
    const uint8_t *w0 = j->w->data + (size_t)r0 * j->w->row_bytes;
    if (j->gemm) {
        for (int64_t r = r0; r < r1; r += 1 << 20) { /* the tile kernel counts rows in an int */
            int nr = (int)(r1 - r < (1 << 20) ? r1 - r : (1 << 20));
            j->gemm(j->w->ne0, w0 + (size_t)(r - r0) * j->w->row_bytes, j->w->row_bytes, nr, j->xq, j->xrow, j->T,
                    j->y + r, j->ystride);
        }
        return;
    }
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *wr = j->w->data + (size_t)r * j->w->row_bytes;
        for (int t = 0; t < j->T; t++) j->y[t * j->ystride + r] = j->dot(j->w->ne0, wr, j->xq + (size_t)t * j->xrow);
    }
}

/* Activation rows encoded for the weight type, one task per row (prefill batches). */
typedef struct {
    int vt;          /* encoding */
    const float *x;  /* [T][n] */
    uint8_t *xq;     /* [T][xrow] */
    int64_t n;       /* row length */
    size_t xrow;     /* encoded bytes per row */
} q_job;

static void q_task(void *arg, int t, int thread) {
    (void)thread;
    const q_job *q = arg;
    dspex_quantize_row(q->vt, q->x + (int64_t)t * q->n, q->xq + (size_t)t * q->xrow, q->n);
}

void dspex_op_matmul(dspex_ctx *c, const dspex_weight *w, const float *x, int T, float *y, int64_t ystride) {
    const dspex_model *m = c->m;
    int vt = dspex_vec_dot_type(w->type);
    int threads = dspex_pool_threads(m->pool);
    mm_job j = {m->kern.dot[w->type], m->kern.gemm[w->type], w, NULL, 0, T, y, ystride, 0};
    if (vt == DSPEX_T_F32) {
        j.xq = (const uint8_t *)x;
        j.xrow = (size_t)w->ne0 * sizeof(float);
    } else {
        j.xrow = dspex_row_bytes(vt, w->ne0);
        q_job q = {vt, x, c->xq, w->ne0, j.xrow};
        if (threads > 1 && T >= 8)
            dspex_pool_run(m->pool, T, q_task, &q);
        else
            for (int t = 0; t < T; t++) q_task(&q, t, 0);
        j.xq = c->xq;
    }
    /* small products are not worth waking the workers (~5 us each) */
    int64_t work = w->ne0 * w->ne1 * T;
    if (threads == 1 || work < (1 << 16)) {
        j.rows_per_task = w->ne1;
        mm_task(&j, 0, 0);
        return;
    }
    int64_t tasks = (int64_t)threads * 8; /* 8 chunks per thread balances uneven progress */
    j.rows_per_task = (w->ne1 + tasks - 1) / tasks;
    j.rows_per_task = (j.rows_per_task + 3) & ~(int64_t)3; /* whole tiles of 4 rows */
    dspex_pool_run(m->pool, (int)((w->ne1 + j.rows_per_task - 1) / j.rows_per_task), mm_task, &j);
}

/* ------------------------------------------------------------------ RoPE */

static float yarn_ramp(float low, float high, int i0) {
    float y = (float)(i0 / 2 - low) / fmaxf(0.001f, high - low);
    return 1.0f - fminf(1.0f, fmaxf(0.0f, y));
}

void dspex_op_rope_table(dspex_ctx *c, const int32_t *pos, int T) {
    const dspex_hparams *hp = &c->m->hp;
    const float *ff = c->m->rope_freqs;
    int nr = hp->n_rot;
    float theta_scale = powf(hp->rope_base, -2.0f / (float)nr);
    for (int t = 0; t < T; t++) {
        float *cs = c->rope + (size_t)t * nr;
        float theta = (float)pos[t];
        for (int i0 = 0; i0 < nr; i0 += 2) {
            float te = theta / (ff ? ff[i0 / 2] : 1.0f);
            float th = hp->rope_freq_scale * te, mscale = hp->yarn_attn_factor;
            if (hp->yarn_ext_factor != 0.0f) {
                float mix = yarn_ramp(c->yarn_corr[0], c->yarn_corr[1], i0) * hp->yarn_ext_factor;
                th = th * (1 - mix) + te * mix;
                mscale *= 1.0f + 0.1f * logf(1.0f / hp->rope_freq_scale);
            }
            cs[i0] = cosf(th) * mscale;
            cs[i0 + 1] = sinf(th) * mscale;
            theta *= theta_scale;
        }
    }
}

void dspex_op_rope(const dspex_ctx *c, float *x, int T, int n_heads) {
    const dspex_hparams *hp = &c->m->hp;
    int nr = hp->n_rot, hd = hp->head_dim;
    for (int t = 0; t < T; t++) {
        const float *cs = c->rope + (size_t)t * nr;
        for (int h = 0; h < n_heads; h++) {
            float *v = x + ((size_t)t * n_heads + h) * hd;
            for (int i0 = 0; i0 < nr; i0 += 2) {
                /* NEOX pairs (i, i + n_rot/2); NORM pairs adjacent elements */
                int a = hp->rope_neox ? i0 / 2 : i0, b = hp->rope_neox ? i0 / 2 + nr / 2 : i0 + 1;
                float x0 = v[a], x1 = v[b], co = cs[i0], si = cs[i0 + 1];
                v[a] = x0 * co - x1 * si;
                v[b] = x0 * si + x1 * co;
            }
        }
    }
}

/* ------------------------------------------------------------------ attention */

typedef struct {
    dspex_ctx *s;          /* scratch (per-thread score rows in s->att) */
    const dspex_row *rows; /* each row's sequence (its cache) */
    const int32_t *pos;    /* each row's position */
    const float *q;        /* [T][n_head * hd] queries */
    float *out;            /* [T][n_head * hd] attention output */
    int layer;             /* layer index into each cache */
    int n_head, group, hd; /* query heads, query heads per kv head, head width */
    float scale;           /* 1 / sqrt(hd) */
} att_job;

/* One task = one row and one kv head: the `group` query heads that share the kv head are
 * scored together, so each cached key and value row is read once per task instead of once
 * per query head (the cache reads dominate decode attention at long contexts). Per query
 * head the arithmetic is the plain one, in position order: score = q.k * scale, softmax
 * with a double sum, then out += p * v. */
static void att_task(void *arg, int task, int thread) {
    const att_job *j = arg;
    const dspex_kernels *k = &j->s->m->kern;
    int t = task / (j->n_head / j->group), kvh = task % (j->n_head / j->group), G = j->group, hd = j->hd;
    const dspex_ctx *c = j->rows[t].seq;
    size_t lo = (size_t)j->layer * c->n_ctx * c->kv_dim + (size_t)kvh * hd;
    const float *kc = c->k + lo, *vc = c->v + lo;
    int32_t n = j->pos[t] + 1; /* causal: positions 0..pos */
    const float *q0 = j->q + ((size_t)t * j->n_head + (size_t)kvh * G) * hd;
    float *s0 = j->s->att + (size_t)thread * j->s->att_cap * G; /* [G][att_cap] */
    for (int32_t p = 0; p < n; p++) {
        const float *kr = kc + (size_t)p * c->kv_dim;
        for (int g = 0; g < G; g++) s0[(size_t)g * j->s->att_cap + p] = k->dot_f32(hd, q0 + (size_t)g * hd, kr) * j->scale;
    }
    float *o0 = j->out + ((size_t)t * j->n_head + (size_t)kvh * G) * hd;
    for (int g = 0; g < G; g++) {
        float *s = s0 + (size_t)g * j->s->att_cap, mx = -INFINITY;
        for (int32_t p = 0; p < n; p++)
            if (s[p] > mx) mx = s[p];
        double sum = 0.0;
        for (int32_t p = 0; p < n; p++) {
            s[p] = expf(s[p] - mx);
            sum += (double)s[p];
        }
        float inv = (float)(1.0 / sum);
        for (int32_t p = 0; p < n; p++) s[p] *= inv;
        memset(o0 + (size_t)g * hd, 0, (size_t)hd * sizeof(float));
    }
    for (int32_t p = 0; p < n; p++) {
        const float *vr = vc + (size_t)p * c->kv_dim;
        for (int g = 0; g < G; g++) k->axpy_f32(hd, s0[(size_t)g * j->s->att_cap + p], vr, o0 + (size_t)g * hd);
    }
}

void dspex_op_attention(dspex_ctx *s, int layer, const dspex_row *rows, const float *q, const int32_t *pos, int T,
                        float *out) {
    const dspex_hparams *hp = &s->m->hp;
    att_job j = {s, rows, pos, q, out, layer, hp->n_head, hp->n_head / hp->n_head_kv, hp->head_dim,
                 1.0f / sqrtf((float)hp->head_dim)};
    int tasks = T * hp->n_head_kv;
    int64_t work = 0;
    for (int t = 0; t < T; t++) work += (int64_t)(pos[t] + 1) * hp->n_head * hp->head_dim;
    if (work < (1 << 15)) {
        for (int i = 0; i < tasks; i++) att_task(&j, i, 0);
        return;
    }
    dspex_pool_run(s->m->pool, tasks, att_task, &j);
}

/* ------------------------------------------------------------------ SwiGLU */

void dspex_op_swiglu(float *a, const float *b, int64_t n) {
    for (int64_t i = 0; i < n; i++) a[i] = a[i] / (1.0f + expf(-a[i])) * b[i];
}
