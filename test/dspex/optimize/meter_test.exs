defmodule DSPex.Optimize.MeterTest do
  # The LM meter: call caps count calls in flight, cache hits are free, cost comes from
  # the price table, a deadline and a stop refuse calls, and usage still reaches
  # DSPex.Usage scopes and the call history through the metered LM.
  use ExUnit.Case, async: true

  alias DSPex.Optimize.Meter

  doctest DSPex.Optimize.Spec
  doctest DSPex.Optimize.Progress

  defp lm, do: DSPex.LM.Scripted.new(["ok"], cycle: true, model: "m/one")

  defp call(metered),
    do: DSPex.BaseLM.request(metered, [%{role: "user", content: "hello there"}], %{})

  test "max_lm_calls refuses the call past the cap" do
    {:ok, m} = Meter.start_link(max_lm_calls: 2)
    l = Meter.wrap(m, lm())
    assert {:ok, _} = call(l)
    assert {:ok, _} = call(l)

    assert {:error, %DSPex.Error{type: :budget_exhausted, details: %{budget: :max_lm_calls}}} =
             call(l)

    t = Meter.totals(m)
    assert t.lm_calls == 2 and t.refused == 1
    assert Meter.exhausted(m) == {:max_lm_calls, 2}
  end

  test "cost from the price table, max_cost, unpriced models listed" do
    {:ok, m} =
      Meter.start_link(max_cost: 0.000005, prices: %{"m/one" => %{prompt: 1.0, completion: 1.0}})

    l = Meter.wrap(m, lm())
    {:ok, _} = call(l)
    t = Meter.totals(m)
    # scripted usage: prompt 11 bytes div 4 = 2 tokens, completion 1 token -> 3 tokens at $1/1M
    assert_in_delta t.cost, 3.0e-6, 1.0e-12
    {:ok, _} = call(l)
    assert {:error, %DSPex.Error{type: :budget_exhausted}} = call(l)

    {:ok, m2} = Meter.start_link([])
    {:ok, _} = call(Meter.wrap(m2, lm()))
    assert Meter.totals(m2).unpriced == ["m/one"]
  end

  test "a deadline, a stop, carried spending" do
    {:ok, m} = Meter.start_link(max_wall: 1)
    Process.sleep(5)

    assert {:error, %DSPex.Error{type: :budget_exhausted, details: %{budget: :max_wall}}} =
             call(Meter.wrap(m, lm()))

    {:ok, m} = Meter.start_link(max_lm_calls: 10)
    :ok = Meter.carry(m, %{lm_calls: 10, cost: 1.0})
    assert Meter.exhausted(m) == {:max_lm_calls, 10}

    {:ok, m} = Meter.start_link([])
    :ok = Meter.stop(m, :cancelled)
    assert {:error, %DSPex.Error{type: :cancelled}} = call(Meter.wrap(m, lm()))
  end

  test "a metered LM still records usage scopes, wraps once and unwraps" do
    {:ok, m} = Meter.start_link([])
    l = Meter.wrap(m, lm())
    assert Meter.wrap(m, l) == l and Meter.unwrap(l) == l.inner and Meter.wrap(m, nil) == nil
    {{:ok, _}, usage} = DSPex.Usage.track(fn -> call(l) end)
    assert %{"m/one" => %{total_tokens: 3}} = usage
    assert Meter.totals(m).by_model["m/one"].total_tokens == 3
    p = DSPex.Predict.new("q -> a", lm: lm())
    assert %Meter{} = Meter.wrap_program(m, p).lm
  end
end
