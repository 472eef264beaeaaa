# The demo's evaluate -> optimize -> evaluate step (called from examples/demo.exs).
#
# The LM is NOT a language model. It is a stand-in served over real HTTP on 127.0.0.1 (an
# OpenAI-compatible loopback server, through DSPex's port program): asked to convert a
# quantity, it gets the conversion right only when the prompt holds a worked example (a
# demo) of the same conversion, and otherwise echoes the number unconverted. That is a
# caricature of in-context learning, chosen so that every point of the score change below
# comes from the demos the optimizer picked, which you can see printed.

Code.require_file("../../test/support/loopback_server.ex", __DIR__)

defmodule Demo.Optimize do
  @moduledoc false

  alias DSPex.Optimizers.BootstrapFewShotWithRandomSearch, as: RandomSearch
  alias DSPex.Test.LoopbackServer

  # unit in the question => {target unit, converted value}
  defp convert("km", v), do: {"miles", v * 0.621371}
  defp convert("kg", v), do: {"pounds", v * 2.20462}
  defp convert("°C", v), do: {"°F", v * 9 / 5 + 32}
  defp convert("liters", v), do: {"gallons", v * 0.264172}
  defp convert(_, v), do: {nil, v}

  @train [{"km", 5}, {"kg", 3}, {"°C", 20}, {"liters", 10}, {"km", 42}, {"kg", 70}] ++
           [{"°C", -5}, {"liters", 2}, {"km", 1}, {"kg", 12}, {"°C", 37}, {"liters", 50}]
  @dev [{"km", 10}, {"kg", 1}, {"°C", 100}, {"liters", 4}, {"km", 21}, {"kg", 55}] ++
         [{"°C", 0}, {"liters", 19}, {"km", 3}, {"kg", 8}, {"°C", 25}, {"liters", 1}]

  def run(section) do
    section.("Evaluate -> optimize -> evaluate (BootstrapFewShotWithRandomSearch)")

    IO.puts("""
    LM: not a language model. A stand-in on an OpenAI-compatible HTTP server on 127.0.0.1
    that converts a quantity correctly only when the prompt holds a worked example of the
    same conversion, and otherwise repeats the number. So the score moves only because of
    the demos the optimizer chooses.
    """)

    {:ok, srv} =
      LoopbackServer.start_link(routes: %{"/v1/chat/completions" => &answer/1}, record: false)

    lm =
      DSPex.LM.new("openai/unit-converter",
        api_base: LoopbackServer.url(srv, "/v1"),
        api_key: "sk-demo-not-a-real-key",
        cache: false
      )

    trainset = Enum.map(@train, &example/1)
    devset = Enum.map(@dev, &example/1)
    program = DSPex.Predict.new("question -> answer")
    metric = &DSPex.Metrics.answer_exact_match/3

    DSPex.with_settings([lm: lm], fn ->
      {:ok, before} = DSPex.Evaluate.run(program, devset, metric: metric, max_concurrency: 8)
      IO.puts("zero-shot:  #{before.score}% of #{length(devset)} dev questions")

      {micros, {:ok, search}} =
        :timer.tc(fn ->
          RandomSearch.run(program, trainset,
            metric: metric,
            num_candidate_programs: 6,
            max_bootstrapped_demos: 2,
            max_labeled_demos: 4,
            max_concurrency: 8
          )
        end)

      IO.puts(
        "search:     #{length(search.candidates)} candidate programs bootstrapped and scored on the trainset in " <>
          "#{Float.round(micros / 1_000_000, 2)} s (" <>
          Enum.map_join(
            Enum.sort_by(search.candidates, & &1.seed),
            ", ",
            &"seed #{&1.seed}: #{&1.score}"
          ) <>
          ")"
      )

      {:ok, after_} =
        DSPex.Evaluate.run(search.program, devset, metric: metric, max_concurrency: 8)

      IO.puts(
        "optimized:  #{after_.score}% of #{length(devset)} dev questions " <>
          "(#{Float.round(after_.score - before.score, 2)} points)"
      )

      IO.puts("demos chosen:")

      for d <- search.program.demos do
        tag = if d[:augmented], do: "bootstrapped", else: "labeled"
        IO.puts("  [#{tag}] #{d.question} -> #{d.answer}")
      end

      path = Path.join(System.tmp_dir!(), "dspex_demo_optimized.json")
      :ok = DSPex.Program.save(search.program, path)

      IO.puts(
        "saved the optimized program to #{path} (DSPy's format: dspy.Predict(...).load(path))"
      )
    end)

    LoopbackServer.stop(srv)
  end

  defp example({unit, value}) do
    {target, converted} = convert(unit, value)

    DSPex.Example.new(question: "Convert #{value} #{unit} to #{target}.", answer: fmt(converted))
    |> DSPex.Example.with_inputs([:question])
  end

  defp fmt(x), do: :erlang.float_to_binary(x * 1.0, decimals: 1)

  # The stand-in LM (see the top of this file).
  defp answer(req) do
    messages = DSPex.JSON.decode!(req.body)["messages"]
    last = List.last(messages)["content"]
    earlier = messages |> Enum.drop(-1) |> Enum.map_join("\n", & &1["content"])

    text =
      case Regex.run(~r/Convert (-?[\d.]+) (\S+) to/u, last) do
        [_, number, unit] ->
          {value, _} = Float.parse(number)
          {target, converted} = convert(unit, value)

          shown =
            earlier =~
              ~r/Convert -?[\d.]+ #{Regex.escape(unit)} to #{Regex.escape(target || "")}/u

          if shown, do: fmt(converted), else: number

        _ ->
          "I do not know."
      end

    %{
      status: 200,
      headers: [{"content-type", "application/json"}],
      body:
        DSPex.JSON.encode!(%{
          id: "chatcmpl-demo",
          object: "chat.completion",
          model: "unit-converter",
          choices: [
            %{
              index: 0,
              finish_reason: "stop",
              message: %{
                role: "assistant",
                content: "[[ ## answer ## ]]\n#{text}\n\n[[ ## completed ## ]]"
              }
            }
          ],
          usage: %{prompt_tokens: 50, completion_tokens: 5, total_tokens: 55}
        })
    }
  end
end
