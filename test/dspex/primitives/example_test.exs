defmodule DSPex.ExampleTest do
  use ExUnit.Case, async: false
  doctest DSPex.Example
end
