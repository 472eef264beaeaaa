# A multi-stage pipeline: several predictors composed in one program, typed outputs
# between the stages, usage tracked across them.
#
#   mix run examples/multi_stage.exs
#
# Offline with DSPex.LM.Scripted; a real model with DSPEX_EXAMPLE_LM=openai/gpt-4o-mini.
# (Optimizing such a pipeline against a metric — evaluate, optimize, evaluate again — is
# the optimizers' example: examples/demo/optimize.exs.)

defmodule Example.Triage do
  @moduledoc "Classify a support ticket, draft a reply, then check the draft."
  use DSPex.Module

  predictor :classify, "ticket -> category: Literal['billing', 'bug', 'question'], urgency: int"
  predictor :draft, DSPex.ChainOfThought, "ticket, category -> reply"
  predictor :check, "ticket, reply -> approved: bool, issues: list[str]"

  @impl DSPex.Module
  def forward(program, %{ticket: ticket}) do
    with {:ok, c} <- DSPex.call(program.classify, ticket: ticket),
         {:ok, d} <- DSPex.call(program.draft, ticket: ticket, category: c.category),
         {:ok, v} <- DSPex.call(program.check, ticket: ticket, reply: d.reply) do
      {:ok,
       DSPex.Prediction.new(%{
         category: c.category,
         urgency: c.urgency,
         reply: d.reply,
         approved: v.approved,
         issues: v.issues
       })}
    end
  end
end

lm =
  case System.get_env("DSPEX_EXAMPLE_LM") do
    nil ->
      DSPex.LM.Scripted.new([
        %{category: "billing", urgency: 4},
        %{
          reasoning: "They were charged twice; apologise and refund.",
          reply: "Sorry about the double charge; we have refunded it."
        },
        %{approved: true, issues: []}
      ])

    model ->
      DSPex.LM.new(model)
  end

DSPex.configure(lm: lm)
program = Example.Triage.new()

{{:ok, pred}, usage} =
  DSPex.track_usage(fn -> DSPex.call(program, ticket: "I was charged twice this month!") end)

IO.puts("category: #{pred.category} (urgency #{pred.urgency})")
IO.puts("reply:    #{pred.reply}")
IO.puts("approved: #{pred.approved} #{inspect(pred.issues)}")

IO.puts(
  "predictors: #{program |> DSPex.Module.named_predictors() |> Enum.map_join(", ", &elem(&1, 0))}"
)

IO.puts("LM usage: #{inspect(usage)}")
