defmodule DSPex.JSON.Repair do
  @moduledoc """
  Extraction and repair of JSON in LM output (skeleton).
  """

  @doc "Repairs `text` into valid JSON text."
  @spec repair(binary, keyword) :: {:ok, binary} | {:error, DSPex.Error.t()}
  def repair(text, _opts \\ []) when is_binary(text) do
    {:error, DSPex.Error.new(:json_repair, "not implemented")}
  end

  @doc "Extracts the first JSON value in `text`."
  @spec extract(binary, keyword) :: {:ok, term} | {:error, DSPex.Error.t()}
  def extract(text, _opts \\ []) when is_binary(text) do
    {:error, DSPex.Error.new(:json_repair, "not implemented")}
  end
end
