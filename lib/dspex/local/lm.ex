defmodule DSPex.LM.Local do
  @own_options [
    threads: [
      type: :pos_integer,
      doc: "Matmul threads owned by the model (default: the dirty CPU schedulers)."
    ],
    simd: [type: :boolean, doc: "`false` forces the scalar reference kernels."],
    n_ctx: [type: :pos_integer, doc: "Context window (default: min(trained, 4096))."],
    chat_template: [
      type: :string,
      doc: "Chat template family (`\"chatml\"`, `\"llama3\"`, ...) instead of the file's."
    ],
    prefix_cache: [
      type: :non_neg_integer,
      doc: "Bytes of prompt K/V kept for shared-prefix reuse (default 256 MiB; 0 = off)."
    ],
    batching: [
      type: :boolean,
      doc: "Decode concurrent requests together (continuous batching; default true)."
    ],
    max_seqs: [type: :pos_integer, doc: "Requests decoded at once when batching (default 8)."],
    batch_tokens: [
      type: :pos_integer,
      doc: "Rows per batched forward pass (default 128, max_seqs..512)."
    ],
    cache: [type: :boolean, default: true, doc: "Use the response cache."],
    constrained: [
      type: :boolean,
      default: true,
      doc: "Grammar-constrained decoding of predictor calls (ChatAdapter / JSONAdapter)."
    ],
    grammar: [
      type: :keyword,
      default: [],
      doc: "Grammar limits (`DSPex.Local.Grammar.limits_schema/0`)."
    ],
    temperature: [type: :number, default: 0.0, doc: "Sampling temperature (0 = greedy)."],
    max_tokens: [type: :pos_integer, default: 1024, doc: "Most tokens to generate."],
    top_k: [type: :non_neg_integer, doc: "Top-k sampling (llama.cpp default 40)."],
    min_p: [type: :number, doc: "Min-p sampling (llama.cpp default 0.05)."],
    repeat_penalty: [type: :number, doc: "Repetition penalty (1.0 = off)."],
    repeat_last_n: [type: :integer, doc: "Window of the penalties (-1 = everything)."],
    ignore_eos: [
      type: :boolean,
      doc: "Keep going after end-of-generation tokens (no grammar is applied then)."
    ]
  ]

  @options DSPex.Options.schema!(
             @own_options ++
               Keyword.drop(DSPex.BaseLM.params_schema(), Keyword.keys(@own_options))
           )

  @moduledoc """
  An LM (`DSPex.BaseLM`) backed by the in-process GGUF engine (`DSPex.Local`): Predict,
  ChainOfThought, Evaluate, streaming and the response cache work as with a remote
  provider, and usage holds real token counts.

  `DSPex.LM.new("local/<alias or path>", opts)` builds one (the `local/` prefix is
  delegated here), as does `new/2` directly:

      lm = DSPex.LM.new("local/smollm2", temperature: 0.0, max_tokens: 256)
      lm = DSPex.LM.Local.new("/models/qwen2.5-0.5b-instruct-q8_0.gguf", n_ctx: 4096, threads: 4)
      DSPex.configure(lm: lm)

  ## Structured outputs by construction

  Generation is grammar-constrained (`DSPex.Local.Grammar`) unless `constrained: false`:

    * a predictor call through `DSPex.Adapter.Chat` (the call context names the
      signature and the adapter) can only produce `[[ ## field ## ]]` sections in order,
      each value typed as the adapter parses it, then `[[ ## completed ## ]]`;
    * a call through `DSPex.Adapter.JSON` can only produce the JSON object with every
      output field, typed by its JSON schema;
    * `response_format: %{type: "json_schema", json_schema: %{schema: schema}}` (OpenAI's
      shape) constrains to the schema and `%{type: "json_object"}` to any JSON object —
      always, also with `constrained: false`.

  So a DSPex program on a local model never needs a parse retry, even on a tiny model;
  near `max_tokens` the output is steered to complete in time. A grammar that cannot be
  built (a `Literal` output whose values the ChatAdapter could never parse back, an
  unsupported schema) is `{:error, %DSPex.Error{type: :grammar}}`.

  ## Options

  #{DSPex.Options.docs(@options)}
  """

  @behaviour DSPex.BaseLM

  alias DSPex.{Error, Telemetry}
  alias DSPex.LM.Cache
  alias DSPex.Local.Grammar

  defstruct model: nil, local: nil, kwargs: %{}, cache: true, constrained: true, grammar: []

  @type t :: %__MODULE__{
          model: binary,
          local: DSPex.Local.Model.t(),
          kwargs: map,
          cache: boolean,
          constrained: boolean,
          grammar: keyword
        }

  @load_opts [
    :threads,
    :simd,
    :n_ctx,
    :chat_template,
    :prefix_cache,
    :batching,
    :max_seqs,
    :batch_tokens
  ]
  @gen_keys ~w(max_tokens temperature top_k top_p min_p repeat_penalty repeat_last_n
               frequency_penalty presence_penalty seed stop n_ctx ignore_eos)a
  @ignored ~w(tools tool_choice logprobs top_logprobs rollout_id cache n
              num_retries timeout stream reasoning_effort)a

  @doc """
  Loads the model (an alias from `DSPex.Local.Models` or a path) and returns the LM.
  Options are checked against the schema in the module doc: an unknown one raises
  `ArgumentError` naming the valid ones. Raises `DSPex.Error` (`:model_not_found`,
  `:model_load`) when the model cannot be loaded.

  ## Examples

      iex> DSPex.LM.Local.new("test/dspex/local/fixtures/qwen2-qwen2-q4_0-mha-tied.gguf").model
      "local/test/dspex/local/fixtures/qwen2-qwen2-q4_0-mha-tied.gguf"
      iex> DSPex.LM.Local.new("test/dspex/local/fixtures/qwen2-qwen2-q4_0-mha-tied.gguf", temprature: 0.5)
      ** (ArgumentError) unknown option :temprature for DSPex.LM.Local.new/2 (did you mean :temperature?); valid options: :batch_tokens, :batching, :cache, :chat_template, :constrained, :frequency_penalty, :grammar, :ignore_eos, :logprobs, :max_seqs, :max_tokens, :min_p, :n, :n_ctx, :prefix_cache, :presence_penalty, :reasoning_effort, :repeat_last_n, :repeat_penalty, :response_format, :rollout_id, :seed, :simd, :stop, :temperature, :threads, :tool_choice, :tools, :top_k, :top_logprobs, :top_p
  """
  @spec new(binary, keyword) :: t
  def new(name, opts \\ []) when is_binary(name) and is_list(opts) do
    opts = DSPex.Options.validate!(opts, @options, "DSPex.LM.Local.new/2")
    {load, rest} = Keyword.split(opts, @load_opts)
    {cache, rest} = Keyword.pop(rest, :cache)
    {constrained, rest} = Keyword.pop(rest, :constrained)
    {limits, rest} = Keyword.pop(rest, :grammar)
    DSPex.Options.validate!(limits, Grammar.limits_schema(), "DSPex.LM.Local.new/2 grammar:")

    path =
      case DSPex.Local.Models.resolve(name) do
        {:ok, p} -> p
        {:error, e} -> raise e
      end

    %__MODULE__{
      model: "local/" <> name,
      local: DSPex.Local.load!(path, load),
      kwargs: Map.new(rest),
      cache: cache,
      constrained: constrained,
      grammar: limits
    }
  end

  @doc """
  The options of `new/2` (a `DSPex.Options` schema).

  ## Examples

      iex> :constrained in DSPex.Options.keys(DSPex.LM.Local.options_schema())
      true
  """
  @spec options_schema() :: DSPex.Options.schema()
  def options_schema, do: @options

  @impl DSPex.BaseLM
  @doc false
  # Tokens stream as they are decoded; usage and history are recorded by DSPex.BaseLM.
  def forward(%__MODULE__{} = lm, messages, params, %{sink: sink} = opts),
    do: call(lm, messages, params, Map.get(opts, :call, %{}), sink)

  @impl DSPex.BaseLM
  @doc false
  def supports?(_lm, feature), do: feature in [:stream, :response_format, :response_schema]

  defp call(lm, messages, params, call, sink) do
    merged = Map.merge(lm.kwargs, atomize(params))
    use_cache = lm.cache and Map.get(merged, :cache, true) != false

    meta = %{
      provider: "local",
      model: lm.model,
      request_id: System.unique_integer([:positive]),
      stream: sink != nil
    }

    Telemetry.span([:dspex, :lm, :request], meta, fn ->
      case grammar_spec(lm, merged, call) do
        {:error, e} ->
          {{:error, e}, Map.merge(meta, %{cache_hit: false, usage: nil})}

        {:ok, spec} ->
          key = if use_cache, do: cache_key(lm, messages, merged, spec), else: nil
          meta = Map.put(meta, :grammar, spec_kind(spec))

          case key && Cache.get(key) do
            {:ok, cached} ->
              zero = %{prompt_tokens: 0, completion_tokens: 0, total_tokens: 0}

              {{:ok, cached |> Map.put(:cache_hit, true) |> Map.put(:usage, zero)},
               Map.merge(meta, %{cache_hit: true, usage: zero})}

            _ ->
              result = complete(lm, messages, merged, sink, spec)

              with {:ok, c} <- result, true <- key != nil do
                Cache.put(key, c)
              end

              usage = with({:ok, c} <- result, do: c.usage, else: (_ -> nil))
              {result, Map.merge(meta, %{cache_hit: false, usage: usage})}
          end
      end
    end)
  end

  # The grammar a request gets: response_format first, then the asking predictor's
  # adapter layout (unless constrained: false or ignore_eos).
  defp grammar_spec(lm, params, call) do
    explicit = Grammar.for_response_format(Map.get(params, :response_format))

    spec =
      cond do
        explicit != nil -> explicit
        Map.get(params, :ignore_eos) == true -> nil
        lm.constrained -> Grammar.for_call(call)
        true -> nil
      end

    {:ok, spec}
  rescue
    e in ArgumentError -> {:error, Error.new(:bad_request, Exception.message(e))}
  end

  defp spec_kind(nil), do: nil
  defp spec_kind(:json_object), do: :json_object
  defp spec_kind({kind, _}), do: kind

  defp complete(lm, messages, params, sink, spec) do
    n = max(1, Map.get(params, :n) || 1)

    opts =
      params
      |> Map.take(@gen_keys)
      |> Map.put_new(:temperature, 0.0)
      |> Map.put_new(:max_tokens, 1024)

    opts = Enum.reject(opts, fn {_, v} -> is_nil(v) end)
    base_seed = Keyword.get(opts, :seed) || 0

    with {:ok, opts} <- with_grammar(lm, spec, opts),
         {:ok, prompt} <- DSPex.Local.apply_chat_template(lm.local, messages) do
      Enum.reduce_while(0..(n - 1), {:ok, []}, fn i, {:ok, acc} ->
        o = Keyword.put(opts, :seed, base_seed + i)

        case run(lm.local, prompt, o, if(i == 0, do: sink)) do
          {:ok, r} -> {:cont, {:ok, [r | acc]}}
          {:error, _} = e -> {:halt, e}
        end
      end)
      |> case do
        {:ok, rs} -> {:ok, completion(lm, Enum.reverse(rs))}
        err -> err
      end
    end
  rescue
    e in ArgumentError -> {:error, Error.new(:bad_request, Exception.message(e))}
  end

  defp with_grammar(_lm, nil, opts), do: {:ok, opts}

  defp with_grammar(lm, spec, opts) do
    with {:ok, g} <- Grammar.cached(lm.local, spec, lm.grammar),
         do: {:ok, Keyword.put(opts, :grammar, g)}
  end

  defp run(model, prompt, opts, nil), do: DSPex.Local.generate(model, prompt, opts)

  defp run(model, prompt, opts, sink) do
    {:ok, ref} = DSPex.Local.generate_stream(model, prompt, opts)
    relay(ref, sink)
  end

  defp relay(ref, sink) do
    receive do
      {^ref, {:delta, "", _}} -> relay(ref, sink)
      {^ref, {:delta, text, _}} -> sink.({:delta, text}) && relay(ref, sink)
      {^ref, {:done, r}} -> {:ok, r}
      {^ref, {:error, e}} -> {:error, e}
    end
  end

  defp completion(lm, results) do
    usage =
      Enum.reduce(results, %{prompt_tokens: 0, completion_tokens: 0, total_tokens: 0}, fn r, u ->
        %{
          prompt_tokens: max(u.prompt_tokens, r.usage.prompt_tokens),
          completion_tokens: u.completion_tokens + r.usage.completion_tokens,
          total_tokens: 0
        }
      end)

    %{
      choices:
        Enum.map(results, fn r ->
          %{
            text: r.text,
            finish_reason: finish(r.finish_reason),
            tool_calls: nil,
            logprobs: nil,
            reasoning_content: nil
          }
        end),
      usage: %{usage | total_tokens: usage.prompt_tokens + usage.completion_tokens},
      model: lm.model
    }
  end

  defp finish(:length), do: "length"
  defp finish(:context_full), do: "length"
  defp finish(_), do: "stop"

  # The cache key covers the model file, the messages, every parameter that changes the
  # output and the grammar (the same scheme as DSPex.LM's: SHA-256 of canonical JSON).
  defp cache_key(lm, messages, params, spec) do
    request =
      params
      |> Map.drop([:cache])
      |> Map.drop(@ignored -- [:n, :rollout_id])
      |> Map.new(fn {k, v} -> {Atom.to_string(k), v} end)
      |> Map.merge(%{
        "model" => lm.model,
        "model_file" => lm.local.path,
        "messages" => Enum.map(messages, &stringify/1),
        "_fn_identifier" => "dspex.lm.local"
      })

    request =
      case spec do
        nil -> request
        spec -> Map.put(request, "grammar", grammar_key(spec, lm.grammar))
      end

    Cache.key(request)
  end

  # The grammar's identity in the cache key: its spec, its limits, and the version of the
  # layouts (bump when what a spec admits changes, so older entries stop answering).
  @grammar_version 1

  defp grammar_key({kind, %DSPex.Signature{} = sig}, limits) when kind in [:chat, :json] do
    fields = Enum.map(sig.outputs, &{&1.name, &1.type})
    inspect({@grammar_version, kind, fields, limits}, limit: :infinity)
  end

  defp grammar_key(spec, limits), do: inspect({@grammar_version, spec, limits}, limit: :infinity)

  defp stringify(m) when is_map(m), do: Map.new(m, fn {k, v} -> {to_string(k), stringify(v)} end)
  defp stringify(l) when is_list(l), do: Enum.map(l, &stringify/1)
  defp stringify(v), do: v

  defp atomize(params) do
    Map.new(params, fn
      {k, v} when is_atom(k) -> {k, v}
      {k, v} when is_binary(k) -> {key_atom(k), v}
    end)
  end

  # Only known parameter names become atoms; others stay strings (no atoms from input).
  defp key_atom(k) do
    Enum.find(@gen_keys ++ @ignored ++ [:response_format], k, &(Atom.to_string(&1) == k))
  end

  @doc false
  def ignored_params, do: @ignored
end
