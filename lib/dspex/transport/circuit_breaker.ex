defmodule DSPex.CircuitBreaker do
  @moduledoc """
  One circuit breaker per endpoint (`scheme://host:port`), shared by every pool worker
  through a public ETS table.

  * **closed** — requests pass; each failure (network error, timeout, HTTP 5xx) adds
    one to a counter, each success resets it. 4xx responses, cancellations and port
    exits count as neither.
  * **open** — after `threshold` consecutive failures (default 5) requests are
    rejected at once with `%DSPex.Error{type: :circuit_open}`.
  * **half-open** — `cooldown_ms` (default 30_000) after opening, a single probe
    request is let through; its success closes the breaker, its failure re-opens it.
    If the probe never reports back, another one is allowed after a further cooldown.

  Telemetry: `[:dspex, :circuit_breaker, :opened | :closed | :half_open]` with
  `%{failures: n}` and `%{endpoint: endpoint}`.

  The table is owned by a process of the `:dspex` application (started before the
  default pool). Options are passed per call, so different pools can use different
  thresholds for the same endpoint's shared state.

  ## Examples

      iex> DSPex.CircuitBreaker.endpoint("https://api.openai.com/v1/chat/completions")
      "https://api.openai.com:443"
      iex> DSPex.CircuitBreaker.state("http://doc.example:1")
      :closed
  """
  use GenServer

  @table :dspex_circuit_breakers
  @defaults [threshold: 5, cooldown_ms: 30_000]

  @type state :: :closed | :open | :half_open
  @type opts :: [threshold: pos_integer, cooldown_ms: non_neg_integer]

  @doc false
  def start_link(_opts \\ []), do: GenServer.start_link(__MODULE__, [], name: __MODULE__)

  @doc false
  def child_spec(opts), do: %{id: __MODULE__, start: {__MODULE__, :start_link, [opts]}}

  @impl true
  def init(_) do
    if :ets.whereis(@table) == :undefined do
      :ets.new(@table, [
        :named_table,
        :public,
        :set,
        read_concurrency: true,
        write_concurrency: true
      ])
    end

    {:ok, nil}
  end

  @doc """
  Default options: `#{inspect(@defaults)}`.

  ## Examples

      iex> DSPex.CircuitBreaker.defaults()[:threshold]
      5
  """
  @spec defaults() :: opts
  def defaults, do: @defaults

  @doc """
  The breaker key of a URL: `scheme://host:port` (default ports filled in).

  ## Examples

      iex> DSPex.CircuitBreaker.endpoint("http://127.0.0.1:8080/x?y=1")
      "http://127.0.0.1:8080"
  """
  @spec endpoint(binary) :: binary
  def endpoint(url) when is_binary(url) do
    case URI.parse(url) do
      %URI{scheme: scheme, host: host, port: port} when is_binary(host) ->
        "#{scheme}://#{host}:#{port}"

      _ ->
        url
    end
  end

  @doc """
  Asks whether a request to `endpoint` may go out. Returns `:ok` or
  `{:error, %DSPex.Error{type: :circuit_open}}`. In half-open state exactly one caller
  gets `:ok` (the probe).

  ## Examples

      iex> DSPex.CircuitBreaker.allow("http://never-failed.example:80")
      :ok
  """
  @spec allow(binary, opts) :: :ok | {:error, DSPex.Error.t()}
  def allow(endpoint, opts \\ []) do
    if :ets.whereis(@table) == :undefined do
      :ok
    else
      do_allow(endpoint, Keyword.merge(@defaults, opts))
    end
  end

  defp do_allow(ep, opts) do
    case :ets.lookup(@table, ep) do
      [] ->
        :ok

      [{_, :closed, _, _, _}] ->
        :ok

      [{_, :open, failures, opened_at, _} = row] ->
        now = now_ms()

        if now - opened_at >= opts[:cooldown_ms] and
             cas(row, {ep, :half_open, failures, opened_at, now}) do
          emit(:half_open, ep, failures)
          :ok
        else
          reject(ep, opened_at, opts)
        end

      [{_, :half_open, failures, opened_at, probe_at} = row] ->
        now = now_ms()

        if now - probe_at >= opts[:cooldown_ms] and
             cas(row, {ep, :half_open, failures, opened_at, now}) do
          :ok
        else
          reject(ep, opened_at, opts)
        end
    end
  end

  defp reject(ep, opened_at, opts) do
    retry_in = max(opened_at + opts[:cooldown_ms] - now_ms(), 0)

    {:error,
     DSPex.Error.new(:circuit_open, "circuit breaker open for #{ep}", %{
       endpoint: ep,
       retry_in_ms: retry_in
     })}
  end

  defp cas(old, new), do: :ets.select_replace(@table, [{old, [], [{:const, new}]}]) == 1

  @doc """
  Records the outcome of a request to `endpoint` (`:success` or `:failure`).

  ## Examples

      iex> DSPex.CircuitBreaker.record("http://doc-record.example:80", :success)
      :ok
  """
  @spec record(binary, :success | :failure, opts) :: :ok
  def record(endpoint, outcome, opts \\ []) do
    if :ets.whereis(@table) != :undefined do
      do_record(endpoint, outcome, Keyword.merge(@defaults, opts))
    end

    :ok
  end

  defp do_record(ep, :success, _opts) do
    case :ets.lookup(@table, ep) do
      [] ->
        :ok

      [{_, :closed, 0, _, _}] ->
        :ok

      [{_, state, failures, _, _}] ->
        :ets.insert(@table, {ep, :closed, 0, 0, 0})
        if state != :closed, do: emit(:closed, ep, failures)
    end
  end

  defp do_record(ep, :failure, opts) do
    threshold = opts[:threshold]

    case :ets.lookup(@table, ep) do
      [] ->
        if :ets.insert_new(@table, {ep, :closed, 1, 0, 0}) do
          if threshold <= 1, do: open(ep, 1)
        else
          do_record(ep, :failure, opts)
        end

      [{_, :closed, _, _, _}] ->
        # `>=`: a row left by an earlier caller with a higher threshold (or a reused
        # loopback port) may already count more failures than this caller's threshold.
        n = :ets.update_counter(@table, ep, {3, 1})
        if n >= threshold, do: open(ep, n)

      [{_, :half_open, failures, _, _}] ->
        open(ep, failures + 1)

      [{_, :open, _, _, _}] ->
        :ets.update_counter(@table, ep, {3, 1})
    end

    :ok
  end

  defp open(ep, failures) do
    :ets.insert(@table, {ep, :open, failures, now_ms(), 0})
    emit(:opened, ep, failures)
  end

  @doc """
  The current state of `endpoint`'s breaker.

  ## Examples

      iex> DSPex.CircuitBreaker.state("http://unknown.example:80")
      :closed
  """
  @spec state(binary) :: state
  def state(endpoint) do
    if :ets.whereis(@table) == :undefined do
      :closed
    else
      case :ets.lookup(@table, endpoint) do
        [{_, state, _, _, _}] -> state
        [] -> :closed
      end
    end
  end

  @doc """
  Forgets `endpoint`'s state (closes its breaker).

  ## Examples

      iex> DSPex.CircuitBreaker.reset("http://doc-reset.example:80")
      :ok
  """
  @spec reset(binary) :: :ok
  def reset(endpoint) do
    if :ets.whereis(@table) != :undefined, do: :ets.delete(@table, endpoint)
    :ok
  end

  defp emit(event, ep, failures) do
    DSPex.Telemetry.execute([:dspex, :circuit_breaker, event], %{failures: failures}, %{
      endpoint: ep
    })
  end

  defp now_ms, do: System.monotonic_time(:millisecond)
end
