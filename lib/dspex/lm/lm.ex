defmodule DSPex.LM do
  @moduledoc """
  The language-model boundary, and the built-in provider LM.

  ## The behaviour

  An LM value is any struct whose module implements this behaviour. Predict modules call
  `DSPex.LM.request/3`, which dispatches on the struct (and `DSPex.LM.stream/4` when
  streaming).

  A completion is `%{choices: [choice], usage: usage, model: binary}` where each choice is
  `%{text: binary | nil, finish_reason: binary | nil, tool_calls: list | nil,
  logprobs: term, reasoning_content: binary | nil}` and `usage` is
  `%{prompt_tokens:, completion_tokens:, total_tokens:}` (plus optional
  `cached_tokens`, `reasoning_tokens`). A cache hit sets `cache_hit: true` and zero usage.
  Tool calls use OpenAI's shape with atom keys:
  `%{id:, type: "function", function: %{name:, arguments: json_binary}}`.

  `params` is a map of request parameters (`temperature`, `max_tokens`, `n`, `stop`,
  `seed`, `response_format`, `tools`, `tool_choice`, `rollout_id`, `cache`, ...).

  ## Provider LMs: `DSPex.LM.new/2`

      lm = DSPex.LM.new("openai/gpt-4o-mini", temperature: 0.0)
      lm = DSPex.LM.new("anthropic/claude-sonnet-4-5", max_tokens: 1024)
      lm = DSPex.LM.new("gemini/gemini-2.5-flash")
      lm = DSPex.LM.new("openai/qwen2.5", api_base: "http://localhost:8000/v1")  # vLLM, llama.cpp, ...
      {:ok, completion} = DSPex.LM.request(lm, [%{role: "user", content: "Hi"}])

  Requests go through the port transport (`DSPex.Pool`: libcurl, retries with jittered
  backoff honouring `Retry-After`, deadlines, circuit breaker) and through the two-level
  response cache (`DSPex.LM.Cache`). Failures are `%DSPex.Error{}` with `type` one of
  `:auth`, `:rate_limit`, `:timeout`, `:context_window`, `:bad_request`, `:server`,
  `:network`, `:port_exited`, `:circuit_open`, `:cancelled`.

  API keys come from `api_key:` or the provider's environment variable
  (`OPENAI_API_KEY`, `ANTHROPIC_API_KEY`, `GEMINI_API_KEY`, ...), read at request time.
  They are never logged, never shown by `inspect/1`, never part of cache keys, telemetry
  metadata or `dump_state/1`.
  """

  alias DSPex.Error
  alias DSPex.LM.{Cache, Provider}

  @type message :: %{required(:role) => binary, required(:content) => binary | list}
  @type choice :: %{
          required(:text) => binary | nil,
          optional(:finish_reason) => binary | nil,
          optional(:tool_calls) => list | nil,
          optional(:logprobs) => term,
          optional(:reasoning_content) => binary | nil
        }
  @type completion :: %{
          required(:choices) => [choice],
          required(:usage) => map,
          optional(:model) => binary,
          optional(:cache_hit) => boolean
        }

  @callback request(lm :: struct, messages :: [message], params :: map) ::
              {:ok, completion} | {:error, DSPex.Error.t()}

  @callback stream(lm :: struct, messages :: [message], params :: map, sink :: (term -> any)) ::
              {:ok, completion} | {:error, DSPex.Error.t()}

  @optional_callbacks stream: 4

  defstruct model: nil,
            provider: nil,
            provider_module: nil,
            model_name: nil,
            model_type: "chat",
            api_key: nil,
            api_base: nil,
            api_key_env: nil,
            headers: [],
            cache: true,
            num_retries: 3,
            timeout: 600_000,
            kwargs: %{},
            pool: DSPex.Pool,
            options: []

  @type t :: %__MODULE__{
          model: binary,
          provider: binary,
          provider_module: module,
          model_name: binary,
          model_type: binary,
          api_key: binary | nil,
          api_base: binary | nil,
          api_key_env: binary | nil,
          headers: [{binary, binary}],
          cache: boolean,
          num_retries: non_neg_integer,
          timeout: pos_integer | :infinity,
          kwargs: map,
          pool: atom,
          options: keyword
        }

  # provider prefix => {module, env var for the key, default api_base or nil}
  @providers %{
    "openai" => {DSPex.LM.Providers.OpenAI, "OPENAI_API_KEY", nil},
    "anthropic" => {DSPex.LM.Providers.Anthropic, "ANTHROPIC_API_KEY", nil},
    "gemini" => {DSPex.LM.Providers.Gemini, "GEMINI_API_KEY", nil},
    "hosted_vllm" => {DSPex.LM.Providers.OpenAI, "HOSTED_VLLM_API_KEY", nil},
    "vllm" => {DSPex.LM.Providers.OpenAI, "VLLM_API_KEY", nil},
    "ollama" => {DSPex.LM.Providers.OpenAI, "OLLAMA_API_KEY", "http://localhost:11434/v1"},
    "ollama_chat" => {DSPex.LM.Providers.OpenAI, "OLLAMA_API_KEY", "http://localhost:11434/v1"},
    "lm_studio" => {DSPex.LM.Providers.OpenAI, "LM_STUDIO_API_KEY", "http://localhost:1234/v1"},
    "llamacpp" => {DSPex.LM.Providers.OpenAI, "LLAMACPP_API_KEY", "http://localhost:8080/v1"},
    "groq" => {DSPex.LM.Providers.OpenAI, "GROQ_API_KEY", "https://api.groq.com/openai/v1"},
    "together_ai" =>
      {DSPex.LM.Providers.OpenAI, "TOGETHER_API_KEY", "https://api.together.xyz/v1"},
    "deepseek" => {DSPex.LM.Providers.OpenAI, "DEEPSEEK_API_KEY", "https://api.deepseek.com/v1"},
    "openrouter" =>
      {DSPex.LM.Providers.OpenAI, "OPENROUTER_API_KEY", "https://openrouter.ai/api/v1"},
    "mistral" => {DSPex.LM.Providers.OpenAI, "MISTRAL_API_KEY", "https://api.mistral.ai/v1"},
    "xai" => {DSPex.LM.Providers.OpenAI, "XAI_API_KEY", "https://api.x.ai/v1"}
  }

  # Per-request port settings (docs/transport-api.md), kept in the LM's `options`.
  @port_opts [
    :connect_timeout_ms,
    :first_byte_timeout_ms,
    :idle_timeout_ms,
    :retry_base_ms,
    :retry_max_ms,
    :max_response_bytes
  ]

  # LM options kept in `options` (transport and provider settings).
  @transport_opts @port_opts ++ [:anthropic_version, :circuit_breaker, :session]

  # Options that configure the LM (everything else becomes a default request param).
  @lm_opts ~w(api_key api_base base_url headers cache num_retries max_retries timeout
              model_type pool provider)a ++ @transport_opts

  # Request params that are DSPex's own and never sent to a provider.
  @internal_set Map.new(
                  ~w(cache rollout_id api_key api_base base_url headers timeout num_retries
                     max_retries model_type pool session connect_timeout_ms first_byte_timeout_ms
                     idle_timeout_ms retry_base_ms retry_max_ms anthropic_version circuit_breaker
                     stream provider),
                  &{&1, true}
                )

  @doc """
  Builds a provider LM from a LiteLLM-style id `"provider/model"`.

  Providers: `openai` (Chat Completions; with `api_base:` any OpenAI-compatible server),
  `anthropic`, `gemini`, and OpenAI-compatible shortcuts with default bases and key
  variables (`ollama`, `ollama_chat`, `hosted_vllm`, `vllm`, `lm_studio`, `llamacpp`,
  `groq`, `together_ai`, `deepseek`, `openrouter`, `mistral`, `xai`). An id without a
  provider is an OpenAI model. `local/...` is delegated to `DSPex.LM.Local` when present.

  Options:

    * `:api_key` — else the provider's environment variable at request time;
    * `:api_base` (alias `:base_url`) — server base URL, e.g. `"http://127.0.0.1:8000/v1"`
      (`openai/` also reads `OPENAI_BASE_URL` / `OPENAI_API_BASE`);
    * `:cache` (default `true`), `:num_retries` (alias `:max_retries`, default 3),
      `:timeout` (whole-call deadline in ms, default 600_000);
    * `:model_type` — `"chat"` (default) or `"text"` (OpenAI `/completions`);
    * transport tuning: `:connect_timeout_ms`, `:first_byte_timeout_ms` (default
      120_000, 60_000 when streaming), `:idle_timeout_ms` (default 60_000; OpenAI
      reasoning models: both the whole `:timeout`), `:retry_base_ms`, `:retry_max_ms`
      (default 5_000), `:max_response_bytes` (default 32 MiB), `:circuit_breaker`,
      `:pool`, `:session`, `:headers`;
    * `:anthropic_version` (default `"2023-06-01"`);
    * everything else is a default request parameter (`temperature`, `max_tokens`, `n`,
      `stop`, `seed`, `response_format`, `tools`, `reasoning_effort`, `rollout_id`, ...).

  Raises `ArgumentError` for an unknown provider or for OpenAI reasoning models with
  `temperature` other than 1.0 or `max_tokens` below 16000 (DSPy's rule).

  ## Examples

      iex> lm = DSPex.LM.new("openai/gpt-4o-mini", temperature: 0.0, api_key: "sk-secret")
      iex> {lm.provider, lm.model_name, lm.kwargs}
      {"openai", "gpt-4o-mini", %{temperature: 0.0}}
      iex> inspect(lm) =~ "sk-secret"
      false
      iex> DSPex.LM.new("gpt-4o").model
      "openai/gpt-4o"
  """
  @spec new(binary, keyword) :: t | struct
  def new(model, opts \\ []) when is_binary(model) and is_list(opts) do
    {provider, name} =
      case {Keyword.get(opts, :provider), String.split(model, "/", parts: 2)} do
        {p, _} when is_binary(p) -> {p, model}
        {_, [p, n]} -> {p, n}
        {_, [n]} -> {"openai", n}
      end

    if provider == "local" do
      new_local(name, opts)
    else
      new_provider(provider, name, opts)
    end
  end

  @compile {:no_warn_undefined, DSPex.LM.Local}
  defp new_local(name, opts) do
    if Code.ensure_loaded?(DSPex.LM.Local) and function_exported?(DSPex.LM.Local, :new, 2) do
      DSPex.LM.Local.new(name, opts)
    else
      raise ArgumentError,
            "local models need DSPex.LM.Local, which is not available in this build"
    end
  end

  defp new_provider(provider, name, opts) do
    {mod, env, default_base} =
      case Map.fetch(@providers, provider) do
        {:ok, spec} ->
          spec

        :error ->
          if Keyword.has_key?(opts, :api_base) or Keyword.has_key?(opts, :base_url) do
            {DSPex.LM.Providers.OpenAI, String.upcase(provider) <> "_API_KEY", nil}
          else
            raise ArgumentError,
                  "unknown LM provider #{inspect(provider)} in #{inspect(provider <> "/" <> name)}; " <>
                    "known: #{@providers |> Map.keys() |> Enum.sort() |> Enum.join(", ")} " <>
                    "(or pass api_base: for any OpenAI-compatible server)"
          end
      end

    {lm_opts, kwargs} = Keyword.split(opts, @lm_opts)
    kwargs = Map.new(kwargs)

    model_type = to_string(Keyword.get(lm_opts, :model_type, "chat"))

    unless model_type in ["chat", "text"] do
      raise ArgumentError, "model_type must be \"chat\" or \"text\", got: #{inspect(model_type)}"
    end

    if mod == DSPex.LM.Providers.OpenAI do
      case DSPex.LM.Providers.OpenAI.check_reasoning_params(name, Provider.stringify(kwargs)) do
        :ok -> :ok
        {:error, e} -> raise ArgumentError, e.message
      end
    end

    transport = Keyword.take(lm_opts, @transport_opts)

    %__MODULE__{
      model: provider <> "/" <> name,
      provider: provider,
      provider_module: mod,
      model_name: name,
      model_type: model_type,
      api_key: Keyword.get(lm_opts, :api_key),
      api_base:
        Keyword.get(lm_opts, :api_base) || Keyword.get(lm_opts, :base_url) ||
          env_base(provider) || default_base,
      api_key_env: env,
      headers: Keyword.get(lm_opts, :headers, []),
      cache: Keyword.get(lm_opts, :cache, true),
      num_retries: Keyword.get(lm_opts, :num_retries) || Keyword.get(lm_opts, :max_retries) || 3,
      timeout: Keyword.get(lm_opts, :timeout, 600_000),
      kwargs: kwargs,
      pool: Keyword.get(lm_opts, :pool, DSPex.Pool),
      options:
        if(mod == DSPex.LM.Providers.OpenAI,
          do: [{:reasoning_model, DSPex.LM.Providers.OpenAI.reasoning_model?(name)} | transport],
          else: transport
        )
    }
  end

  defp env_base("openai"),
    do: System.get_env("OPENAI_BASE_URL") || System.get_env("OPENAI_API_BASE")

  defp env_base(_), do: nil

  @doc """
  Returns a copy of `lm` with `overrides` applied: LM options replace fields, other keys
  replace default request params, and a `nil` value removes a param (like DSPy's
  `lm.copy(**kwargs)`).

  ## Examples

      iex> lm = DSPex.LM.new("openai/gpt-4o-mini", temperature: 0.0, max_tokens: 10)
      iex> DSPex.LM.copy(lm, temperature: 0.7, max_tokens: nil).kwargs
      %{temperature: 0.7}
  """
  @spec copy(t, keyword) :: t
  def copy(%__MODULE__{} = lm, overrides) when is_list(overrides) do
    {lm_opts, kw} = Keyword.split(overrides, @lm_opts)

    kwargs =
      Enum.reduce(kw, lm.kwargs, fn
        {k, nil}, acc -> acc |> Map.delete(k) |> Map.delete(Atom.to_string(k))
        {k, v}, acc -> Map.put(acc, k, v)
      end)

    Enum.reduce(lm_opts, %{lm | kwargs: kwargs}, fn
      {:api_key, v}, acc -> %{acc | api_key: v}
      {k, v}, acc when k in [:api_base, :base_url] -> %{acc | api_base: v}
      {:cache, v}, acc -> %{acc | cache: v}
      {k, v}, acc when k in [:num_retries, :max_retries] -> %{acc | num_retries: v}
      {:timeout, v}, acc -> %{acc | timeout: v}
      {:headers, v}, acc -> %{acc | headers: v}
      {:pool, v}, acc -> %{acc | pool: v}
      {:model_type, v}, acc -> %{acc | model_type: to_string(v)}
      {:provider, _}, acc -> acc
      {k, v}, acc -> %{acc | options: Keyword.put(acc.options, k, v)}
    end)
  end

  @doc """
  Whether `lm` supports a request feature (what DSPy asks LiteLLM through
  `supported_params` / `supports_response_schema`):

    * `:response_format` — `%{type: "json_object"}` JSON mode (OpenAI-compatible, Gemini);
    * `:response_schema` — `%{type: "json_schema", json_schema: ...}` structured outputs
      (OpenAI, Gemini);
    * `:tools` — native function calling (all three);
    * `:stream` — token streaming (all three).

  Other LM structs answer `false` unless their module exports `supports?/2`.

  ## Examples

      iex> DSPex.LM.supports?(DSPex.LM.new("openai/gpt-4o-mini"), :response_schema)
      true
      iex> DSPex.LM.supports?(DSPex.LM.new("anthropic/claude-x"), :response_format)
      false
  """
  @spec supports?(struct, atom) :: boolean
  def supports?(%__MODULE__{provider_module: mod}, feature) do
    case {mod, feature} do
      {_, f} when f in [:tools, :stream] -> true
      {DSPex.LM.Providers.Anthropic, _} -> false
      {_, f} when f in [:response_format, :response_schema] -> true
      _ -> false
    end
  end

  def supports?(%mod{} = lm, feature) do
    Code.ensure_loaded(mod)
    function_exported?(mod, :supports?, 2) and mod.supports?(lm, feature) == true
  end

  @doc """
  The LM's saved state, in DSPy's format (`BaseLM.dump_state`), with no secrets: no
  `api_key`, no `api_base`, no headers.

  ## Examples

      iex> lm = DSPex.LM.new("openai/gpt-4o-mini", temperature: 0.0, api_key: "sk-x")
      iex> state = DSPex.LM.dump_state(lm)
      iex> {state["_dspy_lm_class"], state["model"], state["temperature"], Map.has_key?(state, "api_key")}
      {"dspy.clients.lm.LM", "openai/gpt-4o-mini", 0.0, false}
  """
  @spec dump_state(t) :: map
  def dump_state(%__MODULE__{} = lm) do
    kwargs =
      lm.kwargs
      |> Provider.stringify()
      |> Map.drop(~w(api_key api_base base_url headers))

    Map.merge(kwargs, %{
      "_dspy_lm_class" => "dspy.clients.lm.LM",
      "model" => lm.model,
      "model_type" => lm.model_type,
      "cache" => lm.cache,
      "num_retries" => lm.num_retries,
      "finetuning_model" => nil,
      "launch_kwargs" => %{},
      "train_kwargs" => %{}
    })
  end

  @doc """
  Rebuilds an LM from `dump_state/1` output (or a DSPy-saved LM state). `api_base`,
  `base_url`, `api_key` and `model_list` in the state are ignored, as in DSPy; pass them
  (and any other option) in `opts`.

  ## Examples

      iex> lm = DSPex.LM.new("anthropic/claude-3-5-haiku-latest", temperature: 0.5)
      iex> back = lm |> DSPex.LM.dump_state() |> DSPex.LM.load_state()
      iex> {back.model, back.kwargs["temperature"]}
      {"anthropic/claude-3-5-haiku-latest", 0.5}
  """
  @spec load_state(map, keyword) :: t | struct
  def load_state(%{"model" => model} = state, opts \\ []) do
    kwargs =
      Map.drop(state, ~w(_dspy_lm_class model model_type cache num_retries finetuning_model
                         launch_kwargs train_kwargs api_key api_base base_url model_list
                         use_developer_role))
      |> Enum.reject(fn {_, v} -> is_nil(v) end)
      |> Map.new()

    base_opts = [
      model_type: state["model_type"] || "chat",
      cache: Map.get(state, "cache", true),
      num_retries: state["num_retries"] || 3
    ]

    lm = new(model, Keyword.merge(base_opts, opts))

    case lm do
      %__MODULE__{} -> %{lm | kwargs: Map.merge(kwargs, lm.kwargs)}
      other -> other
    end
  end

  @doc """
  Sends `messages` to `lm` (any struct implementing `DSPex.LM`).

  ## Examples

      iex> lm = DSPex.LM.new("openai/o3-mini", api_base: "http://127.0.0.1:1/v1")
      iex> {:error, e} = DSPex.LM.request(lm, [%{role: "user", content: "hi"}], %{temperature: 0.2})
      iex> e.type
      :bad_request
  """
  @spec request(struct, [message], map) :: {:ok, completion} | {:error, DSPex.Error.t()}
  def request(lm, messages, params \\ %{})

  def request(%__MODULE__{} = lm, messages, params) when is_list(messages) and is_map(params) do
    call(lm, messages, params, nil)
  end

  def request(%mod{} = lm, messages, params) when is_list(messages) and is_map(params) do
    mod.request(lm, messages, params)
  end

  @doc """
  Streams a completion: calls `sink.({:delta, text})` for each text delta of the first
  choice as it arrives, then returns the assembled completion like `request/3` (usage from
  the provider's final event). A cache hit sends no deltas.

  For an LM struct whose module does not implement `stream/4`, falls back to `request/3`
  and sends the whole text as one delta.
  """
  @spec stream(struct, [message], map, (term -> any)) ::
          {:ok, completion} | {:error, DSPex.Error.t()}
  def stream(%__MODULE__{} = lm, messages, params, sink)
      when is_list(messages) and is_map(params) and is_function(sink, 1) do
    call(lm, messages, params, sink)
  end

  def stream(%mod{} = lm, messages, params, sink) when is_function(sink, 1) do
    Code.ensure_loaded(mod)

    if function_exported?(mod, :stream, 4) do
      mod.stream(lm, messages, params, sink)
    else
      with {:ok, completion} <- mod.request(lm, messages, params) do
        replay_text(completion, sink)
        {:ok, completion}
      end
    end
  end

  @doc false
  # Sends the first choice's text of a finished completion to a streaming `sink` as
  # `{:delta, chunk}` events of `chunk_size` bytes (`:all`: one delta); nothing for an
  # empty text. For LMs that answer whole but are asked to stream.
  @spec replay_text(map, (term -> any), pos_integer | :all) :: :ok
  def replay_text(completion, sink, chunk_size \\ :all) do
    case completion do
      %{choices: [%{text: text} | _]} when is_binary(text) ->
        text |> text_chunks(chunk_size) |> Enum.each(&sink.({:delta, &1}))

      _ ->
        :ok
    end
  end

  defp text_chunks("", _), do: []
  defp text_chunks(text, :all), do: [text]

  defp text_chunks(text, size) do
    case text do
      <<chunk::binary-size(size), rest::binary>> -> [chunk | text_chunks(rest, size)]
      _ -> [text]
    end
  end

  # ---------------------------------------------------------------------------------
  # The request path
  # ---------------------------------------------------------------------------------

  defp call(lm, messages, params, sink) do
    merged =
      lm.kwargs
      |> Provider.stringify()
      |> Map.merge(Provider.stringify(params))
      |> Enum.reject(fn {_, v} -> is_nil(v) end)
      |> Map.new()

    use_cache = lm.cache != false and Map.get(merged, "cache", true) != false
    send_params = :maps.filter(fn k, _ -> not is_map_key(@internal_set, k) end, merged)
    timeout = Map.get(merged, "timeout", lm.timeout)
    retries = Map.get(merged, "num_retries") || Map.get(merged, "max_retries") || lm.num_retries

    request_id = System.unique_integer([:positive])

    meta = %{
      provider: lm.provider,
      model: lm.model,
      request_id: request_id,
      stream: sink != nil
    }

    DSPex.Telemetry.span([:dspex, :lm, :request], meta, fn ->
      key =
        if use_cache, do: cache_key(lm, messages, send_params, merged["rollout_id"]), else: nil

      case key && Cache.get(key) do
        {:ok, cached} ->
          result =
            {:ok, cached |> Map.put(:cache_hit, true) |> Map.put(:usage, Provider.zero_usage())}

          {result,
           Map.merge(meta, %{
             cache_hit: true,
             usage: Provider.zero_usage(),
             http_status: nil,
             attempts: 0
           })}

        _ ->
          {result, stop_meta} =
            send_request(
              %{lm | num_retries: retries, timeout: timeout},
              messages,
              send_params,
              sink
            )

          case result do
            {:ok, completion} ->
              if key && completion.choices != [], do: Cache.put(key, completion)
              DSPex.Usage.record(lm.model, completion.usage)

            _ ->
              :ok
          end

          {result, Map.merge(meta, Map.put(stop_meta, :cache_hit, false))}
      end
    end)
  end

  @doc false
  # The cache key: SHA-256 of the canonical (sorted-key) JSON of the request without
  # secrets or transport settings. `nil` when the request is not JSON-encodable.
  def cache_key(lm, messages, send_params, rollout_id) do
    request =
      send_params
      |> Map.merge(%{
        "model" => lm.model,
        "model_type" => lm.model_type,
        "messages" => Provider.stringify(messages),
        "_fn_identifier" => "dspex.lm." <> lm.model_type
      })
      |> then(fn r -> if rollout_id, do: Map.put(r, "rollout_id", rollout_id), else: r end)

    Cache.key(request)
  end

  @doc false
  def resolve_key(%__MODULE__{api_key: key} = lm) when is_binary(key) and key != "", do: lm

  def resolve_key(%__MODULE__{api_key_env: env} = lm) when is_binary(env) do
    %{lm | api_key: System.get_env(env)}
  end

  def resolve_key(lm), do: lm

  defp send_request(lm, messages, params, sink) do
    lm = resolve_key(lm)
    provider = lm.provider_module

    # Timeout defaults (docs/transport-api.md, "Timeouts"): a non-streamed reply sends
    # nothing until it is complete, so its first byte may take 120 s (~4800 tokens at
    # 40 tok/s); a stream's headers come at once, then a chunk at least every 60 s.
    # OpenAI reasoning models think silently for minutes: the whole deadline for both.
    patient = if lm.options[:reasoning_model], do: lm.timeout, else: nil
    patient = if patient == :infinity, do: 86_400_000, else: patient

    with {:ok, http} <- provider.build(lm, messages, params, sink != nil),
         {:ok, body} <- encode_body(http.body) do
      req =
        %{
          url: http.url,
          method: "POST",
          headers: http.headers,
          body: body,
          max_retries: lm.num_retries,
          first_byte_timeout_ms: patient || if(sink, do: 60_000, else: 120_000),
          idle_timeout_ms: patient || 60_000
        }
        |> Map.merge(Map.new(Keyword.take(lm.options, @port_opts)))

      pool_opts =
        [pool: lm.pool, timeout: lm.timeout, retry_on_port_exit: true]
        |> put_opt(:circuit_breaker, Keyword.get(lm.options, :circuit_breaker))
        |> put_opt(:session, Keyword.get(lm.options, :session))

      if sink, do: do_stream(lm, req, pool_opts, sink), else: do_sync(lm, req, pool_opts)
    else
      {:error, %Error{} = e} -> {{:error, e}, %{error: e.type, http_status: nil, attempts: 0}}
    end
  end

  defp put_opt(opts, _k, nil), do: opts
  defp put_opt(opts, k, v), do: Keyword.put(opts, k, v)

  defp encode_body(body) do
    case DSPex.JSON.encode(body) do
      {:ok, bin} ->
        {:ok, bin}

      {:error, %Error{} = e} ->
        {:error, Error.new(:bad_request, "request is not JSON-encodable: " <> e.message)}
    end
  end

  defp provider_name(lm), do: lm.provider

  defp do_sync(lm, req, pool_opts) do
    case DSPex.Pool.request(req, pool_opts) do
      {:ok, %{status: status, body: body} = resp} when status in 200..299 ->
        attempts = get_in(resp, [:info, :attempts])

        result =
          with {:ok, decoded} <- Provider.decode_json(body) do
            lm.provider_module.parse(decoded, lm)
          end

        {result, stop_meta(result, status, attempts)}

      {:ok, %{status: status, body: body} = resp} ->
        attempts = get_in(resp, [:info, :attempts])

        err =
          Provider.http_error(
            lm.provider_module,
            provider_name(lm),
            status,
            body,
            %{attempts: attempts, retry_after_ms: get_in(resp, [:info, :retry_after_ms])},
            lm.api_key
          )

        {{:error, err}, stop_meta({:error, err}, status, attempts)}

      {:error, %Error{} = e} ->
        e = transport_error(lm, e)
        {{:error, e}, stop_meta({:error, e}, nil, get_in(e.details, [:info, :attempts]))}
    end
  end

  defp transport_error(lm, %Error{} = e) do
    %{e | message: "#{provider_name(lm)} request to #{lm.model} failed: " <> e.message}
  end

  defp stop_meta({:ok, completion}, status, attempts) do
    %{http_status: status, attempts: attempts, usage: completion.usage}
  end

  defp stop_meta({:error, e}, status, attempts) do
    %{http_status: status, attempts: attempts, error: e.type}
  end

  defp do_stream(lm, req, pool_opts, sink) do
    case DSPex.Pool.stream(req, Keyword.put(pool_opts, :to, self())) do
      {:ok, handle} ->
        provider = lm.provider_module
        state = provider.stream_init(lm)
        deadline = if is_integer(lm.timeout), do: lm.timeout + 5_000, else: :infinity

        try do
          stream_loop(lm, handle, provider, state, sink, nil, deadline)
        catch
          kind, reason ->
            DSPex.Pool.cancel(handle)
            :erlang.raise(kind, reason, __STACKTRACE__)
        end

      {:error, %Error{} = e} ->
        e = transport_error(lm, e)
        {{:error, e}, stop_meta({:error, e}, nil, nil)}
    end
  end

  defp stream_loop(lm, handle, provider, state, sink, status, deadline) do
    ref = handle.ref

    receive do
      {:dspex_http, ^ref, {:stream_start, st, _headers}} ->
        stream_loop(lm, handle, provider, state, sink, st, deadline)

      {:dspex_http, ^ref, {:sse, events}} ->
        case feed(provider, state, events, sink) do
          {:ok, state} ->
            stream_loop(lm, handle, provider, state, sink, status, deadline)

          {:error, e} ->
            DSPex.Pool.cancel(handle)
            {{:error, e}, stop_meta({:error, e}, status, nil)}
        end

      {:dspex_http, ^ref, {:stream_end, info}} ->
        result = provider.stream_finish(state)
        {result, stop_meta(result, status, info[:attempts])}

      {:dspex_http, ^ref, {:response, st, _headers, body}} ->
        err = Provider.http_error(provider, provider_name(lm), st, body, %{}, lm.api_key)
        {{:error, err}, stop_meta({:error, err}, st, nil)}

      {:dspex_http, ^ref, {:error, %Error{} = e}} ->
        e = transport_error(lm, e)
        {{:error, e}, stop_meta({:error, e}, status, get_in(e.details, [:info, :attempts]))}
    after
      deadline ->
        DSPex.Pool.cancel(handle)

        e =
          Error.new(
            :timeout,
            "#{provider_name(lm)} stream from #{lm.model} passed its deadline",
            %{timeout: :total}
          )

        {{:error, e}, stop_meta({:error, e}, status, nil)}
    end
  end

  defp feed(provider, state, events, sink) do
    Enum.reduce_while(events, {:ok, state}, fn {event, data}, {:ok, st} ->
      case provider.stream_event(st, event, data) do
        {tag, deltas, st} when tag in [:ok, :done] ->
          Enum.each(deltas, &sink.({:delta, &1}))
          {:cont, {:ok, st}}

        {:error, e} ->
          {:halt, {:error, e}}
      end
    end)
  end
end

defimpl Inspect, for: DSPex.LM do
  import Inspect.Algebra

  def inspect(lm, opts) do
    shown = [
      model: lm.model,
      model_type: lm.model_type,
      api_base: lm.api_base,
      api_key: if(lm.api_key in [nil, ""], do: nil, else: :redacted),
      cache: lm.cache,
      num_retries: lm.num_retries,
      kwargs: Map.drop(lm.kwargs, [:api_key, "api_key"])
    ]

    concat(["#DSPex.LM<", to_doc(shown, opts), ">"])
  end
end
