defmodule DSPex.NIF do
  @moduledoc false
  # The raw NIF module (c_src/nif/). Function names and arities mirror
  # c_src/nif/nif_table.h. Public modules wrap these and turn
  # `{:error, {type, message, position}}` into `%DSPex.Error{}` via `wrap_error/2`.
  #
  # Every NIF starts on a normal scheduler and moves itself to a dirty CPU scheduler when
  # its estimated work is over one bound (c_src/nif/nif_util.h, DSPEX_DIRTY_WORK).

  @compile {:autoload, false}
  @on_load :load_nif

  for file <- Path.wildcard(Path.join(__DIR__, "../../c_src/**/*.{c,h}")) do
    @external_resource file
  end

  @typedoc "A NIF error: `{type, message, position}` (position: byte offset, column or nil)."
  @type nif_error :: {atom, binary, term}
  @typedoc "A type term (see `DSPex.Signature.Field`)."
  @type type_term :: term
  @typedoc "A compiled signature's id (see DSPex.Signature.compile/1) or nil."
  @type compiled :: non_neg_integer | nil
  @typedoc "The terms a compiled signature was made from: `{instructions, inputs, outputs}`."
  @type compile_key :: {binary, list, list}
  @typedoc "A tool parameter: `{name, type, {:value, default} | nil, desc | nil}`."
  @type tool_param :: {binary, type_term, {:value, term} | nil, binary | nil}

  @doc false
  def load_nif do
    path = :filename.join(:code.priv_dir(:dspex), ~c"dspex_nif")
    :erlang.load_nif(path, 0)
  end

  @spec nif_loaded() :: true
  def nif_loaded, do: :erlang.nif_error(:not_loaded)

  # JSON codec (nif_json.c)
  @spec json_decode(binary, {integer, pos_integer}) :: {:ok, term} | {:error, nif_error}
  def json_decode(_bin, _opts), do: :erlang.nif_error(:not_loaded)
  @spec json_encode(term, {integer, pos_integer}) :: {:ok, binary} | {:error, nif_error}
  def json_encode(_term, _opts), do: :erlang.nif_error(:not_loaded)

  # JSON repair / extraction (nif_repair.c)
  @spec json_repair(binary, map) :: {:ok, binary} | {:error, nif_error}
  def json_repair(_bin, _opts), do: :erlang.nif_error(:not_loaded)
  @spec json_extract(binary, map) :: {:ok, binary | [binary]} | {:error, nif_error}
  def json_extract(_bin, _opts), do: :erlang.nif_error(:not_loaded)

  # Signatures and the type model (nif_signature.c)
  @spec signature_parse(binary, :string | :class) ::
          {:ok, {list, list}} | {:error, nif_error}
  def signature_parse(_bin, _mode), do: :erlang.nif_error(:not_loaded)

  @spec type_normalize(type_term | binary, :string | :class) ::
          {:ok, type_term} | {:error, nif_error}
  def type_normalize(_type, _mode), do: :erlang.nif_error(:not_loaded)
  @spec type_text(type_term, :name | :string | :json_schema) :: binary
  def type_text(_type, _what), do: :erlang.nif_error(:not_loaded)
  @spec value_text(term, :str | :repr) :: binary
  def value_text(_value, _what), do: :erlang.nif_error(:not_loaded)
  @spec type_validate(type_term, term) :: {:ok, term} | {:ok_tagged, term} | {:error, binary}
  def type_validate(_type, _value), do: :erlang.nif_error(:not_loaded)
  @spec constraints_text(keyword) :: binary
  def constraints_text(_constraints), do: :erlang.nif_error(:not_loaded)
  @spec infer_prefix(binary) :: binary
  def infer_prefix(_name), do: :erlang.nif_error(:not_loaded)
  @spec field_name_valid(binary) :: boolean
  def field_name_valid(_name), do: :erlang.nif_error(:not_loaded)
  @spec cleandoc(binary) :: binary
  def cleandoc(_text), do: :erlang.nif_error(:not_loaded)

  # Tools (nif_tool.c)
  @spec tool_text(binary, binary | nil, [tool_param]) :: binary
  def tool_text(_name, _desc, _params), do: :erlang.nif_error(:not_loaded)
  @spec tool_args([tool_param]) :: {:ordered, [{binary, term}]}
  def tool_args(_params), do: :erlang.nif_error(:not_loaded)

  # Compiled signatures (nif_compiled.c)
  @spec signature_compile(non_neg_integer, compile_key, {binary, list}) :: :ok
  def signature_compile(_id, _key, _plain), do: :erlang.nif_error(:not_loaded)

  # Adapters (nif_adapter.c)
  @spec adapter_format(:chat | :json, compiled, compile_key, [map], map) ::
          {:ok, [%{role: binary, content: binary}]} | :stale | :plain
  def adapter_format(_adapter, _id, _key, _demos, _inputs), do: :erlang.nif_error(:not_loaded)

  @spec adapter_format_assistant(:chat | :json, compiled, compile_key, map, binary | nil) ::
          {:ok, binary} | :stale | :plain
  def adapter_format_assistant(_adapter, _id, _key, _outputs, _missing),
    do: :erlang.nif_error(:not_loaded)

  @spec adapter_format_user(:chat | :json, compiled, compile_key, map) ::
          {:ok, binary} | :stale | :plain
  def adapter_format_user(_adapter, _id, _key, _inputs), do: :erlang.nif_error(:not_loaded)

  @spec adapter_parse(:chat | :json, compiled, compile_key, binary, boolean) ::
          {:ok, map} | {:ok_tagged, map} | {:error, {atom, binary, tuple}} | :stale
  def adapter_parse(_adapter, _id, _key, _text, _ordered), do: :erlang.nif_error(:not_loaded)

  @spec adapter_parse_value(type_term, binary) ::
          {:ok, term} | {:ok_tagged, term} | {:error, nif_error}
  def adapter_parse_value(_type, _text), do: :erlang.nif_error(:not_loaded)

  # Metrics (nif_metrics.c)
  def metrics_normalize(_text), do: :erlang.nif_error(:not_loaded)
  def metrics_score(_metric, _preds, _golds), do: :erlang.nif_error(:not_loaded)
  def metrics_batch(_metric, _preds, _golds), do: :erlang.nif_error(:not_loaded)

  # Local GGUF inference (nif_local.c); wrapped by DSPex.Local
  def local_load(_path, _opts), do: :erlang.nif_error(:not_loaded)
  def local_inspect(_path), do: :erlang.nif_error(:not_loaded)
  def local_info(_model), do: :erlang.nif_error(:not_loaded)

  def local_tokenize(_model, _text, _add_special, _parse_special),
    do: :erlang.nif_error(:not_loaded)

  def local_detokenize(_model, _ids, _special), do: :erlang.nif_error(:not_loaded)

  def local_chat_render(_model, _messages, _template, _add_assistant),
    do: :erlang.nif_error(:not_loaded)

  def local_eval_logprobs(_model, _ids, _top, _n_ctx), do: :erlang.nif_error(:not_loaded)
  def local_gen_new(_model, _ids, _params), do: :erlang.nif_error(:not_loaded)
  def local_gen_step(_gen, _budget_ms), do: :erlang.nif_error(:not_loaded)
  def local_grammar(_model, _spec, _limits), do: :erlang.nif_error(:not_loaded)
  def local_grammar_match(_grammar, _text), do: :erlang.nif_error(:not_loaded)
  def local_grammar_stats(_grammar), do: :erlang.nif_error(:not_loaded)
  def local_grammar_sample(_grammar, _max_tokens, _seed), do: :erlang.nif_error(:not_loaded)
  def local_embed(_model, _ids, _pooling, _normalize), do: :erlang.nif_error(:not_loaded)

  # Shared-prefix reuse and continuous batching (nif_local.c); driven by DSPex.Local.Batcher
  def local_stats(_model), do: :erlang.nif_error(:not_loaded)
  def local_driver(_model), do: :erlang.nif_error(:not_loaded)
  def local_driver_claim(_model, _expected, _pid), do: :erlang.nif_error(:not_loaded)
  def local_batch_join(_model, _gen, _id), do: :erlang.nif_error(:not_loaded)
  def local_batch_leave(_model, _gen), do: :erlang.nif_error(:not_loaded)
  def local_batch_step(_model, _budget_ms), do: :erlang.nif_error(:not_loaded)

  @doc false
  # Converts a NIF error triple into a %DSPex.Error{}. `position` is a byte offset or
  # column depending on the error type; callers name it via `pos_key`.
  @spec wrap_error({atom, binary, integer | nil}, atom) :: DSPex.Error.t()
  def wrap_error({type, message, pos}, pos_key \\ :offset) do
    details = if is_integer(pos), do: %{pos_key => pos}, else: %{}
    DSPex.Error.new(type, message, details)
  end

  @doc false
  # Runs `fun` (a NIF call), turning `{:badarg, message}` raised by C into an
  # ArgumentError with that message. A function rather than a macro, so callers need not
  # load this module (and run its @on_load) at compile time.
  @spec guard((() -> result)) :: result when result: term
  def guard(fun) when is_function(fun, 0) do
    fun.()
  catch
    :error, {:badarg, msg} when is_binary(msg) ->
      reraise ArgumentError, [message: msg], __STACKTRACE__
  end

  # CPython random.Random (nif_random.c); DSPex.Random wraps these
  def random_seed_int(_le_magnitude), do: :erlang.nif_error(:not_loaded)
  def random_random(_state), do: :erlang.nif_error(:not_loaded)
  def random_getrandbits(_state, _k), do: :erlang.nif_error(:not_loaded)
  def random_below(_state, _n), do: :erlang.nif_error(:not_loaded)
  def random_shuffle(_state, _list), do: :erlang.nif_error(:not_loaded)
  def random_sample(_state, _list, _k), do: :erlang.nif_error(:not_loaded)
  def random_choices(_state, _list, _cum_weights, _k), do: :erlang.nif_error(:not_loaded)

  # Nearest neighbours (nif_knn.c); DSPex.KNN wraps it
  def knn_search(_rows, _dim, _queries, _k), do: :erlang.nif_error(:not_loaded)
end
