defmodule Mix.Tasks.Dspex.EvalTest do
  use ExUnit.Case, async: true

  import ExUnit.CaptureIO

  alias DSPex.Test.{EvaluateSupport, OpenAILoopback}

  @data Path.expand("../../fixtures/evaluate/dev.jsonl", __DIR__)
  @csv Path.expand("../../fixtures/evaluate/dev.csv", __DIR__)

  setup do
    {:ok, srv} = OpenAILoopback.start_link(answer: &EvaluateSupport.loopback_answer/1)
    {:ok, base: OpenAILoopback.api_base(srv)}
  end

  defp eval(args) do
    Mix.Tasks.Dspex.Eval.run(args)
  end

  test "prints the table, DSPy's summary line and the score", %{base: base} do
    out =
      capture_io(fn ->
        eval(~w(--program question->answer --data #{@data} --metric exact_match --inputs question
                --lm openai/loopback --api-base #{base} --no-cache --no-progress --table 3))
      end)

    lines = String.split(out, "\n", trim: true)
    assert hd(lines) =~ ~r/^\s+example_answer\s+question\s+pred_answer\s+exact_match$/
    assert Enum.at(lines, 1) =~ ~r/^0\s+a1\s+q1\s+a1\s+✔️ \[true\]$/
    assert "... 1 more rows not displayed ..." in lines
    assert "Average Metric: 3 / 4 (75.0%)" in lines
    assert List.last(lines) == "Score: 75.0"
  end

  test "a program module and a Module.fun metric; inputs default to the signature's", %{
    base: base
  } do
    out =
      capture_io(fn ->
        eval(
          ~w(--program question->answer --data #{@data} --metric DSPex.Test.EvaluateSupport.answer_match
                --lm openai/loopback --api-base #{base} --no-progress --table 0 --max-concurrency 2)
        )
      end)

    assert out == "Average Metric: 3 / 4 (75.0%)\nScore: 75.0\n"
  end

  test "CSV data; a missing column is a clear error", %{base: base} do
    assert_raise Mix.Error, ~r/--data: .* has no "label"/, fn ->
      capture_io(fn ->
        eval(~w(--program question->answer --data #{@csv} --metric em --field label
                --lm openai/loopback --api-base #{base} --no-progress))
      end)
    end
  end

  test "usage errors" do
    assert_raise Mix.Error, ~r/needs --data/, fn -> eval(~w(--program x --metric em)) end
    assert_raise Mix.Error, ~r/unknown or invalid options: --bogus/, fn -> eval(~w(--bogus 1)) end

    assert_raise Mix.Error, ~r/--metric nope: expected one of/, fn ->
      eval(~w(--program question->answer --data #{@data} --metric nope))
    end

    assert_raise Mix.Error, ~r/no module Nope.Program/, fn ->
      eval(~w(--program Nope.Program --data #{@data} --metric em))
    end

    assert_raise Mix.Error, ~r/--inputs is needed/, fn ->
      eval(~w(--program DSPex.Test.EvaluateSupport.Notify --data #{@data} --metric em))
    end
  end
end
