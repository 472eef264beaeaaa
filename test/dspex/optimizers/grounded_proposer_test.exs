defmodule DSPex.Optimizers.GroundedProposerTest do
  # The pieces of the proposer with exact DSPy text rules: strip_prefix, Python reprs of
  # examples (the dataset summary's input), create_example_string, the instruction
  # history. The whole proposer is golden-checked in mipro_v2_test.exs.
  use ExUnit.Case, async: true

  alias DSPex.Optimizers.GroundedProposer, as: G

  doctest G

  test "strip_prefix as Python's re.sub + strip('\"')" do
    assert G.strip_prefix("Proposed Instruction: Add the two numbers.") == "Add the two numbers."

    assert G.strip_prefix(~s("Compute the sum carefully, variant 2.")) ==
             "Compute the sum carefully, variant 2."

    assert G.strip_prefix("**Instruction:** Read the question") == "** Read the question"
    assert G.strip_prefix("Do X: carefully") == "carefully"
    assert G.strip_prefix("one two three four five six: x") == "one two three four five six: x"
    assert G.strip_prefix("no label here") == "no label here"
  end

  test "Python repr: quotes, escapes, non-printables" do
    assert G.py_repr("plain") == "'plain'"
    assert G.py_repr("it's") == ~s("it's")
    assert G.py_repr(~s(both ' and ")) == ~s('both \\' and "')
    assert G.py_repr("tab\tnl\nbs\\") == "'tab\\tnl\\nbs\\\\'"
    assert G.py_repr("nbsp\u00a0zwsp\u200bé") == "'nbsp\\xa0zwsp\\u200bé'"
    assert G.py_repr(<<1, 127>>) == "'\\x01\\x7f'"
    assert G.py_repr([1, 2.5, nil, true, {1}]) == "[1, 2.5, None, True, (1,)]"
  end

  test "examples repr: input keys first, then labels sorted; dspy_ fields hidden" do
    ex =
      DSPex.Example.new(question: "q", answer: "a", context: ["c1"], dspy_uuid: "x")
      |> DSPex.Example.with_inputs([:question, :context])

    assert G.examples_repr([ex]) ==
             "[Example({'question': 'q', 'context': ['c1'], 'answer': 'a'}) (input_keys={'context', 'question'})]"
  end

  test "instruction history: averages per instruction, top n, worst first" do
    p = fn ins ->
      DSPex.Predict.new("q -> a", [])
      |> then(&%{&1 | signature: DSPex.Signature.with_instructions(&1.signature, ins)})
    end

    history = [
      %{program: p.("A"), score: 50.0},
      %{program: p.("B"), score: 70.0},
      %{program: p.("A"), score: 60.0}
    ]

    assert G.history_string(history, 0, 5) == "A | Score: 55.0\n\nB | Score: 70.0\n\n"
    assert G.history_string(history, 0, 1) == "B | Score: 70.0\n\n"
  end
end
