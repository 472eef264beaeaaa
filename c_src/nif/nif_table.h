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
