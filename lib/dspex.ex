defmodule DSPex do
  @moduledoc """
  DSPy for the BEAM: declarative language-model programs (signatures, predict modules,
  tools) that can be optimized against a metric.

  See the README for the workflow. Hot paths (JSON, repair, signature parsing, prompt
  rendering, output parsing) run in C NIFs; provider I/O runs in a supervised port
  program.
  """
end
