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
    * `constraints` — keyword list from `gt ge lt le min_length max_length multiple_of`
      (and `allow_inf_nan`), in the order given
    * `default` — `{:value, term}` for an output with a default (a reply without it still
      parses, with this value), or `nil`

  Every rule about types lives once, in C (`c_src/core/signature/type.c`): this module
  normalises types, names them (`type_name/1`, DSPy's `get_annotation_name`), writes them
  in the signature string syntax (`type_string/1`), renders their JSON schema
  (`json_schema/1`), infers prefixes (`infer_prefix/1`) and formats constraints through
  the NIF.

  ## Examples

      iex> f = DSPex.Signature.Field.new(:final_answer, :output, type: {:list, :str})
      iex> {f.prefix, f.type_defined?, DSPex.Signature.Field.type_name(f.type)}
      {"Final Answer:", true, "list[str]"}
  """

  alias DSPex.NIF

  @typedoc """
  Type terms. Scalars `:str | :int | :float | :bool | :any`; `:none` (NoneType);
  `:history` (`dspy.History`); `:datetime`, `:date` (`datetime.datetime`,
  `datetime.date`); bare generics `:list | :dict | :tuple | :set | :frozenset`;
  `{:list, t}`, `{:set, t}`, `{:frozenset, t}`, `{:dict, k, v}`, `{:tuple, [t]}`,
  `{:tuple, [t, :ellipsis]}` (`tuple[T, ...]`), `{:literal, [value]}` (binaries, integers,
  floats, booleans, nil), `{:optional, t}`, `{:union, [t]}`, `{:union_type, [t]}`,
  `{:typing, generic}`, `{:enum, "Name", [value]}` or
  `{:enum, "Name", [{member_name, value}]}` (string or integer values); `:tool`
  (`dspy.Tool`, inputs: a `%DSPex.Tool{}`), `:tool_calls` (`dspy.ToolCalls`, outputs:
  `%DSPex.ToolCalls{}`), `:image` (`dspy.Image`, inputs: a `%DSPex.Image{}`); and a module
  that `use DSPex.Schema` (a pydantic model: values are its structs).

  Unions follow Python's `typing.Union`: nested unions are flattened and repeated members
  dropped, and `None` stays where it is written: `Union[int, None]` (what `Optional[int]`
  and `int | None` build) is `{:optional, :int}`, `Union[int, str, None]` is
  `{:optional, {:union, [:int, :str]}}`, `Union[None, int, str]` is
  `{:union, [:none, :int, :str]}`. `{:union_type, [t]}` is a PEP 604 union written in a
  class body (`int | None`, Python's `types.UnionType`; DSPy names it `UnionType[...]`).
  `{:typing, :list}` is a bare `typing.List` in a class body (DSPy prints it `list[]`).
  Aliases accepted on input: `:string`, `:integer`, `:boolean`, `:map`, `DSPex.History`,
  `DSPex.Tool`, `DSPex.ToolCalls`, `DSPex.Image`.
  """
  @type type ::
          :str
          | :int
          | :float
          | :bool
          | :any
          | :none
          | :history
          | :datetime
          | :date
          | :tool
          | :tool_calls
          | :image
          | module
          | :list
          | :dict
          | :tuple
          | :set
          | :frozenset
          | {:list, type}
          | {:set, type}
          | {:frozenset, type}
          | {:dict, type, type}
          | {:tuple, [type | :ellipsis]}
          | {:literal, [binary | integer | float | boolean | nil]}
          | {:optional, type}
          | {:union, [type]}
          | {:union_type, [type]}
          | {:typing, type}
          | {:enum, binary, [binary | integer | {binary, binary | integer}]}

  @type t :: %__MODULE__{
          name: atom,
          kind: :input | :output,
          type: type,
          type_defined?: boolean,
          desc: binary | nil,
          prefix: binary,
          constraints: keyword,
          default: {:value, term} | nil
        }

  defstruct name: nil,
            kind: :input,
            type: :str,
            type_defined?: true,
            desc: nil,
            prefix: nil,
            constraints: [],
            default: nil

  @constraint_keys [:gt, :ge, :lt, :le, :min_length, :max_length, :multiple_of, :allow_inf_nan]

  @doc """
  The constraint keys a field accepts, in DSPy's naming.

  ## Examples

      iex> :gt in DSPex.Signature.Field.constraint_keys()
      true
  """
  @spec constraint_keys() :: [atom]
  def constraint_keys, do: @constraint_keys

  @doc """
  Builds a field. `opts`: `type:` (anything `normalize_type/1` accepts; default `:str`
  with `type_defined?: false`), `desc:`, `prefix:` (default `infer_prefix/1` + `":"`),
  `constraints:` (keyword) plus constraint keys given inline (`gt: 0`), and `default:`
  (outputs only: the value a reply without this field parses to). A binary name becomes
  an atom under the VM-wide budget of `DSPex.Signature.parse/2` (`atoms:` works here too).
  Raises `ArgumentError` on a bad name, type, option or constraint.

  ## Examples

      iex> f = DSPex.Signature.Field.new(:score, :output, type: :integer, ge: 0, le: 10)
      iex> {f.type, f.prefix, f.constraints}
      {:int, "Score:", [ge: 0, le: 10]}
      iex> DSPex.Signature.Field.new(:question, :input).type_defined?
      false
      iex> DSPex.Signature.Field.new(:note, :output, default: "none").default
      {:value, "none"}
  """
  @spec new(atom | binary, :input | :output, keyword) :: t
  def new(name, kind, opts \\ []) when kind in [:input, :output] and is_list(opts) do
    {atoms, opts} = Keyword.pop(opts, :atoms, :create)
    name = normalize_name!(name, atoms)

    unknown =
      Keyword.keys(opts) --
        ([:type, :desc, :prefix, :constraints, :kind, :default] ++ @constraint_keys)

    if unknown != [] do
      raise ArgumentError,
            "unknown option(s) #{inspect(unknown)} for field #{inspect(name)}; " <>
              "allowed: :type, :desc, :prefix, :constraints, :default and the constraints " <>
              Enum.map_join(@constraint_keys, ", ", &inspect/1)
    end

    {type, defined?} =
      case Keyword.fetch(opts, :type) do
        {:ok, nil} -> {:str, false}
        {:ok, t} -> {normalize_type!(t, :class), true}
        :error -> {:str, false}
      end

    desc = Keyword.get(opts, :desc)

    if desc != nil and not is_binary(desc) do
      raise ArgumentError,
            "desc: for field #{inspect(name)} must be a string, got: #{inspect(desc)}"
    end

    prefix = Keyword.get(opts, :prefix) || infer_prefix(name) <> ":"

    if not is_binary(prefix) do
      raise ArgumentError,
            "prefix: for field #{inspect(name)} must be a string, got: #{inspect(prefix)}"
    end

    inline = Enum.filter(opts, fn {k, _} -> k in @constraint_keys end)
    constraints = validate_constraints!(name, Keyword.get(opts, :constraints, []) ++ inline)

    default =
      case Keyword.fetch(opts, :default) do
        {:ok, value} when kind == :output ->
          {:value, value}

        {:ok, _} ->
          raise ArgumentError,
                "default: is for output fields (a reply without the field parses to it); " <>
                  "#{inspect(name)} is an input"

        :error ->
          nil
      end

    %__MODULE__{
      name: name,
      kind: kind,
      type: type,
      type_defined?: defined?,
      desc: desc,
      prefix: prefix,
      constraints: constraints,
      default: default
    }
  end

  @doc false
  # A field name as an atom: atoms are kept, binaries go through the atom budget
  # (DSPex.Signature.Atoms) after the C parser's identifier check.
  @spec normalize_name!(atom | binary, :create | :existing) :: atom
  def normalize_name!(name, atoms \\ :create)

  def normalize_name!(name, _atoms) when is_atom(name) and name not in [nil, true, false] do
    check_name!(Atom.to_string(name))
    name
  end

  def normalize_name!(name, atoms) when is_binary(name) do
    check_name!(name)

    case DSPex.Signature.Atoms.to_atom(name, atoms) do
      {:ok, atom} -> atom
      {:error, message} -> raise ArgumentError, message
    end
  end

  def normalize_name!(name, _atoms) do
    raise ArgumentError, "field names are atoms or strings, got: #{inspect(name)}"
  end

  # The C rule for names: an identifier of at most 255 characters (Erlang's atom limit).
  defp check_name!(name) do
    unless NIF.guard(fn -> NIF.field_name_valid(name) end) do
      raise ArgumentError,
            "invalid field name #{inspect(name, limit: 3, printable_limit: 80)}: names are " <>
              "identifiers (letters, digits and '_', not starting with a digit) of at most 255 " <>
              "characters, e.g. :question"
    end
  end

  defp validate_constraints!(name, constraints) do
    Enum.map(constraints, fn
      {:allow_inf_nan, v} when is_boolean(v) ->
        {:allow_inf_nan, v}

      {k, v} when k in @constraint_keys and is_number(v) and k != :allow_inf_nan ->
        {k, v}

      other ->
        raise ArgumentError,
              "invalid constraint #{inspect(other)} for field #{inspect(name)}; constraints are " <>
                "gt/ge/lt/le/min_length/max_length/multiple_of with a number " <>
                "(or allow_inf_nan with a boolean), e.g. ge: 0"
    end)
  end

  @doc """
  Normalizes a type given in any accepted form into a type term (in C, where the rules of
  `typing.Union` and `typing.Literal` live).

  Accepts the type terms of `t:type/0`, the aliases `:string`, `:integer`, `:boolean`,
  `:map` (for `:dict`), the module `DSPex.History`, and type strings such as
  `"list[str]"` or `"int | None"`, read as a Python annotation in a class body (so
  `int | None` is a PEP 604 `{:union_type, _}`; signature strings given to
  `DSPex.Signature.parse/2` follow DSPy's string parser instead).

  ## Examples

      iex> DSPex.Signature.Field.normalize_type(:string)
      {:ok, :str}
      iex> DSPex.Signature.Field.normalize_type("dict[str, list[int]]")
      {:ok, {:dict, :str, {:list, :int}}}
      iex> DSPex.Signature.Field.normalize_type({:union, [:int, {:optional, :str}, :int]})
      {:ok, {:optional, {:union, [:int, :str]}}}
      iex> DSPex.Signature.Field.normalize_type({:union, [:none, :int]})
      {:ok, {:union, [:none, :int]}}
      iex> DSPex.Signature.Field.normalize_type({:enum, :Label, [:positive, "negative"]})
      {:ok, {:enum, "Label", ["positive", "negative"]}}
      iex> {:error, err} = DSPex.Signature.Field.normalize_type(:strng)
      iex> err.type
      :signature_parse
      iex> err.message =~ "unknown type :strng; supported: :str"
      true
  """
  @spec normalize_type(term) :: {:ok, type} | {:error, DSPex.Error.t()}
  def normalize_type(type) do
    {:ok, normalize_type!(type)}
  rescue
    e in ArgumentError ->
      {:error, DSPex.Error.new(:signature_parse, Exception.message(e), %{type: type})}
  end

  @doc """
  Like `normalize_type/1` but raises `ArgumentError`.

  ## Examples

      iex> DSPex.Signature.Field.normalize_type!({:optional, :integer})
      {:optional, :int}
  """
  @spec normalize_type!(term) :: type
  def normalize_type!(type), do: normalize_type!(type, :class)

  @doc false
  # `mode`: :class (a Python annotation in a class body) or :string (DSPy's string parser).
  @spec normalize_type!(term, :class | :string) :: type
  def normalize_type!(type, mode) do
    case NIF.guard(fn -> NIF.type_normalize(DSPex.Schema.expand(type), mode) end) do
      {:ok, t} ->
        t

      {:error, {_, message, _}} ->
        raise ArgumentError, "invalid type string #{inspect(type)}: " <> message
    end
  rescue
    e in ArgumentError ->
      if is_binary(type) or not String.starts_with?(e.message, "unknown type;") do
        reraise e, __STACKTRACE__
      else
        reraise ArgumentError,
                [
                  message:
                    "unknown type #{inspect(type, limit: 8)}; " <> after_semicolon(e.message)
                ],
                __STACKTRACE__
      end
  end

  defp after_semicolon(message), do: message |> String.split("; ", parts: 2) |> List.last()

  @doc """
  Whether a missing output of this type parses to `nil` (DSPy's
  `annotation_allows_none`: `None`, or a union with a `None` member).

  ## Examples

      iex> DSPex.Signature.Field.nullable?({:optional, :int})
      true
      iex> DSPex.Signature.Field.nullable?({:union, [:none, :str]})
      true
      iex> DSPex.Signature.Field.nullable?(:any)
      false
  """
  @spec nullable?(type) :: boolean
  def nullable?(:none), do: true
  def nullable?({:optional, _}), do: true
  def nullable?({tag, members}) when tag in [:union, :union_type], do: :none in members
  def nullable?(_), do: false

  @doc """
  DSPy's prefix inference (`infer_prefix`): splits camelCase, snake_case and digit
  boundaries into words, keeps all-uppercase words (acronyms), capitalizes the rest.
  The stored field prefix adds a trailing `":"`.

  ## Examples

      iex> DSPex.Signature.Field.infer_prefix(:camelCaseText)
      "Camel Case Text"
      iex> DSPex.Signature.Field.infer_prefix("snake_case_text")
      "Snake Case Text"
      iex> DSPex.Signature.Field.infer_prefix("text2number")
      "Text 2 Number"
      iex> DSPex.Signature.Field.infer_prefix("HTMLParser")
      "HTML Parser"
      iex> DSPex.Signature.Field.infer_prefix("élan_vital")
      "Élan Vital"
  """
  @spec infer_prefix(atom | binary) :: binary
  def infer_prefix(name) when is_atom(name), do: infer_prefix(Atom.to_string(name))
  def infer_prefix(name) when is_binary(name), do: NIF.guard(fn -> NIF.infer_prefix(name) end)

  def infer_prefix(other) do
    raise ArgumentError, "field names are atoms or strings, got: #{inspect(other, limit: 5)}"
  end

  @doc """
  Renders constraints exactly as DSPy shows them in prompts (`"greater than: 0, less than
  or equal to: 1.0"`): each constraint's phrase followed by the value formatted like
  Python's `str()`, joined with `", "`, in the order given. Accepts a field or a keyword
  list; returns `""` when there are none.

  ## Examples

      iex> DSPex.Signature.Field.constraints_text(gt: 0, le: 1.0)
      "greater than: 0, less than or equal to: 1.0"
      iex> DSPex.Signature.Field.constraints_text(min_length: 2, multiple_of: 0.5)
      "minimum length: 2, a multiple of the given number: 0.5"
      iex> DSPex.Signature.Field.constraints_text([])
      ""
  """
  @spec constraints_text(t | keyword) :: binary
  def constraints_text(%__MODULE__{constraints: c}), do: constraints_text(c)

  def constraints_text(constraints) when is_list(constraints),
    do: NIF.guard(fn -> NIF.constraints_text(constraints) end)

  def constraints_text(other) do
    raise ArgumentError,
          "constraints are a field or a keyword list such as [ge: 0, le: 10], got: " <>
            inspect(other, limit: 5)
  end

  @doc """
  The type's name as DSPy shows it in prompts (`get_annotation_name`): `"str"`,
  `"list[str]"`, `"dict[str, int]"`, `"Literal['a', 'b']"`, `"Union[int, NoneType]"` for
  optionals, `"UnionType[int, NoneType]"` for a PEP 604 union, the enum's name for
  `{:enum, name, _}`.

  ## Examples

      iex> DSPex.Signature.Field.type_name({:optional, :int})
      "Union[int, NoneType]"
      iex> DSPex.Signature.Field.type_name({:union, [:none, :int, :str]})
      "Union[NoneType, int, str]"
      iex> DSPex.Signature.Field.type_name({:literal, ["a", "it's", 1, true, nil]})
      ~s|Literal['a', "it's", 1, True, None]|
      iex> DSPex.Signature.Field.type_name({:enum, "Sentiment", ["pos", "neg"]})
      "Sentiment"
  """
  @spec type_name(type) :: binary
  def type_name(type), do: NIF.guard(fn -> NIF.type_text(DSPex.Schema.expand(type), :name) end)

  @doc """
  The type in DSPy's signature string syntax, so that it parses back to the same term:
  `"list[str]"`, `"Optional[int]"`, `"Union[None, int]"`, `"tuple[int, ...]"`,
  `"Literal['a', 1]"`, `"datetime.datetime"`. An enum renders as the `Literal` of its
  values (string syntax has no enums).

  ## Examples

      iex> DSPex.Signature.Field.type_string({:dict, :str, {:list, :int}})
      "dict[str, list[int]]"
      iex> DSPex.Signature.Field.type_string({:optional, {:union, [:int, :str]}})
      "Optional[Union[int, str]]"
      iex> DSPex.Signature.Field.type_string({:literal, ["it's", 2.5, false]})
      ~s|Literal["it's", 2.5, False]|
  """
  @spec type_string(type) :: binary
  def type_string(type),
    do: NIF.guard(fn -> NIF.type_text(DSPex.Schema.expand(type), :string) end)

  @doc """
  pydantic's JSON schema for the type, with DSPy's key order (what the adapters show for
  outputs that are not str, bool, int, float, Literal or Enum).

  ## Examples

      iex> DSPex.Signature.Field.json_schema({:list, :str})
      ~s|{"type": "array", "items": {"type": "string"}}|
      iex> DSPex.Signature.Field.json_schema({:dict, {:literal, ["a", "b"]}, :int})
      ~s|{"type": "object", "additionalProperties": {"type": "integer"}, "propertyNames": {"enum": ["a", "b"]}}|
  """
  @spec json_schema(type) :: binary
  def json_schema(type),
    do: NIF.guard(fn -> NIF.type_text(DSPex.Schema.expand(type), :json_schema) end)

  @doc """
  Formats a value like Python's `str()` for the scalars DSPy puts in prompt text:
  integers as is, floats like Python's `repr` (`1.0`, `0.5`, `1e-05`, `1e+16`), booleans
  as `True`/`False`, `nil` as `None`, strings unchanged.

  ## Examples

      iex> Enum.map([3, 1.0, 0.1, 1.0e-5, 1.0e16, 123.456, true, nil], &DSPex.Signature.Field.py_str/1)
      ["3", "1.0", "0.1", "1e-05", "1e+16", "123.456", "True", "None"]
  """
  @spec py_str(term) :: binary
  def py_str(value), do: NIF.guard(fn -> NIF.value_text(value, :str) end)
end
