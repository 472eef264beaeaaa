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

  Helpers here render a field the ways DSPy does: `type_name/1` (the name shown in
  prompts, like DSPy's `get_annotation_name`), `type_string/1` (the signature string
  syntax), `constraints_text/1` and `infer_prefix/1`.

  ## Examples

      iex> f = DSPex.Signature.Field.new(:final_answer, :output, type: {:list, :str})
      iex> {f.prefix, f.type_defined?, DSPex.Signature.Field.type_name(f.type)}
      {"Final Answer:", true, "list[str]"}
  """

  @typedoc """
  Type terms. Scalars `:str | :int | :float | :bool | :any`; `:history` (`dspy.History`);
  bare generics `:list | :dict | :tuple | :set`; `{:list, t}`, `{:set, t}`,
  `{:dict, k, v}`, `{:tuple, [t]}`, `{:literal, [value]}` (values are binaries, integers,
  floats, booleans or nil), `{:optional, t}`, `{:union, [t]}`,
  `{:enum, "Name", [binary]}`, `:none` (NoneType).

  `tuple[T, ...]` (a tuple of any length) is `{:tuple, [t, :ellipsis]}`. Unions are
  normalized like Python's `typing.Union`: nested unions are flattened, duplicates
  dropped, a `None` member turns the rest into `{:optional, t}` (so `int | None` and
  `Optional[int]` are both `{:optional, :int}`, and `Union[int, str, None]` is
  `{:optional, {:union, [:int, :str]}}`).
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
          | {:tuple, [type | :ellipsis]}
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

  @constraint_text [
    gt: "greater than: ",
    ge: "greater than or equal to: ",
    lt: "less than: ",
    le: "less than or equal to: ",
    min_length: "minimum length: ",
    max_length: "maximum length: ",
    multiple_of: "a multiple of the given number: ",
    allow_inf_nan: "allow 'inf', '-inf', 'nan' values: "
  ]
  @constraint_keys Keyword.keys(@constraint_text)

  @scalar_aliases %{
    str: :str,
    string: :str,
    int: :int,
    integer: :int,
    float: :float,
    bool: :bool,
    boolean: :bool,
    any: :any,
    none: :none,
    history: :history,
    list: :list,
    dict: :dict,
    map: :dict,
    tuple: :tuple,
    set: :set
  }

  @supported_types "supported: :str (:string), :int (:integer), :float, :bool (:boolean), :any, " <>
                     ":none, :history, :list, :dict, :tuple, :set, {:list, t}, {:set, t}, " <>
                     "{:dict, k, v}, {:tuple, [t]}, {:literal, [values]}, {:optional, t}, " <>
                     "{:union, [t]}, {:enum, \"Name\", [\"a\", \"b\"]}, or a DSPy type string " <>
                     "such as \"list[str]\""

  @doc """
  The constraint keys a field accepts, in DSPy's naming.

  ## Examples

      iex> :gt in DSPex.Signature.Field.constraint_keys()
      true
  """
  @spec constraint_keys() :: [atom]
  def constraint_keys, do: @constraint_keys

  @doc """
  Builds a field. `opts`: `type:` (any form `normalize_type/1` accepts; default `:str`
  with `type_defined?: false`), `desc:`, `prefix:` (default `infer_prefix/1` + `":"`),
  `constraints:` (keyword), plus constraint keys given inline (`gt: 0`). Raises
  `ArgumentError` on a bad name, type or constraint.

  ## Examples

      iex> f = DSPex.Signature.Field.new(:score, :output, type: :integer, ge: 0, le: 10)
      iex> {f.type, f.prefix, f.constraints}
      {:int, "Score:", [ge: 0, le: 10]}
      iex> DSPex.Signature.Field.new(:question, :input).type_defined?
      false
  """
  @spec new(atom | binary, :input | :output, keyword) :: t
  def new(name, kind, opts \\ []) when kind in [:input, :output] and is_list(opts) do
    name = normalize_name!(name)

    {type, defined?} =
      case Keyword.fetch(opts, :type) do
        {:ok, nil} -> {:str, false}
        {:ok, t} -> {normalize_type!(t), true}
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

    unknown =
      Keyword.keys(opts) -- ([:type, :desc, :prefix, :constraints, :kind] ++ @constraint_keys)

    if unknown != [] do
      raise ArgumentError,
            "unknown option(s) #{inspect(unknown)} for field #{inspect(name)}; " <>
              "allowed: :type, :desc, :prefix, :constraints and the constraints " <>
              Enum.map_join(@constraint_keys, ", ", &inspect/1)
    end

    %__MODULE__{
      name: name,
      kind: kind,
      type: type,
      type_defined?: defined?,
      desc: desc,
      prefix: prefix,
      constraints: constraints
    }
  end

  @doc false
  @spec normalize_name!(atom | binary) :: atom
  def normalize_name!(name) when is_atom(name) and name not in [nil, true, false] do
    normalize_name!(Atom.to_string(name))
  end

  def normalize_name!(name) when is_binary(name) do
    if Regex.match?(~r/\A[A-Za-z_][A-Za-z0-9_]*\z/, name) do
      String.to_atom(name)
    else
      raise ArgumentError,
            "invalid field name #{inspect(name)}: names are identifiers (letters, digits and " <>
              "'_', not starting with a digit), e.g. :question"
    end
  end

  def normalize_name!(name) do
    raise ArgumentError, "field names are atoms or strings, got: #{inspect(name)}"
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
  Normalizes a type given in any accepted form into a type term.

  Accepts the type terms of `t:type/0`, the aliases `:string`, `:integer`, `:boolean`,
  `:map` (for `:dict`), the module `DSPex.History`, and DSPy type strings such as
  `"list[str]"` or `"Literal['a', 'b'] | None"` (parsed by the C parser).

  ## Examples

      iex> DSPex.Signature.Field.normalize_type(:string)
      {:ok, :str}
      iex> DSPex.Signature.Field.normalize_type("dict[str, list[int]]")
      {:ok, {:dict, :str, {:list, :int}}}
      iex> DSPex.Signature.Field.normalize_type({:enum, :Label, [:positive, "negative"]})
      {:ok, {:enum, "Label", ["positive", "negative"]}}
      iex> DSPex.Signature.Field.normalize_type({:literal, [:yes, :no, nil]})
      {:ok, {:literal, ["yes", "no", nil]}}
      iex> {:error, msg} = DSPex.Signature.Field.normalize_type(:strng)
      iex> msg =~ "unknown type :strng"
      true
  """
  @spec normalize_type(term) :: {:ok, type} | {:error, binary}
  def normalize_type(type) do
    {:ok, normalize_type!(type)}
  rescue
    e in ArgumentError -> {:error, Exception.message(e)}
  end

  @doc """
  Like `normalize_type/1` but raises `ArgumentError`.

  ## Examples

      iex> DSPex.Signature.Field.normalize_type!({:optional, :integer})
      {:optional, :int}
  """
  @spec normalize_type!(term) :: type
  def normalize_type!(type) when is_atom(type) and is_map_key(@scalar_aliases, type),
    do: Map.fetch!(@scalar_aliases, type)

  def normalize_type!(DSPex.History), do: :history

  def normalize_type!(type) when is_binary(type) do
    case DSPex.Signature.nif_parse("x: " <> type <> " ->") do
      {:ok, {[{"x", t, true, _prefix}], []}} ->
        t

      {:error, {_, message, col}} ->
        message =
          if is_integer(col) do
            # columns refer to the wrapper "x: "; re-base them on the type string
            Regex.replace(~r/column (\d+)/, message, fn _, c ->
              "column #{max(String.to_integer(c) - 3, 1)}"
            end)
          else
            message
          end

        raise ArgumentError, "invalid type string #{inspect(type)}: " <> message

      _ ->
        raise ArgumentError,
              "invalid type string #{inspect(type)} (write one type, e.g. \"list[str]\")"
    end
  end

  def normalize_type!({:list, t}), do: {:list, normalize_type!(t)}
  def normalize_type!({:set, t}), do: {:set, normalize_type!(t)}
  def normalize_type!({:dict, k, v}), do: {:dict, normalize_type!(k), normalize_type!(v)}

  def normalize_type!({:tuple, ts}) when is_list(ts) and ts != [] do
    {last, init} = List.pop_at(ts, -1)

    if last == :ellipsis and length(init) == 1 do
      {:tuple, [normalize_type!(hd(init)), :ellipsis]}
    else
      {:tuple, Enum.map(ts, &normalize_type!/1)}
    end
  end

  def normalize_type!({:literal, vals}) when is_list(vals) and vals != [] do
    # atoms other than true/false/nil stand for their names: {:literal, [:yes, :no]}
    vals =
      Enum.map(
        vals,
        &if(is_atom(&1) and not is_boolean(&1) and &1 != nil, do: Atom.to_string(&1), else: &1)
      )

    if Enum.all?(vals, &(is_binary(&1) or is_number(&1) or is_boolean(&1) or is_nil(&1))) do
      # typing.Literal drops repeated values (1 and 1.0 are different: strict equality)
      {:literal, Enum.uniq(vals)}
    else
      raise ArgumentError,
            "Literal values must be strings, numbers, booleans or nil, got: #{inspect(vals)}"
    end
  end

  def normalize_type!({:optional, t}), do: union([normalize_type!(t), :none])

  def normalize_type!({:union, ts}) when is_list(ts) and ts != [],
    do: union(Enum.map(ts, &normalize_type!/1))

  def normalize_type!({:enum, name, vals} = t) when is_list(vals) and vals != [] do
    name = if is_atom(name) and name != nil, do: inspect_name(name), else: name

    unless is_binary(name) and Enum.all?(vals, &(is_binary(&1) or (is_atom(&1) and &1 != nil))) do
      raise ArgumentError,
            "enum types are {:enum, \"Name\", [\"value\", ...]}, got: #{inspect(t)}"
    end

    {:enum, name, Enum.map(vals, &to_string/1)}
  end

  def normalize_type!(other) do
    raise ArgumentError, "unknown type #{inspect(other)}; " <> @supported_types
  end

  defp inspect_name(atom) do
    case Atom.to_string(atom) do
      "Elixir." <> rest -> rest |> String.split(".") |> List.last()
      s -> s
    end
  end

  # typing.Union normalization: flatten, dedupe, pull None out into :optional.
  defp union(members) do
    {flat, none?} =
      Enum.reduce(members, {[], false}, fn m, {acc, none?} ->
        {m, none?} =
          case m do
            {:optional, inner} -> {inner, true}
            _ -> {m, none?}
          end

        case m do
          :none -> {acc, true}
          {:union, ts} -> {Enum.reduce(ts, acc, &add_unique/2), none?}
          _ -> {add_unique(m, acc), none?}
        end
      end)

    inner =
      case Enum.reverse(flat) do
        [] -> :none
        [one] -> one
        many -> {:union, many}
      end

    if none? and inner != :none, do: {:optional, inner}, else: inner
  end

  defp add_unique(t, acc), do: if(t in acc, do: acc, else: [t | acc])

  @doc """
  Whether a value of `type` may be `nil` (DSPy's "None-admitting" annotations: Optional,
  unions with None, `Any`, `None`).

  ## Examples

      iex> DSPex.Signature.Field.nullable?({:optional, :int})
      true
      iex> DSPex.Signature.Field.nullable?(:str)
      false
  """
  @spec nullable?(type) :: boolean
  def nullable?({:optional, _}), do: true
  def nullable?(:none), do: true
  def nullable?(:any), do: true
  def nullable?({:literal, vals}), do: nil in vals
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
  """
  @spec infer_prefix(atom | binary) :: binary
  def infer_prefix(name) when is_atom(name), do: infer_prefix(Atom.to_string(name))

  def infer_prefix(name) when is_binary(name) do
    # The four regex substitutions of DSPy's infer_prefix, done byte by byte (same
    # left-to-right, non-overlapping matching; ~20x faster than Regex.replace here):
    #   (.)([A-Z][a-z]+) -> \1_\2, ([a-z0-9])([A-Z]) -> \1_\2,
    #   ([a-zA-Z])(\d) -> \1_\2, (\d)([a-zA-Z]) -> \1_\2
    name
    |> camel_words([])
    |> lower_upper([])
    |> letter_digit([])
    |> digit_letter([])
    |> String.split("_")
    |> Enum.map_join(" ", fn word -> if py_isupper(word), do: word, else: py_capitalize(word) end)
  end

  defguardp is_upper(c) when c in ?A..?Z
  defguardp is_lower(c) when c in ?a..?z
  defguardp is_digit(c) when c in ?0..?9
  defguardp is_alpha(c) when is_upper(c) or is_lower(c)

  defp camel_words(<<c, u, l, rest::binary>>, acc)
       when c != ?\n and is_upper(u) and is_lower(l) do
    {run, rest} = take_lower(rest, [])
    camel_words(rest, [acc, c, ?_, u, l | run])
  end

  defp camel_words(<<c, rest::binary>>, acc), do: camel_words(rest, [acc, c])
  defp camel_words(<<>>, acc), do: IO.iodata_to_binary(acc)

  defp take_lower(<<l, rest::binary>>, acc) when is_lower(l), do: take_lower(rest, [l | acc])
  defp take_lower(rest, acc), do: {Enum.reverse(acc), rest}

  defp lower_upper(<<a, b, rest::binary>>, acc) when (is_lower(a) or is_digit(a)) and is_upper(b),
    do: lower_upper(rest, [acc, a, ?_, b])

  defp lower_upper(<<c, rest::binary>>, acc), do: lower_upper(rest, [acc, c])
  defp lower_upper(<<>>, acc), do: IO.iodata_to_binary(acc)

  defp letter_digit(<<a, b, rest::binary>>, acc) when is_alpha(a) and is_digit(b),
    do: letter_digit(rest, [acc, a, ?_, b])

  defp letter_digit(<<c, rest::binary>>, acc), do: letter_digit(rest, [acc, c])
  defp letter_digit(<<>>, acc), do: IO.iodata_to_binary(acc)

  defp digit_letter(<<a, b, rest::binary>>, acc) when is_digit(a) and is_alpha(b),
    do: digit_letter(rest, [acc, a, ?_, b])

  defp digit_letter(<<c, rest::binary>>, acc), do: digit_letter(rest, [acc, c])
  defp digit_letter(<<>>, acc), do: IO.iodata_to_binary(acc)

  # Python str.isupper(): at least one cased character and no lowercase ones.
  # (Names are ASCII identifiers; other bytes count as uncased.)
  defp py_isupper(word), do: has_upper?(word) and not has_lower?(word)

  defp has_upper?(<<c, _::binary>>) when is_upper(c), do: true
  defp has_upper?(<<_, rest::binary>>), do: has_upper?(rest)
  defp has_upper?(<<>>), do: false

  defp has_lower?(<<c, _::binary>>) when is_lower(c), do: true
  defp has_lower?(<<_, rest::binary>>), do: has_lower?(rest)
  defp has_lower?(<<>>), do: false

  defp py_capitalize(""), do: ""

  defp py_capitalize(word) do
    {first, rest} = String.split_at(word, 1)
    String.upcase(first) <> String.downcase(rest)
  end

  @doc """
  Renders constraints exactly as DSPy shows them in prompts (`"greater than: 0, less than
  or equal to: 1.0"`): each constraint's phrase followed by the value formatted like
  Python's `str()`, joined with `", "`, in the order given. Accepts a field or a
  keyword list; returns `""` when there are none.

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

  def constraints_text(constraints) when is_list(constraints) do
    constraints
    |> Enum.filter(fn {k, _} -> Keyword.has_key?(@constraint_text, k) end)
    |> Enum.map_join(", ", fn {k, v} -> Keyword.fetch!(@constraint_text, k) <> py_str(v) end)
  end

  @doc """
  The type's name as DSPy shows it in prompts (`get_annotation_name`): `"str"`,
  `"list[str]"`, `"dict[str, int]"`, `"Literal['a', 'b']"`, `"Union[int, NoneType]"` for
  optionals, the enum's name for `{:enum, name, _}`.

  ## Examples

      iex> DSPex.Signature.Field.type_name({:optional, :int})
      "Union[int, NoneType]"
      iex> DSPex.Signature.Field.type_name({:literal, ["a", "it's", 1, true, nil]})
      ~s|Literal['a', "it's", 1, True, None]|
      iex> DSPex.Signature.Field.type_name({:enum, "Sentiment", ["pos", "neg"]})
      "Sentiment"
  """
  @spec type_name(type) :: binary
  def type_name(:none), do: "NoneType"
  def type_name({:tuple, [t, :ellipsis]}), do: "tuple[#{type_name(t)}, Ellipsis]"

  def type_name({:optional, {:union, ts}}),
    do: "Union[" <> Enum.map_join(ts, ", ", &type_name/1) <> ", NoneType]"

  def type_name({:optional, t}), do: "Union[#{type_name(t)}, NoneType]"
  def type_name({:union, ts}), do: "Union[" <> Enum.map_join(ts, ", ", &type_name/1) <> "]"

  def type_name({:literal, vals}) do
    "Literal[" <>
      Enum.map_join(vals, ", ", fn
        v when is_binary(v) -> quote_for_literal(v)
        v -> py_str(v)
      end) <> "]"
  end

  def type_name({:enum, name, _}), do: name
  def type_name({:list, t}), do: "list[#{type_name(t)}]"
  def type_name({:set, t}), do: "set[#{type_name(t)}]"
  def type_name({:dict, k, v}), do: "dict[#{type_name(k)}, #{type_name(v)}]"
  def type_name({:tuple, ts}), do: "tuple[" <> Enum.map_join(ts, ", ", &type_name/1) <> "]"
  def type_name(t), do: scalar_string(t)

  # DSPy's _quoted_string_for_literal_type_annotation
  defp quote_for_literal(s) do
    single? = String.contains?(s, "'")
    double? = String.contains?(s, "\"")

    cond do
      single? and not double? -> "\"" <> s <> "\""
      single? and double? -> "'" <> String.replace(s, "'", "\\'") <> "'"
      true -> "'" <> s <> "'"
    end
  end

  @doc """
  The type in DSPy's signature string syntax, so that it parses back to the same term:
  `"list[str]"`, `"Optional[int]"`, `"Union[int, str]"`, `"tuple[int, ...]"`,
  `"Literal['a', 1]"`. An enum renders as the `Literal` of its values (string syntax has
  no enums).

  ## Examples

      iex> DSPex.Signature.Field.type_string({:dict, :str, {:list, :int}})
      "dict[str, list[int]]"
      iex> DSPex.Signature.Field.type_string({:optional, {:union, [:int, :str]}})
      "Optional[Union[int, str]]"
      iex> DSPex.Signature.Field.type_string({:literal, ["it's", 2.5, false]})
      ~s|Literal["it's", 2.5, False]|
  """
  @spec type_string(type) :: binary
  def type_string({:list, t}), do: "list[#{type_string(t)}]"
  def type_string({:set, t}), do: "set[#{type_string(t)}]"
  def type_string({:dict, k, v}), do: "dict[#{type_string(k)}, #{type_string(v)}]"
  def type_string({:tuple, [t, :ellipsis]}), do: "tuple[#{type_string(t)}, ...]"
  def type_string({:tuple, ts}), do: "tuple[" <> Enum.map_join(ts, ", ", &type_string/1) <> "]"
  def type_string({:optional, t}), do: "Optional[#{type_string(t)}]"
  def type_string({:union, ts}), do: "Union[" <> Enum.map_join(ts, ", ", &type_string/1) <> "]"
  def type_string({:enum, _name, vals}), do: type_string({:literal, vals})

  def type_string({:literal, vals}) do
    "Literal[" <>
      Enum.map_join(vals, ", ", fn
        v when is_binary(v) -> py_repr_str(v)
        v -> py_str(v)
      end) <> "]"
  end

  def type_string(t), do: scalar_string(t)

  defp scalar_string(:str), do: "str"
  defp scalar_string(:int), do: "int"
  defp scalar_string(:float), do: "float"
  defp scalar_string(:bool), do: "bool"
  defp scalar_string(:any), do: "Any"
  defp scalar_string(:none), do: "None"
  defp scalar_string(:history), do: "History"
  defp scalar_string(:list), do: "list"
  defp scalar_string(:dict), do: "dict"
  defp scalar_string(:tuple), do: "tuple"
  defp scalar_string(:set), do: "set"

  @doc """
  Formats a value like Python's `str()` for the scalars DSPy puts in prompt text:
  integers as is, floats like Python's `repr` (`1.0`, `0.5`, `1e-05`, `1e+16`), booleans
  as `True`/`False`, `nil` as `None`, strings unchanged.

  ## Examples

      iex> Enum.map([3, 1.0, 0.1, 1.0e-5, 1.0e16, 123.456, true, nil], &DSPex.Signature.Field.py_str/1)
      ["3", "1.0", "0.1", "1e-05", "1e+16", "123.456", "True", "None"]
  """
  @spec py_str(term) :: binary
  def py_str(true), do: "True"
  def py_str(false), do: "False"
  def py_str(nil), do: "None"
  def py_str(v) when is_integer(v), do: Integer.to_string(v)
  def py_str(v) when is_float(v), do: py_float(v)
  def py_str(v) when is_binary(v), do: v
  def py_str(v), do: to_string(v)

  defp py_float(f) when f == 0.0 do
    if :erlang.float_to_binary(f, [:short]) |> String.starts_with?("-"), do: "-0.0", else: "0.0"
  end

  defp py_float(f) do
    short = :erlang.float_to_binary(f, [:short])

    {sign, rest} =
      if String.starts_with?(short, "-"),
        do: {"-", binary_part(short, 1, byte_size(short) - 1)},
        else: {"", short}

    {mant, exp} =
      case String.split(rest, "e") do
        [m, e] -> {m, String.to_integer(e)}
        [m] -> {m, 0}
      end

    {ip, fp} =
      case String.split(mant, ".") do
        [i, f] -> {i, f}
        [i] -> {i, ""}
      end

    digits0 = ip <> fp
    decpt0 = String.length(ip) + exp
    # strip leading zeros (adjusting the decimal point) and trailing zeros
    lead = String.length(digits0) - String.length(String.trim_leading(digits0, "0"))
    digits = digits0 |> String.trim_leading("0") |> String.trim_trailing("0")
    decpt = decpt0 - lead
    n = String.length(digits)

    body =
      cond do
        decpt > 16 or decpt < -3 ->
          {d1, drest} = String.split_at(digits, 1)
          e = decpt - 1
          esign = if e < 0, do: "-", else: "+"
          estr = e |> abs() |> Integer.to_string() |> String.pad_leading(2, "0")
          d1 <> if(drest == "", do: "", else: "." <> drest) <> "e" <> esign <> estr

        decpt <= 0 ->
          "0." <> String.duplicate("0", -decpt) <> digits

        decpt >= n ->
          digits <> String.duplicate("0", decpt - n) <> ".0"

        true ->
          {a, b} = String.split_at(digits, decpt)
          a <> "." <> b
      end

    sign <> body
  end

  # Python repr() of a str.
  defp py_repr_str(s) do
    q = if String.contains?(s, "'") and not String.contains?(s, "\""), do: "\"", else: "'"

    escaped =
      for <<c::utf8 <- s>>, into: "" do
        case c do
          ?\\ ->
            "\\\\"

          ?\n ->
            "\\n"

          ?\r ->
            "\\r"

          ?\t ->
            "\\t"

          c when c < 0x20 or c == 0x7F ->
            "\\x" <> String.pad_leading(Integer.to_string(c, 16) |> String.downcase(), 2, "0")

          c ->
            if <<c::utf8>> == q, do: "\\" <> q, else: <<c::utf8>>
        end
      end

    q <> escaped <> q
  end
end
