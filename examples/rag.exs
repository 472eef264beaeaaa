# Retrieval-augmented generation with a search tool: a program that searches a small
# in-memory corpus (a DSPex.Tool, so an agent could call it too) and answers with chain
# of thought from the passages it found.
#
#   mix run examples/rag.exs
#
# Offline with DSPex.LM.Scripted; a real model with DSPEX_EXAMPLE_LM=openai/gpt-4o-mini.

defmodule Example.Search do
  @moduledoc "Searches the knowledge base and returns the best passages."
  use DSPex.Tool, name: "search"

  param :query, :string, desc: "What to look for"
  param :k, :integer, default: 2, desc: "How many passages"

  @corpus [
    "Elixir is a dynamic, functional language that runs on the Erlang virtual machine (BEAM).",
    "The BEAM schedules millions of lightweight processes, each with its own heap.",
    "OTP supervisors restart crashed processes according to a restart strategy.",
    "DSPy is a framework for programming, rather than prompting, language models.",
    "Phoenix is a web framework written in Elixir."
  ]

  @impl DSPex.Tool
  def run(%{query: query, k: k}) do
    words = MapSet.new(stems(query))

    @corpus
    |> Enum.map(fn p -> {Enum.count(stems(p), &(&1 in words)), p} end)
    |> Enum.filter(fn {hits, _} -> hits > 0 end)
    |> Enum.sort_by(fn {hits, _} -> -hits end)
    |> Enum.take(k)
    |> Enum.map(&elem(&1, 1))
  end

  # A toy stemmer: words of 4+ letters, cut to their first 5 ("crashes", "crashed" -> "crash").
  defp stems(text) do
    text
    |> String.downcase()
    |> String.split(~r/\W+/, trim: true)
    |> Enum.filter(&(String.length(&1) >= 4))
    |> Enum.map(&String.slice(&1, 0, 5))
  end
end

defmodule Example.RAG do
  @moduledoc "Search, then answer from the passages."
  use DSPex.Module

  predictor :answer, DSPex.ChainOfThought, "context: list[str], question -> answer"
  field :search, DSPex.Tools.new([Example.Search])

  @impl DSPex.Module
  def forward(program, %{question: question}) do
    # the same validated, supervised execution an agent's tool call gets
    {:ok, passages} = DSPex.Tools.execute(program.search, "search", %{"query" => question})
    DSPex.call(program.answer, context: passages, question: question)
  end
end

lm =
  case System.get_env("DSPEX_EXAMPLE_LM") do
    nil ->
      DSPex.LM.Scripted.new([
        %{
          reasoning: "The passages say supervisors restart crashed processes.",
          answer: "An OTP supervisor restarts it according to its restart strategy."
        }
      ])

    model ->
      DSPex.LM.new(model)
  end

DSPex.configure(lm: lm)
rag = Example.RAG.new()

{:ok, pred} =
  DSPex.call(rag, question: "What happens when a BEAM process crashes under a supervisor?")

IO.puts("Answer: #{pred.answer}")
IO.puts("Reasoning: #{pred.reasoning}")

# What the answer predictor was shown:
[request] =
  if is_struct(lm, DSPex.LM.Scripted), do: DSPex.LM.Scripted.requests(lm), else: [%{messages: []}]

for %{role: "user", content: content} <- request.messages do
  IO.puts("\nPrompt (user turn):\n" <> content)
end
