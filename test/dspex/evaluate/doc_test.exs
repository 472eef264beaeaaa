defmodule DSPex.Evaluate.DocTest do
  use ExUnit.Case, async: true
  doctest DSPex.Evaluate
  doctest DSPex.Evaluate.Metric
  doctest DSPex.Evaluate.Worker
  doctest DSPex.Evaluate.Nodes
  doctest DSPex.Evaluate.Progress
  doctest DSPex.Evaluate.Table
  doctest DSPex.Evaluate.Result
  doctest DSPex.Dataset
  doctest DSPex.Dataset.CSV
end
