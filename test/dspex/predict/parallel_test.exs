defmodule DSPex.ParallelTest do
  use ExUnit.Case, async: false
  doctest DSPex.Parallel
  doctest DSPex.MultiChainComparison
  doctest DSPex.Majority

  import DSPex.ModulesTest.Support
  alias DSPex.{LM.Scripted, MultiChainComparison, Parallel, Predict}

  setup do
    keep_global_settings()
    DSPex.configure(adapter: adapter())
    :ok
  end

  defp echo_lm do
    Scripted.new(fn msgs, _ ->
      [_, q] = Regex.run(~r/item-(\d+)/, Enum.map_join(msgs, "\n", & &1.content))
      if q == "13", do: "unparseable", else: %{answer: "answer-#{q}"}
    end)
  end

  test "batch returns results in order, with settings propagated to workers" do
    qa = Predict.new(sig("question -> answer"))
    inputs = for i <- 1..20, do: [question: "item-#{i}"]

    {{:ok, results}, trace} =
      DSPex.with_settings([lm: echo_lm()], fn ->
        DSPex.Trace.with_trace(fn -> Parallel.batch(qa, inputs, num_threads: 4) end)
      end)

    assert length(results) == 20

    for {res, i} <- Enum.with_index(results, 1) do
      if i == 13 do
        assert {:error, %DSPex.Error{type: :adapter_parse}} = res
      else
        assert {:ok, %{answer: a}} = res
        assert a == "answer-#{i}"
      end
    end

    assert length(trace) == 19

    assert Enum.map(trace, fn {_, i, _} -> i.question end) ==
             for(i <- 1..20, i != 13, do: "item-#{i}")
  end

  test "DSPex.batch delegates to Parallel.batch" do
    qa = Predict.new(sig("question -> answer"), lm: Scripted.new([%{answer: "x"}], cycle: true))

    assert {:ok, [{:ok, %{answer: "x"}}, {:ok, _}]} =
             DSPex.batch(qa, [[question: "a"], %{question: "b"}])
  end

  test "stops when max_errors is reached" do
    qa =
      Predict.new(sig("question -> answer"),
        lm: Scripted.new(fn _, _ -> "bad" end),
        max_parse_retries: 0
      )

    inputs = for i <- 1..50, do: %{question: "q#{i}"}

    assert {:error, %DSPex.Error{type: :too_many_errors} = e} =
             Parallel.batch(qa, inputs, max_errors: 3, num_threads: 2)

    assert length(e.details.errors) == 3
  end

  test "per-item timeout kills the item and reports :timeout" do
    slow =
      Scripted.new(fn msgs, _ ->
        if List.last(msgs).content =~ "slow", do: Process.sleep(:infinity)
        %{answer: "fast"}
      end)

    qa = Predict.new(sig("question -> answer"), lm: slow)

    assert {:ok, [ok, err]} =
             Parallel.run([{qa, [question: "fast"]}, {qa, [question: "slow"]}], timeout: 200)

    assert {:ok, %{answer: "fast"}} = ok
    assert {:error, %DSPex.Error{type: :timeout}} = err
  end

  test "multi chain comparison formats attempts exactly like DSPy" do
    lm = Scripted.new([%{rationale: "All agree.", answer: "Paris"}])
    mcc = MultiChainComparison.new(sig("question -> answer"), m: 2, lm: lm)
    [r | _] = mcc.predict.signature.outputs
    assert r.prefix == "Accurate Reasoning: Thank you everyone. Let's now holistically"

    completions = [
      %{reasoning: "  the capital is Paris\nmore", answer: "Paris\nextra"},
      DSPex.Prediction.new(rationale: "it is Lyon", answer: "Lyon")
    ]

    assert {:ok, %{answer: "Paris", rationale: "All agree."}} =
             DSPex.call(mcc, completions: completions, question: "Capital of France?")

    [req] = Scripted.requests(lm)
    user = List.last(req.messages).content
    assert user =~ "«I'm trying to the capital is Paris I'm not sure but my prediction is Paris»"
    assert user =~ "«I'm trying to it is Lyon I'm not sure but my prediction is Lyon»"
    assert req.params.temperature == 0.7

    assert {:error, %DSPex.Error{message: msg}} =
             DSPex.call(mcc, completions: [hd(completions)], question: "q")

    assert msg =~ "doesn't match the expected number M (2)"
  end
end
