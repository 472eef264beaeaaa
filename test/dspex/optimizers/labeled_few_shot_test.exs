defmodule DSPex.Optimizers.LabeledFewShotTest do
  use ExUnit.Case, async: true

  alias DSPex.Optimizers.LabeledFewShot

  doctest LabeledFewShot
end
