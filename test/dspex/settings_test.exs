defmodule DSPex.SettingsTest do
  use ExUnit.Case, async: false

  doctest DSPex.Settings
  doctest DSPex.Example
  doctest DSPex.Prediction
  doctest DSPex.Trace
  doctest DSPex.LM.History
  doctest DSPex.LM.Scripted
  doctest DSPex.Predict
  doctest DSPex.ChainOfThought
  doctest DSPex.Module
  doctest DSPex.MultiChainComparison
  doctest DSPex.Majority
  doctest DSPex

  setup do
    saved = :persistent_term.get({DSPex.Settings, :global}, %{})
    on_exit(fn -> :persistent_term.put({DSPex.Settings, :global}, saved) end)
    :ok
  end

  test "precedence: process override > global > default > fallback" do
    assert DSPex.Settings.get(:max_errors) == 10
    DSPex.configure(max_errors: 3)
    assert DSPex.Settings.get(:max_errors) == 3
    assert DSPex.with_settings([max_errors: 1], fn -> DSPex.Settings.get(:max_errors) end) == 1
    assert DSPex.Settings.get(:max_errors) == 3
    assert DSPex.Settings.get(:unknown, :fb) == :fb
  end

  test "with_settings nests and restores on raise" do
    DSPex.with_settings([a: 1], fn ->
      DSPex.with_settings([b: 2], fn ->
        assert {DSPex.Settings.get(:a), DSPex.Settings.get(:b)} == {1, 2}
      end)

      assert DSPex.Settings.get(:b) == nil

      assert_raise RuntimeError, fn -> DSPex.with_settings([a: 9], fn -> raise "x" end) end
      assert DSPex.Settings.get(:a) == 1
    end)

    assert DSPex.Settings.capture() == %{}
  end

  test "overrides follow DSPex tasks, not plain processes" do
    DSPex.with_settings([num_threads: 3], fn ->
      assert Task.async(fn -> DSPex.Settings.get(:num_threads) end) |> Task.await() == 8
      assert DSPex.Settings.async(fn -> DSPex.Settings.get(:num_threads) end) |> Task.await() == 3

      assert DSPex.Settings.async_stream(1..3, fn _ -> DSPex.Settings.get(:num_threads) end)
             |> Enum.to_list() ==
               [ok: 3, ok: 3, ok: 3]
    end)
  end

  test "concurrent with_settings in many processes do not bleed" do
    results =
      1..50
      |> Enum.map(fn i ->
        Task.async(fn ->
          DSPex.with_settings([lm: {:lm, i}], fn ->
            Process.sleep(rem(i, 3))
            DSPex.Settings.get(:lm)
          end)
        end)
      end)
      |> Enum.map(&Task.await/1)

    assert results == for(i <- 1..50, do: {:lm, i})
  end

  test "DSPex.stream/3 explains when streaming is unavailable or delegates" do
    if Code.ensure_loaded?(DSPex.Streaming) do
      assert function_exported?(DSPex.Streaming, :stream, 3)
    else
      assert_raise UndefinedFunctionError, fn -> DSPex.stream(nil, []) end
    end
  end
end
