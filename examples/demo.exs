# DSPex demo: `make demo` (= mix run examples/demo.exs).
#
# Runs offline with DSPex.LM.Scripted, a deterministic LM like DSPy's DummyLM: each
# scripted reply is a map of output fields that the LM renders in the requesting
# predictor's adapter format. Swap in `DSPex.LM.new("openai/gpt-4o-mini")` for a real
# model; nothing else changes.

defmodule Demo.RAG do
  @moduledoc "A two-step program: rewrite the question into a search query, then answer with chain of thought."
  use DSPex.Module

  predictor :rewrite, "question -> query"
  predictor :answer, DSPex.ChainOfThought, "context: list[str], question -> answer"

  @corpus [
    "Paris is the capital and largest city of France.",
    "Brussels is the capital of Belgium.",
    "The Eiffel Tower was completed in 1889."
  ]

  @impl DSPex.Module
  def forward(program, %{question: question}) do
    with {:ok, q} <- DSPex.call(program.rewrite, question: question) do
      context =
        Enum.filter(@corpus, &String.contains?(String.downcase(&1), String.downcase(q.query)))

      DSPex.call(program.answer, context: context, question: question)
    end
  end
end

section = fn title -> IO.puts(["\n", IO.ANSI.format([:bright, "== #{title} =="])]) end

lm =
  DSPex.LM.Scripted.new(
    [
      # 1. Predict
      %{answer: "Paris"},
      # 2. ChainOfThought
      %{reasoning: "Two plus two is four; doubling gives eight.", answer: "8"},
      # 3. the composed program: rewrite, then answer
      %{query: "capital of Belgium"},
      %{reasoning: "The context says Brussels is the capital of Belgium.", answer: "Brussels"},
      # 4. a reply that cannot be parsed, then the corrected one after DSPex re-asks
      "The answer is probably Lisbon.",
      %{answer: "Lisbon"}
    ],
    model: "scripted/demo"
  )

section.("Signatures: DSPy's string syntax, parsed in C")

{:ok, sig} =
  DSPex.Signature.parse("question, context: list[str] -> answer: str, confidence: float")

for f <- sig.inputs ++ sig.outputs,
    do: IO.puts("  #{f.kind} #{f.name} :: #{inspect(f.type)}  prefix=#{inspect(f.prefix)}")

IO.puts("  instructions: #{sig.instructions}")
{:error, err} = DSPex.Signature.parse("question -> answer -> extra")
IO.puts("  bad signature -> #{inspect(err.type)} at column #{err.details.column}: #{err.message}")

section.("JSON: repair and extraction of messy LM output")

messy = """
Sure! Here is the result:
```json
{name: 'Ada', langs: ['Elixir', 'C',], active: True, note: None, // trailing comment
"""

{:ok, repaired} = DSPex.JSON.repair(messy)
IO.puts("  repaired: #{String.trim(repaired)}")
{:ok, value} = DSPex.JSON.extract(messy)
IO.puts("  extracted: #{inspect(value)}")
IO.puts("  encoded (sorted keys): #{DSPex.JSON.encode!(value, sort_keys: true)}")

DSPex.configure(lm: lm)

section.("Predict")
qa = DSPex.Predict.new("question -> answer")
{:ok, pred} = DSPex.call(qa, question: "What is the capital of France?")
IO.puts("answer: #{pred.answer}")

section.("ChainOfThought")
cot = DSPex.ChainOfThought.new("question -> answer: int")
{:ok, pred} = DSPex.call(cot, question: "What is (2 + 2) * 2?")
IO.puts("reasoning: #{pred.reasoning}")
IO.puts("answer: #{inspect(pred.answer)}")

section.("A composed program (use DSPex.Module)")
rag = Demo.RAG.new()

IO.puts(
  "predictors: #{rag |> DSPex.Module.named_predictors() |> Enum.map_join(", ", &elem(&1, 0))}"
)

{{:ok, pred}, trace} =
  DSPex.Trace.with_trace(fn -> DSPex.call(rag, question: "What is the capital of Belgium?") end)

IO.puts("answer: #{pred.answer}")
IO.puts("trace:")

for {name, inputs, outputs} <- trace,
    do: IO.puts("  #{name}: #{inspect(inputs)} -> #{inspect(outputs)}")

section.("Parse failure: DSPex re-asks with the error instead of failing")
{:ok, pred} = DSPex.call(qa, question: "What is the capital of Portugal?")
IO.puts("answer after one retry: #{pred.answer}")

section.("Save (DSPy-compatible JSON)")
path = Path.join(System.tmp_dir!(), "dspex_demo_rag.json")
:ok = DSPex.Program.save(rag, path)

IO.puts(
  "wrote #{path} (#{File.stat!(path).size} bytes); keys: " <>
    (path |> File.read!() |> DSPex.JSON.decode!() |> Map.keys() |> Enum.sort() |> Enum.join(", "))
)

section.("The last prompt, as DSPy's inspect_history prints it")
DSPex.inspect_history(1)

section.("Usage (per model)")
IO.inspect(DSPex.LM.History.usage_totals())

section.("Options are checked: a typo is an error, not a silent provider field")

try do
  DSPex.Predict.new("question -> answer", tempreature: 0.2)
rescue
  e in ArgumentError -> IO.puts(String.slice(e.message, 0, 110) <> " ...")
end

