defmodule DSPex.Signature.DSL do
  @moduledoc """
  The macros behind `use DSPex.Signature` (see `DSPex.Signature` for the guide).

      defmodule MyApp.Classify do
        @moduledoc "Classify the sentiment of a sentence."
        use DSPex.Signature

        input :sentence, desc: "one sentence"
        output :sentiment, {:enum, "Sentiment", ["positive", "negative", "neutral"]}
        output :confidence, :float, ge: 0.0, le: 1.0
      end

      MyApp.Classify.__signature__()
      #=> %DSPex.Signature{instructions: "Classify the sentiment of a sentence.", ...}

  Each `input`/`output` takes a name, an optional type (default `:str`, untyped) and
  options: `desc:`, `prefix:`, and constraints `gt ge lt le min_length max_length
  multiple_of`. Errors (duplicate names, unknown types, bad options) are compile errors
  pointing at the offending line.
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
  """
  defmacro input(name, type_or_opts \\ nil, opts \\ []) do
    field(:input, name, type_or_opts, opts, __CALLER__)
  end

  @doc """
  Declares an output field; same forms as `input/3`.
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
    specs = env.module |> Module.get_attribute(:dspex_signature_fields) |> Enum.reverse()
    opts = Module.get_attribute(env.module, :dspex_signature_opts) || []

    fields =
      Enum.map(specs, fn {kind, name, type_or_opts, fopts, line} ->
        {type, fopts} =
          cond do
            Keyword.keyword?(type_or_opts) and type_or_opts != [] and fopts == [] ->
              {nil, type_or_opts}

            true ->
              {type_or_opts, fopts}
          end

        # A DSPy type string needs the NIF. While the project compiles from scratch the
        # NIF is not loaded yet: then the string is parsed on the first __signature__/0.
        {type, pending} =
          if is_binary(type) and not DSPex.Signature.nif_available?(),
            do: {:str, type},
            else: {type, nil}

        fopts = if type == nil, do: fopts, else: Keyword.put(fopts, :type, type)

        try do
          field = DSPex.Signature.Field.new(name, kind, fopts)
          {if(pending, do: {:pending, field, pending}, else: field), line}
        rescue
          e in ArgumentError ->
            raise CompileError,
              file: env.file,
              line: line,
              description: "#{kind} #{inspect(name)}: " <> Exception.message(e)
        end
      end)

    pending = for {{:pending, f, type}, _} <- fields, do: {f.name, type}
    fields = Enum.map(fields, fn {f, line} -> {unpend(f), line} end)

    Enum.reduce(fields, %{}, fn {f, line}, seen ->
      case Map.fetch(seen, f.name) do
        {:ok, {other_kind, other_line}} ->
          raise CompileError,
            file: env.file,
            line: line,
            description:
              "duplicate field name #{inspect(f.name)} (already declared as #{other_kind} on " <>
                "line #{other_line}; input and output fields must have distinct names)"

        _ ->
          Map.put(seen, f.name, {f.kind, line})
      end
    end)

    fields = Enum.map(fields, &elem(&1, 0))
    inputs = Enum.filter(fields, &(&1.kind == :input))
    outputs = Enum.filter(fields, &(&1.kind == :output))

    instructions =
      case Keyword.get(opts, :instructions) do
        text when is_binary(text) ->
          DSPex.Signature.cleandoc(text)

        nil ->
          case Module.get_attribute(env.module, :moduledoc) do
            {_, doc} when is_binary(doc) -> DSPex.Signature.cleandoc(doc)
            doc when is_binary(doc) -> DSPex.Signature.cleandoc(doc)
            _ -> DSPex.Signature.default_instructions(inputs, outputs)
          end

        other ->
          raise CompileError,
            file: env.file,
            line: env.line,
            description: "instructions: must be a string, got: #{inspect(other)}"
      end

    sig = %DSPex.Signature{instructions: instructions, inputs: inputs, outputs: outputs}

    if pending == [] do
      quote do
        @doc false
        def __signature__, do: unquote(Macro.escape(sig))
      end
    else
      quote do
        @doc false
        def __signature__ do
          DSPex.Signature.DSL.__resolve_pending__(
            __MODULE__,
            unquote(Macro.escape(sig)),
            unquote(Macro.escape(pending))
          )
        end
      end
    end
  end

  defp unpend({:pending, f, _}), do: f
  defp unpend(f), do: f

  @doc false
  # Parses DSL type strings that could not be parsed at compile time; cached per module.
  def __resolve_pending__(module, sig, pending) do
    key = {__MODULE__, module}

    case :persistent_term.get(key, nil) do
      nil ->
        resolved =
          Enum.reduce(pending, sig, fn {name, type}, acc ->
            DSPex.Signature.update_field(acc, name, type: type)
          end)

        :persistent_term.put(key, resolved)
        resolved

      resolved ->
        resolved
    end
  end
end
