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
end
