defmodule DSPex.ModuleTest.QA do
  use DSPex.Module
  import DSPex.ModulesTest.Support, only: [sig: 1]

  predictor :rewrite, sig("question -> query")
  predictor :answer, DSPex.ChainOfThought, sig("query, question -> answer")
  field(:suffix, "!")

  @impl DSPex.Module
  def forward(program, %{question: q}) do
    with {:ok, r} <- DSPex.call(program.rewrite, question: q),
         {:ok, a} <- DSPex.call(program.answer, query: r.query, question: q) do
      {:ok, DSPex.Prediction.put(a, :answer, a.answer <> program.suffix)}
    end
  end
end

defmodule DSPex.ModuleTest.Outer do
  use DSPex.Module
  import DSPex.ModulesTest.Support, only: [sig: 1]

  submodule(:inner, DSPex.ModuleTest.QA)
  field(:programs, [])
  field(:tools, %{})

  def new(opts) do
    p = super(opts)

    DSPex.Module.assign_names(%{
      p
      | programs: [DSPex.ChainOfThought.new(sig("a -> b")), DSPex.Predict.new(sig("a -> b"))],
        tools: %{"x" => DSPex.Predict.new(sig("a -> b"))}
    })
  end

  @impl DSPex.Module
  def forward(program, inputs), do: DSPex.call(program.inner, inputs)
end

defmodule DSPex.ModuleTest.Classify do
  @moduledoc "Classify the sentiment of a sentence."
  use DSPex.Signature
  input :sentence, :string
  output :sentiment, {:literal, ["positive", "negative", "neutral"]}
  output :confidence, :float, desc: "between 0 and 1"
end

defmodule DSPex.ModuleTest.Sentiment do
  use DSPex.Module
  predictor :classify, DSPex.ModuleTest.Classify
  predictor(:explain, DSPex.ChainOfThought, DSPex.ModuleTest.Classify, temperature: 0.3)

  @impl DSPex.Module
  def forward(program, inputs), do: DSPex.call(program.classify, inputs)
end