# ---------------------------------------------------------------------------------------
# The same program against a real HTTP provider. No LM API is reachable here, so the demo
# starts a fake OpenAI-compatible server on 127.0.0.1 (the one the tests use). Every call
# below goes through the supervised port program (libuv + libcurl) and DSPex.Pool.
Code.require_file("../test/support/loopback_server.ex", __DIR__)
# A fresh on-disk cache for this run, so the first call below really goes over HTTP.
System.put_env(
  "DSPEX_CACHE_DIR",
  Path.join(System.tmp_dir!(), "dspex-demo-#{System.unique_integer([:positive])}")
)

alias DSPex.Test.LoopbackServer, as: FakeOpenAI

reply = "[[ ## answer ## ]]\nParis\n\n[[ ## completed ## ]]"

completion =
  DSPex.JSON.encode!(%{
    id: "chatcmpl-demo",
    object: "chat.completion",
    model: "gpt-4o-mini",
    choices: [
      %{index: 0, message: %{role: "assistant", content: reply}, finish_reason: "stop"}
    ],
    usage: %{prompt_tokens: 120, completion_tokens: 12, total_tokens: 132}
  })

chunk = fn text ->
  DSPex.JSON.encode!(%{
    id: "chatcmpl-demo",
    object: "chat.completion.chunk",
    choices: [%{index: 0, delta: %{content: text}, finish_reason: nil}]
  })
end

# Split the reply into small pieces, as a real model streams tokens.
pieces = for <<piece::binary-size(4) <- reply>>, do: piece
tail = binary_part(reply, length(pieces) * 4, byte_size(reply) - length(pieces) * 4)
sse = Enum.map(pieces ++ [tail], &{nil, chunk.(&1)}) ++ [{nil, "[DONE]"}]

{:ok, srv} =
  FakeOpenAI.start_link(
    routes: %{
      "/v1/chat/completions" => fn req ->
        cond do
          # the first request is rate-limited: the port program retries after Retry-After
          req.n == 1 ->
            %{status: 429, retry_after: "0", body: ~s({"error":{"message":"slow down"}})}

          req.body =~ ~s("stream":true) ->
            %{sse: sse, split: {:random, 7}}

          true ->
            %{status: 200, headers: [{"content-type", "application/json"}], body: completion}
        end
      end
    }
  )

openai =
  DSPex.LM.new("openai/gpt-4o-mini",
    api_base: FakeOpenAI.url(srv, "/v1"),
    api_key: "sk-demo-not-a-real-key",
    temperature: 0.0
  )

section.("A real HTTP call (OpenAI-compatible, over the port program)")
IO.puts("lm: #{inspect(openai)}")

{{:ok, pred}, usage} =
  DSPex.track_usage(fn ->
    DSPex.call(qa, [question: "What is the capital of France?"], lm: openai)
  end)

IO.puts(
  "answer: #{pred.answer}   (HTTP requests so far: #{FakeOpenAI.count(srv, "/v1/chat/completions")}, one 429 retried)"
)

IO.puts("usage: #{inspect(usage)}")

{{:ok, _}, usage} =
  DSPex.track_usage(fn ->
    DSPex.call(qa, [question: "What is the capital of France?"], lm: openai)
  end)

IO.puts("same call again: cache hit, usage #{inspect(usage)}")

section.("Streaming: field chunks as the model writes them, then the prediction")

DSPex.stream(qa, [question: "And the capital of France, streamed?"], lm: openai)
|> Enum.each(fn
  %DSPex.StreamChunk{} = c ->
    IO.puts("  chunk #{c.predictor}.#{c.field}: #{inspect(c.text)}#{if c.last?, do: " (last)"}")

  %DSPex.Prediction{} = p ->
    IO.puts("  final prediction: answer=#{inspect(p.answer)}")
end)

section.("Pool")
stats = DSPex.Pool.stats()

IO.puts(
  "#{stats.size} port workers, #{stats.requests} requests, #{stats.port_exits} port exits, " <>
    "OS pids #{Enum.map_join(stats.workers, ", ", & &1.os_pid)}"
)

# Tools and a ReAct agent, then the program served over HTTP: examples/demo/agent_and_server.exs
Code.require_file("demo/agent_and_server.exs", __DIR__)
Demo.AgentAndServer.run(section, openai)

# Evaluate -> optimize -> evaluate: examples/demo/optimize.exs
Code.require_file("demo/optimize.exs", __DIR__)
Demo.Optimize.run(section)

# Optimizing instructions (MIPROv2 as a journaled, resumable job): examples/demo/mipro.exs
Code.require_file("demo/mipro.exs", __DIR__)
Demo.MIPRO.run(section)

# A real model in process (examples/demo/local.exs): skipped when SmolLM2 is unavailable.
Code.require_file("demo/local.exs", __DIR__)
Demo.Local.run(section)

section.("Your turn: the same fake OpenAI server in iex")

IO.puts("""
  $ iex -S mix
  iex> Code.require_file("examples/support/fake_openai.exs")
  iex> fake = DSPex.Examples.FakeOpenAI.start(answers: %{"answer" => "Paris"})
  iex> DSPex.configure(lm: DSPex.LM.new("openai/gpt-4o-mini", api_base: fake.url, api_key: "sk-local"))
  iex> DSPex.call(DSPex.Predict.new("question -> answer"), question: "Capital of France?")
  (the README's "Your first session" goes on from there: fallbacks, health, serving over HTTP)
""")
