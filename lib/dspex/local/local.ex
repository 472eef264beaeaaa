defmodule DSPex.Local do
  @moduledoc """
  Language models inside the application: a C inference engine for GGUF files (the
  llama.cpp format) behind dirty NIFs. Architectures `llama` (Llama, Mistral, SmolLM,
  TinyLlama files) and `qwen2`; weight types F32, F16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1,
  Q4_K, Q6_K and mixes; SPM and BPE tokenizers equal to llama.cpp's. Results agree with
  llama.cpp to ~1e-6 in log-probability (the engine quantizes activations exactly as
  llama.cpp's CPU backend does); see `docs/guide/engine.md` for the measured table.

  A model is a NIF resource: load it once, share it between processes, and it is
  unloaded when the last reference is garbage-collected. Weights stay memory-mapped.

  ## Examples

      iex> {:ok, model} = DSPex.Local.load("test/dspex/local/fixtures/qwen2-qwen2-q4_0-mha-tied.gguf")
      iex> ids = DSPex.Local.tokenize(model, "Hello world")
      [39, 301, 385, 1879]
      iex> DSPex.Local.detokenize(model, ids)
      "Hello world"
      iex> {:ok, %{tokens: tokens, text: text}} = DSPex.Local.generate(model, ids, max_tokens: 4, temperature: 0.0)
      iex> {length(tokens), is_binary(text)}
      {4, true}

  The real SmolLM2-135M-Instruct model is one command away (`mix dspex.model.get
  smollm2`, see `DSPex.Local.Models`); `DSPex.LM.new("local/smollm2")` drives DSPex
  programs with it (`DSPex.LM.Local`).
  """

  import Bitwise

  alias DSPex.{Error, NIF, Telemetry}
  alias DSPex.Local.{Batcher, Generation, Model}

  @type model :: Model.t()
  @type prompt :: binary | [non_neg_integer]
  @type message :: %{required(:role) => binary | atom, required(:content) => binary}

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
  @prefix_cache_default 256 * 1024 * 1024
  @gen_defaults %{
    max_tokens: 256,
    temperature: 0.8,
    top_k: 40,
    top_p: 0.95,
    min_p: 0.05,
    repeat_penalty: 1.0,
    repeat_last_n: 64,
    frequency_penalty: 0.0,
    presence_penalty: 0.0,
    stop: [],
    ignore_eos: false,
    slice_ms: 50,
    add_special: true,
    parse_special: true
  }
  @gen_opts Map.keys(@gen_defaults) ++ [:seed, :n_ctx, :grammar]

  # ----------------------------------------------------------------------------------
  # Loading
  # ----------------------------------------------------------------------------------

  @doc """
  Loads a GGUF model.

  Options:

    * `:threads` — matmul threads owned by the model (default: the number of dirty CPU
      schedulers, `:erlang.system_info(:dirty_cpu_schedulers)`);
    * `:simd` — `false` forces the scalar reference kernels (default `true`: AVX2 when
      the CPU has it);
    * `:n_ctx` — default context window of generations and evaluations (default
      `min(context_length, 4096)`);
    * `:chat_template` — a template family name (`"chatml"`, `"llama3"`, ...) to use
      instead of detecting it from the file's `tokenizer.chat_template`;
    * `:prefix_cache` — bytes of prompt K/V kept for reuse (default 256 MiB; `0`
      disables it): a prompt that starts like an earlier one (the same instructions and
      demos) copies the shared positions instead of computing them again. Bounded, least
      recently used entries go first; see `stats/1`;
    * `:batching` — decode concurrent generations of this model together (default
      `true`): one forward pass per step for all of them (continuous batching: requests
      join and leave between steps). `false` runs each generation on its own;
    * `:max_seqs` — generations decoded at once when batching (default 8; more wait);
    * `:batch_tokens` — rows per batched forward pass (default 128, `max_seqs..512`):
      the decoding sequences' tokens plus chunks of joining prompts.

  Hostile or unsupported files give `{:error, %DSPex.Error{type: :model_load}}` with a
  message naming the key or tensor at fault; the VM never crashes on a bad file.

  ## Examples

      iex> {:ok, model} = DSPex.Local.load("test/dspex/local/fixtures/qwen2-qwen2-q4_0-mha-tied.gguf", threads: 1)
      iex> model.arch
      "qwen2"
      iex> {:error, %DSPex.Error{type: :model_load, message: msg}} = DSPex.Local.load("missing.gguf")
      iex> msg =~ "missing.gguf"
      true
  """
  @spec load(Path.t(), keyword) :: {:ok, model} | {:error, Error.t()}
  def load(path, opts \\ []) when is_binary(path) and is_list(opts) do
    opts = Keyword.validate!(opts, @load_opts)
    threads = Keyword.get(opts, :threads, :erlang.system_info(:dirty_cpu_schedulers))
    simd = Keyword.get(opts, :simd, true)

    unless is_integer(threads) and threads in 1..256,
      do: raise(ArgumentError, "threads: expected an integer in 1..256, got: #{inspect(threads)}")

    unless is_boolean(simd),
      do: raise(ArgumentError, "simd: expected a boolean, got: #{inspect(simd)}")

    prefix = Keyword.get(opts, :prefix_cache, @prefix_cache_default)
    batching = Keyword.get(opts, :batching, true)
    max_seqs = Keyword.get(opts, :max_seqs, 8)
    batch_tokens = Keyword.get(opts, :batch_tokens, max(128, max_seqs))

    unless is_integer(prefix) and prefix >= 0,
      do: raise(ArgumentError, "prefix_cache: expected bytes >= 0, got: #{inspect(prefix)}")

    unless is_boolean(batching),
      do: raise(ArgumentError, "batching: expected a boolean, got: #{inspect(batching)}")

    unless is_integer(max_seqs) and max_seqs in 1..256,
      do:
        raise(ArgumentError, "max_seqs: expected an integer in 1..256, got: #{inspect(max_seqs)}")

    unless is_integer(batch_tokens) and batch_tokens in max_seqs..512//1,
      do:
        raise(
          ArgumentError,
          "batch_tokens: expected an integer in max_seqs..512, got: #{inspect(batch_tokens)}"
        )

    native = %{
      threads: threads,
      simd: simd,
      prefix_cache: prefix,
      max_seqs: max_seqs,
      batch_tokens: batch_tokens
    }

    Telemetry.span([:dspex, :local, :load], %{path: path}, fn ->
      result =
        case NIF.guard(fn -> NIF.local_load(path, native) end) do
          {:ok, ref} ->
            info = NIF.local_info(ref)
            # tokenizer-only files carry no context length
            n_ctx =
              Keyword.get(
                opts,
                :n_ctx,
                if(info.n_ctx_train > 0, do: min(info.n_ctx_train, 4096), else: 2048)
              )

            unless is_integer(n_ctx) and n_ctx > 0,
              do:
                raise(ArgumentError, "n_ctx: expected a positive integer, got: #{inspect(n_ctx)}")

            {:ok,
             %Model{
               ref: ref,
               path: path,
               arch: info.arch,
               n_ctx: n_ctx,
               chat_template: Keyword.get(opts, :chat_template),
               info: info,
               batching: batching,
               max_seqs: max_seqs
             }}

          {:error, reason} ->
            {:error, NIF.wrap_error(reason)}
        end

      {result, %{path: path, ok: match?({:ok, _}, result)}}
    end)
  end

  @doc """
  Like `load/2` but raises `DSPex.Error`.

  ## Examples

      iex> DSPex.Local.load!("test/dspex/local/fixtures/llama-gpt2-q4_0-mha-untied.gguf").arch
      "llama"
  """
  @spec load!(Path.t(), keyword) :: model
  def load!(path, opts \\ []) do
    case load(path, opts) do
      {:ok, m} -> m
      {:error, e} -> raise e
    end
  end

  @doc """
  The model's metadata: architecture, shapes (`n_embd`, `n_layer`, `n_head`,
  `n_head_kv`, `head_dim`, `n_ff`, `n_vocab`, `n_ctx_train`), RoPE settings, tokenizer
  (`:spm` / `:bpe`, pre-tokenizer, special ids, `add_bos`), chat template and its detected
  family, tensor type counts, file size, kernels in use, and the load options.

  ## Examples

      iex> model = DSPex.Local.load!("test/dspex/local/fixtures/qwen2-qwen2-q4_0-mha-tied.gguf")
      iex> info = DSPex.Local.info(model)
      iex> {info.arch, info.n_layer, info.rope_type, info.tokenizer, info.tensor_types["q4_0"]}
      {"qwen2", 2, :neox, :bpe, 15}
  """
  @spec info(model) :: map
  def info(%Model{} = m) do
    Map.merge(m.info, %{path: m.path, n_ctx: m.n_ctx, chat_template_option: m.chat_template})
  end

  @doc """
  Counters of the model's shared-prefix cache and batch since it was loaded:

    * `prefix_lookups`, `prefix_hits` — prompts looked up / that reused cached positions;
    * `reused_tokens` — prompt positions copied from the cache instead of computed;
    * `prefilled_tokens` — prompt positions computed by generations;
    * `cached_tokens`, `cache_evictions`, `cache_nodes`, `cache_bytes`,
      `cache_capacity` — what the cache stored, evicted and holds now, and its bound;
    * `batch_steps`, `batch_rows`, `batch_decode_rows` — batched forward passes, the rows
      they evaluated and how many of those were sampled tokens; `batch_max_active` the
      most sequences decoded in one step, `batch_active` those in the batch now;
      `max_seqs`, `batch_tokens` the batch's bounds.

  ## Examples

      iex> model = DSPex.Local.load!("test/dspex/local/fixtures/qwen2-qwen2-q4_0-mha-tied.gguf")
      iex> prompt = Enum.to_list(100..139)
      iex> {:ok, _} = DSPex.Local.generate(model, prompt, max_tokens: 2, temperature: 0)
      iex> {:ok, _} = DSPex.Local.generate(model, prompt, max_tokens: 2, temperature: 0)
      iex> s = DSPex.Local.stats(model)
      iex> {s.prefix_hits, s.reused_tokens, s.prefilled_tokens}
      {1, 39, 41}
  """
  @spec stats(model) :: %{atom => non_neg_integer}
  def stats(%Model{ref: ref}), do: NIF.local_stats(ref)

  @doc """
  Parses a GGUF file without loading it for inference: every metadata key (arrays as
  `{:array, type, count}`), every tensor (name, shape, type, bytes), and whether this
  engine supports the file (`supported: true` with `info:`) or why not (`reason:`).
  Used by `mix dspex.model.info`.

  ## Examples

      iex> {:ok, r} = DSPex.Local.inspect_file("test/dspex/local/fixtures/qwen2-qwen2-q4_0-mha-tied.gguf")
      iex> {r.supported, r.gguf_version, length(r.tensors)}
      {true, 3, 26}
  """
  @spec inspect_file(Path.t()) :: {:ok, map} | {:error, Error.t()}
  def inspect_file(path) when is_binary(path) do
    case NIF.guard(fn -> NIF.local_inspect(path) end) do
      {:ok, r} -> {:ok, r}
      {:error, reason} -> {:error, NIF.wrap_error(reason)}
    end
  end

  # ----------------------------------------------------------------------------------
  # Tokens
  # ----------------------------------------------------------------------------------

  @doc """
  Token ids of `text`, as llama.cpp's `llama_tokenize` gives them.

    * `add_special:` — prepend BOS (and append EOS) when the vocabulary asks for it
      (default `false`);
    * `parse_special:` — recognise control tokens such as `<|im_start|>` in the text
      (default `false`; user-defined tokens are always recognised).

  Raises `DSPex.Error` (`:inference`) for a model without a vocabulary.

  ## Examples

      iex> model = DSPex.Local.load!("test/dspex/local/fixtures/qwen2-qwen2-q4_0-mha-tied.gguf")
      iex> DSPex.Local.tokenize(model, "1234")
      [16, 17, 18, 19]
      iex> DSPex.Local.tokenize(model, "<|endoftext|>", parse_special: true)
      [2048]
  """
  @spec tokenize(model, binary, keyword) :: [non_neg_integer]
  def tokenize(%Model{ref: ref}, text, opts \\ []) when is_binary(text) do
    opts = Keyword.validate!(opts, add_special: false, parse_special: false)

    Telemetry.span([:dspex, :local, :tokenize], %{bytes: byte_size(text)}, fn ->
      add = opts[:add_special] == true
      parse = opts[:parse_special] == true

      case NIF.guard(fn -> NIF.local_tokenize(ref, text, add, parse) end) do
        {:ok, ids} -> {ids, %{tokens: length(ids)}}
        {:error, reason} -> raise NIF.wrap_error(reason)
      end
    end)
  end

  @doc """
  Text of token ids, as llama.cpp's `llama_detokenize` (control tokens are left out
  unless `special: true`). Raises `ArgumentError` for ids outside the vocabulary.

  ## Examples

      iex> model = DSPex.Local.load!("test/dspex/local/fixtures/qwen2-qwen2-q4_0-mha-tied.gguf")
      iex> DSPex.Local.detokenize(model, [39, 301, 385, 1879, 2048])
      "Hello world"
      iex> DSPex.Local.detokenize(model, [2048], special: true)
      "<|endoftext|>"
  """
  @spec detokenize(model, [non_neg_integer], keyword) :: binary
  def detokenize(%Model{ref: ref}, ids, opts \\ []) when is_list(ids) do
    opts = Keyword.validate!(opts, special: false)

    Telemetry.span([:dspex, :local, :detokenize], %{tokens: length(ids)}, fn ->
      text = NIF.guard(fn -> NIF.local_detokenize(ref, ids, opts[:special] == true) end)
      {text, %{bytes: byte_size(text)}}
    end)
  end

  # ----------------------------------------------------------------------------------
  # Chat templates
  # ----------------------------------------------------------------------------------

  @doc """
  Renders chat messages (`%{role:, content:}`) in the model's chat format, ending with
  the assistant prefix (unless `add_assistant: false`). The family is detected from the
  file's `tokenizer.chat_template` as llama.cpp does, or given with `chat_template:`
  (here or at `load/2`): `"chatml"` (Qwen, SmolLM2), `"llama3"`, `"llama2"`,
  `"llama2-sys"`, `"mistral-v1"`, `"mistral-v3"`, `"mistral-v7"`, `"gemma"`, `"phi3"`,
  `"phi4"`, `"zephyr"`, ... An unknown template is `{:error, %DSPex.Error{type:
  :chat_template}}`, never a silently wrong format.

  The result carries no BOS; `generate/3` tokenizes prompts with `add_special: true`.

  ## Examples

      iex> model = DSPex.Local.load!("test/dspex/local/fixtures/qwen2-qwen2-q4_0-mha-tied.gguf")
      iex> DSPex.Local.apply_chat_template(model, [%{role: "user", content: "Hi"}])
      {:ok, "<|im_start|>user\\nHi<|im_end|>\\n<|im_start|>assistant\\n"}
      iex> DSPex.Local.apply_chat_template(model, [%{role: "user", content: "Hi"}], chat_template: "llama3")
      {:ok, "<|start_header_id|>user<|end_header_id|>\\n\\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\\n\\n"}
      iex> no_template = DSPex.Local.load!("test/dspex/local/fixtures/llama-gpt2-q4_0-mha-untied.gguf")
      iex> {:error, %DSPex.Error{type: :chat_template}} = DSPex.Local.apply_chat_template(no_template, [%{role: "user", content: "Hi"}])
  """
  @spec apply_chat_template(model, [message], keyword) :: {:ok, binary} | {:error, Error.t()}
  def apply_chat_template(%Model{} = m, messages, opts \\ []) when is_list(messages) do
    opts = Keyword.validate!(opts, chat_template: m.chat_template, add_assistant: true)

    pairs =
      Enum.map(messages, fn msg ->
        role = fetch_field(msg, :role)
        {to_string(role), content_text(fetch_field(msg, :content))}
      end)

    template = opts[:chat_template]

    if template != nil and not is_binary(template),
      do:
        raise(
          ArgumentError,
          "chat_template: expected a family name (binary), got: #{inspect(template)}"
        )

    Telemetry.span([:dspex, :local, :chat_template], %{template: template}, fn ->
      result =
        case NIF.guard(fn ->
               NIF.local_chat_render(m.ref, pairs, template, opts[:add_assistant] != false)
             end) do
          {:ok, {text, _family}} -> {:ok, text}
          {:error, reason} -> {:error, NIF.wrap_error(reason)}
        end

      {result, %{template: template}}
    end)
  end

  defp fetch_field(msg, key) when is_map(msg) do
    case Map.get(msg, key, Map.get(msg, Atom.to_string(key))) do
      nil ->
        raise ArgumentError,
              "chat messages need :role and :content, got: #{inspect(Map.keys(msg))}"

      v ->
        v
    end
  end

  defp fetch_field(other, _),
    do: raise(ArgumentError, "chat messages are maps, got: #{inspect(other)}")

  @doc false
  # Text of a message content: a binary, or OpenAI-style parts (text parts joined).
  def content_text(c) when is_binary(c), do: c

  def content_text(parts) when is_list(parts) do
    parts
    |> Enum.map(fn
      %{type: "text", text: t} -> t
      %{"type" => "text", "text" => t} -> t
      t when is_binary(t) -> t
      _ -> ""
    end)
    |> Enum.join("\n")
  end

  def content_text(other), do: to_string(other)

  # ----------------------------------------------------------------------------------
  # Evaluation
  # ----------------------------------------------------------------------------------

  @doc """
  Log-probabilities of the next token after each prefix of `ids`: for position `i`, the
  log-softmax of the raw logits after feeding `ids[0..i]`, as the `top:` (default 10)
  most likely `{id, logprob}` pairs, best first, and `next_logprob:` the log-prob of
  `ids[i+1]` (`nil` at the last position; their sum is the sequence's log-likelihood).
  `n_ctx:` defaults to `length(ids)`. Ids outside the vocabulary raise `ArgumentError`.

  ## Examples

      iex> model = DSPex.Local.load!("test/dspex/local/fixtures/qwen2-qwen2-q4_0-mha-tied.gguf")
      iex> {:ok, [%{pos: 0, top: [{id, lp} | _]}, %{pos: 1}]} = DSPex.Local.eval_logprobs(model, [785, 922], top: 3)
      iex> {is_integer(id), lp < 0}
      {true, true}
  """
  @spec eval_logprobs(model, [non_neg_integer], keyword) ::
          {:ok,
           [%{pos: non_neg_integer, top: [{non_neg_integer, float}], next_logprob: float | nil}]}
          | {:error, Error.t()}
  def eval_logprobs(%Model{ref: ref} = m, ids, opts \\ []) when is_list(ids) do
    opts = Keyword.validate!(opts, top: 10, n_ctx: max(length(ids), 1))
    check_ids!(m, ids)
    top = opts[:top]

    unless is_integer(top) and top in 1..1000,
      do: raise(ArgumentError, "top: expected an integer in 1..1000, got: #{inspect(top)}")

    Telemetry.span([:dspex, :local, :eval_logprobs], %{tokens: length(ids)}, fn ->
      result =
        case NIF.guard(fn -> NIF.local_eval_logprobs(ref, ids, top, opts[:n_ctx]) end) do
          {:ok, rows} ->
            {:ok,
             Enum.map(rows, fn {pos, top, next} -> %{pos: pos, top: top, next_logprob: next} end)}

          {:error, reason} ->
            {:error, NIF.wrap_error(reason)}
        end

      {result, %{tokens: length(ids)}}
    end)
  end

  @doc """
  Embeds a text (→ `{:ok, vector}`) or a list of texts (→ `{:ok, [vector]}`): the final
  hidden states (after the output norm) pooled over the tokens, one float per `n_embd`.

    * `pooling:` — `:mean` or `:last`; by default the file's `{arch}.pooling_type`
      when it names one (embedding models trained for last-token pooling write it),
      else `:mean`. Mean pooling is the robust choice for a chat model such as SmolLM2,
      whose states were never trained to summarise a text; last-token pooling is the
      convention for decoder models trained as embedders (e5-mistral, gte-Qwen2);
    * `normalize:` — L2-normalize (default `true`, so a dot product is the cosine);
    * `add_special:` — tokenize with BOS when the vocabulary asks for it (default `true`).

  Each text is one forward pass on a dirty CPU scheduler.

  ## Examples

      iex> model = DSPex.Local.load!("test/dspex/local/fixtures/qwen2-qwen2-q4_0-mha-tied.gguf")
      iex> {:ok, [a, b]} = DSPex.Local.embed(model, ["hello world", "goodbye"])
      iex> {length(a), Float.round(Enum.sum(Enum.map(a, &(&1 * &1))), 6)}
      {96, 1.0}
      iex> a == b
      false
  """
  @spec embed(model, binary | [binary], keyword) ::
          {:ok, [float] | [[float]]} | {:error, Error.t()}
  def embed(%Model{} = m, text, opts \\ []) do
    opts = Keyword.validate!(opts, pooling: nil, normalize: true, add_special: true)

    unless opts[:pooling] in [nil, :mean, :last],
      do:
        raise(ArgumentError, "pooling: expected :mean or :last, got: #{inspect(opts[:pooling])}")

    with {:ok, vecs, _tokens} <- embed_counted(m, List.wrap(text), opts) do
      {:ok, if(is_binary(text), do: hd(vecs), else: vecs)}
    end
  end

  @doc false
  # embed/3 on a list, with the number of tokens embedded (DSPex.Embedder records it).
  def embed_counted(%Model{} = m, texts, opts) do
    Telemetry.span([:dspex, :local, :embed], %{texts: length(texts)}, fn ->
      result =
        Enum.reduce_while(texts, {:ok, []}, fn t, {:ok, acc} ->
          ids = tokenize(m, t, add_special: opts[:add_special] == true)

          case NIF.guard(fn ->
                 NIF.local_embed(m.ref, ids, opts[:pooling], opts[:normalize] == true)
               end) do
            {:ok, v} -> {:cont, {:ok, [{v, length(ids)} | acc]}}
            {:error, reason} -> {:halt, {:error, NIF.wrap_error(reason)}}
          end
        end)

      case result do
        {:ok, rows} ->
          rows = Enum.reverse(rows)
          tokens = rows |> Enum.map(&elem(&1, 1)) |> Enum.sum()
          {{:ok, Enum.map(rows, &elem(&1, 0)), tokens}, %{texts: length(texts), tokens: tokens}}

        {:error, _} = e ->
          {e, %{texts: length(texts)}}
      end
    end)
  end

  # ----------------------------------------------------------------------------------
  # Generation
  # ----------------------------------------------------------------------------------

  @doc """
  Generates a continuation of `prompt` (text, tokenized with `add_special:` /
  `parse_special:` both default `true`, or token ids).

  Returns `{:ok, %{tokens:, text:, finish_reason:, usage:, seed:}}`: `finish_reason` is
  `:stop` (an end-of-generation token or a stop string), `:length` (`max_tokens`) or
  `:context_full` (the context window; there is no context shift). A prompt that does
  not fit is `{:error, %DSPex.Error{type: :context_window}}`.

  Options (llama.cpp's defaults): `max_tokens: 256`, `temperature: 0.8` (`0` = greedy),
  `top_k: 40`, `top_p: 0.95`, `min_p: 0.05`, `repeat_penalty: 1.0`,
  `repeat_last_n: 64`, `frequency_penalty: 0.0`, `presence_penalty: 0.0`, `seed:`
  (default: random, returned so the run can be repeated exactly), `stop:` (a string or
  up to 16), `n_ctx:` (default: the model's), `ignore_eos: false`, `slice_ms: 50` (work
  per dirty-scheduler call), `grammar:` (a `DSPex.Local.Grammar` or a grammar spec such
  as `{:json_schema, schema}`: the output is constrained to its language and ends
  complete; see `DSPex.Local.Grammar`).

  ## Examples

      iex> model = DSPex.Local.load!("test/dspex/local/fixtures/qwen2-qwen2-q4_0-mha-tied.gguf")
      iex> {:ok, a} = DSPex.Local.generate(model, "The quick brown fox", max_tokens: 8, seed: 7)
      iex> {:ok, b} = DSPex.Local.generate(model, "The quick brown fox", max_tokens: 8, seed: 7)
      iex> {a.tokens == b.tokens, a.usage.completion_tokens, a.finish_reason}
      {true, 8, :length}
  """
  @spec generate(model, prompt, keyword) :: {:ok, Generation.result()} | {:error, Error.t()}
  def generate(%Model{} = m, prompt, opts \\ []) do
    {ids, params} = prepare(m, prompt, opts)

    Telemetry.span([:dspex, :local, :generate], %{prompt_tokens: length(ids)}, fn ->
      result =
        if m.batching do
          with {:ok, ref, pid} <- Batcher.start(m, ids, params, self(), false),
               do: Batcher.await(ref, pid)
        else
          Generation.run(m, ids, params, fn _, _ -> :ok end)
        end

      {result, stop_meta(result)}
    end)
  end

  @doc """
  Like `generate/3` but raises `DSPex.Error`.

  ## Examples

      iex> model = DSPex.Local.load!("test/dspex/local/fixtures/qwen2-qwen2-q4_0-mha-tied.gguf")
      iex> DSPex.Local.generate!(model, [785, 922], max_tokens: 2, temperature: 0).usage
      %{prompt_tokens: 2, completion_tokens: 2, total_tokens: 4}
  """
  @spec generate!(model, prompt, keyword) :: Generation.result()
  def generate!(m, prompt, opts \\ []) do
    case generate(m, prompt, opts) do
      {:ok, r} -> r
      {:error, e} -> raise e
    end
  end

  @doc """
  Renders `messages` with the chat template, then generates. Options as in `generate/3`
  plus `chat_template:`.

  ## Examples

      iex> model = DSPex.Local.load!("test/dspex/local/fixtures/qwen2-qwen2-q4_0-mha-tied.gguf", chat_template: "chatml")
      iex> {:ok, r} = DSPex.Local.chat(model, [%{role: "user", content: "Hi"}], max_tokens: 3, temperature: 0)
      iex> r.usage.prompt_tokens > 5
      true
  """
  @spec chat(model, [message], keyword) :: {:ok, Generation.result()} | {:error, Error.t()}
  def chat(%Model{} = m, messages, opts \\ []) do
    {tmpl, opts} = Keyword.pop(opts, :chat_template, m.chat_template)

    with {:ok, text} <- apply_chat_template(m, messages, chat_template: tmpl) do
      generate(m, text, opts)
    end
  end

  @doc """
  Starts a generation that streams to the calling process. Returns `{:ok, ref}`; the
  caller then receives `{ref, {:delta, text, token_ids}}` as text becomes final (text is
  held back while it could still turn into a stop string, so the deltas always add up to
  the final text), and finally `{ref, {:done, result}}` (as from `generate/3`) or
  `{ref, {:error, %DSPex.Error{}}}`. The generation stops when the caller exits, or at
  `cancel/1` (then `finish_reason: :cancelled`). With batching (the default, see
  `load/2`) the model's batch driver decodes it together with the model's other
  generations and sends these messages.

  ## Examples

      iex> model = DSPex.Local.load!("test/dspex/local/fixtures/qwen2-qwen2-q4_0-mha-tied.gguf")
      iex> {:ok, ref} = DSPex.Local.generate_stream(model, [785, 922], max_tokens: 5, temperature: 0)
      iex> receive do {^ref, {:done, r}} -> length(r.tokens) end
      5
  """
  @spec generate_stream(model, prompt, keyword) :: {:ok, reference}
  def generate_stream(%Model{} = m, prompt, opts \\ []) do
    {ids, params} = prepare(m, prompt, opts)

    if m.batching do
      case Batcher.start(m, ids, params, self(), true) do
        {:ok, ref, pid} ->
          Process.put({:dspex_local_stream, ref}, pid)
          {:ok, ref}

        {:error, e} ->
          ref = make_ref()
          send(self(), {ref, {:error, e}})
          {:ok, ref}
      end
    else
      # the worker process runs the [:dspex, :local, :stream] span
      {:ok, ref, _pid} = Generation.start(m, ids, params, self())
      {:ok, ref}
    end
  end

  @doc """
  Stops a generation started with `generate_stream/3` from the process that started it.
  The stream still ends with `{ref, {:done, result}}` holding what was generated.

  ## Examples

      iex> DSPex.Local.cancel(make_ref())
      :ok
  """
  @spec cancel(reference) :: :ok
  def cancel(ref) when is_reference(ref), do: Generation.cancel(ref)

  @doc """
  A lazy `Stream` of text deltas of a generation (built on `generate_stream/3`); halting
  the stream early cancels the generation.

  ## Examples

      iex> model = DSPex.Local.load!("test/dspex/local/fixtures/qwen2-qwen2-q4_0-mha-tied.gguf")
      iex> chunks = DSPex.Local.stream_text(model, [785, 922], max_tokens: 6, temperature: 0) |> Enum.to_list()
      iex> Enum.join(chunks) == DSPex.Local.generate!(model, [785, 922], max_tokens: 6, temperature: 0).text
      true
  """
  @spec stream_text(model, prompt, keyword) :: Enumerable.t()
  def stream_text(%Model{} = m, prompt, opts \\ []) do
    Stream.resource(
      fn ->
        {:ok, ref} = generate_stream(m, prompt, opts)
        {ref, :running}
      end,
      fn
        {ref, :done} ->
          {:halt, {ref, :done}}

        {ref, :running} ->
          receive do
            {^ref, {:delta, text, _ids}} -> {[text], {ref, :running}}
            {^ref, {:done, _}} -> {[], {ref, :done}}
            {^ref, {:error, e}} -> raise e
          end
      end,
      fn
        {ref, :running} ->
          cancel(ref)
          drain(ref)

        {_ref, :done} ->
          :ok
      end
    )
  end

  defp drain(ref) do
    receive do
      {^ref, {:delta, _, _}} -> drain(ref)
      {^ref, {:done, _}} -> :ok
      {^ref, {:error, _}} -> :ok
    after
      5_000 -> :ok
    end
  end

  defp check_ids!(%Model{info: %{n_vocab: n}}, ids) do
    case Enum.find_index(ids, &(not (is_integer(&1) and &1 >= 0 and &1 < n))) do
      nil ->
        ids

      i ->
        raise ArgumentError,
              "token id #{inspect(Enum.at(ids, i))} at index #{i} is outside the vocabulary (0..#{n - 1})"
    end
  end

  defp stop_meta({:ok, r}), do: %{finish_reason: r.finish_reason, usage: r.usage}
  defp stop_meta({:error, e}), do: %{error: e.type}

  # Tokenizes the prompt and validates the options into the native parameter map.
  defp prepare(%Model{} = m, prompt, opts) do
    opts = Keyword.validate!(opts, @gen_opts)
    p = Map.merge(@gen_defaults, Map.new(opts))
    seed = Map.get(p, :seed) || :rand.uniform(1 <<< 53) - 1
    stop = p.stop |> List.wrap() |> Enum.map(&to_string/1)

    check = fn
      key, val, pred, want ->
        unless pred.(val),
          do: raise(ArgumentError, "#{key}: expected #{want}, got: #{inspect(val)}")
    end

    check.(:max_tokens, p.max_tokens, &(is_integer(&1) and &1 > 0), "a positive integer")
    check.(:temperature, p.temperature, &(is_number(&1) and &1 >= 0), "a number >= 0")
    check.(:top_k, p.top_k, &(is_integer(&1) and &1 >= 0), "an integer >= 0")
    check.(:top_p, p.top_p, &(is_number(&1) and &1 > 0 and &1 <= 1), "a number in (0, 1]")
    check.(:min_p, p.min_p, &(is_number(&1) and &1 >= 0 and &1 <= 1), "a number in [0, 1]")
    check.(:repeat_penalty, p.repeat_penalty, &(is_number(&1) and &1 > 0), "a number > 0")
    check.(:repeat_last_n, p.repeat_last_n, &(is_integer(&1) and &1 >= -1), "an integer >= -1")

    check.(
      :seed,
      seed,
      &(is_integer(&1) and &1 >= 0 and &1 < 1 <<< 53),
      "an integer in 0..2^53-1"
    )

    check.(:slice_ms, p.slice_ms, &(is_number(&1) and &1 > 0), "a number > 0")

    check.(
      :stop,
      stop,
      &(length(&1) <= 16 and Enum.all?(&1, fn s -> byte_size(s) in 1..256 end)),
      "up to 16 strings of 1..256 bytes"
    )

    ids =
      cond do
        is_binary(prompt) ->
          tokenize(m, prompt, add_special: p.add_special, parse_special: p.parse_special)

        is_list(prompt) ->
          check_ids!(m, prompt)

        true ->
          raise ArgumentError,
                "prompt: expected text or a list of token ids, got: #{inspect(prompt)}"
      end

    grammar =
      case Map.get(p, :grammar) do
        nil ->
          nil

        %DSPex.Local.Grammar{ref: g} ->
          g

        spec ->
          case DSPex.Local.Grammar.cached(m, spec) do
            {:ok, g} -> g.ref
            {:error, e} -> raise e
          end
      end

    if grammar && p.ignore_eos,
      do: raise(ArgumentError, "grammar: cannot be combined with ignore_eos: true")

    params = %{
      p
      | stop: stop,
        temperature: p.temperature * 1.0,
        top_p: p.top_p * 1.0,
        min_p: p.min_p * 1.0,
        repeat_penalty: p.repeat_penalty * 1.0
    }

    {ids,
     params
     |> Map.put(:seed, seed)
     |> Map.put(:grammar, grammar)
     |> Map.put(:n_ctx, Map.get(p, :n_ctx) || m.n_ctx)}
  end
end
