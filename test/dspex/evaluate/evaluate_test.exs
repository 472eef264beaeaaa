defmodule DSPex.EvaluateTest.Programs do
  # Programs for the tests below: plain structs with forward/2 (DSPex.Module's contract).

  defmodule Flaky do
    @moduledoc false
    # Answers "a<i>" for "q<i>"; raises for questions in `raise_on`, returns an error for
    # those in `error_on`, sleeps `sleep[q]` ms first.
    defstruct raise_on: [], error_on: [], sleep: %{}, secret: nil, notify: nil

    def forward(p, %{question: q}) do
      if p.notify, do: send(p.notify, {:running, self(), q})
      if ms = p.sleep[q], do: Process.sleep(ms)

      cond do
        q in p.raise_on -> explode(%{api_key: p.secret}, q)
        q in p.error_on -> {:error, DSPex.Error.new(:server, "HTTP 500 from the provider")}
        true -> DSPex.Prediction.new(answer: "a" <> String.trim_leading(q, "q"))
      end
    end

    # A FunctionClauseError: its stack frame holds the arguments (here a map with a key).
    defp explode(%{never: true}, _q), do: :ok
  end

  defmodule SlowFirstTry do
    @moduledoc false
    # The first attempt of each question in `slow` hangs (and says so); later ones answer
    # at once.
    defstruct counter: nil, slow: [], notify: nil

    def forward(p, %{question: q}) do
      n = :counters.add(p.counter, 1, 1) && :counters.get(p.counter, 1)

      if q in p.slow and n <= length(p.slow) do
        send(p.notify, {:hanging, self()})
        Process.sleep(:infinity)
      end

      DSPex.Prediction.new(answer: "a" <> String.trim_leading(q, "q"))
    end
  end
end

