defmodule DSPex.Optimize.Progress do
  @moduledoc """
  The live progress display of an optimizer job: one line per trial.

      Trial 5/13  minibatch   62.86  best 64.00 (trial 1)  calls 412  $0.0123  ETA 1m20s

  On a terminal the line is live while the trial runs (`Trial 6/13  minibatch of 35 …`)
  and is replaced by the trial's result when it is told; elsewhere (a file, a CI log)
  only the finished lines are written. Enabled by the job option `progress: true` (the
  default for the blocking `compile/3` and `mix dspex.optimize`), written to
  `:standard_error` or to the device given as `progress: device`.
  """

  @doc false
  def print(nil, _event, _info), do: :ok
  def print(false, _event, _info), do: :ok
  def print(true, event, info), do: print(:standard_error, event, info)

  def print(device, event, info) do
    case line(event, info) do
      nil ->
        :ok

      {:live, text} ->
        if tty?(device), do: IO.write(device, "\r\e[K" <> text)

      {:final, text} ->
        prefix = if tty?(device), do: "\r\e[K", else: ""
        IO.write(device, prefix <> text <> "\n")
    end
  catch
    # a closed device must not stop the job
    _, _ -> :ok
  end

  @doc """
  The text for a progress event, `{:live, text}`, `{:final, text}` or `nil`.

  ## Examples

      iex> trial = %{number: 5, kind: :objective, examples: Enum.to_list(1..35)}
      iex> info = %{planned: 13, best_score: 64.0, best_number: 1, eta_ms: 80_000,
      ...>          totals: %{lm_calls: 412, cost: 0.0123}}
      iex> DSPex.Optimize.Progress.line({:trial_end, trial, %{score: 62.857}, %{}}, info)
      {:final, "Trial 5/13  minibatch   62.86  best 64.00 (trial 1)  calls 412  $0.0123  ETA 1m20s"}
  """
  @spec line(term, map) :: {:live | :final, binary} | nil
  def line({:phase, text}, _info), do: {:final, "Optimizing: #{text}"}

  def line({:trial_start, trial, n}, info),
    do: {:live, "Trial #{count(trial, info)}  #{kind(trial)} of #{n} …"}

  def line({:trial_end, trial, outcome, _status}, info) do
    best =
      if is_number(info.best_score),
        do: "best #{fmt(info.best_score)} (trial #{info.best_number})",
        else: "best -"

    {:final,
     "Trial #{count(trial, info)}  #{String.pad_trailing(kind(trial), 9)} " <>
       "#{String.pad_leading(fmt(outcome.score), 7)}  #{best}  calls #{info.totals.lm_calls}  " <>
       "$#{:erlang.float_to_binary(info.totals.cost * 1.0, decimals: 4)}  ETA #{eta(info.eta_ms)}"}
  end

  def line({:resumed, n}, _info) when n > 0,
    do: {:final, "Optimizing: resumed from the journal, #{n} trials already done"}

  def line({:stopped, reason}, _info), do: {:final, "Optimizing: stopped (#{describe(reason)})"}
  def line(_, _), do: nil

  @doc false
  def describe({:max_lm_calls, n}), do: "max_lm_calls #{n} reached"
  def describe({:max_cost, c}), do: "max_cost $#{c} reached"
  def describe({:max_wall, ms}), do: "max_wall #{ms} ms reached"
  def describe({:stop_at_score, s}), do: "stop_at_score #{s} reached"
  def describe(:cancelled), do: "cancelled"
  def describe(other), do: inspect(other)

  defp count(trial, %{planned: p}) when is_integer(p), do: "#{trial.number}/#{p}"
  defp count(trial, _), do: "#{trial.number}"

  defp kind(%{kind: :default}), do: "default"
  defp kind(%{kind: :full_eval}), do: "full eval"
  defp kind(%{kind: :candidate}), do: "candidate"
  defp kind(%{examples: :all}), do: "full"
  defp kind(_), do: "minibatch"

  defp fmt(x) when is_number(x), do: :erlang.float_to_binary(x * 1.0, decimals: 2)
  defp fmt(_), do: "failed"

  defp eta(nil), do: "-"

  defp eta(ms) do
    s = div(ms, 1000)

    cond do
      s >= 3600 -> "#{div(s, 3600)}h#{String.pad_leading("#{rem(div(s, 60), 60)}", 2, "0")}m"
      s >= 60 -> "#{div(s, 60)}m#{String.pad_leading("#{rem(s, 60)}", 2, "0")}s"
      true -> "#{s}s"
    end
  end

  defp tty?(device) do
    match?({:ok, _}, :io.columns(device))
  catch
    _, _ -> false
  end
end
