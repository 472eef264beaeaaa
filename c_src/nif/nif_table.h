/* The NIF function table, one line per exported function.
 *
 *   DSPEX_NIF(erlang_name, arity, c_function, flags)
 *
 * flags: 0 for calls that always finish well under 1 ms, ERL_NIF_DIRTY_JOB_CPU_BOUND for
 * anything that can run longer (or schedule onto a dirty scheduler from a normal entry
 * point with enif_schedule_nif when the input is large). The Elixir stubs live in
 * lib/dspex/nif.ex and must list the same names and arities.
 *
 * Included by dspex_nif.c (to build the table) and nif_util.h (to declare prototypes).
 */
DSPEX_NIF(nif_loaded, 0, dspex_nif_loaded, 0)

/* JSON codec (nif_json.c) */
DSPEX_NIF(json_decode, 2, dspex_nif_json_decode, 0)
DSPEX_NIF(json_encode, 2, dspex_nif_json_encode, 0)

/* JSON repair and extraction (nif_repair.c) */
DSPEX_NIF(json_repair, 2, dspex_nif_json_repair, 0)
DSPEX_NIF(json_extract, 2, dspex_nif_json_extract, 0)

/* Signature parser (nif_signature.c) */
DSPEX_NIF(signature_parse, 1, dspex_nif_signature_parse, 0)

/* Adapters (nif_adapter.c): large inputs reschedule onto a dirty CPU scheduler */
DSPEX_NIF(adapter_format, 4, dspex_nif_adapter_format, 0)
DSPEX_NIF(adapter_format_assistant, 4, dspex_nif_adapter_format_assistant, 0)
DSPEX_NIF(adapter_parse, 3, dspex_nif_adapter_parse, 0)
DSPEX_NIF(adapter_parse_value, 2, dspex_nif_adapter_parse_value, 0)

/* SHA-256 for cache keys (nif_hash.c); dirty above 64 KiB via enif_schedule_nif */
DSPEX_NIF(sha256, 1, dspex_nif_sha256, 0)

/* CPython random.Random (nif_random.c): state in, {result, state} out */
DSPEX_NIF(random_seed_int, 1, dspex_nif_random_seed_int, 0)
DSPEX_NIF(random_random, 1, dspex_nif_random_random, 0)
DSPEX_NIF(random_getrandbits, 2, dspex_nif_random_getrandbits, 0)
DSPEX_NIF(random_below, 2, dspex_nif_random_below, 0)
DSPEX_NIF(random_shuffle, 2, dspex_nif_random_shuffle, 0)
DSPEX_NIF(random_sample, 3, dspex_nif_random_sample, 0)
DSPEX_NIF(random_choices, 4, dspex_nif_random_choices, 0)

/* Metrics (nif_metrics.c): single calls reschedule onto a dirty CPU scheduler above
 * 4 KiB of input; batches always run there */
DSPEX_NIF(metrics_normalize, 1, dspex_nif_metrics_normalize, 0)
DSPEX_NIF(metrics_score, 3, dspex_nif_metrics_score, 0)
DSPEX_NIF(metrics_batch, 3, dspex_nif_metrics_batch, ERL_NIF_DIRTY_JOB_CPU_BOUND)

/* Local GGUF inference (nif_local.c): model and generation resources; long calls run on
 * dirty CPU schedulers; generation advances in slices of ~budget_ms per call */
DSPEX_NIF(local_load, 2, dspex_nif_local_load, ERL_NIF_DIRTY_JOB_CPU_BOUND)
DSPEX_NIF(local_inspect, 1, dspex_nif_local_inspect, ERL_NIF_DIRTY_JOB_CPU_BOUND)
DSPEX_NIF(local_info, 1, dspex_nif_local_info, 0)
DSPEX_NIF(local_tokenize, 4, dspex_nif_local_tokenize, 0)
DSPEX_NIF(local_detokenize, 3, dspex_nif_local_detokenize, 0)
DSPEX_NIF(local_chat_render, 4, dspex_nif_local_chat_render, 0)
DSPEX_NIF(local_eval_logprobs, 4, dspex_nif_local_eval_logprobs, ERL_NIF_DIRTY_JOB_CPU_BOUND)
DSPEX_NIF(local_gen_new, 3, dspex_nif_local_gen_new, ERL_NIF_DIRTY_JOB_CPU_BOUND)
DSPEX_NIF(local_gen_step, 2, dspex_nif_local_gen_step, ERL_NIF_DIRTY_JOB_CPU_BOUND)

/* Nearest neighbours (nif_knn.c): dirty above 2^18 multiply-adds via enif_schedule_nif */
DSPEX_NIF(knn_search, 4, dspex_nif_knn_search, 0)
