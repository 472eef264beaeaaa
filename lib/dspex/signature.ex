defmodule DSPex.Signature do
  @moduledoc """
  A DSPy signature: instructions plus ordered input and output fields (skeleton).
  """

  alias DSPex.Signature.Field

  @type t :: %__MODULE__{
          instructions: binary,
          inputs: [Field.t()],
          outputs: [Field.t()]
        }

  defstruct instructions: "", inputs: [], outputs: []
end
