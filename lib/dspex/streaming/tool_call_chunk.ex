defmodule DSPex.ToolCallChunk do
  @moduledoc """
  One piece of a native tool call, yielded by `DSPex.stream/3` while an LM streams a
  reply with tool calls (`use_native_function_calling: true`).

    * `predictor` — the predictor's name (`"self"`, ...);
    * `index` — which call of the reply (from 0);
    * `id`, `name` — the call's id and tool name, on the call's first piece (`nil` after);
    * `arguments` — the next piece of the call's JSON arguments.

  Joining the `arguments` of one `index` gives the call's JSON text; the final
  prediction holds the parsed calls (`DSPex.ToolCalls`).

  ## Examples

      iex> %DSPex.ToolCallChunk{index: 0, name: "search", arguments: ~s({"q")}.name
      "search"
  """

  defstruct predictor: nil, index: 0, id: nil, name: nil, arguments: ""

  @type t :: %__MODULE__{
          predictor: binary,
          index: non_neg_integer,
          id: binary | nil,
          name: binary | nil,
          arguments: binary
        }
end
