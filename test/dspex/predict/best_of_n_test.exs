defmodule DSPex.BestOfNTest do
  use ExUnit.Case, async: false
  doctest DSPex.BestOfN
  doctest DSPex.Refine

  import DSPex.ModulesTest.Support
  alias DSPex.{BestOfN, LM.Scripted, Predict, Refine}

  setup do
    keep_global_settings()
    DSPex.configure(adapter: adapter())
    :ok
  end

  defp one_word(_inputs, pred), do: if(length(String.split(pred.answer)) == 1, do: 1.0, else: 0.0)

  test "BestOfN stops at the first attempt reaching the threshold, with rollout ids and temperature 1.0" do
    lm =
      Scripted.new([
        %{answer: "The city of Brussels"},
        %{answer: "Brussels"},
        %{answer: "never used"}
      ])

    best =
      BestOfN.new(Predict.new(sig("question -> answer"), lm: lm),
        n: 3,
        reward_fn: &one_word/2,
        threshold: 1.0
      )

    {{:ok, pred}, trace} =
      DSPex.Trace.with_trace(fn -> DSPex.call(best, question: "Capital of Belgium?") end)

    assert pred.answer == "Brussels"

    reqs = Scripted.requests(lm)
    assert Enum.map(reqs, & &1.params.rollout_id) == [0, 1]
    assert Enum.all?(reqs, &(&1.params.temperature == 1.0))
    # only the best attempt's trace is kept
    assert [{"module", _, %{answer: "Brussels"}}] = trace
    assert Enum.map(DSPex.Module.named_predictors(best), &elem(&1, 0)) == ["module"]
  end

  test "BestOfN keeps the highest reward when none reaches the threshold" do
    lm = Scripted.new([%{answer: "a b c"}, %{answer: "a b"}, %{answer: "a b c d"}])
    reward = fn _, p -> -length(String.split(p.answer)) end

    best =
      BestOfN.new(Predict.new(sig("question -> answer"), lm: lm),
        n: 3,
        reward_fn: reward,
        threshold: 0
      )

    assert {:ok, %{answer: "a b"}} = DSPex.call(best, question: "q")
    assert length(Scripted.requests(lm)) == 3
  end

  test "BestOfN tolerates fail_count failures, then returns the error" do
    lm = Scripted.new(["garbage", "garbage", %{answer: "ok"}])
    p = Predict.new(sig("question -> answer"), lm: lm, max_parse_retries: 0)
    best = BestOfN.new(p, n: 3, reward_fn: &one_word/2, threshold: 1.0)
    assert {:ok, %{answer: "ok"}} = DSPex.call(best, question: "q")

    lm = Scripted.new(["garbage", "garbage", %{answer: "ok"}])
    p = Predict.new(sig("question -> answer"), lm: lm, max_parse_retries: 0)
    best = BestOfN.new(p, n: 3, reward_fn: &one_word/2, threshold: 1.0, fail_count: 1)
    assert {:error, %DSPex.Error{type: :adapter_parse}} = DSPex.call(best, question: "q")
  end

  test "a predictor's own temperature wins over BestOfN's 1.0, like DSPy's config over lm kwargs" do
    lm = Scripted.new([%{answer: "x"}])

    best =
      BestOfN.new(Predict.new(sig("question -> answer"), lm: lm, temperature: 0.2),
        n: 1,
        reward_fn: &one_word/2
      )

    assert {:ok, _} = DSPex.call(best, question: "q")
    assert [%{params: %{temperature: 0.2, rollout_id: 0}}] = Scripted.requests(lm)
  end

  test "Refine asks for feedback and injects per-predictor hints on the next attempt" do
    feedback_lm =
      Scripted.new(fn _msgs, _params, ctx ->
        assert ctx.predictor == "refine.feedback"
        %{discussion: "Too long.", advice: ~s({"answer.predict": "Answer with one word."})}
      end)

    lm =
      Scripted.new(fn msgs, _params, _ctx ->
        user = List.last(msgs).content

        if user =~ "Answer with one word." do
          %{reasoning: "Hint followed.", answer: "Brussels"}
        else
          %{reasoning: "Long.", answer: "It is Brussels"}
        end
      end)

    program = DSPex.ModuleTest.QA2.new()

    refine =
      Refine.new(program,
        n: 3,
        reward_fn: &one_word/2,
        threshold: 1.0,
        feedback_lm: feedback_lm,
        reward_code: "one word"
      )

    assert {:ok, pred} = DSPex.call(refine, [question: "Capital of Belgium?"], lm: lm)
    assert pred.answer == "Brussels"

    [fb] = Scripted.requests(feedback_lm)
    prompt = Enum.map_join(fb.messages, "\n", & &1.content)
    assert prompt =~ "Module answer.predict"
    assert prompt =~ "It is Brussels"
    assert prompt =~ "one word"

    [first, second] = Scripted.requests(lm)
    refute Enum.any?(first.messages, &(&1.content =~ "hint_"))
    assert List.last(second.messages).content =~ "hint_"
  end

  test "inspect_modules renders like DSPy" do
    text = Refine.inspect_modules(DSPex.ChainOfThought.new(sig("question -> answer")))
    line = String.duplicate("-", 80)

    assert text ==
             Enum.join(
               [
                 line,
                 "Module predict",
                 "\tInput Fields:\n\t\t1. `question` (str):",
                 "\tOutput Fields:\n\t\t1. `reasoning` (str): \n\t\t2. `answer` (str):",
                 "\tOriginal Instructions: \n\t\tGiven the fields `question`, produce the fields `answer`.",
                 line
               ],
               "\n"
             )
  end
end

defmodule DSPex.ModuleTest.QA2 do
  use DSPex.Module
  import DSPex.ModulesTest.Support, only: [sig: 1]
  predictor :answer, DSPex.ChainOfThought, sig("question -> answer")

  @impl DSPex.Module
  def forward(program, inputs), do: DSPex.call(program.answer, inputs)
end
