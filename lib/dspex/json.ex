defmodule DSPex.JSON do
  @moduledoc """
  DSPex's JSON: a C codec (decode/encode) plus LM-output extraction and repair.

  (Skeleton: decode/encode land with the JSON codec; repair/extract are documented in
  `DSPex.JSON.Repair`.)
  """

  @doc "Repairs broken JSON text. See `DSPex.JSON.Repair.repair/2`."
  defdelegate repair(text, opts \\ []), to: DSPex.JSON.Repair

  @doc "Extracts the first JSON value from text. See `DSPex.JSON.Repair.extract/2`."
  defdelegate extract(text, opts \\ []), to: DSPex.JSON.Repair
end
