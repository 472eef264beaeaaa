/* Atoms created once at load time and kept in the NIF's private data.
 * One line per atom: DSPEX_ATOM(c_field_name, "erlang_text"). Access as
 * dspex_atoms(env)->c_field_name. Add the atoms your concern needs here. */
DSPEX_ATOM(ok, "ok")
DSPEX_ATOM(error, "error")
DSPEX_ATOM(nil, "nil")
DSPEX_ATOM(true_, "true")
DSPEX_ATOM(false_, "false")
DSPEX_ATOM(not_implemented, "not_implemented")
DSPEX_ATOM(badarg, "badarg")
DSPEX_ATOM(out_of_memory, "out_of_memory")
DSPEX_ATOM(message, "message")
DSPEX_ATOM(offset, "offset")
DSPEX_ATOM(column, "column")
DSPEX_ATOM(json_decode, "json_decode")
DSPEX_ATOM(json_encode, "json_encode")
DSPEX_ATOM(json_repair, "json_repair")
DSPEX_ATOM(signature_parse, "signature_parse")
