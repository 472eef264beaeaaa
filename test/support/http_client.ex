defmodule DSPex.Test.HTTP do
  @moduledoc false
  # Real HTTP clients for the server tests: OTP's :httpc, curl (when installed), and raw
  # sockets for misbehaving clients.

  @doc "`{status, headers, body}` of a request made with :httpc (a fresh connection)."
  def request(method, url, opts \\ []) do
    headers =
      [{"connection", "close"} | Keyword.get(opts, :headers, [])]
      |> Enum.map(fn {k, v} -> {String.to_charlist(k), String.to_charlist(v)} end)

    req =
      case Keyword.get(opts, :body) do
        nil ->
          {String.to_charlist(url), headers}

        body ->
          type = Keyword.get(opts, :content_type, "application/json")
          {String.to_charlist(url), headers, String.to_charlist(type), body}
      end

    {:ok, {{_, status, _}, resp_headers, body}} =
      :httpc.request(method, req, [timeout: Keyword.get(opts, :timeout, 30_000)],
        body_format: :binary
      )

    {status, for({k, v} <- resp_headers, do: {to_string(k), to_string(v)}), body}
  end

  @doc "POSTs `term` as JSON; `{status, decoded_body}`."
  def post_json(url, term, opts \\ []) do
    body = if is_binary(term), do: term, else: DSPex.JSON.encode!(term)
    {status, _h, resp} = request(:post, url, Keyword.put(opts, :body, body))
    {status, decode(resp)}
  end

  @doc "GETs `url`; `{status, decoded_body}` (the raw body when it is not JSON)."
  def get_json(url, opts \\ []) do
    {status, _h, resp} = request(:get, url, opts)
    {status, decode(resp)}
  end

  defp decode(body) do
    case DSPex.JSON.decode(body) do
      {:ok, term} -> term
      _ -> body
    end
  end

  @doc "Whether curl is installed."
  def curl?, do: System.find_executable("curl") != nil

  @doc "Runs curl with `args`; `{exit_status, output}`."
  def curl(args), do: System.cmd("curl", ["-s", "-S", "--max-time", "30" | args])

  @doc "A raw TCP connection to the server at `url`."
  def connect(url) do
    %URI{host: host, port: port} = URI.parse(url)
    {:ok, sock} = :gen_tcp.connect(String.to_charlist(host), port, [:binary, active: false])
    sock
  end

  @doc "Reads until the peer closes (or `timeout` ms of silence); the bytes read."
  def read_all(sock, timeout \\ 15_000, acc \\ "") do
    case :gen_tcp.recv(sock, 0, timeout) do
      {:ok, data} -> read_all(sock, timeout, acc <> data)
      {:error, :closed} -> {:closed, acc}
      {:error, :timeout} -> {:open, acc}
      {:error, other} -> {other, acc}
    end
  end

  @doc "Splits a server-sent event stream into `{event | nil, data}` pairs."
  def sse_events(body) do
    body
    |> String.split("\n\n", trim: true)
    |> Enum.map(fn block ->
      lines = String.split(block, "\n")

      event =
        Enum.find_value(lines, fn l -> match?("event: " <> _, l) && String.slice(l, 7..-1) end)

      data = for "data: " <> d <- lines, do: d
      {event, Enum.join(data, "\n")}
    end)
  end
end
