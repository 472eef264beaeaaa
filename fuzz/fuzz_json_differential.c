/* libFuzzer target: our JSON decoder (c_src/core/json/json.c) against cJSON 1.7 as an
 * oracle, on the same bytes.
 *
 *   - Both accept: the values must be equal. Numbers compare as doubles and must be
 *     identical (our correctly rounded decimal conversion against glibc's strtod, which
 *     cJSON calls); strings, keys, array and object members (duplicates and their order
 *     included) must match.
 *   - cJSON rejects: we must reject too. Our nesting limit is set to cJSON's (1000).
 *   - We reject and cJSON accepts: allowed only for the intended differences below, each
 *     recognised from our error; anything else aborts.
 *
 * Intended differences (we follow RFC 8259; cJSON is lenient):
 *   - number syntax: cJSON hands any run of [0-9.eE+-] to strtod, so it accepts leading
 *     zeros (`01`), a bare `.` (`1.`, `1.e5`), `-.5`; and values beyond the double range
 *     become inf (`1e400`) where we report an error;
 *   - strings: cJSON does not validate UTF-8, accepts raw control characters, and reads
 *     a \u escape whose digits are not hex (`\u00zz`) as U+0000;
 *   - whitespace: cJSON skips every byte <= 0x20 (`\f`, `\v`, NUL) and a leading UTF-8
 *     BOM; JSON whitespace is only space, tab, CR and LF;
 *   - integers: we keep them exact (bignums); cJSON (and so this comparison) sees doubles;
 *   - strings holding \u0000: cJSON truncates them at the NUL; compared up to it here;
 *   - duplicate keys: both keep every member in this event-level comparison; the Elixir
 *     decoder then keeps the last one (DSPex.JSON), cJSON lookups find the first.
 * Trailing text after the value is rejected on both sides (cJSON's end pointer is checked). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cjson_bridge.h"
#include "dspex/json.h"

#define DIFF_MAX_DEPTH 1000 /* CJSON_NESTING_LIMIT */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond) {
    if (!cond) abort();
}

/* Strings as cJSON stores them: up to the first NUL. */
static int same_cstr(const char *a, const char *b) { return a && b && strcmp(a, b) == 0; }

static int same_value(const cJSON *a, const cJSON *b, int depth) {
    if (depth > DIFF_MAX_DEPTH + 1) return 0;
    if ((a->type & 0xFF) != (b->type & 0xFF)) return 0;
    if (cJSON_IsNumber(a)) return a->valuedouble == b->valuedouble || (isnan(a->valuedouble) && isnan(b->valuedouble));
    if (cJSON_IsString(a)) return same_cstr(a->valuestring, b->valuestring);
    if (cJSON_IsArray(a) || cJSON_IsObject(a)) {
        const cJSON *x = a->child, *y = b->child;
        for (; x && y; x = x->next, y = y->next) {
            if (cJSON_IsObject(a) && !same_cstr(x->string, y->string)) return 0;
            if (!same_value(x, y, depth + 1)) return 0;
        }
        return x == NULL && y == NULL;
    }
    return 1; /* null, true, false */
}

/* cJSON's verdict on the whole input: its value must be followed only by bytes it would
 * skip as whitespace. */
static cJSON *cjson_parse(const uint8_t *data, size_t size) {
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts((const char *)data, size, &end, 0);
    if (j == NULL) return NULL;
    while (end < (const char *)data + size && (unsigned char)*end <= 0x20) end++;
    if (end != (const char *)data + size) {
        cJSON_Delete(j);
        return NULL;
    }
    return j;
}

static int starts_with(const char *s, const char *prefix) { return strncmp(s, prefix, strlen(prefix)) == 0; }

/* Is our rejection one of the intended differences? */
static int intended_difference(const uint8_t *data, size_t size) {
    dspex_json_parser p;
    dspex_json_event ev;
    dspex_json_parser_init(&p, data, size, DIFF_MAX_DEPTH);
    int t;
    do t = dspex_json_next(&p, &ev);
    while (t != DSPEX_JSON_EV_ERROR && t != DSPEX_JSON_EV_END);
    check(t == DSPEX_JSON_EV_ERROR);
    int ok = 0;
    size_t off = p.err_offset;
    check(off <= size);
    if (p.err_code == DSPEX_JSON_ERR_NUMBER) {
        ok = 1; /* strict number syntax and range */
    } else if (p.err_code == DSPEX_JSON_ERR_STRING) {
        ok = starts_with(p.err_msg, "invalid UTF-8") || starts_with(p.err_msg, "unescaped control character") ||
             starts_with(p.err_msg, "invalid \\u escape");
    } else if (p.err_code == DSPEX_JSON_ERR_SYNTAX && off < size) {
        unsigned char c = data[off];
        if (c < 0x20 && c != '\t' && c != '\n' && c != '\r') ok = 1; /* non-JSON whitespace */
        if (off == 0 && size >= 3 && memcmp(data, "\xEF\xBB\xBF", 3) == 0) ok = 1; /* BOM */
        /* a number continued the way strtod reads it (01, 1., -.5, 1.e5) */
        if (strchr("0123456789.eE+-", c) && c != 0 && off > 0 && strchr("0123456789.eE+-", data[off - 1]) &&
            data[off - 1] != 0)
            ok = 1;
    }
    dspex_json_parser_free(&p);
    return ok;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    cJSON *ours = json_to_cjson(data, size, DIFF_MAX_DEPTH, NULL, 0, NULL);
    cJSON *theirs = cjson_parse(data, size);
    if (ours && theirs) {
        check(same_value(ours, theirs, 0));
    } else if (ours) {
        abort(); /* we accept what cJSON rejects */
    } else if (theirs) {
        check(intended_difference(data, size));
    }
    cJSON_Delete(ours);
    cJSON_Delete(theirs);
    return 0;
}
