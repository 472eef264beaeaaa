# The demo's tools-and-serving step (called from examples/demo.exs): a ReAct agent over
# two Elixir tools, then a program served over HTTP by DSPex.Server with an API key.
#
# The agent's LM is DSPex.LM.Scripted (DSPy's DummyLM: it replies with the scripted
# fields, rendered in the asking adapter's format); the tools really run, each in its own
# supervised task with a timeout. The served program talks to the demo's fake OpenAI
# server over real HTTP, and the HTTP requests to DSPex.Server are real too.

defmodule Demo.AgentAndServer.Weather do
  @moduledoc "The current weather in a city."
  use DSPex.Tool, name: "get_weather", timeout: 5_000

  param :city, :string, desc: "City name"

  @impl DSPex.Tool
  def run(%{city: "Atlantis"}), do: {:error, "no weather station in Atlantis"}
  def run(%{city: city}), do: %{"city" => city, "temp_c" => 21, "sky" => "sunny"}
end

defmodule Demo.AgentAndServer do
  @moduledoc false

  alias Demo.AgentAndServer.Weather

  def run(section, lm) do
    agent(section)
    serve(section, lm)
  end

  defp agent(section) do
    section.("Tools and a ReAct agent (scripted LM, real tools)")

    to_f =
      DSPex.Tool.new(fn celsius -> celsius * 9 / 5 + 32 end,
        name: "celsius_to_fahrenheit",
        desc: "Converts a temperature.",
        args: [celsius: :float]
      )

    lm =
      DSPex.LM.Scripted.new([
        %{
          next_thought: "Atlantis first.",
          next_tool_name: "get_weather",
          next_tool_args: ~s({"city": "Atlantis"})
        },
        %{
          next_thought: "No station; Lisbon.",
          next_tool_name: "get_weather",
          next_tool_args: ~s({"city": "Lisbon"})
        },
        %{
          next_thought: "21 C in F?",
          next_tool_name: "celsius_to_fahrenheit",
          next_tool_args: ~s({"celsius": 21})
        },
        %{next_thought: "Done.", next_tool_name: "finish", next_tool_args: "{}"},
        %{
          reasoning: "Atlantis has no station; Lisbon is 21 C.",
          answer: "Lisbon: sunny, 21 C (69.8 F)"
        }
      ])

    agent = DSPex.ReAct.new("question -> answer", tools: [Weather, to_f], max_iters: 6, lm: lm)
    {:ok, pred} = DSPex.call(agent, question: "Weather in Atlantis, or else Lisbon, in F?")

    for {key, value} <- pred.trajectory, String.starts_with?(key, ["tool_name", "observation"]) do
      IO.puts("  #{String.pad_trailing(key, 14)} #{inspect(value, printable_limit: 80)}")
    end

    IO.puts("  answer         #{pred.answer}")
    IO.puts("  (the failing tool became an observation; the agent went on)")
  end

  defp serve(section, lm) do
    section.("Serving the program over HTTP (DSPex.Server, API key, batch)")
    key = DSPex.Server.Keys.generate()
    qa = DSPex.Predict.new("question -> answer")

    {:ok, sup} =
      DSPex.Server.start_link(
        port: 0,
        programs: %{"qa" => qa},
        lm: lm,
        api_keys: [[id: "demo", key: key]]
      )

    port = DSPex.Server.port()
    url = "http://127.0.0.1:#{port}/v1/programs/qa"

    post = fn path, body, auth ->
      headers =
        if auth, do: [{~c"authorization", ~c"Bearer " ++ String.to_charlist(auth)}], else: []

      {:ok, {{_, status, _}, _, resp}} =
        :httpc.request(:post, {String.to_charlist(path), headers, ~c"application/json", body}, [],
          body_format: :binary
        )

      {status, resp}
    end

    {status, body} = post.(url, ~s({"question": "What is the capital of France?"}), key)

    IO.puts(
      "  POST /v1/programs/qa            -> #{status} #{body |> DSPex.JSON.decode!() |> Map.get("prediction") |> DSPex.JSON.encode!()}"
    )

    {status, body} = post.(url, ~s({"question": "?"}), "dsx_wrong")

    IO.puts(
      "  the same with a wrong key       -> #{status} #{body |> DSPex.JSON.decode!() |> get_in(["error", "type"])}"
    )

    batch = ~s({"inputs": [{"question": "Capital of France?"}, {"nope": 1}]})
    {status, body} = post.(url <> "/batch", batch, key)

    results =
      body
      |> DSPex.JSON.decode!()
      |> Map.get("results")
      |> Enum.map(&(Map.keys(&1) |> Enum.sort()))

    IO.puts("  POST /v1/programs/qa/batch      -> #{status}, per item: #{inspect(results)}")
    IO.puts("  (from a shell: mix dspex.serve --port 4000 --programs-dir priv/programs)")
    Supervisor.stop(sup)
  end
end
