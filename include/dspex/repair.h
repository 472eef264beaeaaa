/* JSON extraction and repair for LM output.
 *
 * Pure C11, no BEAM headers. Every call takes an explicit options struct and writes into a
 * caller-owned result; there is no global state. Work is linear in the input on every
 * path (the output is a growable buffer that is only appended to, plus edits of a
 * bounded tail; lookaheads are bounded; string re-parses share one budget per input):
 * measured at 10-150 ns per input byte (-O2, one core), and about 100 ns per value when
 * extract walks an input of tiny values one call at a time. Memory is proportional to
 * the input (output at most 8 bytes per input byte).
 *
 *   dspex_repair_result r;
 *   if (dspex_json_repair(text, len, NULL, &r) == 0) use(r.out, r.out_len);
 *   else report(r.err_msg, r.err_offset);
 *   dspex_repair_result_free(&r);
 */
#ifndef DSPEX_REPAIR_H
#define DSPEX_REPAIR_H

#include <stddef.h>

#define DSPEX_REPAIR_DEFAULT_MAX_DEPTH 512

/* Error codes (also returned by the functions). */
enum {
    DSPEX_REPAIR_OK = 0,
    DSPEX_REPAIR_ERR_SYNTAX = 1,   /* unrepairable input */
    DSPEX_REPAIR_ERR_EMPTY = 2,    /* no JSON value found */
    DSPEX_REPAIR_ERR_DEPTH = 3,    /* nesting deeper than max_depth */
    DSPEX_REPAIR_ERR_NOMEM = 4     /* allocation failed */
};

typedef struct {
    size_t max_depth; /* 0 = DSPEX_REPAIR_DEFAULT_MAX_DEPTH */
    int multi;        /* repair: several top-level values become an array (default 1) */
    int skip_valid;   /* repair: the caller already knows the input is not valid JSON */
    /* extract: the string re-parse allowance shared by a sequence of calls over one input
     * (walking its values with from = r.end), initialised to dspex_repair_rescan_budget(len).
     * It keeps the whole walk linear; NULL gives each call its own allowance, which keeps
     * one call linear but lets n calls cost n times the input. */
    size_t *rescan_budget;
} dspex_repair_opts;

typedef struct {
    char *out;            /* malloc'd output (valid JSON text), NUL-terminated; NULL on error */
    size_t out_len;
    int err;              /* DSPEX_REPAIR_OK or an error code */
    const char *err_msg;  /* static string on error */
    size_t err_offset;    /* byte offset in the input where the error was detected */
    size_t start;         /* extract: input offset where the value started */
    size_t end;           /* extract: input offset just after the value (and its closers) */
    int repaired;         /* 1 when the output differs from the input (repair only) */
    int bare_text;        /* extract: the value holds unquoted text outside any object or
                           * array (prose such as `no json here`, or `see(this)`), repaired
                           * into a string; callers that want JSON only treat it as none */
} dspex_repair_result;

/* Initialises opts to defaults (max_depth 512, multi 1, skip_valid 0, rescan_budget NULL). */
void dspex_repair_opts_init(dspex_repair_opts *o);

/* The string re-parse allowance for an input of len bytes (see rescan_budget). */
size_t dspex_repair_rescan_budget(size_t len);

/* Strict RFC 8259 validation of a whole JSON text (including UTF-8). Returns 1 if valid. */
int dspex_json_is_valid(const char *in, size_t len, size_t max_depth);

/* Repairs `in` into one valid JSON text. Valid input is copied byte for byte. Leading
 * prose and Markdown fences are dropped; trailing prose is ignored; several top-level
 * values become an array (when opts->multi). Returns the error code (also in r->err). */
int dspex_json_repair(const char *in, size_t len, const dspex_repair_opts *o, dspex_repair_result *r);

/* Finds the first JSON value at or after input offset `from` (skipping prose, fences,
 * comments and separators), repairs it and returns its JSON text. r->start/r->end give the
 * consumed input range; call again with from = r->end for the next value. Returns
 * DSPEX_REPAIR_ERR_EMPTY when no further value exists. */
int dspex_json_extract(const char *in, size_t len, size_t from, const dspex_repair_opts *o,
                       dspex_repair_result *r);

void dspex_repair_result_free(dspex_repair_result *r);

#endif
