/* DSPy signature strings, e.g. "question, context: list[str] -> answer: str".
 *
 * The grammar follows DSPy 3.x (dspy/signatures/signature.py): exactly one "->"; each
 * side is a Python parameter list of `name` or `name: <type>` separated by commas
 * (an optional trailing comma is allowed, either side may be empty). Supported types:
 *
 *   str int float bool Any None NoneType History dspy.History
 *   list dict tuple set frozenset (bare)      List Dict Tuple Set FrozenSet (typing)
 *   list[T] set[T] dict[K, V] tuple[A, B] tuple[T, ...]
 *   Literal['a', "b", 1, 2.5, True, None]  Optional[T]  Union[A, B]  A | B
 *
 * with an optional `typing.` prefix on the typing names. Unions are flattened and
 * deduplicated like Python's typing.Union: a union containing None becomes
 * OPTIONAL(rest), a one-member union is that member. Literal values that repeat (same
 * type and value) are dropped like typing.Literal does.
 *
 * Pure C11, no global state. All memory of a result lives in one arena owned by the
 * dspex_signature and is released by dspex_sig_free. Work is bounded: the input is at
 * most DSPEX_SIG_MAX_INPUT bytes, type nesting at most DSPEX_SIG_MAX_DEPTH levels.
 */
#ifndef DSPEX_SIGNATURE_H
#define DSPEX_SIGNATURE_H

#include <stddef.h>

#define DSPEX_SIG_MAX_INPUT 65536u   /* bytes */
#define DSPEX_SIG_MAX_DEPTH 32       /* nested type levels */
#define DSPEX_SIG_MAX_FIELDS 1024    /* fields per signature */
#define DSPEX_SIG_MAX_MEMBERS 256    /* members of one union / args of one generic */
#define DSPEX_SIG_MAX_LITERALS 256   /* distinct values of one Literal[...] */

typedef enum {
    DSPEX_SIG_T_STR,
    DSPEX_SIG_T_INT,
    DSPEX_SIG_T_FLOAT,
    DSPEX_SIG_T_BOOL,
    DSPEX_SIG_T_ANY,
    DSPEX_SIG_T_NONE,
    DSPEX_SIG_T_HISTORY,
    DSPEX_SIG_T_LIST,     /* args: 0 (bare `list`) or 1 */
    DSPEX_SIG_T_SET,      /* args: 0 (bare `set`) or 1 */
    DSPEX_SIG_T_DICT,     /* args: 0 (bare `dict`) or 2 */
    DSPEX_SIG_T_TUPLE,    /* args: 0 (bare `tuple`) or >= 1; `variadic` for tuple[T, ...] */
    DSPEX_SIG_T_LITERAL,  /* lits: >= 1 */
    DSPEX_SIG_T_OPTIONAL, /* args: 1 (never NONE, OPTIONAL) */
    DSPEX_SIG_T_UNION     /* args: >= 2, none of them NONE, OPTIONAL or UNION */
} dspex_sig_type_kind;

typedef enum {
    DSPEX_SIG_LIT_STR,
    DSPEX_SIG_LIT_INT,
    DSPEX_SIG_LIT_FLOAT,
    DSPEX_SIG_LIT_BOOL,
    DSPEX_SIG_LIT_NONE
} dspex_sig_lit_kind;

typedef struct {
    dspex_sig_lit_kind kind;
    const char *str; /* LIT_STR: decoded UTF-8 bytes (NUL-terminated, may contain NUL) */
    size_t str_len;
    long long i;     /* LIT_INT */
    double f;        /* LIT_FLOAT (always finite) */
    int b;           /* LIT_BOOL */
} dspex_sig_literal;

typedef struct dspex_sig_type {
    dspex_sig_type_kind kind;
    int has_args;                 /* generics: 0 when written bare (`list`, `List`) */
    int variadic;                 /* TUPLE: written tuple[T, ...] (nargs == 1) */
    size_t nargs;
    struct dspex_sig_type **args;
    size_t nlits;
    dspex_sig_literal *lits;
} dspex_sig_type;

typedef enum { DSPEX_SIG_INPUT, DSPEX_SIG_OUTPUT } dspex_sig_field_kind;

typedef struct {
    const char *name; /* NUL-terminated ASCII identifier */
    size_t name_len;
    dspex_sig_field_kind kind;
    dspex_sig_type *type; /* STR when untyped */
    int type_defined;     /* 0 when written without ": type" */
    size_t column;        /* 1-based byte column of the name */
    const char *prefix;   /* dspex_sig_infer_prefix(name), NUL-terminated (no ':') */
    size_t prefix_len;
} dspex_sig_field;

typedef struct dspex_sig_arena dspex_sig_arena;

typedef struct {
    dspex_sig_field *fields; /* inputs first, then outputs, each in written order */
    size_t nfields;
    size_t ninputs;
    dspex_sig_arena *arena;  /* owns every pointer reachable from this struct */
} dspex_signature;

typedef enum {
    DSPEX_SIG_OK = 0,
    DSPEX_SIG_ESYNTAX = 1, /* message + column describe the problem */
    DSPEX_SIG_ENOMEM = 2
} dspex_sig_status;

typedef struct {
    size_t column;     /* 1-based byte column of the problem (0 when not applicable) */
    char message[512]; /* NUL-terminated, says what to write instead */
} dspex_sig_error;

/* Parses src[0..len). On success stores a new signature in *out (free it with
 * dspex_sig_free) and returns DSPEX_SIG_OK. On failure *out is NULL, err (when non-NULL)
 * is filled and a non-zero status is returned. */
dspex_sig_status dspex_sig_parse(const char *src, size_t len, dspex_signature **out,
                                 dspex_sig_error *err);

void dspex_sig_free(dspex_signature *sig);

/* DSPy's infer_prefix (dspy/signatures/signature.py): splits camelCase, digit
 * boundaries and '_' into words, keeps all-uppercase words, capitalizes the others and
 * joins them with spaces ("camelCaseText" -> "Camel Case Text", "HTMLParser" -> "HTML
 * Parser", "text2number" -> "Text 2 Number"). ASCII letters and digits are the cased
 * characters and digits; other bytes pass through. Writes into out (NUL-terminated when
 * cap > 0) and returns the full length (like snprintf), or (size_t)-1 when out of
 * memory. */
size_t dspex_sig_infer_prefix(const char *name, size_t len, char *out, size_t cap);

/* Writes the type in DSPy's string syntax ("list[str]", "Optional[int]", ...) into
 * buf (always NUL-terminated when cap > 0). Returns the length the full rendering needs
 * (like snprintf); the output is truncated when that is >= cap. */
size_t dspex_sig_type_render(const dspex_sig_type *t, char *buf, size_t cap);

#endif
