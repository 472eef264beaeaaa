/* Vocabulary loading from GGUF metadata, following llama.cpp's llama_vocab::load:
 * tokenizer model and pre-tokenizer, tokens/scores/types, merges, special ids with
 * their defaults, the text-detected EOT/EOG/FIM tokens (forced to control, as llama.cpp
 * does), and the special-token list used to partition text. See dspex/infer/vocab.h. */
#include "dspex/errmsg.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dspex/infer/unicode.h"
#include "dspex/infer/vocab.h"

/* ------------------------------------------------------------------- hash tables */

static uint64_t fnv(const char *p, size_t n, uint64_t h) {
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)p[i]) * 1099511628211ull;
    return h;
}
#define FNV0 1469598103934665603ull

static size_t cap_for(size_t n) {
    size_t c = 64;
    while (c < n * 2) c *= 2;
    return c;
}

int32_t dspex_vocab_find(const dspex_vocab *v, const char *s, size_t n) {
    if (v->tok_hash == NULL) return -1;
    size_t m = v->tok_cap - 1, h = (size_t)fnv(s, n, FNV0) & m;
    while (v->tok_hash[h]) {
        int32_t id = (int32_t)v->tok_hash[h] - 1;
        if (v->text[id].n == n && memcmp(v->text[id].p, s, n) == 0) return id;
        h = (h + 1) & m;
    }
    return -1;
}

/* ------------------------------------------------------------------- the pieces */

/* The pre-tokenizer family of a tokenizer.ggml.pre value, and its flags. Returns -1 for a
 * name llama.cpp knows but this engine does not implement, -2 for an unknown name. */
static int pre_family(const char *name, int *clean_spaces, int *ignore_merges, int *add_bos) {
    static const char *gpt2[] = {"gpt-2", "phi-2", "jina-es", "jina-de", "gigachat", "jina-v2-es", "jina-v2-de",
                                 "a.x-4.0", "mellum", "modern-bert", "jina-v1-en", "jina-v2-code", "roberta-bpe",
                                 "mpt", "olmo", "jais", "exaone4", NULL};
    static const char *llama3[] = {"llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral",
                                   "midm-2.0", "lfm2", "jina-v5-nano", "dbrx", "smaug-bpe", NULL};
    static const char *qwen2[] = {"qwen2", "deepseek-r1-qwen", "kormo", "f2llmv2", "stablelm2", "megrez", NULL};
    static const char *starcoder[] = {"starcoder", "refact", "command-r", "smollm", "codeshell", "exaone",
                                      "minerva-7b", "mellum2", NULL};
    static const char *known_other[] = {
        "minicpm5", "deepseek-llm", "deepseek-coder", "deepseek-v3", "spark2_5", "youtu", "falcon", "jais-2",
        "gemma4", "granite-embed-multi-311m", "sarvam-moe", "whitespace", "qwen35", "poro-chat", "glm4",
        "chatglm-bpe", "viking", "tekken", "bloom", "gpt3-finnish", "exaone-moe", "chameleon", "gpt-4o", "llama4",
        "kanana2", "talkie", "granite-embed-multi-97m", "tiny_aya", "cohere2moe", "superbpe", "trillion",
        "granite-docling", "bailingmoe", "bailingmoe2", "llada-moe", "seed-coder", "hunyuan", "hunyuan-dense",
        "hy_v4", "joyai-llm", "kimi-k2", "ufakzeka", "grok-2", "afmoe", "laguna", "minimax-m2", "solar-open", NULL};
    *clean_spaces = 1;
    *ignore_merges = 0;
    *add_bos = 0;
    if (name[0] == 0 || strcmp(name, "default") == 0) return DSPEX_PRE_DEFAULT;
    for (int i = 0; gpt2[i]; i++)
        if (strcmp(name, gpt2[i]) == 0) return DSPEX_PRE_GPT2;
    for (int i = 0; llama3[i]; i++)
        if (strcmp(name, llama3[i]) == 0) {
            if (i < 9) { /* the llama3 names proper (not dbrx/smaug) */
                *ignore_merges = 1;
                *add_bos = 1;
            }
            return DSPEX_PRE_LLAMA3;
        }
    for (int i = 0; qwen2[i]; i++)
        if (strcmp(name, qwen2[i]) == 0) {
            if (strcmp(name, "stablelm2") != 0 && strcmp(name, "megrez") != 0) *clean_spaces = 0;
            return DSPEX_PRE_QWEN2;
        }
    for (int i = 0; starcoder[i]; i++)
        if (strcmp(name, starcoder[i]) == 0) {
            if (strcmp(name, "smollm") == 0 || strcmp(name, "command-r") == 0) *clean_spaces = 0;
            return DSPEX_PRE_STARCODER;
        }
    for (int i = 0; known_other[i]; i++)
        if (strcmp(name, known_other[i]) == 0) return -1;
    return -2;
}

