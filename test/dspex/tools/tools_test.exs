defmodule DSPex.ToolsTest do
  use ExUnit.Case, async: true

  alias DSPex.{Error, Tools, ToolCalls}
  alias DSPex.Test.{NamedTool, ToolsSupport, WeatherTool}

  doctest DSPex.Tools
  doctest DSPex.ToolCalls

  test "a program's tool list: modules and named functions, in order" do
    tools = Tools.new([WeatherTool, &ToolsSupport.search/2, NamedTool])
    assert Tools.names(tools) == ["weather_tool", "search", "lookup"]
    assert {:ok, %DSPex.Tool{name: "search"}} = Tools.fetch(tools, "search")
    assert Tools.execute(tools, "search", %{"query" => "x", "k" => 1}) == {:ok, ["x 1"]}

    assert Tools.observe(tools, "weather_tool", %{"city" => "Atlantis"}) ==
             "Execution error in weather_tool: no such city"

    assert {:error,
            %Error{type: :tool_not_found, details: %{known: ["weather_tool", "search", "lookup"]}}} =
             Tools.execute(tools, "Search", %{})

    assert_raise ArgumentError, ~r/registered already/, fn ->
      Tools.register(tools, &ToolsSupport.search/2)
    end
  end

  describe "ToolCalls" do
    test "accepts DSPy's shapes" do
      expected = [%DSPex.ToolCall{id: nil, name: "f", args: %{"x" => 1}}]

      for value <- [
            %{"tool_calls" => [%{"name" => "f", "args" => %{"x" => 1}}]},
            [%{"name" => "f", "arguments" => ~s({"x": 1})}],
            %{name: "f", args: %{x: 1}},
            [%{"function" => %{"name" => "f", "arguments" => "{'x': 1"}}]
          ] do
        assert {:ok, %ToolCalls{tool_calls: ^expected}} = ToolCalls.new(value)
      end

      assert {:error, %Error{type: :invalid_tool_calls}} = ToolCalls.new(%{"tool_calls" => "f"})
      assert {:error, %Error{type: :invalid_tool_calls}} = ToolCalls.new([%{"name" => "f"}])
    end

    test "execute runs the calls concurrently and keeps their order" do
      # "wait" finishes only when "wake" (a later call) reaches it: they must overlap.
      tab = :ets.new(:rendezvous, [:public])

      meet =
        DSPex.Tool.new(
          fn
            "wait" ->
              :ets.insert(tab, {:waiter, self()})
              receive(do: (:go -> "woken"), after: (5_000 -> "nobody came"))

            "wake" ->
              DSPex.Test.Wait.until(fn -> :ets.lookup(tab, :waiter) != [] end)
              [{:waiter, pid}] = :ets.lookup(tab, :waiter)
              send(pid, :go)
              "woke"
          end,
          name: "meet",
          args: [role: :string]
        )

      calls =
        ToolCalls.from_provider([
          %{id: "a", function: %{name: "meet", arguments: ~s({"role": "wait"})}},
          %{id: "b", function: %{name: "meet", arguments: ~s({"role": "wake"})}},
          %{id: "c", function: %{name: "missing", arguments: "{}"}}
        ])

      results = ToolCalls.execute(calls, [meet])

      assert [
               %{id: "a", name: "meet", result: {:ok, "woken"}},
               %{id: "b", result: {:ok, "woke"}},
               %{id: "c", result: {:error, %Error{type: :tool_not_found}}}
             ] = results

      [assistant | tool_msgs] = ToolCalls.messages(calls, results)
      assert Enum.map(assistant.tool_calls, & &1.id) == ["a", "b", "c"]

      assert Enum.map(tool_msgs, & &1.content) ==
               [
                 "woken",
                 "woke",
                 "Execution error in missing: Tool missing is not one of the registered tools: meet."
               ]
    end
  end
end
