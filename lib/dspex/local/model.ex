defmodule DSPex.Local.Model do
  @moduledoc """
  A loaded GGUF model: a handle to the native model (a NIF resource, shared by every
  process that holds it and unloaded when the last reference is garbage-collected) plus
  the settings `DSPex.Local` uses by default for it.

  Build one with `DSPex.Local.load/2`; the fields are read-only.

  ## Examples

      iex> %DSPex.Local.Model{path: "m.gguf", arch: "llama"} |> inspect()
      "#DSPex.Local.Model<m.gguf (llama)>"
  """

  @enforce_keys [:path]
  defstruct ref: nil,
            path: nil,
            arch: nil,
            n_ctx: 2048,
            chat_template: nil,
            info: %{},
            batching: true,
            max_seqs: 8

  @type t :: %__MODULE__{
          ref: reference | nil,
          path: binary,
          arch: binary | nil,
          n_ctx: pos_integer,
          chat_template: binary | nil,
          info: map,
          batching: boolean,
          max_seqs: pos_integer
        }

  defimpl Inspect do
    def inspect(%{path: path, arch: arch}, _opts) do
      "#DSPex.Local.Model<#{Path.basename(path)} (#{arch || "?"})>"
    end
  end
end
