/* DSPy signatures in C: the signature string parser and the signature every adapter call
 * runs on (fields with their types, descriptions, constraints; instructions).
 *
 * String grammar (DSPy 3.x dspy/signatures/signature.py): exactly one "->"; each side is a
 * Python parameter list of `name` or `name: <type>` separated by commas (a trailing
 * comma is allowed, either side may be empty). Names are Python identifiers (non-ASCII
 * letters allowed, at most 255 characters: Erlang's atom limit), not keywords, distinct.
 * Types (with an optional `typing.` prefix on the typing names):
 *
 *   str int float bool Any None NoneType History dspy.History datetime.datetime
 *   datetime.date list dict tuple set frozenset (bare)  List Dict Tuple Set FrozenSet
 *   list[T] set[T] frozenset[T] dict[K, V] tuple[A, B] tuple[T, ...]
 *   Literal['a', "b", 1, 2.5, True, None]  Optional[T]  Union[A, B]  A | B
 *
 * Two modes differ only in `A | B`: DSPEX_SIG_STRING follows DSPy's string parser (a
 * typing.Union, with its quirk that `X | NoneType` and `NoneType | X` become Optional[X]
 * while `None | X` keeps None first); DSPEX_SIG_CLASS follows Python evaluating the
 * annotation in a class body (a PEP 604 types.UnionType unless a member is a typing
 * special form). A field typed exactly `None` in a string is a `str` field, as in DSPy;
 * a bare typing alias nested in a type (`Union[Dict, str]`) prints "dict[]" like DSPy.
 *
 * Pure C11, no global state. A signature and everything it points to live in its own
 * arena, released by dspex_sig_free. Work is bounded: the input is at most
 * DSPEX_SIG_MAX_INPUT bytes, type nesting at most DSPEX_TYPE_MAX_DEPTH levels. */
#ifndef DSPEX_SIGNATURE_H
#define DSPEX_SIGNATURE_H

#include <stddef.h>

#include "dspex/arena.h"
#include "dspex/type.h"

#define DSPEX_SIG_MAX_INPUT 65536u  /* bytes of one signature string */
#define DSPEX_SIG_MAX_FIELDS 1024   /* fields per signature */
#define DSPEX_SIG_MAX_NAME 255      /* characters of a field name (Erlang's atom limit) */

typedef enum { DSPEX_SIG_STRING = 0, DSPEX_SIG_CLASS = 1 } dspex_sig_mode;

typedef struct {
    const char *name;    /* UTF-8 identifier, NUL-terminated */
    size_t name_len;
    int is_input;
    dspex_type *type;    /* STR when untyped */
    int type_defined;    /* 0 when written without ": type" */
    const char *desc;    /* NULL: no description (DSPy's "${name}" placeholder counts as none) */
    size_t desc_len;
    dspex_constraint *constraints;
    size_t nconstraints;
    int has_default;     /* an output with a default: a reply without it still parses */
    size_t column;       /* parser: 1-based byte column of the name */
} dspex_field;

typedef struct {
    const char *instructions; /* may be NULL (empty) */
    size_t instructions_len;
    dspex_field *fields;      /* inputs first, then outputs, each in written order */
    size_t nfields;
    size_t ninputs;
    dspex_arena arena;        /* owns every pointer reachable from this struct */
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

/* A new, empty signature (its arena ready for fields); NULL when out of memory. */
dspex_signature *dspex_sig_new(void);
void dspex_sig_free(dspex_signature *sig);

/* Parses src[0..len). On success stores a new signature in *out (free it with
 * dspex_sig_free) and returns DSPEX_SIG_OK. On failure *out is NULL, err (when non-NULL)
 * is filled and a non-zero status is returned. */
dspex_sig_status dspex_sig_parse(const char *src, size_t len, dspex_sig_mode mode, dspex_signature **out,
                                 dspex_sig_error *err);

/* Parses one type expression (e.g. "list[str] | None") into arena a. */
dspex_sig_status dspex_sig_parse_type(const char *src, size_t len, dspex_sig_mode mode, dspex_arena *a,
                                      dspex_type **out, dspex_sig_error *err);

/* DSPy's infer_prefix (dspy/signatures/signature.py): splits camelCase, letter/digit
 * boundaries and '_' into words, keeps all-uppercase words, capitalizes the others
 * (str.capitalize, see pytext.h for the Unicode coverage) and joins them with spaces
 * ("camelCaseText" -> "Camel Case Text", "HTMLParser" -> "HTML Parser", "text2number" ->
 * "Text 2 Number"). Appends to out; returns 0, or -1 when out of memory. */
int dspex_sig_infer_prefix(const char *name, size_t len, dspex_buf *out);

/* DSPy's constraint text (dspy/signatures/field.py): "greater than: 0, less than or equal
 * to: 1.0", each known constraint's phrase and its value as Python's str() writes it, in
 * the order given; unknown keys are skipped. Appends nothing when there is none. */
void dspex_constraints_text(const dspex_field *f, dspex_buf *out);

/* Whether name[0..len) is a field name: an identifier of at most DSPEX_SIG_MAX_NAME
 * characters (valid UTF-8) that, unless allow_keywords, is not a Python keyword (a string
 * signature cannot hold one; a signature built from fields, like DSPy's dict form, can). */
int dspex_sig_valid_name(const char *name, size_t len, int allow_keywords);

#endif
