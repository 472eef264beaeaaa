defmodule DSPex.LM.Local do
  @moduledoc """
  An LM (`DSPex.BaseLM`) backed by the in-process GGUF engine (`DSPex.Local`): Predict,
  ChainOfThought, Evaluate, streaming and the response cache work as with a remote
  provider, and usage holds real token counts.

  `DSPex.LM.new("local/<alias or path>", opts)` builds one (the `local/` prefix is
  delegated here), as does `new/2` directly:

      lm = DSPex.LM.new("local/smollm2", temperature: 0.0, max_tokens: 256)
      lm = DSPex.LM.Local.new("/models/qwen2.5-0.5b-instruct-q8_0.gguf", n_ctx: 4096, threads: 4)
      DSPex.configure(lm: lm)

  Options: the load options of `DSPex.Local.load/2` (`:threads`, `:simd`, `:n_ctx`,
  `:chat_template`), `:cache` (default `true`), and default request parameters
  (`temperature` — default `0.0`, greedy, so programs are reproducible —, `max_tokens`
  — default 1024 —, `top_k`, `top_p`, `min_p`, `seed`, `stop`, `repeat_penalty`, ...).
  `n` > 1 draws several choices with consecutive seeds. `response_format`, `tools` and
  `logprobs` are accepted and ignored (grammar-constrained decoding is a later step).

  ## Examples

      iex> lm = DSPex.LM.Local.new("test/dspex/local/fixtures/qwen2-qwen2-q4_0-mha-tied.gguf", max_tokens: 4, cache: false)
      iex> {:ok, c} = DSPex.BaseLM.request(lm, [%{role: "user", content: "Hi"}], %{})
      iex> {hd(c.choices).finish_reason, c.usage.completion_tokens}
      {"length", 4}
  """

  @behaviour DSPex.BaseLM

  alias DSPex.{Error, Telemetry}
  alias DSPex.LM.Cache

  defstruct model: nil, local: nil, kwargs: %{}, cache: true

  @type t :: %__MODULE__{model: binary, local: DSPex.Local.Model.t(), kwargs: map, cache: boolean}

  @load_opts [:threads, :simd, :n_ctx, :chat_template]
  @gen_keys ~w(max_tokens temperature top_k top_p min_p repeat_penalty repeat_last_n
               frequency_penalty presence_penalty seed stop n_ctx ignore_eos)a
  @ignored ~w(response_format tools tool_choice logprobs top_logprobs rollout_id cache n
              num_retries timeout stream)a

  @doc """
  Loads the model (an alias from `DSPex.Local.Models` or a path) and returns the LM.
  Raises `DSPex.Error` (`:model_not_found`, `:model_load`) when it cannot.

  ## Examples

      iex> DSPex.LM.Local.new("test/dspex/local/fixtures/qwen2-qwen2-q4_0-mha-tied.gguf").model
      "local/test/dspex/local/fixtures/qwen2-qwen2-q4_0-mha-tied.gguf"
  """
  @spec new(binary, keyword) :: t
  def new(name, opts \\ []) when is_binary(name) and is_list(opts) do
    {load, rest} = Keyword.split(opts, @load_opts)
    {cache, rest} = Keyword.pop(rest, :cache, true)

    path =
      case DSPex.Local.Models.resolve(name) do
        {:ok, p} -> p
        {:error, e} -> raise e
      end

    %__MODULE__{
      model: "local/" <> name,
      local: DSPex.Local.load!(path, load),
      kwargs: Map.new(rest),
      cache: cache != false
    }
  end

  @impl DSPex.BaseLM
  @doc false
  # Tokens stream as they are decoded; usage and history are recorded by DSPex.BaseLM.
  def forward(%__MODULE__{} = lm, messages, params, %{sink: sink}),
    do: call(lm, messages, params, sink)

  @impl DSPex.BaseLM
  @doc false
  def supports?(_lm, feature), do: feature == :stream

  defp call(lm, messages, params, sink) do
    merged = Map.merge(lm.kwargs, atomize(params))
    use_cache = lm.cache and Map.get(merged, :cache, true) != false

    meta = %{
      provider: "local",
      model: lm.model,
      request_id: System.unique_integer([:positive]),
      stream: sink != nil
    }

    Telemetry.span([:dspex, :lm, :request], meta, fn ->
      key = if use_cache, do: cache_key(lm, messages, merged), else: nil

      case key && Cache.get(key) do
        {:ok, cached} ->
          zero = %{prompt_tokens: 0, completion_tokens: 0, total_tokens: 0}

          {{:ok, cached |> Map.put(:cache_hit, true) |> Map.put(:usage, zero)},
           Map.merge(meta, %{cache_hit: true, usage: zero})}

        _ ->
          result = complete(lm, messages, merged, sink)

          with {:ok, c} <- result, true <- key != nil do
            Cache.put(key, c)
          end

          usage = with({:ok, c} <- result, do: c.usage, else: (_ -> nil))
          {result, Map.merge(meta, %{cache_hit: false, usage: usage})}
      end
    end)
  end

  defp complete(lm, messages, params, sink) do
    n = max(1, Map.get(params, :n) || 1)

    opts =
      params
      |> Map.take(@gen_keys)
      |> Map.put_new(:temperature, 0.0)
      |> Map.put_new(:max_tokens, 1024)

    opts = Enum.reject(opts, fn {_, v} -> is_nil(v) end)
    base_seed = Keyword.get(opts, :seed) || 0

    with {:ok, prompt} <- DSPex.Local.apply_chat_template(lm.local, messages) do
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

  # The cache key covers the model file, the messages and every parameter that changes
  # the output (the same scheme as DSPex.LM's: SHA-256 of canonical JSON).
  defp cache_key(lm, messages, params) do
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

    Cache.key(request)
  end

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
    Enum.find(@gen_keys ++ @ignored, k, &(Atom.to_string(&1) == k))
  end

  @doc false
  def ignored_params, do: @ignored
end
