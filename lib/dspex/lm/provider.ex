defmodule DSPex.LM.Provider do
  @moduledoc """
  The wire format of one LM provider: how a request is built, how a response (or a
  stream of server-sent events) becomes a DSPex completion, and how an HTTP error
  becomes a typed `%DSPex.Error{}`.

  Providers are pure: they never do I/O. `DSPex.LM.Pipeline` sends what `build/4` returns through
  the port transport (`DSPex.Pool`) and hands the decoded reply back to `parse/2`.

  Built-in providers: `DSPex.LM.Providers.OpenAI` (Chat Completions and every
  OpenAI-compatible server), `DSPex.LM.Providers.Anthropic` (Messages API),
  `DSPex.LM.Providers.Gemini` (generateContent).

  `params` reaching a provider are a map with **binary keys**, `nil` values already
  dropped, and DSPex-only keys (`cache`, `rollout_id`, `api_key`, timeouts, ...) removed.
  """

  alias DSPex.Error

  @typedoc "An HTTP request for the transport; `body` is a JSON-encodable term."
  @type http_request :: %{url: binary, headers: [{binary, binary}], body: term}

  @typedoc "Opaque per-provider streaming accumulator."
  @type stream_state :: term

  @doc "Builds the HTTP request for `messages` with request `params`; `stream?` asks for SSE."
  @callback build(
              lm :: DSPex.LM.t(),
              messages :: [map],
              params :: %{binary => term},
              stream? :: boolean
            ) ::
              {:ok, http_request} | {:error, Error.t()}

  @doc "The provider's own server base URL, used when the LM has no `api_base`."
  @callback default_base() :: binary

  @doc "Turns a decoded 2xx JSON body into a completion."
  @callback parse(body :: term, lm :: DSPex.LM.t()) ::
              {:ok, DSPex.BaseLM.completion()} | {:error, Error.t()}

  @doc "Extracts the provider's error message and code (if any) from a decoded error body."
  @callback error_info(body :: term) :: {message :: binary | nil, code :: binary | nil}

  @doc "Fresh streaming accumulator."
  @callback stream_init(lm :: DSPex.LM.t()) :: stream_state

  @doc """
  Feeds one SSE event (`event` is the SSE event type or nil, `data` the raw data). Returns
  the deltas of the first choice (in order) and the new state, `{:done, deltas, state}`
  when the provider signalled the end, or an error event as `{:error, error}`.

  A delta is a text (`binary`) or a piece of a tool call,
  `{:tool_call, %{index: n, id: binary | nil, name: binary | nil, arguments: binary}}`:
  `index` counts the choice's tool calls from 0, `id` and `name` arrive with a call's
  first piece (`nil` after), `arguments` is the next piece of its JSON text.
  """
  @callback stream_event(stream_state, event :: binary | nil, data :: binary) ::
              {:ok, [delta], stream_state}
              | {:done, [delta], stream_state}
              | {:error, Error.t()}

  @typedoc "A streamed delta of the first choice (see `c:stream_event/3`)."
  @type delta ::
          binary
          | {:tool_call,
             %{index: non_neg_integer, id: binary | nil, name: binary | nil, arguments: binary}}

  @doc "Assembles the completion from the accumulated stream."
  @callback stream_finish(stream_state) :: {:ok, DSPex.BaseLM.completion()} | {:error, Error.t()}

  # ---------------------------------------------------------------------------------
  # Helpers shared by the built-in providers
  # ---------------------------------------------------------------------------------

  @doc """
  Reads `key` (an atom) from a map whose keys may be atoms or binaries.

  ## Examples

      iex> DSPex.LM.Provider.get(%{"role" => "user"}, :role)
      "user"
      iex> DSPex.LM.Provider.get(%{role: "user"}, :role)
      "user"
      iex> DSPex.LM.Provider.get(%{}, :role, "x")
      "x"
  """
  @spec get(map, atom, term) :: term
  def get(map, key, default \\ nil) when is_map(map) and is_atom(key) do
    case map do
      %{^key => v} ->
        v

      _ ->
        case Map.fetch(map, Atom.to_string(key)) do
          {:ok, v} -> v
          :error -> default
        end
    end
  end

  @doc """
  Converts atom keys to binary keys recursively (structs are left alone).

  ## Examples

      iex> DSPex.LM.Provider.stringify(%{a: [%{b: 1}]})
      %{"a" => [%{"b" => 1}]}
  """
  @spec stringify(term) :: term
  def stringify(%_{} = struct), do: struct

  def stringify(map) when is_map(map) do
    Map.new(map, fn {k, v} -> {key_to_string(k), stringify(v)} end)
  end

  def stringify(list) when is_list(list), do: Enum.map(list, &stringify/1)
  def stringify(other), do: other

  defp key_to_string(k) when is_atom(k), do: Atom.to_string(k)
  defp key_to_string(k), do: k

  @doc """
  Text of a message `content` (a binary or a list of OpenAI-style parts).

  ## Examples

      iex> DSPex.LM.Provider.content_text([%{type: "text", text: "a"}, %{"type" => "text", "text" => "b"}])
      "ab"
      iex> DSPex.LM.Provider.content_text(nil)
      ""
  """
  @spec content_text(term) :: binary
  def content_text(nil), do: ""
  def content_text(text) when is_binary(text), do: text

  def content_text(parts) when is_list(parts) do
    parts
    |> Enum.map(fn
      p when is_binary(p) -> p
      p when is_map(p) -> if get(p, :type) in ["text", nil], do: get(p, :text) || "", else: ""
      _ -> ""
    end)
    |> IO.iodata_to_binary()
  end

  def content_text(other), do: to_string(other)

  @doc """
  Splits a `data:` URL into `{mime_type, base64_data}`.

  ## Examples

      iex> DSPex.LM.Provider.data_url("data:image/png;base64,AAAA")
      {:ok, "image/png", "AAAA"}
      iex> DSPex.LM.Provider.data_url("https://x/y.png")
      :error
  """
  @spec data_url(binary) :: {:ok, binary, binary} | :error
  def data_url("data:" <> rest) do
    case String.split(rest, ";base64,", parts: 2) do
      [mime, data] -> {:ok, mime, data}
      _ -> :error
    end
  end

  def data_url(_), do: :error

  @doc """
  Builds the usage map of the completion contract (missing counts are 0).

  ## Examples

      iex> DSPex.LM.Provider.usage(3, 4, nil, 1, 0)
      %{prompt_tokens: 3, completion_tokens: 4, total_tokens: 7, cached_tokens: 1, reasoning_tokens: 0}
  """
  @spec usage(term, term, term, term, term) :: map
  def usage(prompt, completion, total, cached, reasoning) do
    p = int(prompt)
    c = int(completion)

    %{
      prompt_tokens: p,
      completion_tokens: c,
      total_tokens: if(is_integer(total), do: total, else: p + c),
      cached_tokens: int(cached),
      reasoning_tokens: int(reasoning)
    }
  end

  defp int(n) when is_integer(n), do: n
  defp int(_), do: 0

  @doc "Zero usage (cache hits)."
  @spec zero_usage() :: map
  def zero_usage, do: usage(0, 0, 0, 0, 0)

  @context_patterns [
    ~r/context[_ ]length/i,
    ~r/maximum context/i,
    ~r/context (window|size|limit)/i,
    ~r/exceed_context_size/i,
    ~r/prompt is too long/i,
    ~r/input token count/i,
    ~r/exceeds the maximum number of tokens/i,
    ~r/too many (input )?tokens/i,
    ~r/reduce the length of the messages/i
  ]

  @doc """
  Whether a provider error message or code says the prompt did not fit the context
  window (OpenAI `context_length_exceeded`, vLLM/llama.cpp/Anthropic/Gemini messages).

  ## Examples

      iex> DSPex.LM.Provider.context_window?("This model's maximum context length is 8192 tokens", nil)
      true
      iex> DSPex.LM.Provider.context_window?("prompt is too long: 210000 tokens > 200000 maximum", nil)
      true
      iex> DSPex.LM.Provider.context_window?("Invalid value for temperature", "invalid_value")
      false
  """
  @spec context_window?(binary | nil, binary | nil) :: boolean
  def context_window?(message, code) do
    text = "#{message} #{code}"
    Enum.any?(@context_patterns, &Regex.match?(&1, text))
  end

  @doc """
  Maps an HTTP status plus the provider's error message/code to a DSPex error type.

  ## Examples

      iex> DSPex.LM.Provider.classify(401, nil, nil)
      :auth
      iex> DSPex.LM.Provider.classify(429, "slow down", nil)
      :rate_limit
      iex> DSPex.LM.Provider.classify(400, "x", "context_length_exceeded")
      :context_window
      iex> DSPex.LM.Provider.classify(404, "no such model", nil)
      :bad_request
      iex> DSPex.LM.Provider.classify(529, "Overloaded", nil)
      :server
  """
  @spec classify(integer, binary | nil, binary | nil) :: atom
  def classify(status, message, code) do
    cond do
      status in [401, 403] -> :auth
      status == 429 -> :rate_limit
      status in [408, 504] -> :timeout
      status in 400..499 and context_window?(message, code) -> :context_window
      status in 400..499 -> :bad_request
      status >= 500 -> :server
      true -> :bad_request
    end
  end

  @doc """
  Builds the typed error for a non-2xx reply of `provider` (a module implementing this
  behaviour). `body` is the raw reply body; the message names the provider and status and
  carries the provider's own message (never request headers; `secret`, the API key, is
  scrubbed should the provider echo it).
  """
  @spec http_error(module, binary, integer, binary, map, binary | nil) :: Error.t()
  def http_error(provider, provider_name, status, body, details \\ %{}, secret \\ nil) do
    body = valid_utf8(body)

    decoded =
      case decode_json(body) do
        {:ok, term} -> term
        _ -> nil
      end

    {message, code} =
      case decoded do
        nil -> {nil, nil}
        term -> provider.error_info(term)
      end

    message = scrub(message || String.slice(body, 0, 500), secret)
    type = classify(status, message, code)

    Error.new(
      type,
      "#{provider_name} returned HTTP #{status}: #{message}",
      Map.merge(details, %{status: status, code: code, provider: provider_name})
    )
  end

  @doc """
  Replaces every occurrence of `secret` (an API key) in `text` with `[REDACTED]`.

  ## Examples

      iex> DSPex.LM.Provider.scrub("bad key sk-123 given", "sk-123")
      "bad key [REDACTED] given"
  """
  @spec scrub(binary, binary | nil) :: binary
  def scrub(text, secret) when is_binary(secret) and byte_size(secret) >= 4,
    do: String.replace(text, secret, "[REDACTED]")

  def scrub(text, _), do: text

  @doc false
  # Generic `{message, code}` for `{"error": {"message": ..., "code"|"type"|"status": ...}}`.
  def generic_error_info(%{"error" => %{} = e}) do
    msg = e["message"]
    code = e["code"] || e["type"] || e["status"]
    {if(is_binary(msg), do: msg, else: nil), if(is_nil(code), do: nil, else: to_string(code))}
  end

  def generic_error_info(%{"error" => msg}) when is_binary(msg), do: {msg, nil}
  def generic_error_info(%{"message" => msg}) when is_binary(msg), do: {msg, nil}
  def generic_error_info([first | _]), do: generic_error_info(first)
  def generic_error_info(_), do: {nil, nil}

  @doc ~S"""
  Decodes a provider's JSON reply (a body or one SSE event's data) leniently, the way
  browsers do: invalid UTF-8 bytes and lone UTF-16 surrogate escapes (`"\ud83d"`,
  which Python's `json.dumps` writes for half an emoji) become U+FFFD, so every text
  in the result is valid UTF-8 and one bad character never fails a whole call.
  Anything else that is not JSON is a `:server` error.

  The replacement happens inside the C decoder (`DSPex.JSON.decode/2`'s
  `invalid_unicode: :replace`), in the same single pass as a strict decode.

  ## Examples

      iex> DSPex.LM.Provider.decode_json(~S({"text":"a\ud83db"}))
      {:ok, %{"text" => "a\uFFFDb"}}
      iex> DSPex.LM.Provider.decode_json(<<"{\"text\":\"a", 0xFF, "b\"}">>)
      {:ok, %{"text" => "a\uFFFDb"}}
      iex> {:error, e} = DSPex.LM.Provider.decode_json("{oops")
      iex> e.type
      :server
  """
  @spec decode_json(binary) :: {:ok, term} | {:error, Error.t()}
  def decode_json(data) do
    with {:error, %Error{} = e} <- DSPex.JSON.decode(data, invalid_unicode: :replace) do
      {:error, Error.new(:server, "provider sent invalid JSON: " <> e.message)}
    end
  end

  @doc """
  `text` with every invalid UTF-8 sequence replaced by U+FFFD (one per bad byte).

  ## Examples

      iex> DSPex.LM.Provider.valid_utf8(<<"ok ", 0xC3, "!">>)
      "ok \uFFFD!"
      iex> DSPex.LM.Provider.valid_utf8("héllo")
      "héllo"
  """
  @spec valid_utf8(binary) :: binary
  def valid_utf8(text) when is_binary(text) do
    if String.valid?(text), do: text, else: valid_utf8(text, [])
  end

  defp valid_utf8(text, acc) do
    case :unicode.characters_to_binary(text) do
      good when is_binary(good) ->
        IO.iodata_to_binary(Enum.reverse([good | acc]))

      {:error, good, <<_bad, rest::binary>>} ->
        valid_utf8(rest, ["\uFFFD", good | acc])

      {:incomplete, good, _rest} ->
        IO.iodata_to_binary(Enum.reverse(["\uFFFD", good | acc]))
    end
  end

  @doc false
  def encode_json!(term), do: DSPex.JSON.encode!(term)

  @doc false
  # Normalizes `stop` to a list of strings.
  def stop_list(nil), do: nil
  def stop_list(s) when is_binary(s), do: [s]
  def stop_list(l) when is_list(l), do: l

  @doc false
  # `Map.put/3` unless `value` is nil (optional request fields).
  def put_if(map, _key, nil), do: map
  def put_if(map, key, value), do: Map.put(map, key, value)

  @doc false
  # The server base URL of `lm` (or the provider's `default`) without a trailing slash.
  def base_url(lm, default), do: String.trim_trailing(lm.api_base || default, "/")

  @doc false
  # Request headers: JSON content type, the provider's fixed `extra` headers, the API key
  # as `{auth_header, auth_prefix <> key}` when there is one, then the LM's own headers.
  def headers(lm, {auth_header, auth_prefix}, extra \\ []) do
    key = reveal(lm.api_key)

    [{"content-type", "application/json"} | extra] ++
      if(key in [nil, ""], do: [], else: [{auth_header, auth_prefix <> key}]) ++
      (lm.headers || [])
  end

  # `DSPex.LM` keeps a given key in a closure (see its moduledoc).
  defp reveal(key) when is_function(key, 0), do: key.()
  defp reveal(key), do: key

  @doc false
  # Splits off the `system` messages: `{their texts joined by a blank line, the rest}`.
  def split_system(messages) do
    {sys, rest} = Enum.split_with(messages, &(get(&1, :role) == "system"))
    {sys |> Enum.map(&content_text(get(&1, :content))) |> Enum.join("\n\n"), rest}
  end

  @doc false
  # Merges consecutive turns of one role (`"role"` key) into one whose `parts_key` list
  # is the concatenation of theirs (APIs that want alternating turns).
  def merge_turns(turns, parts_key) do
    turns
    |> Enum.chunk_by(& &1["role"])
    |> Enum.map(fn [first | _] = group ->
      %{"role" => first["role"], parts_key => Enum.flat_map(group, & &1[parts_key])}
    end)
  end

  @doc false
  # The arguments of an OpenAI-shaped tool call in the history as a JSON object map: a
  # JSON text is decoded (anything but an object gives `%{}`), a map is stringified.
  def tool_arguments(args) when is_binary(args) do
    case DSPex.JSON.decode(args) do
      {:ok, %{} = map} -> map
      _ -> %{}
    end
  end

  def tool_arguments(args) when is_map(args), do: stringify(args)
  def tool_arguments(_), do: %{}

  @doc false
  # The URL of an OpenAI `image_url` content part (`image_url` a string or `%{url:}`).
  def image_url(part) do
    case get(part, :image_url) do
      u when is_binary(u) -> u
      m when is_map(m) -> get(m, :url)
      _ -> nil
    end
  end

  @doc false
  # Converts a message `content` (nil, a text, or a list of OpenAI-style parts) into a
  # provider's list of parts: `text.(binary)` renders a text, `image.(url)` an
  # `image_url` part; any other map is passed through stringified (taken to be in the
  # provider's own shape already).
  def convert_parts(content, text, image)
  def convert_parts(nil, _text, _image), do: []
  def convert_parts("", _text, _image), do: []
  def convert_parts(content, text, _image) when is_binary(content), do: [text.(content)]

  def convert_parts(parts, text, image) when is_list(parts) do
    Enum.flat_map(parts, fn
      p when is_binary(p) ->
        [text.(p)]

      p when is_map(p) ->
        case get(p, :type) do
          "text" -> [text.(get(p, :text) || "")]
          "image_url" -> [image.(image_url(p))]
          _ -> [stringify(p)]
        end

      _ ->
        []
    end)
  end

  def convert_parts(other, text, _image), do: [text.(to_string(other))]

  @doc false
  # The `{:ok, completion}` every provider's `parse/2` and `stream_finish/1` return.
  def completion(choices, usage, lm, response_model) do
    {:ok, %{choices: choices, usage: usage, model: lm.model, response_model: response_model}}
  end
end
