defmodule DSPex.Test.LoopbackServer do
  @moduledoc """
  A real HTTP/1.1 keep-alive server on 127.0.0.1 with scripted routes, for tests of
  the transport and of provider formats.

      {:ok, srv} = DSPex.Test.LoopbackServer.start_link(routes: %{
        "/ok" => %{status: 200, body: "hi"},
        "/flaky" => [%{status: 500}, %{status: 200, body: "ok"}],
        "/echo" => fn req -> %{status: 200, body: req.body} end,
        "/sse" => %{sse: [{"delta", "a"}, {nil, "[DONE]"}], split: :every_byte}
      })
      url = DSPex.Test.LoopbackServer.url(srv, "/ok")

  A route is a spec map, a list of specs (the nth request gets the nth spec; the last
  one repeats), or a function `fn request -> spec end` where `request` is
  `%{method, path, query, headers: [{lowercase_name, value}], body, n}` (`n` counts
  requests to that route from 1).

  Spec keys:

    * `status` (200), `headers` ([]), `body` ("")
    * `delay_ms` — sleep before sending the status line
    * `chunks` — list of binaries sent with chunked encoding, `chunk_delay_ms` apart
    * `sse` — list of `{event | nil, data}` or raw binaries, rendered as an event stream
      and sent chunked, split by `split`: `:every_byte`, a list of byte offsets,
      `{:random, seed}` (or unsplit); `chunk_delay_ms` between pieces
    * `drip_ms` — send the body one byte per N ms
    * `reset_after` — send N body bytes, then reset the connection
    * `truncate` — announce N more bytes than sent, then close
    * `close: true` — close the connection without any response
    * `retry_after` — adds a `retry-after` header with this value
    * `flood` — a binary (e.g. one SSE event) sent over and over, chunked, as fast as
      the socket takes it (no pacing), until the client goes away or `flood_bytes`
      (default unlimited) were sent
    * `keep_alive: false` — close after the response
  """
  use GenServer

  @type spec :: map
  @type route :: spec | [spec] | (map -> spec)

  @doc """
  Starts a server. `routes:` maps paths to routes (`:default` for unmatched);
  `record: false` stops keeping request copies (long benchmarks); `port:` picks the port.
  """
  @spec start_link(keyword) :: GenServer.on_start()
  def start_link(opts \\ []), do: GenServer.start_link(__MODULE__, opts)

  @doc "Stops the server and closes its connections."
  def stop(srv), do: GenServer.stop(srv)

  @doc "The TCP port the server listens on."
  def port(srv), do: GenServer.call(srv, :port)

  @doc "An absolute URL for `path` on this server."
  def url(srv, path), do: "http://127.0.0.1:#{port(srv)}#{path}"

  @doc "Replaces (or adds) the route of `path`, resetting its request count."
  def set_route(srv, path, route), do: GenServer.call(srv, {:set_route, path, route})

  @doc "Requests seen on `path` so far."
  def count(srv, path), do: GenServer.call(srv, {:count, path})

  @doc "The recorded requests of `path`, oldest first."
  def requests(srv, path), do: GenServer.call(srv, {:requests, path})

  @doc "Responses on `path` whose sending failed because the client went away."
  def aborted(srv, path), do: GenServer.call(srv, {:aborted, path})

  @doc "Number of TCP connections accepted so far (keep-alive checks)."
  def connections(srv), do: GenServer.call(srv, :connections)

  # ------------------------------------------------------------------ server

  @impl true
  def init(opts) do
    {:ok, lsock} =
      :gen_tcp.listen(Keyword.get(opts, :port, 0), [
        :binary,
        packet: :raw,
        active: false,
        reuseaddr: true,
        nodelay: true,
        ip: {127, 0, 0, 1},
        backlog: 4096
      ])

    {:ok, port} = :inet.port(lsock)
    me = self()
    acceptor = spawn_link(fn -> accept_loop(lsock, me) end)

    {:ok,
     %{
       lsock: lsock,
       port: port,
       acceptor: acceptor,
       routes: Map.new(Keyword.get(opts, :routes, %{})),
       counts: %{},
       records: %{},
       conns: 0,
       aborted: %{},
       record: Keyword.get(opts, :record, true),
       handlers: MapSet.new()
     }}
  end

  @impl true
  def handle_call(:port, _from, s), do: {:reply, s.port, s}
  def handle_call(:connections, _from, s), do: {:reply, s.conns, s}
  def handle_call({:aborted, path}, _from, s), do: {:reply, Map.get(s.aborted, path, 0), s}

  def handle_call({:set_route, path, route}, _from, s) do
    {:reply, :ok,
     %{s | routes: Map.put(s.routes, path, route), counts: Map.delete(s.counts, path)}}
  end

  def handle_call({:count, path}, _from, s), do: {:reply, Map.get(s.counts, path, 0), s}

  def handle_call({:requests, path}, _from, s) do
    {:reply, Enum.reverse(Map.get(s.records, path, [])), s}
  end

  def handle_call({:route, req}, _from, s) do
    n = Map.get(s.counts, req.path, 0) + 1
    req = Map.put(req, :n, n)

    route =
      Map.get(s.routes, req.path) || Map.get(s.routes, :default) ||
        %{status: 404, body: "no route"}

    records =
      if s.record, do: Map.update(s.records, req.path, [req], &[req | &1]), else: s.records

    s = %{s | counts: Map.put(s.counts, req.path, n), records: records}

    {:reply, {route, req}, s}
  end

  @impl true
  def handle_info({:accepted, pid}, s) do
    Process.monitor(pid)
    {:noreply, %{s | conns: s.conns + 1, handlers: MapSet.put(s.handlers, pid)}}
  end

  def handle_info({:aborted, path}, s) do
    {:noreply, %{s | aborted: Map.update(s.aborted, path, 1, &(&1 + 1))}}
  end

  def handle_info({:DOWN, _, :process, pid, _}, s),
    do: {:noreply, %{s | handlers: MapSet.delete(s.handlers, pid)}}

  def handle_info(_, s), do: {:noreply, s}

  @impl true
  def terminate(_reason, s) do
    :gen_tcp.close(s.lsock)
    Enum.each(s.handlers, &Process.exit(&1, :kill))
    :ok
  end

  defp accept_loop(lsock, srv) do
    case :gen_tcp.accept(lsock) do
      {:ok, sock} ->
        pid = spawn(fn -> receive(do: (:go -> conn_loop(sock, srv, ""))) end)
        :ok = :gen_tcp.controlling_process(sock, pid)
        send(srv, {:accepted, pid})
        send(pid, :go)
        accept_loop(lsock, srv)

      {:error, _} ->
        :ok
    end
  end

  # ------------------------------------------------------------------ connection

  defp conn_loop(sock, srv, _) do
    case read_request(sock) do
      {:ok, req} ->
        {route, req} =
          try do
            GenServer.call(srv, {:route, req})
          catch
            :exit, _ -> {%{close: true}, req}
          end

        spec = resolve(route, req)

        case respond(sock, spec) do
          :keep_alive ->
            conn_loop(sock, srv, "")

          :closed ->
            :ok

          :aborted ->
            send(srv, {:aborted, req.path})
            :gen_tcp.close(sock)
        end

      {:error, _} ->
        :gen_tcp.close(sock)
    end
  end

  defp resolve(route, req) when is_function(route, 1), do: resolve(route.(req), req)
  defp resolve([_ | _] = specs, req), do: Enum.at(specs, min(req.n, length(specs)) - 1)
  defp resolve(%{} = spec, _req), do: spec

  defp read_request(sock) do
    :ok = :inet.setopts(sock, packet: :http_bin)

    with {:ok, {:http_request, method, {:abs_path, target}, _v}} <-
           :gen_tcp.recv(sock, 0, 60_000),
         {:ok, headers} <- read_headers(sock, []) do
      :ok = :inet.setopts(sock, packet: :raw)

      len =
        headers |> List.keyfind("content-length", 0, {nil, "0"}) |> elem(1) |> String.to_integer()

      body =
        if len > 0 do
          {:ok, b} = :gen_tcp.recv(sock, len, 60_000)
          b
        else
          ""
        end

      {path, query} =
        case String.split(target, "?", parts: 2) do
          [p, q] -> {p, q}
          [p] -> {p, nil}
        end

      {:ok,
       %{
         method: to_string(method),
         path: path,
         query: query,
         headers: headers,
         body: body,
         at_ms: System.monotonic_time(:millisecond)
       }}
    else
      {:ok, other} -> {:error, other}
      err -> err
    end
  end

  defp read_headers(sock, acc) do
    case :gen_tcp.recv(sock, 0, 60_000) do
      {:ok, {:http_header, _, name, _, value}} ->
        read_headers(sock, [{String.downcase(to_string(name)), value} | acc])

      {:ok, :http_eoh} ->
        {:ok, Enum.reverse(acc)}

      {:ok, other} ->
        {:error, other}

      err ->
        err
    end
  end

  defp respond(sock, %{close: true}) do
    :inet.setopts(sock, linger: {true, 0})
    :gen_tcp.close(sock)
    :closed
  end

  defp respond(sock, spec) do
    if d = spec[:delay_ms], do: Process.sleep(d)
    status = Map.get(spec, :status, 200)
    headers = Map.get(spec, :headers, [])

    headers =
      if ra = spec[:retry_after], do: [{"retry-after", to_string(ra)} | headers], else: headers

    keep_alive = Map.get(spec, :keep_alive, true)
    conn_header = if keep_alive, do: [], else: [{"connection", "close"}]

    result =
      cond do
        spec[:sse] ->
          pieces = spec.sse |> render_sse() |> split(spec[:split])
          headers = [{"content-type", "text/event-stream"} | headers]
          send_chunked(sock, status, headers ++ conn_header, pieces, spec[:chunk_delay_ms])

        spec[:chunks] ->
          send_chunked(sock, status, headers ++ conn_header, spec.chunks, spec[:chunk_delay_ms])

        spec[:flood] ->
          send_flood(sock, status, headers ++ conn_header, spec.flood, spec[:flood_bytes])

        true ->
          send_plain(sock, status, headers ++ conn_header, Map.get(spec, :body, ""), spec)
      end

    case result do
      :ok when keep_alive ->
        :keep_alive

      {:error, _} ->
        :aborted

      _ ->
        :gen_tcp.close(sock)
        :closed
    end
  end

  defp head(status, headers) do
    [
      "HTTP/1.1 #{status} #{reason(status)}\r\n",
      Enum.map(headers, fn {k, v} -> [k, ": ", v, "\r\n"] end),
      "\r\n"
    ]
  end

  defp send_plain(sock, status, headers, body, spec) do
    size = byte_size(body)
    announced = size + Map.get(spec, :truncate, 0)
    data = head(status, [{"content-length", Integer.to_string(announced)} | headers])

    cond do
      n = spec[:reset_after] ->
        :gen_tcp.send(sock, [data, binary_part(body, 0, min(n, size))])
        :inet.setopts(sock, linger: {true, 0})
        :gen_tcp.close(sock)
        :closed

      ms = spec[:drip_ms] ->
        :gen_tcp.send(sock, data)

        Enum.reduce_while(:binary.bin_to_list(body), :ok, fn byte, :ok ->
          Process.sleep(ms)

          case :gen_tcp.send(sock, <<byte>>) do
            :ok -> {:cont, :ok}
            err -> {:halt, err}
          end
        end)
        |> after_body(spec)

      true ->
        :gen_tcp.send(sock, [data, body]) |> after_body(spec)
    end
  end

  defp after_body(:ok, %{truncate: n}) when n > 0, do: :closed
  defp after_body(res, _), do: res

  defp send_chunked(sock, status, headers, pieces, delay) do
    :ok = :gen_tcp.send(sock, head(status, [{"transfer-encoding", "chunked"} | headers]))

    res =
      Enum.reduce_while(pieces, :ok, fn piece, :ok ->
        if delay, do: Process.sleep(delay)

        case :gen_tcp.send(sock, [Integer.to_string(byte_size(piece), 16), "\r\n", piece, "\r\n"]) do
          :ok -> {:cont, :ok}
          err -> {:halt, err}
        end
      end)

    with :ok <- res, do: :gen_tcp.send(sock, "0\r\n\r\n")
  end

  # 64 KiB chunks of the repeated unit, written back to back.
  defp send_flood(sock, status, headers, unit, limit) do
    :ok = :gen_tcp.send(sock, head(status, [{"transfer-encoding", "chunked"} | headers]))
    piece = :binary.copy(unit, max(div(65_536, byte_size(unit)), 1))
    chunk = [Integer.to_string(byte_size(piece), 16), "\r\n", piece, "\r\n"]

    with :ok <- flood_loop(sock, chunk, byte_size(piece), limit || :infinity),
         do: :gen_tcp.send(sock, "0\r\n\r\n")
  end

  defp flood_loop(_sock, _chunk, _n, left) when is_integer(left) and left <= 0, do: :ok

  defp flood_loop(sock, chunk, n, left) do
    case :gen_tcp.send(sock, chunk) do
      :ok -> flood_loop(sock, chunk, n, if(left == :infinity, do: left, else: left - n))
      err -> err
    end
  end

  @doc "Renders events (`{event | nil, data}` or raw binaries) as an event stream."
  def render_sse(events) do
    IO.iodata_to_binary(
      for ev <- events do
        case ev do
          raw when is_binary(raw) ->
            raw

          {e, data} ->
            [
              if(e, do: ["event: ", e, "\n"], else: []),
              Enum.map(String.split(data, "\n"), &["data: ", &1, "\n"]),
              "\n"
            ]
        end
      end
    )
  end

  defp split(bin, nil), do: [bin]
  defp split(bin, :every_byte), do: for(<<b <- bin>>, do: <<b>>)

  defp split(bin, {:random, seed}) do
    :rand.seed(:exsss, {seed, seed * 7 + 1, seed * 13 + 2})
    cuts = for _ <- 1..max(div(byte_size(bin), 8), 1), do: :rand.uniform(byte_size(bin) + 1) - 1
    split(bin, cuts)
  end

  defp split(bin, offsets) when is_list(offsets) do
    offsets =
      offsets |> Enum.filter(&(&1 > 0 and &1 < byte_size(bin))) |> Enum.uniq() |> Enum.sort()

    {pieces, last} =
      Enum.reduce(offsets, {[], 0}, fn off, {acc, prev} ->
        {[binary_part(bin, prev, off - prev) | acc], off}
      end)

    Enum.reverse([binary_part(bin, last, byte_size(bin) - last) | pieces])
  end

  defp reason(200), do: "OK"
  defp reason(404), do: "Not Found"
  defp reason(429), do: "Too Many Requests"
  defp reason(500), do: "Internal Server Error"
  defp reason(503), do: "Service Unavailable"
  defp reason(_), do: "Status"
end
