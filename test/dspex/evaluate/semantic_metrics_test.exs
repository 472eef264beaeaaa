defmodule DSPex.SemanticMetricsTest do
  # SemanticF1 and CompleteAndGrounded against DSPy 3.3.1 + DummyLM
  # (test/fixtures/metrics/semantic/, tools/gen_metric_fixtures.py): the same scripted
  # answers must produce byte-identical prompts (ChatAdapter) and the same score.
  use ExUnit.Case, async: true

  alias DSPex.Metrics.{CompleteAndGrounded, SemanticF1}

  doctest DSPex.Metrics.SemanticF1
  doctest DSPex.Metrics.CompleteAndGrounded

  @dir Path.expand("../../fixtures/metrics/semantic", __DIR__)

  @example DSPex.Example.new(
             question: "What is the capital of France?",
             response: "Paris is the capital of France."
           )
           |> DSPex.Example.with_inputs([:question])

  @pred DSPex.Prediction.new(
          response: "The capital of France is Paris, a city on the Seine.",
          context: [
            "Paris is the capital and largest city of France.",
            "The Seine flows through Paris."
          ]
        )

  defp golden(name),
    do: @dir |> Path.join(name <> ".json") |> File.read!() |> DSPex.JSON.decode!()

  # DummyLM's answers are field dicts; the scripted LM renders maps the same way.
  defp script(golden) do
    for answer <- golden["answers"], do: Map.new(answer, fn {k, v} -> {String.to_atom(k), v} end)
  end

  defp check(name, judge) do
    g = golden(name)
    lm = DSPex.LM.Scripted.new(script(g))
    trace = if g["trace"], do: [], else: nil

    {:ok, score} =
      DSPex.Settings.with_settings([adapter: DSPex.Adapter.Chat], fn ->
        judge_module(judge).score(judge, @example, @pred, trace, lm: lm)
      end)

    requests = DSPex.LM.Scripted.requests(lm)
    assert length(requests) == length(g["calls"])

    for {req, call} <- Enum.zip(requests, g["calls"]) do
      expected = Enum.map(call["messages"], &%{role: &1["role"], content: &1["content"]})
      assert Enum.map(req.messages, &Map.take(&1, [:role, :content])) == expected
    end

    case g["score"] do
      b when is_boolean(b) -> assert score === b
      hex -> assert Base.encode16(<<score::float>>, case: :lower) == hex
    end
  end

  defp judge_module(%mod{}), do: mod

  test "SemanticF1: prompt and score equal DSPy's" do
    check("semantic_f1", SemanticF1.new())
  end

  test "SemanticF1 with a trace returns score >= threshold" do
    check("semantic_f1_trace", SemanticF1.new())
  end

  test "SemanticF1 clamps the judge's numbers into [0, 1]" do
    check("semantic_f1_clamped", SemanticF1.new())
  end

  test "SemanticF1(decompositional: true)" do
    check("semantic_f1_decompositional", SemanticF1.new(decompositional: true))
  end

  test "CompleteAndGrounded: two prompts in DSPy's order, F1(groundedness, completeness)" do
    check("complete_and_grounded", CompleteAndGrounded.new())
  end

  test "CompleteAndGrounded with a trace" do
    check("complete_and_grounded_trace", CompleteAndGrounded.new(threshold: 0.95))
  end

  test "the metric function raises the LM's error, DSPex.call gives a Prediction" do
    lm = DSPex.LM.Scripted.new([])
    metric = SemanticF1.metric(SemanticF1.new(), lm: lm)
    assert_raise DSPex.Error, fn -> metric.(@example, @pred, nil) end

    lm = DSPex.LM.Scripted.new([%{reasoning: "r", recall: 1.0, precision: 1.0}])

    assert {:ok, %DSPex.Prediction{} = p} =
             DSPex.call(SemanticF1.new(), %{example: @example, pred: @pred}, lm: lm)

    assert p[:score] == 1.0
  end

  test "missing fields raise ArgumentError" do
    assert_raise ArgumentError, ~r/no field :response/, fn ->
      SemanticF1.score(SemanticF1.new(), %{question: "q"}, @pred)
    end
  end

  test "f1_score follows Python's clamping" do
    assert SemanticF1.f1_score(1, 1) === 1.0
    assert SemanticF1.f1_score(0, 0) === 0.0
    assert SemanticF1.f1_score(2.0, -1) === 0.0
    assert SemanticF1.f1_score(0.85, 1.0) == 2 * (0.85 * 1.0) / 1.85
  end
end
