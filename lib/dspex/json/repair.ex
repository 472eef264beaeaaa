defmodule DSPex.JSON.Repair do
  @moduledoc """
  Extraction and repair of JSON in LM output.

  LMs wrap JSON in prose and Markdown fences, use Python literals, forget quotes and
  commas, and get cut off mid-document. `repair/2` turns such text into one valid JSON
  text; `extract/2` finds the first (or, with `all: true`, every) JSON value in a text
  and decodes it.

  The work happens in C (`c_src/core/json/repair.c`) in a single pass: time is linear in the
  input and memory proportional to it on every path (the output is an append-only
  buffer; lookaheads are bounded; re-reading a string whose end quote is missing draws on
  one budget per input), including hostile shapes such as a JSONP wrapper around objects
  nested to `:max_depth` followed by whitespace. Valid JSON is returned byte for byte (the
  same binary, without a copy); repairs keep the input's whitespace. Inputs over 64 KiB
  run on a dirty CPU scheduler.

  ## What is repaired

    * prose before and after the JSON, Markdown fences (```` ```json ```` anywhere); a
      fenced block in another language (```` ```python ````) that does not start like JSON
      is skipped;
    * single quotes, curly quotes (`“ ” ‘ ’`), backticks; unquoted keys and strings;
      Python `True`/`False`/`None` (any case), `undefined`, `NaN`, `Infinity` (`null`);
    * comments `//`, `/* */`, and `#` where a key, comma or closer is expected;
    * leading, trailing and missing commas; missing colons; missing values (`null`);
      missing and redundant closing brackets;
    * truncated output: open strings, arrays and objects are closed; `2.` → `2.0`,
      `2e` → `2e0`, `-` → `-0`;
    * unescaped quotes inside strings (decided from the delimiters around them) and raw
      control characters in strings;
    * special whitespace (no-break and other Unicode spaces) outside strings;
    * ellipses (`[1, 2, ...]`), JSONP `callback({...});`, MongoDB `NumberLong(2)`,
      `ISODate("...")`, string concatenation `"a" + "b"`, escaped JSON (`{\\"a\\":1}`),
      Python tuples `(1, 2)` and sets `{'a', 'b'}`;
    * NDJSON and back-to-back values (several top-level values → one array);
    * numbers with leading zeros (`0789` → `"0789"`), unquoted URLs and regexes → strings;
    * invalid UTF-8 becomes U+FFFD.

  ## Policy where the reference libraries disagree

  | input | jsonrepair (npm) | json_repair (PyPI) | DSPex |
  |---|---|---|---|
  | `True` | `true` | `""` | `true` |
  | `{"a": None}` | `{"a": null}` | `{"a": "None"}` | `{"a": null}` |
  | `{"a":}` | `{"a":null}` | `{"a": ""}` | `{"a":null}` |
  | `{"a":2}foo` | error | `{"a": 2}` | `{"a":2}` (trailing prose is ignored) |
  | `{"a":2}{"b":3}` | error | `[{"a": 2}, {"b": 3}]` | repair: `[{"a":2},{"b":3}]`; extract: `%{"a" => 2}`, `all: true` both |
  | `# c\\n{"a":1}` | `["# c", {"a":1}]` | `{"a": 1}` | `{"a":1}` |
  | `Here it is: {"a":1}` | error | `{"a": 1}` | `{"a":1}` (leading prose is dropped) |
  | `"\\s"` (invalid escape) | `"s"` | `"\\\\s"` | `"\\\\s"` (backslash kept: regexes, LaTeX) |
  | `"a\\u0000"` (raw control char) | error | kept | `"a\\u0000"` (escaped) |
  | valid JSON | unchanged | re-serialised | unchanged, byte for byte |
  | `"a\\n"` with a raw trailing newline | kept | dropped | dropped (when the raw whitespace before the end quote holds a newline) |

  `repair/2`: text with no JSON value at all (empty or only whitespace/comments) is an
  error; plain prose without any `{`/`[` is repaired as a string (`hello world` →
  `"hello world"`), because `repair/2` must return JSON text.

  ## What counts as a JSON value (`extract/2`)

  `extract/2` looks for JSON in text and fails with
  `%DSPex.Error{type: :json_repair, message: "no JSON value found"}` when there is none.
  Leading prose is skipped only when an object, an array or a Markdown fence follows it.
  After that, the text must start with a JSON value:

    * an object or an array (`{`, `[`), anywhere after prose, repaired if broken;
    * a quoted string (`"..."`, `'...'`, curly quotes);
    * a number, `true`/`false`/`null` or their Python and JavaScript spellings (`True`,
      `None`, `undefined`, `NaN`), or a call wrapper around one (`NumberLong(2)`,
      `callback({...})`).

  Text after the value is ignored. So:

  | text | `extract/2` |
  |---|---|
  | `no json here`, `true story`, `Hello (world)` | error: bare words are prose |
  | `The answer is 42.` | error: a number inside prose is not taken |
  | `The answer is "Paris".` | error: so is a quoted phrase |
  | `42`, `42 apples` | `42` |
  | `Sure: {"a": 1}`, ```` ```json\\n{"a": 1}\\n``` ```` | `%{"a" => 1}` |

  With `all: true` the same holds for the first value. Later values follow it directly
  (`1\\n2` → `[1, 2]`), or after prose when they are objects or arrays
  (`see [1] and [2]` → `[[1], [2]]`).

  ## Options

    * `:max_depth` — nesting limit, 1 to 1000 (default 512); deeper input is an error.
    * `:multi` (`repair/2`) — several top-level values become an array (default `true`);
      with `false`, only the first is kept.
    * `:all` (`extract/2`) — return every top-level value as a list.
    * `:keys` (`extract/2`) — passed to `DSPex.JSON.decode/2` (`:binaries` or
      `:atoms_existing`).

  Errors are `%DSPex.Error{type: :json_repair, details: %{offset: byte_offset}}`.
  """

  @type repair_opt :: {:max_depth, pos_integer} | {:multi, boolean}
  @type extract_opt ::
          {:max_depth, pos_integer} | {:all, boolean} | {:keys, :binaries | :atoms_existing}

  @doc """
  Repairs `text` into valid JSON text.

  ## Examples

      iex> DSPex.JSON.Repair.repair("{'a': 1, b: [1, 2,], c: None}")
      {:ok, ~s({"a": 1, "b": [1, 2], "c": null})}

      iex> DSPex.JSON.Repair.repair(~s(Sure! ```json\\n{"answer": "Paris\\n```))
      {:ok, ~s(\\n{"answer": "Paris"}\\n)}

      iex> DSPex.JSON.Repair.repair(~s({"a": [1, 2))
      {:ok, ~s({"a": [1, 2]})}

      iex> {:error, err} = DSPex.JSON.Repair.repair("   ")
      iex> {err.type, err.details}
      {:json_repair, %{offset: 3}}
  """
  @spec repair(binary, [repair_opt]) :: {:ok, binary} | {:error, DSPex.Error.t()}
  def repair(text, opts \\ [])

  def repair(text, opts) when is_binary(text) and is_list(opts) do
    nif_opts = nif_opts(opts, [:max_depth, :multi])

    DSPex.Telemetry.span([:dspex, :json, :repair], %{bytes: byte_size(text)}, fn ->
      result =
        case DSPex.NIF.guard(fn -> DSPex.NIF.json_repair(text, nif_opts) end) do
          {:ok, out} -> {:ok, out}
          {:error, err} -> {:error, DSPex.NIF.wrap_error(err, :offset)}
        end

      {result, %{bytes: byte_size(text), ok: match?({:ok, _}, result)}}
    end)
  end

  def repair(text, opts), do: bad_args!("repair/2", text, opts)

  @doc """
  Like `repair/2` but returns the JSON text or raises `DSPex.Error`.

  ## Examples

      iex> DSPex.JSON.Repair.repair!("[1, 2, 3,]")
      "[1, 2, 3]"
  """
  @spec repair!(binary, [repair_opt]) :: binary
  def repair!(text, opts \\ []) do
    case repair(text, opts) do
      {:ok, out} -> out
      {:error, err} -> raise err
    end
  end

  @doc """
  Finds the first JSON value in `text` (skipping prose and fences), repairs and decodes
  it. With `all: true`, returns every top-level value, in order. Text that holds no JSON
  value (see "What counts as a JSON value" above) is an error.

  ## Examples

      iex> DSPex.JSON.Repair.extract(~s(The result is {"score": 0.9, "label": 'good'}. Done.))
      {:ok, %{"score" => 0.9, "label" => "good"}}

      iex> DSPex.JSON.Repair.extract(~s({"a": 1}\\n{"b": 2}), all: true)
      {:ok, [%{"a" => 1}, %{"b" => 2}]}

      iex> DSPex.JSON.Repair.extract(~s(```json\\n[1, 2, ...]\\n```))
      {:ok, [1, 2]}

      iex> {:error, err} = DSPex.JSON.Repair.extract("no json here")
      iex> err.message
      "no JSON value found"
  """
  @spec extract(binary, [extract_opt]) :: {:ok, term} | {:error, DSPex.Error.t()}
  def extract(text, opts \\ [])

  def extract(text, opts) when is_binary(text) and is_list(opts) do
    nif_opts = nif_opts(opts, [:max_depth, :all])
    decode_opts = Keyword.take(opts, [:keys, :max_depth])

    DSPex.Telemetry.span([:dspex, :json, :extract], %{bytes: byte_size(text)}, fn ->
      result =
        case DSPex.NIF.guard(fn -> DSPex.NIF.json_extract(text, nif_opts) end) do
          {:ok, list} when is_list(list) -> decode_all(list, decode_opts, [])
          {:ok, json} -> decode_one(json, decode_opts)
          {:error, err} -> {:error, DSPex.NIF.wrap_error(err, :offset)}
        end

      {result, %{bytes: byte_size(text), ok: match?({:ok, _}, result)}}
    end)
  end

  def extract(text, opts), do: bad_args!("extract/2", text, opts)

  defp bad_args!(fun, text, opts) when is_binary(text) do
    raise ArgumentError,
          "DSPex.JSON.Repair.#{fun} options must be a keyword list, got: #{inspect(opts, limit: 5)}"
  end

  defp bad_args!(fun, text, _opts) do
    raise ArgumentError,
          "DSPex.JSON.Repair.#{fun} expects a binary, got: #{inspect(text, limit: 5)}"
  end

  @doc """
  Like `extract/2` but returns the term or raises `DSPex.Error`.

  ## Examples

      iex> DSPex.JSON.Repair.extract!("Answer: [1, 2")
      [1, 2]
  """
  @spec extract!(binary, [extract_opt]) :: term
  def extract!(text, opts \\ []) do
    case extract(text, opts) do
      {:ok, term} -> term
      {:error, err} -> raise err
    end
  end

  defp decode_all([], _opts, acc), do: {:ok, Enum.reverse(acc)}

  defp decode_all([json | rest], opts, acc) do
    case decode_one(json, opts) do
      {:ok, term} -> decode_all(rest, opts, [term | acc])
      error -> error
    end
  end

  defp decode_one(json, opts) do
    case DSPex.JSON.decode(json, opts) do
      {:ok, term} ->
        {:ok, term}

      {:error, %DSPex.Error{} = err} ->
        {:error,
         DSPex.Error.new(
           :json_repair,
           "repaired JSON did not decode: " <> err.message,
           err.details
         )}
    end
  end

  defp nif_opts(opts, allowed) do
    Enum.reduce(opts, %{}, fn
      {:max_depth, d}, acc when is_integer(d) and d > 0 ->
        Map.put(acc, :max_depth, d)

      {key, v}, acc when key in [:multi, :all] and is_boolean(v) ->
        if key in allowed, do: Map.put(acc, key, v), else: acc

      {:keys, _}, acc ->
        acc

      other, _acc ->
        raise ArgumentError, "invalid JSON repair option: #{inspect(other)}"
    end)
  end
end
