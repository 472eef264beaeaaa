# Built-in metrics are scored by DSPex.Metrics.batch/3 in one native call.

defmodule DSPex.Evaluate.BuiltinMetricTest do
  # async: false — call counting (:erlang.trace_pattern) is global.
  use ExUnit.Case, async: false

  alias DSPex.{Evaluate, Example}

  doctest DSPex.Evaluate.Metric

  @mfa {DSPex.Metrics, :batch, 3}

  setup do
    :erlang.trace_pattern(@mfa, true, [:call_count])
    on_exit(fn -> :erlang.trace_pattern(@mfa, false, [:call_count]) end)
    :ok
  end

  defp batch_calls do
    {:call_count, n} = :erlang.trace_info(@mfa, :call_count)
    n
  end

  # "q<i>" -> "The A<i>!" (EM-equal to "a<i>") except "wrong" for multiples of 3.
  defp qa do
    lm =
      DSPex.LM.Scripted.new(fn messages, _ ->
        [_, i] = Regex.run(~r/q(\d+)/, List.last(messages).content)
        %{answer: if(rem(String.to_integer(i), 3) == 0, do: "wrong", else: "The A#{i}!")}
      end)

    DSPex.Predict.new("question -> answer", lm: lm)
  end

  defp devset(n) do
    for i <- 1..n,
        do: Example.new(question: "q#{i}", answer: "a#{i}") |> Example.with_inputs([:question])
  end

  test "{:builtin, :exact_match, field:} scores in batches and agrees with per-example EM" do
    metrics = DSPex.Metrics
    per_example = fn ex, pred -> metrics.em(pred.answer, ex[:answer]) end

    {:ok, expected} = Evaluate.run(qa(), devset(200), metric: per_example, max_concurrency: 16)
    assert batch_calls() == 0

    {:ok, r} =
      Evaluate.run(qa(), devset(200),
        metric: {:builtin, :exact_match, field: :answer},
        max_concurrency: 16
      )

    assert Enum.map(r.results, &elem(&1, 2)) == Enum.map(expected.results, &elem(&1, 2))
    assert r.score == expected.score
    assert r.score == 67.0
    calls = batch_calls()
    assert calls >= 1 and calls < 50
  end

  test "&DSPex.Metrics.answer_exact_match/3 is recognised and batched; golds may be lists" do
    capture = Function.capture(DSPex.Metrics, :answer_exact_match, 3)

    assert %{builtin: {:em, :answer, :answer}, name: "answer_exact_match"} =
             Evaluate.Metric.new!(capture)

    devset = [
      Example.new(question: "q1", answer: ["x", "a1"]) |> Example.with_inputs([:question]),
      Example.new(question: "q2", answer: ["x"]) |> Example.with_inputs([:question])
    ]

    out =
      ExUnit.CaptureIO.capture_io(fn ->
        {:ok, r} = Evaluate.run(qa(), devset, metric: capture, display_table: true)
        assert Enum.map(r.results, &elem(&1, 2)) == [true, false]
      end)

    assert out =~ "answer_exact_match"
    assert batch_calls() >= 1
  end

  @tag :capture_log
  test "an example without the field is an error of that example" do
    devset =
      [Example.new(question: "q1", label: "a1") |> Example.with_inputs([:question])] ++ devset(2)

    {:ok, r} = Evaluate.run(qa(), devset, metric: {:builtin, :em, field: :answer})
    assert [%{index: 0, error: %DSPex.Error{details: %{stage: :metric}} = e}] = r.errors
    assert e.message =~ "example has no field :answer"
    assert Enum.map(r.results, &elem(&1, 2)) == [0.0, true, true]
  end

  test "unknown built-ins and options raise ArgumentError" do
    assert_raise ArgumentError, ~r/unknown built-in metric :bleu/, fn ->
      Evaluate.run(qa(), devset(1), metric: {:builtin, :bleu, []})
    end

    assert_raise ArgumentError, ~r/unknown built-in metric options \[:frac\]/, fn ->
      Evaluate.run(qa(), devset(1), metric: {:builtin, :f1, frac: 0.5})
    end
  end
end
