/* SHA-256 NIF (cache keys). Inputs over 64 KiB hop to a dirty CPU scheduler. */
#include "dspex/sha256.h"
#include "nif_util.h"

#define DSPEX_HASH_DIRTY_THRESHOLD (64 * 1024)

static ERL_NIF_TERM sha256_run(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    (void)argc;
    ErlNifBinary in, out;
    if (!enif_inspect_binary(env, argv[0], &in)) return dspex_raise_badarg(env, "sha256/1 expects a binary");
    if (!enif_alloc_binary(DSPEX_SHA256_DIGEST_LEN, &out))
        return enif_raise_exception(env, dspex_atoms(env)->out_of_memory);
    dspex_sha256(in.data, in.size, out.data);
    return enif_make_binary(env, &out);
}

ERL_NIF_TERM dspex_nif_sha256(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    ErlNifBinary in;
    if (!enif_inspect_binary(env, argv[0], &in)) return dspex_raise_badarg(env, "sha256/1 expects a binary");
    if (in.size > DSPEX_HASH_DIRTY_THRESHOLD)
        return enif_schedule_nif(env, "sha256_dirty", ERL_NIF_DIRTY_JOB_CPU_BOUND, sha256_run, argc, argv);
    return sha256_run(env, argc, argv);
}