/* Reads an optional u32 token id key; ids outside the vocabulary keep the default. */
static int special_id(const dspex_gguf *g, const char *key, int32_t n_tokens, int32_t *id, char *err, size_t errlen) {
    uint32_t u;
    int rc = dspex_gguf_get_u32(g, key, &u, err, errlen);
    if (rc < 0) return -1;
    if (rc == 0 && u < (uint32_t)n_tokens) *id = (int32_t)u;
    return 0;
}

static int text_is(const dspex_vocab *v, int32_t id, const char *z) { return dspex_str_eq(v->text[id], z); }

static int in_list(const dspex_vocab *v, int32_t id, const char *const *list) {
    for (int i = 0; list[i]; i++)
        if (text_is(v, id, list[i])) return 1;
    return 0;
}

/* llama.cpp finds EOT/EOM/FIM tokens by their text when the ids are not given, and
 * marks every such token, and every end-of-generation token, as control. */
static void detect_specials(dspex_vocab *v, int32_t fim[6]) {
    static const char *eot[] = {"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>",
                                "<|end_of_text|>", "<EOT>", "_<EOT>", "[EOT]",
                                "<\xef\xbd\x9c" "end\xe2\x96\x81" "of\xe2\x96\x81" "sentence\xef\xbd\x9c>",
                                "<end_of_utterance>", NULL};
    static const char *eom[] = {"<|eom_id|>", NULL};
    static const char *fim_lists[6][10] = {
        {"<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<\xef\xbd\x9c" "fim\xe2\x96\x81" "begin\xef\xbd\x9c>",
         "<PRE>", "\xe2\x96\x81<PRE>", "<|code_prefix|>", "<|prefix|>", NULL},
        {"<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>", "<\xef\xbd\x9c" "fim\xe2\x96\x81" "hole\xef\xbd\x9c>",
         "<SUF>", "\xe2\x96\x81<SUF>", "<|code_suffix|>", "<|suffix|>", NULL},
        {"<|fim_middle|>", "<fim-middle>", "<fim_middle>", "<\xef\xbd\x9c" "fim\xe2\x96\x81" "end\xef\xbd\x9c>",
         "<MID>", "\xe2\x96\x81<MID>", "<|code_middle|>", "<|middle|>", NULL},
        {"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]", NULL},
        {"<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>", NULL},
        {"<|file_sep|>", NULL}};
    static const char *eog[] = {"<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>",
                                "<|calls|>", "<end_of_turn>", "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>",
                                "_<EOT>", "[EOT]", "[EOS]", "<|end_of_text|>", "<end_of_utterance>", "<eos>",
                                "<turn|>", "<|tool_response>",
                                "<\xef\xbd\x9c" "end\xe2\x96\x81" "of\xe2\x96\x81" "sentence\xef\xbd\x9c>",
                                "[e~[", NULL};
    for (int32_t id = 0; id < v->n_tokens; id++) {
        if (v->eot < 0 && in_list(v, id, eot)) {
            v->eot = id;
            v->attr[id] |= DSPEX_ATTR_CONTROL;
        }
        if (v->eom < 0 && in_list(v, id, eom)) {
            v->eom = id;
            v->attr[id] |= DSPEX_ATTR_CONTROL;
        }
        for (int k = 0; k < 6; k++)
            if (fim[k] < 0 && in_list(v, id, fim_lists[k])) {
                fim[k] = id;
                v->attr[id] |= DSPEX_ATTR_CONTROL;
            }
    }
    for (int k = 3; k < 6; k++) /* fim pad, repo, sep end generation */
        if (fim[k] >= 0) v->eog[fim[k]] = 1;
    int32_t end_id = -1, s_id = -1;
    int has_return = 0, has_call = 0, has_flush = 0, has_tool_response = 0;
    for (int32_t id = 0; id < v->n_tokens; id++) {
        if (in_list(v, id, eog)) {
            v->eog[id] = 1;
            v->attr[id] |= DSPEX_ATTR_CONTROL;
        }
        static const char *gpt_oss[] = {"<|channel|>", "<|message|>", "<|start|>", "<|constrain|>", NULL};
        if (in_list(v, id, gpt_oss)) v->attr[id] = DSPEX_ATTR_USER_DEFINED;
    }
    if (v->eos >= 0) v->eog[v->eos] = 1;
    if (v->eot >= 0) v->eog[v->eot] = 1;
    if (v->eom >= 0) v->eog[v->eom] = 1;
    for (int32_t id = 0; id < v->n_tokens; id++) {
        if (!v->eog[id]) continue;
        if (text_is(v, id, "<|return|>")) has_return = 1;
        else if (text_is(v, id, "<|call|>") || text_is(v, id, "<|calls|>")) has_call = 1;
        else if (text_is(v, id, "<|flush|>")) has_flush = 1;
        else if (text_is(v, id, "<|end|>")) end_id = id;
        else if (text_is(v, id, "<|tool_response>")) has_tool_response = 1;
        else if (text_is(v, id, "</s>")) s_id = id;
    }
    /* harmony-style vocabularies: <|end|> separates turns there, it does not end generation */
    if (end_id >= 0 && has_call && (has_return || has_flush)) {
        v->eog[end_id] = 0;
        v->attr[end_id] = DSPEX_ATTR_USER_DEFINED;
    }
    if (s_id >= 0 && has_tool_response) {
        v->eog[s_id] = 0;
        v->attr[s_id] = DSPEX_ATTR_NORMAL;
    }
}

