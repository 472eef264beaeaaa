defmodule DSPex.NIF do
  @moduledoc false
  # The raw NIF module (c_src/nif/). Function names and arities mirror
  # c_src/nif/nif_table.h. Public modules wrap these and turn
  # `{:error, {type, message, position}}` into `%DSPex.Error{}` via `wrap_error/2`.

  @compile {:autoload, false}
  @on_load :load_nif

  for file <- Path.wildcard(Path.join(__DIR__, "../../c_src/**/*.{c,h}")) do
    @external_resource file
  end

  @doc false
  def load_nif do
    path = :filename.join(:code.priv_dir(:dspex), ~c"dspex_nif")
    :erlang.load_nif(path, 0)
  end

  @doc false
  def nif_loaded, do: :erlang.nif_error(:not_loaded)

  # JSON codec
  def json_decode(_bin, _opts), do: :erlang.nif_error(:not_loaded)
  def json_encode(_term, _opts), do: :erlang.nif_error(:not_loaded)

  # JSON repair / extraction
  def json_repair(_bin, _opts), do: :erlang.nif_error(:not_loaded)
  def json_extract(_bin, _opts), do: :erlang.nif_error(:not_loaded)

  # Signatures
  def signature_parse(_bin), do: :erlang.nif_error(:not_loaded)

  # Adapters (nif_adapter.c)
  def adapter_format(_adapter, _sig, _demos, _inputs), do: :erlang.nif_error(:not_loaded)

  def adapter_format_assistant(_adapter, _sig, _outputs, _missing),
    do: :erlang.nif_error(:not_loaded)

  def adapter_parse(_adapter, _sig, _text), do: :erlang.nif_error(:not_loaded)
  def adapter_parse_value(_type, _text), do: :erlang.nif_error(:not_loaded)

  # SHA-256 (nif_hash.c)
  def sha256(_bin), do: :erlang.nif_error(:not_loaded)

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
