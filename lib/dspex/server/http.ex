defmodule DSPex.Server.HTTP do
  @moduledoc """
  The HTTP layer of `DSPex.Server`: OTP's `:inets` httpd, configured with its limits,
  and this module as its only request module (httpd calls `do/1` for each request).

  httpd parses HTTP/1.1 (request line, headers, `Content-Length` and chunked bodies,
  keep-alive) and enforces the transport limits before a request reaches DSPex:

  | limit | httpd option | server option (default) |
  |---|---|---|
  | connections at once (over it: 503) | `max_clients` | `max_connections` (200) |
  | request line + headers in time | `keep_alive_timeout` | `header_timeout_s` (10 s; also the idle keep-alive time) |
  | slow senders (below it the connection is closed) | `minimum_bytes_per_second` | `min_bytes_per_second` (64) |
  | header bytes (over it: 413) | `max_header_size` | `max_header_bytes` (16 KiB) |
  | URI bytes (over it: 414) | `max_uri_size` | `max_uri_bytes` (4 KiB) |
  | body bytes (over it: 413, body not read) | `max_body_size`, `max_content_length` | `max_body_bytes` (1 MiB) |

  Those early rejections come from httpd with its short HTML body; every response of
  DSPex itself is JSON (`DSPex.Server.Response`). httpd's body deadline is the
  byte-rate check: after a complete header, httpd sets no timer for the body, so
  `min_bytes_per_second` is what closes a connection that drips its body (its
  checks also close a keep-alive connection idle for a few seconds).

  OTP 25's httpd cannot pass socket options to its listen socket (`{ip_comm, opts}`
  reaches a `http_transport:listen/4` clause that does not exist), so `do/1` turns on
  `TCP_NODELAY` for each connection: httpd writes the head and the body of a response
  separately, and without it Nagle's algorithm and the client's delayed ACK cost ~40 ms
  a request (measured: 700 → 8 700 requests/s for a hello world).

  Request data never goes into a log: no httpd logging module or logger is
  configured, and `do/1` catches everything (an exception escaping a request module
  goes to httpd's error log with its stack trace, which can hold the request's `#mod{}`
  record, headers and all).
  """

  require Record

  Record.defrecordp(:mod, Record.extract(:mod, from_lib: "inets/include/httpd.hrl"))

  alias DSPex.Server.Response

  @doc false
  # The httpd configuration of a server (`ctx` from DSPex.Server).
  def config(ctx) do
    {:ok, ip} = :inet.parse_address(String.to_charlist(ctx.bind))
    root = String.to_charlist(System.tmp_dir!())

    [
      port: ctx.port,
      bind_address: ip,
      ipfamily: if(tuple_size(ip) == 8, do: :inet6, else: :inet),
      server_name: ~c"dspex",
      server_root: root,
      document_root: root,
      server_tokens: :none,
      modules: [__MODULE__],
      dspex_server: ctx.name,
      max_clients: ctx.max_connections,
      keep_alive: true,
      keep_alive_timeout: ctx.header_timeout_s,
      max_header_size: ctx.max_header_bytes,
      max_uri_size: ctx.max_uri_bytes,
      max_body_size: ctx.max_body_bytes,
      max_content_length: ctx.max_body_bytes,
      # The whole body in one piece, as a binary (httpd otherwise hands request modules a
      # charlist of it, 16 bytes of memory per byte).
      max_client_body_chunk: ctx.max_body_bytes
    ] ++
      if(ctx.min_bytes_per_second,
        do: [minimum_bytes_per_second: ctx.min_bytes_per_second],
        else: []
      )
  end

  @doc false
  def start_link(ctx) do
    case :inets.start(:httpd, config(ctx), :stand_alone) do
      {:ok, pid} -> {:ok, pid}
      {:error, reason} -> {:error, reason}
    end
  end

  @doc false
  def child_spec(ctx),
    do: %{id: :httpd, start: {__MODULE__, :start_link, [ctx]}, type: :supervisor}

  @doc false
  # The port httpd listens on (the one the OS picked for `port: 0`).
  def port(pid) do
    # httpd.info/2 looks a pid up among the inets application's services, and a
    # stand-alone httpd is not one; its instance supervisor's id carries the bound port.
    [{{:httpd_instance_sup, _addr, port, _profile}, _, _, _}] = Supervisor.which_children(pid)
    port
  end

  # --- the httpd request module -----------------------------------------------------

  @doc false
  def unquote(:do)(m) do
    if mod(m, :socket_type) == :ip_comm, do: :inet.setopts(mod(m, :socket), nodelay: true)
    name = :httpd_util.lookup(mod(m, :config_db), :dspex_server)
    req = request(m)

    response =
      try do
        DSPex.Server.Router.handle(name, req)
      catch
        kind, reason ->
          # Described without data: the reason may quote the request.
          Response.error(
            500,
            :internal,
            "the server failed: " <> DSPex.Error.describe(normalize(kind, reason))
          )
      end

    respond(m, response)
  catch
    _, _ -> {:proceed, [{:response, {:response, [code: 500, content_length: ~c"0"], ""}}]}
  end

  defp normalize(:error, reason), do: Exception.normalize(:error, reason)
  defp normalize(_kind, reason), do: reason

  defp request(m) do
    uri = to_string(mod(m, :request_uri))

    {path, query} =
      case String.split(uri, "?", parts: 2) do
        [p, q] -> {p, decode_query(q)}
        [p] -> {p, %{}}
      end

    body =
      case mod(m, :entity_body) do
        {:last, bin, _} when is_binary(bin) -> bin
        bin when is_binary(bin) -> bin
        list when is_list(list) -> IO.iodata_to_binary(list)
        _ -> ""
      end

    %{
      method: to_string(mod(m, :method)),
      path: path,
      query: query,
      headers: for({k, v} <- mod(m, :parsed_header), do: {to_string(k), to_string(v)}),
      body: body,
      http_version: to_string(mod(m, :http_version))
    }
  end

  # A malformed query (a bad %-escape) is no query.
  defp decode_query(q) do
    URI.decode_query(q)
  rescue
    ArgumentError -> %{}
  end

  defp respond(_m, {status, headers, body}) do
    body = IO.iodata_to_binary(body)

    head =
      [code: status, content_length: Integer.to_charlist(byte_size(body))] ++
        Enum.map(headers, fn {k, v} -> {String.to_charlist(k), String.to_charlist(v)} end)

    {:proceed, [{:response, {:response, head, body}}]}
  end

  # A stream is written here, inside do/1, rather than handed to httpd as a body
  # function: httpd skips a body function when the head cannot be sent, and the
  # producer (which releases the key's concurrency slot and records the request's
  # metrics when it returns) must run whatever happens.
  defp respond(m, {:stream, status, headers, producer}) do
    chunked = mod(m, :http_version) == ~c"HTTP/1.1"

    head =
      if(chunked, do: [transfer_encoding: ~c"chunked"], else: []) ++
        Enum.map(headers, fn {k, v} -> {String.to_charlist(k), String.to_charlist(v)} end)

    type = mod(m, :socket_type)
    sock = mod(m, :socket)

    case :httpd_response.send_header(m, status, head) do
      :ok ->
        producer.(emitter(type, sock, chunked))
        if chunked, do: :httpd_socket.deliver(type, sock, "0\r\n\r\n")

      _closed ->
        producer.(fn _ -> {:error, :closed} end)
    end

    # Without chunked framing (HTTP/1.0) the end of the body is the end of the
    # connection, which httpd closes after a 1.0 response.
    {:proceed, [{:response, {:already_sent, status, 0}}]}
  end

  defp emitter(type, sock, chunked) do
    fn data ->
      data = IO.iodata_to_binary(data)

      frame =
        if chunked, do: [Integer.to_string(byte_size(data), 16), "\r\n", data, "\r\n"], else: data

      case :httpd_socket.deliver(type, sock, frame) do
        :ok -> :ok
        _ -> {:error, :closed}
      end
    end
  end
end
