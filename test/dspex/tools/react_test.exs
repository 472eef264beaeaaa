defmodule DSPex.ReActTest do
  use ExUnit.Case, async: true

  import ExUnit.CaptureLog

  alias DSPex.{Error, ReAct, Tool}
  alias DSPex.LM.Scripted
  alias DSPex.Test.{ToolsSupport, WeatherTool}

  doctest DSPex.ReAct

  defp step(thought, tool, args),
    do: %{next_thought: thought, next_tool_name: tool, next_tool_args: args}

  test "tool failures are observations the agent sees, and it goes on" do
    boom = Tool.new(fn -> raise "the index is offline" end, name: "boom", args: [])

    lm =
      Scripted.new([
        step("Try it.", "boom", "{}"),
        step("Weather instead.", "weather_tool", ~s({"city": "Atlantis"})),
        step("Bad args.", "weather_tool", ~s({"town": "Oslo"})),
        step("Done.", "finish", "{}"),
        %{reasoning: "Nothing worked.", answer: "unknown"}
      ])

    agent = ReAct.new("question -> answer", tools: [boom, WeatherTool], lm: lm)
    {:ok, pred} = DSPex.call(agent, question: "?")

    observations = for {"observation_" <> _, v} <- pred.trajectory, do: v

    assert observations == [
             "Execution error in boom: the index is offline",
             "Execution error in weather_tool: no such city",
             "Execution error in weather_tool: Arg town is not in the tool's args.",
             "Completed."
           ]

    assert pred.answer == "unknown"
    # the last step prompt showed the failures to the LM
    [_, _, _, last_step, _extract] = Scripted.requests(lm)

    assert List.last(last_step.messages).content =~
             "Execution error in weather_tool: no such city"
  end

  test "a step that cannot be parsed ends the trajectory; the outputs are still extracted" do
    lm =
      Scripted.new([
        step("Search.", "search", ~s({"query": "x", "k": 1})),
        "[[ ## next_thought ## ]]\nhmm\n\n[[ ## next_tool_name ## ]]\nlaunch_missiles\n\n[[ ## next_tool_args ## ]]\n{}",
        "still not a tool",
        %{reasoning: "Enough.", answer: "x 1"}
      ])

    agent = ReAct.new("question -> answer", tools: [&ToolsSupport.search/2], lm: lm)

    {result, log} = with_log(fn -> DSPex.call(agent, question: "?") end)
    assert {:ok, pred} = result
    assert pred.answer == "x 1"
    assert length(pred.trajectory) == 4
    assert log =~ "ending the trajectory: the agent's step could not be parsed"
    # the tool name the LM made up never became an atom
    assert_raise ArgumentError, fn -> String.to_existing_atom("launch_missiles") end
  end

  test "LM errors other than the context window end the call" do
    lm = Scripted.new(fn _, _ -> {:error, Error.new(:auth, "bad key")} end)
    agent = ReAct.new("question -> answer", tools: [WeatherTool], lm: lm)
    assert {:error, %Error{type: :auth}} = DSPex.call(agent, question: "?")
  end

  test "max_iters as an option and per call" do
    lm = Scripted.new([step("Again.", "weather_tool", ~s({"city": "Oslo"}))], cycle: true)
    agent = ReAct.new("question -> answer", tools: [WeatherTool], lm: lm, max_iters: 2)

    # the extraction reply is the same scripted step; with no answer field it re-asks
    # and fails: only the number of steps matters here
    DSPex.call(agent, question: "?")
    steps = for r <- Scripted.requests(lm), r.context.predictor == "react", do: r
    assert length(steps) == 2

    lm2 =
      Scripted.new([
        step("One.", "weather_tool", ~s({"city": "Oslo"})),
        %{reasoning: "r", answer: "a"}
      ])

    agent2 = ReAct.new("question -> answer", tools: [WeatherTool], lm: lm2, max_iters: 5)
    assert {:ok, pred} = DSPex.call(agent2, question: "?", max_iters: 1)
    assert length(pred.trajectory) == 4
  end

  test "construction" do
    assert_raise ArgumentError, ~r/may not be named "finish"/, fn ->
      ReAct.new("q -> a", tools: [Tool.new(fn -> 1 end, name: "finish", args: [])])
    end

    assert_raise ArgumentError, ~r/required option :tools/, fn -> ReAct.new("q -> a", []) end

    agent = ReAct.new("question, context: list[str] -> answer: int", tools: [WeatherTool])
    assert Enum.map(agent.react.signature.inputs, & &1.name) == [:question, :context, :trajectory]

    assert Enum.map(agent.react.signature.outputs, &{&1.name, &1.type}) == [
             {:next_thought, :str},
             {:next_tool_name, {:literal, ["weather_tool", "finish"]}},
             {:next_tool_args, {:dict, :str, :any}}
           ]

    assert Enum.map(agent.extract.predict.signature.outputs, & &1.name) == [:reasoning, :answer]

    assert agent.react.signature.instructions =~
             "(1) weather_tool, whose description is <desc>The current weather in a city.</desc>. It takes arguments {'city': {'type': 'string', 'description': 'City name'}, 'unit': {'enum': ['C', 'F'], 'type': 'string', 'default': 'C'}}."
  end

  test "saved state names the predictors as DSPy does and loads back" do
    agent = ReAct.new("question -> answer", tools: [WeatherTool])

    demo = %{
      question: "q",
      trajectory: "",
      next_thought: "t",
      next_tool_name: "finish",
      next_tool_args: %{}
    }

    agent = %{agent | react: %{agent.react | demos: [demo]}}
    path = Path.join(System.tmp_dir!(), "dspex_react_#{System.unique_integer([:positive])}.json")
    :ok = DSPex.Program.save(agent, path)
    saved = path |> File.read!() |> DSPex.JSON.decode!()
    assert Map.keys(saved) |> Enum.sort() == ["extract.predict", "metadata", "react"]

    {:ok, loaded} =
      DSPex.Program.load(ReAct.new("question -> answer", tools: [WeatherTool]), path)

    assert loaded.react.demos == [demo]
    File.rm(path)
  end

  test "the trajectory observation of any Elixir term renders" do
    odd = Tool.new(fn -> {:ok, {:tuple, self(), %{a: [1, :b]}}} end, name: "odd", args: [])

    lm =
      Scripted.new([
        step("Odd.", "odd", "{}"),
        step("Done.", "finish", "{}"),
        %{reasoning: "r", answer: "a"}
      ])

    agent = ReAct.new("question -> answer", tools: [odd], lm: lm)
    assert {:ok, pred} = DSPex.call(agent, question: "?")
    {"observation_0", obs} = List.keyfind(pred.trajectory, "observation_0", 0)
    assert obs =~ "{:tuple, #PID<"
  end
end
