defmodule DSPex.Examples.DemoTest do
  # `make demo` is the README's first command: run examples/demo.exs as it runs there (a
  # separate `mix run`, real port processes, loopback HTTP), without fetching a model.
  use ExUnit.Case, async: false

  @moduletag timeout: 300_000

  test "examples/demo.exs runs end to end and shows every step" do
    {out, status} =
      System.cmd("mix", ["run", "examples/demo.exs"],
        env: [
          {"MIX_ENV", "test"},
          {"DSPEX_SKIP_MODEL_FETCH", "1"},
          {"DSPEX_SKIP_DEPS", "1"}
        ],
        stderr_to_stdout: true
      )

    assert status == 0, out

    for step <- [
          "Signatures",
          "Predict",
          "ChainOfThought",
          "Parse failure",
          "A real HTTP call",
          "Streaming",
          "Tools and a ReAct agent",
          "Serving the program over HTTP",
          "Evaluate -> optimize -> evaluate",
          "Optimizing instructions: MIPROv2",
          "Local model"
        ],
        do: assert(out =~ "== " <> step, "missing step: #{step}")

    assert out =~ "POST /v1/programs/qa            -> 200"
    assert out =~ "resumed run: finished"
    assert out =~ ~r/chart: \S+\.svg/
  end
end
