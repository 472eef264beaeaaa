defmodule DSPex.SettingsTest do
  use ExUnit.Case, async: false

  doctest DSPex.Settings

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

  test "configure and with_settings check keys and values against the schema" do
    assert_raise ArgumentError,
                 ~r/unknown option :max_trace for DSPex.configure\/1 \(did you mean :max_trace_size\?\); valid options: :adapter, /,
                 fn -> DSPex.configure(max_trace: 5) end

    assert_raise ArgumentError,
                 ~r/:num_threads of DSPex.with_settings\/2: expected a positive integer/,
                 fn ->
                   DSPex.with_settings([num_threads: 0], fn -> :never end)
                 end

    # configure stores only what it is given: other global settings are kept
    DSPex.configure(max_errors: 4)
    DSPex.configure(num_threads: 2)
    assert {DSPex.Settings.get(:max_errors), DSPex.Settings.get(:num_threads)} == {4, 2}
  end

  test "with_settings nests and restores on raise" do
    DSPex.with_settings([max_errors: 1], fn ->
      DSPex.with_settings([num_threads: 2], fn ->
        assert {DSPex.Settings.get(:max_errors), DSPex.Settings.get(:num_threads)} == {1, 2}
      end)

      assert DSPex.Settings.get(:num_threads) == 8

      assert_raise RuntimeError, fn ->
        DSPex.with_settings([max_errors: 9], fn -> raise "x" end)
      end

      assert DSPex.Settings.get(:max_errors) == 1
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
          DSPex.with_settings([max_trace_size: i], fn ->
            Process.sleep(rem(i, 3))
            DSPex.Settings.get(:max_trace_size)
          end)
        end)
      end)
      |> Enum.map(&Task.await/1)

    assert results == Enum.to_list(1..50)
  end
end
