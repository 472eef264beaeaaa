/* The NIF function table, one line per exported function.
 *
 *   DSPEX_NIF(erlang_name, arity, c_function, flags)
 *
 * Every function starts on a normal scheduler (flags 0): each estimates its work with the
 * one rule in nif_util.h (dspex_work, dspex_run) and moves itself to a dirty CPU
 * scheduler when that is over DSPEX_DIRTY_WORK. The Elixir stubs live in lib/dspex/nif.ex
 * and must list the same names and arities.
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

/* Signatures and the type model (nif_signature.c) */
DSPEX_NIF(signature_parse, 2, dspex_nif_signature_parse, 0)
DSPEX_NIF(type_normalize, 2, dspex_nif_type_normalize, 0)
DSPEX_NIF(type_text, 2, dspex_nif_type_text, 0)
DSPEX_NIF(value_text, 2, dspex_nif_value_text, 0)
DSPEX_NIF(type_validate, 2, dspex_nif_type_validate, 0)
DSPEX_NIF(constraints_text, 1, dspex_nif_constraints_text, 0)
DSPEX_NIF(infer_prefix, 1, dspex_nif_infer_prefix, 0)
DSPEX_NIF(field_name_valid, 1, dspex_nif_field_name_valid, 0)
DSPEX_NIF(cleandoc, 1, dspex_nif_cleandoc, 0)

/* Tools (nif_tool.c): dspy.Tool's text and argument schemas */
DSPEX_NIF(tool_text, 3, dspex_nif_tool_text, 0)
DSPEX_NIF(tool_args, 1, dspex_nif_tool_args, 0)

/* Compiled signatures (nif_compiled.c) */
DSPEX_NIF(signature_compile, 3, dspex_nif_signature_compile, 0)

/* Adapters (nif_adapter.c) */
DSPEX_NIF(adapter_format, 5, dspex_nif_adapter_format, 0)
DSPEX_NIF(adapter_format_assistant, 5, dspex_nif_adapter_format_assistant, 0)
DSPEX_NIF(adapter_format_user, 4, dspex_nif_adapter_format_user, 0)
DSPEX_NIF(adapter_parse, 5, dspex_nif_adapter_parse, 0)
DSPEX_NIF(adapter_parse_value, 2, dspex_nif_adapter_parse_value, 0)

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

/* Grammar-constrained decoding (nif_grammar.c): grammars compile and sample on a dirty CPU
 * scheduler; a match schedules by the one rule */
DSPEX_NIF(local_grammar, 3, dspex_nif_local_grammar, ERL_NIF_DIRTY_JOB_CPU_BOUND)
DSPEX_NIF(local_grammar_match, 2, dspex_nif_local_grammar_match, 0)
DSPEX_NIF(local_grammar_stats, 1, dspex_nif_local_grammar_stats, 0)
DSPEX_NIF(local_grammar_sample, 3, dspex_nif_local_grammar_sample, ERL_NIF_DIRTY_JOB_CPU_BOUND)

/* Embeddings of local models (nif_local.c): one text per call, dirty CPU */
DSPEX_NIF(local_embed, 4, dspex_nif_local_embed, ERL_NIF_DIRTY_JOB_CPU_BOUND)

/* Shared-prefix reuse and continuous batching of local models (nif_local.c): the batch
 * step is dirty CPU; joining, leaving, the driver pid and the counters are O(1) */
DSPEX_NIF(local_stats, 1, dspex_nif_local_stats, 0)
DSPEX_NIF(local_driver, 1, dspex_nif_local_driver, 0)
DSPEX_NIF(local_driver_claim, 3, dspex_nif_local_driver_claim, 0)
DSPEX_NIF(local_batch_join, 3, dspex_nif_local_batch_join, 0)
DSPEX_NIF(local_batch_leave, 2, dspex_nif_local_batch_leave, 0)
DSPEX_NIF(local_batch_step, 2, dspex_nif_local_batch_step, ERL_NIF_DIRTY_JOB_CPU_BOUND)

/* Nearest neighbours (nif_knn.c) */
DSPEX_NIF(knn_search, 4, dspex_nif_knn_search, 0)
