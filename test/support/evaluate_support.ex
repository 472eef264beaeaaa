defmodule DSPex.Test.EvaluateSupport do
  @moduledoc """
  Programs and metrics for the Evaluate tests that must exist on peer nodes too
  (compiled into the test build, so `DSPex.Test.Cluster` peers load them).
  """

  defmodule Notify do
    @moduledoc """
    A program that tells `notify` on which node each example starts
    (`{:started, node, question}`), then asks its predictor.
    """
    defstruct qa: nil, notify: nil

    def forward(%__MODULE__{} = p, %{question: q}) do
      if p.notify, do: send(p.notify, {:started, node(), q})
      DSPex.call(p.qa, question: q)
    end
  end

  @doc "Exact match on `:answer` (a named function: usable on every node)."
  def answer_match(example, pred), do: example[:answer] == pred.answer

  @doc "The same as an anonymous function defined in this compiled module."
  def answer_match_fun, do: fn example, pred -> example[:answer] == pred.answer end

  @doc "The answer the loopback LM gives for question `q` (`q<i>` → `a<i>`, but wrong for multiples of 4)."
  def loopback_answer("q" <> i) do
    n = String.to_integer(i)
    if rem(n, 4) == 0, do: "wrong", else: "a#{n}"
  end

  def loopback_answer(_), do: "?"

  @doc "`n` examples `q<i>` → `a<i>` with `question` as input."
  def devset(n) do
    for i <- 1..n do
      DSPex.Example.new(question: "q#{i}", answer: "a#{i}")
      |> DSPex.Example.with_inputs([:question])
    end
  end
end