defmodule DSPex.ModuleTest do
  use ExUnit.Case, async: false
  doctest DSPex.Module

  import DSPex.ModulesTest.Support
  alias DSPex.{LM.Scripted, ModuleTest.QA, ModuleTest.Outer, Predict}

  setup do
    keep_global_settings()
    DSPex.configure(adapter: adapter())
    :ok
  end

  test "programs are structs with named predictors" do
    qa = QA.new()
    assert %QA{suffix: "!"} = qa
    assert qa.rewrite.name == "rewrite"
    assert qa.answer.predict.name == "answer.predict"

    assert Enum.map(DSPex.Module.named_predictors(qa), &elem(&1, 0)) == [
             "rewrite",
             "answer.predict"
           ]

    assert Enum.map(DSPex.Module.named_predictors(Outer.new([])), &elem(&1, 0)) == [
             "inner.rewrite",
             "inner.answer.predict",
             "programs[0].predict",
             "programs[1]",
             "tools['x']"
           ]

    assert QA.new(suffix: "?").suffix == "?"
  end

  test "chain of thought prepends reasoning and calls the inner predictor" do
    cot = DSPex.ChainOfThought.new(sig("question -> answer"))
    [r | _] = cot.predict.signature.outputs
    assert {r.name, r.type, r.desc, r.prefix} == {:reasoning, :str, nil, "Reasoning:"}
    lm = Scripted.new([%{reasoning: "Because.", answer: "42"}])
    assert {:ok, pred} = DSPex.call(cot, [question: "q"], lm: lm)
    assert {pred.reasoning, pred.answer} == {"Because.", "42"}
    assert DSPex.Prediction.to_list(pred) == [reasoning: "Because.", answer: "42"]
  end

  test "DSPex.call runs forward inside a module span with per-call lm" do
    lm =
      Scripted.new(fn _msgs, _params, ctx ->
        case ctx.predictor do
          "rewrite" -> %{query: "capital france"}
          "answer.predict" -> %{reasoning: "It is known.", answer: "Paris"}
        end
      end)

    ref =
      DSPex.TelemetryTest.attach_event_handlers(self(), [
        [:dspex, :module, :call, :stop],
        [:dspex, :predict, :stop]
      ])

    {{:ok, pred}, trace} =
      DSPex.Trace.with_trace(fn ->
        DSPex.call(QA.new(), [question: "Capital of France?"], lm: lm)
      end)

    assert pred.answer == "Paris!"

    assert [
             {"rewrite", %{question: _}, %{query: "capital france"}},
             {"answer.predict", %{query: _}, %{answer: "Paris"}}
           ] = trace

    assert_receive {[:dspex, :predict, :stop], ^ref, _, %{predictor: "rewrite"}}
    assert_receive {[:dspex, :predict, :stop], ^ref, _, %{predictor: "answer.predict"}}
    assert_receive {[:dspex, :module, :call, :stop], ^ref, _, %{module: QA, status: :ok}}
    DSPex.TelemetryTest.detach(ref)
  end

  test "signature modules work in the DSL and typed outputs are parsed" do
    if real_chat?() and real_signature?() do
      prog = DSPex.ModuleTest.Sentiment.new()
      assert prog.classify.signature.instructions == "Classify the sentiment of a sentence."
      assert prog.explain.predict.config == %{temperature: 0.3}
      lm = Scripted.new([%{sentiment: "positive", confidence: 0.9}])
      assert {:ok, pred} = DSPex.call(prog, [sentence: "I love it"], lm: lm)
      assert {pred.sentiment, pred.confidence} == {"positive", 0.9}
    end
  end

  test "errors inside forward come back as {:error, _}" do
    lm = Scripted.new([])

    assert {:error, %DSPex.Error{type: :scripted_exhausted}} =
             DSPex.call(QA.new(), [question: "q"], lm: lm)
  end

  test "track_usage attaches usage to module predictions" do
    lm =
      Scripted.new(
        fn _, _, ctx ->
          if ctx.predictor == "rewrite", do: %{query: "x"}, else: %{reasoning: "r", answer: "a"}
        end,
        model: "mm"
      )

    DSPex.with_settings([track_usage: true, lm: lm], fn ->
      {:ok, pred} = DSPex.call(QA.new(), question: "q")
      assert %{"mm" => %{total_tokens: t}} = pred.lm_usage
      assert t > 0
    end)
  end

  test "map_predictors, reset, set_lm, get_lm" do
    lm = Scripted.new([])
    qa = QA.new() |> DSPex.Module.set_lm(lm)
    assert DSPex.Module.get_lm(qa) == lm
    qa = DSPex.Module.map_predictors(qa, fn p -> %{p | demos: [%{question: "d", query: "e"}]} end)
    assert Enum.all?(DSPex.Module.predictors(qa), &(&1.demos != []))
    qa = DSPex.Module.reset(qa)
    assert Enum.all?(DSPex.Module.predictors(qa), &(&1.demos == [] and &1.lm == nil))
    assert %Predict{name: "rewrite"} = DSPex.Module.get_predictor(qa, "rewrite")
  end

  test "examples and predictions" do
    ex = DSPex.Example.new(question: "q", answer: "a") |> DSPex.Example.with_inputs([:question])
    lm = Scripted.new([%{answer: "a"}])
    assert {:ok, %{answer: "a"}} = DSPex.call(Predict.new(sig("question -> answer"), lm: lm), ex)
    assert_raise ArgumentError, fn -> DSPex.Example.inputs(DSPex.Example.new(a: 1)) end
    assert inspect(DSPex.Prediction.new(answer: "x")) =~ "#DSPex.Prediction<answer: \"x\">"
  end

  test "majority picks the most common normalized answer, ties to the earliest" do
    pred =
      DSPex.Prediction.from_completions([
        %{answer: "B"},
        %{answer: "a"},
        %{answer: "b."},
        %{answer: "A"}
      ])

    assert DSPex.majority(pred).answer == "B"
    assert DSPex.majority([%{x: "1", y: "z"}, %{x: "2", y: "z"}], field: :x).x == "1"
  end
end
