# A tool-using agent (ReAct) over Elixir functions.
#
#   mix run examples/react_agent.exs
#
# Offline with DSPex.LM.Scripted; a real model with DSPEX_EXAMPLE_LM=openai/gpt-4o-mini.
# Each tool call runs in its own supervised task with a timeout; a failing tool becomes an
# observation the agent reads ("Execution error in ...") and the agent goes on.

defmodule Example.Weather do
  @moduledoc "The current weather in a city."
  use DSPex.Tool, name: "get_weather", timeout: 5_000

  param :city, :string, desc: "City name"
  param :unit, {:literal, ["C", "F"]}, default: "C"

  @impl DSPex.Tool
  def run(%{city: "Atlantis"}), do: {:error, "no weather station in Atlantis"}
  def run(%{city: city, unit: "C"}), do: %{"city" => city, "temp" => 21, "sky" => "sunny"}
  def run(%{city: city, unit: "F"}), do: %{"city" => city, "temp" => 70, "sky" => "sunny"}
end

# Any function can be a tool once its parameters are declared:
convert =
  DSPex.Tool.new(fn celsius -> celsius * 9 / 5 + 32 end,
    name: "celsius_to_fahrenheit",
    desc: "Converts a temperature.",
    args: [celsius: :float]
  )

lm =
  case System.get_env("DSPEX_EXAMPLE_LM") do
    nil ->
      DSPex.LM.Scripted.new([
        %{
          next_thought: "Check Atlantis first.",
          next_tool_name: "get_weather",
          next_tool_args: ~s({"city": "Atlantis"})
        },
        %{
          next_thought: "No data there; try Lisbon.",
          next_tool_name: "get_weather",
          next_tool_args: ~s({"city": "Lisbon"})
        },
        %{
          next_thought: "Convert 21 C.",
          next_tool_name: "celsius_to_fahrenheit",
          next_tool_args: ~s({"celsius": 21})
        },
        %{next_thought: "I have everything.", next_tool_name: "finish", next_tool_args: "{}"},
        %{
          reasoning: "Atlantis has no station; Lisbon is 21 C (69.8 F) and sunny.",
          answer: "Lisbon: sunny, 21 C / 69.8 F"
        }
      ])

    model ->
      DSPex.LM.new(model)
  end

agent =
  DSPex.ReAct.new("question -> answer",
    tools: [Example.Weather, convert],
    max_iters: 6,
    lm: lm
  )

{:ok, pred} = DSPex.call(agent, question: "Weather in Atlantis or else Lisbon, in both units?")

IO.puts("Trajectory:")

for {key, value} <- pred.trajectory do
  IO.puts("  #{String.pad_trailing(key, 15)} #{inspect(value)}")
end

IO.puts("\nAnswer: #{pred.answer}")

# The tools as the agent's instructions show them to the LM:
IO.puts("\n" <> DSPex.Tool.format(DSPex.Tool.new(Example.Weather)))
