defmodule DSPex.ToolTest do
  use ExUnit.Case, async: true

  import ExUnit.CaptureLog

  alias DSPex.{Error, Tool}
  alias DSPex.Test.{NamedTool, ToolsSupport, WeatherTool}

  doctest DSPex.Tool
  doctest DSPex.Tool.Param
  doctest DSPex.Tool.Introspect

  describe "new/2 from a named function" do
    test "reads names, literal defaults, @spec types and @doc" do
      tool = Tool.new(&ToolsSupport.search/2)

      assert tool.name == "search"
      assert tool.desc == "Searches the corpus for `query`.\n\nReturns the top `k` passages."
      assert [q, k] = tool.params
      assert {q.name, q.type, q.default} == {:query, :str, nil}
      assert {k.name, k.type, k.default} == {:k, :int, {:value, 2}}
      assert tool.style == :positional
      assert Tool.call(tool, %{"query" => "elixir"}) == {:ok, ["elixir 1", "elixir 2"]}
    end

    test "named spec arguments, atom-literal unions and optionals" do
      tool = Tool.new({ToolsSupport, :convert})
      types = Map.new(tool.params, &{&1.name, &1.type})

      assert types == %{
               celsius: :float,
               unit: {:literal, ["kelvin", "fahrenheit"]},
               note: {:optional, :str}
             }

      assert Tool.call(tool, %{"celsius" => 100, "unit" => "kelvin", "note" => nil}) ==
               {:ok, 373.15}
    end

    test "args: override what is read; options override names" do
      tool = Tool.new(&ToolsSupport.undocumented/1, name: "echo", args: [a: :integer])
      assert {tool.name, hd(tool.params).type} == {"echo", :int}
      assert Tool.call(tool, %{"a" => 7}) == {:ok, 7}
    end

    test "explains what is missing" do
      assert_raise ArgumentError, ~r/needs its parameters/, fn -> Tool.new(fn x -> x end) end

      assert_raise ArgumentError, ~r/needs a name/, fn ->
        Tool.new(fn x -> x end, args: [x: :str])
      end

      assert_raise ArgumentError, ~r/invalid tool name "a b"/, fn ->
        Tool.new(fn -> 1 end, name: "a b", args: [])
      end

      assert_raise ArgumentError, ~r/takes 2 argument\(s\) but 3 parameter\(s\)/, fn ->
        Tool.new(fn a, b -> {a, b} end, name: "x", args: [a: :str, b: :str, c: :str])
      end

      assert_raise ArgumentError, ~r/unknown type/, fn ->
        Tool.new(fn a -> a end, name: "x", args: [a: :strng])
      end

      assert_raise ArgumentError, ~r/unknown option :nme/, fn ->
        Tool.new(fn -> 1 end, nme: "x")
      end

      assert_raise ArgumentError, ~r/is not a tool/, fn -> Tool.new(Enum) end
    end
  end

  describe "use DSPex.Tool" do
    test "name from the module, desc from @moduledoc, params in order" do
      tool = Tool.new(WeatherTool)
      assert tool.name == "weather_tool"
      assert tool.desc == "The current weather in a city."

      assert Enum.map(tool.params, &{&1.name, &1.type, &1.desc}) ==
               [{:city, :str, "City name"}, {:unit, {:literal, ["C", "F"]}, nil}]

      assert Tool.call(tool, %{"city" => "Oslo"}) == {:ok, "Oslo: 21 degrees C"}

      assert {:error, %Error{type: :tool_error, message: "no such city"}} =
               Tool.call(tool, %{"city" => "Atlantis"})
    end

    test "use options and {:ok, value} returns" do
      tool = Tool.new(NamedTool)
      assert {tool.name, tool.desc, tool.timeout} == {"lookup", "Looks things up.", 1_000}
      assert Tool.call(tool, %{keys: ["ab"]}) == {:ok, %{"ab" => 2}}
      assert Tool.new(NamedTool, name: "renamed").name == "renamed"
    end
  end

  describe "call/3" do
    setup do
      tool =
        Tool.new(fn q, k -> {q, k} end,
          name: "top",
          args: [q: :string, k: [type: :integer, default: 3]]
        )

      %{tool: tool}
    end

    test "validates before calling, in DSPy's words", %{tool: tool} do
      assert {:error, %Error{type: :tool_args, message: "Arg zz is not in the tool's args."}} =
               Tool.call(tool, %{"q" => "a", "zz" => 1})

      assert {:error, %Error{type: :tool_args, message: "Arg q is required but was not given."}} =
               Tool.call(tool, %{"k" => 1})

      assert {:error, %Error{type: :tool_args, message: "Arg k is invalid: " <> _}} =
               Tool.call(tool, %{"q" => "a", "k" => "lots"})

      assert {:error,
              %Error{type: :tool_args, message: "the tool's arguments must be a JSON object" <> _}} =
               Tool.call(tool, ["a"])
    end

    test "coerces and fills defaults", %{tool: tool} do
      assert Tool.call(tool, %{"q" => "a", "k" => "5"}) == {:ok, {"a", 5}}
      assert Tool.call(tool, %{q: "a"}) == {:ok, {"a", 3}}
    end

    test "LM-written names never become atoms", %{tool: tool} do
      key = "never_an_atom_#{System.unique_integer([:positive])}"
      before = :erlang.system_info(:atom_count)
      assert {:error, _} = Tool.call(tool, %{key => 1, "q" => "x"})
      assert {:error, _} = DSPex.Tools.execute(DSPex.Tools.new([tool]), key <> "_tool", %{})
      assert :erlang.system_info(:atom_count) == before
    end

    test "a raise, throw, exit or timeout is an error, never a crash or a log line" do
      me = self()

      tools = [
        {Tool.new(fn -> raise ArgumentError, "bad input" end, name: "r", args: []), :tool_error,
         "bad input"},
        {Tool.new(fn -> throw(:oops) end, name: "t", args: []), :tool_error,
         "the tool threw: :oops"},
        {Tool.new(fn -> exit(:shutdown) end, name: "e", args: []), :tool_error,
         "the tool exited: :shutdown"},
        {Tool.new(fn -> Process.exit(self(), :kill) end, name: "k", args: []), :tool_error,
         "the tool exited: :killed"},
        {Tool.new(
           fn ->
             send(me, {:tool_pid, self()})
             Process.sleep(:infinity)
           end,
           name: "s",
           args: [],
           timeout: 50
         ), :tool_timeout, "the tool did not finish within 50 ms"}
      ]

      log =
        capture_log(fn ->
          for {tool, type, message} <- tools do
            assert {:error, %Error{type: ^type, message: ^message}} = Tool.call(tool, %{})
          end
        end)

      assert log == ""
      assert_received {:tool_pid, pid}
      refute Process.alive?(pid)
    end

    test "runs under DSPex.Tools.TaskSupervisor with the caller's settings" do
      tool =
        Tool.new(
          fn ->
            {self(), DSPex.Settings.get(:num_threads), Process.get(:"$ancestors")}
          end,
          name: "where",
          args: []
        )

      {:ok, {pid, threads, ancestors}} =
        DSPex.with_settings([num_threads: 3], fn -> Tool.call(tool, %{}) end)

      assert pid != self()
      assert threads == 3
      assert DSPex.Tools.TaskSupervisor in ancestors
    end

    test "emits a [:dspex, :tool, :call] span", %{tool: tool} do
      ref =
        DSPex.TelemetryTest.attach_event_handlers(self(), [
          [:dspex, :tool, :call, :start],
          [:dspex, :tool, :call, :stop]
        ])

      try do
        Tool.call(tool, %{"q" => "a"}, call_id: "c1")
        Tool.call(tool, %{}, call_id: "c2")

        assert_received {[:dspex, :tool, :call, :start], ^ref, %{monotonic_time: _},
                         %{tool: "top", call_id: "c1"}}

        assert_received {[:dspex, :tool, :call, :stop], ^ref, %{duration: _},
                         %{tool: "top", call_id: "c1", status: :ok}}

        assert_received {[:dspex, :tool, :call, :stop], ^ref, _,
                         %{call_id: "c2", status: :error, error: :tool_args}}
      after
        DSPex.TelemetryTest.detach(ref)
      end
    end

    test "map-style functions get atom keys; extra_args passes unknown ones on" do
      tool =
        Tool.new(fn args -> args end,
          name: "kw",
          args: [a: :integer, b: :integer],
          extra_args: true
        )

      assert Tool.call(tool, %{"a" => 1, "b" => 2, "other" => "x"}) ==
               {:ok, %{:a => 1, :b => 2, "other" => "x"}}

      assert_raise ArgumentError, ~r/extra_args/, fn ->
        Tool.new(fn a -> a end, name: "p", args: [a: :int], extra_args: true)
      end
    end
  end
end
