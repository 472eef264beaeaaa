/* Python's text rules that DSPy's prompts and parsers depend on, on UTF-8 bytes:
 * str() and repr() of values (repr escapes non-printable characters like Python's
 * str.isprintable), json.dumps(ensure_ascii=False), str.splitlines, str.strip,
 * textwrap.dedent, inspect.cleandoc, and the str.isupper / str.capitalize used by DSPy's
 * prefix inference.
 *
 * Unicode coverage (the C core carries no Unicode database): non-printable characters are
 * the C0/C1 controls, the space separators, U+2028/U+2029, the format characters (Cf),
 * surrogates, private-use characters and the noncharacters; unassigned code points count
 * as printable (Python escapes them). Case mapping covers ASCII, Latin-1, Latin
 * Extended-A, Greek and Cyrillic; other scripts are uncased.
 *
 * Output goes to a dspex_buf (allocation failure is sticky in buf.oom). Recursion over
 * values is bounded by DSPEX_PYTEXT_MAX_DEPTH. No global state. */
#ifndef DSPEX_PYTEXT_H
#define DSPEX_PYTEXT_H

#include <stddef.h>
#include <stdint.h>

#include "dspex/arena.h"
#include "dspex/buf.h"
#include "dspex/value.h"

#define DSPEX_PYTEXT_MAX_DEPTH 4096

/* repr(float): shortest round-trip, '1e-05', '0.1', '1.0', 'inf', 'nan'. */
void dspex_py_float(double d, dspex_buf *out);
/* str(value) for scalars, json.dumps(ensure_ascii=False) for containers: what DSPy's
 * format_field_value writes for a value. */
void dspex_py_str(const dspex_val *v, dspex_buf *out);
/* repr(value): strings quoted and escaped, containers as Python literals. */
void dspex_py_repr(const dspex_val *v, dspex_buf *out);
void dspex_py_repr_str(const char *s, size_t n, dspex_buf *out);
/* json.dumps(v, ensure_ascii=False); indent < 0: one line with ", " / ": " separators. */
void dspex_json_dumps(const dspex_val *v, int indent, dspex_buf *out);
void dspex_json_string(const char *s, size_t n, dspex_buf *out);

/* str.splitlines(): returns the line count (or (size_t)-1 when out of memory); the
 * lines point into s, their starts and lengths are arena arrays. */
size_t dspex_py_splitlines(dspex_arena *a, const char *s, size_t n, const char ***lines, size_t **lens);
/* str.strip() (Unicode whitespace): narrows *s / *n to the stripped span. */
void dspex_py_strip(const char **s, size_t *n);
/* textwrap.dedent(s) into the arena (NUL-terminated); NULL when out of memory. */
char *dspex_py_dedent(dspex_arena *a, const char *s, size_t n, size_t *outlen);
/* inspect.cleandoc(s): tabs expanded, the first line's leading whitespace and the other
 * lines' common indentation removed, leading and trailing empty lines dropped. */
void dspex_py_cleandoc(const char *s, size_t n, dspex_buf *out);

/* str.isupper(): at least one cased character and no lowercase one. */
int dspex_py_isupper(const char *s, size_t n);
/* str.capitalize(): the first character upper-cased, the rest lower-cased. */
void dspex_py_capitalize(const char *s, size_t n, dspex_buf *out);

/* Decodes the code point at s[*i] (advancing *i); an invalid byte decodes as itself. */
uint32_t dspex_utf8_next(const char *s, size_t n, size_t *i);

#endif
