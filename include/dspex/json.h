/* DSPex JSON core: a strict RFC 8259 pull parser and the writer helpers the encoder uses.
 *
 * Pure C11, no BEAM headers. The NIF (c_src/nif/nif_json.c) turns parser events into
 * Erlang terms and uses the writer helpers to produce JSON text.
 *
 * Why not cJSON for the Elixir-facing codec? libcjson stores every number as a double
 * (so integers beyond 2^53 lose digits and bignums are impossible), reports no error
 * offset, builds a heap tree the NIF would only walk once and free, and does not check
 * UTF-8. This parser instead streams events straight from the input (no tree), keeps
 * integers exact (int64 fast path, digit text for bignums), validates UTF-8 and escapes,
 * enforces a depth limit, and reports the byte offset and a readable reason for every
 * error. cJSON is not linked into the NIF or the port; it serves only as an oracle in C
 * tests and fuzz targets (test/c/cjson_bridge.h, fuzz/fuzz_json_differential.c).
 *
 * Parser usage:
 *
 *     dspex_json_parser p;
 *     dspex_json_parser_init(&p, buf, len, 512);
 *     dspex_json_event ev;
 *     for (;;) {
 *         int t = dspex_json_next(&p, &ev);
 *         if (t == DSPEX_JSON_EV_ERROR) { report(p.err_msg, p.err_offset); break; }
 *         if (t == DSPEX_JSON_EV_END) break;
 *         ...
 *     }
 *     dspex_json_parser_free(&p);
 *
 * Event strings (ev.str, ev.len) are valid UTF-8 without escapes. When ev.in_input is 1
 * they point into the input at ev.offset (the string needed no unescaping); otherwise
 * they point into the parser's scratch buffer, valid only until the next call.
 *
 * Work is linear in the input length except for integer literals longer than 18 digits,
 * which callers convert with dspex_json_decimal_to_bytes() (quadratic in the digit
 * count); such literals are limited to DSPEX_JSON_MAX_INT_DIGITS digits.
 */
#ifndef DSPEX_JSON_H
#define DSPEX_JSON_H

#include <stddef.h>
#include <stdint.h>

#define DSPEX_JSON_DEFAULT_MAX_DEPTH 512
/* Longest integer literal accepted (digits, sign excluded). */
#define DSPEX_JSON_MAX_INT_DIGITS 100000

typedef enum {
    DSPEX_JSON_EV_ERROR = 0,
    DSPEX_JSON_EV_END,          /* the single top-level value is complete, input consumed */
    DSPEX_JSON_EV_NULL,
    DSPEX_JSON_EV_TRUE,
    DSPEX_JSON_EV_FALSE,
    DSPEX_JSON_EV_INT,          /* ev.i */
    DSPEX_JSON_EV_BIGINT,       /* ev.str/ev.len: optional '-' then digits (no leading zero) */
    DSPEX_JSON_EV_FLOAT,        /* ev.d (finite) */
    DSPEX_JSON_EV_STRING,       /* ev.str/ev.len */
    DSPEX_JSON_EV_KEY,          /* an object key; ev.str/ev.len; the ':' is consumed */
    DSPEX_JSON_EV_OBJECT_START,
    DSPEX_JSON_EV_OBJECT_END,
    DSPEX_JSON_EV_ARRAY_START,
    DSPEX_JSON_EV_ARRAY_END
} dspex_json_event_type;

typedef enum {
    DSPEX_JSON_OK = 0,
    DSPEX_JSON_ERR_SYNTAX,      /* unexpected character / end of input */
    DSPEX_JSON_ERR_STRING,      /* bad escape, control character, invalid UTF-8 */
    DSPEX_JSON_ERR_NUMBER,      /* malformed or out-of-range number */
    DSPEX_JSON_ERR_DEPTH,       /* nesting deeper than max_depth */
    DSPEX_JSON_ERR_NOMEM
} dspex_json_error_code;

typedef struct {
    int type;                   /* dspex_json_event_type */
    int in_input;               /* strings: 1 if str points into the input buffer */
    size_t offset;              /* byte offset of the token (strings: after the quote) */
    const char *str;
    size_t len;
    int64_t i;
    double d;
} dspex_json_event;

