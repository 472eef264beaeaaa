defmodule DSPex.Local.Grammar do
  @moduledoc """
  Grammar-constrained decoding for local models: outputs that parse, by construction.

  A grammar is compiled in C (`c_src/core/grammar/`) for one model's vocabulary. During
  generation a matcher masks every token that would leave the grammar's language before
  each sampling step, and allows the end-of-generation token only where the output is
  complete. Near the token budget (`max_tokens` or the context window) only tokens that
  still let the output complete in time are allowed, so even a generation that runs out
  of tokens ends with a complete output.

  Specs:

    * `{:json_schema, schema}` — a JSON Schema (a map, or its JSON text): objects with
      `properties` / `required` / `additionalProperties`, arrays (`items`,
      `prefixItems`, `minItems`, `maxItems`), `enum`, `const`, `anyOf` / `oneOf`,
      `allOf` of objects, `$ref` / `$defs` (recursion unrolled to a bounded depth),
      strings with `minLength` / `maxLength` / `pattern` / `format`, integers and
      numbers with `minimum` / `maximum` / `exclusiveMinimum` / `exclusiveMaximum`;
    * `:json_object` — any JSON object;
    * `{:chat, signature}` — what `DSPex.Adapter.Chat` parses for the signature's
      outputs: `[[ ## field ## ]]` sections in order with typed values (int, float,
      bool as `True`/`False`, `Literal` values, JSON for lists and dicts, free text for
      `str`), then `[[ ## completed ## ]]`;
    * `{:json, signature}` — what `DSPex.Adapter.JSON` parses: one JSON object with every
      output field, typed by its JSON schema.

  `DSPex.LM.Local` uses the adapter specs automatically for every predictor call and
  honours `response_format`; see `docs/guide/local.md`.

  ## Examples

      iex> model = DSPex.Local.load!("test/dspex/local/fixtures/qwen2-qwen2-q4_0-mha-tied.gguf")
      iex> {:ok, g} = DSPex.Local.Grammar.compile(model, {:json_schema, %{"type" => "array", "items" => %{"type" => "integer"}}})
      iex> DSPex.Local.Grammar.match(g, "[1, 2]")
      :complete
      iex> DSPex.Local.Grammar.match(g, "[1, \\"a\\"]")
      {:reject, 4}
      iex> {:ok, r} = DSPex.Local.generate(model, "Numbers:", grammar: g, max_tokens: 24, seed: 3)
      iex> DSPex.Local.Grammar.match(g, r.text)
      :complete
  """

  import Bitwise

  alias DSPex.{Error, NIF, Telemetry}

  @enforce_keys [:ref, :spec]
  defstruct [:ref, :spec]

  @typedoc "A compiled grammar (a NIF resource shared by the generations that use it)."
  @type t :: %__MODULE__{ref: reference, spec: atom}

  @type spec ::
          {:json_schema, map | binary}
          | :json_object
          | {:chat, DSPex.Signature.t() | binary}
          | {:json, DSPex.Signature.t() | binary}

  @table :dspex_local_grammars
  @max_cached 64

  @limits DSPex.Options.schema!(
            json_depth: [
              type: :pos_integer,
              default: 12,
              doc: "Nesting of untyped JSON containers (dict values, `Any`), 1..32."
            ],
            ref_depth: [
              type: :pos_integer,
              default: 6,
              doc: "Levels a recursive `$ref` is unrolled to, 1..32."
            ],
            max_bytes: [
              type: :pos_integer,
              default: 64 * 1024 * 1024,
              doc: "Memory budget of the compiled automaton (an error past it)."
            ],
            cache_bytes: [
              type: :non_neg_integer,
              default: 64 * 1024 * 1024,
              doc: "Memory for cached token masks (past it masks are recomputed)."
            ]
          )

  @doc """
  The grammar limits (a `DSPex.Options` schema):

  #{DSPex.Options.docs(@limits)}

  ## Examples

      iex> Keyword.keys(DSPex.Local.Grammar.limits_schema())
      [:json_depth, :ref_depth, :max_bytes, :cache_bytes]
  """
  @spec limits_schema() :: DSPex.Options.schema()
  def limits_schema, do: @limits

  @doc """
  Compiles `spec` for `model`'s vocabulary. Options: the limits in `limits_schema/0`.
  A schema the compiler cannot turn into a grammar (unsupported keyword, unresolvable
  `$ref`, beyond a limit) is `{:error, %DSPex.Error{type: :grammar}}` with a message
  that names it.

  ## Examples

      iex> model = DSPex.Local.load!("test/dspex/local/fixtures/qwen2-qwen2-q4_0-mha-tied.gguf")
      iex> {:ok, %DSPex.Local.Grammar{spec: :chat}} = DSPex.Local.Grammar.compile(model, {:chat, "question -> answer: int"})
      iex> {:error, %DSPex.Error{type: :grammar, message: msg}} =
      ...>   DSPex.Local.Grammar.compile(model, {:json_schema, %{"$ref" => "#/$defs/Nope"}})
      iex> msg
      "schema: $ref \\"#/$defs/Nope\\" does not resolve"
  """
  @spec compile(DSPex.Local.Model.t(), spec, keyword) :: {:ok, t} | {:error, Error.t()}
  def compile(%DSPex.Local.Model{ref: ref}, spec, opts \\ []) do
    limits =
      opts |> DSPex.Options.validate!(@limits, "DSPex.Local.Grammar.compile/3") |> Map.new()

    {kind, native} = native_spec(spec)

    Telemetry.span([:dspex, :local, :grammar], %{spec: kind}, fn ->
      result =
        case native_call(native, &NIF.local_grammar(ref, &1, limits)) do
          {:ok, g} -> {:ok, %__MODULE__{ref: g, spec: kind}}
          {:error, reason} -> {:error, NIF.wrap_error(reason)}
        end

      {result, %{spec: kind, ok: match?({:ok, _}, result)}}
    end)
  end

  @doc """
  Like `compile/3` but raises `DSPex.Error`.

  ## Examples

      iex> model = DSPex.Local.load!("test/dspex/local/fixtures/qwen2-qwen2-q4_0-mha-tied.gguf")
      iex> DSPex.Local.Grammar.compile!(model, :json_object).spec
      :json_object
  """
  @spec compile!(DSPex.Local.Model.t(), spec, keyword) :: t
  def compile!(model, spec, opts \\ []) do
    case compile(model, spec, opts) do
      {:ok, g} -> g
      {:error, e} -> raise e
    end
  end

  @doc """
  Like `compile/3`, but reuses an earlier compilation of the same spec for the same
  model (the last #{@max_cached} are kept), so the masks it learned stay warm across
  calls. `DSPex.LM.Local` compiles through here.

  ## Examples

      iex> model = DSPex.Local.load!("test/dspex/local/fixtures/qwen2-qwen2-q4_0-mha-tied.gguf")
      iex> {:ok, a} = DSPex.Local.Grammar.cached(model, :json_object)
      iex> {:ok, b} = DSPex.Local.Grammar.cached(model, :json_object)
      iex> a.ref == b.ref
      true
  """
  @spec cached(DSPex.Local.Model.t(), spec, keyword) :: {:ok, t} | {:error, Error.t()}
  def cached(%DSPex.Local.Model{ref: mref} = model, spec, opts \\ []) do
    ensure_table()
    key = {mref, cache_term(spec), Enum.sort(opts)}

    case :ets.lookup(@table, key) do
      [{^key, g, _}] ->
        {:ok, g}

      [] ->
        with {:ok, g} <- compile(model, spec, opts) do
          if :ets.info(@table, :size) >= @max_cached, do: evict()
          :ets.insert(@table, {key, g, System.monotonic_time()})
          {:ok, g}
        end
    end
  end

  @doc """
  Whether `text` is in the grammar's language: `:complete`, `:prefix` (of some complete
  output) or `{:reject, byte_offset}`.

  ## Examples

      iex> model = DSPex.Local.load!("test/dspex/local/fixtures/qwen2-qwen2-q4_0-mha-tied.gguf")
      iex> g = DSPex.Local.Grammar.compile!(model, {:chat, "q -> ok: bool"})
      iex> DSPex.Local.Grammar.match(g, "[[ ## ok ## ]]\\nTrue\\n\\n[[ ## completed ## ]]")
      :complete
      iex> DSPex.Local.Grammar.match(g, "[[ ## ok ## ]]\\nTr")
      :prefix
      iex> DSPex.Local.Grammar.match(g, "[[ ## ok ## ]]\\nyes")
      {:reject, 15}
  """
  @spec match(t, binary) :: :complete | :prefix | {:reject, non_neg_integer}
  def match(%__MODULE__{ref: ref}, text) when is_binary(text),
    do: NIF.guard(fn -> NIF.local_grammar_match(ref, text) end)

  @doc """
  Counters of a grammar: automaton size (`rules`, `states`, `classes`, `bytes`,
  `max_depth`, `min_bytes` — the shortest complete output), its mask cache
  (`cache_entries`, `cache_bytes`, `walks`, `walk_ns`) and the masks applied so far
  (`masks`, `mask_ns`: their count and total time).

  ## Examples

      iex> model = DSPex.Local.load!("test/dspex/local/fixtures/qwen2-qwen2-q4_0-mha-tied.gguf")
      iex> DSPex.Local.Grammar.stats(DSPex.Local.Grammar.compile!(model, {:chat, "q -> a"})).min_bytes
      37
  """
  @spec stats(t) :: map
  def stats(%__MODULE__{ref: ref}), do: NIF.local_grammar_stats(ref)

  @doc """
  A random output of the grammar, without a model: each step masks uniformly random
  logits and takes the best allowed token, until the grammar ends or `max_tokens`
  (default 256; the length budget steers the output to complete in time). Returns
  `%{text:, tokens:, ended:, mask_ns:}` — `mask_ns` is the time spent building masks.
  Handy to see what a schema admits, and to measure mask cost on a vocabulary
  (`bench/grammar.exs`). Options: `max_tokens:`, `seed:`.

  ## Examples

      iex> model = DSPex.Local.load!("test/dspex/local/fixtures/qwen2-qwen2-q4_0-mha-tied.gguf")
      iex> g = DSPex.Local.Grammar.compile!(model, {:json_schema, %{"enum" => ["red", "green"]}})
      iex> %{text: text, ended: true} = DSPex.Local.Grammar.sample(g, seed: 1)
      iex> String.trim(text) in [~s("red"), ~s("green")]
      true
  """
  @spec sample(t, keyword) :: %{
          text: binary,
          tokens: non_neg_integer,
          ended: boolean,
          mask_ns: non_neg_integer
        }
  def sample(%__MODULE__{ref: ref}, opts \\ []) do
    opts = Keyword.validate!(opts, max_tokens: 256, seed: nil)
    seed = opts[:seed] || :rand.uniform(1 <<< 53)

    {text, n, ended, ns} =
      NIF.guard(fn -> NIF.local_grammar_sample(ref, opts[:max_tokens], seed) end)

    %{text: text, tokens: n, ended: ended, mask_ns: ns}
  end

  @doc false
  # The spec a predictor call needs: {:chat, sig} / {:json, sig} for the two adapters, nil
  # for others.
  def for_call(%{signature: %DSPex.Signature{} = sig, adapter: DSPex.Adapter.Chat}),
    do: {:chat, sig}

  def for_call(%{signature: %DSPex.Signature{} = sig, adapter: DSPex.Adapter.JSON}),
    do: {:json, sig}

  def for_call(_), do: nil

  @doc false
  # The spec response_format asks for (OpenAI's shape, string or atom keys), nil for
  # plain text; raises ArgumentError for a shape it does not know.
  def for_response_format(nil), do: nil

  def for_response_format(rf) when is_map(rf) do
    case field(rf, :type) do
      t when t in ["text", :text] ->
        nil

      t when t in ["json_object", :json_object] ->
        :json_object

      t when t in ["json_schema", :json_schema] ->
        case field(rf, :json_schema) do
          %{} = js ->
            case field(js, :schema) do
              nil -> {:json_schema, js}
              schema -> {:json_schema, schema}
            end

          _ ->
            raise ArgumentError,
                  "response_format: type json_schema needs json_schema: %{schema: ...}"
        end

      other ->
        raise ArgumentError,
              "response_format: unknown type #{inspect(other)}; use \"json_object\", " <>
                "\"json_schema\" or \"text\""
    end
  end

  def for_response_format(other),
    do: raise(ArgumentError, "response_format: expected a map, got: #{inspect(other)}")

  defp field(map, key), do: Map.get(map, key, Map.get(map, Atom.to_string(key)))

  defp native_spec(:json_object), do: {:json_object, :json_object}

  defp native_spec({:json_schema, schema}) when is_binary(schema),
    do: {:json_schema, {:json_schema, schema}}

  defp native_spec({:json_schema, schema}) when is_map(schema) or is_boolean(schema) do
    case DSPex.JSON.encode(schema) do
      {:ok, text} -> {:json_schema, {:json_schema, text}}
      {:error, e} -> raise ArgumentError, "json_schema: not encodable as JSON: #{e.message}"
    end
  end

  defp native_spec({kind, sig}) when kind in [:chat, :json],
    do: {kind, {kind, DSPex.Adapter.Native.resolve(sig)}}

  defp native_spec(other) do
    raise ArgumentError,
          "grammar spec: expected {:json_schema, schema}, :json_object, {:chat, signature} " <>
            "or {:json, signature}, got: #{inspect(other, limit: 5)}"
  end

  # The adapter specs go to C as a compiled signature (compiled on :stale, as the
  # adapters' own calls do).
  defp native_call({kind, %DSPex.Signature{} = sig}, fun) do
    DSPex.Adapter.Native.call(sig, nil, fn id, key, _ -> fun.({kind, id, key}) end)
  end

  defp native_call(native, fun), do: NIF.guard(fn -> fun.(native) end)

  # What identifies a spec in the cache: the adapter specs by their output fields (names
  # and types decide the grammar; instructions and inputs do not).
  defp cache_term({kind, %DSPex.Signature{outputs: outs}}) when kind in [:chat, :json],
    do: {kind, Enum.map(outs, &{&1.name, &1.type})}

  defp cache_term({kind, sig}) when kind in [:chat, :json] and is_binary(sig),
    do: cache_term({kind, DSPex.Signature.resolve!(sig)})

  defp cache_term(other), do: other

  defp ensure_table do
    if :ets.whereis(@table) == :undefined do
      DSPex.TableOwner.ensure_started(
        name: __MODULE__,
        tables: [{@table, [:set, read_concurrency: true]}]
      )
    end

    :ok
  end

  # drops the oldest quarter
  defp evict do
    entries = :ets.tab2list(@table) |> Enum.sort_by(&elem(&1, 2))
    entries |> Enum.take(div(@max_cached, 4)) |> Enum.each(&:ets.delete(@table, elem(&1, 0)))
  end
end
