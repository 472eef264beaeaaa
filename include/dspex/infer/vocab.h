/* Vocabulary and tokenizers, equal to llama.cpp (v0.5.0) on its test vectors:
 *   SPM ("llama"): greedy bigram merging by token score, byte fallback to <0xXX>,
 *        add_space_prefix, spaces escaped as U+2581;
 *   BPE ("gpt2"): pre-tokenizer splits (gpt-2, llama-bpe/llama3, qwen2, smollm/starcoder
 *        and friends, default), GPT-2 byte-level encoding, merges by rank;
 *   both: special/control/user-defined tokens split out first (control ones only when
 *        parse_special), add_bos/add_eos, detokenization with llama_detokenize's rules.
 * Token strings are views into the GGUF mapping, so the vocab lives no longer than it.
 *
 * Work and memory are linear in the input: tokenizing n bytes allocates O(n) (symbols,
 * heap) on top of the output, whatever the text. */
#ifndef DSPEX_INFER_VOCAB_H
#define DSPEX_INFER_VOCAB_H

#include <stddef.h>
#include <stdint.h>

#include "dspex/arena.h"
#include "dspex/buf.h"
#include "dspex/infer/gguf.h"

enum { DSPEX_VOCAB_NONE = 0, DSPEX_VOCAB_SPM = 1, DSPEX_VOCAB_BPE = 2 };

/* Pre-tokenizers (regex families) the BPE tokenizer implements. */
enum {
    DSPEX_PRE_DEFAULT = 0, /* missing tokenizer.ggml.pre, or "default" */
    DSPEX_PRE_GPT2,        /* gpt-2, mpt, olmo, phi-2, ... */
    DSPEX_PRE_LLAMA3,      /* llama3, llama-bpe, ... : digits in runs of 1-3 */
    DSPEX_PRE_QWEN2,       /* qwen2, stablelm2, ... : single digits */
    DSPEX_PRE_STARCODER    /* starcoder, smollm, refact, ... : digits split, then gpt-2 */
};

/* Token attributes (llama.cpp's llama_token_attr bits). */
#define DSPEX_ATTR_UNKNOWN 0x001
#define DSPEX_ATTR_UNUSED 0x002
#define DSPEX_ATTR_NORMAL 0x004
#define DSPEX_ATTR_CONTROL 0x008
#define DSPEX_ATTR_USER_DEFINED 0x010
#define DSPEX_ATTR_BYTE 0x020
#define DSPEX_ATTR_LSTRIP 0x080
#define DSPEX_ATTR_RSTRIP 0x100

typedef struct {
    int type;               /* DSPEX_VOCAB_* */
    int pre;                /* DSPEX_PRE_* (BPE only) */
    char pre_name[32];      /* tokenizer.ggml.pre as written ("" when absent) */
    int32_t n_tokens;       /* vocabulary size */
    dspex_str *text;        /* [n_tokens] token strings */
    float *score;           /* [n_tokens] SPM merge scores (0 when absent) */
    uint16_t *attr;         /* [n_tokens] DSPEX_ATTR_* */
    uint8_t *eog;           /* [n_tokens] 1 for end-of-generation tokens */
    uint32_t *tok_hash;     /* text -> id index (id+1, 0 empty), open addressing */
    size_t tok_cap;         /* its capacity (power of two) */
    dspex_str *merge;       /* [n_merges] "left right" strings from the file */
    uint32_t *merge_split;  /* [n_merges] byte offset of the separating space */
    int32_t n_merges;       /* number of merges */
    uint32_t *merge_hash;   /* (left,right) -> rank index (rank+1, 0 empty) */
    size_t merge_cap;       /* its capacity */
    int32_t *special;       /* ids of control/user-defined/unknown tokens, longest first */
    int32_t n_special;      /* their count */
    int32_t byte_token[256];/* token for one raw byte (byte fallback), -1 when none */
    int32_t bos, eos, eot, eom, unk, sep, pad, nl; /* special ids, -1 when none */
    int add_bos, add_eos;   /* tokenize(add_special) adds these */
    int add_space_prefix;   /* SPM: prefix a space to the first raw fragment */
    int ignore_merges;      /* BPE: a pre-token that is a whole token is emitted as is */
    int clean_spaces;       /* detokenize: " ." -> "." etc. */
    dspex_arena arena;      /* strings the vocab had to make ("[EMPTY_i]") */
} dspex_vocab;

/* Loads the tokenizer from GGUF metadata. Returns 0, or -1 with err set (naming the key).
 * arch is general.architecture (used for {arch}.vocab_size when there is no vocab). */
int dspex_vocab_load(dspex_vocab *v, const dspex_gguf *g, const char *arch, char *err, size_t errlen);
void dspex_vocab_free(dspex_vocab *v);

/* Token id of an exact string, or -1. */
int32_t dspex_vocab_find(const dspex_vocab *v, const char *s, size_t n);

/* Appends the token ids (int32, native order) of text[0..len) to out. Returns 0, or -1
 * when the vocab has no tokenizer (type NONE) or on OOM. */
int dspex_tokenize(const dspex_vocab *v, const char *text, size_t len, int add_special, int parse_special,
                   dspex_buf *out);

/* Appends the text of one token (llama_token_to_piece, lstrip = 0). special = 1 renders
 * control/unknown tokens too. Returns 0, or -1 for an id outside the vocabulary. */
int dspex_token_piece(const dspex_vocab *v, int32_t id, int special, dspex_buf *out);

/* llama_detokenize: pieces joined, the add_space_prefix space removed, optional
 * remove_special (leading BOS / trailing EOS) and clean_spaces rules. Ids outside the
 * vocabulary are an error (-1). */
int dspex_detokenize(const dspex_vocab *v, const int32_t *ids, size_t n, int remove_special, int unparse_special,
                     dspex_buf *out);

/* Internal entry points of the two tokenizers (tok_spm.c, tok_bpe.c) on one raw-text
 * fragment; the caller does special-token partitioning. */
int dspex_spm_tokenize(const dspex_vocab *v, const char *text, size_t len, dspex_buf *out);
int dspex_bpe_tokenize(const dspex_vocab *v, const char *text, size_t len, dspex_buf *out);
/* Pre-tokenizer split of code points cps[0..n) into words; appends each word's length in
 * code points (uint32) to lens. Returns 0 or -1 on OOM. */
int dspex_pretokenize(int pre, const uint32_t *cps, size_t n, dspex_buf *lens);

#endif