typedef struct {
    const unsigned char *buf;
    size_t len;
    size_t pos;
    unsigned max_depth;
    unsigned depth;
    int state;
    unsigned char *stack;       /* container kind per open level */
    size_t stack_cap;
    char *scratch;              /* unescaped strings, number text for strtod */
    size_t scratch_cap;
    unsigned flags;             /* DSPEX_JSON_PARSE_* bits; set after init (0: strict) */
    int err_code;               /* dspex_json_error_code */
    size_t err_offset;
    char err_msg[192];
} dspex_json_parser;

/* Parser flag: a string's ill-formed UTF-8 (each maximal subpart, as browsers decode it)
 * and lone UTF-16 surrogate escapes (\ud83d alone, which Python's json.dumps writes for
 * half an emoji) become U+FFFD instead of errors. Everything else stays strict. */
#define DSPEX_JSON_PARSE_REPLACE_INVALID 1u

/* max_depth 0 means DSPEX_JSON_DEFAULT_MAX_DEPTH; flags start at 0 (strict). Never fails
 * (allocates lazily). */
void dspex_json_parser_init(dspex_json_parser *p, const void *buf, size_t len, unsigned max_depth);
void dspex_json_parser_free(dspex_json_parser *p);

/* Next event; fills *ev and returns its type. After ERROR or END it keeps returning the
 * same. On ERROR, p->err_code, p->err_offset and p->err_msg describe the problem. */
int dspex_json_next(dspex_json_parser *p, dspex_json_event *ev);

/* Validates a whole document. Returns 0 if valid, else the error code (with the
 * message/offset copied into msg/offset when non-NULL). */
int dspex_json_validate(const void *buf, size_t len, unsigned max_depth, char *msg, size_t msg_cap,
                        size_t *offset);

/* ---- number conversion helpers (bignums) ---- */

/* Converts decimal digits (no sign) to a little-endian magnitude. Writes at most cap
 * bytes to out and returns the byte count (at least 1), or 0 if cap is too small.
 * cap >= ndigits / 2 + 8 always suffices. */
size_t dspex_json_decimal_to_bytes(const char *digits, size_t ndigits, unsigned char *out, size_t cap);

/* Converts a little-endian magnitude to decimal digits (no sign, no leading zeros; "0"
 * for zero). Returns the digit count, or 0 if cap is too small or memory runs out.
 * cap >= nbytes * 25 / 10 + 2 always suffices. */
size_t dspex_json_bytes_to_decimal(const unsigned char *bytes, size_t nbytes, char *out, size_t cap);

/* ---- writer helpers ---- */

#define DSPEX_JSON_ESCAPE_UNICODE 1 /* write every non-ASCII code point as \uXXXX */

/* Length of the escaped form of src (without quotes), or SIZE_MAX if src is not valid
 * UTF-8 (then *bad_offset is the offset of the first invalid byte). */
size_t dspex_json_escaped_len(const unsigned char *src, size_t len, int flags, size_t *bad_offset);

/* Writes the escaped form of src (without quotes) to dst and returns its length, or
 * returns SIZE_MAX if src is not valid UTF-8 (then *bad_offset is the offset of the
 * first invalid byte and dst holds garbage). dst needs dspex_json_escaped_len() bytes,
 * and 6 * len bytes always suffice (one pass, no separate length scan). */
size_t dspex_json_escape(char *dst, const unsigned char *src, size_t len, int flags, size_t *bad_offset);

/* Shortest text that reads back as exactly d: the fewest significant digits (at most
 * 17) that round-trip, and among those the nearest to d. Exact 128-bit integer digit
 * generation for normal doubles in about [1e-4, 1e37); elsewhere (subnormals, huge or
 * tiny values) the fewest of 15, 16 or 17 digits from the C library that round-trip,
 * which can be longer than the shortest for subnormals. Layout: plain decimal when 1e-4 <= |d| < 1e16 (or d == 0), with
 * ".0" when there is no fractional part ("1.0", "0.1", "100.0"); otherwise scientific
 * "D.DDDe[-]X" with at least one fraction digit and no '+' or leading exponent zeros
 * ("1.0e20", "1.5e-7", "-2.5e300"). Needs out[32]. Returns the length, or -1 when d is
 * NaN or infinite. */
int dspex_json_format_double(char *out, double d);

/* Decimal text of v. Needs out[21]. Returns the length. */
int dspex_json_format_int64(char *out, int64_t v);

#endif
