defmodule DSPex.Optimize.Result do
  @moduledoc """
  What an optimizer job returns: the best program and how it got there.

    * `program` — the best program (the student itself when nothing beat it, or when
      the job stopped before scoring anything);
    * `score` — its score (DSPy's: the full-valset percentage), `nil` if never scored;
    * `status` — `:finished`, `:budget_exhausted` (a `max_lm_calls`, `max_cost` or
      `max_wall` budget ran out), `:stop_at_score`, `:cancelled` or `:failed` (the
      `reason` says why; the program is still the best found before it);
    * `reason` — `nil`, `{:max_lm_calls, n}`, `{:max_cost, dollars}`, `{:max_wall, ms}`,
      `{:stop_at_score, score}`, `:cancelled`, or a `%DSPex.Error{}`;
    * `candidate_programs` — as DSPy exposes them on the returned program: MIPROv2's
      full evaluations `%{score:, program:, full_eval: true}`, COPRO's
      `%{score:, program:, instruction:, prefix:, depth:}`, best first (ties keep their
      order), and `mb_candidate_programs` (MIPROv2's minibatch trials);
    * `trial_logs` — one map per trial in trial order (`number`, `kind`, `params`,
      `examples`, `score`, `usage`, and the optimizer's own keys, e.g. MIPROv2's
      `"0_predictor_instruction"` indices);
    * `total_calls`, `prompt_model_total_calls` — as DSPy reports them (MIPROv2 reports
      0 for both, a DSPy quirk DSPex keeps by default: see the optimizer's docs);
    * `usage` — `%{lm_calls:, cache_hits:, prompt_tokens:, completion_tokens:, cost:}`
      for the whole job (including work before a resume);
    * `journal`, `chart` — the journal's path and the SVG chart's (or `nil`);
    * `extra` — optimizer-specific (COPRO's `results_best`/`results_latest`).
  """

  defstruct program: nil,
            score: nil,
            status: :finished,
            reason: nil,
            optimizer: nil,
            candidate_programs: [],
            mb_candidate_programs: [],
            trial_logs: [],
            total_calls: 0,
            prompt_model_total_calls: 0,
            usage: %{},
            journal: nil,
            chart: nil,
            extra: %{}

  @type t :: %__MODULE__{
          program: term,
          score: number | nil,
          status: :finished | :budget_exhausted | :stop_at_score | :cancelled | :failed,
          reason: term,
          optimizer: binary | nil,
          candidate_programs: [map],
          mb_candidate_programs: [map],
          trial_logs: [map],
          total_calls: non_neg_integer,
          prompt_model_total_calls: non_neg_integer,
          usage: map,
          journal: binary | nil,
          chart: binary | nil,
          extra: map
        }

  @doc """
  Saves the best program in DSPy's JSON format at `path` (`DSPex.Program.save/2`) and
  the candidate programs next to it, at `<path without .json>.candidates.json`, as a
  JSON list of `{"score", ..., "program": <DSPy state>}` objects in
  `candidate_programs` order (DSPy keeps these in memory only; the file is for
  inspection and for loading any candidate with `DSPex.Program.load_state/3`).
  Returns `:ok` or `{:error, %DSPex.Error{}}`.

  ## Examples

      :ok = DSPex.Optimize.Result.save(result, "rag.json")
  """
  @spec save(t, Path.t()) :: :ok | {:error, DSPex.Error.t()}
  def save(%__MODULE__{} = r, path) do
    with :ok <- DSPex.Program.save(r.program, path) do
      cands =
        for c <- r.candidate_programs do
          meta =
            c
            |> Map.drop([:program])
            |> Enum.sort()
            |> Enum.map(fn {k, v} -> {Atom.to_string(k), v} end)

          {:ordered, meta ++ [{"program", DSPex.Program.dump_state(c.program)}]}
        end

      side = Path.rootname(path, ".json") <> ".candidates.json"

      case File.write(side, DSPex.JSON.encode!(cands, pretty: true)) do
        :ok ->
          :ok

        {:error, reason} ->
          {:error,
           DSPex.Error.new(:file, "cannot write #{side}: #{:file.format_error(reason)}", %{
             path: side
           })}
      end
    end
  end

  defimpl Inspect do
    def inspect(r, _opts) do
      "#DSPex.Optimize.Result<#{r.optimizer} #{r.status}, score: #{inspect(r.score)}, " <>
        "#{length(r.trial_logs)} trials, #{Map.get(r.usage, :lm_calls, 0)} LM calls>"
    end
  end
end
