defmodule DSPex.Signature.DSL do
  @moduledoc """
  The macros behind `use DSPex.Signature` (see `DSPex.Signature` for the guide), DSPy's
  class-based signatures.

      defmodule MyApp.Classify do
        @moduledoc "Classify the sentiment of a sentence."
        use DSPex.Signature

        input :sentence, desc: "one sentence"
        output :sentiment, {:enum, "Sentiment", ["positive", "negative", "neutral"]}
        output :confidence, :float, ge: 0.0, le: 1.0
        output :note, "str | None", default: nil
      end

      MyApp.Classify.__signature__()
      #=> %DSPex.Signature{instructions: "Classify the sentiment of a sentence.", ...}

  Each `input`/`output` takes a name, an optional type (default `:str`, untyped) and
  options: `desc:`, `prefix:`, `default:` (outputs), and constraints `gt ge lt le
  min_length max_length multiple_of`. A type given as a string is read as a Python
  annotation in a class body, so `"int | None"` is a PEP 604 union (`UnionType[...]` in
  prompts), as in a Python class. Errors (duplicate names, unknown types, bad options)
  are compile errors pointing at the offending line.

  The signature is built and compiled on the first `__signature__/0` call and kept in
  `:persistent_term` (one entry per signature module).
  """

  @doc false
  defmacro __using__(opts) do
    quote do
      import DSPex.Signature.DSL,
        only: [input: 1, input: 2, input: 3, output: 1, output: 2, output: 3]

      Module.register_attribute(__MODULE__, :dspex_signature_fields, accumulate: true)
      @dspex_signature_opts unquote(opts)
      @before_compile DSPex.Signature.DSL
    end
  end

  @doc """
  Declares an input field: `input name`, `input name, type`, `input name, opts` or
  `input name, type, opts`.

  ## Examples

      iex> defmodule MyApp.Docs.Lookup do
      ...>   @moduledoc "Find the passages that answer the question."
      ...>   use DSPex.Signature
      ...>   input :question, desc: "asked by a user"
      ...>   input :k, :int
      ...>   output :passages, {:list, :str}
      ...> end
      iex> sig = MyApp.Docs.Lookup.__signature__()
      iex> DSPex.Signature.to_string(sig)
      "question, k: int -> passages: list[str]"
      iex> sig.instructions
      "Find the passages that answer the question."
  """
  defmacro input(name, type_or_opts \\ nil, opts \\ []) do
    field(:input, name, type_or_opts, opts, __CALLER__)
  end

  @doc """
  Declares an output field; same forms as `input/3`, plus `default:`.

  ## Examples

      iex> defmodule MyApp.Docs.Rate do
      ...>   use DSPex.Signature
      ...>   input :review
      ...>   output :stars, :int, ge: 1, le: 5
      ...>   output :summary, "str | None", default: nil
      ...> end
      iex> sig = MyApp.Docs.Rate.__signature__()
      iex> DSPex.Signature.to_string(sig)
      "review -> stars: int, summary: str | None"
      iex> summary = DSPex.Signature.field(sig, :summary)
      iex> DSPex.Signature.Field.type_name(summary.type)
      "UnionType[str, NoneType]"
      iex> summary.default
      {:value, nil}
  """
  defmacro output(name, type_or_opts \\ nil, opts \\ []) do
    field(:output, name, type_or_opts, opts, __CALLER__)
  end

  defp field(kind, name, type_or_opts, opts, caller) do
    quote do
      @dspex_signature_fields {unquote(kind), unquote(name), unquote(type_or_opts), unquote(opts),
                               unquote(caller.line)}
    end
  end

  @doc false
  defmacro __before_compile__(env) do
    specs =
      env.module
      |> Module.get_attribute(:dspex_signature_fields)
      |> Enum.reverse()
      |> Enum.map(fn {kind, name, type_or_opts, fopts, line} ->
        {type, fopts} =
          if Keyword.keyword?(type_or_opts) and type_or_opts != [] and fopts == [],
            do: {nil, type_or_opts},
            else: {type_or_opts, fopts}

        fopts = if type == nil, do: fopts, else: Keyword.put(fopts, :type, type)
        {kind, name, fopts, line}
      end)

    opts = Module.get_attribute(env.module, :dspex_signature_opts) || []

    instructions =
      case Keyword.fetch(opts, :instructions) do
        {:ok, text} when is_binary(text) ->
          text

        {:ok, other} ->
          raise CompileError,
            file: env.file,
            line: env.line,
            description: "instructions: must be a string, got: #{inspect(other)}"

        :error ->
          case Module.get_attribute(env.module, :moduledoc) do
            {_, doc} when is_binary(doc) -> doc
            doc when is_binary(doc) -> doc
            _ -> nil
          end
      end

    check_duplicates!(specs, env)
    # The type rules live in C: check every field now when the NIF is loaded (it is not
    # while DSPex itself compiles from scratch; then the first __signature__/0 checks).
    if DSPex.Signature.DSL.__nif_available__?(), do: check_fields!(specs, env)

    # a module redefined with other fields must not find the old one's signature
    version = :erlang.phash2({specs, instructions})

    quote do
      @doc false
      def __signature__ do
        DSPex.Signature.DSL.__signature__(
          {__MODULE__, unquote(version)},
          unquote(Macro.escape(specs)),
          unquote(instructions)
        )
      end
    end
  end

  defp check_duplicates!(specs, env) do
    Enum.reduce(specs, %{}, fn {kind, name, _, line}, seen ->
      case Map.fetch(seen, name) do
        {:ok, {other_kind, other_line}} ->
          raise CompileError,
            file: env.file,
            line: line,
            description:
              "duplicate field name #{inspect(name)} (already declared as #{other_kind} on " <>
                "line #{other_line}; input and output fields must have distinct names)"

        :error ->
          Map.put(seen, name, {kind, line})
      end
    end)
  end

  defp check_fields!(specs, env) do
    for {kind, name, fopts, line} <- specs do
      try do
        DSPex.Signature.Field.new(name, kind, fopts)
      rescue
        e in ArgumentError ->
          raise CompileError,
            file: env.file,
            line: line,
            description: "#{kind} #{inspect(name)}: " <> Exception.message(e)
      end
    end
  end

  @doc false
  # Whether the NIF can be called right now (it cannot while the project itself is being
  # compiled from scratch: DSPex.NIF is not loaded until compilation ends).
  def __nif_available__? do
    Code.ensure_loaded?(DSPex.NIF) and function_exported?(DSPex.NIF, :type_normalize, 2)
  end

  @doc false
  # Builds (and compiles) the module's signature once; later calls read it from
  # :persistent_term (bounded by the number of signature modules).
  def __signature__(module_version, specs, instructions) do
    key = {__MODULE__, module_version}

    case :persistent_term.get(key, nil) do
      nil ->
        fields =
          for {kind, name, fopts, _line} <- specs,
              do: DSPex.Signature.Field.new(name, kind, fopts)

        sig = DSPex.Signature.new(fields, instructions: class_instructions(instructions))
        :persistent_term.put(key, sig)
        sig

      sig ->
        sig
    end
  end

  # A class docstring is kept even when empty (DSPy only defaults a missing one).
  defp class_instructions(nil), do: nil
  defp class_instructions(""), do: " "
  defp class_instructions(text), do: text
end
