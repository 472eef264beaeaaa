defmodule DSPex.Tool.Args do
  @moduledoc false
  # The type model's side of tools (c_src/core/signature/tool.c, validate.c, through
  # c_src/nif/nif_tool.c and nif_signature.c): argument values validated against their
  # parameter's type, the argument schemas and a tool's text. Every rule is the C type
  # model's; this module only converts terms.

  alias DSPex.Adapter.Native
  alias DSPex.NIF

  @doc false
  # pydantic's lax validation of one value: {:ok, coerced} | {:error, message}.
  @spec validate(term, term) :: {:ok, term} | {:error, binary}
  def validate(:any, value), do: {:ok, value}

  def validate(type, value) do
    case NIF.guard(fn -> NIF.type_validate(DSPex.Schema.expand(type), Native.plain(value)) end) do
      {:ok, v} -> {:ok, Native.cast(type, v)}
      {:ok_tagged, v} -> {:ok, Native.cast(type, Native.from_tagged(v))}
      {:error, message} -> {:error, message}
    end
  end

  @doc false
  # dspy.Tool.args: {:ordered, [{name, schema}]} with every dict ordered.
  @spec schemas(DSPex.Tool.t()) :: {:ordered, list}
  def schemas(tool), do: NIF.guard(fn -> NIF.tool_args(params(tool)) end)

  @doc false
  # str(dspy.Tool)
  @spec text(DSPex.Tool.t()) :: binary
  def text(tool), do: NIF.guard(fn -> NIF.tool_text(tool.name, tool.desc, params(tool)) end)

  defp params(tool) do
    Enum.map(tool.params, fn p ->
      default =
        case p.default do
          {:value, v} -> {:value, Native.plain(v)}
          nil -> nil
        end

      {p.key, DSPex.Schema.expand(p.type), default, p.desc}
    end)
  end
end
