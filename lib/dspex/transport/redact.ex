defmodule DSPex.Transport.Redact do
  @moduledoc """
  Strips secrets and prompts from terms before they can reach a log, a crash report
  or an error message.

  Every transport process that holds requests (`DSPex.Port` workers keep queued
  request maps, their last message may be a request) passes its state, last message
  and exit reason through `term/1` in `format_status/1`, so neither Elixir's console
  report nor an Erlang `:logger` handler ever sees an API key or a prompt.

  What is replaced, wherever it sits in the term (maps, lists, tuples, structs):

    * a request map (a map with a binary `:url`): `:headers` and `:body` become
      `"[REDACTED]"`, the URL loses its user info and query string, and any other key
      whose value is not a number, boolean, atom or the method is redacted too;
    * a `{name, value}` header pair whose name is a credential header
      (`authorization`, `x-api-key`, `api-key`, `x-goog-api-key`, `cookie`, ...);
    * `{port, {:data, binary}}` messages from the port (response bodies).

  ## Examples

      iex> req = %{url: "https://api.example.com/v1/chat?key=sk-1", method: "POST",
      ...>         headers: [{"authorization", "Bearer sk-1"}], body: ~s({"prompt":"hi"})}
      iex> DSPex.Transport.Redact.term({:request, req, %{deadline: 5}})
      {:request, %{url: "https://api.example.com/v1/chat?[REDACTED]", method: "POST",
                   headers: "[REDACTED]", body: "[REDACTED]"}, %{deadline: 5}}

      iex> DSPex.Transport.Redact.term([{"Authorization", "Bearer sk-1"}, {"accept", "*/*"}])
      [{"Authorization", "[REDACTED]"}, {"accept", "*/*"}]
  """

  @redacted "[REDACTED]"
  @secret_headers ~w(authorization proxy-authorization x-api-key api-key x-goog-api-key
                     cookie set-cookie openai-organization anthropic-api-key)
  # Terms nested deeper than this are replaced whole (a crash report is not the place
  # for them, and the walk stays bounded).
  @max_depth 64

  @doc """
  Returns `term` with request maps, credential header pairs and port data redacted.

  ## Examples

      iex> DSPex.Transport.Redact.term(%{pending: %{1 => %{url: "http://h/p", body: "x"}}})
      %{pending: %{1 => %{url: "http://h/p", body: "[REDACTED]"}}}
  """
  @spec term(term) :: term
  def term(term), do: walk(term, 0)

  @doc """
  A URL without user info and query string (both can carry credentials).

  ## Examples

      iex> DSPex.Transport.Redact.url("https://user:pw@h.example/v1?key=abc")
      "https://h.example/v1?[REDACTED]"
      iex> DSPex.Transport.Redact.url("not a url")
      "not a url"
  """
  @spec url(binary) :: binary
  def url(url) when is_binary(url) do
    case URI.parse(url) do
      %URI{scheme: s, host: h} = u when is_binary(s) and is_binary(h) ->
        query = if u.query, do: "?" <> @redacted, else: ""
        port = if u.port && u.port != URI.default_port(s), do: ":#{u.port}", else: ""
        "#{s}://#{h}#{port}#{u.path}#{query}"

      _ ->
        url
    end
  rescue
    _ -> @redacted
  end

  @doc """
  A stacktrace with every frame's arguments replaced by their count (a function
  clause error lists the arguments, which can be a process state full of requests).

  ## Examples

      iex> DSPex.Transport.Redact.stacktrace([{M, :f, [%{url: "http://h/"}, 2], [line: 3]}])
      [{M, :f, 2, [line: 3]}]
  """
  @spec stacktrace(Exception.stacktrace()) :: Exception.stacktrace()
  def stacktrace(stacktrace) when is_list(stacktrace) do
    Enum.map(stacktrace, fn
      {m, f, args, loc} when is_list(args) -> {m, f, length(args), loc}
      {fun, args, loc} when is_list(args) -> {fun, length(args), loc}
      frame -> frame
    end)
  end

  def stacktrace(other), do: term(other)

  defp walk(_term, depth) when depth > @max_depth, do: @redacted

  defp walk(%{url: u} = req, _depth) when is_binary(u) do
    Map.new(req, fn
      {:url, v} -> {:url, url(v)}
      {:method, v} when is_binary(v) and byte_size(v) <= 64 -> {:method, v}
      {k, v} when is_number(v) or is_boolean(v) or is_atom(v) -> {k, v}
      {k, _} -> {k, @redacted}
    end)
  end

  defp walk(%_{} = struct, depth) do
    struct |> Map.from_struct() |> walk(depth + 1) |> then(&struct(struct.__struct__, &1))
  rescue
    _ -> @redacted
  end

  defp walk(map, depth) when is_map(map) do
    Map.new(map, fn {k, v} -> {walk(k, depth + 1), walk(v, depth + 1)} end)
  end

  defp walk({name, value}, _depth) when is_binary(name) and is_binary(value) do
    if String.downcase(name) in @secret_headers, do: {name, @redacted}, else: {name, value}
  end

  defp walk({port, {:data, bin}}, _depth) when is_port(port) and is_binary(bin) do
    {port, {:data, "[#{byte_size(bin)} bytes]"}}
  end

  defp walk(tuple, depth) when is_tuple(tuple) do
    tuple |> Tuple.to_list() |> Enum.map(&walk(&1, depth + 1)) |> List.to_tuple()
  end

  defp walk(list, depth) when is_list(list), do: walk_list(list, depth, [])
  defp walk(other, _depth), do: other

  # Proper and improper lists alike, without recursion on the tail.
  defp walk_list([h | t], depth, acc), do: walk_list(t, depth, [walk(h, depth + 1) | acc])
  defp walk_list([], _depth, acc), do: Enum.reverse(acc)
  defp walk_list(tail, depth, acc), do: Enum.reverse(acc) ++ walk(tail, depth + 1)
end
