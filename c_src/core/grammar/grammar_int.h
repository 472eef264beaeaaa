/* Internals shared by the grammar files (see include/dspex/infer/grammar.h):
 *
 *   build.c   the NFA builder the front ends write into (states, byte-range, epsilon and
 *             call edges; literals, UTF-8 code point ranges) and the rule registry
 *   compile.c NFA -> one DFA per rule (byte classes, subset construction), trimming,
 *             shortest completions, the determinism check with inline-and-retry
 *   schema.c  JSON Schema -> NFA (and the generic JSON rules)
 *   numbers.c integer and decimal ranges -> NFA
 *   regex.c   ECMAScript pattern subset -> NFA (inside a JSON string)
 *   layout.c  ChatAdapter / JSONAdapter output layouts from a signature
 *   tokens.c  the vocabulary index (token bytes, preorder trie)
 *   matcher.c the runtime: stacks, cached masks, the length budget, the logits hook */
#ifndef DSPEX_GRAMMAR_INT_H
#define DSPEX_GRAMMAR_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "dspex/arena.h"
#include "dspex/infer/grammar.h"
#include "dspex/infer/grammar_adapter.h"

#define G_MAX_NFA_STATES ((size_t)1 << 20)
#define G_MAX_NFA_EDGES ((size_t)1 << 22)
#define G_MAX_RULES 4096
#define G_MAX_NEST 64          /* schema nesting, front-end recursion */
#define G_MAX_DEPTH 128        /* call chain (frames on a stack) */
#define G_MAX_RETRIES 64       /* inline-and-recompile rounds */
#define G_MAX_INT_DIGITS 18    /* integers and integer parts */
#define G_MAX_FRAC_DIGITS 15   /* fraction digits of numbers */
#define G_WS_INDENT 16         /* spaces after a newline in JSON whitespace */

/* ---------------------------------------------------------------- vocabulary index */
struct dspex_gvocab {
    atomic_long refs;
    int32_t n;            /* tokens */
    uint32_t *off;        /* [n] byte offset of each piece in bytes */
    uint16_t *len;        /* [n] piece length, 0 = never allowed */
    char *bytes;          /* all pieces */
    uint8_t *eog;         /* [n] end-of-generation tokens */
    int32_t n_eog;
    /* trie in preorder: node i holds byte nbyte[i] at depth ndepth[i] (1-based), its
     * subtree ends before nskip[i], tokens ending there are tok[ntok[i] .. ntok[i+1]) */
    int32_t n_nodes;
    uint8_t *nbyte;
    uint16_t *ndepth;
    uint32_t *nskip;
    uint32_t *ntok;       /* [n_nodes + 1] */
    int32_t *tok;         /* token ids grouped by node */
    int32_t max_len;      /* longest piece */
};

/* ---------------------------------------------------------------- NFA builder */
enum { GE_EPS = -1, GE_BYTES = -2 }; /* edge kinds; >= 0: a call of that rule */

typedef struct {
    int32_t from, to, kind;
    uint8_t lo, hi;
} gb_edge;

/* What a rule is: its body is emitted from this key (schema.c / layout.c). */
typedef enum { GK_ROOT = 0, GK_STRING, GK_GOBJ, GK_GARR, GK_REF, GK_TEXT } gkey_kind;

typedef struct {
    int kind;          /* gkey_kind */
    const void *node;  /* GK_REF: the target schema node */
    const void *doc;   /* GK_REF: its document (for nested $ref) */
    int depth;         /* generic JSON / recursion depth */
} gkey;

typedef struct {
    gkey key;
    int32_t start, end; /* NFA states */
} gb_rule;

typedef struct gb gb;
/* Emits the body of a rule between two NFA states (schema.c dispatches every kind). */
void g_emit_body(gb *b, gkey key, int32_t from, int32_t to);

struct gb {
    gb_edge *e;
    size_t ne, cap_e;
    int32_t *srule;      /* [ns] rule of each NFA state */
    size_t ns, cap_s;
    gb_rule *rules;
    size_t nr, cap_r;
    int32_t cur;         /* rule being emitted */
    gkey *inl;           /* keys inlined instead of called */
    size_t ninl, cap_inl;
    dspex_grammar_limits lim;
    dspex_arena *a;      /* scratch of the front ends (schema values) */
    int nest;            /* front-end recursion depth */
    const void **rec_node; /* $ref targets whose recursion is known (schema.c) */
    int8_t *rec_val;
    size_t nrec, cap_rec;
    size_t scan;         /* schema nodes visited by that analysis */
    int failed;
    char err[256];
};

int32_t gb_state(gb *b);
void gb_eps(gb *b, int32_t from, int32_t to);
void gb_range(gb *b, int32_t from, unsigned lo, unsigned hi, int32_t to);
void gb_byte(gb *b, int32_t from, unsigned c, int32_t to);
void gb_lit(gb *b, int32_t from, const char *s, size_t n, int32_t to);
void gb_lits(gb *b, int32_t from, const char *s, int32_t to); /* NUL-terminated */
/* Code points lo..hi (surrogates excluded) as UTF-8. */
void gb_cp_range(gb *b, int32_t from, uint32_t lo, uint32_t hi, int32_t to);
/* A reference to the rule of key: a call edge, or the body inline when the key is in
 * the inline set. */
