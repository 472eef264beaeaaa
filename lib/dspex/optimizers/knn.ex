defmodule DSPex.KNN do
  @moduledoc ~S"""
  The k training examples most similar to some inputs, like `dspy.KNN`: embeddings
  through `DSPex.Embedder`, nearest-neighbour search in C over one packed matrix.

      knn = DSPex.KNN.new!(trainset, k: 3, embedder: DSPex.Embedder.new("openai/text-embedding-3-small"))
      {:ok, similar} = DSPex.KNN.neighbors(knn, question: "What is the capital of Belgium?")

  ## As DSPy does it

    * Each training example becomes the text `"key: value | key: value"` of its input
      fields (values as Python's `str()` prints them) and is embedded once, by `new/2`,
      into a float32 matrix.
    * A query's text is built the same way from the given inputs; its scores are the dot
      products with every row, and the result is `scores.argsort()[-k:][::-1]` — the
      k best, best first, **with numpy's tie order** (see `include/dspex/optim/knn.h`:
      numpy's portable introsort, bit for bit; on x86 CPUs with AVX2/AVX-512 numpy's
      own tie order varies with the CPU).

  Field order: DSPy walks an example's fields in insertion order; a `DSPex.Example` is a
  map, so its input fields are taken in `input_keys` order (as given to
  `DSPex.Example.with_inputs/2`). Query inputs given as a keyword list keep their order;
  a map's keys follow the training examples' input keys, then any others sorted.

  The search is one NIF call (`knn_search`), on a dirty scheduler above 2^18
  multiply-adds; `neighbors_batch/2` embeds and searches many queries in one call each.

  ## Examples

      iex> vecs = %{"a" => [1.0, 0.0], "b" => [0.0, 1.0], "ab" => [1.0, 1.0]}
      iex> emb = DSPex.Embedder.new(fn texts -> Enum.map(texts, fn "x: " <> k -> vecs[k] end) end)
      iex> trainset = for x <- ["a", "b", "ab"], do: DSPex.Example.new(x: x, y: 1) |> DSPex.Example.with_inputs([:x])
      iex> knn = DSPex.KNN.new!(trainset, k: 2, embedder: emb)
      iex> {:ok, near} = DSPex.KNN.neighbors(knn, x: "a")
      iex> Enum.map(near, & &1[:x])
      ["ab", "a"]
  """

  alias DSPex.{Error, Example}
  alias DSPex.Signature.Field

  defstruct k: nil, trainset: [], embedder: nil, keys: [], dim: 0, matrix: <<>>

  @type t :: %__MODULE__{
          k: pos_integer,
          trainset: [Example.t()],
          embedder: DSPex.Embedder.t(),
          keys: [atom | binary],
          dim: non_neg_integer,
          matrix: binary
        }

  @options DSPex.Options.schema!(
             k: [type: :pos_integer, required: true, doc: "neighbours per query."],
             embedder: [
               type: {:struct, DSPex.Embedder},
               required: true,
               doc: "embeds the texts (DSPy's `vectorizer`)."
             ]
           )

  @doc """
  The option schema of `new/2`.
  """
  @spec options_schema() :: DSPex.Options.schema()
  def options_schema, do: @options

  @doc """
  Embeds the trainset (one `DSPex.Embedder.embed/2` call) and returns `{:ok, knn}`, or
  `{:error, %DSPex.Error{}}` when the embedder fails or returns vectors of different
  sizes.

  ## Options

  #{DSPex.Options.docs(@options)}
  """
  @spec new([Example.t()], keyword) :: {:ok, t} | {:error, Error.t()}
  def new(trainset, opts) do
    opts = DSPex.Options.validate!(opts, @options, "DSPex.KNN.new/2")
    DSPex.Optimizers.Shared.check_trainset!(trainset, "DSPex.KNN", true)
    keys = trainset |> Enum.flat_map(& &1.input_keys) |> Enum.uniq()
    texts = Enum.map(trainset, &example_text/1)

    with {:ok, vectors} <- embed(opts[:embedder], texts),
         {:ok, dim} <- dimension(vectors, nil) do
      {:ok,
       %__MODULE__{
         k: opts[:k],
         trainset: trainset,
         embedder: opts[:embedder],
         keys: keys,
         dim: dim,
         matrix: pack(vectors)
       }}
    end
  end

  @doc """
  Like `new/2` but returns the struct or raises the `%DSPex.Error{}`.
  """
  @spec new!([Example.t()], keyword) :: t
  def new!(trainset, opts) do
    case new(trainset, opts) do
      {:ok, knn} -> knn
      {:error, e} -> raise e
    end
  end

  @doc """
  The `k` training examples nearest to `inputs` (a keyword list or map), best first.
  """
  @spec neighbors(t, keyword | map) :: {:ok, [Example.t()]} | {:error, Error.t()}
  def neighbors(%__MODULE__{} = knn, inputs) do
    with {:ok, [near]} <- neighbors_batch(knn, [inputs]), do: {:ok, near}
  end

  @doc """
  `neighbors/2` for many queries: one embedder call and one search for all of them.

  ## Examples

      iex> emb = DSPex.Embedder.new(fn texts -> Enum.map(texts, &[byte_size(&1) * 1.0]) end)
      iex> trainset = for x <- ["a", "bb"], do: DSPex.Example.new(x: x) |> DSPex.Example.with_inputs([:x])
      iex> knn = DSPex.KNN.new!(trainset, k: 1, embedder: emb)
      iex> {:ok, [[a], [b]]} = DSPex.KNN.neighbors_batch(knn, [[x: "z"], [x: "zz"]])
      iex> {a[:x], b[:x]}
      {"bb", "bb"}
  """
  @spec neighbors_batch(t, [keyword | map]) :: {:ok, [[Example.t()]]} | {:error, Error.t()}
  def neighbors_batch(%__MODULE__{} = knn, queries) when is_list(queries) do
    texts = Enum.map(queries, &query_text(&1, knn.keys))

    with {:ok, vectors} <- embed(knn.embedder, texts),
         {:ok, _} <- dimension(vectors, knn.dim) do
      train = List.to_tuple(knn.trainset)

      hits =
        if knn.trainset == [] do
          Enum.map(queries, fn _ -> [] end)
        else
          DSPex.NIF.guard(fn ->
            DSPex.NIF.knn_search(knn.matrix, knn.dim, pack(vectors), knn.k)
          end)
        end

      {:ok, Enum.map(hits, fn row -> Enum.map(row, fn {i, _score} -> elem(train, i) end) end)}
    end
  end

  @doc """
  The ranking itself: for packed float32 `rows` (`dim` values each) and query vectors,
  the `k` best `{row_index, score}` per query, best first (numpy's tie order).

  ## Examples

      iex> rows = DSPex.KNN.pack([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
      iex> DSPex.KNN.search(rows, 2, [[1.0, 0.0]], 2)
      [[{2, 1.0}, {0, 1.0}]]
  """
  @spec search(binary, pos_integer, [[number]], pos_integer) :: [[{non_neg_integer, float}]]
  def search(rows, dim, queries, k) when is_binary(rows) and is_list(queries) do
    DSPex.NIF.guard(fn -> DSPex.NIF.knn_search(rows, dim, pack(queries), k) end)
  end

  @doc """
  Vectors as one binary of native-endian float32 values, row after row (numpy's
  `astype(float32)`: numbers beyond float32's range become infinities).

  ## Examples

      iex> byte_size(DSPex.KNN.pack([[1, 2.5], [0, -1]]))
      16
  """
  @spec pack([[number]]) :: binary
  def pack(vectors) do
    for v <- vectors, x <- v, into: <<>>, do: f32(x)
  end

  # Rounds to the nearest float32; beyond its range, an infinity (as numpy casts).
  defp f32(x) when is_number(x), do: <<x * 1.0::float-32-native>>

  @doc """
  The text DSPy embeds for a training example: its input fields as `"key: value"`
  joined by `" | "`.

  ## Examples

      iex> ex = DSPex.Example.new(question: "Why?", n: 3, answer: "x") |> DSPex.Example.with_inputs([:question, :n])
      iex> DSPex.KNN.example_text(ex)
      "question: Why? | n: 3"
  """
  @spec example_text(Example.t()) :: binary
  def example_text(%Example{fields: f, input_keys: keys}) do
    keys
    |> Enum.filter(&(Map.has_key?(f, &1) and not dspy_key?(&1)))
    |> Enum.map_join(" | ", &"#{&1}: #{py_str(Map.fetch!(f, &1))}")
  end

  @doc """
  The text DSPy embeds for a query (`"key: value | ..."`, see the module doc for the
  order).

  ## Examples

      iex> DSPex.KNN.query_text(%{b: 2, question: "Why?"}, [:question])
      "question: Why? | b: 2"
  """
  @spec query_text(keyword | map, [atom | binary]) :: binary
  def query_text(inputs, keys) when is_list(inputs) do
    if Keyword.keyword?(inputs), do: join(inputs), else: query_text(Map.new(inputs), keys)
  end

  def query_text(inputs, keys) when is_map(inputs) do
    known = Enum.filter(keys, &Map.has_key?(inputs, &1))
    rest = inputs |> Map.keys() |> Kernel.--(known) |> Enum.sort_by(&to_string/1)
    join(for k <- known ++ rest, do: {k, Map.fetch!(inputs, k)})
  end

  defp join(pairs), do: Enum.map_join(pairs, " | ", fn {k, v} -> "#{k}: #{py_str(v)}" end)

  defp dspy_key?(k), do: String.starts_with?(to_string(k), "dspy_")

  defp embed(_embedder, []), do: {:ok, []}

  defp embed(embedder, texts) do
    case DSPex.Embedder.embed(embedder, texts) do
      {:ok, vectors} -> {:ok, vectors}
      {:error, %Error{}} = err -> err
    end
  end

  defp dimension([], dim), do: {:ok, dim || 0}

  defp dimension([first | _] = vectors, expected) do
    dim = expected || length(first)

    cond do
      dim == 0 ->
        {:error, Error.new(:embedder, "the embedder returned empty vectors")}

      Enum.any?(vectors, &(length(&1) != dim)) ->
        {:error,
         Error.new(
           :embedder,
           "the embedder returned vectors of different sizes (expected #{dim} values each)",
           %{dim: dim}
         )}

      true ->
        {:ok, dim}
    end
  end

  # Python's str() of a value: scalars as DSPex.Signature.Field.py_str/1, containers as
  # their repr.
  defp py_str(v) when is_binary(v) or is_number(v) or is_boolean(v) or is_nil(v),
    do: Field.py_str(v)

  defp py_str(v), do: py_repr(v)

  defp py_repr(v) when is_binary(v), do: str_repr(v)
  defp py_repr(v) when is_number(v) or is_boolean(v) or is_nil(v), do: Field.py_str(v)
  defp py_repr(v) when is_atom(v), do: str_repr(Atom.to_string(v))
  defp py_repr(l) when is_list(l), do: "[" <> Enum.map_join(l, ", ", &py_repr/1) <> "]"
  defp py_repr({x}), do: "(" <> py_repr(x) <> ",)"

  defp py_repr(t) when is_tuple(t),
    do: "(" <> (t |> Tuple.to_list() |> Enum.map_join(", ", &py_repr/1)) <> ")"

  defp py_repr(%_{} = s), do: inspect(s)

  defp py_repr(m) when is_map(m),
    do: "{" <> Enum.map_join(m, ", ", fn {k, v} -> py_repr(k) <> ": " <> py_repr(v) end) <> "}"

  defp py_repr(other), do: inspect(other)

  # Python's repr of a str: single quotes unless the text has a ' and no ".
  defp str_repr(s) do
    q = if String.contains?(s, "'") and not String.contains?(s, "\""), do: "\"", else: "'"

    body =
      for <<c::utf8 <- s>>, into: "" do
        case c do
          ?\\ -> "\\\\"
          ?\n -> "\\n"
          ?\r -> "\\r"
          ?\t -> "\\t"
          c when c < 0x20 or c == 0x7F -> "\\x" <> hex2(c)
          c -> if <<c::utf8>> == q, do: "\\" <> q, else: <<c::utf8>>
        end
      end

    q <> body <> q
  end

  defp hex2(c), do: c |> Integer.to_string(16) |> String.downcase() |> String.pad_leading(2, "0")
end
