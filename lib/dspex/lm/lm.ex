defmodule DSPex.LM do
  @moduledoc """
  The remote LM, like DSPy's `dspy.LM`: a provider model reached over HTTP.

      lm = DSPex.LM.new("openai/gpt-4o-mini", temperature: 0.0)
      lm = DSPex.LM.new("anthropic/claude-sonnet-4-5", max_tokens: 1024)
      lm = DSPex.LM.new("gemini/gemini-2.5-flash")
      lm = DSPex.LM.new("openai/qwen2.5", api_base: "http://localhost:8000/v1")  # vLLM, llama.cpp, ...
      DSPex.configure(lm: lm)

  `%DSPex.LM{}` implements `DSPex.BaseLM`; `request/3` and `stream/4` below call any LM
  (this one, `DSPex.LM.Scripted`, a local model) through `DSPex.BaseLM`. The request path
  — response cache, port transport (`DSPex.Pool`: libcurl, retries with jittered backoff
  honouring `Retry-After`, deadlines, circuit breaker), provider wire formats, streaming
  — is `DSPex.LM.Pipeline`; the wire formats are `DSPex.LM.Provider` modules.

  Failures are `%DSPex.Error{}` with `type` one of `:auth`, `:rate_limit`, `:timeout`,
  `:context_window`, `:bad_request`, `:server`, `:network`, `:port_exited`,
  `:circuit_open`, `:cancelled`.

  ## API keys

  From `api_key:` or the provider's environment variable (`OPENAI_API_KEY`,
  `ANTHROPIC_API_KEY`, `GEMINI_API_KEY`, ...), read at request time. The struct keeps a
  given key inside a closure, so neither `inspect/1` nor a crash report — Elixir's or
  Erlang's `:logger` formatter — can print it; it is never part of an error message,
  cache key, telemetry metadata, the call history or `dump_state/1`.
  """

  @behaviour DSPex.BaseLM

  alias DSPex.LM.{Pipeline, Provider}
  alias DSPex.Options

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

  @typedoc "An API key as the struct holds it: a closure returning it (or, set by hand, the key)."
  @type secret :: (() -> binary) | binary | nil

  @type t :: %__MODULE__{
          model: binary,
          provider: binary,
          provider_module: module,
          model_name: binary,
          model_type: binary,
          api_key: secret,
          api_base: binary | nil,
          api_key_env: binary | nil,
          headers: [{binary, binary}],
          cache: boolean,
          num_retries: non_neg_integer,
          timeout: timeout,
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

  # Options kept in the struct's `options` (transport and provider settings).
  @transport_opts Pipeline.port_opts() ++ [:anthropic_version, :circuit_breaker, :session]

  @connection_schema Options.schema!(
                       api_key: [
                         type: {:or, [:string, nil]},
                         secret: true,
                         doc:
                           "The API key; by default the provider's environment variable, read at request time."
                       ],
                       api_base: [
                         type: {:or, [:string, nil]},
                         doc:
                           "Server base URL, e.g. `\"http://127.0.0.1:8000/v1\"` (`openai/` also reads `OPENAI_BASE_URL` / `OPENAI_API_BASE`)."
                       ],
                       base_url: [alias: :api_base],
                       provider: [
                         type: :string,
                         doc: "The provider, instead of the prefix of the model id."
                       ],
                       model_type: [
                         type: {:in, ["chat", "text", :chat, :text]},
                         default: "chat",
                         doc: "`\"text\"` uses OpenAI's legacy `/completions`."
                       ],
                       num_retries: [
                         type: :non_neg_integer,
                         default: 3,
                         doc: "Transport retries after the first attempt."
                       ],
                       max_retries: [alias: :num_retries],
                       timeout: [
                         type: :timeout,
                         default: 600_000,
                         doc: "Whole-call deadline in ms."
                       ],
                       headers: [
                         type: :list,
                         secret: true,
                         doc: "Extra HTTP headers, `[{name, value}]`."
                       ],
                       connect_timeout_ms: [type: :pos_integer, doc: "Connect timeout."],
                       first_byte_timeout_ms: [
                         type: :pos_integer,
                         doc:
                           "Request sent → first response byte; default 120_000 (a non-streamed reply sends nothing until it is complete), 60_000 when streaming, the whole `:timeout` for OpenAI reasoning models."
                       ],
                       idle_timeout_ms: [
                         type: :pos_integer,
                         doc:
                           "Longest silence between body bytes; default 60_000 (reasoning models: the whole `:timeout`)."
                       ],
                       retry_base_ms: [type: :pos_integer, doc: "Backoff base."],
                       retry_max_ms: [
                         type: :pos_integer,
                         doc:
                           "Backoff cap and the longest `Retry-After` honoured (default 5_000); a longer wait returns the 429 at once with `retry_after_ms` in its details."
                       ],
                       max_response_bytes: [
                         type: :pos_integer,
                         doc:
                           "Largest reply body accepted, plain or streamed (default 32 MiB, at most 256 MiB); larger is a `:response_too_large` error."
                       ],
                       circuit_breaker: [
                         type: {:or, [:keyword, {:in, [false]}]},
                         doc: "Circuit-breaker overrides, or `false` to bypass it."
                       ],
                       pool: [type: :atom, default: DSPex.Pool, doc: "The `DSPex.Pool`."],
                       session: [type: :any, doc: "Worker affinity hint (`DSPex.Pool`)."],
                       anthropic_version: [
                         type: :string,
                         doc: "`anthropic-version` header (default `\"2023-06-01\"`)."
                       ],
                       kwargs: [
                         type: {:or, [:keyword, :map]},
                         doc:
                           "Other request fields, sent to the provider as given, e.g. `kwargs: [logit_bias: %{\"50256\" => -100}]`."
                       ]
                     )

  @schema @connection_schema ++
            Options.put_defaults(DSPex.BaseLM.params_schema(), cache: true)

  # copy/2 changes only what it is given: no defaults.
  @copy_schema Enum.map(@schema, fn {k, spec} -> {k, Keyword.delete(spec, :default)} end)
  @unset_schema for {k, spec} <- @schema, do: {k, Keyword.take(spec, [:alias])}
  @param_keys Options.keys(DSPex.BaseLM.params_schema()) -- [:cache]

  @doc """
  The option schema of `new/2` (`DSPex.Options`).
  """
  @spec options_schema() :: Options.schema()
  def options_schema, do: @schema

  @doc """
  Builds a provider LM from a LiteLLM-style id `"provider/model"`.

  Providers: `openai` (Chat Completions; with `api_base:` any OpenAI-compatible server),
  `anthropic`, `gemini`, and OpenAI-compatible shortcuts with default bases and key
  variables (`ollama`, `ollama_chat`, `hosted_vllm`, `vllm`, `lm_studio`, `llamacpp`,
  `groq`, `together_ai`, `deepseek`, `openrouter`, `mistral`, `xai`). An id without a
  provider is an OpenAI model; any other provider with `api_base:` is taken to be
  OpenAI-compatible.

  ## Options

  #{Options.docs(@schema)}

  The request params (`temperature` ... `cache`) become the LM's default `kwargs`, as in
  DSPy; an unknown option raises `ArgumentError` (put extra provider fields in
  `kwargs:`). Also raises for an unknown provider, and for OpenAI reasoning models with
  `temperature` other than 1.0 or `max_tokens` below 16000 (DSPy's rule).

  ## Examples

      iex> lm = DSPex.LM.new("openai/gpt-4o-mini", temperature: 0.0, api_key: "sk-secret")
      iex> {lm.provider, lm.model_name, lm.kwargs}
      {"openai", "gpt-4o-mini", %{temperature: 0.0}}
      iex> inspect(lm) =~ "sk-secret"
      false
      iex> DSPex.LM.new("gpt-4o").model
      "openai/gpt-4o"
      iex> DSPex.LM.new("openai/gpt-4o", temprature: 0.0)
      ** (ArgumentError) unknown option :temprature for DSPex.LM.new/2 (did you mean :temperature?); valid options: :anthropic_version, :api_base, :api_key, :base_url, :cache, :circuit_breaker, :connect_timeout_ms, :first_byte_timeout_ms, :frequency_penalty, :headers, :idle_timeout_ms, :kwargs, :logprobs, :max_response_bytes, :max_retries, :max_tokens, :model_type, :n, :num_retries, :pool, :presence_penalty, :provider, :reasoning_effort, :response_format, :retry_base_ms, :retry_max_ms, :rollout_id, :seed, :session, :stop, :temperature, :timeout, :tool_choice, :tools, :top_logprobs, :top_p
  """
  @spec new(binary, keyword) :: t | DSPex.LM.Local.t()
  def new(model, opts \\ [])

  # In-process GGUF models implement DSPex.BaseLM themselves, with their own options.
  def new("local/" <> name, opts) when is_list(opts), do: DSPex.LM.Local.new(name, opts)

  def new(model, opts) when is_binary(model) and is_list(opts) do
    opts = Options.validate!(opts, @schema, "DSPex.LM.new/2")

    {provider, name} =
      case {opts[:provider], String.split(model, "/", parts: 2)} do
        {p, _} when is_binary(p) -> {p, model}
        {_, [p, n]} -> {p, n}
        {_, [n]} -> {"openai", n}
      end

    {mod, env, default_base} = provider_spec!(provider, name, opts)

    kwargs =
      opts
      |> Keyword.take(@param_keys)
      |> Map.new()
      |> Map.merge(Map.new(opts[:kwargs] || []))

    if mod == DSPex.LM.Providers.OpenAI do
      case DSPex.LM.Providers.OpenAI.check_reasoning_params(name, Provider.stringify(kwargs)) do
        :ok -> :ok
        {:error, e} -> raise ArgumentError, e.message
      end
    end

    transport = Keyword.take(opts, @transport_opts)

    %__MODULE__{
      model: provider <> "/" <> name,
      provider: provider,
      provider_module: mod,
      model_name: name,
      model_type: to_string(opts[:model_type]),
      api_key: wrap_secret(opts[:api_key]),
      api_base: opts[:api_base] || env_base(provider) || default_base,
      api_key_env: env,
      headers: opts[:headers] || [],
      cache: opts[:cache],
      num_retries: opts[:num_retries],
      timeout: opts[:timeout],
      kwargs: kwargs,
      pool: opts[:pool],
      options:
        if(mod == DSPex.LM.Providers.OpenAI,
          do: [{:reasoning_model, DSPex.LM.Providers.OpenAI.reasoning_model?(name)} | transport],
          else: transport
        )
    }
  end

  defp provider_spec!(provider, name, opts) do
    case Map.fetch(@providers, provider) do
      {:ok, spec} ->
        spec

      :error ->
        if opts[:api_base] do
          {DSPex.LM.Providers.OpenAI, String.upcase(provider) <> "_API_KEY", nil}
        else
          raise ArgumentError,
                "unknown LM provider #{inspect(provider)} in #{inspect(provider <> "/" <> name)}; " <>
                  "known: #{@providers |> Map.keys() |> Enum.sort() |> Enum.join(", ")} " <>
                  "(or pass api_base: for any OpenAI-compatible server)"
        end
    end
  end

  defp env_base("openai"),
    do: System.get_env("OPENAI_BASE_URL") || System.get_env("OPENAI_API_BASE")

  defp env_base(_), do: nil

  # A closure prints as #Fun<...> under every formatter (Elixir's inspect, Erlang's ~p),
  # so a struct holding it can appear in a crash report without showing the key.
  defp wrap_secret(nil), do: nil
  defp wrap_secret(key) when is_binary(key), do: fn -> key end

  @doc false
  # The server `lm` talks to when it has no `api_base`: the provider table's default for
  # its prefix, else the provider module's own.
  @spec default_base(t) :: binary
  def default_base(%__MODULE__{provider: provider, provider_module: mod}) do
    case Map.get(@providers, provider) do
      {_, _, base} when is_binary(base) -> base
      _ -> mod.default_base()
    end
  end

  @doc false
  # `lm` with its API key in plain text (the given key, else the provider's environment
  # variable now): only for building the request headers.
  @spec resolve_key(t) :: t
  def resolve_key(%__MODULE__{api_key: key} = lm) when is_function(key, 0),
    do: %{lm | api_key: key.()}

  def resolve_key(%__MODULE__{api_key: key} = lm) when is_binary(key) and key != "", do: lm

  def resolve_key(%__MODULE__{api_key_env: env} = lm) when is_binary(env),
    do: %{lm | api_key: System.get_env(env)}

  def resolve_key(lm), do: lm

  @doc """
  Returns a copy of `lm` with `overrides` applied (options of `new/2`): LM options
  replace fields, request params replace default `kwargs`, and a `nil` value removes a
  param (like DSPy's `lm.copy(**kwargs)`). Unknown options raise `ArgumentError`.

  ## Examples

      iex> lm = DSPex.LM.new("openai/gpt-4o-mini", temperature: 0.0, max_tokens: 10)
      iex> DSPex.LM.copy(lm, temperature: 0.7, max_tokens: nil).kwargs
      %{temperature: 0.7}
  """
  @spec copy(t, keyword) :: t
  def copy(%__MODULE__{} = lm, overrides) when is_list(overrides) do
    {unset, set} = Enum.split_with(overrides, fn {_, v} -> is_nil(v) end)
    set = Options.validate!(set, @copy_schema, "DSPex.LM.copy/2")
    # The names to unset are checked too (nil itself would fail most types).
    unset = Options.validate!(unset, @unset_schema, "DSPex.LM.copy/2")

    lm = Enum.reduce(Keyword.keys(unset), lm, &unset_field/2)
    Enum.reduce(set, lm, &set_field/2)
  end

  defp set_field({:kwargs, kw}, lm), do: %{lm | kwargs: Map.merge(lm.kwargs, Map.new(kw))}
  defp set_field({k, v}, lm) when k in @param_keys, do: %{lm | kwargs: Map.put(lm.kwargs, k, v)}
  defp set_field({:api_key, v}, lm), do: %{lm | api_key: wrap_secret(v)}
  defp set_field({:model_type, v}, lm), do: %{lm | model_type: to_string(v)}
  defp set_field({:provider, _}, lm), do: lm

  defp set_field({k, v}, lm) when k in @transport_opts,
    do: %{lm | options: Keyword.put(lm.options, k, v)}

  defp set_field({k, v}, lm), do: Map.replace!(lm, k, v)

  defp unset_field(k, lm) when k in @param_keys,
    do: %{lm | kwargs: lm.kwargs |> Map.delete(k) |> Map.delete(Atom.to_string(k))}

  defp unset_field(k, lm) when k in @transport_opts,
    do: %{lm | options: Keyword.delete(lm.options, k)}

  defp unset_field(k, lm) when k in [:kwargs, :provider], do: lm
  # A field goes back to its default (api_key, api_base: nil; headers: []; ...).
  defp unset_field(k, lm), do: Map.replace!(lm, k, Map.fetch!(%__MODULE__{}, k))

  @doc """
  Whether `lm` supports a request feature (what DSPy asks LiteLLM through
  `supported_params` / `supports_response_schema`):

    * `:response_format` — `%{type: "json_object"}` JSON mode (OpenAI-compatible, Gemini);
    * `:response_schema` — `%{type: "json_schema", json_schema: ...}` structured outputs
      (OpenAI, Gemini);
    * `:tools` — native function calling (all three);
    * `:stream` — token streaming (all three).

  Any other LM answers through its own `c:DSPex.BaseLM.supports?/2`.

  ## Examples

      iex> DSPex.LM.supports?(DSPex.LM.new("openai/gpt-4o-mini"), :response_schema)
      true
      iex> DSPex.LM.supports?(DSPex.LM.new("anthropic/claude-x"), :response_format)
      false
  """
  @impl DSPex.BaseLM
  @spec supports?(struct, atom) :: boolean
  def supports?(%__MODULE__{provider_module: mod}, feature) do
    case {mod, feature} do
      {_, f} when f in [:tools, :stream] -> true
      {DSPex.LM.Providers.Anthropic, _} -> false
      {_, f} when f in [:response_format, :response_schema] -> true
      _ -> false
    end
  end

  def supports?(lm, feature), do: DSPex.BaseLM.supports?(lm, feature)

  @impl DSPex.BaseLM
  @doc false
  def forward(%__MODULE__{} = lm, messages, params, %{sink: sink}),
    do: Pipeline.run(lm, messages, params, sink)

  @doc """
  The LM's saved state, in DSPy's format (`BaseLM.dump_state`), with no secrets: no
  `api_key`, no `api_base`, no headers.

  ## Examples

      iex> lm = DSPex.LM.new("openai/gpt-4o-mini", temperature: 0.0, api_key: "sk-x")
      iex> state = DSPex.LM.dump_state(lm)
      iex> {state["_dspy_lm_class"], state["model"], state["temperature"], Map.has_key?(state, "api_key")}
      {"dspy.clients.lm.LM", "openai/gpt-4o-mini", 0.0, false}
  """
  @impl DSPex.BaseLM
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
  (and any other option of `new/2`) in `opts`.

  ## Examples

      iex> lm = DSPex.LM.new("anthropic/claude-3-5-haiku-latest", temperature: 0.5)
      iex> back = lm |> DSPex.LM.dump_state() |> DSPex.LM.load_state()
      iex> {back.model, back.kwargs["temperature"]}
      {"anthropic/claude-3-5-haiku-latest", 0.5}
  """
  @spec load_state(map, keyword) :: t
  def load_state(%{"model" => model} = state, opts \\ []) do
    kwargs =
      Map.drop(state, ~w(_dspy_lm_class model model_type cache num_retries finetuning_model
                         launch_kwargs train_kwargs api_key api_base base_url model_list
                         use_developer_role))
      |> Enum.reject(fn {_, v} -> is_nil(v) end)
      |> Map.new()

    base_opts = [
      model_type: state["model_type"] || "chat",
      cache: state["cache"] != false,
      num_retries: state["num_retries"] || 3
    ]

    lm = new(model, Keyword.merge(base_opts, opts))
    %{lm | kwargs: Map.merge(kwargs, lm.kwargs)}
  end

  @doc """
  Sends `messages` to `lm` — any LM, through `DSPex.BaseLM.request/4`.

  ## Examples

      iex> lm = DSPex.LM.new("openai/o3-mini", api_base: "http://127.0.0.1:1/v1")
      iex> {:error, e} = DSPex.LM.request(lm, [%{role: "user", content: "hi"}], %{temperature: 0.2})
      iex> e.type
      :bad_request
  """
  @spec request(struct, [DSPex.BaseLM.message()], map) :: DSPex.BaseLM.result()
  def request(lm, messages, params \\ %{}), do: DSPex.BaseLM.request(lm, messages, params)

  @doc """
  Streams a completion from any LM: `sink.({:delta, text})` for each text delta, then the
  assembled completion (`DSPex.BaseLM.stream/5`).
  """
  @spec stream(struct, [DSPex.BaseLM.message()], map, DSPex.BaseLM.sink()) ::
          DSPex.BaseLM.result()
  def stream(lm, messages, params, sink), do: DSPex.BaseLM.stream(lm, messages, params, sink)
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
