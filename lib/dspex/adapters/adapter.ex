defmodule DSPex.Adapter do
  @moduledoc """
  Adapters turn a signature, demos and inputs into chat messages, and an LM completion
  back into output fields. `DSPex.Adapter.Chat` (default) and `DSPex.Adapter.JSON` render
  byte-identically to DSPy 3.3.1's ChatAdapter and JSONAdapter.
  """

  @type message :: %{role: binary, content: binary}

  @doc "Renders the full message list: system, demos, history, current user turn."
  @callback format(DSPex.Signature.t(), demos :: [map], inputs :: map, opts :: keyword) ::
              [message]

  @doc "Parses completion text into a map of output field name (atom) to value."
  @callback parse(DSPex.Signature.t(), completion :: binary) ::
              {:ok, %{atom => term}} | {:error, DSPex.Error.t()}

  @doc "Renders output values as an assistant message (used for demos and scripted LMs)."
  @callback format_assistant_message(DSPex.Signature.t(), outputs :: map) :: binary
end
