/* Tokenizers against llama.cpp: the .inp/.out vectors shipped with llama.cpp (spm, gpt-2,
 * qwen2, llama-bpe, starcoder), and each shared model's reference tokenizations
 * (plain, special-parsed, detokenized). Skips cleanly without the shared data. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctest.h"
#include "dspex/infer/gguf.h"
#include "dspex/infer/vocab.h"
#include "test_infer_data.h"

typedef struct {
    dspex_gguf *g;
    dspex_vocab v;
} tok_ctx;

static int open_vocab(const char *path, tok_ctx *t) {
    char err[256];
    t->g = dspex_gguf_open(path, err, sizeof(err));
    if (t->g == NULL) {
        fprintf(stderr, "  %s: %s\n", path, err);
        return -1;
    }
    dspex_str arch = {"llama", 5};
    dspex_gguf_get_str(t->g, "general.architecture", &arch, err, sizeof(err));
    char a[64];
    snprintf(a, sizeof(a), "%.*s", (int)arch.n, arch.p);
    if (dspex_vocab_load(&t->v, t->g, a, err, sizeof(err)) != 0) {
        fprintf(stderr, "  %s: %s\n", path, err);
        dspex_gguf_free(t->g);
        return -1;
    }
    return 0;
}

static void close_vocab(tok_ctx *t) {
    dspex_vocab_free(&t->v);
    dspex_gguf_free(t->g);
}

static int tokens_equal(const dspex_buf *got, const int32_t *want, size_t n) {
    if (got->len != n * 4) return 0;
    return n == 0 || memcmp(got->p, want, n * 4) == 0;
}

static void show_mismatch(const char *what, size_t i, const char *text, const dspex_buf *got) {
    fprintf(stderr, "  %s case %zu mismatch for \"%.60s\": got", what, i, text);
    for (size_t k = 0; k + 4 <= got->len && k < 120; k += 4) {
        int32_t id;
        memcpy(&id, got->p + k, 4);
        fprintf(stderr, " %d", id);
    }
    fprintf(stderr, "\n");
}

/* Runs one .inp/.out pair; returns the number of failures. */
static int run_vectors(const char *gguf, const char *inp, const char *outp, int *cases) {
    tok_ctx t;
    if (open_vocab(gguf, &t) != 0) return 1;
    char *in = td_read(inp, NULL), *out = td_read(outp, NULL);
    if (!in || !out) {
        free(in);
        free(out);
        close_vocab(&t);
        return 1;
    }
    const char *sep = "\n__ggml_vocab_test__\n";
    char *p = in, *o = out;
    int fails = 0;
    *cases = 0;
    for (size_t i = 0;; i++) {
        char *e = strstr(p, sep);
        if (e == NULL) break;
        *e = 0;
        char *ol = o, *oe = strchr(o, '\n');
        if (oe) *oe = 0;
        o = oe ? oe + 1 : o + strlen(o);
        int32_t want[4096];
        size_t nw = 0;
        for (char *q = ol; *q && nw < 4096;) {
            char *end;
            long id = strtol(q, &end, 10);
            if (end == q) break;
            want[nw++] = (int32_t)id;
            q = end;
        }
        dspex_buf got;
        dspex_buf_init(&got);
        dspex_tokenize(&t.v, p, strlen(p), 0, 0, &got);
        if (!tokens_equal(&got, want, nw)) {
            show_mismatch(inp, i, p, &got);
            fails++;
        }
        dspex_buf_free(&got);
        (*cases)++;
        p = e + strlen(sep);
    }
    free(in);
    free(out);
    close_vocab(&t);
    return fails;
}

