defmodule DSPex.BestOfN do
  @moduledoc """
  Runs a program up to `n` times and keeps the best prediction, like `dspy.BestOfN`.

  Attempt `i` (0-based) runs a copy of the program whose predictors carry request params
  `rollout_id: start + i` and `temperature: 1.0` *under* their own config (DSPy's
  `lm.copy(rollout_id=..., temperature=1.0)`), where `start` is a predictor's own
  `rollout_id`, else the `rollout_id` of the `:lm_params` setting, else 0. Each attempt's
  prediction is scored with `reward_fn.(inputs, prediction)`; the loop stops at the
  first reward ≥ `threshold`. Up to `fail_count` (default `n`) attempts may fail; one
  more failure returns the error. The best attempt's trace is appended to the caller's
  trace.

  The params travel in the predictors themselves (`DSPex.Module.map_predictors/2`), so
  they reach the predictors held in the program's fields; a predictor a program builds
  inside its `forward/2` is not reached.

  ## Examples

      iex> lm = DSPex.LM.Scripted.new([%{answer: "The city of Brussels"}, %{answer: "Brussels"}])
      iex> one_word = fn _inputs, pred -> if pred.answer =~ " ", do: 0.0, else: 1.0 end
      iex> best = DSPex.BestOfN.new(DSPex.Predict.new("question -> answer", lm: lm),
      ...>   n: 3, reward_fn: one_word, threshold: 1.0)
      iex> {:ok, pred} = DSPex.call(best, question: "Capital of Belgium?")
      iex> pred.answer
      "Brussels"
  """

  @behaviour DSPex.Module

  @type reward_fn :: (map, DSPex.Prediction.t() -> number)
  @type t :: %__MODULE__{
          module: term,
          n: pos_integer,
          reward_fn: reward_fn,
          threshold: number | nil,
          fail_count: non_neg_integer
        }

  defstruct module: nil, n: 3, reward_fn: nil, threshold: nil, fail_count: nil

  @doc false
  def __dspex_fields__, do: [:module]

  @options DSPex.Options.schema!(
             n: [type: :pos_integer, required: true, doc: "Most attempts."],
             reward_fn: [
               type: {:fun, 2},
               required: true,
               doc: "`(inputs, prediction) -> number`."
             ],
             threshold: [type: {:or, [:number, nil]}, doc: "Stop at the first reward ≥ it."],
             fail_count: [
               type: {:or, [:non_neg_integer, nil]},
               doc: "Failed attempts tolerated (default `n`)."
             ]
           )

  @doc false
  def options_schema, do: @options

  @doc """
  Wraps `module` (a predictor or program).

  ## Options

  #{DSPex.Options.docs(@options)}
  """
  @spec new(term, keyword) :: t
  def new(module, opts) do
    opts = DSPex.Options.validate!(opts, @options, "DSPex.BestOfN.new/2")

    DSPex.Module.assign_names(%__MODULE__{
      module: module,
      n: opts[:n],
      reward_fn: opts[:reward_fn],
      threshold: opts[:threshold],
      fail_count: opts[:fail_count] || opts[:n]
    })
  end

  @impl DSPex.Module
  @doc false
  def forward(%__MODULE__{} = b, inputs, opts \\ []) do
    DSPex.BestOfN.Loop.run(
      b.module,
      b.n,
      b.reward_fn,
      b.threshold,
      b.fail_count,
      inputs,
      opts,
      nil
    )
  end
end

defmodule DSPex.BestOfN.Loop do
  @moduledoc false
  # The attempt loop shared by BestOfN and Refine. `feedback` is nil (BestOfN) or a
  # function (attempt_info -> hints map | nil) called after each sub-threshold attempt
  # except the last.

  def run(module, n, reward_fn, threshold, fail_count, inputs, opts, feedback) do
    start = Map.get(Map.new(DSPex.Settings.get(:lm_params, %{})), :rollout_id) || 0

    state = %{
      best: nil,
      best_reward: nil,
      best_trace: [],
      failures: 0,
      hints: nil,
      last_error: nil
    }

    final =
      Enum.reduce_while(0..(n - 1), state, fn idx, st ->
        attempt = attempt_program(module, start, idx, st.hints)

        {result, trace} = DSPex.Trace.with_trace(fn -> DSPex.call(attempt, inputs, opts) end)

        case result do
          {:ok, pred} ->
            reward = reward_fn.(inputs, pred)

            st =
              if st.best_reward == nil or reward > st.best_reward,
                do: %{st | best: pred, best_reward: reward, best_trace: trace},
                else: st

            cond do
              threshold != nil and reward >= threshold ->
                {:halt, st}

              idx == n - 1 ->
                {:halt, st}

              feedback != nil ->
                hints =
                  feedback.(%{
                    module: module,
                    inputs: inputs,
                    prediction: pred,
                    trace: trace,
                    reward: reward
                  })

                {:cont, %{st | hints: hints}}

              true ->
                {:cont, st}
            end

          {:error, err} ->
            st = %{st | failures: st.failures + 1, last_error: err}

            if st.failures > fail_count,
              do: {:halt, %{st | best: nil, best_trace: []}},
              else: {:cont, st}
        end
      end)

    case final do
      %{best: nil, last_error: err} when err != nil ->
        {:error, err}

      %{best: nil} ->
        {:error, DSPex.Error.new(:no_prediction, "no attempt produced a prediction", %{})}

      %{best: best, best_trace: trace} ->
        DSPex.Trace.extend(trace)
        {:ok, best}
    end
  end

  # The program of attempt `idx`: every predictor gets `rollout_id` and `temperature: 1.0`
  # under its own config and, after feedback, its advice (or "N/A") as `hint`.
  defp attempt_program(module, start, idx, hints) do
    DSPex.Module.map_predictors(module, fn p ->
      rollout = (Map.get(p.config, :rollout_id) || start) + idx
      config = %{temperature: 1.0} |> Map.merge(p.config) |> Map.put(:rollout_id, rollout)
      hint = if hints, do: Map.get(hints, p.name, "N/A"), else: p.hint
      %{p | config: config, hint: hint}
    end)
  end
end
