defmodule DSPex.StreamChunk do
  @moduledoc """
  One piece of a streamed output field, yielded by `DSPex.stream/3` (DSPy's
  `StreamResponse`).

    * `predictor` — the predictor's name (`"self"`, `"answer.predict"`, ...);
    * `field` — the output field (an atom when the signature declares it, else a binary);
    * `text` — the new text of that field (may be empty on the last chunk);
    * `last?` — `true` on the field's final chunk.

  ## Examples

      iex> %DSPex.StreamChunk{predictor: "self", field: :answer, text: "Par", last?: false}.text
      "Par"
  """

  defstruct predictor: nil, field: nil, text: "", last?: false

  @type t :: %__MODULE__{predictor: binary, field: atom | binary, text: binary, last?: boolean}
end
