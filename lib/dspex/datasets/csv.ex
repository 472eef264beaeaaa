defmodule DSPex.Dataset.CSV do
  @moduledoc """
  CSV reading and writing with the standard library only (RFC 4180, as Python's `csv`
  module reads and writes it).

  Reading (`parse/2`):

    * fields are separated by `separator` (default `","`); records end with `\\n`,
      `\\r\\n` or `\\r`;
    * a field that starts with `"` is quoted: it may contain separators, newlines and
      `""` (one quote); text after the closing quote is kept, as Python does;
    * a `"` inside an unquoted field is an ordinary character;
    * a UTF-8 byte-order mark at the start is dropped; empty lines are skipped;
    * the input must be valid UTF-8.

  Errors are `%DSPex.Error{type: :csv_parse}` with the 1-based `line` in `details`
  (an unterminated quote reports the line where the field started).

  Writing (`encode/1`) quotes a field only when it contains the separator, a quote,
  `\\r` or `\\n` (`csv.QUOTE_MINIMAL`) and ends records with `\\r\\n`, like Python's
  `csv.writer`.

  ## Examples

      iex> DSPex.Dataset.CSV.parse("q,a\\n\\"1, 2\\",\\"say \\"\\"hi\\"\\"\\"\\n")
      {:ok, [["q", "a"], ["1, 2", "say \\"hi\\""]]}
      iex> DSPex.Dataset.CSV.encode([["q", "a"], ["1, 2", "x"]])
      "q,a\\r\\n\\"1, 2\\",x\\r\\n"
  """

  alias DSPex.Error

  @doc """
  Parses CSV text into rows (lists of strings). Options: `separator:` (one byte,
  default `","`).

  ## Examples

      iex> DSPex.Dataset.CSV.parse("a;b\\r\\n1;2", separator: ";")
      {:ok, [["a", "b"], ["1", "2"]]}
      iex> {:error, %DSPex.Error{type: :csv_parse, details: %{line: 2}}} = DSPex.Dataset.CSV.parse("a\\n\\"open")
  """
  @spec parse(binary, keyword) :: {:ok, [[binary]]} | {:error, Error.t()}
  def parse(text, opts \\ []) when is_binary(text) do
    sep = Keyword.get(opts, :separator, ",")

    cond do
      not (is_binary(sep) and byte_size(sep) == 1 and sep not in ["\"", "\r", "\n"]) ->
        raise ArgumentError, "separator: must be one byte other than a quote or a newline"

      not String.valid?(text) ->
        {:error, Error.new(:csv_parse, "the CSV text is not valid UTF-8", %{line: nil})}

      true ->
        <<s>> = sep
        text = strip_bom(text)
        rows(text, s, 1, [])
    end
  end

  defp strip_bom(<<0xEF, 0xBB, 0xBF, rest::binary>>), do: rest
  defp strip_bom(text), do: text

  # One record at a time; `line` counts physical lines (quoted newlines included).
  defp rows(<<>>, _s, _line, acc), do: {:ok, Enum.reverse(acc)}

  defp rows(text, s, line, acc) do
    case record(text, s, line, [], []) do
      {:ok, [""], rest, next_line} -> rows(rest, s, next_line, acc)
      {:ok, fields, rest, next_line} -> rows(rest, s, next_line, [fields | acc])
      {:error, _} = err -> err
    end
  end

  # Parses one record; `field` is the current field as iodata (reversed pieces).
  defp record(<<?", rest::binary>>, s, line, [], fields) do
    case quoted(rest, line, line, []) do
      # Text after the closing quote, up to the next separator, is kept (as Python does).
      {:ok, value, rest, line} -> record(rest, s, line, [value], fields)
      {:error, _} = err -> err
    end
  end

  defp record(text, s, line, field, fields) do
    case text do
      <<>> ->
        {:ok, Enum.reverse([piece(field) | fields]), <<>>, line}

      <<"\r\n", rest::binary>> ->
        {:ok, Enum.reverse([piece(field) | fields]), rest, line + 1}

      <<c, rest::binary>> when c in [?\n, ?\r] ->
        {:ok, Enum.reverse([piece(field) | fields]), rest, line + 1}

      <<^s, rest::binary>> ->
        record(rest, s, line, [], [piece(field) | fields])

      _ ->
        {chunk, rest} = plain_run(text, s)
        record(rest, s, line, [chunk | field], fields)
    end
  end

  # The longest run of bytes without separator, quote-start handling or newline.
  defp plain_run(text, s) do
    n = plain_len(text, s, 0)
    <<chunk::binary-size(n), rest::binary>> = text
    {chunk, rest}
  end

  defp plain_len(text, s, n) do
    case text do
      <<^s, _::binary>> -> n
      <<c, _::binary>> when c in [?\n, ?\r] -> n
      <<_, rest::binary>> -> plain_len(rest, s, n + 1)
      <<>> -> n
    end
  end

  defp quoted(text, start, line, acc) do
    case :binary.match(text, "\"") do
      :nomatch ->
        {:error,
         Error.new(:csv_parse, "unterminated quoted field starting on line #{start}", %{
           line: start
         })}

      {pos, 1} ->
        <<chunk::binary-size(pos), ?", rest::binary>> = text
        line = line + count_newlines(chunk)

        case rest do
          <<?", rest::binary>> -> quoted(rest, start, line, [acc, chunk, ?"])
          _ -> {:ok, IO.iodata_to_binary([acc, chunk]), rest, line}
        end
    end
  end

  defp count_newlines(chunk) do
    # \r\n counts once, a lone \r or \n once.
    crlf = length(:binary.matches(chunk, "\r\n"))
    length(:binary.matches(chunk, "\n")) + length(:binary.matches(chunk, "\r")) - crlf
  end

  defp piece(field) when is_binary(field), do: field
  defp piece(field), do: field |> Enum.reverse() |> IO.iodata_to_binary()

  @doc """
  Encodes rows (lists of strings) as CSV text with `\\r\\n` line ends.

  ## Examples

      iex> DSPex.Dataset.CSV.encode([["a\\nb", "c"]])
      "\\"a\\nb\\",c\\r\\n"
  """
  @spec encode([[binary]], keyword) :: binary
  def encode(rows, opts \\ []) do
    sep = Keyword.get(opts, :separator, ",")

    rows
    |> Enum.map(fn row -> [Enum.map_join(row, sep, &quote_field(&1, sep)), "\r\n"] end)
    |> IO.iodata_to_binary()
  end

  defp quote_field(field, sep) do
    if String.contains?(field, [sep, "\"", "\r", "\n"]),
      do: "\"" <> String.replace(field, "\"", "\"\"") <> "\"",
      else: field
  end
end
