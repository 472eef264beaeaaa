defmodule DSPex.Tool.Args do
  @moduledoc false
  # The type model's side of tools: validating an argument value against a parameter's
  # type term. The rules are the C type model's (pydantic lax mode, as for parsed LM
  # outputs); this module only adapts a decoded JSON value to that entry point.

  alias DSPex.NIF

  @doc false
  @spec validate(term, term) :: {:ok, term} | {:error, binary}
  def validate(:any, value), do: {:ok, value}
  def validate(:str, value) when is_binary(value), do: {:ok, value}
  def validate(:str, _value), do: {:error, "Input should be a valid string"}

  def validate(type, value) do
    with {:ok, json} <- DSPex.JSON.encode(value),
         {:ok, v} <- NIF.guard(fn -> NIF.adapter_parse_value(type, json) end) do
      {:ok, v}
    else
      {:error, %DSPex.Error{message: m}} -> {:error, m}
      {:error, {_type, message, _pos}} -> {:error, message}
    end
  end
end
