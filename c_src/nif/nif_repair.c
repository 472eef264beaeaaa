/* NIF bindings: JSON repair and extraction (core in c_src/core/json/repair.c).
 *
 *   json_repair(Bin, Opts)  -> {ok, Bin2} | {error, {json_repair, Msg, Offset}}
 *   json_extract(Bin, Opts) -> {ok, Bin2} | {ok, [Bin2]} (all) | {error, ...}
 *
 * Opts is a map with optional atom keys:
 *   max_depth => 1..1000 (nesting limit, default 512)
 *   multi     => boolean     (repair: several top-level values become an array; default true)
 *   all       => boolean     (extract: every top-level value as a list; default false)
 *
 * Valid input to json_repair is returned as the same binary (no copy). Long inputs run on
 * a dirty CPU scheduler, by the one rule of nif_util.h (repair's worst case per byte). */
#include <string.h>

#include "dspex/repair.h"
#include "nif_util.h"

/* The repairer recurses once per nesting level (about 200 bytes of C stack each); 1000
 * levels stay well inside a dirty CPU scheduler's default stack. */
#define REPAIR_MAX_DEPTH_LIMIT 1000

typedef struct {
    dspex_repair_opts core;
    int all;
} RepairNifOpts;

static int get_bool(ErlNifEnv *env, ERL_NIF_TERM map, const char *key, int *out) {
    ERL_NIF_TERM v;
    if (!enif_get_map_value(env, map, enif_make_atom(env, key), &v)) return 1;
    if (enif_is_identical(v, dspex_atoms(env)->true_)) *out = 1;
    else if (enif_is_identical(v, dspex_atoms(env)->false_)) *out = 0;
    else return 0;
    return 1;
}

/* Returns 0 and raises through *err on bad options. */
static int parse_opts(ErlNifEnv *env, ERL_NIF_TERM map, RepairNifOpts *o, ERL_NIF_TERM *err) {
    dspex_repair_opts_init(&o->core);
    o->all = 0;
    if (!enif_is_map(env, map)) {
        *err = dspex_raise_badarg(env, "JSON repair options must be a map");
        return 0;
    }
    ERL_NIF_TERM v;
    if (enif_get_map_value(env, map, enif_make_atom(env, "max_depth"), &v)) {
        unsigned long d;
        if (!enif_get_ulong(env, v, &d) || d == 0 || d > REPAIR_MAX_DEPTH_LIMIT) {
            *err = dspex_raise_badarg(env, ":max_depth must be an integer between 1 and 1000");
            return 0;
        }
        o->core.max_depth = (size_t)d;
    }
    if (!get_bool(env, map, "multi", &o->core.multi) || !get_bool(env, map, "all", &o->all)) {
        *err = dspex_raise_badarg(env, ":multi and :all must be booleans");
        return 0;
    }
    return 1;
}

static ERL_NIF_TERM repair_error(ErlNifEnv *env, const dspex_repair_result *r) {
    if (r->err == DSPEX_REPAIR_ERR_NOMEM) return enif_raise_exception(env, dspex_atoms(env)->out_of_memory);
    return dspex_error(env, dspex_atoms(env)->json_repair, r->err_msg ? r->err_msg : "cannot repair JSON",
                       (long)r->err_offset);
}

static ERL_NIF_TERM out_binary(ErlNifEnv *env, dspex_repair_result *r) {
    ERL_NIF_TERM bin = dspex_make_binary(env, r->out, r->out_len);
    dspex_repair_result_free(r);
    return bin;
}

static ERL_NIF_TERM do_repair(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    (void)argc;
    ErlNifBinary in;
    ERL_NIF_TERM err;
    RepairNifOpts o;
    if (!enif_inspect_binary(env, argv[0], &in)) return dspex_raise_badarg(env, "JSON repair input must be a binary");
    if (!parse_opts(env, argv[1], &o, &err)) return err;
    if (dspex_json_is_valid((const char *)in.data, in.size, o.core.max_depth))
        return dspex_ok(env, argv[0]); /* valid JSON: the same bytes, no copy */
    o.core.skip_valid = 1;
    dspex_repair_result r;
    if (dspex_json_repair((const char *)in.data, in.size, &o.core, &r) != DSPEX_REPAIR_OK) return repair_error(env, &r);
    ERL_NIF_TERM bin = out_binary(env, &r);
    if (enif_has_pending_exception(env, NULL)) return bin;
    return dspex_ok(env, bin);
}

static ERL_NIF_TERM do_extract(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    (void)argc;
    ErlNifBinary in;
    ERL_NIF_TERM err;
    RepairNifOpts o;
    if (!enif_inspect_binary(env, argv[0], &in)) return dspex_raise_badarg(env, "JSON extract input must be a binary");
    if (!parse_opts(env, argv[1], &o, &err)) return err;
    const char *s = (const char *)in.data;
    dspex_repair_result r;
    if (!o.all) {
        if (dspex_json_extract(s, in.size, 0, &o.core, &r) != DSPEX_REPAIR_OK) return repair_error(env, &r);
        ERL_NIF_TERM bin = out_binary(env, &r);
        if (enif_has_pending_exception(env, NULL)) return bin;
        return dspex_ok(env, bin);
    }
    ERL_NIF_TERM list = enif_make_list(env, 0);
    size_t from = 0;
    int found = 0;
    while (from < in.size) {
        int rc = dspex_json_extract(s, in.size, from, &o.core, &r);
        if (rc == DSPEX_REPAIR_ERR_EMPTY) break;
        if (rc != DSPEX_REPAIR_OK) {
            if (found && rc == DSPEX_REPAIR_ERR_SYNTAX) break; /* trailing unrepairable text */
            return repair_error(env, &r);
        }
        size_t end = r.end;
        ERL_NIF_TERM bin = out_binary(env, &r);
        if (enif_has_pending_exception(env, NULL)) return bin;
        list = enif_make_list_cell(env, bin, list);
        found = 1;
        if (end <= from) break; /* defensive: the core always makes progress */
        from = end;
    }
    if (!found) {
        r.err = DSPEX_REPAIR_ERR_EMPTY;
        r.err_msg = "no JSON value found";
        r.err_offset = in.size;
        return repair_error(env, &r);
    }
    ERL_NIF_TERM rev;
    enif_make_reverse_list(env, list, &rev);
    return dspex_ok(env, rev);
}

static dspex_work estimate(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    dspex_work w = {0};
    ErlNifBinary in;
    if (argc == 2 && enif_inspect_binary(env, argv[0], &in)) dspex_work_add(&w, in.size * DSPEX_COST_TEXT_BYTE);
    return w;
}

ERL_NIF_TERM dspex_nif_json_repair(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    dspex_work w = estimate(env, argc, argv);
    return dspex_run(env, &w, "json_repair", do_repair, argc, argv);
}

ERL_NIF_TERM dspex_nif_json_extract(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    dspex_work w = estimate(env, argc, argv);
    return dspex_run(env, &w, "json_extract", do_extract, argc, argv);
}
