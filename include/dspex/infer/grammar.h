/* Grammar-constrained decoding: outputs that parse, by construction.
 *
 * A grammar (a JSON Schema, DSPy's ChatAdapter field layout, or the JSONAdapter's output
 * object) is compiled into a set of byte-level DFAs that call each other (a pushdown
 * automaton whose call graph has no cycles). A matcher, one per generated sequence,
 * walks that automaton over the bytes of the tokens the model emits and, before each
 * sampling step, sets the logit of every token that would leave the language to
 * -INFINITY. End-of-generation tokens are allowed only where the grammar may end.
 *
 * Design (why it is fast enough for 50k-150k vocabularies):
 *   - Byte level. Tokens are byte strings (their detokenized pieces); the automaton reads
 *     bytes, so multi-byte UTF-8 characters split across tokens need no special case.
 *   - A token trie of the vocabulary (tokens.c), stored in preorder with skip links, is
 *     walked against the automaton; a rejected prefix skips its whole subtree.
 *   - Masks are cached per automaton state (the "top frame"), shared by every matcher
 *     of the grammar (XGrammar's split): tokens that stay inside the top frame's rule
 *     are decided once; only tokens that end the rule part-way ("uncertain", typically
 *     `",` or `},` - a few hundred) are re-checked against the real stack at each step.
 *     After warm-up a mask costs a bitset OR plus those few checks.
 *   - Rules are DFAs (subset construction over byte classes). JSON strings, free text,
 *     generic JSON containers and recursive `$ref`s are called rules, so their wide
 *     states (inside a string: nearly every token valid) are walked once per grammar,
 *     not once per position. Everything else is inlined. Recursion is unrolled to a
 *     bounded depth, so the stack depth is bounded statically.
 *   - The automaton is deterministic: every call is decided by its first byte and every
 *     return by the next byte; the compiler checks this (LL(1) at byte level) and inlines
 *     a called rule wherever the check fails, then recompiles.
 *   - Length budget: each automaton state knows the fewest bytes that complete the
 *     output; when the remaining token budget (max_tokens, the context window) gets
 *     close to that, only tokens that keep completion reachable are allowed, so a
 *     generation that runs out of tokens still ends with a complete, parseable output
 *     (every byte is one token at worst).
 *
 * Supported JSON Schema: type (and type lists), enum, const, anyOf/oneOf (as anyOf),
 * allOf (objects merged), $ref ("#", "#/$defs/..", "#/definitions/..", any JSON
 * pointer; recursive references unrolled to limits.ref_depth levels), $defs/definitions,
 * nullable, properties (in the schema's order), required, additionalProperties (false,
 * true or a schema; absent means false when properties are given, true otherwise),
 * items, prefixItems, minItems, maxItems, minLength, maxLength, pattern (ECMAScript
 * subset: literals, escapes \d \w \s \D \W \S \uXXXX \xXX, classes, ., groups, |, * + ?
 * {m} {m,} {m,n}, ^ $ at the ends; no backreferences or lookaround), format (date,
 * time, date-time, uuid, email, ipv4), minimum, maximum, exclusiveMinimum,
 * exclusiveMaximum (draft 4 booleans too) for integers and numbers. Accepted but not
 * enforced: uniqueItems, multipleOf, minProperties, maxProperties, patternProperties,
 * propertyNames, not, if/then/else, dependent*, contains, format values not listed.
 * Output form: JSON with optional whitespace (one space, or a newline and up to 16
 * spaces) after `{`, `[`, `,` and `:` and before `}`, `]`; integers of at most 18
 * digits; numbers with at most 18 integer and 15 fraction digits (a 2-digit exponent
 * when unbounded); JSON strings are valid UTF-8 without raw control characters and
 * without \u escapes of surrogates.
 *
 * Limits (clear errors, never unbounded memory or time): schema text 1 MiB, schema
 * nesting 64, 2^20 NFA states, 2^22 NFA edges, a compiled-automaton memory budget
 * (limits.max_bytes, default 64 MiB), generic JSON nesting limits.json_depth (default
 * 12), recursive $ref depth limits.ref_depth (default 6), pattern length 4096 and
 * repetition counts 1000, 4096 rules, token pieces of at most 1024 bytes (longer tokens
 * are never allowed). The mask cache of one grammar is bounded by limits.cache_bytes
 * (default 64 MiB): past it masks are computed without being kept.
 *
 * Thread safety: a compiled grammar is immutable except for its mask cache, which is
 * filled under a mutex; any number of matchers on any threads may share one grammar.
 * A matcher belongs to one sequence (one thread at a time). No global state. */
#ifndef DSPEX_INFER_GRAMMAR_H
#define DSPEX_INFER_GRAMMAR_H

#include <stddef.h>
#include <stdint.h>

#include "dspex/infer/vocab.h"

#define DSPEX_GRAMMAR_MAX_SCHEMA_BYTES ((size_t)1 << 20)
#define DSPEX_GRAMMAR_MAX_TOKEN_BYTES 1024

/* ---------------------------------------------------------------- vocabulary index */

/* The bytes of every token and a trie over them. Built once per model and shared
 * (refcounted) by the grammars compiled for it. */
typedef struct dspex_gvocab dspex_gvocab;

