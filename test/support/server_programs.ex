defmodule DSPex.Test.ServerPrograms.Rewrite do
  @moduledoc false
  # A two-predictor program for the server tests: rewrite the question, then answer.
  use DSPex.Module

  predictor :rewrite, "question -> query"
  predictor :answer, "query, question -> answer"

  @impl DSPex.Module
  def forward(program, %{question: q}) do
    with {:ok, r} <- DSPex.call(program.rewrite, question: q) do
      DSPex.call(program.answer, query: r.query, question: q)
    end
  end
end

defmodule DSPex.Test.ServerPrograms do
  @moduledoc false
  # Scripted LMs for the server tests.

  @doc """
  A scripted LM answering every request with `fields` (rendered for the asking
  signature), after `delay_ms`; `gauge` (an :atomics of 2) records the calls in
  flight (slot 1) and the most seen at once (slot 2).
  """
  def lm(fields, opts \\ []) do
    delay = Keyword.get(opts, :delay_ms, 0)
    gauge = Keyword.get(opts, :gauge)

    DSPex.LM.Scripted.new(
      fn _messages, _params, call ->
        if gauge do
          n = :atomics.add_get(gauge, 1, 1)
          bump_max(gauge, n)
        end

        if delay > 0, do: Process.sleep(delay)
        if gauge, do: :atomics.sub(gauge, 1, 1)

        case fields do
          f when is_function(f, 1) -> f.(call)
          f -> f
        end
      end,
      model: Keyword.get(opts, :model, "scripted/test")
    )
  end

  defp bump_max(gauge, n) do
    max = :atomics.get(gauge, 2)

    if n > max and :atomics.compare_exchange(gauge, 2, max, n) != :ok,
      do: bump_max(gauge, n),
      else: :ok
  end
end
