defmodule DSPex.LM.Pipeline do
  @moduledoc """
  The request path of the remote LM (`DSPex.LM`): one call, from request params to a
  completion.

      params ─► merge with the LM's kwargs ─► cache lookup ─┬─ hit ─► completion (zero usage)
                                                             └─ miss ─► provider.build/4
                 ─► JSON body ─► DSPex.Pool (port: libcurl, retries, deadline)
                 ─► provider.parse/2 (or SSE events ─► provider.stream_event/3 ─► sink)
                 ─► cache store ─► completion

  Every call runs in a `[:dspex, :lm, :request]` telemetry span (metadata `provider`,
  `model`, `request_id`, `stream`; stop adds `cache_hit`, `usage`, `http_status`,
  `attempts`, or `error`). Usage and history are recorded one level up, for every LM, by
  `DSPex.BaseLM`.

  ## Cache key

  SHA-256 (`DSPex.LM.Cache.key/1`) of the canonical JSON of the request without secrets
  or transport settings: `model`, `model_type`, `messages`, every request param that
  reaches the provider, `rollout_id`, and — only for an LM pointed at a server other than
  its provider's default — the endpoint (`api_base` without user info, query or
  trailing `/`). Keys of LMs on their provider's default endpoint are the ones DSPex has
  always written, so existing disk caches stay valid.

  ## Secrets

  The API key is read (from the LM or the provider's environment variable) right before
  the request is built — a hosted provider on its default endpoint without one fails
  there with an `:auth` error (`DSPex.LM.require_key/1`), before any request — and
  exists only in the request headers handed to the transport; provider errors that echo it are scrubbed (`DSPex.LM.Provider.http_error/6`), and an
  exit from the transport becomes an error whose message names the failure, never the
  request.
  """

  alias DSPex.Error
  alias DSPex.LM.{Cache, Provider}

  # Per-request port settings (docs/transport-api.md), kept in the LM's `options`.
  @port_opts [
    :connect_timeout_ms,
    :first_byte_timeout_ms,
    :idle_timeout_ms,
    :retry_base_ms,
    :retry_max_ms,
    :max_response_bytes
  ]

  @doc false
  def port_opts, do: @port_opts

  # Request params that are DSPex's own and never sent to a provider.
  @internal_set Map.new(
                  ~w(cache rollout_id api_key api_base base_url headers timeout num_retries
                     max_retries model_type pool session connect_timeout_ms first_byte_timeout_ms
                     idle_timeout_ms retry_base_ms retry_max_ms max_response_bytes anthropic_version
                     circuit_breaker stream provider),
                  &{&1, true}
                )

  @doc """
  Runs one request of `lm` (a `%DSPex.LM{}`): `sink` is `nil` for a whole reply, or a
  function receiving `{:delta, text}` while the reply streams.
  """
  @spec run(DSPex.LM.t(), [DSPex.BaseLM.message()], map, DSPex.BaseLM.sink() | nil) ::
          DSPex.BaseLM.result()
  def run(%DSPex.LM{} = lm, messages, params, sink) when is_list(messages) and is_map(params) do
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

    meta = %{
      provider: lm.provider,
      model: lm.model,
      request_id: System.unique_integer([:positive]),
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
          lm = %{lm | num_retries: retries, timeout: timeout}
          {result, stop_meta} = send_request(lm, messages, send_params, sink)

          with {:ok, completion} <- result,
               true <- key != nil and completion.choices != [] do
            Cache.put(key, completion)
          end

          {result, Map.merge(meta, Map.put(stop_meta, :cache_hit, false))}
      end
    end)
  end

  @doc """
  The cache key of a request (see the module doc); `nil` when the request is not
  JSON-encodable. `send_params` are the binary-keyed params that reach the provider.

  ## Examples

      iex> lm = DSPex.LM.new("openai/gpt-4o-mini")
      iex> msgs = [%{role: "user", content: "hi"}]
      iex> DSPex.LM.Pipeline.cache_key(lm, msgs, %{"temperature" => 0.0}, nil)
      "c0649ce75292bf549aa7095f1d92a14dec9afd0b4576406afaf2e29efe9bafee"
      iex> other = DSPex.LM.new("openai/gpt-4o-mini", api_base: "http://127.0.0.1:8000/v1")
      iex> DSPex.LM.Pipeline.cache_key(other, msgs, %{"temperature" => 0.0}, nil) ==
      ...>   DSPex.LM.Pipeline.cache_key(lm, msgs, %{"temperature" => 0.0}, nil)
      false
  """
  @spec cache_key(DSPex.LM.t(), list, map, term) :: binary | nil
  def cache_key(%DSPex.LM{} = lm, messages, send_params, rollout_id) do
    send_params
    |> Map.merge(%{
      "model" => lm.model,
      "model_type" => lm.model_type,
      "messages" => Provider.stringify(messages),
      "_fn_identifier" => "dspex.lm." <> lm.model_type
    })
    |> put_present("rollout_id", rollout_id)
    |> put_present("api_base", custom_endpoint(lm))
    |> Cache.key()
  end

  defp put_present(map, _key, nil), do: map
  defp put_present(map, key, value), do: Map.put(map, key, value)

  @doc """
  The endpoint that identifies `lm`'s server in cache keys: `nil` when it talks to its
  provider's default server, else its `api_base` without user info, query, fragment or
  trailing `/` (credentials never enter a key).

  ## Examples

      iex> DSPex.LM.Pipeline.custom_endpoint(DSPex.LM.new("ollama/llama3"))
      nil
      iex> DSPex.LM.Pipeline.custom_endpoint(DSPex.LM.new("openai/x", api_base: "https://user:pw@h:8000/v1/?k=1"))
      "https://h:8000/v1"
  """
  @spec custom_endpoint(DSPex.LM.t()) :: binary | nil
  def custom_endpoint(%DSPex.LM{api_base: nil}), do: nil

  def custom_endpoint(%DSPex.LM{api_base: base} = lm) do
    endpoint = normalize_endpoint(base)
    if endpoint == normalize_endpoint(DSPex.LM.default_base(lm)), do: nil, else: endpoint
  end

  defp normalize_endpoint(nil), do: nil

  defp normalize_endpoint(url) do
    uri = URI.parse(url)

    %URI{uri | userinfo: nil, query: nil, fragment: nil}
    |> URI.to_string()
    |> String.trim_trailing("/")
  end

  # --- the transport --------------------------------------------------------------

  defp send_request(lm, messages, params, sink) do
    lm = DSPex.LM.resolve_key(lm)
    provider = lm.provider_module

    # Timeout defaults (docs/transport-api.md, "Timeouts"): a non-streamed reply sends
    # nothing until it is complete, so its first byte may take 120 s (~4800 tokens at
    # 40 tok/s); a stream's headers come at once, then a chunk at least every 60 s.
    # OpenAI reasoning models think silently for minutes: the whole deadline for both.
    patient = if lm.options[:reasoning_model], do: lm.timeout, else: nil
    patient = if patient == :infinity, do: 86_400_000, else: patient

    # A hosted provider without a key would only answer 401 after the retries: say
    # which variable to set, before any request.
    with :ok <- DSPex.LM.require_key(lm),
         {:ok, http} <- provider.build(lm, messages, params, sink != nil),
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

  @doc false
  # Runs a DSPex.Pool call. The request map holds the API key in its headers: a call
  # that exits must not carry it into the caller's crash report or error message.
  def pool_call(fun) do
    fun.()
  catch
    :exit, reason ->
      {:error,
       Error.new(
         :port_exited,
         "the transport call exited: " <> Error.describe(reason),
         %{reason: :exit}
       )}
  end

  defp do_sync(lm, req, pool_opts) do
    case pool_call(fn -> DSPex.Pool.request(req, pool_opts) end) do
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
            lm.provider,
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
    %{e | message: "#{lm.provider} request to #{lm.model} failed: " <> e.message}
  end

  defp stop_meta({:ok, completion}, status, attempts) do
    %{http_status: status, attempts: attempts, usage: completion.usage}
  end

  defp stop_meta({:error, e}, status, attempts) do
    %{http_status: status, attempts: attempts, error: e.type}
  end

  defp do_stream(lm, req, pool_opts, sink) do
    case pool_call(fn -> DSPex.Pool.stream(req, Keyword.put(pool_opts, :to, self())) end) do
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
        err = Provider.http_error(provider, lm.provider, st, body, %{}, lm.api_key)
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
            "#{lm.provider} stream from #{lm.model} passed its deadline",
            %{timeout: :total}
          )

        {{:error, e}, stop_meta({:error, e}, status, nil)}
    end
  end

  defp feed(provider, state, events, sink) do
    Enum.reduce_while(events, {:ok, state}, fn {event, data}, {:ok, st} ->
      case provider.stream_event(st, event, data) do
        {tag, deltas, st} when tag in [:ok, :done] ->
          Enum.each(deltas, fn
            text when is_binary(text) -> sink.({:delta, text})
            {:tool_call, piece} -> sink.({:tool_call_delta, piece})
          end)

          {:cont, {:ok, st}}

        {:error, e} ->
          {:halt, {:error, e}}
      end
    end)
  end
end
