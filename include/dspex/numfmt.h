/* Number text shared by the whole C core: the JSON encoder (json.c, nif_json.c) and the
 * adapters' Python text rules (pytext.c) print integers and floats with these, so a float
 * reads the same, and costs the same, wherever DSPex writes one.
 *
 * Floats are printed with the shortest digits that read back as exactly the same double
 * (at most 17), and among equally short candidates the one nearest the exact value: the
 * digits of Python's repr() and Erlang's float_to_binary(F, [short]). Digit generation is
 * exact 128-bit integer arithmetic for normal doubles in about [1e-4, 1e37) (about 40 ns
 * per float); elsewhere (subnormals, huge or tiny values) the C library's correctly
 * rounded digits at increasing precision until they read back exactly (slower, rare;
 * the JSON style starts at 15 digits there, as DSPex.JSON always has). Pure C11, no allocation, no global state. */
#ifndef DSPEX_NUMFMT_H
#define DSPEX_NUMFMT_H

#include <stdint.h>

/* Room every formatter below needs in `out` (sign, 17 digits, point, exponent, NUL). */
#define DSPEX_NUMFMT_MAX 32

/* Decimal text of v. Returns the length (at most 20). */
int dspex_fmt_int64(char *out, int64_t v);

typedef enum {
    /* "1.0", "0.1", "100.0", "1.0e20", "1.5e-7": plain decimal when 1e-4 <= |d| < 1e16 or
     * d == 0 (with ".0" when there is no fraction), else "D.DDDe[-]X" with at least one
     * fraction digit, no '+' and no leading exponent zeros. NaN/inf are refused (-1). */
    DSPEX_FLOAT_JSON = 0,
    /* Python repr(float): "1.0", "0.1", "1e-05", "1e+16", "1.5e-07", "inf", "-inf", "nan". */
    DSPEX_FLOAT_PY = 1
} dspex_float_style;

/* Writes d in `style` to out (DSPEX_NUMFMT_MAX bytes, NUL-terminated) and returns the
 * length, or -1 for a non-finite d in DSPEX_FLOAT_JSON. */
int dspex_fmt_double(char *out, double d, dspex_float_style style);

/* 10^0 .. 10^19: every power of ten a uint64_t holds (number printing and parsing). */
extern const uint64_t dspex_pow10_u64[20];

#endif
