defmodule DSPex.PredictionTest do
  use ExUnit.Case, async: false
  doctest DSPex.Prediction
end
