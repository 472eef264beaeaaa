defmodule DSPex.Server.Router do
  @moduledoc """
  Routes of `DSPex.Server` and the program endpoints.

  | method and path | what |
  |---|---|
  | `GET /health` | liveness and the programs' load status (`?lm=1`: also probe the served LMs) |
  | `GET /metrics` | Prometheus text (`DSPex.Server.Metrics`) |
  | `GET /v1/programs` | the programs served, their versions and input names |
  | `POST /v1/programs/:name` | run a program: inputs JSON object → prediction JSON; `?stream=true` or `Accept: text/event-stream` streams it |
  | `POST /v1/programs/:name/batch` | run it over `{"inputs": [...]}`, with bounded concurrency and per-item errors |
  | `GET /v1/models` | OpenAI-compatible model list (`DSPex.Server.OpenAI`) |
  | `POST /v1/chat/completions` | OpenAI-compatible chat completions over any served LM, streaming with SSE |

  Every route but `/health` and `/metrics` (the `public:` option) needs an API key when
  keys are configured (`DSPex.Server.Keys`): 401 without one, 429 over the key's rate
  or concurrency. Each request runs in a `[:dspex, :server, :request]` telemetry span
  (metadata `server`, `route` — the template, not the path — and `method`; stop adds
  `status` and `key_id`); a streamed response's span ends with its last byte.

  Programs run in tasks of the server's `Task.Supervisor`, unlinked from the HTTP
  connection, with `request_timeout_ms` as their deadline (then 504, `type:
  "timeout"`). The server's `lm:` option is the default LM of their predictors (a
  predictor's own LM, e.g. from its saved state, wins).
  """

  alias DSPex.Error
  alias DSPex.Server.{Keys, Metrics, Programs, Response}

  @doc false
  # Handles one request of server `name`: `req` is %{method, path, query, headers, body}.
  def handle(name, req) do
    ctx = DSPex.Server.ctx(name)
    route = route_of(req)
    t0 = System.monotonic_time()
    span = make_ref()
    meta = %{server: name, route: route, method: req.method, telemetry_span_context: span}

    DSPex.Telemetry.execute(
      [:dspex, :server, :request, :start],
      %{monotonic_time: t0, system_time: System.system_time()},
      meta
    )

    Metrics.gauge(ctx.metrics, {:in_flight}, 1)

    finish = fn status, key_id ->
      t1 = System.monotonic_time()
      Metrics.gauge(ctx.metrics, {:in_flight}, -1)
      Metrics.observe(ctx.metrics, route, status, t1 - t0)

      DSPex.Telemetry.execute(
        [:dspex, :server, :request, :stop],
        %{duration: t1 - t0, monotonic_time: t1},
        Map.merge(meta, %{status: status, key_id: key_id})
      )
    end

    {response, key} =
      try do
        dispatch(ctx, route, req)
      catch
        kind, reason ->
          finish.(500, nil)
          :erlang.raise(kind, reason, __STACKTRACE__)
      end

    key_id = key && key.id

    case response do
      {:stream, status, headers, producer} ->
        {:stream, status, headers,
         fn emit ->
           try do
             producer.(emit)
           after
             release(ctx, key)
             finish.(status, key_id)
           end
         end}

      {status, _, _} ->
        release(ctx, key)
        finish.(status, key_id)
        response
    end
  end

  @routes %{
    ["health"] => "/health",
    ["metrics"] => "/metrics",
    ["v1", "programs"] => "/v1/programs",
    ["v1", "models"] => "/v1/models",
    ["v1", "chat", "completions"] => "/v1/chat/completions"
  }

  defp route_of(req) do
    case segments(req.path) do
      ["v1", "programs", _] -> "/v1/programs/:name"
      ["v1", "programs", _, "batch"] -> "/v1/programs/:name/batch"
      segs -> Map.get(@routes, segs, "other")
    end
  end

  defp segments(path), do: String.split(path, "/", trim: true)

  # -> {response, key_entry_or_nil}; a returned key holds a concurrency slot.
  defp dispatch(ctx, route, req) do
    case {req.method, route} do
      {"GET", "/health"} -> public(ctx, :health, req, &health/2)
      {"GET", "/metrics"} -> public(ctx, :metrics, req, &metrics/2)
      {"GET", "/v1/programs"} -> guarded(ctx, req, 1, &list_programs/2)
      {"POST", "/v1/programs/:name"} -> guarded(ctx, req, 1, &run/2)
      {"POST", "/v1/programs/:name/batch"} -> batch(ctx, req)
      {"GET", "/v1/models"} -> guarded(ctx, req, 1, &DSPex.Server.OpenAI.models/2)
      {"POST", "/v1/chat/completions"} -> guarded(ctx, req, 1, &DSPex.Server.OpenAI.chat/2)
      {_, "other"} -> {Response.error(404, :not_found, "no route for #{req.path}"), nil}
      {method, route} -> {Response.error(405, :method_not_allowed, "#{method} #{route}"), nil}
    end
  end

  defp public(ctx, what, req, fun) do
    if what in ctx.public, do: {fun.(ctx, req), nil}, else: guarded(ctx, req, 1, fun)
  end

  defp guarded(ctx, req, cost, fun) do
    with {:ok, key} <- identify(ctx, req),
         :ok <- limits(ctx, key, cost) do
      {holding(ctx, key, fn -> fun.(ctx, Map.put(req, :key, key)) end), key}
    else
      {:error, response} -> {response, nil}
    end
  end

  # --- keys and limits --------------------------------------------------------------

  # The key first, before anything about the request is looked at (an unknown client
  # learns nothing, not even whether a program exists).
  defp identify(%{keys: nil}, _req), do: {:ok, nil}

  defp identify(ctx, req) do
    entry =
      case Keys.presented(req.headers) do
        nil -> nil
        presented -> Keys.verify(ctx.keys, presented)
      end

    if entry do
      {:ok, entry}
    else
      Metrics.inc(ctx.metrics, {:rejected, "unauthorized"})

      {:error,
       Response.error(
         401,
         :unauthorized,
         "a valid API key is required (Authorization: Bearer <key>)",
         [{"www-authenticate", "Bearer"}]
       )}
    end
  end

  # A key's rate (`cost` tokens) and a concurrency slot (`release/2` frees it).
  defp limits(_ctx, nil, _cost), do: :ok

  defp limits(ctx, key, cost) do
    with :ok <- rate(ctx, key, cost), do: slot(ctx, key)
  end

  defp rate(ctx, key, cost) do
    case Keys.take(ctx.keys_table, key, cost) do
      :ok ->
        :ok

      {:error, retry_s} ->
        Metrics.inc(ctx.metrics, {:rejected, "rate_limited"})

        {:error,
         Response.error(
           429,
           :rate_limited,
           "rate limit of key #{key.id} reached (#{key.rate}/s, burst #{key.burst})",
           [{"retry-after", Integer.to_string(retry_s)}]
         )}
    end
  end

  defp slot(ctx, key) do
    case Keys.acquire(ctx.keys_table, key) do
      :ok ->
        :ok

      :error ->
        Metrics.inc(ctx.metrics, {:rejected, "concurrency_limited"})

        {:error,
         Response.error(
           429,
           :concurrency_limited,
           "key #{key.id} has #{key.max_concurrency} requests in flight already",
           [{"retry-after", "1"}]
         )}
    end
  end

  # Runs `fun` while `key` holds a slot; should it raise, the slot is given back (the
  # normal path releases it once the response is out).
  defp holding(ctx, key, fun) do
    fun.()
  catch
    kind, reason ->
      release(ctx, key)
      :erlang.raise(kind, reason, __STACKTRACE__)
  end

  defp release(_ctx, nil), do: :ok
  defp release(ctx, key), do: Keys.release(ctx.keys_table, key)

  # --- health and metrics ---------------------------------------------------------

  defp health(ctx, req) do
    loaded = Programs.list(ctx.programs_table)
    failed = Programs.failures(ctx.programs_table)

    body = %{
      status: if(failed == %{}, do: "ok", else: "degraded"),
      programs:
        for(e <- Enum.sort_by(loaded, & &1.name), into: %{}, do: {e.name, %{version: e.version}}),
      failed: failed,
      models: Map.keys(DSPex.Server.OpenAI.served(ctx)) |> Enum.sort()
    }

    body =
      if req.query["lm"] in ["1", "true"] do
        Map.put(body, :lms, lm_health(ctx))
      else
        body
      end

    Response.json(200, body)
  end

  defp lm_health(ctx) do
    ctx
    |> DSPex.Server.OpenAI.served()
    |> Enum.sort()
    |> Enum.map(fn {name, lm} ->
      reports =
        for r <- DSPex.LM.health(lm) do
          %{
            model: r.model,
            endpoint: r.endpoint,
            status: r.status,
            breaker: r.breaker,
            latency_ms: r.latency_ms,
            error: r.error && Response.error_body(r.error).error
          }
        end

      %{name: name, endpoints: reports}
    end)
  end

  defp metrics(ctx, _req) do
    loaded = length(Programs.list(ctx.programs_table))
    failed = map_size(Programs.failures(ctx.programs_table))

    in_flight =
      case :ets.lookup(ctx.metrics, {:in_flight}) do
        [{_, n}] -> n
        [] -> 0
      end

    text = Metrics.render(ctx.metrics, %{in_flight: in_flight, loaded: loaded, failed: failed})
    {200, [{"content-type", "text/plain; version=0.0.4; charset=utf-8"}], text}
  end

  # --- programs -----------------------------------------------------------------------

  defp list_programs(ctx, _req) do
    programs =
      for e <- Enum.sort_by(Programs.list(ctx.programs_table), & &1.name) do
        %{
          name: e.name,
          version: e.version,
          inputs: e.inputs |> Map.keys() |> Enum.sort(),
          loaded_at: DateTime.to_iso8601(e.loaded_at)
        }
      end

    Response.json(200, %{programs: programs})
  end

  defp program(ctx, req) do
    # Names are [A-Za-z0-9_-]: a %-escaped segment names no program.
    [_, _, name | _] = segments(req.path)

    case Programs.lookup(ctx.programs_table, name) do
      nil -> {:error, Response.error(404, :program_not_found, "no program #{inspect(name)}")}
      entry -> {:ok, entry}
    end
  end

  defp run(ctx, req) do
    with {:ok, entry} <- program(ctx, req),
         {:ok, body} <- decode(req.body),
         {:ok, inputs} <- inputs_of(entry, body) do
      if stream?(req) do
        stream_program(ctx, entry, inputs)
      else
        case run_one(ctx, entry, inputs) do
          {:ok, out} -> Response.json(200, out)
          {:error, %Error{} = e} -> Response.from_error(e)
        end
      end
    else
      {:error, response} -> response
    end
  end

  defp stream?(req) do
    req.query["stream"] in ["1", "true"] or
      Enum.any?(req.headers, fn {k, v} -> k == "accept" and v =~ "text/event-stream" end)
  end

  defp decode(body) do
    case DSPex.JSON.decode(body) do
      {:ok, term} ->
        {:ok, term}

      {:error, %Error{message: m}} ->
        {:error, Response.error(400, :invalid_json, "the body is not JSON: " <> m)}
    end
  end

  defp inputs_of(entry, body) do
    case map_inputs(entry, body) do
      {:ok, inputs} -> {:ok, inputs}
      {:error, e} -> {:error, Response.from_error(e)}
    end
  end

  @doc """
  Maps a request's JSON object onto a program's input fields (`entry.inputs`, from
  `DSPex.Server.Programs.inputs/1`). The keys are untrusted: they are looked up among
  the program's own input names, never turned into atoms; an unknown key is an
  `:invalid_input` error naming the valid ones.

  ## Examples

      iex> entry = %{name: "qa", inputs: %{"question" => :question}}
      iex> DSPex.Server.Router.map_inputs(entry, %{"question" => "Why?"})
      {:ok, %{question: "Why?"}}
      iex> {:error, e} = DSPex.Server.Router.map_inputs(entry, %{"questoin" => "Why?"})
      iex> e.message
      ~s{unknown input field(s) "questoin" for program qa; its inputs are: question}
  """
  @spec map_inputs(map, term) :: {:ok, map} | {:error, Error.t()}
  def map_inputs(entry, %{} = body) do
    {known, unknown} = Enum.split_with(body, fn {k, _} -> Map.has_key?(entry.inputs, k) end)

    case unknown do
      [] ->
        {:ok, Map.new(known, fn {k, v} -> {Map.fetch!(entry.inputs, k), v} end)}

      _ ->
        names = unknown |> Enum.map(&elem(&1, 0)) |> Enum.sort() |> Enum.take(5)

        {:error,
         Error.new(
           :invalid_input,
           "unknown input field(s) #{Enum.map_join(names, ", ", &inspect/1)} for program " <>
             "#{entry.name}; its inputs are: #{entry.inputs |> Map.keys() |> Enum.sort() |> Enum.join(", ")}"
         )}
    end
  end

  def map_inputs(entry, _other),
    do: {:error, Error.new(:invalid_input, "program #{entry.name} takes a JSON object of inputs")}

  # Runs the program in a task of the server's supervisor: not linked to the
  # connection's process, bounded by the request deadline.
  defp run_one(ctx, entry, inputs) do
    task = Task.Supervisor.async_nolink(ctx.task_sup, fn -> execute(ctx, entry, inputs) end)

    case Task.yield(task, ctx.request_timeout_ms) || Task.shutdown(task, :brutal_kill) do
      {:ok, result} ->
        result

      nil ->
        {:error, deadline_error(ctx)}

      {:exit, reason} ->
        {:error, Error.new(:internal, "the program exited: " <> Error.describe(reason))}
    end
  end

  defp deadline_error(ctx),
    do: Error.new(:timeout, "the program did not finish within #{ctx.request_timeout_ms} ms")

  # One program call with the server's default LM and usage tracking: never raises.
  defp execute(ctx, entry, inputs) do
    {result, usage} =
      with_lm(ctx, fn -> DSPex.track_usage(fn -> safe_call(entry, inputs) end) end)

    case result do
      {:ok, value} ->
        {:ok,
         %{
           program: entry.name,
           version: entry.version,
           prediction: prediction_json(value),
           usage: usage
         }}

      {:error, %Error{}} = err ->
        err
    end
  end

  defp safe_call(entry, inputs) do
    case DSPex.call(entry.program, inputs) do
      {:ok, _} = ok -> ok
      {:error, %Error{}} = err -> err
      other -> {:error, Error.new(:internal, "the program returned " <> Error.describe(other))}
    end
  rescue
    e in Error -> {:error, e}
    e -> {:error, Error.new(:internal, "the program raised " <> Error.describe(e))}
  catch
    kind, reason ->
      {:error, Error.new(:internal, "the program failed: #{kind} " <> Error.describe(reason))}
  end

  defp with_lm(%{lm: nil}, fun), do: fun.()
  defp with_lm(%{lm: lm}, fun), do: DSPex.with_settings([lm: lm], fun)

  # A prediction as ordered JSON: its fields in the signature's order.
  defp prediction_json(%DSPex.Prediction{} = pred) do
    fields = DSPex.Prediction.fields(pred)
    order = Enum.filter(pred.__fields__, &Map.has_key?(fields, &1))
    rest = fields |> Map.keys() |> Kernel.--(order) |> Enum.sort_by(&to_string/1)

    {:ordered,
     for(k <- order ++ rest, do: {to_string(k), DSPex.Program.jsonable(Map.fetch!(fields, k))})}
  end

  defp prediction_json(other), do: DSPex.Program.jsonable(other)

  # --- batch --------------------------------------------------------------------------

  # A batch costs one rate token per item, so its body is read after the key is known
  # and before the rate is charged.
  defp batch(ctx, req) do
    with {:ok, key} <- identify(ctx, req),
         {:ok, entry} <- program(ctx, req),
         {:ok, body} <- decode(req.body),
         {:ok, items} <- batch_items(ctx, body),
         :ok <- limits(ctx, key, max(length(items), 1)) do
      {holding(ctx, key, fn -> run_batch(ctx, entry, items) end), key}
    else
      {:error, response} -> {response, nil}
    end
  end

  defp batch_items(ctx, body) do
    items =
      case body do
        %{"inputs" => list} when is_list(list) -> list
        list when is_list(list) -> list
        _ -> nil
      end

    cond do
      items == nil ->
        {:error,
         Response.error(400, :invalid_input, "a batch is {\"inputs\": [object, ...]} or a list")}

      length(items) > ctx.batch_max_items ->
        {:error,
         Response.error(
           413,
           :payload_too_large,
           "a batch holds at most #{ctx.batch_max_items} items (got #{length(items)})"
         )}

      true ->
        {:ok, items}
    end
  end

  defp run_batch(ctx, entry, items) do
    # Items with bad inputs get their error without running.
    prepared = Enum.map(items, &map_inputs(entry, &1))
    runnable = for {:ok, inputs} <- prepared, do: inputs

    results =
      ctx.task_sup
      |> Task.Supervisor.async_stream_nolink(runnable, &execute(ctx, entry, &1),
        max_concurrency: ctx.batch_concurrency,
        timeout: ctx.request_timeout_ms,
        on_timeout: :kill_task,
        ordered: true
      )
      |> Enum.map(fn
        {:ok, {:ok, out}} -> Map.take(out, [:prediction, :usage])
        {:ok, {:error, e}} -> Response.error_body(e)
        {:exit, :timeout} -> Response.error_body(deadline_error(ctx))
        {:exit, reason} -> Response.error_body(Error.new(:internal, Error.describe(reason)))
      end)

    {merged, []} =
      Enum.map_reduce(prepared, results, fn
        {:ok, _}, [r | rest] -> {r, rest}
        {:error, e}, rest -> {Response.error_body(e), rest}
      end)

    errors = Enum.count(merged, &Map.has_key?(&1, :error))

    Response.json(200, %{
      program: entry.name,
      version: entry.version,
      results: merged,
      errors: errors
    })
  end

  # --- streaming ----------------------------------------------------------------------

  defp stream_program(ctx, entry, inputs) do
    producer = fn emit ->
      me = self()
      ref = make_ref()

      task =
        Task.Supervisor.async_nolink(ctx.task_sup, fn ->
          {_, usage} =
            with_lm(ctx, fn ->
              DSPex.track_usage(fn ->
                entry.program
                |> DSPex.stream(inputs, on_error: :yield)
                |> Enum.each(&send(me, {ref, {:item, &1}}))
              end)
            end)

          send(me, {ref, {:usage, usage}})
        end)

      deadline = System.monotonic_time(:millisecond) + ctx.request_timeout_ms
      pump(ctx, entry, task, ref, emit, deadline, nil)
    end

    {:stream, 200, Response.sse_headers(), producer}
  end

  defp pump(ctx, entry, task, ref, emit, deadline, final) do
    wait = max(deadline - System.monotonic_time(:millisecond), 0)
    tref = task.ref

    receive do
      {^ref, {:item, %DSPex.StreamChunk{} = c}} ->
        data = %{predictor: c.predictor, field: c.field, text: c.text, last: c.last?}
        continue(emit.(Response.sse("chunk", data)), ctx, entry, task, ref, emit, deadline, final)

      {^ref, {:item, {:error, %Error{} = e}}} ->
        emit.(Response.sse("error", Response.error_body(e)))
        stop_task(task, ref)

      {^ref, {:item, value}} ->
        pump(ctx, entry, task, ref, emit, deadline, value)

      {^ref, {:usage, usage}} ->
        emit.(
          Response.sse("prediction", %{
            program: entry.name,
            version: entry.version,
            prediction: prediction_json(final),
            usage: usage
          })
        )

        stop_task(task, ref)

      {^tref, _} ->
        pump(ctx, entry, task, ref, emit, deadline, final)

      {:DOWN, ^tref, :process, _, reason} ->
        e = Error.new(:internal, "the program exited: " <> Error.describe(reason))
        emit.(Response.sse("error", Response.error_body(e)))
    after
      wait ->
        stop_task(task, ref)
        emit.(Response.sse("error", Response.error_body(deadline_error(ctx))))
    end
  end

  defp continue(:ok, ctx, entry, task, ref, emit, deadline, final),
    do: pump(ctx, entry, task, ref, emit, deadline, final)

  # The client went away: stop the program (its HTTP requests are cancelled with it).
  defp continue({:error, :closed}, _ctx, _entry, task, ref, _emit, _deadline, _final),
    do: stop_task(task, ref)

  @doc false
  # Ends a streaming request's task and drops what it sent but nobody read: the
  # connection's process serves the next request of a keep-alive connection (also
  # DSPex.Server.OpenAI's streams).
  @spec stop_task(Task.t(), reference) :: :ok
  def stop_task(task, ref) do
    Task.shutdown(task, :brutal_kill)
    flush_replies(ref)
  end

  @doc false
  # Drops the `{ref, _}` messages a finished streaming task left in the mailbox.
  @spec flush_replies(reference) :: :ok
  def flush_replies(ref) do
    receive do
      {^ref, _} -> flush_replies(ref)
    after
      0 -> :ok
    end
  end
end
