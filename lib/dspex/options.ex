defmodule DSPex.Options do
  @moduledoc """
  Declared option schemas: one list per constructor drives both validation and the
  "Options" section of its documentation, so the two cannot drift apart.

  A schema is a keyword list of `name: spec`, where `spec` is a keyword list of:

    * `:type` — what the value must be (see "Types" below; default `:any`);
    * `:default` — the value used when the option is absent (without it the option
      stays absent);
    * `:required` — `true` when the option must be given;
    * `:doc` — one line of Markdown for the generated documentation;
    * `:secret` — `true` for credentials: a bad value is never shown in an error;
    * `:alias` — the name of another option this one is an alias of (the value is
      checked with that option's type and returned under that option's name).

  Unknown options raise an `ArgumentError` that names the valid options and suggests the
  closest one for a typo. Build schemas with `schema!/1` in a module attribute, so a
  mistake in a schema fails at compile time:

      @options DSPex.Options.schema!(
        n: [type: :pos_integer, required: true, doc: "How many attempts."],
        threshold: [type: {:or, [:number, nil]}, doc: "Stop at this reward."]
      )

      @doc \"\"\"
      Builds the thing.

      ## Options

      \#{DSPex.Options.docs(@options)}
      \"\"\"
      def new(opts), do: opts |> DSPex.Options.validate!(@options, "MyThing.new/1") |> ...

  ## Types

  `:any`, `:boolean`, `:atom`, `:module` (an atom naming a module), `:string` (a
  binary), `:integer`, `:pos_integer`, `:non_neg_integer`, `:number`, `:timeout` (a
  non-negative integer or `:infinity`), `:map`, `:keyword`, `:list`, `:pid`, `:struct`
  (any struct), `{:struct, module}`, `{:list, type}`, `{:map, key_type, value_type}`,
  `{:fun, arity}`, `{:in, values}`, `{:or, types}`, `nil` (the value `nil`, for
  `{:or, [..., nil]}`).

  ## Examples

      iex> schema = DSPex.Options.schema!(n: [type: :pos_integer, default: 3], name: [type: :string])
      iex> DSPex.Options.validate!([name: "x"], schema, "Demo.new/1")
      [name: "x", n: 3]
      iex> DSPex.Options.validate!([nn: 2], schema, "Demo.new/1")
      ** (ArgumentError) unknown option :nn for Demo.new/1 (did you mean :n?); valid options: :n, :name
  """

  @typedoc "An option type (see the module doc)."
  @type type ::
          :any
          | :boolean
          | :atom
          | :module
          | :string
          | :integer
          | :pos_integer
          | :non_neg_integer
          | :number
          | :timeout
          | :map
          | :keyword
          | :list
          | :pid
          | :struct
          | nil
          | {:struct, module}
          | {:list, type}
          | {:map, type, type}
          | {:fun, non_neg_integer}
          | {:in, list}
          | {:or, [type]}

  @typedoc "A schema: `[name: [type:, default:, required:, doc:, secret:, alias:]]`."
  @type schema :: [{atom, keyword}]

  @spec_keys [:type, :default, :required, :doc, :secret, :alias]

  # Elixir's own "did you mean" threshold for undefined functions.
  @suggest_threshold 0.77

  @doc """
  Checks a schema and returns it. Raises `ArgumentError` on an unknown spec key, an
  unknown type or an alias to an undeclared option; call it in a module attribute so
  the check runs at compile time.

  ## Examples

      iex> DSPex.Options.schema!(a: [type: :boolean, default: false])
      [a: [type: :boolean, default: false]]
      iex> DSPex.Options.schema!(a: [typ: :boolean])
      ** (ArgumentError) option schema: :a has unknown spec keys [:typ]; known: [:type, :default, :required, :doc, :secret, :alias]
  """
  @spec schema!(schema) :: schema
  def schema!(schema) when is_list(schema) do
    for entry <- schema do
      case entry do
        {name, spec} when is_atom(name) and is_list(spec) ->
          check_spec!(name, spec, schema)

        other ->
          raise ArgumentError, "option schema: expected {name, spec}, got: #{inspect(other)}"
      end
    end

    schema
  end

  defp check_spec!(name, spec, schema) do
    case Keyword.keys(spec) -- @spec_keys do
      [] ->
        :ok

      bad ->
        raise ArgumentError,
              "option schema: #{inspect(name)} has unknown spec keys #{inspect(bad)}; " <>
                "known: #{inspect(@spec_keys)}"
    end

    type = Keyword.get(spec, :type, :any)

    unless valid_type?(type) do
      raise ArgumentError, "option schema: #{inspect(name)} has unknown type #{inspect(type)}"
    end

    case Keyword.fetch(spec, :alias) do
      {:ok, target} when is_atom(target) ->
        unless Keyword.has_key?(schema, target) and not Keyword.has_key?(schema[target], :alias) do
          raise ArgumentError,
                "option schema: #{inspect(name)} is an alias of #{inspect(target)}, " <>
                  "which is not a declared option"
        end

      {:ok, other} ->
        raise ArgumentError, "option schema: alias must be an atom, got: #{inspect(other)}"

      :error ->
        :ok
    end

    if Keyword.has_key?(spec, :default) and not Keyword.has_key?(spec, :alias) do
      case check_type(type, spec[:default]) do
        :ok ->
          :ok

        :error ->
          raise ArgumentError,
                "option schema: the default of #{inspect(name)} is not #{describe(type)}"
      end
    end

    :ok
  end

  @simple [
    :any,
    :boolean,
    :atom,
    :module,
    :string,
    :integer,
    :pos_integer,
    :non_neg_integer,
    :number,
    :timeout,
    :map,
    :keyword,
    :list,
    :pid,
    :struct,
    nil
  ]

  defp valid_type?(t) when t in @simple, do: true
  defp valid_type?({:struct, mod}), do: is_atom(mod)
  defp valid_type?({:list, t}), do: valid_type?(t)
  defp valid_type?({:map, k, v}), do: valid_type?(k) and valid_type?(v)
  defp valid_type?({:fun, arity}), do: is_integer(arity) and arity >= 0
  defp valid_type?({:in, values}), do: is_list(values)
  defp valid_type?({:or, types}), do: is_list(types) and Enum.all?(types, &valid_type?/1)
  defp valid_type?(_), do: false

  @doc """
  Validates `opts` (a keyword list or a map with atom keys) against `schema`. Returns
  `{:ok, keyword}` with defaults filled in and aliases resolved (the first occurrence of
  a repeated key wins), or `{:error, %DSPex.Error{type: :invalid_option}}` whose
  `details` name the `option` and, for an unknown one, the `valid` options and a
  `suggestion`. `context` names the function in messages (`"DSPex.Predict.new/2"`).

  ## Examples

      iex> schema = DSPex.Options.schema!(temperature: [type: :number])
      iex> {:error, err} = DSPex.Options.validate([tempreature: 0.2], schema, "DSPex.Predict.new/2")
      iex> err.details
      %{option: :tempreature, valid: [:temperature], suggestion: :temperature}
      iex> DSPex.Options.validate(%{temperature: 0.2}, schema, "x")
      {:ok, [temperature: 0.2]}
  """
  @spec validate(keyword | map, schema, binary) :: {:ok, keyword} | {:error, DSPex.Error.t()}
  def validate(opts, schema, context) when is_map(opts),
    do: validate(Map.to_list(opts), schema, context)

  def validate(opts, schema, context)
      when is_list(opts) and is_list(schema) and is_binary(context) do
    with :ok <- check_keyword(opts, context),
         {:ok, given} <- resolve(opts, schema, context, []),
         :ok <- check_required(given, schema, context) do
      {:ok, fill_defaults(given, schema)}
    end
  end

  def validate(opts, _schema, context) do
    {:error,
     DSPex.Error.new(
       :invalid_option,
       "options for #{context} must be a keyword list, got: #{DSPex.Error.describe(opts)}",
       %{option: nil}
     )}
  end

  @doc """
  Like `validate/3`, but returns the keyword list or raises `ArgumentError`.

  ## Examples

      iex> schema = DSPex.Options.schema!(n: [type: :pos_integer, required: true])
      iex> DSPex.Options.validate!([n: 2], schema, "Demo.new/1")
      [n: 2]
      iex> DSPex.Options.validate!([n: 0], schema, "Demo.new/1")
      ** (ArgumentError) invalid value for option :n of Demo.new/1: expected a positive integer, got: 0
  """
  @spec validate!(keyword | map, schema, binary) :: keyword
  def validate!(opts, schema, context) do
    case validate(opts, schema, context) do
      {:ok, valid} -> valid
      {:error, err} -> raise ArgumentError, err.message
    end
  end

  defp check_keyword(opts, context) do
    if Enum.all?(opts, &match?({k, _} when is_atom(k), &1)) do
      :ok
    else
      {:error,
       DSPex.Error.new(
         :invalid_option,
         "options for #{context} must be a keyword list (atom keys), got a list with " <>
           "#{Enum.count(opts, &(not match?({k, _} when is_atom(k), &1)))} other element(s)",
         %{option: nil}
       )}
    end
  end

  defp resolve([], _schema, _context, acc), do: {:ok, Enum.reverse(acc)}

  defp resolve([{key, value} | rest], schema, context, acc) do
    case Keyword.fetch(schema, key) do
      {:ok, spec} ->
        target = Keyword.get(spec, :alias, key)
        tspec = if target == key, do: spec, else: Keyword.fetch!(schema, target)

        cond do
          Keyword.has_key?(acc, target) ->
            resolve(rest, schema, context, acc)

          check_type(Keyword.get(tspec, :type, :any), value) == :ok ->
            resolve(rest, schema, context, [{target, value} | acc])

          true ->
            {:error, type_error(key, tspec, value, context)}
        end

      :error ->
        {:error, unknown_error(key, schema, context)}
    end
  end

  defp check_required(given, schema, context) do
    missing =
      for {name, spec} <- schema,
          spec[:required] == true,
          not Keyword.has_key?(given, name),
          do: name

    case missing do
      [] ->
        :ok

      [name | _] ->
        {:error,
         DSPex.Error.new(
           :invalid_option,
           "missing required option #{inspect(name)} for #{context}",
           %{option: name}
         )}
    end
  end

  defp fill_defaults(given, schema) do
    defaults =
      for {name, spec} <- schema,
          Keyword.has_key?(spec, :default),
          not Keyword.has_key?(given, name),
          do: {name, spec[:default]}

    given ++ defaults
  end

  defp unknown_error(key, schema, context) do
    valid = for {name, _} <- schema, do: name
    suggestion = suggest(key, valid)
    hint = if suggestion, do: " (did you mean #{inspect(suggestion)}?)", else: ""
    listed = valid |> Enum.sort() |> Enum.map_join(", ", &inspect/1)

    DSPex.Error.new(
      :invalid_option,
      "unknown option #{inspect(key)} for #{context}#{hint}; valid options: #{listed}",
      %{option: key, valid: valid, suggestion: suggestion}
    )
  end

  defp type_error(key, spec, value, context) do
    shown =
      if spec[:secret],
        do: "a value that is not shown (secret)",
        else: inspect(value, limit: 8, printable_limit: 80)

    DSPex.Error.new(
      :invalid_option,
      "invalid value for option #{inspect(key)} of #{context}: expected " <>
        "#{describe(Keyword.get(spec, :type, :any))}, got: #{shown}",
      %{option: key}
    )
  end

  @doc """
  The declared option closest to `key` by Jaro distance (at least 0.77, the threshold
  Elixir uses for "did you mean"), or `nil`.

  ## Examples

      iex> DSPex.Options.suggest(:max_token, [:max_tokens, :temperature])
      :max_tokens
      iex> DSPex.Options.suggest(:zzz, [:max_tokens])
      nil
  """
  @spec suggest(atom, [atom]) :: atom | nil
  def suggest(key, valid) do
    name = Atom.to_string(key)

    valid
    |> Enum.map(&{String.jaro_distance(name, Atom.to_string(&1)), &1})
    |> Enum.filter(fn {d, _} -> d >= @suggest_threshold end)
    |> Enum.max_by(fn {d, _} -> d end, fn -> {0, nil} end)
    |> elem(1)
  end

  # --- types ------------------------------------------------------------------------

  defp check_type(type, value), do: if(type?(type, value), do: :ok, else: :error)

  defp type?(:any, _), do: true
  defp type?(:boolean, v), do: is_boolean(v)
  defp type?(:atom, v), do: is_atom(v)
  defp type?(:module, v), do: is_atom(v) and not is_nil(v) and not is_boolean(v)
  defp type?(:string, v), do: is_binary(v)
  defp type?(:integer, v), do: is_integer(v)
  defp type?(:pos_integer, v), do: is_integer(v) and v > 0
  defp type?(:non_neg_integer, v), do: is_integer(v) and v >= 0
  defp type?(:number, v), do: is_number(v)
  defp type?(:timeout, v), do: v == :infinity or (is_integer(v) and v >= 0)
  defp type?(:map, v), do: is_map(v) and not is_struct(v)
  defp type?(:keyword, v), do: Keyword.keyword?(v)
  defp type?(:list, v), do: is_list(v)
  defp type?(:pid, v), do: is_pid(v)
  defp type?(:struct, v), do: is_struct(v)
  defp type?(nil, v), do: is_nil(v)
  defp type?({:struct, mod}, v), do: is_struct(v, mod)
  defp type?({:list, t}, v), do: is_list(v) and Enum.all?(v, &type?(t, &1))

  defp type?({:map, kt, vt}, v),
    do:
      is_map(v) and not is_struct(v) and
        Enum.all?(v, fn {k, x} -> type?(kt, k) and type?(vt, x) end)

  defp type?({:fun, arity}, v), do: is_function(v, arity)
  defp type?({:in, values}, v), do: v in values
  defp type?({:or, types}, v), do: Enum.any?(types, &type?(&1, v))

  @doc """
  A phrase for `type`, as used in messages and generated docs.

  ## Examples

      iex> DSPex.Options.describe({:or, [:pos_integer, nil]})
      "a positive integer or nil"
      iex> DSPex.Options.describe({:in, ["chat", "text"]})
      "one of \\"chat\\", \\"text\\""
  """
  @spec describe(type) :: binary
  def describe(:any), do: "any term"
  def describe(:boolean), do: "a boolean"
  def describe(:atom), do: "an atom"
  def describe(:module), do: "a module"
  def describe(:string), do: "a string"
  def describe(:integer), do: "an integer"
  def describe(:pos_integer), do: "a positive integer"
  def describe(:non_neg_integer), do: "a non-negative integer"
  def describe(:number), do: "a number"
  def describe(:timeout), do: "a timeout (milliseconds or :infinity)"
  def describe(:map), do: "a map"
  def describe(:keyword), do: "a keyword list"
  def describe(:list), do: "a list"
  def describe(:pid), do: "a pid"
  def describe(:struct), do: "a struct"
  def describe(nil), do: "nil"
  def describe({:struct, mod}), do: "a %#{inspect(mod)}{}"
  def describe({:list, t}), do: "a list of (#{describe(t)})"
  def describe({:map, k, v}), do: "a map of (#{describe(k)}) to (#{describe(v)})"
  def describe({:fun, arity}), do: "a function of arity #{arity}"
  def describe({:in, values}), do: "one of " <> Enum.map_join(values, ", ", &inspect/1)
  def describe({:or, types}), do: Enum.map_join(types, " or ", &describe/1)

  # --- docs -------------------------------------------------------------------------

  @doc """
  The Markdown list of a schema's options, for the "Options" section of a `@doc`.

  ## Examples

      iex> schema = DSPex.Options.schema!(
      ...>   n: [type: :pos_integer, default: 3, doc: "Attempts."],
      ...>   key: [type: :string, secret: true, doc: "The API key."],
      ...>   k: [alias: :n])
      iex> DSPex.Options.docs(schema) |> String.split("\\n")
      ["* `:n` (a positive integer) — Attempts. Default: `3`.",
       "* `:key` (a string) — The API key.",
       "* `:k` — alias of `:n`."]
  """
  @spec docs(schema) :: binary
  def docs(schema) do
    Enum.map_join(schema, "\n", fn {name, spec} ->
      case Keyword.fetch(spec, :alias) do
        {:ok, target} ->
          "* `#{inspect(name)}` — alias of `#{inspect(target)}`."

        :error ->
          required = if spec[:required], do: " Required.", else: ""

          default =
            if Keyword.has_key?(spec, :default),
              do: " Default: `#{inspect(spec[:default], limit: 10)}`.",
              else: ""

          doc = spec |> Keyword.get(:doc, "") |> String.trim()
          doc = if doc == "", do: "", else: " " <> doc

          "* `#{inspect(name)}` (#{describe(Keyword.get(spec, :type, :any))}) —" <>
            doc <> required <> default
      end
    end)
  end

  # --- composing schemas ------------------------------------------------------------

  @doc """
  The entries of `schema` named in `keys`, in schema order (to reuse part of another
  module's schema).

  ## Examples

      iex> DSPex.Options.take([a: [type: :atom], b: [type: :boolean]], [:b])
      [b: [type: :boolean]]
  """
  @spec take(schema, [atom]) :: schema
  def take(schema, keys), do: Keyword.take(schema, keys)

  @doc """
  `schema` with the defaults of some entries replaced (`defaults` is a keyword list).

  ## Examples

      iex> DSPex.Options.put_defaults([t: [type: :number]], t: 0.7)
      [t: [type: :number, default: 0.7]]
  """
  @spec put_defaults(schema, keyword) :: schema
  def put_defaults(schema, defaults) do
    Enum.map(schema, fn {name, spec} ->
      case Keyword.fetch(defaults, name) do
        {:ok, d} -> {name, Keyword.delete(spec, :default) ++ [default: d]}
        :error -> {name, spec}
      end
    end)
  end

  @doc """
  The option names of a schema.

  ## Examples

      iex> DSPex.Options.keys(a: [], b: [])
      [:a, :b]
  """
  @spec keys(schema) :: [atom]
  def keys(schema), do: Keyword.keys(schema)
end
