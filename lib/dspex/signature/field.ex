defmodule DSPex.Signature.Field do
  @moduledoc """
  One input or output field of a `DSPex.Signature`.

    * `name` — atom, e.g. `:question`
    * `kind` — `:input` or `:output`
    * `type` — a type term (see `t:type/0`); untyped fields are `:str` with
      `type_defined?: false`
    * `desc` — the description, or `nil` when none was given (DSPy saves this as
      `"${name}"`)
    * `prefix` — DSPy's inferred prefix, e.g. `"Question:"`
    * `constraints` — keyword list from `gt ge lt le min_length max_length multiple_of`,
      in the order given
  """

  @typedoc """
  Type terms. Scalars `:str | :int | :float | :bool | :any`; `:history` (`dspy.History`);
  bare generics `:list | :dict | :tuple | :set`; `{:list, t}`, `{:set, t}`,
  `{:dict, k, v}`, `{:tuple, [t]}`, `{:literal, [value]}` (values are binaries, integers,
  floats, booleans or nil), `{:optional, t}`, `{:union, [t]}`,
  `{:enum, "Name", [binary]}`, `:none` (NoneType).
  """
  @type type ::
          :str
          | :int
          | :float
          | :bool
          | :any
          | :none
          | :history
          | :list
          | :dict
          | :tuple
          | :set
          | {:list, type}
          | {:set, type}
          | {:dict, type, type}
          | {:tuple, [type]}
          | {:literal, [binary | integer | float | boolean | nil]}
          | {:optional, type}
          | {:union, [type]}
          | {:enum, binary, [binary]}

  @type t :: %__MODULE__{
          name: atom,
          kind: :input | :output,
          type: type,
          type_defined?: boolean,
          desc: binary | nil,
          prefix: binary,
          constraints: keyword
        }

  defstruct name: nil,
            kind: :input,
            type: :str,
            type_defined?: true,
            desc: nil,
            prefix: nil,
            constraints: []
end