CTEST(llama_cpp_vocab_vectors) {
    const char *td = td_dir(), *ref = td_ref_dir();
    if (td == NULL) {
        TD_SKIP("shared gguf test data not found (set DSPEX_GGUF_TESTDATA)");
        return;
    }
    const struct {
        const char *name, *fallback_model;
    } sets[] = {{"llama-spm", "llama-spm32k-q8_0-gqa-tied-minkeys"},
                {"gpt-2", "llama-gpt2full-q4_0-mha-tied"},
                {"qwen2", NULL},
                {"llama-bpe", NULL},
                {"starcoder", NULL}};
    for (size_t s = 0; s < sizeof(sets) / sizeof(sets[0]); s++) {
        char gguf[1024], inp[1024], outp[1024];
        snprintf(inp, sizeof(inp), "%s/vocab/ggml-vocab-%s.gguf.inp", td, sets[s].name);
        snprintf(outp, sizeof(outp), "%s/vocab/ggml-vocab-%s.gguf.out", td, sets[s].name);
        gguf[0] = 0;
        if (ref) snprintf(gguf, sizeof(gguf), "%s/vocab/ggml-vocab-%s.gguf", ref, sets[s].name);
        if (!gguf[0] || !td_exists(gguf)) {
            if (sets[s].fallback_model)
                snprintf(gguf, sizeof(gguf), "%s/models/%s.gguf", td, sets[s].fallback_model);
            else {
                TD_SKIP("vocab-only %s GGUF not found (run setup_ref.sh into _build/gguf-ref)", sets[s].name);
                continue;
            }
        }
        int cases = 0, f = run_vectors(gguf, inp, outp, &cases);
        fprintf(stderr, "  %-10s %d/%d\n", sets[s].name, cases - f, cases);
        CHECK(f == 0 && cases > 40);
    }
}

static int json_ids(const cJSON *arr, int32_t *out, size_t max) {
    size_t n = 0;
    const cJSON *x;
    cJSON_ArrayForEach(x, arr) if (n < max) out[n++] = (int32_t)x->valuedouble;
    return (int)n;
}

CTEST(model_reference_tokenizations) {
    const char *td = td_dir();
    if (td == NULL) {
        TD_SKIP("shared gguf test data not found");
        return;
    }
    char mpath[1024];
    snprintf(mpath, sizeof(mpath), "%s/models/manifest.json", td);
    char *man = td_read(mpath, NULL);
    CHECK(man != NULL);
    if (!man) return;
    cJSON *mj = cJSON_Parse(man);
    cJSON *models = cJSON_GetObjectItem(mj, "models");
    const cJSON *m;
    int total = 0, bad = 0;
    cJSON_ArrayForEach(m, models) {
        const char *file = cJSON_GetObjectItem(m, "file") ? cJSON_GetObjectItem(m, "file")->valuestring : NULL;
        if (file == NULL) continue;
        char gg[1024], rj[1024];
        snprintf(gg, sizeof(gg), "%s/models/%s", td, file);
        snprintf(rj, sizeof(rj), "%s/models/%.*s.ref.json", td, (int)(strlen(file) - 5), file);
        char *rs = td_read(rj, NULL);
        tok_ctx t;
        if (!rs || open_vocab(gg, &t) != 0) {
            free(rs);
            bad++;
            continue;
        }
        cJSON *r = cJSON_Parse(rs);
        const cJSON *c;
        cJSON_ArrayForEach(c, cJSON_GetObjectItem(r, "tokenize")) {
            const char *text = cJSON_GetObjectItem(c, "text")->valuestring;
            int32_t want[2048];
            for (int sp = 0; sp < 2; sp++) {
                int n = json_ids(cJSON_GetObjectItem(c, sp ? "tokens_special" : "tokens"), want, 2048);
                dspex_buf got;
                dspex_buf_init(&got);
                dspex_tokenize(&t.v, text, strlen(text), 0, sp, &got);
                total++;
                if (!tokens_equal(&got, want, (size_t)n)) {
                    show_mismatch(file, (size_t)sp, text, &got);
                    bad++;
                }
                dspex_buf_free(&got);
            }
            int n = json_ids(cJSON_GetObjectItem(c, "tokens"), want, 2048);
            dspex_buf d;
            dspex_buf_init(&d);
            dspex_detokenize(&t.v, want, (size_t)n, 0, 0, &d);
            const char *detok = cJSON_GetObjectItem(c, "detok")->valuestring;
            total++;
            if (d.len != strlen(detok) || memcmp(d.p, detok, d.len) != 0) {
                fprintf(stderr, "  %s detok mismatch: got \"%s\" want \"%s\"\n", file, d.p ? d.p : "", detok);
                bad++;
            }
            dspex_buf_free(&d);
        }
        cJSON_Delete(r);
        free(rs);
        close_vocab(&t);
    }
    fprintf(stderr, "  reference tokenizations: %d/%d\n", total - bad, total);
    CHECK(bad == 0 && total > 100);
    cJSON_Delete(mj);
    free(man);
}

int main(void) { return ctest_run(); }
