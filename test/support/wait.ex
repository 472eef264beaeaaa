defmodule DSPex.Test.Wait do
  @moduledoc false
  # Polls a condition that becomes true asynchronously (a port exiting, a pool's stats
  # settling). Returns true as soon as it holds; fails the test after `ms`.

  import ExUnit.Assertions, only: [flunk: 1]

  @spec until((() -> as_boolean(term)), non_neg_integer) :: true
  def until(fun, ms \\ 5_000) do
    deadline = System.monotonic_time(:millisecond) + ms
    poll(fun, deadline, ms)
  end

  defp poll(fun, deadline, ms) do
    cond do
      fun.() -> true
      System.monotonic_time(:millisecond) > deadline -> flunk("condition not met in #{ms} ms")
      true -> Process.sleep(10) && poll(fun, deadline, ms)
    end
  end
end
