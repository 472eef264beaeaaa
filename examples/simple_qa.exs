# Simple question answering: a signature, a predictor, chain of thought.
#
#   mix run examples/simple_qa.exs
#
# Runs offline with DSPex.LM.Scripted (a deterministic LM, like DSPy's DummyLM). To use a
# real model, name it: DSPEX_EXAMPLE_LM=openai/gpt-4o-mini mix run examples/simple_qa.exs
# (the provider's key comes from its environment variable, e.g. OPENAI_API_KEY).

lm =
  case System.get_env("DSPEX_EXAMPLE_LM") do
    nil ->
      DSPex.LM.Scripted.new([
        %{answer: "Paris"},
        %{reasoning: "A dozen is twelve; half of that is six.", answer: "6"}
      ])

    model ->
      DSPex.LM.new(model)
  end

DSPex.configure(lm: lm)

# 1. Predict: "question -> answer" is DSPy's string signature syntax.
qa = DSPex.Predict.new("question -> answer")
{:ok, pred} = DSPex.call(qa, question: "What is the capital of France?")
IO.puts("Predict: #{pred.answer}")

# 2. ChainOfThought adds a `reasoning` output before the answer; typed outputs parse.
cot = DSPex.ChainOfThought.new("question -> answer: int")
{:ok, pred} = DSPex.call(cot, question: "How many eggs are in half a dozen?")
IO.puts("ChainOfThought: #{pred.answer} (#{pred.reasoning})")

# The exact prompt DSPy would send, without calling an LM:
{:ok, [system, _user]} = DSPex.Predict.format(qa, question: "What is the capital of France?")
IO.puts("\nSystem message of the Predict prompt:\n" <> system.content)
