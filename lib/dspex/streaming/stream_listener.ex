defmodule DSPex.StreamListener do
  @moduledoc """
  Splits one predictor's streamed completion text into per-field chunks, like DSPy's
  `StreamListener`.

  The format is detected from the first non-blank character: `{` means JSONAdapter
  output (fields are the top-level keys; string values are unescaped, other values are
  passed through as raw JSON text), anything else ChatAdapter output (fields start at
  `[[ ## name ## ]]` markers; `[[ ## completed ## ]]` ends the last one; text before the
  first marker is dropped).

  Text that might be the beginning of a marker split across deltas (`"[[ ## ans"`) is
  held back until it is decided; leading whitespace after a marker and trailing
  whitespace before the next one are trimmed, so the concatenated chunks of a field equal
  what the adapter parses. A field seen a second time is not emitted again (the adapter
  keeps the first occurrence).

  `feed/2` returns `{chunks, listener}` where each chunk is
  `{field_name_binary, text, last?}`; the last chunk of a field has `last? == true`
  (its text may be empty). `finish/1` flushes an unterminated field.

  ## Examples

      iex> l = DSPex.StreamListener.new()
      iex> {c1, l} = DSPex.StreamListener.feed(l, "[[ ## answer ## ]]\\nPar")
      iex> {c2, l} = DSPex.StreamListener.feed(l, "is\\n\\n[[ ## compl")
      iex> {c3, _} = DSPex.StreamListener.feed(l, "eted ## ]]")
      iex> c1 ++ c2 ++ c3
      [{"answer", "Par", false}, {"answer", "is", false}, {"answer", "", true}]
  """

  defstruct mode: nil,
            buf: "",
            field: nil,
            at_start: true,
            done: false,
            seen: MapSet.new(),
            fields: nil,
            json: nil

  @type chunk :: {binary, binary, boolean}
  @type t :: %__MODULE__{}

  @marker ~r/\[\[ ## (\w+) ## \]\]/
  # A suffix that could still grow into a marker.
  @partial ~r/\[(?:\[(?: (?:#(?:#(?: (?:\w+(?: (?:#(?:#(?: (?:\])?)?)?)?)?)?)?)?)?)?)?\z/

  @doc """
  A fresh listener. Option `fields:` (list of atoms or binaries) restricts which fields
  are emitted; by default every field is.

  ## Examples

      iex> l = DSPex.StreamListener.new(fields: [:answer])
      iex> {chunks, _} = DSPex.StreamListener.feed(l, "[[ ## reasoning ## ]]\\nhmm\\n[[ ## answer ## ]]\\n42")
      iex> chunks
      [{"answer", "42", false}]
  """
  @spec new(keyword) :: t
  def new(opts \\ []) do
    fields =
      case Keyword.get(opts, :fields) do
        nil -> nil
        list -> MapSet.new(list, &to_string/1)
      end

    %__MODULE__{fields: fields}
  end

  @doc """
  Resets the listener for a new LM call of the same predictor (keeps `fields:`).

  ## Examples

      iex> {_, l} = DSPex.StreamListener.feed(DSPex.StreamListener.new(), "[[ ## a ## ]]\\nx[[ ## completed ## ]]")
      iex> {chunks, _} = l |> DSPex.StreamListener.reset() |> DSPex.StreamListener.feed(~s({"a": "y"}))
      iex> chunks
      [{"a", "y", true}]
  """
  @spec reset(t) :: t
  def reset(%__MODULE__{fields: f}), do: %__MODULE__{fields: f}

  @doc """
  Feeds one text delta. Returns `{[chunk], listener}`.

  ## Examples

      iex> {chunks, _} = DSPex.StreamListener.feed(DSPex.StreamListener.new(), ~s({"answer": "Par))
      iex> chunks
      [{"answer", "Par", false}]
  """
  @spec feed(t, binary) :: {[chunk], t}
  def feed(%__MODULE__{done: true} = l, _text), do: {[], l}

  def feed(%__MODULE__{mode: nil} = l, text) do
    buf = l.buf <> text

    case String.trim_leading(buf) do
      "" -> {[], %{l | buf: buf}}
      "{" <> _ = rest -> feed(%{l | mode: :json, buf: "", json: json_init()}, rest)
      _ -> feed(%{l | mode: :chat, buf: ""}, buf)
    end
  end

  def feed(%__MODULE__{mode: :chat} = l, text) do
    {chunks, l} = chat(%{l | buf: l.buf <> text}, [])
    {merge(chunks), l}
  end

  def feed(%__MODULE__{mode: :json} = l, text) do
    {chunks, l} = json(%{l | buf: l.buf <> text})
    {merge(chunks), l}
  end

  @doc """
  Flushes what is held back at the end of the completion. Returns `{[chunk], listener}`.

  ## Examples

      iex> {_, l} = DSPex.StreamListener.feed(DSPex.StreamListener.new(), "[[ ## answer ## ]]\\n42 ")
      iex> {chunks, _} = DSPex.StreamListener.finish(l)
      iex> chunks
      [{"answer", "", true}]
  """
  @spec finish(t) :: {[chunk], t}
  def finish(%__MODULE__{done: true} = l), do: {[], l}

  def finish(%__MODULE__{mode: :chat, field: f} = l) when is_binary(f) do
    text = if l.at_start, do: String.trim(l.buf), else: String.trim_trailing(l.buf)
    {emit([], l, f, text, true), %{l | done: true, buf: "", field: nil}}
  end

  def finish(%__MODULE__{mode: :json, json: %{field: f}} = l) when is_binary(f) do
    text = if l.json.state == :in_raw, do: String.trim_trailing(l.json.pending <> l.buf), else: ""
    {emit([], l, f, text, true), %{l | done: true, buf: ""}}
  end

  def finish(l), do: {[], %{l | done: true}}

  # --- ChatAdapter markers ----------------------------------------------------------

  defp chat(%{field: nil} = l, acc) do
    case Regex.run(@marker, l.buf, return: :index) do
      [{pos, len}, {npos, nlen}] ->
        name = binary_part(l.buf, npos, nlen)
        rest = binary_part(l.buf, pos + len, byte_size(l.buf) - pos - len)
        open(l, name, rest, acc)

      nil ->
        # Keep only what could be the start of a marker.
        keep =
          case Regex.run(@partial, l.buf, return: :index) do
            [{p, _}] -> binary_part(l.buf, p, byte_size(l.buf) - p)
            nil -> ""
          end

        {Enum.reverse(acc), %{l | buf: keep}}
    end
  end

  defp chat(%{field: f} = l, acc) do
    case Regex.run(@marker, l.buf, return: :index) do
      [{pos, len}, {npos, nlen}] ->
        before = binary_part(l.buf, 0, pos)
        text = if l.at_start, do: String.trim(before), else: String.trim_trailing(before)
        acc = emit(acc, l, f, text, true)
        l = %{l | seen: MapSet.put(l.seen, f), field: nil}
        name = binary_part(l.buf, npos, nlen)
        rest = binary_part(l.buf, pos + len, byte_size(l.buf) - pos - len)
        open(l, name, rest, acc)

      nil ->
        {ready, held} =
          case Regex.run(@partial, l.buf, return: :index) do
            [{p, _}] -> {binary_part(l.buf, 0, p), binary_part(l.buf, p, byte_size(l.buf) - p)}
            nil -> {l.buf, ""}
          end

        ready = if l.at_start, do: String.trim_leading(ready), else: ready
        trimmed = String.trim_trailing(ready)
        ws = binary_part(ready, byte_size(trimmed), byte_size(ready) - byte_size(trimmed))

        if trimmed == "" do
          {Enum.reverse(acc), %{l | buf: ws <> held}}
        else
          acc = emit(acc, l, f, trimmed, false)
          {Enum.reverse(acc), %{l | buf: ws <> held, at_start: false}}
        end
    end
  end

  defp open(l, "completed", _rest, acc),
    do: {Enum.reverse(acc), %{l | done: true, field: nil, buf: ""}}

  defp open(l, name, rest, acc) do
    chat(%{l | field: name, at_start: true, buf: rest}, acc)
  end

  defp emit(acc, l, field, text, last?) do
    cond do
      l.fields != nil and not MapSet.member?(l.fields, field) -> acc
      MapSet.member?(l.seen, field) -> acc
      text == "" and not last? -> acc
      true -> [{field, text, last?} | acc]
    end
  end

  # Joins consecutive non-final chunks of one field (one feed can cross several).
  defp merge(chunks) do
    chunks
    |> Enum.chunk_while(
      nil,
      fn
        {f, t, false}, {f, acc_t, false} -> {:cont, {f, acc_t <> t, false}}
        {f, t, true}, {f, acc_t, false} -> {:cont, {f, acc_t <> t, true}}
        c, nil -> {:cont, c}
        c, prev -> {:cont, prev, c}
      end,
      fn
        nil -> {:cont, nil}
        prev -> {:cont, prev, nil}
      end
    )
  end

  # --- JSONAdapter objects ----------------------------------------------------------
  # States: :seek_key (inside the top-level object), :in_key, :seek_colon, :seek_value,
  # :in_str (string value, unescaped as it goes), :in_raw (any other value, raw text;
  # depth counts nested brackets, in_s marks a string inside it), :end.

  defp json_init,
    do: %{state: :seek_key, key: [], field: nil, depth: 0, in_s: false, esc: false, pending: ""}

  defp json(l) do
    {acc, j, rest} = jscan(l.buf, l.json, l, [])
    l = %{l | json: j, buf: rest}
    l = if j.state == :end, do: %{l | done: true}, else: l
    {Enum.reverse(acc), l}
  end

  defp jscan(<<>>, j, _l, acc), do: {acc, j, ""}

  defp jscan(_bin, %{state: :end} = j, _l, acc), do: {acc, j, ""}

  defp jscan(<<c, rest::binary>>, %{state: :seek_key} = j, l, acc) do
    case c do
      ?" -> jscan(rest, %{j | state: :in_key, key: []}, l, acc)
      ?} -> {acc, %{j | state: :end}, ""}
      _ -> jscan(rest, j, l, acc)
    end
  end

  defp jscan(<<?\\, e, rest::binary>>, %{state: :in_key} = j, l, acc),
    do: jscan(rest, %{j | key: [j.key, ?\\, e]}, l, acc)

  defp jscan(<<?\\>> = bin, %{state: :in_key} = j, _l, acc), do: {acc, j, bin}

  defp jscan(<<?", rest::binary>>, %{state: :in_key} = j, l, acc),
    do: jscan(rest, %{j | state: :seek_colon}, l, acc)

  defp jscan(<<c, rest::binary>>, %{state: :in_key} = j, l, acc),
    do: jscan(rest, %{j | key: [j.key, c]}, l, acc)

  defp jscan(<<?:, rest::binary>>, %{state: :seek_colon} = j, l, acc),
    do: jscan(rest, %{j | state: :seek_value}, l, acc)

  defp jscan(<<_, rest::binary>>, %{state: :seek_colon} = j, l, acc), do: jscan(rest, j, l, acc)

  defp jscan(<<c, rest::binary>>, %{state: :seek_value} = j, l, acc)
       when c in [?\s, ?\n, ?\r, ?\t],
       do: jscan(rest, j, l, acc)

  defp jscan(<<?", rest::binary>>, %{state: :seek_value} = j, l, acc) do
    field = IO.iodata_to_binary(j.key)
    jscan(rest, %{j | state: :in_str, field: field}, l, acc)
  end

  defp jscan(bin, %{state: :seek_value} = j, l, acc) do
    field = IO.iodata_to_binary(j.key)

    jscan(
      bin,
      %{j | state: :in_raw, field: field, depth: 0, in_s: false, esc: false, pending: ""},
      l,
      acc
    )
  end

  defp jscan(bin, %{state: :in_str} = j, l, acc) do
    {text, status, rest} = jstring(bin, [])
    text = IO.iodata_to_binary(text)

    case status do
      :closed ->
        acc = emit(acc, l, j.field, text, true)
        l = %{l | seen: MapSet.put(l.seen, j.field)}
        jscan(rest, %{j | state: :seek_key, field: nil}, l, acc)

      :open ->
        {emit(acc, l, j.field, text, false), j, rest}
    end
  end

  defp jscan(bin, %{state: :in_raw} = j, l, acc) do
    {text, j2, status, rest} = jraw(bin, j, [])
    text = IO.iodata_to_binary(text)

    case status do
      {:closed, closer} ->
        acc = emit(acc, l, j.field, String.trim_trailing(j.pending <> text), true)
        l = %{l | seen: MapSet.put(l.seen, j.field)}
        next = if closer == ?}, do: :end, else: :seek_key
        jscan(rest, %{j2 | state: next, field: nil, pending: ""}, l, acc)

      :open ->
        full = j.pending <> text
        trimmed = String.trim_trailing(full)
        ws = binary_part(full, byte_size(trimmed), byte_size(full) - byte_size(trimmed))
        {emit(acc, l, j.field, trimmed, false), %{j2 | pending: ws}, rest}
    end
  end

  # String value: returns {decoded_iodata, :open | :closed, unconsumed}.
  defp jstring(<<?", rest::binary>>, out), do: {Enum.reverse(out), :closed, rest}

  defp jstring(<<?\\, ?u, h::binary-size(4), rest::binary>> = bin, out) do
    case Integer.parse(h, 16) do
      {cp, ""} ->
        cond do
          cp in 0xD800..0xDBFF ->
            case rest do
              <<?\\, ?u, l::binary-size(4), rest2::binary>> ->
                case Integer.parse(l, 16) do
                  {lo, ""} when lo in 0xDC00..0xDFFF ->
                    c = 0x10000 + (cp - 0xD800) * 0x400 + (lo - 0xDC00)
                    jstring(rest2, [<<c::utf8>> | out])

                  _ ->
                    jstring(rest, ["\uFFFD" | out])
                end

              _ when byte_size(rest) < 6 ->
                {Enum.reverse(out), :open, bin}

              _ ->
                jstring(rest, ["\uFFFD" | out])
            end

          cp in 0xDC00..0xDFFF ->
            jstring(rest, ["\uFFFD" | out])

          true ->
            jstring(rest, [<<cp::utf8>> | out])
        end

      _ ->
        jstring(rest, [h | out])
    end
  end

  defp jstring(<<?\\, ?u, _::binary>> = bin, out), do: {Enum.reverse(out), :open, bin}

  defp jstring(<<?\\, e, rest::binary>>, out) do
    c =
      case e do
        ?n -> "\n"
        ?t -> "\t"
        ?r -> "\r"
        ?b -> "\b"
        ?f -> "\f"
        other -> <<other>>
      end

    jstring(rest, [c | out])
  end

  defp jstring(<<?\\>> = bin, out), do: {Enum.reverse(out), :open, bin}
  defp jstring(<<>>, out), do: {Enum.reverse(out), :open, ""}

  defp jstring(bin, out) do
    # Copy a run of plain bytes at once.
    case :binary.match(bin, [<<?">>, <<?\\>>]) do
      {p, _} -> jstring(binary_part(bin, p, byte_size(bin) - p), [binary_part(bin, 0, p) | out])
      :nomatch -> {Enum.reverse([bin | out]), :open, ""}
    end
  end

  # Raw value (number, literal, array, object): returns {iodata, j, status, rest}.
  defp jraw(<<>>, j, out), do: {Enum.reverse(out), j, :open, ""}

  defp jraw(<<c, rest::binary>>, %{in_s: true} = j, out) do
    cond do
      j.esc -> jraw(rest, %{j | esc: false}, [c | out])
      c == ?\\ -> jraw(rest, %{j | esc: true}, [c | out])
      c == ?" -> jraw(rest, %{j | in_s: false}, [c | out])
      true -> jraw(rest, j, [c | out])
    end
  end

  defp jraw(<<c, rest::binary>>, j, out) do
    cond do
      c == ?" -> jraw(rest, %{j | in_s: true}, [c | out])
      c in [?[, ?{] -> jraw(rest, %{j | depth: j.depth + 1}, [c | out])
      c in [?], ?}] and j.depth > 0 -> jraw(rest, %{j | depth: j.depth - 1}, [c | out])
      c in [?,, ?}] and j.depth == 0 -> {Enum.reverse(out), j, {:closed, c}, rest}
      true -> jraw(rest, j, [c | out])
    end
  end
end
