/* Compiled signatures: a DSPex.Signature turned once into the core's dspex_signature plus
 * its pre-rendered prompt parts, held by an Erlang resource and reused by every adapter
 * call (as exqlite reuses a prepared statement).
 *
 * The resources live in a cache in the NIF's private data, keyed by the signature's id
 * (an integer the Elixir side derives from the signature's content and keeps in its
 * `compiled` field, so a signature stays plain data: it compares, prints, saves and
 * sits in a module attribute like any term) and by its key: the {instructions, inputs,
 * outputs} terms it was compiled from. A call finds the compiled signature only when its
 * own key is identical to the one compiled, so a signature changed without recompiling
 * is never rendered from a stale one; on a miss the Elixir side compiles and calls again.
 *
 * At most DSPEX_SIG_CACHE_MAX compiled signatures are kept; past that the least recently
 * used one (second chance) is dropped and compiled again when next needed. */
#ifndef DSPEX_NIF_COMPILED_H
#define DSPEX_NIF_COMPILED_H

#include "dspex/adapter.h"
#include "nif_util.h"

#define DSPEX_SIG_CACHE_MAX 4096 /* compiled signatures kept (a few KiB each) */

typedef struct dspex_compiled dspex_compiled;
struct dspex_compiled {
    dspex_signature *sig;
    dxa_prepared prep[2];   /* by dxa_adapter */
    ErlNifEnv *env;         /* owns the terms below */
    ERL_NIF_TERM key;       /* what it was compiled from */
    ERL_NIF_TERM *names;    /* field name atoms, by field index */
    dspex_val **name_vals;  /* field names as str values (dict keys), by field index */
    ERL_NIF_TERM *defaults; /* output defaults, by field index; 0 when none */
    unsigned long id;
    int used;               /* second-chance bit (set on every hit) */
    /* The demo messages of the last demos list formatted, by adapter (nif_adapter.c):
     * demo_key[ad] is that list, demo_msgs[ad] its messages, both in demo_env[ad]. */
    ErlNifRWLock *demo_lock;
    ErlNifEnv *demo_env[2];
    ERL_NIF_TERM demo_key[2];
    ERL_NIF_TERM demo_msgs[2];
    dspex_compiled *next;   /* cache bucket chain (under the cache lock) */
};

/* At load: the resource type and an empty cache in priv. 0 ok. */
int dspex_compiled_load(ErlNifEnv *env, DspexNifPriv *priv);
/* At unload: drops the cache. */
void dspex_compiled_unload(DspexNifPriv *priv);

/* The compiled signature with this id compiled from `key`, kept alive until
 * dspex_compiled_release; NULL when there is none (never compiled, dropped, or the key
 * differs: stale). */
dspex_compiled *dspex_compiled_acquire(ErlNifEnv *env, ERL_NIF_TERM id, ERL_NIF_TERM key);
void dspex_compiled_release(dspex_compiled *c);

#endif
