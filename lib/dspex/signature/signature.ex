defmodule DSPex.Signature do
  @moduledoc """
  A DSPy signature: instructions plus ordered input and output fields.

  Four ways to get one, all giving the same `%DSPex.Signature{}`:

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

    * a list of fields (DSPy's dict form) with `new/2`;
    * changing one with `insert/4`, `append/3`, `update_field/3`, ...

  `resolve!/1` accepts any of these (a struct, a string, or a signature module).

  ## Compiled signatures

  A signature made by these functions is compiled once, in C, into the form the adapters
  render and parse with: a NIF resource kept by DSPex (c_src/nif/nif_compiled.h) under an
  id derived from the signature's content, which the struct holds in its `compiled`
  field (hidden from `inspect`). The struct stays plain data, so it compares with `==`,
  prints, saves and fits in a module attribute. The compiled form remembers the fields
  and instructions it was made from: a signature changed any other way (say
  `%{sig | outputs: [...]}`) is compiled again when it is next used, never rendered from
  a stale one. `equals?/2` is DSPy's comparison.

  ## String syntax

  Exactly one `->`; each side is a comma-separated list of `name` or `name: type`
  (Python parameter syntax; whitespace anywhere, trailing comma allowed, either side may
  be empty). Types: `str int float bool Any None`, `list[T] set[T] frozenset[T]
  dict[K, V] tuple[A, B] tuple[T, ...]`, bare `list dict tuple set frozenset`,
  `Literal['a', 1, True, None]`, `Optional[T]`, `Union[A, B]`, `A | B`,
  `datetime.datetime`, `datetime.date`, `History`/`dspy.History`, the capitalized
  `typing` aliases (`List`, `Dict`, ...) with or without `typing.`. Names may use
  non-ASCII letters (`résumé`). Untyped fields are `:str` with `type_defined?: false`.
  Errors carry the 1-based byte column:

      iex> {:error, err} = DSPex.Signature.parse("question: strng -> answer")
      iex> {err.type, err.details.column}
      {:signature_parse, 11}
      iex> err.message =~ "unknown type 'strng' at column 11; supported: str, int"
      true

  ## Atoms

  Field names are atoms. Parsing untrusted text never exhausts the atom table: names that
  already exist as atoms are always accepted, `atoms: :existing` never creates one, and
  `atoms: :create` (the default) creates new ones only within a VM-wide budget (see
  `DSPex.Signature.Atoms`).
  """

  import Kernel, except: [to_string: 1]

  alias DSPex.NIF
  alias DSPex.Signature.{Atoms, Field}

  @type t :: %__MODULE__{
          instructions: binary,
          inputs: [Field.t()],
          outputs: [Field.t()],
          compiled: non_neg_integer | nil
        }

  @derive {Inspect, except: [:compiled]}
  defstruct instructions: "", inputs: [], outputs: [], compiled: nil

  @doc false
  defmacro __using__(opts) do
    quote do
      use DSPex.Signature.DSL, unquote(opts)
    end
  end

  @doc """
  Parses a DSPy signature string.

  Options:

    * `:instructions` — the instructions; `nil` or `""` give DSPy's default
      (``Given the fields `a`, `b`, produce the fields `c`.``); others are cleaned like
      Python's `inspect.cleandoc`;
    * `:atoms` — `:create` (default) or `:existing`, see "Atoms" above.

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

      iex> {:error, err} = DSPex.Signature.parse("q -> never_seen_before_name_41d", atoms: :existing)
      iex> {err.type, err.details.field, err.details.option}
      {:signature_parse, "never_seen_before_name_41d", :atoms}
  """
  @spec parse(binary, keyword) :: {:ok, t} | {:error, DSPex.Error.t()}
  def parse(string, opts \\ [])

  def parse(string, opts) when is_binary(string) and is_list(opts) do
    atoms = Keyword.get(opts, :atoms, :create)

    if atoms not in [:create, :existing] do
      raise ArgumentError, "atoms: must be :create or :existing, got: #{inspect(atoms)}"
    end

    with {:ok, {ins, outs}} <- nif_parse(string),
         {:ok, inputs} <- nif_fields(ins, :input, atoms),
         {:ok, outputs} <- nif_fields(outs, :output, atoms) do
      instructions = instructions_for(Keyword.get(opts, :instructions), inputs, outputs)
      {:ok, compile(%__MODULE__{instructions: instructions, inputs: inputs, outputs: outputs})}
    else
      {:error, {_, _, _} = triple} -> {:error, NIF.wrap_error(triple, :column)}
      {:error, %DSPex.Error{}} = error -> error
    end
  end

  def parse(other, _opts) do
    raise ArgumentError,
          "a signature string is a binary like \"question -> answer\", got: #{inspect(other)}"
  end

  defp nif_parse(string), do: NIF.guard(fn -> NIF.signature_parse(string, :string) end)

  defp nif_fields(fields, kind, atoms) do
    Enum.reduce_while(fields, {:ok, []}, fn {name, type, defined?, prefix, column}, {:ok, acc} ->
      case field_atom(name, atoms) do
        {:ok, atom} ->
          field = %Field{
            name: atom,
            kind: kind,
            type: type,
            type_defined?: defined?,
            prefix: prefix
          }

          {:cont, {:ok, [field | acc]}}

        {:error, message} ->
          details = %{column: column, field: name, option: :atoms}
          {:halt, {:error, DSPex.Error.new(:signature_parse, message, details)}}
      end
    end)
    |> case do
      {:ok, acc} -> {:ok, Enum.reverse(acc)}
      error -> error
    end
  end

  # The C parser returns existing atoms as atoms and other names as binaries.
  defp field_atom(name, _atoms) when is_atom(name), do: {:ok, name}
  defp field_atom(name, atoms), do: Atoms.to_atom(name, atoms)

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
  Builds a signature from fields, like DSPy's dict form
  (`dspy.Signature({"q": (str, InputField()), ...}, "instructions")`): inputs keep their
  order, then outputs. `opts`: `instructions:` as in `parse/2`. Raises `ArgumentError`
  for repeated names.

  ## Examples

      iex> alias DSPex.Signature.Field
      iex> sig = DSPex.Signature.new([Field.new(:q, :input), Field.new(:n, :output, type: :int, default: 0)])
      iex> {DSPex.Signature.to_string(sig), sig.instructions}
      {"q -> n: int", "Given the fields `q`, produce the fields `n`."}
  """
  @spec new([Field.t()], keyword) :: t
  def new(fields, opts \\ [])

  def new(fields, opts) when is_list(fields) and is_list(opts) do
    check_fields!(fields)
    {inputs, outputs} = Enum.split_with(fields, &match?(%Field{kind: :input}, &1))

    duplicates = (fields |> Enum.map(& &1.name)) -- Enum.uniq(Enum.map(fields, & &1.name))

    if duplicates != [] do
      raise ArgumentError,
            "duplicate field names #{inspect(Enum.uniq(duplicates))} (input and output fields " <>
              "must have distinct names)"
    end

    instructions = instructions_for(Keyword.get(opts, :instructions), inputs, outputs)
    compile(%__MODULE__{instructions: instructions, inputs: inputs, outputs: outputs})
  end

  def new(fields, opts) do
    raise ArgumentError,
          "DSPex.Signature.new/2 takes a list of %DSPex.Signature.Field{} and a keyword list, " <>
            "got: #{inspect(fields, limit: 5)}, #{inspect(opts, limit: 5)}"
  end

  defp check_fields!([%Field{} | rest]), do: check_fields!(rest)
  defp check_fields!([]), do: :ok

  defp check_fields!([other | _]),
    do:
      raise(
        ArgumentError,
        "signature fields are %DSPex.Signature.Field{}, got: #{inspect(other)}"
      )

  defp check_fields!(tail),
    do:
      raise(ArgumentError, "signature fields must be a proper list, its tail is #{inspect(tail)}")

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

  # DSPy's rule at every signature change (make_signature and the metaclass): no
  # instructions or "" give the default for the fields; anything else is cleandoc-ed (so
  # blank text gives "", and the next change then gives the default).
  defp instructions_for(text, inputs, outputs) when text in [nil, ""],
    do: default_instructions(inputs, outputs)

  defp instructions_for(text, _inputs, _outputs) when is_binary(text), do: cleandoc(text)

  defp instructions_for(other, _inputs, _outputs) do
    raise ArgumentError, "instructions: must be a string, got: #{inspect(other)}"
  end

  # A signature rebuilt from changed fields (DSPy: Signature(fields, cls.instructions)).
  defp rebuild(%__MODULE__{} = sig, inputs, outputs) do
    instructions = instructions_for(sig.instructions, inputs, outputs)
    compile(%{sig | instructions: instructions, inputs: inputs, outputs: outputs})
  end

  @doc """
  Cleans instruction text like Python's `inspect.cleandoc`: tabs expanded, the first
  line's leading whitespace removed, the common indentation of the other lines removed,
  leading and trailing blank lines dropped.

  ## Examples

      iex> DSPex.Signature.cleandoc("  Answer the question.\\n    Be brief.\\n      Really.\\n\\n")
      "Answer the question.\\nBe brief.\\n  Really."
  """
  @spec cleandoc(binary) :: binary
  def cleandoc(doc) when is_binary(doc), do: NIF.guard(fn -> NIF.cleandoc(doc) end)

  def cleandoc(other),
    do: raise(ArgumentError, "cleandoc/1 takes a string, got: #{inspect(other, limit: 5)}")

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
    IO.iodata_to_binary([names(ins), " -> ", names(outs)])
  end

  defp names([]), do: []
  defp names([f]), do: Atom.to_string(f.name)
  defp names([f | rest]), do: [Atom.to_string(f.name), ", " | names(rest)]

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
    case Atoms.to_atom(name, :existing) do
      {:ok, atom} -> atom
      {:error, _} -> nil
    end
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
  Replaces the instructions (DSPy's `with_instructions`): cleaned like
  `inspect.cleandoc`; `""` gives the default instructions. Fields are unchanged.

  ## Examples

      iex> sig = DSPex.Signature.parse!("q -> a") |> DSPex.Signature.with_instructions("Be brief.")
      iex> sig.instructions
      "Be brief."
      iex> DSPex.Signature.with_instructions(sig, "").instructions
      "Given the fields `q`, produce the fields `a`."
  """
  @spec with_instructions(t, binary) :: t
  def with_instructions(%__MODULE__{} = sig, instructions) when is_binary(instructions) do
    compile(%{sig | instructions: instructions_for(instructions, sig.inputs, sig.outputs)})
  end

  def with_instructions(%__MODULE__{}, other) do
    raise ArgumentError, "instructions must be a string, got: #{inspect(other, limit: 5)}"
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
    joined = (sig.instructions || "") <> "\n\n" <> text
    compile(%{sig | instructions: instructions_for(joined, sig.inputs, sig.outputs)})
  end

  @doc """
  Inserts a new field at `index` within the inputs or the outputs (`kind:` in `opts`,
  required). A negative index counts from the end like DSPy (`-1` appends). Other opts:
  those of `DSPex.Signature.Field.new/3` (`type:`, `desc:`, `prefix:`, constraints,
  `default:`, `atoms:`). As in DSPy the instructions are kept (cleaned again; empty
  instructions become the default ones of the new fields). Raises `ArgumentError` for a
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

    if kind == :input,
      do: rebuild(sig, list, sig.outputs),
      else: rebuild(sig, sig.inputs, list)
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

    rebuild(
      sig,
      Enum.reject(sig.inputs, &(&1.name == name)),
      Enum.reject(sig.outputs, &(&1.name == name))
    )
  end

  @doc """
  Updates the field `name` (DSPy's `with_updated_fields`): `type:`, `desc:`, `prefix:`,
  `default:`, `constraints:` (replaces them) or inline constraint keys (merged). Raises
  `ArgumentError` when there is no such field. `with_updated_fields/3` is the same
  function under DSPy's name.

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

    base = [desc: old.desc, prefix: old.prefix, constraints: constraints]
    base = if old.type_defined?, do: Keyword.put(base, :type, old.type), else: base
    base = if old.default, do: Keyword.put(base, :default, elem(old.default, 1)), else: base

    new_opts =
      opts
      |> Keyword.drop([:constraints | Field.constraint_keys()])
      |> then(&Keyword.merge(base, &1))

    new = Field.new(old.name, old.kind, new_opts)
    replace = fn list -> Enum.map(list, &if(&1.name == old.name, do: new, else: &1)) end
    rebuild(sig, replace.(sig.inputs), replace.(sig.outputs))
  end

  @doc """
  DSPy's name for `update_field/3`.

  ## Examples

      iex> sig = DSPex.Signature.parse!("q -> a") |> DSPex.Signature.with_updated_fields(:a, desc: "yes or no")
      iex> DSPex.Signature.field(sig, :a).desc
      "yes or no"
  """
  @spec with_updated_fields(t, atom | binary, keyword) :: t
  def with_updated_fields(sig, name, opts), do: update_field(sig, name, opts)

  @doc """
  Whether two signatures are equivalent (like DSPy's `equals`): same instructions and,
  for every field name, the same kind, type, description, prefix, constraints and default.
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
      {f.name, {f.kind, f.type, f.type_defined?, f.desc, f.prefix, f.constraints, f.default}}
    end)
  end

  # ------------------------------------------------------------------------------------
  # Compiled form (c_src/nif/nif_compiled.c)

  @doc false
  # The signature compiled (once per distinct content; the C cache keeps it), its id set.
  @spec compile(t) :: t
  def compile(%__MODULE__{} = sig) do
    key = compile_key(sig)
    %{sig | compiled: compile_id(sig, key)}
  end

  @doc false
  # What a compiled signature is checked against: the signature's own terms.
  @spec compile_key(t) :: NIF.compile_key()
  def compile_key(%__MODULE__{instructions: i, inputs: ins, outputs: outs}), do: {i, ins, outs}

  @doc false
  # Compiles `key` (from plain tagged data: the NIF never reads struct internals) and
  # returns its id: a hash of the key, so equal signatures get equal ids.
  @spec compile_id(t, NIF.compile_key()) :: non_neg_integer
  def compile_id(%__MODULE__{} = sig, key) do
    fields =
      Enum.map(sig.inputs, &plain_field(:input, &1)) ++
        Enum.map(sig.outputs, &plain_field(:output, &1))

    id = :erlang.phash2(key, 4_294_967_296)
    :ok = NIF.guard(fn -> NIF.signature_compile(id, key, {sig.instructions || "", fields}) end)
    id
  end

  defp plain_field(kind, %Field{} = f) do
    {kind, f.name, DSPex.Schema.expand(f.type), f.type_defined? != false, f.desc,
     f.constraints || [], f.default}
  end

  defp plain_field(_kind, other) do
    raise ArgumentError, "signature fields are %DSPex.Signature.Field{}, got: #{inspect(other)}"
  end
end

defimpl String.Chars, for: DSPex.Signature do
  def to_string(sig), do: DSPex.Signature.to_string(sig)
end
