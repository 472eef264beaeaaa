defmodule DSPex.TraceTest do
  use ExUnit.Case, async: false
  doctest DSPex.Trace
end
