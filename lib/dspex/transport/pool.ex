defmodule DSPex.Pool do
  @moduledoc """
  A pool of `DSPex.Port` workers: every HTTP call of DSPex goes through here.

  Each worker owns one `priv/dspex_port` process (a libuv loop driving libcurl multi)
  that runs many requests concurrently over kept-alive connections. The pool picks the
  least-loaded worker (in-flight + queued, read lock-free from `:atomics`), or the
  worker of a `session:` while it is alive and not saturated. Workers queue requests
  beyond `max_in_flight` until the caller's deadline; a worker whose port dies answers
  its in-flight callers at once and restarts the port with backoff; a request caught
  by a dying port is re-dispatched once to another worker (`retry_on_port_exit`). A
  shared per-endpoint `DSPex.CircuitBreaker` fails fast when an endpoint keeps failing.

  The application starts a default pool named `DSPex.Pool`
  (`config :dspex, :pool, size: 4, max_in_flight: 256`). Start more in your own
  supervision tree:

      children = [{DSPex.Pool, name: MyApp.LLMPool, size: 4}]

  See `docs/transport-api.md` for the full contract.

  ## Examples

      {:ok, %{status: 200, body: body}} =
        DSPex.Pool.request(%{url: "http://127.0.0.1:4000/v1/models", method: "GET"}, timeout: 5_000)
  """
  use Supervisor

  alias DSPex.{CircuitBreaker, Error}
  alias DSPex.Pool.Handle

  @max_body 64 * 1024 * 1024 - 64 * 1024
  @day_ms 86_400_000

  # Options of start_link/1 and child_spec/1 (nil: computed in init/1) ...
  @options DSPex.Options.schema!(
             name: [type: :atom, default: __MODULE__, doc: "The pool's registered name."],
             size: [
               type: {:or, [:pos_integer, nil]},
               doc: "Workers (ports); default `System.schedulers_online()`."
             ],
             max_in_flight: [
               type: :pos_integer,
               default: 256,
               doc: "Requests in flight per worker; more wait in its queue."
             ],
             max_queue: [
               type: :non_neg_integer,
               default: 10_000,
               doc: "Queued requests per worker."
             ],
             circuit_breaker: [
               type: {:or, [:keyword, {:in, [false]}]},
               default: [],
               doc: "`DSPex.CircuitBreaker` overrides, or `false` to disable it."
             ],
             restart_backoff_ms: [
               type: :any,
               default: {50, 5_000},
               doc: "`{min, max}` port restart backoff in ms."
             ],
             health_timeout_ms: [
               type: :pos_integer,
               default: 2_000,
               doc:
                 "When a request outlives its deadline in a worker, the port is pinged and killed if it does not answer in time."
             ],
             port_path: [type: {:or, [:string, nil]}, doc: "The port executable."]
           )
  # ... and of request/2, stream/2 (plus :to) and stream_events/2.
  @request_options DSPex.Options.schema!(
                     pool: [type: :atom, default: __MODULE__, doc: "The pool."],
                     timeout: [type: :timeout, default: 600_000, doc: "Deadline in ms."],
                     session: [
                       type: :any,
                       doc: "Worker affinity: the same session, the same worker."
                     ],
                     retry_on_port_exit: [
                       type: :boolean,
                       default: true,
                       doc: "Re-dispatch once to another worker when a port dies."
                     ],
                     circuit_breaker: [
                       type: {:or, [:keyword, {:in, [false]}, nil]},
                       doc: "Per-request circuit-breaker overrides, or `false` to bypass it."
                     ]
                   )
  @stream_options DSPex.Options.schema!(
                    [to: [type: :pid, doc: "The process that receives the stream's messages."]] ++
                      @request_options
                  )

  @type response :: DSPex.Port.response()
  @type request_map :: DSPex.Port.request_map()

  # ------------------------------------------------------------------ supervision

  @doc """
  Child spec for a pool: `{DSPex.Pool, name: MyPool, size: 4}`.

  Unknown options raise `ArgumentError` listing the valid ones.

  ## Options

  #{DSPex.Options.docs(@options)}

  ## Examples

      iex> DSPex.Pool.child_spec(name: :doc_pool).id
      {DSPex.Pool, :doc_pool}
  """
  @spec child_spec(keyword) :: Supervisor.child_spec()
  def child_spec(opts) do
    opts = DSPex.Options.validate!(opts, @options, "DSPex.Pool.child_spec/1")
    name = opts[:name]

    %{
      id: {__MODULE__, name},
      start: {__MODULE__, :start_link, [opts]},
      type: :supervisor
    }
  end

  @doc """
  Starts a pool under the caller (see `child_spec/1` for options).

  ## Examples

      {:ok, _sup} = DSPex.Pool.start_link(name: MyPool, size: 2)
  """
  @spec start_link(keyword) :: Supervisor.on_start()
  def start_link(opts \\ []) do
    opts = DSPex.Options.validate!(opts, @options, "DSPex.Pool.start_link/1")
    Supervisor.start_link(__MODULE__, opts, name: opts[:name])
  end

  @impl true
  def init(opts) do
    opts = DSPex.Options.validate!(opts, @options, "DSPex.Pool.start_link/1")
    name = opts[:name]
    size = opts[:size] || System.schedulers_online()
    max_in_flight = opts[:max_in_flight]

    cb =
      case opts[:circuit_breaker] do
        false -> false
        kw when is_list(kw) -> Keyword.merge(CircuitBreaker.defaults(), kw)
      end

    load = :atomics.new(size, signed: true)
    names = List.to_tuple(for i <- 1..size, do: Module.concat(name, "Worker#{i}"))

    meta = %{
      name: name,
      size: size,
      names: names,
      load: load,
      max_in_flight: max_in_flight,
      cb: cb
    }

    :persistent_term.put({__MODULE__, name}, meta)

    worker_opts =
      Keyword.take(opts, [:max_queue, :restart_backoff_ms, :port_path, :health_timeout_ms]) ++
        [pool: name, load: load, max_in_flight: max_in_flight]

    children =
      for i <- 1..size do
        Supervisor.child_spec({DSPex.Port, [name: elem(names, i - 1), index: i] ++ worker_opts},
          id: {:worker, i}
        )
      end

    Supervisor.init(children, strategy: :one_for_one, max_restarts: 10, max_seconds: 5)
  end

  # ------------------------------------------------------------------ requests

  @doc """
  Sends an HTTP request and waits for the final response (after the port's retries).

  Returns `{:ok, %{status:, headers:, body:, info:}}` for any HTTP status, or
  `{:error, %DSPex.Error{type: :timeout | :network | :port_exited | :circuit_open |
  :cancelled | :overloaded | :bad_request | :response_too_large}}`. Options: `:pool`,
  `:timeout` (ms, default 600_000; the caller never waits longer), `:session`,
  `:retry_on_port_exit` (default true), `:circuit_breaker` (keyword overrides or
  `false`). The request map's keys (timeouts, retries, `max_response_bytes`) and their
  defaults are in `docs/transport-api.md`; its bytes (method, URL, headers) are checked
  by the port, which answers `:bad_request` before sending anything.

  ## Examples

      {:ok, resp} = DSPex.Pool.request(%{url: url, body: ~s({"a":1}),
                                         headers: [{"content-type", "application/json"}]})
      resp.status
  """
  @spec request(request_map, keyword) :: {:ok, response} | {:error, Error.t()}
  def request(req, opts \\ []) do
    opts = DSPex.Options.validate!(opts, @request_options, "DSPex.Pool.request/2")

    with {:ok, %{req: req, pool: pool, meta: meta, deadline: deadline, ep: ep, cb: cb}} <-
           route(req, opts) do
      start_meta = %{pool: pool, endpoint: ep, stream: false}

      DSPex.Telemetry.span([:dspex, :pool, :request], start_meta, fn ->
        result =
          with :ok <- allow(ep, cb) do
            wopts = %{
              deadline: deadline,
              retry_on_port_exit: opts[:retry_on_port_exit],
              endpoint: ep,
              cb: cb
            }

            dispatch(meta, req, wopts, Keyword.get(opts, :session), nil, 1)
          end

        stop =
          case result do
            {:ok, %{status: s}} -> Map.put(start_meta, :status, s)
            {:error, %Error{type: t}} -> Map.put(start_meta, :error, t)
          end

        {result, stop}
      end)
    end
  end

  @doc """
  Like `request/2` but returns the response or raises the `%DSPex.Error{}`.

  ## Examples

      %{status: 200} = DSPex.Pool.request!(%{url: url, method: "GET"})
  """
  @spec request!(request_map, keyword) :: response
  def request!(req, opts \\ []) do
    case request(req, opts) do
      {:ok, resp} -> resp
      {:error, err} -> raise err
    end
  end

  # What request/2 and stream/2 settle first: the normalized request, its pool and the
  # pool's meta, the caller's deadline, the endpoint and its circuit-breaker settings.
  defp route(req, opts) do
    req = normalize!(req)
    pool = opts[:pool]

    with {:ok, meta} <- meta(pool) do
      {:ok,
       %{
         req: req,
         pool: pool,
         meta: meta,
         deadline: now_ms() + timeout_ms(opts),
         ep: CircuitBreaker.endpoint(req.url),
         cb: cb_opts(meta, opts)
       }}
    end
  end

  defp dispatch(meta, req, wopts, session, exclude, retries) do
    i = pick(meta, session, exclude)
    :atomics.add(meta.load, i, 1)

    case DSPex.Port.call_request(elem(meta.names, i - 1), req, wopts) do
      {:retry, :noproc} = retry ->
        # the worker never saw the request: undo our load mark
        :atomics.sub(meta.load, i, 1)

        if retries > 0 and wopts.retry_on_port_exit,
          do: dispatch(meta, req, wopts, nil, i, retries - 1),
          else: gave_up(retry)

      {:retry, _} when retries > 0 and wopts.retry_on_port_exit ->
        dispatch(meta, req, wopts, nil, i, retries - 1)

      {:retry, _} = retry ->
        gave_up(retry)

      other ->
        other
    end
  end

  defp gave_up({:retry, _}) do
    {:error, Error.new(:port_exited, "the port process exited with the request in flight", %{})}
  end

  # ------------------------------------------------------------------ streaming

  @doc """
  Starts a streamed (server-sent events) request and returns at once.

  The `:to` process (default the caller) then receives `{:dspex_http, ref, event}`
  messages with `ref = handle.ref`, where `event` is `{:stream_start, status, headers}`,
  `{:sse, [{event_type | nil, data}]}`, and exactly one terminal event:
  `{:stream_end, info}`, `{:error, %DSPex.Error{}}` or, for a non-2xx status,
  `{:response, status, headers, body}`. Same options as `request/2` plus `:to`.

  ## Examples

      {:ok, h} = DSPex.Pool.stream(%{url: url, body: body})
      receive do
        {:dspex_http, ref, {:sse, events}} when ref == h.ref -> events
      end
  """
  @spec stream(request_map, keyword) :: {:ok, Handle.t()} | {:error, Error.t()}
  def stream(req, opts \\ []) do
    opts =
      DSPex.Options.validate!(
        Keyword.put_new(opts, :to, self()),
        @stream_options,
        "DSPex.Pool.stream/2"
      )

    with {:ok, %{req: req, meta: meta, deadline: deadline, ep: ep, cb: cb}} <- route(req, opts) do
      to = opts[:to]

      with :ok <- allow(ep, cb) do
        wopts = %{deadline: deadline, retry_on_port_exit: false, endpoint: ep, cb: cb}
        i = pick(meta, Keyword.get(opts, :session), nil)
        name = elem(meta.names, i - 1)
        ref = make_ref()
        :atomics.add(meta.load, i, 1)

        case DSPex.Port.call_stream(name, req, wopts, to, ref) do
          {:ok, id} ->
            {:ok, %Handle{ref: ref, worker: name, id: id, to: to, deadline: deadline}}

          {:error, %Error{details: %{reason: :noproc}}} = err ->
            :atomics.sub(meta.load, i, 1)
            err

          {:error, _} = err ->
            err
        end
      end
    end
  end

  @doc """
  Cancels a stream: the transfer is aborted in the port and no further message for
  `handle.ref` arrives; messages already in the caller's mailbox are flushed when the
  caller is the receiving process.

  ## Examples

      :ok = DSPex.Pool.cancel(handle)
  """
  @spec cancel(Handle.t()) :: :ok
  def cancel(%Handle{ref: ref, worker: worker, id: id, to: to}) do
    DSPex.Port.cancel(worker, id)
    if to == self(), do: flush(ref)
    :ok
  end

  defp flush(ref) do
    receive do
      {:dspex_http, ^ref, _} -> flush(ref)
    after
      0 -> :ok
    end
  end

  @doc """
  A lazy `Stream` of `{:sse, event_type | nil, data}` for a streamed request.

  The request starts when the stream is enumerated and is cancelled if enumeration
  stops early. Raises `%DSPex.Error{}` on transport errors, and
  `%DSPex.Error{type: :http_status, details: %{status:, headers:, body:}}` for a
  non-2xx response.

  ## Examples

      DSPex.Pool.stream_events(%{url: url, body: body})
      |> Stream.map(fn {:sse, _event, data} -> data end)
      |> Enum.take_while(&(&1 != "[DONE]"))
  """
  @spec stream_events(request_map, keyword) :: Enumerable.t()
  def stream_events(req, opts \\ []) do
    opts = DSPex.Options.validate!(opts, @request_options, "DSPex.Pool.stream_events/2")

    Stream.resource(
      fn ->
        case stream(req, Keyword.put(opts, :to, self())) do
          {:ok, handle} -> handle
          {:error, err} -> raise err
        end
      end,
      &next_events/1,
      fn
        {:done, _} -> :ok
        %Handle{} = h -> cancel(h)
      end
    )
  end

  defp next_events({:done, _} = acc), do: {:halt, acc}

  defp next_events(%Handle{ref: ref} = h) do
    # the worker answers by the deadline (+100 ms grace); this only guards a dead worker
    wait = max(h.deadline - now_ms(), 0) + 200

    receive do
      {:dspex_http, ^ref, {:sse, events}} ->
        {Enum.map(events, fn {e, d} -> {:sse, e, d} end), h}

      {:dspex_http, ^ref, {:stream_start, _status, _headers}} ->
        {[], h}

      {:dspex_http, ^ref, {:stream_end, _info}} ->
        {:halt, {:done, h}}

      {:dspex_http, ^ref, {:error, err}} ->
        raise err

      {:dspex_http, ^ref, {:response, status, headers, body}} ->
        raise Error.new(:http_status, "HTTP #{status}", %{
                status: status,
                headers: headers,
                body: body
              })
    after
      wait ->
        raise Error.new(:timeout, "stream deadline exceeded", %{timeout: :total})
    end
  end

  # ------------------------------------------------------------------ stats / health

  @doc """
  Pool counters: `%{name, size, max_in_flight, in_flight, queued, restarts, requests,
  port_exits, queue_timeouts, workers: [...]}` (see `DSPex.Port.stats/1` for a
  worker's entry).

  ## Examples

      %{size: size, in_flight: 0} = DSPex.Pool.stats()
  """
  @spec stats(atom) :: map
  def stats(pool \\ __MODULE__) do
    case meta(pool) do
      {:ok, meta} ->
        workers =
          for i <- 1..meta.size do
            try do
              DSPex.Port.stats(elem(meta.names, i - 1))
            catch
              :exit, _ ->
                %{index: i, status: :dead, in_flight: 0, queued: 0, restarts: 0, requests: 0}
                |> fill()
            end
          end

        sum = fn key -> Enum.reduce(workers, 0, &(&2 + Map.get(&1, key, 0))) end

        %{
          name: pool,
          size: meta.size,
          max_in_flight: meta.max_in_flight,
          in_flight: sum.(:in_flight),
          queued: sum.(:queued),
          restarts: sum.(:restarts),
          requests: sum.(:requests),
          port_exits: sum.(:port_exits),
          queue_timeouts: sum.(:queue_timeouts),
          workers: workers
        }

      {:error, err} ->
        raise err
    end
  end

  defp fill(m), do: Map.merge(%{pid: nil, os_pid: nil, port_exits: 0, queue_timeouts: 0}, m)

  @doc """
  Round trip through every worker's port. `:ok` or the first `{:error, _}`.

  ## Examples

      :ok = DSPex.Pool.ping()
  """
  @spec ping(atom, timeout) :: :ok | {:error, Error.t()}
  def ping(pool \\ __MODULE__, timeout \\ 5_000) do
    with {:ok, meta} <- meta(pool) do
      Enum.find_value(Tuple.to_list(meta.names), :ok, fn name ->
        case DSPex.Port.ping(name, timeout) do
          :ok -> nil
          err -> err
        end
      end)
    end
  end

  @doc """
  The worker name a `session` maps to (for affinity diagnostics).

  ## Examples

      DSPex.Pool.session_worker("user-42")
  """
  @spec session_worker(term, atom) :: atom
  def session_worker(session, pool \\ __MODULE__) do
    {:ok, meta} = meta(pool)
    elem(meta.names, :erlang.phash2(session, meta.size))
  end

  # ------------------------------------------------------------------ internals

  defp meta(pool) do
    case :persistent_term.get({__MODULE__, pool}, nil) do
      nil ->
        {:error, Error.new(:port_exited, "pool #{inspect(pool)} is not started", %{pool: pool})}

      meta ->
        {:ok, meta}
    end
  end

  defp cb_opts(meta, opts) do
    case Keyword.get(opts, :circuit_breaker) do
      false -> false
      nil -> meta.cb
      kw when is_list(kw) -> Keyword.merge(meta.cb || CircuitBreaker.defaults(), kw)
    end
  end

  defp allow(_ep, false), do: :ok
  defp allow(ep, cb), do: CircuitBreaker.allow(ep, cb)

  defp timeout_ms(opts) do
    case Keyword.get(opts, :timeout, 600_000) do
      :infinity ->
        @day_ms

      t when is_integer(t) and t >= 0 ->
        t

      other ->
        raise ArgumentError, "DSPex.Pool :timeout must be ms or :infinity, got: #{inspect(other)}"
    end
  end

  # Least-loaded worker, or the session's worker while it is alive and not saturated.
  # Ties are broken by starting the scan at a random worker.
  defp pick(%{size: 1}, _session, _exclude), do: 1

  defp pick(%{size: size, load: load, max_in_flight: max}, session, exclude) do
    preferred = if session != nil, do: :erlang.phash2(session, size) + 1

    if preferred != nil and preferred != exclude and :atomics.get(load, preferred) < max do
      preferred
    else
      start = :rand.uniform(size)
      scan(load, size, exclude, start, 0, nil, nil)
    end
  end

  defp scan(_load, size, _exclude, _start, size, best, _best_load), do: best

  defp scan(load, size, exclude, start, k, best, best_load) do
    i = rem(start - 1 + k, size) + 1

    if i == exclude do
      scan(load, size, exclude, start, k + 1, best, best_load)
    else
      l = :atomics.get(load, i)

      if best == nil or l < best_load,
        do: scan(load, size, exclude, start, k + 1, i, l),
        else: scan(load, size, exclude, start, k + 1, best, best_load)
    end
  end

  @doc false
  # Checks the request map's shape and types (what must hold to encode it for the port)
  # and normalizes it: body flattened once, method upcased. The bytes themselves (URL,
  # method token, header CR/LF/NUL) are checked in one place, the port
  # (c_src/port/validate.c), which answers {:error, %DSPex.Error{type: :bad_request}}.
  # Messages never quote the request: URLs and headers carry keys, bodies prompts.
  @spec normalize!(map) :: request_map
  def normalize!(%{url: url} = req) when is_binary(url) do
    body =
      case Map.get(req, :body, "") do
        b when is_binary(b) -> b
        nil -> ""
        io when is_list(io) -> IO.iodata_to_binary(io)
        _ -> raise ArgumentError, "request :body must be a binary or iodata"
      end

    if byte_size(body) > @max_body do
      raise ArgumentError,
            "request body is #{byte_size(body)} bytes; the transport limit is #{@max_body}"
    end

    method =
      case Map.get(req, :method, "POST") do
        m when is_binary(m) ->
          String.upcase(m)

        m when is_atom(m) and m not in [nil, true, false] ->
          m |> Atom.to_string() |> String.upcase()

        _ ->
          raise ArgumentError, "request :method must be a binary or an atom"
      end

    headers =
      case Map.get(req, :headers, []) do
        list when is_list(list) -> Enum.with_index(list, &header!/2)
        _ -> raise ArgumentError, "request :headers must be a list of {name, value} pairs"
      end

    req |> Map.delete(:stream) |> Map.merge(%{body: body, method: method, headers: headers})
  end

  def normalize!(_req) do
    raise ArgumentError, "request map needs :url, an absolute http(s) URL binary"
  end

  defp header!({k, v} = h, _i) when is_binary(k) and is_binary(v), do: h

  defp header!({k, v}, i) do
    {header_part!(k, i), header_part!(v, i)}
  end

  defp header!(_other, i) do
    raise ArgumentError, "request :headers entry #{i} is not a {name, value} pair"
  end

  defp header_part!(x, _i) when is_binary(x), do: x
  defp header_part!(x, _i) when is_atom(x) or is_number(x), do: to_string(x)

  defp header_part!(_x, i),
    do: raise(ArgumentError, "request :headers entry #{i}: name and value must be binaries")

  defp now_ms, do: System.monotonic_time(:millisecond)
end