void gb_ref(gb *b, gkey key, int32_t from, int32_t to);
void gb_fail(gb *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int gkey_eq(gkey x, gkey y);

/* ---------------------------------------------------------------- compiled grammar */
typedef struct {
    int32_t rule, ret; /* callee, caller's state after the return */
} gcall;

typedef struct {
    int32_t start;        /* DFA state */
    int32_t minlen;       /* shortest body in bytes */
    uint8_t first[32];    /* bytes a call can start with */
    gkey key;
} grule;

/* A cached mask for one automaton state (as the top frame). */
typedef struct {
    uint32_t n_acc;       /* tokens accepted inside the frame */
    int32_t *acc;         /* their ids when listed (n_acc small) */
    uint64_t *bits;       /* else a bitset over the vocabulary */
    uint32_t n_unc;       /* tokens that leave the frame part-way */
    int32_t *unc_tok;
    uint16_t *unc_off;    /* bytes consumed before the frame ends */
    int32_t max_after;    /* largest shortest-completion (in frame) after an accepted token */
    _Atomic(uint16_t *) after; /* per token: that completion (saturated), filled when the
                                  budget first binds on this entry; NULL until then */
    size_t bytes;         /* memory of this entry */
} gentry;

struct dspex_grammar {
    atomic_long refs;
    dspex_gvocab *gv;
    int32_t nc;            /* byte classes */
    uint8_t cls[256];      /* byte -> class */
    int32_t ns;            /* DFA states, all rules */
    int32_t *next;         /* [ns * nc] -1 = none */
    uint8_t *accept;       /* [ns] */
    int32_t *call_off;     /* [ns + 1] */
    gcall *calls;
    int32_t *dist;         /* [ns] fewest bytes to the rule's end */
    int32_t *srule;        /* [ns] rule of each state */
    int32_t nr;
    grule *rules;          /* rules[0] is the root */
    int32_t max_depth;     /* deepest call chain + 1 */
    size_t bytes;
    /* mask cache */
    _Atomic(gentry *) *entries; /* [ns] */
    pthread_mutex_t mu;
    size_t cache_bytes, cache_limit;
    atomic_ullong n_entries, walks, walk_ns, masks, mask_ns;
};

/* Compiles the grammar whose root is emitted by root(b, ud, from, to). Takes a reference
 * on gv. */
typedef void (*groot_fn)(gb *b, void *ud, int32_t from, int32_t to);
dspex_grammar *g_compile(groot_fn root, void *ud, dspex_gvocab *gv, const dspex_grammar_limits *lim, char *err,
                         size_t errlen);

/* One byte on a stack of DFA states (st[0] is the root frame). Returns 1, or 0 when the
 * byte cannot follow. base: frames below it belong to someone else: popping st[base]
 * returns 2 (the frame ended before the byte) instead of popping. */
int g_step(const dspex_grammar *g, int32_t *st, int *depth, int base, uint8_t byte);

/* ---------------------------------------------------------------- front-end helpers */
/* JSON whitespace between structural characters (see grammar.h). */
void gj_ws(gb *b, int32_t from, int32_t to);
/* Any JSON value with containers nested at most depth levels more. */
void gj_any_value(gb *b, int depth, int32_t from, int32_t to);
/* A JSON Schema value (schema.c); doc is the document root for $ref. */
void gj_schema(gb *b, const void *node, const void *doc, int rdepth, int32_t from, int32_t to);
/* Numbers (numbers.c). Bounds are decimal texts without sign or NULL (unbounded). */
typedef struct {
    int neg;             /* sign */
    char ip[24];         /* integer part digits, no leading zeros ("0" for zero) */
    char fp[40];         /* fraction digits, trailing zeros removed */
    int excl;            /* exclusive bound */
    int set;             /* 0 = unbounded */
} gdec;
void gn_integer(gb *b, const gdec *lo, const gdec *hi, int32_t from, int32_t to);
void gn_number(gb *b, const gdec *lo, const gdec *hi, int32_t from, int32_t to);
/* Parses a JSON number text into a gdec; 0 ok, -1 bad or beyond 1e18 (then the bound is
 * dropped by the caller). */
int gn_parse(const char *s, size_t n, gdec *out);
/* A regex pattern inside a JSON string (regex.c); emits the string content only. */
void gr_pattern(gb *b, const char *pat, size_t n, int32_t from, int32_t to);
/* One JSON string character, any (escapes included). */
void gj_char(gb *b, int32_t from, int32_t to);
/* The body of the ChatAdapter's free-text rule (layout.c). */
void gl_text_body(gb *b, int32_t from, int32_t to);

#endif
