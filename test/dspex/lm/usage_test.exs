defmodule DSPex.UsageTest do
  use ExUnit.Case, async: true

  alias DSPex.Usage

  doctest DSPex.Usage

  @u %{
    prompt_tokens: 10,
    completion_tokens: 2,
    total_tokens: 12,
    cached_tokens: 1,
    reasoning_tokens: 0
  }

  test "scopes nest and both see inner usage" do
    {{inner_result, inner}, outer} =
      Usage.track(fn ->
        Usage.record("a", @u)

        Usage.track(fn ->
          Usage.record("b", @u)
          :inner
        end)
      end)

    assert inner_result == :inner
    assert inner == %{"b" => @u}
    assert outer == %{"a" => @u, "b" => @u}
  end

  test "usage follows DSPex tasks started inside the scope" do
    {_, usage} =
      Usage.track(fn ->
        1..4
        |> Enum.map(fn _ -> DSPex.Settings.async(fn -> Usage.record("m", @u) end) end)
        |> Enum.each(&Task.await/1)

        DSPex.Settings.async_stream(1..2, fn _ -> Usage.record("m", @u) end) |> Stream.run()
      end)

    assert usage["m"].total_tokens == 6 * 12
    assert usage["m"].cached_tokens == 6
  end

  test "no scope: record is a no-op; another process's scope is not affected" do
    parent = self()

    {_, usage} =
      Usage.track(fn ->
        spawn(fn ->
          Usage.record("x", @u)
          send(parent, :done)
        end)

        assert_receive :done
      end)

    assert usage == %{}
    assert Usage.record("x", @u) == :ok
  end

  test "a record after the scope closed is dropped" do
    {trackers, _} = Usage.track(fn -> DSPex.Settings.get(:usage_trackers) end)

    DSPex.Settings.with_settings([usage_trackers: trackers], fn ->
      assert Usage.record("late", @u) == :ok
    end)
  end

  test "DSPex.track_usage delegates here" do
    assert {:ok, %{"m" => %{total_tokens: 12}}} =
             DSPex.track_usage(fn ->
               Usage.record("m", @u)
               :ok
             end)
  end

  test "a scripted LM's usage shows in DSPex.track_usage exactly once" do
    lm = DSPex.LM.Scripted.new([%{answer: "Paris"}], model: "scripted/usage-once")
    qa = DSPex.Predict.new("question -> answer", lm: lm)

    {{:ok, pred}, usage} =
      DSPex.track_usage(fn -> DSPex.call(qa, question: "Capital of France?") end)

    # Scripted usage is bytes div 4: the single call's own numbers, not twice them.
    assert %{"scripted/usage-once" => %{prompt_tokens: p, completion_tokens: c} = u} = usage
    assert u.total_tokens == p + c
    assert DSPex.Prediction.usage(pred) == usage

    [%{messages: msgs}] = DSPex.LM.Scripted.requests(lm)
    prompt_bytes = msgs |> Enum.map(&byte_size(&1.content)) |> Enum.sum()
    assert p == div(prompt_bytes, 4)
  end

  test "cost with cached prompt price and unpriced models" do
    usage = %{
      "a" => %{prompt_tokens: 2_000_000, completion_tokens: 1_000_000, cached_tokens: 1_000_000},
      "b" => %{prompt_tokens: 5}
    }

    prices = %{"a" => %{prompt: 1.0, completion: 2.0, cached: 0.5}}
    assert %{total: 3.5, by_model: %{"a" => 3.5}, unpriced: ["b"]} = Usage.cost(usage, prices)
  end
end
