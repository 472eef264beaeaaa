defmodule DSPex.Optimize.Optimizer do
  @moduledoc """
  The contract an optimizer implements to run as a `DSPex.Optimize` job
  (`DSPex.Optimizers.MIPROv2`, `DSPex.Optimizers.COPRO`).

  The job calls `validate!/1` on the options given (the job's own options —
  `DSPex.Optimize.job_options/0` — are already validated and removed), `spec/3` once to
  identify the job in its journal, and `run/4` on every (re)start with a
  `DSPex.Optimize.Run` bound to the journal. `run/4` is written as if it ran from the
  start: on a resume, `DSPex.Optimize.Run` serves the journaled setup, batches and
  trials back instead of redoing them (see its module doc).
  """

  alias DSPex.Optimize.Run

  @doc "The optimizer's name in journals and logs (`\"mipro_v2\"`)."
  @callback name() :: binary

  @doc "Validates the optimizer's own options (raises `ArgumentError`)."
  @callback validate!(keyword) :: keyword

  @doc """
  The spec fields that decide the trial sequence: `%{"seed" => ..., "options" =>
  ...}` (the job adds the optimizer, program, data and metric hashes).
  """
  @callback spec(program :: term, trainset :: [DSPex.Example.t()], opts :: keyword) :: map

  @doc """
  Runs (or resumes) the search. Returns `{:ok, fields, run}` where `fields` fill a
  `DSPex.Optimize.Result` (at least `program`, `score`, `status`, `reason`), or
  `{:error, error, fields, run}` for a failure that still has a best program.
  """
  @callback run(Run.t(), program :: term, trainset :: [DSPex.Example.t()], opts :: keyword) ::
              {:ok, map, Run.t()} | {:error, DSPex.Error.t(), map, Run.t()}
end
