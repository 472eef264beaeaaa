defmodule DSPex.JSON do
  @moduledoc """
  DSPex's JSON: a strict, exact C codec (`decode/2`, `encode/2`) plus extraction and
  repair of JSON in LM output (`repair/2`, `extract/2`).

  OTP 25 has no `:json` module and DSPex has no dependencies, so this codec is the
  project's JSON everywhere: saved programs, provider payloads, tool calls, cache keys.

  ## Decoding

  `decode/2` accepts exactly RFC 8259 JSON: no trailing commas, comments, leading zeros,
  single quotes or trailing text (whitespace aside). Strings must be valid UTF-8;
  `\\u` escapes, including surrogate pairs, are decoded (a lone surrogate is an error).

  Text from outside (LM providers) is not always that clean: Python's `json.dumps` writes
  half an emoji as a lone surrogate escape (`"\\ud83d"`), and models emit invalid UTF-8.
  `invalid_unicode: :replace` decodes such strings the way browsers do instead of failing:
  each lone surrogate escape and each ill-formed UTF-8 sequence (maximal subpart) becomes
  U+FFFD (`"�"`). The result is always valid UTF-8; nothing else is relaxed.

  | JSON           | Elixir                                         |
  |----------------|------------------------------------------------|
  | object         | map with binary keys (`keys: :atoms_existing`) |
  | array          | list                                           |
  | string         | binary (UTF-8)                                 |
  | integer        | integer of any size (bignums are exact)        |
  | fraction/exp   | float (`1.0`, `1e2` → `100.0`)                 |
  | `true`/`false` | `true`/`false`                                 |
  | `null`         | `nil`                                          |

  Duplicate object keys: the last occurrence wins. Strings longer than 64 bytes that need
  no unescaping are sub-binaries of the input (no copy); call `:binary.copy/1` on one if
  you keep it while dropping a large document. Integer literals longer than 100,000
  digits are rejected (converting them is quadratic). A number too large for a float
  (`1e400`) is an error.

  Errors are `%DSPex.Error{type: :json_decode, details: %{offset: byte_offset}}` with a
  message such as `"unexpected character 'x' at byte 12, expected ',' or '}'"`.

  ## Encoding

  `encode/2` accepts maps (atom or binary keys), lists, UTF-8 binaries, atoms (`nil` →
  `null`, `true`, `false`, any other atom → its name as a string), integers of any size,
  floats, and two kinds of *ordered* objects that keep their key order:

    * a keyword list: a non-empty list whose elements are all `{atom, value}` pairs;
    * `{:ordered, [{key, value}]}` with atom or binary keys (`{:ordered, []}` is `{}`).

  An `{:ordered, list}` tuple is always an object, never a keyword-list entry, so
  `[{:ordered, pairs}]` is an array holding one object (write `%{ordered: ...}` for an
  object whose key is `"ordered"`).

  Floats use the shortest digits that read back as the same float (at most 17
  significant digits): plain decimal when `1.0e-4 <= abs(x) < 1.0e16` (`0.1`, `1.0`,
  `100.0`, `0.000123`), otherwise scientific with a lowercase `e` and no `+`
  (`1.0e20`, `1.5e-7`). Every float round-trips through `decode/2` exactly.

  Rejected with `%DSPex.Error{type: :json_encode}` (the message names the offending
  term, `details.term` holds it): structs (convert with `Map.from_struct/1` first), maps
  with keys other than atoms and binaries, tuples other than `{:ordered, pairs}`, pids,
  references, ports, functions, improper lists, binaries that are not UTF-8, nesting
  deeper than `:max_depth`.

  ## Scheduling

  Decoding an input over 64 KiB (or one holding an integer literal of more than 1000
  digits) runs on a dirty CPU scheduler. Encoding starts on the calling scheduler and
  restarts on a dirty CPU scheduler once it has done about 16 KiB of work (or meets a
  map or keyword list of more than 4096 entries), so at most ~16 KiB of work is redone.
  Nesting is tracked on the heap, never the C stack, so no input can crash the VM.

  ## Telemetry

  `decode/2` and `encode/2` deliberately emit no telemetry: they are hot-path primitives
  called many times per LM request, and a span per call would cost more than small
  documents take to parse. Instrument the callers instead.

  ## Repair

  `repair/2` and `extract/2` handle the broken and prose-wrapped JSON that LMs produce;
  their policy is documented in `DSPex.JSON.Repair`.
  """

  alias DSPex.NIF

  @default_max_depth 512

  @typedoc "Options for `decode/2`."
  @type decode_opt ::
          {:keys, :binaries | :atoms_existing}
          | {:max_depth, pos_integer}
          | {:invalid_unicode, :error | :replace}

  @typedoc "Options for `encode/2`."
  @type encode_opt ::
          {:pretty, boolean}
          | {:sort_keys, boolean}
          | {:escape, :json | :unicode}
          | {:max_depth, pos_integer}
          | {:iodata, boolean}

  @doc """
  Decodes JSON text into Elixir terms.

  Options:

    * `:keys` – `:binaries` (default) or `:atoms_existing`: object keys become existing
      atoms; a key that is not an existing atom is an error (atoms are never created).
    * `:max_depth` – the deepest nesting of arrays/objects accepted (default 512).
    * `:invalid_unicode` – `:error` (default: a lone surrogate escape or invalid UTF-8 in
      a string is a decode error) or `:replace` (each becomes U+FFFD, see the module doc).

  Accepts a binary or iodata.

  ## Examples

      iex> DSPex.JSON.decode(~s({"a": [1, 2.5, "x", null, true]}))
      {:ok, %{"a" => [1, 2.5, "x", nil, true]}}

      iex> DSPex.JSON.decode("123456789012345678901234567890")
      {:ok, 123456789012345678901234567890}

      iex> DSPex.JSON.decode(~s({"name": 1}), keys: :atoms_existing)
      {:ok, %{name: 1}}

      iex> DSPex.JSON.decode(~s(["half an emoji: \\\\ud83d"]), invalid_unicode: :replace)
      {:ok, ["half an emoji: �"]}

      iex> {:error, err} = DSPex.JSON.decode(~s({"a": 1 x}))
      iex> err.message
      "unexpected character 'x' at byte 8, expected ',' or '}'"
      iex> err.details
      %{offset: 8}
  """
  @spec decode(iodata, [decode_opt]) :: {:ok, term} | {:error, DSPex.Error.t()}
  def decode(json, opts \\ [])

  def decode(json, opts) when is_binary(json) do
    case NIF.guard(fn -> NIF.json_decode(json, decode_opts(opts)) end) do
      {:ok, _} = ok -> ok
      {:error, err} -> {:error, NIF.wrap_error(err, :offset)}
    end
  end

  def decode(json, opts) when is_list(json), do: decode(IO.iodata_to_binary(json), opts)

  def decode(other, _opts) do
    raise ArgumentError,
          "DSPex.JSON.decode/2 expects a binary or iodata, got: #{inspect(other, limit: 5)}"
  end

  @doc """
  Like `decode/2` but returns the term or raises `DSPex.Error`.

  ## Examples

      iex> DSPex.JSON.decode!("[1, 2]")
      [1, 2]
  """
  @spec decode!(iodata, [decode_opt]) :: term
  def decode!(json, opts \\ []) do
    case decode(json, opts) do
      {:ok, term} -> term
      {:error, err} -> raise err
    end
  end

  @doc """
  Encodes an Elixir term as JSON text.

  Options:

    * `:pretty` – indent with two spaces, one member per line, `": "` after keys
      (default `false`: no whitespace at all).
    * `:sort_keys` – write map keys sorted by their UTF-8 bytes, at every level (default
      `false`). Keyword lists and `{:ordered, pairs}` keep their own order.
    * `:escape` – `:json` (default: escape only `"`, `\\` and control characters) or
      `:unicode` (also write every non-ASCII character as `\\uXXXX`, giving ASCII output).
    * `:max_depth` – the deepest nesting accepted (default 512).
    * `:iodata` – accepted for compatibility; the result is always a binary (which is
      iodata).

  ## Examples

      iex> DSPex.JSON.encode(%{"b" => 1, "a" => [true, nil, 0.1]}, sort_keys: true)
      {:ok, ~s({"a":[true,null,0.1],"b":1})}

      iex> DSPex.JSON.encode(z: 1, a: 2)
      {:ok, ~s({"z":1,"a":2})}

      iex> DSPex.JSON.encode({:ordered, [{"k", 1.0e20}]})
      {:ok, ~s({"k":1.0e20})}

      iex> DSPex.JSON.encode(%{a: [1]}, pretty: true)
      {:ok, "{\\n  \\"a\\": [\\n    1\\n  ]\\n}"}

      iex> DSPex.JSON.encode("é", escape: :unicode)
      {:ok, ~s("\\\\u00e9")}

      iex> {:error, err} = DSPex.JSON.encode(%{1 => 2})
      iex> err.type
      :json_encode
  """
  @spec encode(term, [encode_opt]) :: {:ok, binary} | {:error, DSPex.Error.t()}
  def encode(term, opts \\ []) do
    case NIF.guard(fn -> NIF.json_encode(term, encode_opts(opts)) end) do
      {:ok, _} = ok -> ok
      {:error, err} -> {:error, encode_error(err)}
    end
  end

  @doc """
  Like `encode/2` but returns the binary or raises `DSPex.Error`.

  ## Examples

      iex> DSPex.JSON.encode!(%{"a" => "b"})
      ~s({"a":"b"})
  """
  @spec encode!(term, [encode_opt]) :: binary
  def encode!(term, opts \\ []) do
    case encode(term, opts) do
      {:ok, bin} -> bin
      {:error, err} -> raise err
    end
  end

  @doc "Repairs broken JSON text. See `DSPex.JSON.Repair.repair/2`."
  defdelegate repair(text, opts \\ []), to: DSPex.JSON.Repair

  @doc "Like `repair/2` but returns the JSON text or raises. See `DSPex.JSON.Repair.repair!/2`."
  defdelegate repair!(text, opts \\ []), to: DSPex.JSON.Repair

  @doc """
  Extracts the first JSON value from text; text that holds none is an error. See
  `DSPex.JSON.Repair.extract/2`.
  """
  defdelegate extract(text, opts \\ []), to: DSPex.JSON.Repair

  @doc "Like `extract/2` but returns the term or raises. See `DSPex.JSON.Repair.extract!/2`."
  defdelegate extract!(text, opts \\ []), to: DSPex.JSON.Repair

  # -- options -------------------------------------------------------------------------

  defp decode_opts([]), do: {0, @default_max_depth}
  defp decode_opts(opts) when not is_list(opts), do: bad_opts!(opts)

  defp decode_opts(opts) do
    keys =
      case Keyword.get(opts, :keys, :binaries) do
        :binaries ->
          0

        :atoms_existing ->
          1

        other ->
          raise ArgumentError,
                "invalid :keys option #{inspect(other)}; expected :binaries or :atoms_existing"
      end

    unicode =
      case Keyword.get(opts, :invalid_unicode, :error) do
        :error ->
          0

        :replace ->
          2

        other ->
          raise ArgumentError,
                "invalid :invalid_unicode option #{inspect(other)}; expected :error or :replace"
      end

    {keys + unicode, max_depth(opts)}
  end

  defp encode_opts([]), do: {0, @default_max_depth}
  defp encode_opts(opts) when not is_list(opts), do: bad_opts!(opts)

  defp encode_opts(opts) do
    flags =
      flag(opts, :pretty, 1) + flag(opts, :sort_keys, 2) +
        case Keyword.get(opts, :escape, :json) do
          :json ->
            0

          :unicode ->
            4

          other ->
            raise ArgumentError,
                  "invalid :escape option #{inspect(other)}; expected :json or :unicode"
        end

    {flags, max_depth(opts)}
  end

  defp bad_opts!(opts) do
    raise ArgumentError,
          "DSPex.JSON options must be a keyword list, got: #{inspect(opts, limit: 5)}"
  end

  defp flag(opts, key, bit) do
    case Keyword.get(opts, key, false) do
      true ->
        bit

      false ->
        0

      other ->
        raise ArgumentError,
              "invalid #{inspect(key)} option #{inspect(other)}; expected a boolean"
    end
  end

  defp max_depth(opts) do
    case Keyword.get(opts, :max_depth, @default_max_depth) do
      d when is_integer(d) and d > 0 and d < 0x7FFFFFFF ->
        d

      other ->
        raise ArgumentError,
              "invalid :max_depth option #{inspect(other)}; expected a positive integer"
    end
  end

  defp encode_error({type, message, {:term, term}}) do
    shown = inspect(term, limit: 8, printable_limit: 80)
    DSPex.Error.new(type, "#{message}: #{shown}", %{term: term})
  end

  defp encode_error(err), do: NIF.wrap_error(err, :offset)
end
