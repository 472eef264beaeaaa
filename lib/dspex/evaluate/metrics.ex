defmodule DSPex.Metrics do
  @moduledoc """
  DSPy's answer metrics (`dspy.evaluate.metrics`), with DSPy's numbers on the same
  strings: `normalize_text/1`, `em/2`, `f1/2`, `hotpot_f1/2`, `precision/2`,
  `passage_match/2`, the Evaluate-ready `answer_exact_match/3`,
  `answer_passage_match/3` and `exact_match/2`, and `batch/3`, which scores whole
  lists in one dirty-scheduler NIF call.

  ## Same strings, same numbers

  Normalization is Python's, not Elixir's (`String.downcase/1` has no final sigma,
  `String.split/1` does not split on U+00A0, and OTP's regex tables are Unicode 7):

    1. `unicodedata.normalize("NFD", s)` (Unicode 14.0, Python 3.11);
    2. `str.lower()` — full mappings (`İ` → `i̇`) and the Greek final-sigma rule;
    3. the 32 ASCII characters of `string.punctuation` are deleted (Unicode punctuation
       such as `—` or `’` stays);
    4. `re.sub(r"\\b(a|an|the)\\b", " ", s)` with Python's `\\w` (so `Thé` → `\\u0301`:
       after NFD the accent is not a word character);
    5. `" ".join(s.split())` with Python's whitespace set.

  The work is done in C (`c_src/core/metrics/`) with tables generated from Python's own
  `unicodedata`, `re`, `str` and DSPy's `regex` tokenizer (`tools/gen_unicode_tables.py`).
  F1 and precision are computed operation for operation as DSPy does, so the floats are
  bit-identical: `f1("Eiffel Tower is in Paris", "Paris")` is `0.33333333333333337`, as
  in Python. The golden tests (`test/fixtures/metrics/`, generated with DSPy 3.3.1)
  require exact equality on thousands of cases and on every code point.

  Differences from DSPy, all on edge cases:

    * `f1/2`, `hotpot_f1/2` and `precision/2` always return a float (DSPy returns the
      integer `0` when no token overlaps; `0.0 == 0` in Elixir);
    * the "Rare edge case" notice DSPy prints for two empty token lists is not printed;
    * `answer_passage_match/3` with a string `context` treats it as one passage (DSPy
      iterates over its characters).

  Strings must be valid UTF-8 (Python strings always are): invalid input raises
  `ArgumentError` naming the byte offset (`batch/3` returns an error instead).
  One string may be at most 16 MiB. Small single calls run on the calling scheduler
  (well under 1 ms); larger ones and every `batch/3` run on a dirty CPU scheduler.

  Telemetry: `batch/3` emits the span `[:dspex, :metrics, :batch]`. The single-pair
  functions emit none — they take microseconds and run once per example inside
  Evaluate and the optimizers, which emit their own per-example events.

  ## As Evaluate metrics

  A metric takes `(example, prediction)` or `(example, prediction, trace)` and returns a
  boolean or a number:

      DSPex.Evaluate.run(program, devset, metric: &DSPex.Metrics.answer_exact_match/2)
      DSPex.Evaluate.run(program, devset, metric: &DSPex.Metrics.answer_exact_match(&1, &2, frac: 0.8))

  `batch_examples/3` scores a whole devset at once for these built-in metrics.
  The LM-judged metrics are `DSPex.Metrics.SemanticF1` and
  `DSPex.Metrics.CompleteAndGrounded`.

  ## Examples

      iex> DSPex.Metrics.normalize_text("The,  Eiffel  Tower!")
      "eiffel tower"
      iex> DSPex.Metrics.em("The Eiffel Tower", ["Eiffel Tower", "Louvre"])
      true
      iex> DSPex.Metrics.f1("Eiffel Tower is in Paris", "Paris")
      0.33333333333333337
  """

  alias DSPex.NIF

  @typedoc "One gold answer or a non-empty list of them (the score is the max over the list)."
  @type golds :: String.t() | [String.t()]

  @typedoc "A built-in metric for `batch/3`."
  @type metric :: :em | :f1 | :hotpot_f1 | :precision | :passage_match | :normalize

  @metrics [:em, :f1, :hotpot_f1, :precision, :passage_match, :normalize]

  @doc """
  DSPy's `normalize_text`: NFD, lowercase, drop ASCII punctuation, drop the articles
  `a`/`an`/`the`, collapse whitespace. Raises `ArgumentError` on invalid UTF-8.

  ## Examples

      iex> DSPex.Metrics.normalize_text("No_answer!")
      "noanswer"
      iex> DSPex.Metrics.normalize_text("ΟΔΟΣ ΣΑΣ")
      "οδος σας"
      iex> DSPex.Metrics.normalize_text("The The")
      ""
  """
  @spec normalize_text(String.t()) :: String.t()
  def normalize_text(text) when is_binary(text) do
    text |> NIF.metrics_normalize() |> unwrap!()
  end

  def normalize_text(other) do
    raise ArgumentError, "normalize_text/1 expects a string, got: #{inspect(other)}"
  end

  @doc """
  Exact match after normalization (DSPy's `EM` / `em_score`): `true` when the
  prediction equals the gold, or any of the golds.

  ## Examples

      iex> DSPex.Metrics.em("paris", "Paris")
      true
      iex> DSPex.Metrics.em("paris", ["Paris, France"])
      false
  """
  @spec em(String.t(), golds) :: boolean
  def em(prediction, golds), do: score!(:em, prediction, golds)

  @doc """
  Token-level F1 after normalization (DSPy's `F1` / `f1_score`), the max over the golds.
  `0.0` when no token overlaps.

  ## Examples

      iex> DSPex.Metrics.f1("the Eiffel Tower", "Eiffel Tower")
      1.0
      iex> DSPex.Metrics.f1("a b c", ["x", "b c d e"])
      0.6666666666666666
  """
  @spec f1(String.t(), golds) :: float
  def f1(prediction, golds), do: score!(:f1, prediction, golds)

  @doc """
  HotPotQA F1 (DSPy's `HotPotF1`): like `f1/2`, but when either normalized side is
  `yes`, `no` or `noanswer` and the two differ, the score is `0.0`.

  ## Examples

      iex> DSPex.Metrics.hotpot_f1("yes", "no")
      0.0
      iex> DSPex.Metrics.hotpot_f1("no-answer", "No_answer!")
      1.0
  """
  @spec hotpot_f1(String.t(), golds) :: float
  def hotpot_f1(prediction, golds), do: score!(:hotpot_f1, prediction, golds)

  @doc """
  Token precision after normalization (DSPy's `precision_score`), the max over the
  golds.

  ## Examples

      iex> DSPex.Metrics.precision("eiffel tower in paris", "Eiffel Tower")
      0.5
  """
  @spec precision(String.t(), golds) :: float
  def precision(prediction, golds), do: score!(:precision, prediction, golds)

  @doc """
  DSPy's passage match (`_passage_match`): `true` when some answer's tokens occur, as a
  contiguous run, in the tokens of the passage (or of one of the passages). Tokens are
  DPR's: runs of letters, digits and marks, or single other characters — so `york`
  does not match `Yorkshire`. An answer with no tokens (`""`, `"the"`) matches any
  passage. An empty list of answers matches nothing.

  ## Examples

      iex> DSPex.Metrics.passage_match("The city of York is old.", "york")
      true
      iex> DSPex.Metrics.passage_match(["Yorkshire pudding", "Leeds"], ["york", "leeds"])
      true
      iex> DSPex.Metrics.passage_match("Yorkshire pudding", "york")
      false
  """
  @spec passage_match(String.t() | [String.t()], golds) :: boolean
  def passage_match(passages, golds), do: score!(:passage_match, passages, golds)

  @doc """
  DSPy's `answer_exact_match(example, pred, trace=None, frac=1.0)`: compares
  `prediction.answer` with `example.answer` (a string or a list of strings). With
  `frac: f` below 1.0 the test is `f1 >= f` instead of exact match. `trace` is ignored;
  the options may also be passed in its place (`answer_exact_match(ex, pred, frac: 0.5)`).

  ## Examples

      iex> ex = DSPex.Example.new(question: "?", answer: ["Eiffel Tower", "Louvre"])
      iex> pred = DSPex.Prediction.new(answer: "The Eiffel Tower")
      iex> DSPex.Metrics.answer_exact_match(ex, pred)
      true
      iex> DSPex.Metrics.answer_exact_match(ex, DSPex.Prediction.new(answer: "Eiffel"), frac: 0.5)
      true
  """
  @spec answer_exact_match(DSPex.Example.t() | map, DSPex.Prediction.t() | map, term, keyword) ::
          boolean
  def answer_exact_match(example, prediction, trace \\ nil, opts \\ [])

  def answer_exact_match(example, prediction, [{:frac, _} | _] = opts, []),
    do: answer_exact_match(example, prediction, nil, opts)

  def answer_exact_match(example, prediction, _trace, opts) do
    frac = Keyword.get(opts, :frac, 1.0)
    answers = answers!(example)
    answer = field!(prediction, :answer, "prediction")

    if frac >= 1.0, do: em(answer, answers), else: f1(answer, answers) >= frac
  end

  @doc """
  DSPy's `answer_passage_match(example, pred, trace=None)`: `true` when one of the
  passages in `prediction.context` contains `example.answer` (or one of the answers),
  see `passage_match/2`.

  ## Examples

      iex> ex = DSPex.Example.new(answer: "Eiffel Tower")
      iex> pred = DSPex.Prediction.new(context: ["The Eiffel Tower is in Paris.", "..."])
      iex> DSPex.Metrics.answer_passage_match(ex, pred)
      true
  """
  @spec answer_passage_match(DSPex.Example.t() | map, DSPex.Prediction.t() | map, term) :: boolean
  def answer_passage_match(example, prediction, _trace \\ nil) do
    passage_match(field!(prediction, :context, "prediction"), answers!(example))
  end

  @doc """
  `answer_exact_match/3` under the name the design card uses:
  `metric: &DSPex.Metrics.exact_match/2`.

  ## Examples

      iex> DSPex.Metrics.exact_match(%{answer: "Paris"}, %{answer: "paris!"})
      true
  """
  @spec exact_match(DSPex.Example.t() | map, DSPex.Prediction.t() | map, term) :: boolean
  def exact_match(example, prediction, trace \\ nil),
    do: answer_exact_match(example, prediction, trace)

  @doc """
  Scores whole lists in one call on a dirty CPU scheduler: `preds` and `golds` are lists
  of the same length, item `i` scores `preds[i]` against `golds[i]` (a string or a list
  of strings), exactly like the single-pair function. For `:passage_match` each
  prediction is a passage or a list of passages; `:normalize` takes only the texts.

  Returns `{:ok, results}` (booleans for `:em` / `:passage_match`, floats otherwise,
  strings for `:normalize`) or `{:error, %DSPex.Error{}}` of type `:invalid_utf8`,
  `:no_golds` or `:too_large` whose `details` say which item (`index`) and which string
  (`prediction`, `gold`, `passage` or `answer`) failed, and the byte `offset`.
  Arguments of the wrong shape raise `ArgumentError`. Emits the telemetry span
  `[:dspex, :metrics, :batch]` with `%{metric: metric, count: n}`.

  ## Examples

      iex> DSPex.Metrics.batch(:f1, ["Paris", "the cat sat"], ["paris", ["a dog", "cat"]])
      {:ok, [1.0, 0.6666666666666666]}
      iex> DSPex.Metrics.batch(:normalize, ["The  Cat!"])
      {:ok, ["cat"]}
      iex> {:error, %DSPex.Error{type: :invalid_utf8, details: d}} = DSPex.Metrics.batch(:em, ["ok", <<255>>], ["ok", "x"])
      iex> d
      %{index: 1, offset: 0, prediction: 0}
  """
  @spec batch(metric, [String.t() | [String.t()]], [golds] | nil) ::
          {:ok, [boolean | float | String.t()]} | {:error, DSPex.Error.t()}
  def batch(metric, preds, golds \\ nil)

  def batch(metric, preds, golds) when metric in @metrics and is_list(preds) do
    cond do
      metric == :normalize and golds != nil ->
        raise ArgumentError, "batch(:normalize, texts) takes no golds"

      metric != :normalize and not is_list(golds) ->
        raise ArgumentError, "batch(#{inspect(metric)}, preds, golds) needs a list of golds"

      true ->
        meta = %{metric: metric, count: length(preds)}

        DSPex.Telemetry.span([:dspex, :metrics, :batch], meta, fn ->
          result =
            case NIF.guard(fn -> NIF.metrics_batch(metric, preds, golds || []) end) do
              {:ok, results} ->
                {:ok, results}

              {:error, {type, message, details}} ->
                {:error, DSPex.Error.new(type, message, details)}
            end

          {result, meta}
        end)
    end
  end

  def batch(metric, preds, _golds) do
    raise ArgumentError,
          "batch/3 takes a metric in #{inspect(@metrics)} and a list, got: #{inspect(metric)}, " <>
            "#{if is_list(preds), do: "a list", else: inspect(preds)}"
  end

  @doc """
  Like `batch/3`, but returns the results or raises the `%DSPex.Error{}`.

  ## Examples

      iex> DSPex.Metrics.batch!(:em, ["Paris", "Lyon"], ["paris", "Nice"])
      [true, false]
  """
  @spec batch!(metric, [String.t() | [String.t()]], [golds] | nil) :: [
          boolean | float | String.t()
        ]
  def batch!(metric, preds, golds \\ nil) do
    case batch(metric, preds, golds) do
      {:ok, results} -> results
      {:error, e} -> raise e
    end
  end

  @doc """
  Scores `examples` against `predictions` in one `batch/3` call when `metric` is one of
  the built-in example metrics — `&answer_exact_match/2`, `&answer_exact_match/3`,
  `&exact_match/2`, `&exact_match/3`, `&answer_passage_match/2`,
  `&answer_passage_match/3` — and returns `{:ok, results}` with, per item, exactly what
  the metric would return, or `{:error, exception}` where calling it would raise (a
  missing field, a non-string answer, invalid UTF-8). Any other metric gives
  `:not_builtin`: call it per example.

  ## Examples

      iex> exs = [DSPex.Example.new(answer: "Paris"), DSPex.Example.new(answer: ["4", "four"])]
      iex> preds = [DSPex.Prediction.new(answer: "paris."), DSPex.Prediction.new(answer: "5")]
      iex> DSPex.Metrics.batch_examples(&DSPex.Metrics.answer_exact_match/2, exs, preds)
      {:ok, [true, false]}
      iex> DSPex.Metrics.batch_examples(fn _, _ -> true end, exs, preds)
      :not_builtin
  """
  @spec batch_examples(function, [DSPex.Example.t() | map], [DSPex.Prediction.t() | map]) ::
          {:ok, [boolean | {:error, Exception.t()}]} | :not_builtin
  def batch_examples(metric, examples, predictions)
      when is_function(metric) and is_list(examples) and is_list(predictions) do
    case builtin_spec(metric) do
      nil ->
        :not_builtin

      spec ->
        if length(examples) != length(predictions) do
          raise ArgumentError, "batch_examples/3 needs as many predictions as examples"
        end

        items = Enum.zip_with(examples, predictions, &batch_pair(spec, &1, &2))
        valid = for {:ok, pair} <- items, do: pair
        {preds, golds} = Enum.unzip(valid)
        {:ok, scores} = batch(elem(spec, 0), preds, golds)
        {:ok, merge_scores(items, scores)}
    end
  end

  @typedoc """
  What a built-in example metric reads: `{batch kind, prediction field, example field}`
  (the example field holds the gold string or list of gold strings).
  """
  @type builtin_spec :: {metric, atom | String.t(), atom | String.t()}

  @doc """
  The batch form of a built-in example metric given as a capture, or `nil` for any
  other function. `DSPex.Evaluate` uses it to score built-ins in one native call.

  ## Examples

      iex> DSPex.Metrics.builtin_spec(&DSPex.Metrics.answer_exact_match/2)
      {:em, :answer, :answer}
      iex> DSPex.Metrics.builtin_spec(&DSPex.Metrics.answer_passage_match/3)
      {:passage_match, :context, :answer}
      iex> DSPex.Metrics.builtin_spec(fn _example, _prediction -> true end)
      nil
  """
  @spec builtin_spec(function) :: builtin_spec | nil
  def builtin_spec(fun) when is_function(fun) do
    case Function.info(fun, :type) do
      {:type, :external} ->
        {:module, mod} = Function.info(fun, :module)
        {:name, name} = Function.info(fun, :name)

        case {mod, name} do
          {__MODULE__, n} when n in [:answer_exact_match, :exact_match] -> {:em, :answer, :answer}
          {__MODULE__, :answer_passage_match} -> {:passage_match, :context, :answer}
          _ -> nil
        end

      _ ->
        nil
    end
  end

  @doc """
  Reads the `{prediction_text, golds}` pair a built-in metric scores from one example and
  prediction, checked the way the single-item metric checks it: `{:ok, pair}`, or
  `{:error, %ArgumentError{}}` where the metric itself would raise.

  ## Examples

      iex> ex = DSPex.Example.new(answer: ["4", "four"])
      iex> DSPex.Metrics.batch_pair({:em, :answer, :answer}, ex, DSPex.Prediction.new(answer: "4"))
      {:ok, {"4", ["4", "four"]}}
  """
  @spec batch_pair(builtin_spec, DSPex.Example.t() | map, DSPex.Prediction.t() | map) ::
          {:ok, {String.t() | [String.t()], [String.t()]}} | {:error, ArgumentError.t()}
  def batch_pair({kind, pred_field, gold_field}, example, prediction) do
    answers = answers!(example, gold_field)

    if kind == :em and answers == [],
      do: raise(ArgumentError, "empty list of golds: pass at least one gold answer")

    value = field!(prediction, pred_field, "prediction")
    check_texts!(value, pred_field)
    check_texts!(answers, gold_field)
    {:ok, {value, answers}}
  rescue
    e in ArgumentError -> {:error, e}
  end

  defp check_texts!(text, field) when is_binary(text) do
    if String.valid?(text), do: :ok, else: raise(ArgumentError, "#{field} is not valid UTF-8")
  end

  defp check_texts!(list, field) when is_list(list), do: Enum.each(list, &check_texts!(&1, field))

  defp check_texts!(other, field),
    do: raise(ArgumentError, "#{field} must be a string, got: #{inspect(other)}")

  defp merge_scores([], []), do: []
  defp merge_scores([{:ok, _} | items], [s | scores]), do: [s | merge_scores(items, scores)]
  defp merge_scores([{:error, _} = e | items], scores), do: [e | merge_scores(items, scores)]

  # -----------------------------------------------------------------------------------

  defp score!(metric, prediction, golds) do
    case NIF.guard(fn -> NIF.metrics_score(metric, prediction, golds) end) do
      {:error, {_type, message, _details}} -> raise ArgumentError, message
      result -> result
    end
  end

  defp unwrap!({:error, {_type, message, _details}}), do: raise(ArgumentError, message)
  defp unwrap!(text) when is_binary(text), do: text

  # example.answer: a string becomes [string], a list stays, anything else is an error
  # (DSPy: ValueError "Invalid answer type").
  defp answers!(example, field \\ :answer) do
    case field!(example, field, "example") do
      a when is_binary(a) ->
        [a]

      l when is_list(l) ->
        l

      other ->
        raise ArgumentError,
              "invalid answer type: example.#{field} must be a string or a list " <>
                "of strings, got: #{inspect(other)}"
    end
  end

  @doc false
  # Reads `key` (atom, or its string form) from an example, prediction or map; raises
  # ArgumentError naming `what` when it is missing. Shared with the LM-judged metrics.
  def __field__(x, key, what), do: field!(x, key, what)

  defp field!(%DSPex.Example{} = ex, key, what), do: fetch_field!(ex.fields, key, what)

  defp field!(%DSPex.Prediction{} = p, key, what),
    do: fetch_field!(DSPex.Prediction.fields(p), key, what)

  defp field!(map, key, what) when is_map(map), do: fetch_field!(map, key, what)

  defp field!(other, key, what),
    do:
      raise(ArgumentError, "#{what} must be a map or struct with #{key}, got: #{inspect(other)}")

  defp fetch_field!(map, key, what) do
    case Map.fetch(map, key) do
      {:ok, v} ->
        v

      :error ->
        case Map.fetch(map, Atom.to_string(key)) do
          {:ok, v} -> v
          :error -> raise ArgumentError, "#{what} has no field #{inspect(key)}"
        end
    end
  end
end
