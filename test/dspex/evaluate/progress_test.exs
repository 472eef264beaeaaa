defmodule DSPex.Evaluate.ProgressTest do
  use ExUnit.Case, async: true

  alias DSPex.Evaluate.Progress

  doctest DSPex.Evaluate.Progress

  test "the terminal bar: percentage, partial blocks, counts, elapsed<remaining and rate" do
    line = Progress.bar_line("Average Metric: 9.00 / 12 (75.0%)", 12, 18, 2.0, 20)

    assert line ==
             "Average Metric: 9.00 / 12 (75.0%):  66%|█████████████▎      | 12/18 [00:02<00:01, 6.00it/s]"

    assert Progress.bar_line("d", 18, 18, 4000.0, 10) ==
             "d: 100%|██████████| 18/18 [1:06:40<00:00, 222.22s/it]"

    assert Progress.bar_line("d", 1, 4, 4.0, 8) =~ "[00:04<00:12, 4.00s/it]"
  end

  test "on a terminal it redraws one line in place and ends it at finish" do
    {:ok, dev} = StringIO.open("")
    p = Progress.new(4, device: dev, tty: true)
    p = Progress.update(p, 1, 1, 1)
    _ = Progress.finish(p, 4, 3, 4)
    {_, out} = StringIO.contents(dev)

    assert String.starts_with?(out, "\rAverage Metric: 1.00 / 1 (100.0%):  25%|")
    assert String.ends_with?(out, "\e[K\n")
    assert out =~ "\rAverage Metric: 3.00 / 4 (75.0%): 100%|"
    assert length(String.split(out, "\n")) == 2
  end

  test "terminal detection answers for stderr and says no for other devices" do
    assert is_boolean(Progress.tty?(:standard_error))
    assert Progress.tty?(:standard_io) == false
  end

  test "disabled progress writes nothing" do
    {:ok, dev} = StringIO.open("")
    p = Progress.new(2, device: dev, enabled: false)
    p |> Progress.update(1, 1, 1) |> Progress.finish(2, 2, 2)
    assert StringIO.contents(dev) == {"", ""}
  end
end
