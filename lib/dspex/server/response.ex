defmodule DSPex.Server.Response do
  @moduledoc """
  Responses of `DSPex.Server`: JSON bodies, JSON errors with a `type`, and server-sent
  event streams — as data the HTTP layer (`DSPex.Server.HTTP`) writes out.

  A response is one of

    * `{status, headers, body}` — `headers` a list of `{binary, binary}`, `body` iodata;
    * `{:stream, status, headers, producer}` — a server-sent event stream:
      `producer.(emit)` calls `emit.(event_iodata)` for each event (`sse/2`) and returns
      when the stream is done; `emit` returns `:ok` or `{:error, :closed}` once the
      client has gone (the producer should then stop).

  Every error body is `{"error": {"type": "...", "message": "..."}}` (OpenAI's error
  shape), whatever failed; `details` of a `%DSPex.Error{}` never reach the client.
  """

  alias DSPex.Error

  @type headers :: [{binary, binary}]
  @type t ::
          {pos_integer, headers, iodata}
          | {:stream, pos_integer, headers, ((iodata -> :ok | {:error, :closed}) -> any)}

  # Error types of a program or LM call and the status they answer with. Requests the
  # server itself rejects set their status where they are made.
  @status %{
    invalid_json: 400,
    invalid_input: 400,
    invalid_request: 400,
    missing_inputs: 400,
    context_window: 400,
    invalid_option: 400,
    unauthorized: 401,
    not_found: 404,
    program_not_found: 404,
    model_not_found: 404,
    method_not_allowed: 405,
    payload_too_large: 413,
    rate_limited: 429,
    concurrency_limited: 429,
    internal: 500,
    circuit_open: 503,
    rate_limit: 503,
    overloaded: 503,
    timeout: 504
  }

  @doc """
  A JSON response.

  ## Examples

      iex> {200, [{"content-type", ct}], body} = DSPex.Server.Response.json(200, %{ok: true})
      iex> {ct, IO.iodata_to_binary(body)}
      {"application/json", ~s({"ok":true})}
  """
  @spec json(pos_integer, term, headers) :: t
  def json(status, term, headers \\ []),
    do: {status, [{"content-type", "application/json"} | headers], DSPex.JSON.encode!(term)}

  @doc """
  A JSON error response: `{"error": {"type": type, "message": message}}`. The status
  is `status` or, when `nil`, the one of the type (`status_of/1`).

  ## Examples

      iex> {404, _, body} = DSPex.Server.Response.error(nil, :program_not_found, "no program \\"x\\"")
      iex> IO.iodata_to_binary(body)
      ~s({"error":{"message":"no program \\\\"x\\\\"","type":"program_not_found"}})
  """
  @spec error(pos_integer | nil, atom, binary, headers) :: t
  def error(status, type, message, headers \\ []) when is_atom(type) and is_binary(message) do
    json(status || status_of(type), %{error: %{type: type, message: message}}, headers)
  end

  @doc """
  The error response of a `%DSPex.Error{}` from a program or an LM: its type and
  message (not its details).
  """
  @spec from_error(Error.t()) :: t
  def from_error(%Error{type: type, message: message}), do: error(nil, type, message)

  @doc """
  The HTTP status for an error type: client errors 4xx; failures of the LM behind a
  program 502 (503 for `:rate_limit`, `:circuit_open`, `:overloaded`; 504 for
  `:timeout`).

  ## Examples

      iex> DSPex.Server.Response.status_of(:missing_inputs)
      400
      iex> DSPex.Server.Response.status_of(:adapter_parse)
      502
  """
  @spec status_of(atom) :: pos_integer
  def status_of(type), do: Map.get(@status, type, 502)

  @doc """
  The JSON of an error inside a larger body (batch items, SSE `error` events).

  ## Examples

      iex> DSPex.Server.Response.error_body(DSPex.Error.new(:timeout, "too slow", %{secret: 1}))
      %{error: %{type: :timeout, message: "too slow"}}
  """
  @spec error_body(Error.t()) :: map
  def error_body(%Error{type: type, message: message}),
    do: %{error: %{type: type, message: message}}

  @doc """
  One server-sent event: optional `event:` line, the data (JSON-encoded unless a
  binary) on `data:` lines, a blank line.

  ## Examples

      iex> IO.iodata_to_binary(DSPex.Server.Response.sse(nil, "[DONE]"))
      "data: [DONE]\\n\\n"
      iex> IO.iodata_to_binary(DSPex.Server.Response.sse("chunk", %{text: "a"}))
      "event: chunk\\ndata: {\\"text\\":\\"a\\"}\\n\\n"
  """
  @spec sse(binary | nil, term) :: iodata
  def sse(event, data) do
    data = if is_binary(data), do: data, else: DSPex.JSON.encode!(data)
    lines = for line <- String.split(data, "\n"), do: ["data: ", line, "\n"]
    [if(event, do: ["event: ", event, "\n"], else: []), lines, "\n"]
  end

  @doc "Response headers of an event stream."
  @spec sse_headers() :: headers
  def sse_headers,
    do: [{"content-type", "text/event-stream"}, {"cache-control", "no-cache"}]
end
