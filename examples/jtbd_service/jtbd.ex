# Jobs-to-be-done analysis as a service: a typed ChainOfThought program behind
# DSPex.Server, with API keys, a batch endpoint and the LM response cache.
#
#     mix run examples/jtbd_service/run.exs     # the whole thing, offline
#
# In your application: put JTBD.Service.child_spec/1 in your supervision tree with a
# real LM (`lm: DSPex.LM.new("openai/gpt-4o-mini")`) and your keys' hashes.

defmodule JTBD.Analysis do
  @moduledoc """
  Read one piece of customer feedback as a job to be done: the progress the customer
  is trying to make in a given situation, and what gets in the way.
  """
  use DSPex.Signature

  input :feedback, desc: "what the customer said, verbatim"
  input :product, desc: "the product the feedback is about"

  output :job,
    desc: "the job in the form: When <situation>, I want to <motivation>, so I can <outcome>"

  output :situation, desc: "the circumstance that triggers the job"
  output :motivation, desc: "what the customer wants to do"
  output :outcome, desc: "the result the customer is after"
  output :job_type, {:literal, ["functional", "emotional", "social"]}
  output :pains, {:list, :str}, desc: "obstacles in the way of the job, short phrases"
  output :confidence, :float, ge: 0.0, le: 1.0
end

defmodule JTBD.Analyzer do
  @moduledoc "The program: chain of thought over `JTBD.Analysis`."
  use DSPex.Module

  predictor :analyze, DSPex.ChainOfThought, JTBD.Analysis

  @impl DSPex.Module
  def forward(program, inputs), do: DSPex.call(program.analyze, inputs)
end

defmodule JTBD.Service do
  @moduledoc """
  The service: `JTBD.Analyzer` served as `POST /v1/programs/jtbd` (and `/batch`) by a
  `DSPex.Server` that requires API keys.
  """

  @doc """
  The server's child spec. `opts`: `lm:` (required), `api_keys:`, `port:` (default
  4000), `name:`, `programs_dir:` (saved, e.g. optimized, versions of the program:
  `jtbd.json`), plus any other `DSPex.Server` option.
  """
  def child_spec(opts) do
    opts
    |> Keyword.put_new(:port, 4000)
    |> Keyword.put(:programs, %{"jtbd" => JTBD.Analyzer})
    |> Keyword.put_new(:batch_max_items, 50)
    |> DSPex.Server.child_spec()
  end
end
