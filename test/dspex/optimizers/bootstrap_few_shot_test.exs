defmodule DSPex.Optimizers.BootstrapFewShotTest do
  use ExUnit.Case, async: true

  alias DSPex.Optimizers.BootstrapFewShot

  doctest BootstrapFewShot
end
