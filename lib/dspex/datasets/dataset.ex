defmodule DSPex.Dataset do
  @moduledoc """
  Loading, splitting and sampling `DSPex.Example` datasets (DSPy's `DataLoader`).

      {:ok, devset} = DSPex.Dataset.from_jsonl("dev.jsonl", inputs: [:question])
      {:ok, rows} = DSPex.Dataset.from_csv("dev.csv", inputs: [:question], fields: [:question, :answer])
      {train, test} = DSPex.Dataset.split(devset, train_size: 0.8, seed: 0)
      few = DSPex.Dataset.sample(devset, 20, seed: 1)

  ## Keys: atoms only for the names you give

  Keys in a file are untrusted text, and atoms are never garbage collected, so a loader
  never turns file text into new atoms. A key becomes an atom only when you named it
  in `inputs:` or `fields:`; every other key stays a string. So with
  `inputs: [:question]` on `{"question": "…", "answer": "…"}` the example is
  `%{question: "…", "answer" => "…"}` — name `:answer` in `fields:` to read it as
  `ex[:answer]` (metrics such as `DSPex.Metrics.answer_exact_match/3` read `:answer`).
  (DSPy's examples are keyed by strings; Elixir code reads atom keys, and
  `DSPex.Predict` accepts either for its input fields.)

  ## Options of the loaders

    * `:inputs` — atoms: the input keys (`DSPex.Example.with_inputs/2`); every record
      must have them;
    * `:fields` — atoms: keep only these keys (plus the inputs); every record must have
      them. Default: keep every key;
    * `:limit` — read at most this many records;
    * `:separator` — CSV only, default `","`.

  Loaders return `{:ok, [%DSPex.Example{}]}` or `{:error, %DSPex.Error{}}` (`:file`,
  `:json_decode`, `:csv_parse`, `:dataset`) whose `details` hold the `path` and 1-based
  `line`; the bang variants raise it. Whole files are read into memory (CSV) or
  streamed line by line (JSONL).

  ## Randomness

  `split/2` and `sample/3` draw with `:rand`'s `exsss` algorithm from an explicit
  seed (default 0), so the same seed gives the same examples on every run and node.
  The draws are not CPython's `random.Random`, so they pick different examples than
  DSPy's `train_test_split`/`sample` with the same seed.
  """

  alias DSPex.{Error, Example}

  @loader_opts [:inputs, :fields, :limit, :separator]

  @doc """
  Reads a JSON Lines file: one JSON object per line (blank lines are skipped).

  ## Examples

      iex> path = Path.join(System.tmp_dir!(), "dspex_doc_dev.jsonl")
      iex> File.write!(path, ~s({"question": "2+2?", "answer": "4"}\\n))
      iex> {:ok, [ex]} = DSPex.Dataset.from_jsonl(path, inputs: [:question], fields: [:answer])
      iex> {DSPex.Example.inputs(ex), ex[:answer]}
      {%{question: "2+2?"}, "4"}
  """
  @spec from_jsonl(Path.t(), keyword) :: {:ok, [Example.t()]} | {:error, Error.t()}
  def from_jsonl(path, opts \\ []) do
    spec = spec!(opts, [:inputs, :fields, :limit])

    try do
      path
      |> File.stream!([], :line)
      |> Stream.with_index(1)
      |> Enum.reduce_while({[], 0}, fn {line, n}, {acc, count} ->
        cond do
          spec.limit != nil and count >= spec.limit ->
            {:halt, {acc, count}}

          String.trim(line) == "" ->
            {:cont, {acc, count}}

          true ->
            case decode_line(line, spec, path, n) do
              {:ok, ex} -> {:cont, {[ex | acc], count + 1}}
              {:error, _} = err -> {:halt, err}
            end
        end
      end)
      |> case do
        {:error, _} = err -> err
        {acc, _} -> {:ok, Enum.reverse(acc)}
      end
    rescue
      e in File.Error -> {:error, file_error(path, e.reason)}
    end
  end

  defp decode_line(line, spec, path, n) do
    case DSPex.JSON.decode(line) do
      {:ok, %{} = obj} ->
        example(obj, spec, path, n)

      {:ok, _} ->
        {:error, dataset_error("line #{n} of #{path} is not a JSON object", path, n)}

      {:error, %Error{} = e} ->
        {:error,
         %{
           e
           | message: "line #{n} of #{path}: " <> e.message,
             details: Map.merge(e.details, %{path: path, line: n})
         }}
    end
  end

  @doc """
  Reads a CSV file whose first record is the header (see `DSPex.Dataset.CSV` for the
  dialect: quotes, embedded separators and newlines, byte-order mark). Values are
  strings.

  ## Examples

      iex> path = Path.join(System.tmp_dir!(), "dspex_doc_dev.csv")
      iex> File.write!(path, "question,answer\\n\\"Capital of France, in one word?\\",Paris\\n")
      iex> {:ok, [ex]} = DSPex.Dataset.from_csv(path, inputs: [:question], fields: [:answer])
      iex> ex[:question]
      "Capital of France, in one word?"
  """
  @spec from_csv(Path.t(), keyword) :: {:ok, [Example.t()]} | {:error, Error.t()}
  def from_csv(path, opts \\ []) do
    spec = spec!(opts, @loader_opts)
    csv_opts = if spec.separator, do: [separator: spec.separator], else: []

    with {:ok, text} <- read(path),
         {:ok, rows} <- csv_rows(text, csv_opts, path),
         {:ok, header, rows} <- header(rows, path) do
      rows = if spec.limit, do: Enum.take(rows, spec.limit), else: rows
      width = length(header)

      rows
      |> Enum.with_index(2)
      |> Enum.reduce_while([], fn {row, n}, acc ->
        if length(row) != width do
          {:halt,
           {:error,
            dataset_error(
              "record #{n} of #{path} has #{length(row)} fields, the header has #{width}",
              path,
              n
            )}}
        else
          case example(Enum.zip(header, row), spec, path, n) do
            {:ok, ex} -> {:cont, [ex | acc]}
            {:error, _} = err -> {:halt, err}
          end
        end
      end)
      |> case do
        {:error, _} = err -> err
        acc -> {:ok, Enum.reverse(acc)}
      end
    end
  end

  defp read(path) do
    case File.read(path) do
      {:ok, text} -> {:ok, text}
      {:error, reason} -> {:error, file_error(path, reason)}
    end
  end

  defp csv_rows(text, opts, path) do
    case DSPex.Dataset.CSV.parse(text, opts) do
      {:ok, rows} ->
        {:ok, rows}

      {:error, e} ->
        {:error,
         %{e | message: "#{path}: " <> e.message, details: Map.put(e.details, :path, path)}}
    end
  end

  defp header([], path), do: {:error, dataset_error("#{path} is empty (no header)", path, 1)}

  defp header([header | rows], path) do
    dup = header -- Enum.uniq(header)

    cond do
      dup != [] ->
        {:error,
         dataset_error("duplicate columns #{inspect(Enum.uniq(dup))} in #{path}", path, 1)}

      "" in header ->
        {:error, dataset_error("an empty column name in the header of #{path}", path, 1)}

      true ->
        {:ok, header, rows}
    end
  end

  @doc "Like `from_jsonl/2` but returns the examples or raises the `%DSPex.Error{}`."
  @spec from_jsonl!(Path.t(), keyword) :: [Example.t()]
  def from_jsonl!(path, opts \\ []), do: bang(from_jsonl(path, opts))

  @doc "Like `from_csv/2` but returns the examples or raises the `%DSPex.Error{}`."
  @spec from_csv!(Path.t(), keyword) :: [Example.t()]
  def from_csv!(path, opts \\ []), do: bang(from_csv(path, opts))

  defp bang({:ok, v}), do: v
  defp bang({:error, %Error{} = e}), do: raise(e)

  # --- records -> examples ----------------------------------------------------------

  defp spec!(opts, allowed) do
    opts = Keyword.validate!(opts, Enum.map(allowed, &{&1, nil}))
    inputs = atoms!(opts[:inputs] || [], :inputs)
    fields = if opts[:fields], do: atoms!(opts[:fields], :fields)

    limit = opts[:limit]

    unless is_nil(limit) or (is_integer(limit) and limit >= 0) do
      raise ArgumentError, "limit: must be a non-negative integer, got: #{inspect(limit)}"
    end

    named = Enum.uniq(inputs ++ (fields || []))

    %{
      inputs: inputs,
      keep: if(fields, do: named),
      # file text => the atom the caller gave for it
      atoms: Map.new(named, &{Atom.to_string(&1), &1}),
      limit: limit,
      separator: opts[:separator]
    }
  end

  defp atoms!(list, name) do
    if is_list(list) and Enum.all?(list, &is_atom/1) do
      list
    else
      raise ArgumentError, "#{name}: must be a list of atoms, got: #{inspect(list)}"
    end
  end

  defp example(pairs, spec, path, n) do
    fields = Map.new(pairs, fn {k, v} -> {Map.get(spec.atoms, k, k), v} end)
    fields = if spec.keep, do: Map.take(fields, spec.keep), else: fields

    case Enum.reject(spec.keep || spec.inputs, &Map.has_key?(fields, &1)) do
      [] ->
        ex = Example.new(fields)
        {:ok, if(spec.inputs == [], do: ex, else: Example.with_inputs(ex, spec.inputs))}

      missing ->
        {:error,
         dataset_error(
           "record on line #{n} of #{path} has no #{Enum.map_join(missing, ", ", &inspect(Atom.to_string(&1)))}",
           path,
           n
         )}
    end
  end

  defp dataset_error(msg, path, line), do: Error.new(:dataset, msg, %{path: path, line: line})

  defp file_error(path, reason) do
    Error.new(:file, "cannot read #{path}: #{:file.format_error(reason)}", %{
      path: path,
      reason: reason
    })
  end

  # --- split / sample -----------------------------------------------------------------

  @doc """
  Shuffles `examples` with `seed` and splits them into `{train, test}`.

  Options: `train_size` (a fraction in `(0, 1)` or a count; default `0.75`),
  `test_size` (same forms; default: the rest), `seed` (integer, default `0`),
  `shuffle` (default `true`; `false` keeps the order). Raises `ArgumentError` when the
  sizes do not fit.

  ## Examples

      iex> {train, test} = DSPex.Dataset.split(Enum.to_list(1..10), train_size: 0.8, seed: 7)
      iex> {length(train), length(test), Enum.sort(train ++ test) == Enum.to_list(1..10)}
      {8, 2, true}
      iex> DSPex.Dataset.split(Enum.to_list(1..10), train_size: 0.8, seed: 7) == {train, test}
      true
      iex> DSPex.Dataset.split([1, 2, 3, 4], train_size: 3, shuffle: false)
      {[1, 2, 3], [4]}
  """
  @spec split([term], keyword) :: {[term], [term]}
  def split(examples, opts \\ []) when is_list(examples) do
    opts = Keyword.validate!(opts, train_size: 0.75, test_size: nil, seed: 0, shuffle: true)
    n = length(examples)
    train = size!(opts[:train_size], n, :train_size)
    test = if opts[:test_size], do: size!(opts[:test_size], n, :test_size), else: n - train

    if train + test > n do
      raise ArgumentError,
            "train_size + test_size (#{train} + #{test}) is more than the #{n} examples"
    end

    list = if opts[:shuffle], do: shuffle(examples, seed!(opts[:seed])), else: examples
    {train_part, rest} = Enum.split(list, train)
    {train_part, Enum.take(rest, test)}
  end

  defp size!(f, n, _name) when is_float(f) and f > 0.0 and f < 1.0, do: trunc(f * n)
  defp size!(k, n, _name) when is_integer(k) and k >= 0 and k <= n, do: k

  defp size!(other, n, name) do
    raise ArgumentError,
          "#{name}: must be a fraction in (0, 1) or a count in 0..#{n}, got: #{inspect(other)}"
  end

  @doc """
  `n` examples drawn without replacement with `seed` (option, default `0`), in draw
  order. Raises `ArgumentError` when `n` is more than there are.

  ## Examples

      iex> s = DSPex.Dataset.sample(Enum.to_list(1..100), 5, seed: 3)
      iex> {length(s), length(Enum.uniq(s)), s == DSPex.Dataset.sample(Enum.to_list(1..100), 5, seed: 3)}
      {5, 5, true}
  """
  @spec sample([term], non_neg_integer, keyword) :: [term]
  def sample(examples, n, opts \\ []) when is_list(examples) do
    opts = Keyword.validate!(opts, seed: 0)
    total = length(examples)

    unless is_integer(n) and n >= 0 and n <= total do
      raise ArgumentError, "cannot sample #{inspect(n)} of #{total} examples"
    end

    examples |> shuffle(seed!(opts[:seed])) |> Enum.take(n)
  end

  defp seed!(seed) when is_integer(seed), do: seed
  defp seed!(other), do: raise(ArgumentError, "seed: must be an integer, got: #{inspect(other)}")

  # Every example gets a uniform key from an explicit :rand state (no process
  # dictionary), then they are sorted by key: a uniform shuffle in O(n log n).
  defp shuffle(list, seed) do
    {keyed, _} =
      Enum.map_reduce(list, :rand.seed_s(:exsss, seed), fn x, st ->
        {key, st} = :rand.uniform_s(st)
        {{key, x}, st}
      end)

    keyed |> Enum.sort_by(&elem(&1, 0)) |> Enum.map(&elem(&1, 1))
  end
end
