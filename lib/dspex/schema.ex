defmodule DSPex.Schema do
  @moduledoc """
  Typed structs for signature fields — what DSPy users write as pydantic models.

      defmodule MyApp.LineItem do
        @moduledoc "One line of an invoice."
        use DSPex.Schema

        field :description, :string, desc: "What was sold"
        field :quantity, :integer, ge: 1
        field :unit_price, :float, gt: 0
      end

      defmodule MyApp.Invoice do
        use DSPex.Schema

        field :number, :string
        field :items, {:list, MyApp.LineItem}
        field :status, {:literal, ["open", "paid"]}, default: "open"
        field :customer, {:optional, MyApp.Customer}, default: nil
      end

      extract = DSPex.Predict.new("text -> invoice: ...")   # or a signature module:
      output :invoice, MyApp.Invoice

  A schema module is a type anywhere a type is accepted — signature fields (inputs and
  outputs), `{:list, MyApp.LineItem}`, `{:optional, ...}`, tool parameters — and a
  struct (`%MyApp.Invoice{}`) with a `t()` type.

  ## What DSPy does with it, DSPex does

    * **Prompts** show the type by its name (`(Invoice)`, `list[LineItem]`) and an output's
      JSON schema exactly as pydantic writes `model_json_schema()` (with DSPy's key order):
      field titles, descriptions, defaults, constraints (`ge` → `minimum`, `min_length` →
      `minLength` / `minItems`, ...), nested schemas under `$defs` and `$ref`, the
      `@moduledoc` as the model's `description`.
    * **Values** (inputs, demos) are written as JSON in field order.
    * **Parsing** reads the LM's JSON (repaired like `json_repair`) and validates it like
      pydantic in lax mode: coercions (`"3"` → `3`), smart unions, literals, enums, dates,
      nested structs and lists of them, defaults for missing fields, the constraints.
      The result is the struct. A failure names where it happened
      (`items[2].unit_price: Input should be greater than 0`) and feeds the predictor's
      re-ask (`DSPex.Predict`).

  Every rule runs in the C type model (`include/dspex/type.h`); this module declares the
  struct and hands the schema to it as data.

  ## Fields

  `field name, type, opts` — `type` is a type term (see `DSPex.Signature.Field`),
  another schema module, or a DSPy type string. Options: `desc:`, `default:` (the field
  may then be missing; without it the field is required), and the constraints `gt`,
  `ge`, `lt`, `le`, `multiple_of` (numbers) and `min_length`, `max_length` (strings and
  collections). `use DSPex.Schema` takes `title:` (default: the last segment of the
  module name) and `desc:` (default: the `@moduledoc`).

  Recursive schemas (a schema that contains itself) are not supported.

  ## Examples

      iex> defmodule Demo.Point do
      ...>   use DSPex.Schema
      ...>   field :x, :integer
      ...>   field :y, :integer, default: 0
      ...> end
      iex> {:ok, point} = DSPex.Schema.validate(Demo.Point, %{"x" => "3"})
      iex> {point.x, point.y}
      {3, 0}
      iex> {:error, err} = DSPex.Schema.validate(Demo.Point, %{"y" => 1})
      iex> err.message
      "x: Field required"
      iex> DSPex.Signature.Field.json_schema(Demo.Point)
      ~s|{"type": "object", "properties": {"x": {"type": "integer", "title": "X"}, "y": {"type": "integer", "default": 0, "title": "Y"}}, "required": ["x"], "title": "Point"}|
  """

  alias DSPex.Adapter.Native

  @constraint_keys [:gt, :ge, :lt, :le, :multiple_of, :min_length, :max_length]

  @typedoc "A schema's description (`__schema__/0`)."
  @type schema :: %{
          module: module,
          title: binary,
          desc: binary | nil,
          fields: [
            %{
              name: atom,
              key: binary,
              type: term,
              desc: binary | nil,
              default: {:value, term} | nil,
              constraints: keyword
            }
          ]
        }

  @doc false
  defmacro __using__(opts) do
    quote do
      import DSPex.Schema, only: [field: 2, field: 3]
      Module.register_attribute(__MODULE__, :dspex_schema_fields, accumulate: true)
      @dspex_schema_opts unquote(opts)
      @before_compile DSPex.Schema
    end
  end

  @doc """
  Declares a field: `field name, type, opts` (see the module doc).
  """
  defmacro field(name, type, opts \\ []) do
    quote do
      @dspex_schema_fields {unquote(name), unquote(type), unquote(opts)}
    end
  end

  @doc false
  defmacro __before_compile__(env) do
    specs = env.module |> Module.get_attribute(:dspex_schema_fields) |> Enum.reverse()
    opts = Module.get_attribute(env.module, :dspex_schema_opts) || []

    fields =
      Enum.map(specs, fn {name, type, fopts} -> field_spec!(env.module, name, type, fopts) end)

    dups = fields |> Enum.frequencies_by(& &1.name) |> Enum.filter(fn {_, n} -> n > 1 end)

    if dups != [] do
      raise CompileError,
        file: env.file,
        description:
          "#{inspect(env.module)}: duplicate schema field(s) #{Enum.map_join(dups, ", ", &inspect(elem(&1, 0)))}"
    end

    desc =
      case Keyword.fetch(opts, :desc) do
        {:ok, d} ->
          d

        :error ->
          case Module.get_attribute(env.module, :moduledoc) do
            {_, text} when is_binary(text) -> String.trim(text)
            text when is_binary(text) -> String.trim(text)
            _ -> nil
          end
      end

    schema = %{
      module: env.module,
      title: Keyword.get(opts, :title, env.module |> Module.split() |> List.last()),
      desc: desc,
      fields: fields
    }

    struct_fields =
      Enum.map(fields, fn f ->
        case f.default do
          {:value, v} -> {f.name, v}
          nil -> {f.name, nil}
        end
      end)

    quote do
      defstruct unquote(Macro.escape(struct_fields))

      @type t :: %__MODULE__{}

      @doc false
      def __schema__, do: unquote(Macro.escape(schema))
    end
  end

  @doc false
  def field_spec!(module, name, type, opts) when is_atom(name) and is_list(opts) do
    case Keyword.keys(opts) -- [:desc, :default | @constraint_keys] do
      [] ->
        :ok

      bad ->
        raise ArgumentError,
              "#{inspect(module)}.#{name}: unknown field option(s) #{inspect(bad)}; allowed: :desc, " <>
                ":default and the constraints #{Enum.map_join(@constraint_keys, ", ", &inspect/1)}"
    end

    constraints = Keyword.take(opts, @constraint_keys)

    for {k, v} <- constraints, not is_number(v) do
      raise ArgumentError,
            "#{inspect(module)}.#{name}: constraint #{k} takes a number, got: #{inspect(v)}"
    end

    %{
      name: name,
      key: Atom.to_string(name),
      type: type,
      desc: Keyword.get(opts, :desc),
      default: if(Keyword.has_key?(opts, :default), do: {:value, opts[:default]}, else: nil),
      constraints: constraints
    }
  end

  def field_spec!(module, name, _type, _opts) do
    raise ArgumentError, "#{inspect(module)}: field names are atoms, got: #{inspect(name)}"
  end

  @doc """
  Whether `module` declares a schema (`use DSPex.Schema`).

  ## Examples

      iex> DSPex.Schema.schema?(String)
      false
  """
  @spec schema?(term) :: boolean
  def schema?(module) when is_atom(module) and module not in [nil, true, false] do
    # Type atoms (:str, :int, ...) are not module names: no code-path lookup for them.
    # ensure_compiled: a signature module checked at compile time waits for the schema
    # module it names to be compiled.
    match?("Elixir." <> _, Atom.to_string(module)) and
      Code.ensure_compiled(module) == {:module, module} and
      function_exported?(module, :__schema__, 0)
  end

  def schema?(_), do: false

  @doc """
  Validates `data` (a map with string or atom keys, e.g. decoded JSON) into the schema's
  struct, like pydantic's `Model.model_validate`. Returns `{:ok, struct}` or
  `{:error, %DSPex.Error{type: :validation}}` whose message names the failing path.

  ## Examples

      iex> defmodule Demo.Span do
      ...>   use DSPex.Schema
      ...>   field :start, :integer, ge: 0
      ...>   field :tags, {:list, :str}, default: []
      ...> end
      iex> {:ok, span} = DSPex.Schema.validate(Demo.Span, %{start: 4})
      iex> {span.start, span.tags}
      {4, []}
      iex> {:error, err} = DSPex.Schema.validate(Demo.Span, %{"start" => -1})
      iex> err.message
      "start: Input should be greater than or equal to 0"
  """
  @spec validate(module, map) :: {:ok, struct} | {:error, DSPex.Error.t()}
  def validate(module, data) do
    case DSPex.Tool.Args.validate(module, data) do
      {:ok, struct} -> {:ok, struct}
      {:error, message} -> {:error, DSPex.Error.new(:validation, message, %{schema: module})}
    end
  end

  @doc """
  Like `validate/2` but raises the `%DSPex.Error{}`.

  ## Examples

      iex> defmodule Demo.Tag do
      ...>   use DSPex.Schema
      ...>   field :label, :string
      ...> end
      iex> DSPex.Schema.validate!(Demo.Tag, %{"label" => "x"}).label
      "x"
  """
  @spec validate!(module, map) :: struct
  def validate!(module, data) do
    case validate(module, data) do
      {:ok, s} -> s
      {:error, e} -> raise e
    end
  end

  # ------------------------------------------------------------------------------
  # The type model's view (the NIF boundary)

  @doc false
  # A type term with every schema module replaced by its plain data
  # ({:model, module, title, desc, [{key, type, desc, default, constraints}]}), which is
  # what the C type model takes. Schema modules nested in one another are expanded
  # once per path; a schema containing itself is refused.
  @spec expand(term) :: term
  def expand(type), do: expand(type, [])

  defp expand(t, seen) when is_atom(t) and t not in [nil, true, false] do
    if schema?(t), do: model(t, seen), else: t
  end

  defp expand({tag, t}, seen) when tag in [:list, :set, :frozenset, :optional, :typing],
    do: {tag, expand(t, seen)}

  defp expand({:dict, k, v}, seen), do: {:dict, expand(k, seen), expand(v, seen)}

  defp expand({tag, ts}, seen) when tag in [:tuple, :union, :union_type] and is_list(ts),
    do: {tag, Enum.map(ts, &expand(&1, seen))}

  defp expand(other, _seen), do: other

  defp model(module, seen) do
    if module in seen do
      raise ArgumentError,
            "#{inspect(module)} contains itself (through #{Enum.map_join(Enum.reverse(seen), " -> ", &inspect/1)}); " <>
              "recursive schemas are not supported"
    end

    s = module.__schema__()

    fields =
      for f <- s.fields do
        default =
          case f.default do
            {:value, v} -> {:value, Native.plain(v)}
            nil -> nil
          end

        {f.key, expand(f.type, [module | seen]), f.desc, default, f.constraints}
      end

    {:model, module, s.title, s.desc, fields}
  end

  @doc false
  # A validated model value (a map with string keys, from C) as the schema's struct.
  @spec to_struct(module, map) :: struct
  def to_struct(module, %{} = map) do
    values =
      for f <- module.__schema__().fields do
        {f.name, Native.cast(f.type, Map.get(map, f.key))}
      end

    struct(module, values)
  end

  @doc false
  # The struct as plain data for the NIF: a dict in field order (pydantic's model_dump).
  @spec plain(struct) :: {:ordered, list}
  def plain(%module{} = s) do
    {:ordered,
     for(f <- module.__schema__().fields, do: {f.key, Native.plain(Map.get(s, f.name))})}
  end
end
