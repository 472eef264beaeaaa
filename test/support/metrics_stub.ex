defmodule DSPex.Test.MetricsStub do
  @moduledoc """
  A stand-in for `DSPex.Metrics` (lands on the `metrics` branch) so the tests of
  Evaluate's built-in metric path run before it is merged: `ensure!/0` compiles a small
  module with the same names (DSPy's EM on ASCII text) **at run time, only when the
  real module is absent**. Once `DSPex.Metrics` is in the build it does nothing and the
  same tests run against the real module.
  """

  @source ~S'''
  defmodule DSPex.Metrics do
    @moduledoc false

    def normalize_text(s) do
      s
      |> String.downcase()
      |> String.replace(~r/[[:punct:]]/, "")
      |> String.replace(~r/\b(a|an|the)\b/, " ")
      |> String.split()
      |> Enum.join(" ")
    end

    def em(pred, golds) when is_list(golds), do: Enum.any?(golds, &em(pred, &1))
    def em(pred, gold), do: normalize_text(pred) == normalize_text(gold)

    def answer_exact_match(example, pred, _trace \\ nil), do: em(pred.answer, example[:answer])

    def batch(:em, preds, golds), do: Enum.zip_with(preds, golds, &em/2)
  end
  '''

  @doc "Makes `DSPex.Metrics` available (the real one if present)."
  def ensure! do
    :global.trans({__MODULE__, self()}, fn ->
      unless Code.ensure_loaded?(DSPex.Metrics), do: Code.compile_string(@source)
    end)

    :ok
  end
end