defmodule DSPex.EvaluateTest do
  use ExUnit.Case, async: true

  import ExUnit.CaptureLog

  alias DSPex.{Evaluate, Example}
  alias DSPex.Evaluate.Result
  alias DSPex.EvaluateTest.Programs.{Flaky, SlowFirstTry}

  doctest DSPex.Evaluate
  doctest DSPex.Evaluate.Worker

  defp devset(n) do
    for i <- 1..n,
        do: Example.new(question: "q#{i}", answer: "a#{i}") |> Example.with_inputs([:question])
  end

  # A Predict whose scripted LM answers "a<i>" to "q<i>", except "wrong" for i in `wrong`.
  defp qa(wrong \\ []) do
    lm =
      DSPex.LM.Scripted.new(fn messages, _params ->
        %{content: c} = List.last(messages)
        [_, i] = Regex.run(~r/\[\[ ## question ## \]\]\nq(\d+)/, c)
        %{answer: if(String.to_integer(i) in wrong, do: "wrong", else: "a#{i}")}
      end)

    DSPex.Predict.new("question -> answer", lm: lm)
  end

  defp match(ex, pred), do: ex[:answer] == pred.answer

  describe "scores and results" do
    test "results come back in devset order with the metric's own values" do
      {:ok, %Result{} = r} =
        Evaluate.run(qa([2, 5]), devset(6), metric: &match/2, max_concurrency: 4)

      assert r.score == 66.67
      assert r.sum == 4
      assert r.total == 6
      assert r.errors == []
      assert Enum.map(r.results, fn {ex, _, _} -> ex[:question] end) == ~w(q1 q2 q3 q4 q5 q6)
      assert Enum.map(r.results, &elem(&1, 2)) == [true, false, true, true, false, true]
      assert Enum.map(r.results, fn {_, p, _} -> p.answer end) == ~w(a1 wrong a3 a4 wrong a6)
    end

    test "the score rounds half-even like Python: 97 of 800 is 12.12, not 12.13" do
      wrong = Enum.to_list(98..800)
      {:ok, r} = Evaluate.run(qa(wrong), devset(800), metric: &match/2, max_concurrency: 64)
      assert r.sum == 97
      assert r.score == 12.12
    end

    test "float and Prediction scores; a 3-arity metric gets a nil trace" do
      parent = self()

      metric = fn ex, pred, trace ->
        send(parent, {:trace, trace})
        if match(ex, pred), do: 0.5, else: DSPex.Prediction.new(score: 0.25)
      end

      {:ok, r} = Evaluate.run(qa([1]), devset(3), metric: metric)
      assert r.sum == 0.25 + 0.5 + 0.5
      assert r.score == 41.67
      assert_received {:trace, nil}
      assert [{_, _, %DSPex.Prediction{}}, {_, _, 0.5}, {_, _, 0.5}] = r.results
    end

    test "lm: applies to predictors without their own LM, for this run only" do
      %DSPex.Predict{lm: lm} = qa()
      bare = DSPex.Predict.new("question -> answer")
      {:ok, r} = Evaluate.run(bare, devset(3), metric: &match/2, lm: lm)
      assert r.score == 100.0
      assert DSPex.Settings.get(:lm) == nil
    end
  end

  describe "failures" do
    @tag :capture_log
    test "a raising example gets failure_score and its traceback; the others still finish" do
      program = %Flaky{raise_on: ["q2"], error_on: ["q4"], secret: "sk-test-SECRET-123"}

      {:ok, r} =
        Evaluate.run(program, devset(5),
          metric: &match/2,
          failure_score: 0.25,
          provide_traceback: true,
          max_concurrency: 3
        )

      assert Enum.map(r.results, &elem(&1, 2)) == [true, 0.25, true, 0.25, true]
      assert {_, %DSPex.Prediction{} = empty, _} = Enum.at(r.results, 1)
      assert DSPex.Prediction.fields(empty) == %{}
      assert r.sum == 3.5
      assert r.score == 70.0

      assert [%{index: 1, error: e1, traceback: tb}, %{index: 3, error: e3, traceback: nil}] =
               r.errors

      assert e1.type == :exception
      assert e1.details.exception == FunctionClauseError
      assert e1.details.stage == :program
      assert tb =~ "FunctionClauseError"
      assert tb =~ "explode/2"
      refute tb =~ "SECRET"
      assert e3.type == :server
      assert e3.details.index == 3
    end

    test "a failing metric counts as an error of that example only" do
      metric = fn ex, pred ->
        if ex[:question] == "q2", do: raise("bad metric"), else: match(ex, pred)
      end

      log =
        capture_log(fn ->
          {:ok, r} = Evaluate.run(qa(), devset(3), metric: metric)
          assert [%{index: 1, error: %{details: %{stage: :metric}} = e}] = r.errors
          assert e.message =~ "RuntimeError: bad metric"
          assert r.score == 66.67
        end)

      assert log =~ "example 1 failed"
      refute log =~ "bad metric"
    end

    @tag :capture_log
    test "a metric returning nil is an error, not a crash" do
      {:ok, r} = Evaluate.run(qa(), devset(2), metric: fn _, _ -> nil end)
      assert length(r.errors) == 2
      assert hd(r.errors).error.message =~ "must return a boolean, a number"
    end

    @tag :capture_log
    test "max_errors stops the run and returns the partial results (DSPy would lose them)" do
      program = %Flaky{raise_on: for(i <- 6..20, do: "q#{i}")}

      {:error, %DSPex.Error{type: :too_many_errors} = e} =
        Evaluate.run(program, devset(20), metric: &match/2, max_errors: 3, max_concurrency: 1)

      assert length(e.details.results) == 5
      assert Enum.all?(e.details.results, fn {_, _, s} -> s == true end)
      assert Enum.map(e.details.errors, & &1.index) == [5, 6, 7]
      assert length(e.details.unfinished) == 12
      assert hd(e.details.unfinished)[:question] == "q9"
      assert e.details.max_errors == 3
      assert e.message =~ "5 examples finished, 12 did not"
    end

    @tag :capture_log
    test "max_errors stops running examples too" do
      hang = Map.new(1..10, &{"q#{&1}", :infinity})
      program = %Flaky{raise_on: ["q11", "q12"], sleep: hang, notify: self()}

      {:error, %DSPex.Error{type: :too_many_errors} = e} =
        Evaluate.run(program, devset(12), metric: &match/2, max_errors: 2, max_concurrency: 12)

      assert length(e.details.unfinished) == 10
      assert e.details.results == []

      # The hanging examples were stopped, not left running.
      running = for _ <- 1..12, do: assert_receive({:running, pid, _q}, 5_000) && pid

      for pid <- running do
        ref = Process.monitor(pid)
        assert_receive {:DOWN, ^ref, :process, ^pid, _}, 5_000
      end
    end

    @tag :capture_log
    test "an attempt running past timeout fails its example with :timeout" do
      program = %Flaky{sleep: %{"q2" => :infinity}}

      {:ok, r} =
        Evaluate.run(program, devset(3),
          metric: &match/2,
          timeout: 200,
          straggler_after: :infinity
        )

      assert [%{index: 1, error: %DSPex.Error{type: :timeout}}] = r.errors
      assert r.score == 66.67
    end
  end

  describe "stragglers" do
    test "a straggler gets a second attempt and the first to finish wins" do
      ref = make_ref()
      parent = self()

      :ok =
        DSPex.Telemetry.attach_many(
          ref,
          [[:dspex, :evaluate, :retry], [:dspex, :evaluate, :example]],
          fn event, m, meta, _ -> send(parent, {ref, event, m, meta}) end,
          nil
        )

      on_exit(fn -> DSPex.Telemetry.detach(ref) end)
      program = %SlowFirstTry{counter: :counters.new(1, []), slow: ["q1"], notify: self()}

      {:ok, r} =
        Evaluate.run(program, devset(1),
          metric: &match/2,
          straggler_after: 150,
          max_concurrency: 2
        )

      assert r.score == 100.0
      # The hanging first attempt lost and was stopped.
      assert_received {:hanging, first}
      mon = Process.monitor(first)
      assert_receive {:DOWN, ^mon, :process, ^first, _}, 5_000

      assert_received {^ref, [:dspex, :evaluate, :retry], %{elapsed: _},
                       %{index: 0, reason: :straggler}}

      assert_received {^ref, [:dspex, :evaluate, :example], _,
                       %{index: 0, attempts: 2, status: :ok}}
    end
  end

  describe "telemetry" do
    test "one span and one event per example, sharing the span context" do
      ref = make_ref()
      parent = self()

      events = [
        [:dspex, :evaluate, :start],
        [:dspex, :evaluate, :stop],
        [:dspex, :evaluate, :example]
      ]

      :ok =
        DSPex.Telemetry.attach_many(
          ref,
          events,
          fn e, m, meta, _ -> send(parent, {ref, e, m, meta}) end,
          nil
        )

      on_exit(fn -> DSPex.Telemetry.detach(ref) end)

      {:ok, _} = Evaluate.run(qa([3]), devset(4), metric: &match/2)

      assert_received {^ref, [:dspex, :evaluate, :start], %{monotonic_time: _, system_time: _},
                       %{
                         devset_size: 4,
                         program: DSPex.Predict,
                         metric: "match",
                         telemetry_span_context: ctx
                       }}

      assert_received {^ref, [:dspex, :evaluate, :stop], %{duration: d},
                       %{status: :ok, score: 75.0, errors: 0, telemetry_span_context: ^ctx}}

      assert d > 0

      examples =
        for _ <- 1..4 do
          assert_received {^ref, [:dspex, :evaluate, :example], %{duration: _, score: s},
                           %{index: i, node: n, status: :ok, telemetry_span_context: ^ctx}}

          assert n == node()
          {i, s}
        end

      assert Enum.sort(examples) == [{0, 1}, {1, 1}, {2, 0}, {3, 1}]
    end
  end

  describe "options" do
    test "an unknown option raises ArgumentError naming the valid ones" do
      err =
        assert_raise ArgumentError, fn ->
          Evaluate.run(qa(), devset(1), metric: &match/2, num_thread: 2)
        end

      assert err.message =~ ":num_thread"
      assert err.message =~ ":max_concurrency"
    end

    test "bad values and bad devsets raise ArgumentError" do
      assert_raise ArgumentError, ~r/missing required option :metric/, fn ->
        Evaluate.run(qa(), devset(1), [])
      end

      assert_raise ArgumentError, ~r/option :max_concurrency .*expected a positive integer/, fn ->
        Evaluate.run(qa(), devset(1), metric: &match/2, max_concurrency: 0)
      end

      assert_raise ArgumentError, ~r/metric: expects a function/, fn ->
        Evaluate.run(qa(), devset(1), metric: fn _ -> true end)
      end

      assert_raise ArgumentError, ~r/devset is empty/, fn ->
        Evaluate.run(qa(), [], metric: &match/2)
      end

      assert_raise ArgumentError, ~r/no input keys/, fn ->
        Evaluate.run(qa(), [Example.new(question: "q")], metric: &match/2)
      end

      assert_raise ArgumentError, ~r/not a %DSPex.Example/, fn ->
        Evaluate.run(qa(), [%{question: "q"}], metric: &match/2)
      end
    end

    test "run!/3 raises the error" do
      assert_raise DSPex.Error, ~r/failed examples/, fn ->
        capture_log(fn ->
          Evaluate.run!(%Flaky{raise_on: ["q1"]}, devset(1), metric: &match/2, max_errors: 1)
        end)
      end
    end
  end

  describe "display and files" do
    test "display_table prints DSPy's columns and a row limit", %{} do
      out =
        ExUnit.CaptureIO.capture_io(fn ->
          {:ok, _} = Evaluate.run(qa([2]), devset(3), metric: &match/2, display_table: 2)
        end)

      [header, row1, row2, more] = String.split(out, "\n", trim: true)
      assert header =~ ~r/^\s+example_answer\s+question\s+pred_answer\s+match$/
      assert row1 =~ ~r/^0\s+a1\s+q1\s+a1\s+✔️ \[true\]$/
      assert row2 =~ ~r/^1\s+a2\s+q2\s+wrong\s+✔️ \[false\]$/
      assert more == "... 1 more rows not displayed ..."
    end

    @tag :tmp_dir
    test "save_as_csv and save_as_json write every row untruncated", %{tmp_dir: dir} do
      csv = Path.join(dir, "r.csv")
      json = Path.join(dir, "r.json")
      long = String.duplicate("word ", 40)

      ex =
        Example.new(question: "q1", answer: "a1", note: long <> "\n2nd line, \"quoted\"")
        |> Example.with_inputs([:question])

      {:ok, _} = Evaluate.run(qa(), [ex], metric: &match/2, save_as_csv: csv, save_as_json: json)

      {:ok, [header, row]} = DSPex.Dataset.CSV.parse(File.read!(csv))
      assert header == ["example_answer", "note", "question", "pred_answer", "match"]
      assert row == ["a1", long <> "\n2nd line, \"quoted\"", "q1", "a1", "True"]

      assert [%{"example_answer" => "a1", "pred_answer" => "a1", "match" => true, "note" => note}] =
               DSPex.JSON.decode!(File.read!(json))

      assert note == long <> "\n2nd line, \"quoted\""
    end

    test "a save error is an {:error, %DSPex.Error{type: :file}} that keeps the result" do
      assert {:error, %DSPex.Error{type: :file, details: %{result: %Result{score: 100.0}}}} =
               Evaluate.run(qa(), devset(1),
                 metric: &match/2,
                 save_as_csv: "/nonexistent/dir/r.csv"
               )
    end

    test "display_progress writes plain lines when the device is not a terminal" do
      {:ok, dev} = StringIO.open("")

      {:ok, _} =
        Evaluate.run(qa([3]), devset(3),
          metric: &match/2,
          display_progress: true,
          progress_device: dev,
          max_concurrency: 1
        )

      {_, out} = StringIO.contents(dev)
      lines = String.split(out, "\n", trim: true)
      assert length(lines) == 4
      assert List.last(lines) =~ ~r"^Average Metric: 2\.00 / 3 \(66\.7%\) \| 3/3 done \(100%\)"
      assert Enum.at(lines, 0) =~ ~r"^Average Metric: 1\.00 / 1 \(100\.0%\) \| 1/3 done"
    end
  end
end
