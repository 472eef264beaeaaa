/* Shared helpers for the erl_nif bindings: private data (atoms), result tuples,
 * binary conversion. Everything here is about terms; the real work is in c_src/core. */
#ifndef DSPEX_NIF_UTIL_H
#define DSPEX_NIF_UTIL_H

#include <erl_nif.h>
#include <stddef.h>

typedef struct {
#define DSPEX_ATOM(field, text) ERL_NIF_TERM field;
#include "nif_atoms.h"
#undef DSPEX_ATOM
} DspexAtoms;

/* The NIF library's explicit context (enif_priv_data): atoms and resource types. */
typedef struct {
    DspexAtoms atoms;
    ErlNifResourceType *res_types[8]; /* concerns register resource types here at load */
} DspexNifPriv;

/* Prototypes for every NIF in the table. */
#define DSPEX_NIF(name, arity, fun, flags) \
    ERL_NIF_TERM fun(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]);
#include "nif_table.h"
#undef DSPEX_NIF

const DspexAtoms *dspex_atoms(ErlNifEnv *env);
DspexNifPriv *dspex_priv(ErlNifEnv *env);

/* {ok, Term} */
ERL_NIF_TERM dspex_ok(ErlNifEnv *env, ERL_NIF_TERM term);

/* {error, {Type, MessageBinary, Position}} where Position is an integer byte offset or
 * column (or nil when pos < 0). The Elixir side turns it into %DSPex.Error{}. */
ERL_NIF_TERM dspex_error(ErlNifEnv *env, ERL_NIF_TERM type, const char *message, long pos);

/* A fresh binary term holding a copy of buf[0..len). Returns enif_raise_exception with
 * :out_of_memory if allocation fails. */
ERL_NIF_TERM dspex_make_binary(ErlNifEnv *env, const char *buf, size_t len);

/* Raise ArgumentError-compatible badarg with a message a user can act on:
 * raises {:badarg, message} which lib/dspex/nif.ex converts to ArgumentError. */
ERL_NIF_TERM dspex_raise_badarg(ErlNifEnv *env, const char *message);

#endif
