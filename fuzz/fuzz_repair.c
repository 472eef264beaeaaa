/* libFuzzer target for the JSON repair core: a successful repair must produce valid JSON
 * (checked with cJSON, which must consume the whole output) and stay proportional to the
 * input; extraction must make progress and also yield valid JSON. */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dspex/repair.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_valid(const char *out, size_t len) {
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(out, len, &end, 0);
    if (j == NULL) abort(); /* repaired output is not JSON */
    while (end < out + len && (*end == ' ' || *end == '\n' || *end == '\r' || *end == '\t')) end++;
    if (end != out + len) abort(); /* trailing garbage */
    cJSON_Delete(j);
    if (!dspex_json_is_valid(out, len, 100000)) abort(); /* our strict validator disagrees */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    dspex_repair_opts o;
    dspex_repair_opts_init(&o);
    o.max_depth = 64;
    dspex_repair_result r;
    if (dspex_json_repair((const char *)data, size, &o, &r) == DSPEX_REPAIR_OK) {
        if (r.out_len > 8 * size + 16) abort();
        check_valid(r.out, r.out_len);
        if (dspex_json_is_valid((const char *)data, size, 64) &&
            (r.out_len != size || memcmp(r.out, data, size) != 0))
            abort(); /* valid input must pass through unchanged */
    }
    dspex_repair_result_free(&r);
    size_t from = 0;
    for (int k = 0; k < 8 && from < size; k++) {
        if (dspex_json_extract((const char *)data, size, from, &o, &r) != DSPEX_REPAIR_OK) break;
        check_valid(r.out, r.out_len);
        if (r.end <= from) abort(); /* no progress */
        from = r.end;
        dspex_repair_result_free(&r);
    }
    dspex_repair_result_free(&r);
    return 0;
}
