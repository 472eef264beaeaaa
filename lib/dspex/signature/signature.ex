defmodule DSPex.Signature do
  @moduledoc """
  A DSPy signature: instructions plus ordered input and output fields.

  Three ways to get one, all giving the same `%DSPex.Signature{}`:

    * a string in DSPy's syntax, parsed by a C parser:

          iex> {:ok, sig} = DSPex.Signature.parse("question, context: list[str] -> answer")
          iex> DSPex.Signature.input_names(sig)
          [:question, :context]
          iex> sig.instructions
          "Given the fields `question`, `context`, produce the fields `answer`."

    * a module with `use DSPex.Signature` (instructions from `@moduledoc`):

          defmodule MyApp.QA do
            @moduledoc "Answer questions with short factoid answers."
            use DSPex.Signature

            input :question
            input :context, {:list, :str}, desc: "may contain relevant facts"
            output :answer, desc: "often between 1 and 5 words"
          end

    * building or changing one with `insert/4`, `append/3`, `update_field/3`, ...

  `resolve!/1` accepts any of these (a struct, a string, or a signature module).

  ## String syntax

  Exactly one `->`; each side is a comma-separated list of `name` or `name: type`
  (Python parameter syntax; whitespace anywhere, trailing comma allowed, either side may
  be empty). Types: `str int float bool Any None`, `list[T] set[T] dict[K, V]
  tuple[A, B] tuple[T, ...]`, bare `list dict tuple set`, `Literal['a', 1, True, None]`,
  `Optional[T]`, `Union[A, B]`, `A | B`, `History`/`dspy.History`, the capitalized
  `typing` aliases (`List`, `Dict`, ...) with or without `typing.`. Untyped fields are
  `:str` with `type_defined?: false`. Errors carry the 1-based byte column:

      iex> {:error, err} = DSPex.Signature.parse("question: strng -> answer")
      iex> {err.type, err.details.column}
      {:signature_parse, 11}
      iex> err.message =~ "unknown type 'strng' at column 11; supported: str, int"
      true
  """

  import Kernel, except: [to_string: 1]

  alias DSPex.Signature.Field

  @type t :: %__MODULE__{
          instructions: binary,
          inputs: [Field.t()],
          outputs: [Field.t()]
        }

  defstruct instructions: "", inputs: [], outputs: []

  @doc false
  defmacro __using__(opts) do
    quote do
      use DSPex.Signature.DSL, unquote(opts)
    end
  end

  @doc """
  Parses a DSPy signature string. `opts`: `instructions:` (default, also for `""`:
  DSPy's ``Given the fields `a`, `b`, produce the fields `c`.``); instructions are cleaned
  like Python's `inspect.cleandoc`.

  Returns `{:error, %DSPex.Error{type: :signature_parse, details: %{column: c}}}` with a
  message saying what to write instead.

  ## Examples

      iex> {:ok, sig} = DSPex.Signature.parse("question -> answer: int", instructions: "Count.")
      iex> [q] = sig.inputs
      iex> {q.name, q.type, q.type_defined?, q.prefix}
      {:question, :str, false, "Question:"}
      iex> [a] = sig.outputs
      iex> {a.name, a.type, sig.instructions}
      {:answer, :int, "Count."}

      iex> {:error, err} = DSPex.Signature.parse("question answer")
      iex> err.message
      ~s|expected exactly one '->' but found none (write "inputs -> outputs", e.g. "question -> answer")|
  """
  @spec parse(binary, keyword) :: {:ok, t} | {:error, DSPex.Error.t()}
  def parse(string, opts \\ [])

  def parse(string, opts) when is_binary(string) and is_list(opts) do
    case DSPex.Signature.nif_parse(string) do
      {:ok, {ins, outs}} ->
        inputs = Enum.map(ins, &nif_field(&1, :input))
        outputs = Enum.map(outs, &nif_field(&1, :output))

        instructions =
          case Keyword.get(opts, :instructions) do
            # like DSPy, an empty string also means "use the default"
            empty when empty in [nil, ""] -> default_instructions(inputs, outputs)
            text when is_binary(text) -> cleandoc(text)
            other -> raise ArgumentError, "instructions: must be a string, got: #{inspect(other)}"
          end

        {:ok, %__MODULE__{instructions: instructions, inputs: inputs, outputs: outputs}}

      {:error, triple} ->
        {:error, DSPex.NIF.wrap_error(triple, :column)}
    end
  end

  def parse(other, _opts) do
    raise ArgumentError,
          "a signature string is a binary like \"question -> answer\", got: #{inspect(other)}"
  end

  @doc false
  # The raw NIF result for a signature string: {:ok, {inputs, outputs}} with fields as
  # {name_binary, type_term, type_defined?, prefix_with_colon}, or {:error, {:signature_parse, msg, column}}.
  @spec nif_parse(binary) :: {:ok, {list, list}} | {:error, {atom, binary, integer | nil}}
  def nif_parse(string) when is_binary(string) do
    DSPex.NIF.guard(fn -> DSPex.NIF.signature_parse(string) end)
  end

  @doc false
  # Whether the NIF can be called right now (it cannot while the project itself is
  # being compiled from scratch: DSPex.NIF is not loaded until compilation ends).
  @spec nif_available?() :: boolean
  def nif_available? do
    Code.ensure_loaded?(DSPex.NIF) and function_exported?(DSPex.NIF, :signature_parse, 1)
  end

  defp nif_field({name, type, defined?, prefix}, kind) do
    %Field{
      name: String.to_atom(name),
      kind: kind,
      type: type,
      type_defined?: defined?,
      desc: nil,
      prefix: prefix,
      constraints: []
    }
  end

  @doc """
  Like `parse/2` but raises `DSPex.Error`.

  ## Examples

      iex> DSPex.Signature.parse!("a, b -> c").outputs |> hd() |> Map.get(:name)
      :c
  """
  @spec parse!(binary, keyword) :: t
  def parse!(string, opts \\ []) do
    case parse(string, opts) do
      {:ok, sig} -> sig
      {:error, err} -> raise err
    end
  end

  @doc """
  Returns a `%DSPex.Signature{}` for a signature struct, a signature string, or a module
  that `use`s `DSPex.Signature`. Raises `DSPex.Error` for a bad string and
  `ArgumentError` for anything else.

  ## Examples

      iex> DSPex.Signature.resolve!("q -> a") |> DSPex.Signature.to_string()
      "q -> a"
      iex> sig = DSPex.Signature.parse!("q -> a")
      iex> DSPex.Signature.resolve!(sig) == sig
      true
  """
  @spec resolve!(t | binary | module) :: t
  def resolve!(%__MODULE__{} = sig), do: sig
  def resolve!(string) when is_binary(string), do: parse!(string)

  def resolve!(module) when is_atom(module) and module not in [nil, true, false] do
    case Code.ensure_compiled(module) do
      {:module, ^module} ->
        if function_exported?(module, :__signature__, 0) do
          module.__signature__()
        else
          raise ArgumentError,
                "#{inspect(module)} is not a signature module (add `use DSPex.Signature` and " <>
                  "input/output declarations)"
        end

      {:error, reason} ->
        raise ArgumentError,
              "signature module #{inspect(module)} is not available (#{inspect(reason)})"
    end
  end

  def resolve!(other) do
    raise ArgumentError,
          "expected a %DSPex.Signature{}, a signature string like \"question -> answer\" or a " <>
            "module that uses DSPex.Signature, got: #{inspect(other)}"
  end

  @doc """
  DSPy's default instructions for the given input and output fields (or names).

  ## Examples

      iex> DSPex.Signature.default_instructions([:a, :b], [:c])
      "Given the fields `a`, `b`, produce the fields `c`."
      iex> DSPex.Signature.default_instructions([], [:answer])
      "Given the fields , produce the fields `answer`."
  """
  @spec default_instructions([Field.t() | atom], [Field.t() | atom]) :: binary
  def default_instructions(inputs, outputs) do
    names = fn fields ->
      Enum.map_join(fields, ", ", &["`", Atom.to_string(field_name(&1)), "`"])
    end

    "Given the fields #{names.(inputs)}, produce the fields #{names.(outputs)}."
  end

  defp field_name(%Field{name: n}), do: n
  defp field_name(n), do: n

  @doc """
  Cleans instruction text like Python's `inspect.cleandoc`: tabs expanded, the first
  line's leading whitespace removed, the common indentation of the other lines removed,
  leading and trailing blank lines dropped.

  ## Examples

      iex> DSPex.Signature.cleandoc("  Answer the question.\\n    Be brief.\\n      Really.\\n\\n")
      "Answer the question.\\nBe brief.\\n  Really."
  """
  @spec cleandoc(binary) :: binary
  def cleandoc(doc) when is_binary(doc) do
    [first | rest] = doc |> expandtabs() |> String.split("\n")

    margin =
      rest
      |> Enum.flat_map(fn line ->
        content = String.length(String.trim_leading(line))
        if content > 0, do: [String.length(line) - content], else: []
      end)
      |> Enum.min(fn -> nil end)

    rest = if margin, do: Enum.map(rest, &String.slice(&1, margin..-1//1)), else: rest

    [String.trim_leading(first) | rest]
    |> Enum.drop_while(&(&1 == ""))
    |> Enum.reverse()
    |> Enum.drop_while(&(&1 == ""))
    |> Enum.reverse()
    |> Enum.join("\n")
  end

  defp expandtabs(s) do
    if String.contains?(s, "\t") do
      {out, _} =
        s
        |> String.codepoints()
        |> Enum.reduce({[], 0}, fn
          "\t", {acc, col} ->
            n = 8 - rem(col, 8)
            {[String.duplicate(" ", n) | acc], col + n}

          c, {acc, _col} when c in ["\n", "\r"] ->
            {[c | acc], 0}

          c, {acc, col} ->
            {[c | acc], col + 1}
        end)

      out |> Enum.reverse() |> IO.iodata_to_binary()
    else
      s
    end
  end

  @doc """
  Renders the signature in the string syntax; `parse/1` reads it back to the same
  fields. Untyped fields render without a type; enums render as `Literal[...]`.

  ## Examples

      iex> DSPex.Signature.parse!("question, context: list[str] -> answer, n: int | None")
      ...> |> DSPex.Signature.to_string()
      "question, context: list[str] -> answer, n: Optional[int]"
  """
  @spec to_string(t) :: binary
  def to_string(%__MODULE__{inputs: ins, outputs: outs}) do
    render = fn fields -> Enum.map_join(fields, ", ", &field_string/1) end
    render.(ins) <> " -> " <> render.(outs)
  end

  defp field_string(%Field{name: n, type: :str, type_defined?: false}), do: Atom.to_string(n)
  defp field_string(%Field{name: n, type: t}), do: "#{n}: #{Field.type_string(t)}"

  @doc """
  DSPy's `.signature` property: field names only, `"a, b -> c"`.

  ## Examples

      iex> DSPex.Signature.parse!("a: int, b -> c: list[str]") |> DSPex.Signature.signature_string()
      "a, b -> c"
  """
  @spec signature_string(t) :: binary
  def signature_string(%__MODULE__{inputs: ins, outputs: outs}) do
    Enum.map_join(ins, ", ", & &1.name) <> " -> " <> Enum.map_join(outs, ", ", & &1.name)
  end

  @doc """
  All fields, inputs first then outputs.

  ## Examples

      iex> DSPex.Signature.parse!("a, b -> c") |> DSPex.Signature.fields() |> Enum.map(& &1.name)
      [:a, :b, :c]
  """
  @spec fields(t) :: [Field.t()]
  def fields(%__MODULE__{inputs: ins, outputs: outs}), do: ins ++ outs

  @doc """
  The field named `name` (atom or string), or `nil`.

  ## Examples

      iex> sig = DSPex.Signature.parse!("a -> b: int")
      iex> DSPex.Signature.field(sig, :b).type
      :int
      iex> DSPex.Signature.field(sig, :zzz)
      nil
  """
  @spec field(t, atom | binary) :: Field.t() | nil
  def field(%__MODULE__{} = sig, name) do
    name = key(name)
    Enum.find(fields(sig), &(&1.name == name))
  end

  defp key(name) when is_atom(name), do: name

  defp key(name) when is_binary(name) do
    String.to_existing_atom(name)
  rescue
    ArgumentError -> nil
  end

  @doc """
  Input field names in order.

  ## Examples

      iex> DSPex.Signature.parse!("a, b -> c") |> DSPex.Signature.input_names()
      [:a, :b]
  """
  @spec input_names(t) :: [atom]
  def input_names(%__MODULE__{inputs: ins}), do: Enum.map(ins, & &1.name)

  @doc """
  Output field names in order.

  ## Examples

      iex> DSPex.Signature.parse!("a -> b, c") |> DSPex.Signature.output_names()
      [:b, :c]
  """
  @spec output_names(t) :: [atom]
  def output_names(%__MODULE__{outputs: outs}), do: Enum.map(outs, & &1.name)

  @doc """
  Replaces the instructions (cleaned like `inspect.cleandoc`). Fields are unchanged.

  ## Examples

      iex> sig = DSPex.Signature.parse!("q -> a") |> DSPex.Signature.with_instructions("Be brief.")
      iex> sig.instructions
      "Be brief."
  """
  @spec with_instructions(t, binary) :: t
  def with_instructions(%__MODULE__{} = sig, instructions) when is_binary(instructions) do
    %{sig | instructions: cleandoc(instructions)}
  end

  @doc """
  Appends text to the instructions, separated by a blank line (like DSPy).

  ## Examples

      iex> sig = DSPex.Signature.parse!("q -> a", instructions: "Answer.")
      iex> DSPex.Signature.append_instructions(sig, "Be brief.").instructions
      "Answer.\\n\\nBe brief."
  """
  @spec append_instructions(t, binary) :: t
  def append_instructions(%__MODULE__{} = sig, text) when is_binary(text) do
    %{sig | instructions: cleandoc(sig.instructions <> "\n\n" <> text)}
  end

  @doc """
  Inserts a new field at `index` within the inputs or the outputs (`kind:` in `opts`,
  required). A negative index counts from the end like DSPy (`-1` appends). Other opts:
  `type:`, `desc:`, `prefix:`, constraints. The instructions are kept as they are (as
  in DSPy, default instructions are not recomputed). Raises `ArgumentError` for a
  duplicate name or an index out of range.

  ## Examples

      iex> sig = DSPex.Signature.parse!("question -> answer")
      iex> sig = DSPex.Signature.insert(sig, 0, :reasoning, kind: :output, desc: "think step by step")
      iex> DSPex.Signature.to_string(sig)
      "question -> reasoning, answer"
      iex> DSPex.Signature.insert(sig, -1, :context, kind: :input, type: {:list, :str}) |> DSPex.Signature.to_string()
      "question, context: list[str] -> reasoning, answer"
  """
  @spec insert(t, integer, atom | binary, keyword) :: t
  def insert(%__MODULE__{} = sig, index, name, opts) when is_integer(index) and is_list(opts) do
    kind =
      case Keyword.fetch(opts, :kind) do
        {:ok, k} when k in [:input, :output] ->
          k

        _ ->
          raise ArgumentError,
                "insert/append/prepend need kind: :input or kind: :output, e.g. " <>
                  "DSPex.Signature.append(sig, :context, kind: :input)"
      end

    field = Field.new(name, kind, Keyword.delete(opts, :kind))

    if field(sig, field.name) do
      raise ArgumentError,
            "field #{inspect(field.name)} already exists in #{inspect(to_string(sig))} " <>
              "(field names must be distinct; use update_field/3 to change it)"
    end

    list = if kind == :input, do: sig.inputs, else: sig.outputs
    len = length(list)
    pos = if index < 0, do: index + len + 1, else: index

    if pos < 0 or pos > len do
      raise ArgumentError,
            "invalid index to insert: #{index}, index must be in the range of " <>
              "[#{-len - 1}, #{len}] for #{kind} fields"
    end

    list = List.insert_at(list, pos, field)
    if kind == :input, do: %{sig | inputs: list}, else: %{sig | outputs: list}
  end

  @doc """
  Inserts a field first among the inputs or outputs (`kind:` required). See `insert/4`.

  ## Examples

      iex> DSPex.Signature.parse!("q -> a") |> DSPex.Signature.prepend(:reasoning, kind: :output)
      ...> |> DSPex.Signature.output_names()
      [:reasoning, :a]
  """
  @spec prepend(t, atom | binary, keyword) :: t
  def prepend(sig, name, opts), do: insert(sig, 0, name, opts)

  @doc """
  Inserts a field last among the inputs or outputs (`kind:` required). See `insert/4`.

  ## Examples

      iex> DSPex.Signature.parse!("q -> a") |> DSPex.Signature.append(:context, kind: :input)
      ...> |> DSPex.Signature.input_names()
      [:q, :context]
  """
  @spec append(t, atom | binary, keyword) :: t
  def append(sig, name, opts), do: insert(sig, -1, name, opts)

  @doc """
  Removes the field `name`; a signature without it is returned unchanged (like DSPy).

  ## Examples

      iex> DSPex.Signature.parse!("a, b -> c") |> DSPex.Signature.delete(:b) |> DSPex.Signature.to_string()
      "a -> c"
  """
  @spec delete(t, atom | binary) :: t
  def delete(%__MODULE__{} = sig, name) do
    name = key(name)

    %{
      sig
      | inputs: Enum.reject(sig.inputs, &(&1.name == name)),
        outputs: Enum.reject(sig.outputs, &(&1.name == name))
    }
  end

  @doc """
  Updates the field `name` (DSPy's `with_updated_fields`): `type:`, `desc:`, `prefix:`,
  `constraints:` (replaces them) or inline constraint keys (merged). Raises
  `ArgumentError` when there is no such field.

  ## Examples

      iex> sig = DSPex.Signature.parse!("q -> answer")
      iex> sig = DSPex.Signature.update_field(sig, :answer, desc: "one word", type: :int, ge: 0)
      iex> f = DSPex.Signature.field(sig, :answer)
      iex> {f.desc, f.type, f.constraints, f.prefix}
      {"one word", :int, [ge: 0], "Answer:"}
  """
  @spec update_field(t, atom | binary, keyword) :: t
  def update_field(%__MODULE__{} = sig, name, opts) when is_list(opts) do
    old = field(sig, name)

    if old == nil do
      raise ArgumentError,
            "no field #{inspect(name)} in signature #{inspect(to_string(sig))}; fields: " <>
              inspect(Enum.map(fields(sig), & &1.name))
    end

    if Keyword.has_key?(opts, :kind) or Keyword.has_key?(opts, :name) do
      raise ArgumentError,
            "update_field/3 cannot change :kind or :name; delete/2 the field and insert/4 a new one"
    end

    inline = Enum.filter(opts, fn {k, _} -> k in Field.constraint_keys() end)

    constraints = Keyword.merge(Keyword.get(opts, :constraints, old.constraints), inline)

    base = [
      desc: old.desc,
      prefix: old.prefix,
      constraints: constraints
    ]

    base = if old.type_defined?, do: Keyword.put(base, :type, old.type), else: base

    new_opts =
      opts
      |> Keyword.drop([:constraints | Field.constraint_keys()])
      |> then(&Keyword.merge(base, &1))

    new = Field.new(old.name, old.kind, new_opts)

    replace = fn list -> Enum.map(list, &if(&1.name == old.name, do: new, else: &1)) end
    %{sig | inputs: replace.(sig.inputs), outputs: replace.(sig.outputs)}
  end

  @doc """
  Whether two signatures are equivalent (like DSPy's `equals`): same instructions and,
  for every field name, the same kind, type, description, prefix and constraints.
  Field order does not matter.

  ## Examples

      iex> a = DSPex.Signature.parse!("q, c -> a")
      iex> DSPex.Signature.equals?(a, DSPex.Signature.parse!("q,c->a"))
      true
      iex> DSPex.Signature.equals?(a, DSPex.Signature.with_instructions(a, "Other."))
      false
  """
  @spec equals?(t, t) :: boolean
  def equals?(%__MODULE__{} = a, %__MODULE__{} = b) do
    a.instructions == b.instructions and comparable(a) == comparable(b)
  end

  def equals?(_, _), do: false

  defp comparable(sig) do
    Map.new(fields(sig), fn f ->
      {f.name, {f.kind, f.type, f.type_defined?, f.desc, f.prefix, f.constraints}}
    end)
  end
end

defimpl String.Chars, for: DSPex.Signature do
  def to_string(sig), do: DSPex.Signature.to_string(sig)
end
