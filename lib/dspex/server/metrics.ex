defmodule DSPex.Server.Metrics do
  @moduledoc """
  The numbers behind `GET /metrics` of a `DSPex.Server`, in Prometheus' text format
  (version 0.0.4).

  | metric | type | labels |
  |---|---|---|
  | `dspex_server_requests_total` | counter | `route`, `status` |
  | `dspex_server_request_duration_seconds` | histogram | `route` |
  | `dspex_server_requests_in_flight` | gauge | |
  | `dspex_server_rejected_total` | counter | `reason` (`unauthorized`, `rate_limited`, `concurrency_limited`) |
  | `dspex_server_programs` | gauge | `status` (`loaded`, `failed`) |
  | `dspex_server_program_reloads_total` | counter | `program`, `outcome` |
  | `dspex_lm_calls_total` | counter | `model`, `outcome` (`ok` or the error type) |
  | `dspex_lm_tokens_total` | counter | `model`, `kind` (`prompt`, `completion`) |
  | `dspex_lm_cache_hits_total` | counter | `model` |
  | `dspex_lm_fallbacks_total` | counter | `from`, `to`, `reason` |

  `route` is the route template (`/v1/programs/:name`), never the raw path, so label
  values stay bounded; the LM metrics come from the `[:dspex, :lm, :call]` and
  `[:dspex, :lm, :fallback]` telemetry events (`DSPex.BaseLM`, `DSPex.LM.Fallback`) of
  every LM call on this node, served or not. At most #{5_000} label sets are kept; further
  ones are counted under `other`.

  Counters are ETS counters (`:ets.update_counter/4`) in a public table of the server,
  so recording costs no message; this process holds the telemetry handler (detached when
  it stops).
  """
  use GenServer

  # Seconds; Prometheus' default buckets plus 30 and 60 s for slow LM calls.
  @buckets [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60]
  @max_series 5_000

  @doc false
  def start_link(opts), do: GenServer.start_link(__MODULE__, opts)

  @doc false
  def child_spec(opts), do: %{id: __MODULE__, start: {__MODULE__, :start_link, [opts]}}

  @impl true
  def init(opts) do
    # The table belongs to the server's table owner; this process holds the handler.
    table = Keyword.fetch!(opts, :table)
    Process.flag(:trap_exit, true)
    id = {__MODULE__, make_ref()}

    :ok =
      DSPex.Telemetry.attach_many(
        id,
        [[:dspex, :lm, :call, :stop], [:dspex, :lm, :fallback]],
        &__MODULE__.handle_event/4,
        table
      )

    {:ok, %{table: table, handler: id}}
  end

  @impl true
  def terminate(_reason, s) do
    DSPex.Telemetry.detach(s.handler)
    :ok
  end

  @doc false
  def handle_event([:dspex, :lm, :call, :stop], _m, meta, table) do
    model = to_string(Map.get(meta, :response_model) || Map.get(meta, :model) || "unknown")

    case meta do
      %{error: type} ->
        inc(table, {:lm_calls, model, to_string(type)})

      _ ->
        inc(table, {:lm_calls, model, "ok"})
        usage = Map.get(meta, :usage) || %{}
        add(table, {:lm_tokens, model, "prompt"}, int(Map.get(usage, :prompt_tokens)))
        add(table, {:lm_tokens, model, "completion"}, int(Map.get(usage, :completion_tokens)))
        if Map.get(meta, :cache_hit) == true, do: inc(table, {:lm_cache_hits, model})
    end
  end

  def handle_event([:dspex, :lm, :fallback], _m, meta, table) do
    inc(table, {:lm_fallbacks, to_string(meta.from), to_string(meta.to), to_string(meta.reason)})
  end

  defp int(n) when is_integer(n) and n > 0, do: n
  defp int(_), do: 0

  @doc false
  # One served request: its route template, HTTP status and duration (native units).
  def observe(table, route, status, duration) do
    seconds = System.convert_time_unit(duration, :native, :microsecond) / 1_000_000
    inc(table, {:requests, route, status})

    bucket = Enum.find_index(@buckets, &(seconds <= &1)) || length(@buckets)
    inc(table, {:hist, route, bucket})
    add(table, {:hist_sum_us, route}, round(seconds * 1_000_000))
  end

  @doc false
  def inc(table, key), do: add(table, key, 1)

  @doc false
  def add(_table, _key, 0), do: :ok

  def add(table, key, n) do
    key =
      if :ets.info(table, :size) >= @max_series and :ets.lookup(table, key) == [],
        do: put_elem(key, 1, "other"),
        else: key

    :ets.update_counter(table, key, {2, n}, {key, 0})
    :ok
  end

  @doc false
  # Gauges: a counter moved both ways.
  def gauge(table, key, delta), do: :ets.update_counter(table, key, {2, delta}, {key, 0})

  @doc """
  Renders the table (and the given gauges) as Prometheus text.

  ## Examples

      iex> t = :ets.new(:doc_metrics, [:public])
      iex> DSPex.Server.Metrics.observe(t, "/health", 200, System.convert_time_unit(2, :millisecond, :native))
      iex> text = DSPex.Server.Metrics.render(t, %{})
      iex> text =~ ~s(dspex_server_requests_total{route="/health",status="200"} 1)
      true
      iex> text =~ ~s(dspex_server_request_duration_seconds_bucket{route="/health",le="0.005"} 1)
      true
  """
  @spec render(:ets.tid(), map) :: binary
  def render(table, gauges) do
    rows = :ets.tab2list(table)
    pick = fn tag -> for {k, v} <- rows, elem(k, 0) == tag, do: {Tuple.delete_at(k, 0), v} end

    [
      family(
        "dspex_server_requests_total",
        "counter",
        "HTTP requests served.",
        for({{route, status}, v} <- pick.(:requests), do: {[route: route, status: status], v})
      ),
      histogram(pick.(:hist), pick.(:hist_sum_us)),
      family(
        "dspex_server_requests_in_flight",
        "gauge",
        "Requests being served.",
        [{[], Map.get(gauges, :in_flight, 0)}]
      ),
      family(
        "dspex_server_rejected_total",
        "counter",
        "Requests refused before running (auth, rate and concurrency limits).",
        for({{reason}, v} <- pick.(:rejected), do: {[reason: reason], v})
      ),
      family(
        "dspex_server_programs",
        "gauge",
        "Programs by load status.",
        for(
          {status, n} <- [
            loaded: Map.get(gauges, :loaded, 0),
            failed: Map.get(gauges, :failed, 0)
          ],
          do: {[status: status], n}
        )
      ),
      family(
        "dspex_server_program_reloads_total",
        "counter",
        "Program (re)loads from the programs directory.",
        for(
          {{program, outcome}, v} <- pick.(:reloads),
          do: {[program: program, outcome: outcome], v}
        )
      ),
      family(
        "dspex_lm_calls_total",
        "counter",
        "LM calls on this node, by answering model and outcome.",
        for({{model, outcome}, v} <- pick.(:lm_calls), do: {[model: model, outcome: outcome], v})
      ),
      family(
        "dspex_lm_tokens_total",
        "counter",
        "Tokens of LM calls on this node (cache hits cost none).",
        for({{model, kind}, v} <- pick.(:lm_tokens), do: {[model: model, kind: kind], v})
      ),
      family(
        "dspex_lm_cache_hits_total",
        "counter",
        "LM calls answered from the response cache.",
        for({{model}, v} <- pick.(:lm_cache_hits), do: {[model: model], v})
      ),
      family(
        "dspex_lm_fallbacks_total",
        "counter",
        "Steps of a fallback chain to its next LM.",
        for(
          {{from, to, reason}, v} <- pick.(:lm_fallbacks),
          do: {[from: from, to: to, reason: reason], v}
        )
      )
    ]
    |> IO.iodata_to_binary()
  end

  defp family(name, type, help, samples) do
    [
      "# HELP ",
      name,
      " ",
      help,
      "\n# TYPE ",
      name,
      " ",
      type,
      "\n",
      for({labels, v} <- Enum.sort(samples), do: [name, labels(labels), " ", num(v), "\n"])
    ]
  end

  defp histogram(buckets, sums) do
    name = "dspex_server_request_duration_seconds"
    routes = buckets |> Enum.map(fn {{route, _}, _} -> route end) |> Enum.uniq() |> Enum.sort()
    counts = Map.new(buckets)
    sums = Map.new(sums)

    [
      "# HELP #{name} Time to serve a request (to the last byte for streams).\n",
      "# TYPE #{name} histogram\n",
      for route <- routes do
        {lines, total} =
          (@buckets ++ [:inf])
          |> Enum.with_index()
          |> Enum.map_reduce(0, fn {le, i}, acc ->
            acc = acc + Map.get(counts, {route, i}, 0)
            le = if le == :inf, do: "+Inf", else: num(le)
            {[name, "_bucket", labels(route: route, le: le), " ", num(acc), "\n"], acc}
          end)

        sum = Map.get(sums, {route}, 0) / 1_000_000

        [
          lines,
          [name, "_sum", labels(route: route), " ", num(sum), "\n"],
          [name, "_count", labels(route: route), " ", num(total), "\n"]
        ]
      end
    ]
  end

  defp labels([]), do: ""

  defp labels(pairs) do
    [
      "{",
      Enum.map_intersperse(pairs, ",", fn {k, v} -> [to_string(k), "=\"", esc(v), "\""] end),
      "}"
    ]
  end

  defp esc(v) do
    v
    |> to_string()
    |> String.replace("\\", "\\\\")
    |> String.replace("\"", "\\\"")
    |> String.replace("\n", "\\n")
  end

  defp num(n) when is_integer(n), do: Integer.to_string(n)
  defp num(n) when is_float(n), do: :erlang.float_to_binary(n, [:short])
end
