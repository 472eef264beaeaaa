/* Test and fuzz support: our JSON pull parser (strict, UTF-8 checked, depth-limited,
 * error offsets) building a cJSON tree, so that C tests and fuzz targets can compare our
 * decoder with cJSON's (fuzz/fuzz_json_differential.c) or walk a tree.
 *
 * cJSON is a test oracle only: the shipped NIF and port do not link it (issue 7 #6).
 * cJSON limits apply to the tree: numbers become doubles (bignums through strtod) and
 * strings are NUL-terminated (a \u0000 truncates them). Duplicate keys are all kept, in
 * order. Returns NULL on error, with msg (may be NULL) and *offset (may be NULL) filled;
 * the caller frees the tree with cJSON_Delete. */
#ifndef DSPEX_TEST_CJSON_BRIDGE_H
#define DSPEX_TEST_CJSON_BRIDGE_H

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dspex/json.h"

static inline cJSON *json_to_cjson(const void *buf, size_t len, unsigned max_depth, char *msg, size_t msg_cap,
                                   size_t *offset) {
    dspex_json_parser p;
    dspex_json_event ev;
    dspex_json_parser_init(&p, buf, len, max_depth);
    cJSON **stack = NULL;
    size_t depth = 0, cap = 0;
    cJSON *root = NULL;
    char *key = NULL;
    int ok = 0;
    for (;;) {
        int t = dspex_json_next(&p, &ev);
        if (t == DSPEX_JSON_EV_ERROR) {
            if (msg && msg_cap) snprintf(msg, msg_cap, "%s", p.err_msg);
            if (offset) *offset = p.err_offset;
            break;
        }
        if (t == DSPEX_JSON_EV_END) {
            ok = 1;
            break;
        }
        if (t == DSPEX_JSON_EV_KEY) {
            free(key);
            key = malloc(ev.len + 1);
            if (key == NULL) goto nomem;
            memcpy(key, ev.str, ev.len);
            key[ev.len] = 0;
            continue;
        }
        if (t == DSPEX_JSON_EV_ARRAY_END || t == DSPEX_JSON_EV_OBJECT_END) {
            depth--;
            continue;
        }
        cJSON *item = NULL;
        char *tmp = NULL;
        switch (t) {
        case DSPEX_JSON_EV_NULL: item = cJSON_CreateNull(); break;
        case DSPEX_JSON_EV_TRUE: item = cJSON_CreateTrue(); break;
        case DSPEX_JSON_EV_FALSE: item = cJSON_CreateFalse(); break;
        case DSPEX_JSON_EV_INT: item = cJSON_CreateNumber((double)ev.i); break;
        case DSPEX_JSON_EV_FLOAT: item = cJSON_CreateNumber(ev.d); break;
        case DSPEX_JSON_EV_BIGINT:
        case DSPEX_JSON_EV_STRING:
            tmp = malloc(ev.len + 1);
            if (tmp == NULL) goto nomem;
            memcpy(tmp, ev.str, ev.len);
            tmp[ev.len] = 0;
            item = t == DSPEX_JSON_EV_STRING ? cJSON_CreateString(tmp) : cJSON_CreateNumber(strtod(tmp, NULL));
            free(tmp);
            break;
        case DSPEX_JSON_EV_OBJECT_START: item = cJSON_CreateObject(); break;
        case DSPEX_JSON_EV_ARRAY_START: item = cJSON_CreateArray(); break;
        default: break;
        }
        if (item == NULL) goto nomem;
        if (depth == 0) {
            root = item;
        } else if (cJSON_IsObject(stack[depth - 1])) {
            if (!cJSON_AddItemToObject(stack[depth - 1], key ? key : "", item)) {
                cJSON_Delete(item);
                goto nomem;
            }
        } else {
            if (!cJSON_AddItemToArray(stack[depth - 1], item)) {
                cJSON_Delete(item);
                goto nomem;
            }
        }
        if (t == DSPEX_JSON_EV_OBJECT_START || t == DSPEX_JSON_EV_ARRAY_START) {
            if (depth == cap) {
                size_t nc = cap ? cap * 2 : 16;
                cJSON **s = realloc(stack, nc * sizeof(*s));
                if (s == NULL) goto nomem;
                stack = s;
                cap = nc;
            }
            stack[depth++] = item;
        }
        continue;
    nomem:
        if (msg && msg_cap) snprintf(msg, msg_cap, "out of memory");
        if (offset) *offset = ev.offset;
        break;
    }
    free(key);
    free(stack);
    dspex_json_parser_free(&p);
    if (!ok) {
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}

#endif
