defmodule DSPex.Error do
  @moduledoc """
  The one error type of DSPex.

  Every function that can fail returns `{:error, %DSPex.Error{}}` (and its bang variant
  raises the same struct). Match on `type`, read `message` for a human explanation and
  `details` for machine-readable context (byte offsets, columns, HTTP status, ...).

  Types used across the package include `:json_decode`, `:json_encode`, `:json_repair`,
  `:signature_parse`, `:adapter_parse`, `:auth`, `:rate_limit`, `:timeout`,
  `:context_window`, `:bad_request`, `:server`, `:network`, `:port_exited`,
  `:circuit_open`.

  ## Examples

      iex> err = DSPex.Error.new(:json_decode, "unexpected end of input", %{offset: 3})
      iex> err.type
      :json_decode
      iex> Exception.message(err)
      "unexpected end of input"
  """

  defexception type: :error, message: "error", details: %{}

  @type t :: %__MODULE__{type: atom, message: String.t(), details: map}

  @doc """
  Builds an error of `type` with `message` and optional `details`.

  ## Examples

      iex> DSPex.Error.new(:timeout, "no reply in 50 ms").type
      :timeout
  """
  @spec new(atom, String.t(), map) :: t
  def new(type, message, details \\ %{})
      when is_atom(type) and is_binary(message) and is_map(details) do
    %__MODULE__{type: type, message: message, details: details}
  end

  # Exceptions whose message is text chosen by whoever raised it, not an embedded term
  # (MatchError, CaseClauseError, KeyError, ... quote the value they failed on).
  @text_exceptions [
    __MODULE__,
    RuntimeError,
    ArgumentError,
    ArithmeticError,
    SystemLimitError,
    UndefinedFunctionError,
    FunctionClauseError,
    File.Error
  ]

  @doc """
  Describes an exit reason, thrown value or exception for an error message without
  showing data it may carry: atoms, numbers and the shape of tuples and lists are kept;
  binaries, maps, the arguments of `{module, function, args}` calls and anything nested
  deeper than four levels are not. Exit reasons of a failed `GenServer.call/3` carry the
  request (headers with an API key, prompts); this keeps them out of messages and logs.

  ## Examples

      iex> DSPex.Error.describe({:timeout, {GenServer, :call, [self(), %{headers: [{"authorization", "Bearer sk-1"}]}, 5000]}})
      "{:timeout, {GenServer, :call, <3 args>}}"
      iex> DSPex.Error.describe({:bad_reply, "Bearer sk-1"})
      "{:bad_reply, <binary, 11 bytes>}"
      iex> DSPex.Error.describe(%RuntimeError{message: "boom"})
      "RuntimeError: boom"
      iex> DSPex.Error.describe(%MatchError{term: "sk-secret"})
      "MatchError"
  """
  @spec describe(term) :: binary
  def describe(reason), do: describe(reason, 4)

  defp describe(%mod{__exception__: true} = e, _depth) do
    if mod in @text_exceptions,
      do: inspect(mod) <> ": " <> Exception.message(e),
      else: inspect(mod)
  end

  defp describe(_term, 0), do: "..."

  defp describe(term, _depth)
       when is_atom(term) or is_number(term) or is_pid(term) or is_reference(term) or
              is_port(term) or is_function(term),
       do: inspect(term)

  defp describe(bin, _depth) when is_binary(bin), do: "<binary, #{byte_size(bin)} bytes>"
  defp describe(%_{} = struct, _depth), do: "%#{inspect(struct.__struct__)}{...}"
  defp describe(map, _depth) when is_map(map), do: "%{<#{map_size(map)} keys>}"

  defp describe({m, f, args}, _depth) when is_atom(m) and is_atom(f) and is_list(args),
    do: "{#{inspect(m)}, #{inspect(f)}, <#{length(args)} args>}"

  defp describe(tuple, depth) when is_tuple(tuple),
    do: "{" <> Enum.map_join(Tuple.to_list(tuple), ", ", &describe(&1, depth - 1)) <> "}"

  defp describe(list, depth) when is_list(list) do
    {shown, rest} = Enum.split(list, 5)
    more = if rest == [], do: [], else: ["..."]
    "[" <> Enum.join(Enum.map(shown, &describe(&1, depth - 1)) ++ more, ", ") <> "]"
  rescue
    # an improper list
    _ -> "[...]"
  end

  defp describe(_other, _depth), do: "..."
end
