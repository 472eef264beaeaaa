/* Shared helpers for the erl_nif bindings: private data (atoms, resource types, the
 * compiled-signature cache), result tuples, binaries, atom text, and the one rule that
 * decides dirty scheduling. Everything here is about terms; the real work is in
 * c_src/core. */
#ifndef DSPEX_NIF_UTIL_H
#define DSPEX_NIF_UTIL_H

#include <erl_nif.h>
#include <stddef.h>

#include "dspex/arena.h"

typedef struct {
#define DSPEX_ATOM(field, text) ERL_NIF_TERM field;
#include "nif_atoms.h"
#undef DSPEX_ATOM
} DspexAtoms;

struct dspex_sig_cache; /* nif_compiled.c */

/* The NIF library's explicit context (enif_priv_data). */
typedef struct {
    DspexAtoms atoms;
    ErlNifResourceType *compiled_type; /* compiled signatures (nif_compiled.c) */
    struct dspex_sig_cache *sig_cache;
    ErlNifResourceType *local_model_type; /* loaded GGUF models (nif_local.c) */
    ErlNifResourceType *local_gen_type;   /* running generations (nif_local.c) */
    ErlNifResourceType *local_grammar_type; /* compiled grammars (nif_grammar.c) */
} DspexNifPriv;

/* At load: the local-inference resource types (nif_local.c). 0 ok. */
int dspex_nif_local_init(ErlNifEnv *env, DspexNifPriv *priv);

/* Prototypes for every NIF in the table. */
#define DSPEX_NIF(name, arity, fun, flags) ERL_NIF_TERM fun(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]);
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
 * raises {:badarg, message} which DSPex.NIF.guard/1 converts to ArgumentError. */
ERL_NIF_TERM dspex_raise_badarg(ErlNifEnv *env, const char *message);

/* The UTF-8 text of an atom, copied into arena a. OTP 25's enif_get_atom only speaks
 * Latin-1, so atoms beyond Latin-1 are read from their external term format. 0 ok, -1
 * when t is not an atom or memory runs out. */
int dspex_atom_text(ErlNifEnv *env, ERL_NIF_TERM t, dspex_arena *a, const char **s, size_t *n);
/* The existing atom with UTF-8 text s (never creates one). 1 found, 0 not an atom. */
int dspex_existing_atom(ErlNifEnv *env, const char *s, size_t n, ERL_NIF_TERM *out);

/* ------------------------------------------------------------------------------------
 * Dirty scheduling: one rule for every NIF (nif_sched.c).
 *
 * A call estimates its work in units of about a nanosecond on a current x86-64 core and
 * runs on a dirty CPU scheduler when the estimate exceeds DSPEX_DIRTY_WORK. The bound is
 * 250 µs: a NIF should hold a normal scheduler well under 1 ms, and this leaves room for
 * a machine 4x slower. The estimate covers the whole input term: every number, atom,
 * list cell, tuple element and map entry costs DSPEX_COST_TERM (what converting and
 * rendering one of them costs, e.g. a float's shortest digits), binaries cost per byte
 * of the operation that reads them, bignums per their size. Costs, measured with
 * bench/adapter.exs and bench/json.exs: */
#define DSPEX_DIRTY_WORK 250000u
#define DSPEX_COST_TERM 60u          /* per term node, converted and rendered */
#define DSPEX_COST_COPY_BYTE 1u      /* a binary copied into a rendered prompt */
#define DSPEX_COST_SCAN_BYTE 4u      /* a linear text pass: JSON decode, instructions */
#define DSPEX_COST_TEXT_BYTE 40u     /* LM text parsed (splitlines, literals, repair worst case) */
#define DSPEX_COST_SIGNATURE_BYTE 30u /* signature/type string parsed */

typedef struct {
    size_t units; /* estimated so far */
} dspex_work;

/* Adds n units; returns 1 once the total is over DSPEX_DIRTY_WORK. */
int dspex_work_add(dspex_work *w, size_t n);
/* Adds the estimate of term t (binary bytes at per_byte each); stops walking as soon as
 * the total is over the bound, so the walk itself is bounded. Returns 1 when over. */
int dspex_work_term(ErlNifEnv *env, dspex_work *w, ERL_NIF_TERM t, unsigned per_byte);
int dspex_work_over(const dspex_work *w);

typedef ERL_NIF_TERM (*dspex_nif_fn)(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]);
/* Runs fun now, or, when w is over the bound and this is a normal scheduler, schedules
 * it as `name` on a dirty CPU scheduler. */
ERL_NIF_TERM dspex_run(ErlNifEnv *env, const dspex_work *w, const char *name, dspex_nif_fn fun, int argc,
                       const ERL_NIF_TERM argv[]);
/* Whether the calling thread is a normal scheduler (work there is bounded). */
int dspex_on_normal_scheduler(void);

#endif
