defmodule DSPex.Evaluate.Result do
  @moduledoc """
  The result of `DSPex.Evaluate.run/3` (DSPy's `EvaluationResult`).

    * `score` — `round(100 * sum / total, 2)` with Python's rounding (a float);
    * `results` — `[{example, prediction, score}]` in devset order; `score` is what the
      metric returned (boolean, number, ...). An example that failed has an empty
      `%DSPex.Prediction{}` and the run's `failure_score`, as in DSPy;
    * `errors` — one map per failed example, in devset order:
      `%{index: 0-based, example:, error: %DSPex.Error{}, traceback: binary | nil}`
      (the traceback with `provide_traceback: true`);
    * `sum` — the metric total (Python's `sum` of the scores), `total` — the devset
      size.

  ## Examples

      iex> r = %DSPex.Evaluate.Result{score: 75.0, results: [], sum: 3, total: 4}
      iex> inspect(r)
      "#DSPex.Evaluate.Result<score: 75.0, 0 results, 0 errors>"
  """

  defstruct score: 0.0, results: [], errors: [], sum: 0, total: 0

  @type error_entry :: %{
          index: non_neg_integer,
          example: DSPex.Example.t(),
          error: DSPex.Error.t(),
          traceback: binary | nil
        }

  @type t :: %__MODULE__{
          score: float,
          results: [{DSPex.Example.t(), term, term}],
          errors: [error_entry],
          sum: number,
          total: non_neg_integer
        }

  defimpl Inspect do
    def inspect(r, _opts) do
      "#DSPex.Evaluate.Result<score: #{r.score}, #{length(r.results)} results, " <>
        "#{length(r.errors)} errors>"
    end
  end
end
