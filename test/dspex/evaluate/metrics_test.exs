defmodule DSPex.MetricsTest do
  # Golden cases from DSPy 3.3.1 (tools/gen_metric_fixtures.py): every normalized
  # string, boolean and float (bit for bit) must equal DSPy's.
  use ExUnit.Case, async: true

  alias DSPex.Metrics

  doctest DSPex.Metrics

  @dir Path.expand("../../fixtures/metrics", __DIR__)

  defp jsonl(name) do
    @dir
    |> Path.join(name)
    |> File.stream!()
    |> Enum.map(&DSPex.JSON.decode!/1)
  end

  # "0" is DSPy's int 0; otherwise the IEEE-754 bits of the float.
  defp same_score?(got, "0"), do: is_float(got) and got == 0.0

  defp same_score?(got, hex) when is_float(got),
    do: Base.encode16(<<got::float>>, case: :lower) == hex

  defp same_score?(_, _), do: false

  defp report(failures, total, what) do
    if failures != [] do
      flunk(
        "#{length(failures)} of #{total} #{what} differ from DSPy; first ones:\n" <>
          (failures
           |> Enum.take(5)
           |> Enum.map_join("\n", &inspect(&1, limit: 20, printable_limit: 200)))
      )
    end
  end

  describe "golden cases from DSPy 3.3.1" do
    setup do
      {:ok, cases: jsonl("cases.jsonl")}
    end

    test "the fixture set is the generated one", %{cases: cases} do
      assert length(cases) == 3303
    end

    test "normalize_text, em, f1, hotpot_f1 and precision equal DSPy's exactly", %{cases: cases} do
      failures =
        for c <- cases,
            field <- [:norm, :em, :f1, :hotpot_f1, :precision],
            (got = actual(field, c)) != :same,
            do: {c["id"], field, got}

      report(failures, length(cases) * 5, "values")
    end

    test "batch/3 gives the same results as the single calls", %{cases: cases} do
      preds = Enum.map(cases, & &1["pred"])
      golds = Enum.map(cases, & &1["golds"])

      assert {:ok, norm} = Metrics.batch(:normalize, preds)
      assert norm == Enum.map(cases, & &1["norm_pred"])
      assert {:ok, em} = Metrics.batch(:em, preds, golds)
      assert em == Enum.map(cases, & &1["em"])

      for metric <- [:f1, :hotpot_f1, :precision] do
        assert {:ok, scores} = Metrics.batch(metric, preds, golds)
        key = Atom.to_string(metric)

        bad =
          for {s, c} <- Enum.zip(scores, cases),
              not same_score?(s, c[key]),
              do: {c["id"], s, c[key]}

        assert bad == [], "#{metric}: #{inspect(Enum.take(bad, 5))}"
      end
    end
  end

  defp actual(:norm, c) do
    got = [Metrics.normalize_text(c["pred"]) | Enum.map(c["golds"], &Metrics.normalize_text/1)]
    if got == [c["norm_pred"] | c["norm_golds"]], do: :same, else: got
  end

  defp actual(:em, c) do
    got = Metrics.em(c["pred"], c["golds"])
    if got === c["em"], do: :same, else: got
  end

  defp actual(metric, c) do
    got = apply(Metrics, metric, [c["pred"], c["golds"]])
    if same_score?(got, c[Atom.to_string(metric)]), do: :same, else: got
  end

  test "passage match equals DSPy's _passage_match on every golden case" do
    cases = jsonl("passages.jsonl")
    assert length(cases) == 1619

    failures =
      for c <- cases,
          Metrics.passage_match(c["passages"], c["answers"]) !== c["match"],
          do: c["id"]

    report(failures, length(cases), "passage matches")

    assert {:ok, batch} =
             Metrics.batch(
               :passage_match,
               Enum.map(cases, & &1["passages"]),
               Enum.map(cases, & &1["answers"])
             )

    assert batch == Enum.map(cases, & &1["match"])
  end

  # Every code point (U+0000..U+10FFFF, no surrogates) inside the generator's context
  # snippet, 256 per line: normalize_text must hash like DSPy's.
  test "normalize_text matches DSPy on every code point" do
    rows = jsonl("sweep.jsonl")
    assert length(rows) == 4344

    failures =
      rows
      |> Enum.chunk_every(256)
      |> Enum.flat_map(fn chunk ->
        texts = Enum.map(chunk, &sweep_text(&1["start"], &1["end"]))
        {:ok, norms} = Metrics.batch(:normalize, texts)

        for {row, norm} <- Enum.zip(chunk, norms),
            hash24(norm) != row["normalize"],
            do: Integer.to_string(row["start"], 16)
      end)

    report(failures, length(rows), "code point ranges")
  end

  defp sweep_text(start, stop) do
    for cp <- start..(stop - 1), cp not in 0xD800..0xDFFF, into: "" do
      c = <<cp::utf8>>
      "A" <> c <> "Σ" <> c <> " a" <> c <> ".the" <> c <> "\u0323" <> c <> "_x" <> c <> " "
    end
  end

  defp hash24(text),
    do: :crypto.hash(:sha256, text) |> binary_part(0, 12) |> Base.encode16(case: :lower)

  describe "errors" do
    test "invalid UTF-8 raises ArgumentError with the byte offset" do
      assert_raise ArgumentError, ~r/invalid UTF-8 at byte 3 of text/, fn ->
        Metrics.normalize_text("abc" <> <<0xFF>>)
      end

      assert_raise ArgumentError, ~r/invalid UTF-8 at byte 1 of gold 1/, fn ->
        Metrics.f1("x", ["ok", "a" <> <<0xC3>>])
      end

      assert_raise ArgumentError, ~r/invalid UTF-8 at byte 0 of passage 0/, fn ->
        Metrics.passage_match(<<0xED, 0xA0, 0x80>>, "x")
      end
    end

    test "wrong types and empty gold lists raise ArgumentError" do
      assert_raise ArgumentError, ~r/expects a string/, fn -> Metrics.normalize_text(:atom) end
      assert_raise ArgumentError, ~r/must be a string or a list/, fn -> Metrics.em(nil, "x") end

      assert_raise ArgumentError, ~r/must be a string or a list/, fn ->
        Metrics.f1("x", ["a", 1])
      end

      assert_raise ArgumentError, ~r/empty list of golds/, fn -> Metrics.em("x", []) end
      assert_raise ArgumentError, ~r/one string/, fn -> Metrics.f1(["a", "b"], "a") end
      refute Metrics.passage_match("anything", [])
      refute Metrics.passage_match([], "a")
    end

    test "batch/3 reports the failing item and string" do
      assert {:error, %DSPex.Error{type: :invalid_utf8, details: d, message: msg}} =
               Metrics.batch(:f1, ["a", "b", "c"], ["a", ["b", <<"x", 0x80>>], "c"])

      assert d == %{index: 1, gold: 1, offset: 1}
      assert msg =~ "batch item 1"

      assert {:error, %DSPex.Error{type: :no_golds, details: %{index: 0}}} =
               Metrics.batch(:em, ["a"], [[]])

      assert {:error, %DSPex.Error{type: :invalid_utf8, details: %{index: 0, passage: 1}}} =
               Metrics.batch(:passage_match, [["a x", <<0xFF>>]], ["a"])

      assert_raise ArgumentError, ~r/as many golds/, fn -> Metrics.batch(:f1, ["a"], []) end

      assert_raise ArgumentError, ~r/one prediction string/, fn ->
        Metrics.batch(:f1, [1], ["a"])
      end

      assert_raise ArgumentError, ~r/takes a metric/, fn -> Metrics.batch(:nope, [], []) end
      assert_raise ArgumentError, ~r/no golds/, fn -> Metrics.batch(:normalize, ["a"], ["b"]) end
      assert_raise DSPex.Error, fn -> Metrics.batch!(:em, [<<0xFF>>], ["a"]) end
      assert {:ok, []} = Metrics.batch(:f1, [], [])
    end
  end

  describe "example metrics" do
    test "answer_exact_match follows DSPy: string or list answers, frac, string keys" do
      pred = DSPex.Prediction.new(answer: "The Eiffel Tower")
      assert Metrics.answer_exact_match(DSPex.Example.new(answer: "eiffel tower"), pred)
      assert Metrics.answer_exact_match(%{answer: ["Louvre", "Eiffel Tower"]}, pred, nil)
      refute Metrics.answer_exact_match(%{answer: "Eiffel"}, pred)
      # f1("the eiffel tower", "eiffel") = 2/3
      assert Metrics.answer_exact_match(%{answer: "Eiffel"}, pred, nil, frac: 0.66)
      refute Metrics.answer_exact_match(%{answer: "Eiffel"}, pred, frac: 0.67)
      assert Metrics.answer_exact_match(%{"answer" => "x"}, %{"answer" => "X."})
      assert Metrics.exact_match(%{answer: "x"}, %{answer: "the x"}, [{"self", %{}, %{}}])
    end

    test "bad examples raise like DSPy's ValueError / AttributeError" do
      pred = DSPex.Prediction.new(answer: "x")

      assert_raise ArgumentError, ~r/invalid answer type/, fn ->
        Metrics.answer_exact_match(%{answer: 1}, pred)
      end

      assert_raise ArgumentError, ~r/no field :answer/, fn ->
        Metrics.answer_exact_match(%{q: 1}, pred)
      end

      assert_raise ArgumentError, ~r/no field :context/, fn ->
        Metrics.answer_passage_match(%{answer: "x"}, pred)
      end
    end

    test "answer_passage_match reads prediction.context" do
      ex = DSPex.Example.new(answer: ["Seine", "Loire"])
      assert Metrics.answer_passage_match(ex, %{context: ["Paris is on the Seine."]})
      refute Metrics.answer_passage_match(ex, %{context: ["Lyon is on the Rhône."]}, nil)
      assert Metrics.answer_passage_match(ex, %{context: "One passage about the Loire"})
    end

    test "batch_examples scores built-in metrics in one call, item errors in place" do
      exs = [%{answer: "Paris"}, %{answer: 3}, %{answer: ["four", "4"]}, %{answer: []}]
      preds = [%{answer: "paris"}, %{answer: "3"}, %{answer: "4"}, %{answer: "x"}]

      for metric <- [&Metrics.answer_exact_match/2, &Metrics.exact_match/3] do
        assert {:ok, [true, {:error, %ArgumentError{}}, true, {:error, %ArgumentError{}}]} =
                 Metrics.batch_examples(metric, exs, preds)
      end

      exs = [%{answer: "Seine"}, %{answer: "x"}]
      preds = [%{context: ["The Seine."]}, %{context: ["bad", <<0xFF>>]}]

      assert {:ok, [true, {:error, %ArgumentError{message: msg}}]} =
               Metrics.batch_examples(&Metrics.answer_passage_match/3, exs, preds)

      assert msg =~ "UTF-8"
      assert :not_builtin = Metrics.batch_examples(&Metrics.f1/2, exs, preds)

      assert :not_builtin =
               Metrics.batch_examples(&Metrics.answer_exact_match(&1, &2, frac: 0.5), exs, preds)
    end
  end

  test "batch/3 emits a telemetry span" do
    parent = self()
    id = "metrics-batch-#{System.unique_integer()}"

    DSPex.Telemetry.attach_many(
      id,
      [[:dspex, :metrics, :batch, :start], [:dspex, :metrics, :batch, :stop]],
      fn event, measurements, meta, _ -> send(parent, {event, measurements, meta}) end,
      nil
    )

    on_exit(fn -> DSPex.Telemetry.detach(id) end)
    assert {:ok, [true]} = Metrics.batch(:em, ["a b"], ["A B"])
    assert_receive {[:dspex, :metrics, :batch, :start], _, %{metric: :em, count: 1}}
    assert_receive {[:dspex, :metrics, :batch, :stop], %{duration: _}, %{metric: :em, count: 1}}
  end

  test "large inputs are scored (rescheduled onto a dirty scheduler) with the same result" do
    big = String.duplicate("The Eiffel Tower, Paris. ", 2_000)

    assert Metrics.normalize_text(big) ==
             String.duplicate("eiffel tower paris ", 2_000) |> String.trim_trailing()

    assert Metrics.f1(big, "Eiffel Tower") == Metrics.batch!(:f1, [big], ["Eiffel Tower"]) |> hd()
    assert Metrics.passage_match(big, "tower paris eiffel")
  end
end
