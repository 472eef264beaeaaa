defmodule DSPex.LM.HistoryTest do
  # The history is global: not async.
  use ExUnit.Case, async: false

  alias DSPex.LM.History

  doctest DSPex.LM.History

  setup do
    History.clear()
    on_exit(&History.clear/0)
  end

  defp entry(i, bytes),
    do: %{model: "m", messages: [], outputs: [:crypto.strong_rand_bytes(bytes)], usage: %{}, i: i}

  # Issue 8 #7: 300 replies of 1 MB used to pin 301 MB (10 000 such entries, 10 GB).
  test "the history is bounded in bytes, by default 64 MiB" do
    assert DSPex.Settings.get(:max_history_bytes) == 64 * 1024 * 1024
    mb = 1024 * 1024

    for i <- 1..300, do: History.record(entry(i, mb))

    assert History.bytes() <= 64 * mb + mb
    assert History.size() in 60..65
    # the newest entries are the ones kept, and the byte count matches what is held
    entries = History.last(History.size())
    assert List.last(entries).i == 300
    assert Enum.map(entries, & &1.i) == Enum.to_list((301 - length(entries))..300)
    assert History.bytes() == entries |> Enum.map(&:erlang.external_size/1) |> Enum.sum()
  end

  test "max_history_bytes is configurable; the newest entry is always kept" do
    DSPex.with_settings([max_history_bytes: 100_000], fn ->
      for i <- 1..20, do: History.record(entry(i, 30_000))
      assert History.size() == 3
      assert History.bytes() <= 100_000

      History.record(entry(21, 500_000))
      assert [%{i: 21}] = History.last(5)
    end)

    DSPex.with_settings([max_history_size: 2], fn ->
      for i <- 22..25, do: History.record(entry(i, 10))
      assert Enum.map(History.last(5), & &1.i) == [24, 25]
    end)
  end

  test "concurrent writers keep the byte count exact" do
    DSPex.with_settings([max_history_bytes: 200_000], fn ->
      1..8
      |> Enum.map(fn w ->
        DSPex.Settings.async(fn ->
          for i <- 1..50, do: History.record(entry(w * 100 + i, 5_000))
        end)
      end)
      |> Enum.each(&Task.await/1)
    end)

    held = History.last(History.size())
    assert History.bytes() == held |> Enum.map(&:erlang.external_size/1) |> Enum.sum()
    assert History.bytes() <= 200_000
  end
end
