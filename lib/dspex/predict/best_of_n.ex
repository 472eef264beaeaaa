defmodule DSPex.BestOfN do
  @moduledoc """
  Runs a program up to `n` times and keeps the best prediction, like `dspy.BestOfN`.

  Attempt `i` (0-based) runs with request params `rollout_id: start + i` and
  `temperature: 1.0` merged *under* each predictor's own config (as DSPy's
  `lm.copy(rollout_id=..., temperature=1.0)`), where `start` is the current
  `lm_params` `rollout_id` (default 0). Each attempt's prediction is scored with
  `reward_fn.(inputs, prediction)`; the loop stops at the first reward ≥ `threshold`.
  Up to `fail_count` (default `n`) attempts may fail; one more failure returns the
  error. The best attempt's trace is appended to the caller's trace.

      best = DSPex.BestOfN.new(DSPex.ChainOfThought.new("question -> answer"),
        n: 3, reward_fn: fn _inputs, pred -> if one_word?(pred.answer), do: 1.0, else: 0.0 end,
        threshold: 1.0)
      {:ok, pred} = DSPex.call(best, question: "Capital of Belgium?")
  """

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

  @doc """
  Wraps `module`. Options: `n` (required), `reward_fn` (required), `threshold`,
  `fail_count` (default `n`).
  """
  @spec new(term, keyword) :: t
  def new(module, opts) do
    n = Keyword.fetch!(opts, :n)
    reward_fn = Keyword.fetch!(opts, :reward_fn)

    unless is_integer(n) and n > 0,
      do: raise(ArgumentError, "n must be a positive integer, got: #{inspect(n)}")

    unless is_function(reward_fn, 2),
      do: raise(ArgumentError, "reward_fn must be a 2-arity function (inputs, prediction)")

    DSPex.Module.assign_names(%__MODULE__{
      module: module,
      n: n,
      reward_fn: reward_fn,
      threshold: Keyword.get(opts, :threshold),
      fail_count: Keyword.get(opts, :fail_count) || n
    })
  end

  @doc false
  def forward(%__MODULE__{} = b, inputs, opts) do
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

  alias DSPex.Settings

  def run(module, n, reward_fn, threshold, fail_count, inputs, opts, feedback) do
    start = Map.get(Map.new(Settings.get(:lm_params, %{})), :rollout_id, 0)

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
        params =
          Settings.get(:lm_params, %{})
          |> Map.new()
          |> Map.merge(%{rollout_id: start + idx, temperature: 1.0})

        settings = [lm_params: params] ++ if(st.hints, do: [refine_hints: st.hints], else: [])

        {result, trace} =
          Settings.with_settings(settings, fn ->
            DSPex.Trace.with_trace(fn -> DSPex.call(module, inputs, opts) end)
          end)

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
end
