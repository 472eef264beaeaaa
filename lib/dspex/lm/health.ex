defmodule DSPex.LM.Health do
  @moduledoc """
  Health probes of LM endpoints (`DSPex.LM.health/2`).

  Each remote LM (`%DSPex.LM{}`; a `DSPex.LM.Fallback` chain is expanded into its LMs) is
  checked in three steps, without spending tokens by default:

    1. **key** — a hosted provider on its default endpoint with no API key is
       `:error` with an `:auth` error at once (the same check a request makes);
    2. **breaker** — the probe goes through `DSPex.Pool` with the LM's breaker
       settings, so an endpoint whose `DSPex.CircuitBreaker` is open is `:error` with
       `:circuit_open` and gets no request until the cooldown ends; then the probe is
       the one request let through, and its success closes the breaker;
    3. **probe** — one request:
       * `probe: :models` (default) — `GET` the provider's model listing
         (`<base>/models` for OpenAI-compatible servers, `/v1/models` for Anthropic,
         `/models/<model>` for Gemini): is the server up and is the key accepted;
       * `probe: :completion` — a one-token completion of `"ping"` (cache off): the
         model itself answers; costs one tiny request.

  Any other LM (scripted, in-process) has no endpoint and is reported `:ok`.

  A report is `%{model:, endpoint:, status: :ok | :error, breaker:, latency_ms:,
  error: nil | %DSPex.Error{}}` — no key, no URL query or user info. Probes run
  concurrently; the whole check runs in a `[:dspex, :lm, :health]` telemetry span
  (stop metadata: `ok` and `error` counts).
  """

  alias DSPex.{CircuitBreaker, Error}

  @typedoc "One endpoint's health."
  @type report :: %{
          model: binary,
          endpoint: binary | nil,
          status: :ok | :error,
          breaker: CircuitBreaker.state() | nil,
          latency_ms: non_neg_integer | nil,
          error: Error.t() | nil
        }

  @schema DSPex.Options.schema!(
            probe: [
              type: {:in, [:models, :completion]},
              default: :models,
              doc: "`:models` (no tokens) or `:completion` (a one-token completion)."
            ],
            timeout: [type: :pos_integer, default: 10_000, doc: "Per-probe deadline in ms."]
          )

  @doc """
  Probes every endpoint of `lms` (an LM, a registered name, a list of them, or `:all`
  for every named LM). See `DSPex.LM.health/2`.

  ## Options

  #{DSPex.Options.docs(@schema)}
  """
  @spec check(term, keyword) :: [report]
  def check(lms, opts \\ []) do
    opts = opts |> DSPex.Options.validate!(@schema, "DSPex.LM.health/2") |> Map.new()
    targets = expand(lms)

    DSPex.Telemetry.span([:dspex, :lm, :health], %{count: length(targets)}, fn ->
      reports =
        targets
        |> Task.async_stream(&probe(&1, opts),
          max_concurrency: 8,
          timeout: opts[:timeout] + 5_000,
          on_timeout: :kill_task
        )
        |> Enum.zip(targets)
        |> Enum.map(fn
          {{:ok, report}, _} ->
            report

          {{:exit, _}, {_name, lm}} ->
            base(lm) |> fail(Error.new(:timeout, "the health probe did not finish", %{}))

          {{:exit, _}, {:unresolved, name, e}} ->
            probe({:unresolved, name, e}, opts)
        end)

      ok = Enum.count(reports, &(&1.status == :ok))

      {reports, %{count: length(reports), ok: ok, error: length(reports) - ok}}
    end)
  end

  # [{name_or_nil, lm}] with chains flattened.
  defp expand(:all), do: Enum.flat_map(DSPex.LM.Registry.names(), &expand/1)
  defp expand(list) when is_list(list), do: Enum.flat_map(list, &expand/1)

  # A name that does not resolve is reported, not raised: a health check answers.
  defp expand(name) when is_atom(name) do
    case DSPex.LM.Registry.lookup(name) do
      {:ok, lm} -> expand(lm)
      {:error, e} -> [{:unresolved, name, e}]
    end
  end

  defp expand(%DSPex.LM.Fallback{lms: lms}), do: Enum.flat_map(lms, &expand/1)
  defp expand(%_{} = lm), do: [{nil, lm}]

  defp base(%DSPex.LM{} = lm) do
    %{
      model: lm.model,
      endpoint: endpoint(lm),
      status: :ok,
      breaker: CircuitBreaker.state(endpoint(lm)),
      latency_ms: nil,
      error: nil
    }
  end

  defp base(lm) do
    %{
      model: DSPex.BaseLM.model(lm),
      endpoint: nil,
      status: :ok,
      breaker: nil,
      latency_ms: nil,
      error: nil
    }
  end

  defp fail(report, %Error{} = e), do: %{report | status: :error, error: e}

  defp endpoint(%DSPex.LM{} = lm),
    do: CircuitBreaker.endpoint(lm.api_base || DSPex.LM.default_base(lm))

  defp probe({_name, %DSPex.LM{} = lm}, opts) do
    report = base(lm)

    cond do
      match?({:error, _}, DSPex.LM.require_key(lm)) ->
        {:error, e} = DSPex.LM.require_key(lm)
        fail(report, e)

      true ->
        t0 = System.monotonic_time(:millisecond)
        result = run_probe(lm, opts)
        report = %{report | latency_ms: System.monotonic_time(:millisecond) - t0}

        report =
          case result do
            :ok -> report
            {:error, %Error{} = e} -> fail(report, e)
          end

        # The probe may have moved the breaker (closed a half-open one).
        %{report | breaker: CircuitBreaker.state(report.endpoint)}
    end
  end

  defp probe({:unresolved, name, e}, _opts) do
    %{
      model: Atom.to_string(name),
      endpoint: nil,
      status: :error,
      breaker: nil,
      latency_ms: nil,
      error: e
    }
  end

  defp probe({_name, lm}, _opts), do: base(lm)

  defp run_probe(lm, %{probe: :completion} = opts) do
    lm = DSPex.LM.copy(lm, num_retries: 0, timeout: opts.timeout, cache: false)
    params = if reasoning?(lm), do: %{}, else: %{max_tokens: 1}

    case DSPex.LM.Pipeline.run(lm, [%{role: "user", content: "ping"}], params, nil) do
      {:ok, _} -> :ok
      {:error, _} = err -> err
    end
  end

  defp run_probe(lm, opts) do
    lm = DSPex.LM.resolve_key(lm)
    mod = lm.provider_module

    # The provider builds its own headers (auth scheme, version headers); only the URL
    # and method differ from a completion request.
    with {:ok, http} <- mod.build(lm, [%{role: "user", content: "ping"}], %{}, false) do
      req = %{
        url: models_url(lm),
        method: "GET",
        headers: Enum.reject(http.headers, fn {k, _} -> k == "content-type" end),
        body: "",
        max_retries: 0
      }

      # The LM's own breaker settings, as for its completions: while the breaker is
      # open the pool answers :circuit_open without a request; after the cooldown this
      # probe is the one request let through.
      pool_opts =
        case Keyword.get(lm.options, :circuit_breaker) do
          nil -> [pool: lm.pool, timeout: opts.timeout]
          cb -> [pool: lm.pool, timeout: opts.timeout, circuit_breaker: cb]
        end

      reply = DSPex.LM.Pipeline.pool_call(fn -> DSPex.Pool.request(req, pool_opts) end)

      case reply do
        {:ok, %{status: status}} when status in 200..299 ->
          :ok

        {:ok, %{status: status, body: body}} ->
          {:error, DSPex.LM.Provider.http_error(mod, lm.provider, status, body, %{}, lm.api_key)}

        {:error, %Error{} = e} ->
          {:error, e}
      end
    end
  end

  defp reasoning?(lm), do: Keyword.get(lm.options, :reasoning_model, false)

  @doc false
  # The model-listing URL a `probe: :models` check GETs.
  def models_url(%DSPex.LM{provider_module: mod} = lm) do
    base = DSPex.LM.Provider.base_url(lm, DSPex.LM.default_base(lm))

    case mod do
      DSPex.LM.Providers.Anthropic -> base <> "/v1/models"
      DSPex.LM.Providers.Gemini -> base <> "/models/" <> lm.model_name
      _ -> base <> "/models"
    end
  end
end
