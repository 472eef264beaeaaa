defmodule DSPex.Evaluate.Table do
  @moduledoc """
  Evaluate's result rows: the table printed with `display_table:` and the files
  written with `save_as_csv:` / `save_as_json:`.

  One row per result, built as DSPy builds it: the example's fields, then the
  prediction's fields (a key in both becomes `example_<key>` and `pred_<key>`), then a
  column named after the metric holding its score. A prediction that is not a map
  gives one `prediction` column. Keys are strings; example fields come in key order,
  prediction fields in their output order.

  The printed table looks like the pandas frame DSPy prints on a console: a row index,
  right-aligned columns, cells cut to 25 words (DSPy) and 50 characters (pandas'
  `max_colwidth`) with `...`, the metric as `✔️ [0.750]` (floats, 3 decimals) or
  `✔️ [true]`. Newlines in cells are shown as `\\n` so rows stay on one line. With a
  row limit the rest is announced as `... 7 more rows not displayed ...`.

  ## Examples

      iex> ex = DSPex.Example.new(question: "2+2?", answer: "4")
      iex> pred = DSPex.Prediction.new(answer: "4")
      iex> DSPex.Evaluate.Table.rows([{ex, pred, true}], "exact_match")
      [[{"example_answer", "4"}, {"question", "2+2?"}, {"pred_answer", "4"}, {"exact_match", true}]]
  """

  alias DSPex.Evaluate.Score

  @type row :: [{binary, term}]

  @doc """
  The rows of `results` (`[{example, prediction, score}]`), see the module doc.
  """
  @spec rows([{DSPex.Example.t(), term, term}], binary) :: [row]
  def rows(results, metric_name) do
    Enum.map(results, fn {ex, pred, score} -> row(ex, pred) ++ [{metric_name, score}] end)
  end

  defp row(%DSPex.Example{} = ex, pred) do
    ex_pairs = ex |> DSPex.Example.to_map() |> Enum.sort_by(&elem(&1, 0)) |> stringify()

    case pred_pairs(pred) do
      nil ->
        ex_pairs ++ [{"prediction", pred}]

      pred_pairs ->
        ex_keys = MapSet.new(ex_pairs, &elem(&1, 0))
        pred_keys = MapSet.new(pred_pairs, &elem(&1, 0))

        Enum.map(ex_pairs, fn {k, v} ->
          if MapSet.member?(pred_keys, k), do: {"example_" <> k, v}, else: {k, v}
        end) ++
          Enum.map(pred_pairs, fn {k, v} ->
            if MapSet.member?(ex_keys, k), do: {"pred_" <> k, v}, else: {k, v}
          end)
    end
  end

  defp pred_pairs(%DSPex.Prediction{} = p), do: p |> DSPex.Prediction.to_list() |> stringify()

  defp pred_pairs(%DSPex.Example{} = e),
    do: e |> DSPex.Example.to_map() |> Enum.sort() |> stringify()

  defp pred_pairs(%_{}), do: nil
  defp pred_pairs(%{} = m), do: m |> Enum.sort_by(&elem(&1, 0)) |> stringify()
  defp pred_pairs(_), do: nil

  defp stringify(pairs), do: Enum.map(pairs, fn {k, v} -> {key(k), v} end)

  defp key(k) when is_atom(k), do: Atom.to_string(k)
  defp key(k) when is_binary(k), do: k
  defp key(k), do: inspect(k)

  @doc """
  The printed table for `rows`, showing at most `limit` rows (`nil`: all).

  ## Examples

      iex> rows = [[{"q", "a"}, {"m", 0.5}], [{"q", "bb"}, {"m", 1.0}]]
      iex> DSPex.Evaluate.Table.render(rows, "m", 1) |> IO.iodata_to_binary() |> String.split("\\n")
      ["   q           m", "0  a  ✔️ [0.500]", "... 1 more rows not displayed ...", ""]
  """
  @spec render([row], binary, non_neg_integer | nil) :: iodata
  def render(rows, metric_name, limit \\ nil) do
    shown = if limit, do: Enum.take(rows, limit), else: rows
    hidden = length(rows) - length(shown)
    columns = columns(shown)

    cells =
      Enum.map(shown, fn row ->
        map = Map.new(row)

        Enum.map(columns, fn c ->
          case Map.fetch(map, c) do
            {:ok, v} when c == metric_name -> metric_cell(v)
            {:ok, v} -> cell(v)
            :error -> "NaN"
          end
        end)
      end)

    index = Enum.map(0..(length(shown) - 1)//1, &Integer.to_string/1)
    index_w = index |> Enum.map(&width/1) |> Enum.max(fn -> 0 end)

    widths =
      columns
      |> Enum.with_index()
      |> Enum.map(fn {c, i} ->
        Enum.reduce(cells, width(c), fn row, w -> max(w, width(Enum.at(row, i))) end)
      end)

    header = [String.duplicate(" ", index_w) | pad_all(columns, widths)]

    body =
      Enum.zip(index, cells)
      |> Enum.map(fn {i, row} -> [pad_right(i, index_w) | pad_all(row, widths)] end)

    lines = Enum.map([header | body], &Enum.join(&1, "  "))
    more = if hidden > 0, do: ["... #{hidden} more rows not displayed ..."], else: []
    Enum.map(lines ++ more, &[&1, "\n"])
  end

  defp columns(rows) do
    rows
    |> Enum.flat_map(fn row -> Enum.map(row, &elem(&1, 0)) end)
    |> Enum.uniq()
  end

  defp pad_all(values, widths), do: Enum.zip_with(values, widths, &pad_left/2)

  defp pad_left(s, w), do: String.duplicate(" ", max(w - width(s), 0)) <> s
  defp pad_right(s, w), do: s <> String.duplicate(" ", max(w - width(s), 0))

  defp metric_cell(v) when is_float(v), do: "✔️ [#{Score.format_fixed(v, 3)}]"
  defp metric_cell(nil), do: ""
  defp metric_cell(v), do: "✔️ [#{text(v)}]"

  # DSPy cuts a cell to 25 words; pandas then to 50 characters.
  defp cell(v) do
    s = text(v)
    words = String.split(s)
    s = if length(words) > 25, do: Enum.join(Enum.take(words, 25), " ") <> "...", else: s
    s = String.replace(s, ["\r\n", "\n", "\r"], "\\n")
    if String.length(s) > 50, do: String.slice(s, 0, 47) <> "...", else: s
  end

  defp text(v) when is_binary(v), do: v
  defp text(v) when is_float(v), do: Score.py_str(v)
  defp text(v) when is_integer(v), do: Integer.to_string(v)
  defp text(%DSPex.Prediction{} = p), do: inspect(p)
  defp text(v), do: inspect(v, limit: 20, printable_limit: 200)

  # Terminal columns of a cell: one per grapheme, two for wide (East Asian) and emoji
  # presentation graphemes, so the ✔️ column lines up.
  defp width(s) do
    s
    |> String.graphemes()
    |> Enum.reduce(0, fn g, acc -> acc + grapheme_width(g) end)
  end

  defp grapheme_width(g) do
    case String.to_charlist(g) do
      [c | rest] ->
        cond do
          0xFE0F in rest -> 2
          c >= 0x1100 and wide?(c) -> 2
          true -> 1
        end

      [] ->
        0
    end
  end

  defp wide?(c) do
    c in 0x1100..0x115F or c in 0x2E80..0xA4CF or c in 0xAC00..0xD7A3 or c in 0xF900..0xFAFF or
      c in 0xFE30..0xFE4F or c in 0xFF00..0xFF60 or c in 0xFFE0..0xFFE6 or c in 0x1F300..0x1F64F or
      c in 0x1F900..0x1F9FF or c in 0x20000..0x3FFFD
  end

  # --- files ----------------------------------------------------------------------------

  @doc """
  Writes `rows` as CSV (untruncated): a header of every column in first-seen order,
  values as text (`True`/`False` for booleans and an empty cell for `nil`, as Python's
  `csv` writes them; lists and maps as JSON).

  ## Examples

      iex> path = Path.join(System.tmp_dir!(), "dspex_doc_results.csv")
      iex> :ok = DSPex.Evaluate.Table.save_csv([[{"q", "a, b"}, {"m", true}]], path)
      iex> File.read!(path)
      "q,m\\r\\n\\"a, b\\",True\\r\\n"
  """
  @spec save_csv([row], Path.t()) :: :ok | {:error, DSPex.Error.t()}
  def save_csv(rows, path) do
    columns = columns(rows)

    lines =
      Enum.map(rows, fn row ->
        map = Map.new(row)
        Enum.map(columns, fn c -> csv_value(Map.get(map, c)) end)
      end)

    write(path, DSPex.Dataset.CSV.encode([columns | lines]))
  end

  defp csv_value(nil), do: ""
  defp csv_value(true), do: "True"
  defp csv_value(false), do: "False"
  defp csv_value(v) when is_binary(v), do: v
  defp csv_value(v) when is_number(v), do: text(v)
  defp csv_value(v), do: json_text(v)

  @doc """
  Writes `rows` as a JSON array of objects (keys in column order, values untruncated;
  predictions and examples as their field maps, other terms JSON cannot hold as their
  `inspect/1` text).

  ## Examples

      iex> path = Path.join(System.tmp_dir!(), "dspex_doc_results.json")
      iex> :ok = DSPex.Evaluate.Table.save_json([[{"q", "a"}, {"m", 0.5}]], path)
      iex> File.read!(path)
      ~s([{"q":"a","m":0.5}])
  """
  @spec save_json([row], Path.t()) :: :ok | {:error, DSPex.Error.t()}
  def save_json(rows, path) do
    doc =
      Enum.map(rows, fn row -> {:ordered, Enum.map(row, fn {k, v} -> {k, jsonable(v)} end)} end)

    write(path, DSPex.JSON.encode!(doc))
  end

  defp json_text(v), do: DSPex.JSON.encode!(jsonable(v))

  defp jsonable(v) when is_binary(v) do
    if String.valid?(v), do: v, else: inspect(v)
  end

  defp jsonable(v) when is_number(v) or is_boolean(v) or is_nil(v), do: v
  defp jsonable(%DSPex.Prediction{} = p), do: jsonable(DSPex.Prediction.fields(p))
  defp jsonable(%DSPex.Example{} = e), do: jsonable(DSPex.Example.to_map(e))
  defp jsonable(%_{} = s), do: inspect(s)

  defp jsonable(%{} = m),
    do:
      Map.new(m, fn {k, v} ->
        {if(is_atom(k) or is_binary(k), do: k, else: inspect(k)), jsonable(v)}
      end)

  defp jsonable(l) when is_list(l) do
    if List.improper?(l), do: inspect(l), else: Enum.map(l, &jsonable/1)
  end

  defp jsonable(a) when is_atom(a), do: Atom.to_string(a)
  defp jsonable(other), do: inspect(other)

  defp write(path, data) do
    case File.write(path, data) do
      :ok ->
        :ok

      {:error, reason} ->
        {:error,
         DSPex.Error.new(:file, "cannot write #{path}: #{:file.format_error(reason)}", %{
           path: path,
           reason: reason
         })}
    end
  end
end