/* From a loaded vocabulary: token pieces as generation appends them (control, unknown
 * and unused tokens get no bytes and are never allowed; end-of-generation tokens are
 * allowed exactly where the grammar can end). NULL with err set on failure. */
dspex_gvocab *dspex_gvocab_new(const dspex_vocab *v, char *err, size_t errlen);
/* From explicit pieces (tests, fuzzing): n tokens, pieces[i] of lens[i] bytes; eog[i]
 * non-zero marks end-of-generation tokens (eog may be NULL). */
dspex_gvocab *dspex_gvocab_from_pieces(const char *const *pieces, const size_t *lens, const uint8_t *eog, int32_t n,
                                       char *err, size_t errlen);
void dspex_gvocab_retain(dspex_gvocab *gv);
void dspex_gvocab_release(dspex_gvocab *gv);
int32_t dspex_gvocab_size(const dspex_gvocab *gv);
/* The bytes of token id (*len of them; 0 for tokens that are never allowed). */
const char *dspex_gvocab_piece(const dspex_gvocab *gv, int32_t id, size_t *len);
/* Whether token id ends generation. */
int dspex_gvocab_is_eog(const dspex_gvocab *gv, int32_t id);

/* ---------------------------------------------------------------- compiled grammars */

typedef struct dspex_grammar dspex_grammar;

typedef struct {
    int json_depth;     /* nesting of generic (untyped) JSON containers, 1..32 */
    int ref_depth;      /* unrolled levels of a recursive $ref, 1..32 */
    size_t max_bytes;   /* compiled automaton memory budget */
    size_t cache_bytes; /* mask cache budget */
} dspex_grammar_limits;

/* The defaults above. */
dspex_grammar_limits dspex_grammar_default_limits(void);

/* A JSON Schema given as JSON text. lim may be NULL (defaults). NULL with err set (a
 * message that names the offending keyword or limit) on failure. */
dspex_grammar *dspex_grammar_json_schema(const char *schema, size_t len, dspex_gvocab *gv,
                                         const dspex_grammar_limits *lim, char *err, size_t errlen);
/* Any JSON object (response_format json_object). */
dspex_grammar *dspex_grammar_json_object(dspex_gvocab *gv, const dspex_grammar_limits *lim, char *err, size_t errlen);
/* The adapters' output layouts: dspex_grammar_adapter in grammar_adapter.h (it needs the
 * type model's headers, kept out of this one). */

/* The grammar's vocabulary index (borrowed). */
dspex_gvocab *dspex_grammar_gvocab(const dspex_grammar *g);

void dspex_grammar_retain(dspex_grammar *g);
void dspex_grammar_release(dspex_grammar *g);

typedef struct {
    int32_t rules, states, classes; /* automaton size */
    int32_t max_depth;              /* deepest call chain */
    size_t bytes;                   /* automaton memory */
    int32_t min_bytes;              /* shortest complete output */
    uint64_t cache_entries;         /* masks kept */
    size_t cache_bytes;             /* their memory */
    uint64_t walks;                 /* trie walks (cache fills, kept or not) */
    uint64_t walk_ns;               /* time spent in them */
    uint64_t masks, mask_ns;        /* masks applied by matchers, and their total time */
} dspex_grammar_stats;

void dspex_grammar_get_stats(dspex_grammar *g, dspex_grammar_stats *out);

/* Whether text[0..n) is in the language: 2 complete (may end here), 1 a proper prefix
 * of some output, 0 rejected (then *at, when non-NULL, is the offset of the first byte
 * that cannot follow). */
int dspex_grammar_match(const dspex_grammar *g, const char *text, size_t n, size_t *at);

/* ---------------------------------------------------------------- matchers */

typedef struct dspex_matcher dspex_matcher;

/* A matcher for one sequence; budget = the most tokens the sequence may still generate
 * (min of max_tokens and the free context), <= 0 for none. Holds a reference on g. */
dspex_matcher *dspex_matcher_new(dspex_grammar *g, int64_t budget);
void dspex_matcher_free(dspex_matcher *m);

/* Advances over one generated token. 0, or -1 when the token is not allowed here (the
 * matcher is then failed: later masks allow only end-of-generation tokens). */
int dspex_matcher_accept(dspex_matcher *m, int32_t token);

/* Masks logits[0..n_vocab) for the next token, the n_generated-th (0-based): disallowed
 * tokens get -INFINITY. Ids beyond the vocabulary are always masked. */
void dspex_matcher_mask(dspex_matcher *m, float *logits, int32_t n_vocab, size_t n_generated);

/* The logits hook (dspex_mask_fn of generate.h), ud = the matcher: accepts the tokens
 * generated since the last call, then masks. */
void dspex_matcher_hook(void *ud, float *logits, int32_t n_vocab, const int32_t *generated, size_t n_generated);

/* 1 when the output so far is complete (end-of-generation allowed), 0 otherwise. */
int dspex_matcher_can_end(const dspex_matcher *m);
/* 1 after a token that was not allowed (see dspex_matcher_accept). */
int dspex_matcher_failed(const dspex_matcher *m);
/* The fewest bytes that complete the output from here. */
int64_t dspex_matcher_remaining(const dspex_matcher *m);

#endif
