defmodule DSPex.ExamplesTest do
  # Every example in examples/ runs as a user would run it (mix run examples/<name>.exs),
  # offline with its scripted LM, and prints what it promises.
  use ExUnit.Case, async: false

  import ExUnit.CaptureIO

  @examples Path.expand("../../../examples", __DIR__)

  setup do
    System.delete_env("DSPEX_EXAMPLE_LM")
    on_exit(fn -> DSPex.Settings.reset_global() end)
  end

  defp run(name) do
    capture_io(fn -> Code.eval_file(Path.join(@examples, name <> ".exs")) end)
  end

  test "simple_qa" do
    out = run("simple_qa")
    assert out =~ "Predict: Paris"
    assert out =~ "ChainOfThought: 6"
    assert out =~ "In adhering to this structure, your objective is: "
  end

  test "react_agent" do
    out = run("react_agent")

    assert out =~
             ~s(observation_0   "Execution error in get_weather: no weather station in Atlantis")

    assert out =~ "observation_2   69.8"
    assert out =~ "Answer: Lisbon: sunny, 21 C / 69.8 F"
    assert out =~ "get_weather, whose description is <desc>The current weather in a city.</desc>."
  end

  test "rag" do
    out = run("rag")
    assert out =~ "Answer: An OTP supervisor restarts it"
    assert out =~ "OTP supervisors restart crashed processes"
  end

  test "multi_stage" do
    out = run("multi_stage")
    assert out =~ "category: billing (urgency 4)"
    assert out =~ "approved: true []"
    assert out =~ "predictors: classify, draft.predict, check"
  end

  test "typed_extraction" do
    out = run("typed_extraction")
    assert out =~ "total: 111.0 EUR, paid: true"
    assert out =~ "`invoice`: items[1].unit_price: Input should be a valid number"
    assert out =~ ~s("title": "Invoice")
  end
end
