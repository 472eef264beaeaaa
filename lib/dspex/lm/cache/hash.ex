defmodule DSPex.Hash do
  @moduledoc """
  SHA-256 for cache keys, from OTP's `:crypto` (OpenSSL; already loaded by DSPex).

  `:crypto.hash/2` is a NIF that yields the scheduler on large inputs, so hashing a long
  prompt never blocks a normal scheduler.

  ## Examples

      iex> DSPex.Hash.sha256_hex("abc")
      "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
  """

  @doc """
  The 32-byte SHA-256 digest of `data` (a binary or iodata).

  ## Examples

      iex> byte_size(DSPex.Hash.sha256(["a", ?b, "c"]))
      32
  """
  @spec sha256(iodata) :: <<_::256>>
  def sha256(data) when is_binary(data), do: :crypto.hash(:sha256, data)

  def sha256(data) when is_list(data) do
    :crypto.hash(:sha256, IO.iodata_to_binary(data))
  rescue
    ArgumentError -> not_iodata!(data)
  end

  def sha256(other), do: not_iodata!(other)

  defp not_iodata!(other) do
    raise ArgumentError,
          "DSPex.Hash.sha256/1 expects a binary or iodata, got: #{inspect(other, limit: 5)}"
  end

  @doc """
  The SHA-256 digest of `data` as 64 lowercase hex characters.

  ## Examples

      iex> DSPex.Hash.sha256_hex("")
      "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
  """
  @spec sha256_hex(iodata) :: binary
  def sha256_hex(data), do: data |> sha256() |> Base.encode16(case: :lower)
end
