defmodule DSPexTest do
  use ExUnit.Case, async: false
  doctest DSPex
end