/* qsort has no context argument in C11: sort (length, id) pairs instead. */
typedef struct {
    size_t len; /* token text length */
    int32_t id; /* token id */
} len_id;

static int cmp_len_id(const void *a, const void *b) {
    const len_id *x = a, *y = b;
    if (x->len != y->len) return x->len > y->len ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

static int build_special_list(dspex_vocab *v) {
    int32_t n = 0;
    for (int32_t id = 0; id < v->n_tokens; id++)
        if (v->attr[id] & (DSPEX_ATTR_CONTROL | DSPEX_ATTR_USER_DEFINED | DSPEX_ATTR_UNKNOWN)) n++;
    v->n_special = n;
    if (n == 0) return 0;
    len_id *tmp = malloc((size_t)n * sizeof(*tmp));
    v->special = malloc((size_t)n * sizeof(int32_t));
    if (tmp == NULL || v->special == NULL) {
        free(tmp);
        return -1;
    }
    n = 0;
    for (int32_t id = 0; id < v->n_tokens; id++)
        if (v->attr[id] & (DSPEX_ATTR_CONTROL | DSPEX_ATTR_USER_DEFINED | DSPEX_ATTR_UNKNOWN))
            tmp[n++] = (len_id){v->text[id].n, id};
    qsort(tmp, (size_t)n, sizeof(*tmp), cmp_len_id);
    for (int32_t i = 0; i < n; i++) v->special[i] = tmp[i].id;
    free(tmp);
    return 0;
}

static int load_merges(dspex_vocab *v, const dspex_gguf *g, char *err, size_t errlen) {
    const dspex_gguf_kv *kv = dspex_gguf_find(g, "tokenizer.ggml.merges");
    if (kv == NULL) {
        dspex_errmsg(err, errlen, "tokenizer.ggml.merges is required for a BPE (gpt2) tokenizer and is missing");
        return -1;
    }
    if (kv->type != DSPEX_GGUF_ARRAY || kv->arr_type != DSPEX_GGUF_STRING) {
        dspex_errmsg(err, errlen, "tokenizer.ggml.merges must be an array of strings");
        return -1;
    }
    if (kv->arr_n >= INT32_MAX) {
        dspex_errmsg(err, errlen, "tokenizer.ggml.merges has too many entries");
        return -1;
    }
    v->n_merges = (int32_t)kv->arr_n;
    v->merge = (dspex_str *)kv->arr_str;
    v->merge_split = calloc((size_t)v->n_merges + 1, sizeof(uint32_t));
    v->merge_cap = cap_for((size_t)v->n_merges);
    v->merge_hash = calloc(v->merge_cap, sizeof(uint32_t));
    if (v->merge_split == NULL || v->merge_hash == NULL) {
        dspex_errmsg(err, errlen, "out of memory for %d merges", v->n_merges);
        return -1;
    }
    size_t m = v->merge_cap - 1;
    for (int32_t r = 0; r < v->n_merges; r++) {
        dspex_str s = v->merge[r];
        const char *sp = s.n > 1 ? memchr(s.p + 1, ' ', s.n - 1) : NULL;
        if (sp == NULL) continue; /* no "left right" split: never matches (as in llama.cpp) */
        v->merge_split[r] = (uint32_t)(sp - s.p);
        size_t h = (size_t)fnv(s.p, s.n, FNV0) & m;
        int dup = 0;
        while (v->merge_hash[h]) {
            dspex_str o = v->merge[v->merge_hash[h] - 1];
            if (o.n == s.n && memcmp(o.p, s.p, s.n) == 0 && v->merge_split[v->merge_hash[h] - 1] == v->merge_split[r]) {
                dup = 1; /* first rank wins */
                break;
            }
            h = (h + 1) & m;
        }
        if (!dup) v->merge_hash[h] = (uint32_t)r + 1;
    }
    return 0;
}

/* ------------------------------------------------------------------- loading */

void dspex_vocab_free(dspex_vocab *v) {
    if (v == NULL) return;
    free(v->text);
    free(v->score);
    free(v->attr);
    free(v->eog);
    free(v->tok_hash);
    free(v->merge_split);
    free(v->merge_hash);
    free(v->special);
    dspex_arena_free(&v->arena);
    memset(v, 0, sizeof(*v));
}

int dspex_vocab_load(dspex_vocab *v, const dspex_gguf *g, const char *arch, char *err, size_t errlen) {
    memset(v, 0, sizeof(*v));
    dspex_arena_init(&v->arena, 0);
    v->bos = v->eos = v->eot = v->eom = v->unk = v->sep = v->pad = v->nl = -1;
    for (int i = 0; i < 256; i++) v->byte_token[i] = -1;
    dspex_str model;
    int rc = dspex_gguf_get_str(g, "tokenizer.ggml.model", &model, err, errlen);
    if (rc < 0) goto fail;
    if (rc == 1) {
        dspex_errmsg(err, errlen, "key not found in model: tokenizer.ggml.model");
        goto fail;
    }
    if (dspex_str_eq(model, "none") || dspex_str_eq(model, "no_vocab")) {
        char key[96];
        uint32_t n = 0;
        snprintf(key, sizeof(key), "%s.vocab_size", arch);
        if (dspex_gguf_get_u32(g, key, &n, err, errlen) < 0) goto fail;
        v->type = DSPEX_VOCAB_NONE;
        v->n_tokens = (int32_t)(n > INT32_MAX ? INT32_MAX : n);
        return 0;
    }
    int clean = 0, ignore = 0, pre_bos = 0;
    if (dspex_str_eq(model, "llama")) {
        v->type = DSPEX_VOCAB_SPM;
        v->bos = 1;
        v->eos = 2;
        v->unk = 0;
        v->add_space_prefix = 1;
        v->add_bos = 1;
    } else if (dspex_str_eq(model, "gpt2")) {
        v->type = DSPEX_VOCAB_BPE;
        v->bos = v->eos = 11;
        dspex_str pre = {"", 0};
        if (dspex_gguf_get_str(g, "tokenizer.ggml.pre", &pre, err, errlen) < 0) goto fail;
        size_t pn = pre.n < sizeof(v->pre_name) - 1 ? pre.n : sizeof(v->pre_name) - 1;
        memcpy(v->pre_name, pre.p, pn);
        v->pre_name[pn] = 0;
        int fam = pre.n < sizeof(v->pre_name) ? pre_family(v->pre_name, &clean, &ignore, &pre_bos) : -2;
        if (fam == -1) {
            dspex_errmsg(err, errlen, "pre-tokenizer '%s' (tokenizer.ggml.pre) is not supported by this engine", v->pre_name);
            goto fail;
        }
        if (fam == -2) {
            dspex_errmsg(err, errlen, "unknown pre-tokenizer type: '%s' (tokenizer.ggml.pre)", v->pre_name);
            goto fail;
        }
        v->pre = fam;
        v->clean_spaces = clean;
        v->ignore_merges = ignore;
        v->add_bos = pre_bos;
    } else {
        char name[64];
        size_t n = model.n < 60 ? model.n : 60;
        memcpy(name, model.p, n);
        name[n] = 0;
        dspex_errmsg(err, errlen, "tokenizer '%s' (tokenizer.ggml.model) is not supported (supported: llama, gpt2)", name);
        goto fail;
    }
    int b;
    if ((rc = dspex_gguf_get_bool(g, "tokenizer.ggml.add_space_prefix", &b, err, errlen)) < 0) goto fail;
    if (rc == 0) v->add_space_prefix = b;

    const dspex_gguf_kv *toks = dspex_gguf_find(g, "tokenizer.ggml.tokens");
    if (toks == NULL) {
        dspex_errmsg(err, errlen, "key not found in model: tokenizer.ggml.tokens");
        goto fail;
    }
    if (toks->type != DSPEX_GGUF_ARRAY || toks->arr_type != DSPEX_GGUF_STRING) {
        dspex_errmsg(err, errlen, "tokenizer.ggml.tokens must be an array of strings");
        goto fail;
    }
    if (toks->arr_n == 0 || toks->arr_n >= INT32_MAX) {
        dspex_errmsg(err, errlen, "tokenizer.ggml.tokens has %llu entries (must be 1..2^31-2)",
               (unsigned long long)toks->arr_n);
        goto fail;
    }
    int32_t n = v->n_tokens = (int32_t)toks->arr_n;
    const dspex_gguf_kv *scores = dspex_gguf_find(g, "tokenizer.ggml.scores");
    if (scores && (scores->type != DSPEX_GGUF_ARRAY ||
                   (scores->arr_type != DSPEX_GGUF_F32 && scores->arr_type != DSPEX_GGUF_I32))) {
        dspex_errmsg(err, errlen, "tokenizer.ggml.scores must be an array of f32 (or i32)");
        goto fail;
    }
    if (scores && scores->arr_n < (uint64_t)n) {
        dspex_errmsg(err, errlen, "tokenizer.ggml.scores has %llu entries for %d tokens", (unsigned long long)scores->arr_n, n);
        goto fail;
    }
    const dspex_gguf_kv *types = dspex_gguf_find(g, "tokenizer.ggml.token_type");
    if (types && (types->type != DSPEX_GGUF_ARRAY || types->arr_type != DSPEX_GGUF_I32)) {
        dspex_errmsg(err, errlen, "tokenizer.ggml.token_type must be an array of i32");
        goto fail;
    }
    if (types && types->arr_n < (uint64_t)n) {
        dspex_errmsg(err, errlen, "tokenizer.ggml.token_type has %llu entries for %d tokens",
               (unsigned long long)types->arr_n, n);
        goto fail;
    }
    v->text = malloc((size_t)n * sizeof(dspex_str));
    v->score = calloc((size_t)n, sizeof(float));
    v->attr = calloc((size_t)n, sizeof(uint16_t));
    v->eog = calloc((size_t)n, 1);
    v->tok_cap = cap_for((size_t)n);
    v->tok_hash = calloc(v->tok_cap, sizeof(uint32_t));
    if (!v->text || !v->score || !v->attr || !v->eog || !v->tok_hash) {
        dspex_errmsg(err, errlen, "out of memory for a %d-token vocabulary", n);
        goto fail;
    }
    size_t m = v->tok_cap - 1;
    for (int32_t id = 0; id < n; id++) {
        dspex_str s = toks->arr_str[id];
        if (s.n == 0) { /* llama.cpp names empty tokens "[EMPTY_i]" */
            char tmp[32];
            int k = snprintf(tmp, sizeof(tmp), "[EMPTY_%d]", id);
            s.p = dspex_arena_strndup(&v->arena, tmp, (size_t)k);
            s.n = (size_t)k;
            if (s.p == NULL) {
                dspex_errmsg(err, errlen, "out of memory");
                goto fail;
            }
        }
        v->text[id] = s;
        size_t h = (size_t)fnv(s.p, s.n, FNV0) & m;
        while (v->tok_hash[h]) {
            int32_t o = (int32_t)v->tok_hash[h] - 1;
            if (v->text[o].n == s.n && memcmp(v->text[o].p, s.p, s.n) == 0) {
                char show[64];
                size_t k = s.n < 40 ? s.n : 40;
                for (size_t i = 0; i < k; i++) show[i] = (s.p[i] >= 0x20 && s.p[i] != 0x7F) ? s.p[i] : '?';
                show[k] = 0;
                dspex_errmsg(err, errlen, "tokenizer.ggml.tokens: duplicate token string '%s' (ids %d and %d)", show, o, id);
                goto fail;
            }
            h = (h + 1) & m;
        }
        v->tok_hash[h] = (uint32_t)id + 1;
        if (scores)
            v->score[id] = scores->arr_type == DSPEX_GGUF_F32 ? dspex_gguf_arr_f32(scores, (uint64_t)id)
                                                             : (float)dspex_gguf_arr_i32(scores, (uint64_t)id);
        uint16_t a = DSPEX_ATTR_NORMAL;
        if (types) {
            switch (dspex_gguf_arr_i32(types, (uint64_t)id)) {
            case 1: a = DSPEX_ATTR_NORMAL; break;
            case 2: a = DSPEX_ATTR_UNKNOWN; break;
            case 3: a = DSPEX_ATTR_CONTROL; break;
            case 4: a = DSPEX_ATTR_USER_DEFINED; break;
            case 5: a = DSPEX_ATTR_UNUSED; break;
            case 6: a = DSPEX_ATTR_BYTE; break;
            default: a = 0; break; /* undefined */
            }
        }
        v->attr[id] = a;
    }
    if (v->type == DSPEX_VOCAB_BPE && load_merges(v, g, err, errlen) != 0) goto fail;

    /* byte fallback tokens */
    for (int c = 0; c < 256; c++) {
        char buf[8];
        int32_t id = -1;
        if (v->type == DSPEX_VOCAB_SPM) {
            snprintf(buf, sizeof(buf), "<0x%02X>", c);
            id = dspex_vocab_find(v, buf, 6);
            if (id < 0) {
                buf[0] = (char)c;
                id = dspex_vocab_find(v, buf, 1);
            }
        } else {
            uint32_t cp = dspex_gpt2_byte_to_cp((uint8_t)c);
            char u[4];
            size_t k = cp < 0x80 ? (u[0] = (char)cp, 1) : (u[0] = (char)(0xC0 | (cp >> 6)), u[1] = (char)(0x80 | (cp & 0x3F)), 2);
            id = dspex_vocab_find(v, u, k);
        }
        v->byte_token[c] = id;
    }

    /* special ids: defaults outside the vocabulary are dropped, keys override */
    int32_t *ids[] = {&v->bos, &v->eos, &v->unk};
    for (int i = 0; i < 3; i++)
        if (*ids[i] >= n) *ids[i] = -1;
    int32_t fim[6] = {-1, -1, -1, -1, -1, -1}, mask = -1;
    const struct {
        const char *key;
        int32_t *id;
    } keys[] = {{"tokenizer.ggml.bos_token_id", &v->bos},
                {"tokenizer.ggml.eos_token_id", &v->eos},
                {"tokenizer.ggml.eot_token_id", &v->eot},
                {"tokenizer.ggml.eom_token_id", &v->eom},
                {"tokenizer.ggml.unknown_token_id", &v->unk},
                {"tokenizer.ggml.seperator_token_id", &v->sep},
                {"tokenizer.ggml.padding_token_id", &v->pad},
                {"tokenizer.ggml.mask_token_id", &mask},
                {"tokenizer.ggml.fim_pre_token_id", &fim[0]},
                {"tokenizer.ggml.fim_suf_token_id", &fim[1]},
                {"tokenizer.ggml.fim_mid_token_id", &fim[2]},
                {"tokenizer.ggml.fim_pad_token_id", &fim[3]},
                {"tokenizer.ggml.fim_rep_token_id", &fim[4]},
                {"tokenizer.ggml.fim_sep_token_id", &fim[5]},
                {"tokenizer.ggml.prefix_token_id", &fim[0]},
                {"tokenizer.ggml.suffix_token_id", &fim[1]},
                {"tokenizer.ggml.middle_token_id", &fim[2]}};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        if (special_id(g, keys[i].key, n, keys[i].id, err, errlen) != 0) goto fail;
    if ((rc = dspex_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &b, err, errlen)) < 0) goto fail;
    if (rc == 0) v->add_bos = b;
    if ((rc = dspex_gguf_get_bool(g, "tokenizer.ggml.add_eos_token", &b, err, errlen)) < 0) goto fail;
    if (rc == 0) v->add_eos = b;
    if (v->add_bos && v->bos < 0) v->add_bos = 0;
    if (v->add_eos && v->eos < 0) v->add_eos = 0;

    detect_specials(v, fim);

    /* phi-3 vocabularies strip spaces to the right of special tokens (llama.cpp keys this
     * on general.name) */
    dspex_str gname = {"", 0};
    if (dspex_gguf_get_str(g, "general.name", &gname, err, errlen) == 0) {
        char low[128];
        size_t k = gname.n < 127 ? gname.n : 127;
        for (size_t i = 0; i < k; i++) low[i] = (char)((gname.p[i] >= 'A' && gname.p[i] <= 'Z') ? gname.p[i] + 32 : gname.p[i]);
        low[k] = 0;
        if (strstr(low, "phi-3") || strstr(low, "phi3")) {
            for (int32_t id = 0; id < n; id++)
                if (v->attr[id] & (DSPEX_ATTR_CONTROL | DSPEX_ATTR_USER_DEFINED | DSPEX_ATTR_UNKNOWN))
                    v->attr[id] |= DSPEX_ATTR_RSTRIP;
            static const char *keep[] = {"<unk>", "<s>", "<|endoftext|>", NULL};
            int32_t s = dspex_vocab_find(v, "</s>", 4);
            if (s >= 0) v->attr[s] |= DSPEX_ATTR_RSTRIP;
            for (int i = 0; keep[i]; i++) {
                int32_t id = dspex_vocab_find(v, keep[i], strlen(keep[i]));
                if (id >= 0) v->attr[id] &= (uint16_t)~DSPEX_ATTR_RSTRIP;
            }
        }
    }
    err[0] = 0;
    if (build_special_list(v) != 0) {
        dspex_errmsg(err, errlen, "out of memory");
        goto fail;
    }
    /* the newline token: SPM's byte token for '\n', BPE's tokenization of "\n" */
    if (v->type == DSPEX_VOCAB_SPM) {
        v->nl = v->byte_token['\n'] >= 0 ? v->byte_token['\n'] : v->pad;
    } else {
        dspex_buf out;
        dspex_buf_init(&out);
        if (dspex_tokenize(v, "\n", 1, 0, 0, &out) == 0 && out.len >= 4) memcpy(&v->nl, out.p, 4);
        else v->nl = v->pad;
        dspex_buf_free(&out);
    }
    return 0;
fail:
    dspex_vocab_free(v);
    return -1;
}
