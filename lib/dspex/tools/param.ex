defmodule DSPex.Tool.Param do
  @moduledoc """
  One parameter of a `DSPex.Tool`: its name, type (a type term of the one type model,
  `DSPex.Signature.Field`), description and default.

    * `name` — the atom the tool's function receives it under (declared by you, never
      made from LM text);
    * `key` — the same name as a string, the form the LM writes;
    * `type` — a normalized type term (`:str`, `{:list, :int}`, `{:optional, :str}`, ...);
    * `desc` — the description (`nil` when none), shown to the LM in the arg's schema;
    * `default` — `{:value, term}` when the parameter may be omitted, else `nil`.

  ## Examples

      iex> p = DSPex.Tool.Param.new(:k, :integer, default: 3, desc: "How many")
      iex> {p.key, p.type, p.default, DSPex.Tool.Param.required?(p)}
      {"k", :int, {:value, 3}, false}
  """

  alias DSPex.Signature.Field

  @type t :: %__MODULE__{
          name: atom,
          key: binary,
          type: Field.type(),
          desc: binary | nil,
          default: {:value, term} | nil
        }

  defstruct name: nil, key: nil, type: :any, desc: nil, default: nil

  @doc """
  Builds a parameter; `type` is any form `DSPex.Signature.Field.normalize_type/1` takes.
  `opts`: `desc:`, `default:`. Raises `ArgumentError` on a bad name, type or option.

  ## Examples

      iex> DSPex.Tool.Param.new(:city, :string).type
      :str
      iex> DSPex.Tool.Param.new(:tags, "list[str]").type
      {:list, :str}
  """
  @spec new(atom | binary, term, keyword) :: t
  def new(name, type, opts \\ []) when is_list(opts) do
    name = Field.normalize_name!(name)

    case Keyword.keys(opts) -- [:desc, :default] do
      [] ->
        :ok

      bad ->
        raise ArgumentError,
              "unknown option(s) #{inspect(bad)} for tool parameter #{inspect(name)}; " <>
                "allowed: :desc, :default"
    end

    desc = Keyword.get(opts, :desc)

    unless is_nil(desc) or is_binary(desc) do
      raise ArgumentError,
            "desc: for tool parameter #{inspect(name)} must be a string, got: #{inspect(desc)}"
    end

    %__MODULE__{
      name: name,
      key: Atom.to_string(name),
      type: Field.normalize_type!(type),
      desc: desc,
      default: if(Keyword.has_key?(opts, :default), do: {:value, opts[:default]}, else: nil)
    }
  end

  @doc """
  Builds the parameter list of a tool from `args:` — a keyword list (or a list of
  `{name, spec}` pairs) where `spec` is a type, or a keyword list with `type:`, `desc:`,
  `default:`. The order is kept: it is the order the LM sees and the order of a
  positional call.

  ## Examples

      iex> [q, k] = DSPex.Tool.Param.list!(query: :string, k: [type: :integer, default: 3])
      iex> {q.name, k.default}
      {:query, {:value, 3}}
  """
  @spec list!(list) :: [t]
  def list!(args) when is_list(args) do
    params =
      Enum.map(args, fn
        %__MODULE__{} = p ->
          p

        {name, spec} when is_list(spec) and spec != [] ->
          if Keyword.keyword?(spec) and Keyword.has_key?(spec, :type),
            do: new(name, spec[:type], Keyword.delete(spec, :type)),
            else: new(name, spec)

        {name, type} ->
          new(name, type)

        other ->
          raise ArgumentError,
                "tool args are a keyword list like [city: :string, days: [type: :integer, " <>
                  "default: 3]], got the entry: #{inspect(other)}"
      end)

    dups = params |> Enum.frequencies_by(& &1.name) |> Enum.filter(fn {_, n} -> n > 1 end)

    if dups != [] do
      raise ArgumentError,
            "duplicate tool parameter(s): #{Enum.map_join(dups, ", ", &inspect(elem(&1, 0)))}"
    end

    params
  end

  def list!(other) do
    raise ArgumentError,
          "tool args are a keyword list like [city: :string], got: #{inspect(other)}"
  end

  @doc """
  Whether the parameter must be given (it has no default).

  ## Examples

      iex> DSPex.Tool.Param.required?(DSPex.Tool.Param.new(:q, :str))
      true
  """
  @spec required?(t) :: boolean
  def required?(%__MODULE__{default: d}), do: d == nil
end
