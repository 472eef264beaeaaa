/* Elixir terms <-> the core's values and types: the plain tagged data the NIF boundary
 * takes (never struct internals).
 *
 * Values (adapter inputs, demos, outputs; Literal/Enum values; constraint values):
 *   binary (str), nil, true/false, other atoms (their names as str), integers (any size),
 *   floats, lists, tuples, maps (non-struct), {:ordered, [{k, v}]} (a dict in that order),
 *   and {:__dspex__, Tag, Payload} for what Elixir has no plain form of:
 *   Tag :set / :frozenset (Payload a list), :history (a list of message maps),
 *   :datetime / :date (Payload ISO 8601 text as pydantic writes it).
 * A struct (a map with :__struct__) is not plain data: conversion stops with NT_STRUCT and
 * the Elixir side converts it (DSPex.Adapter.Native.plain/1) and calls again.
 *
 * Types: see DSPex.Signature.Field's type terms. */
#ifndef DSPEX_NIF_TERMS_H
#define DSPEX_NIF_TERMS_H

#include "dspex/type.h"
#include "dspex/value.h"
#include "nif_util.h"

#define NT_MAX_DEPTH 200 /* nesting of a value term */

typedef enum { NT_OK = 0, NT_BAD = 1, NT_STRUCT = 2, NT_OOM = 3 } nt_status;

typedef struct {
    ErlNifEnv *env;
    const DspexAtoms *at;
    dspex_arena *a;
    dspex_work *work; /* NULL: unmetered; else each node is charged */
    const char *err;  /* NT_BAD: what was wrong */
    nt_status status;
} nt_ctx;

/* term -> value. Binaries are referenced, not copied (valid while the call runs). */
dspex_val *nt_to_val(nt_ctx *c, ERL_NIF_TERM t, int depth);
/* A top-level demo/inputs/outputs map as a dict holding only the given fields: for each
 * i < n with names[i] (an atom) in the map, keys[i] -> its value. The adapters read
 * nothing else (as DSPy reads only the signature's fields), so other keys are neither
 * converted nor charged. NULL with c->status set when `map` is not a map (NT_BAD), a struct
 * (NT_STRUCT), or a value fails. */
dspex_val *nt_record(nt_ctx *c, ERL_NIF_TERM map, const ERL_NIF_TERM *names, dspex_val *const *keys, size_t n);
/* term -> type (validated and normalised); NULL with c->err/status set. */
dspex_type *nt_to_type(nt_ctx *c, ERL_NIF_TERM t, int depth);

/* value -> term. Sets/frozensets/datetimes/dates come out as {:__dspex__, Tag, Payload}
 * and set *tagged. 0 on success, -1 when out of memory. */
int nt_from_val(ErlNifEnv *env, const dspex_val *v, ERL_NIF_TERM *out, int *tagged);
/* The same; with `ordered`, dicts come out as {:ordered, [{k, v}]} in their key order. */
int nt_from_val_as(ErlNifEnv *env, const dspex_val *v, int ordered, ERL_NIF_TERM *out, int *tagged);
/* type -> canonical term. 0 ok, -1 out of memory. */
int nt_from_type(ErlNifEnv *env, const dspex_type *t, ERL_NIF_TERM *out);

#endif
