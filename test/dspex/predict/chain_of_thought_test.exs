defmodule DSPex.ChainOfThoughtTest do
  # Prompts of the signatures built by ChainOfThought, MultiChainComparison, Refine's
  # hint and OfferFeedback, compared byte for byte with DSPy 3.3.1's ChatAdapter
  # (test/fixtures/dspy/modules_saved/module_messages.json).
  use ExUnit.Case, async: false
  doctest DSPex.ChainOfThought

  import DSPex.ModulesTest.Support
  alias DSPex.Predict

  @golden Path.expand("../../fixtures/dspy/modules_saved/module_messages.json", __DIR__)

  setup do
    keep_global_settings()

    if real_chat?() and real_signature?() do
      DSPex.configure(adapter: DSPex.Adapter.Chat)
      {:ok, golden: @golden |> File.read!() |> DSPex.JSON.decode!()}
    else
      {:ok, golden: nil}
    end
  end

  defp messages(golden), do: Enum.map(golden, &%{role: &1["role"], content: &1["content"]})

  test "ChainOfThought", %{golden: g} do
    if g do
      cot = DSPex.ChainOfThought.new("question -> answer")
      assert {:ok, msgs} = Predict.format(cot.predict, question: "Why?")
      assert msgs == messages(g["cot"])
    end
  end

  test "MultiChainComparison", %{golden: g} do
    if g do
      mcc = DSPex.MultiChainComparison.new("question -> answer", m: 2)
      inputs = [question: "Q?", reasoning_attempt_1: "«a»", reasoning_attempt_2: "«b»"]
      assert {:ok, msgs} = Predict.format(mcc.predict, inputs)
      assert msgs == messages(g["mcc"])
    end
  end

  test "Refine's hint_ field", %{golden: g} do
    if g do
      p = %{Predict.new("question -> answer") | hint: "Be brief."}
      {:ok, msgs} = Predict.format(p, question: "Q?")

      assert msgs == messages(g["hint"])
    end
  end

  test "Refine's OfferFeedback signature", %{golden: g} do
    if g do
      sig = DSPex.Refine.offer_feedback()
      inputs = Map.new(sig.inputs, &{&1.name, "x"})
      assert {:ok, msgs} = Predict.format(Predict.new(sig), inputs)
      assert msgs == messages(g["offer_feedback"])
    end
  end
end
