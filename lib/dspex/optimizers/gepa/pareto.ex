defmodule DSPex.Optimizers.GEPA.Pareto do
  @moduledoc """
  GEPA's per-instance Pareto frontier over the validation set and the choices made from
  it, as the `gepa` package (0.1.4) makes them:

    * each validation example keeps its best score and the set of programs that reach
      it (a better score replaces the set, an equal one joins it);
    * `remove_dominated/2`: programs are tried in ascending order of their average
      score; one is dominated when every front it is on holds another program not yet
      dominated; removal restarts after each find;
    * `select/3`: every non-dominated program appears in a list once per front it is on
      (fronts in validation order, each front in CPython set order) and
      `rng.choice` picks from that list.

  Fronts are `DSPex.Optimizers.GEPA.PySet`s so the walks follow CPython's set order.
  """

  alias DSPex.Optimizers.GEPA.PySet

  @typedoc "Fronts in validation order: `[{val_id, PySet.t()}]`."
  @type fronts :: [{non_neg_integer, PySet.t()}]

  @doc """
  The fronts after removing dominated programs; `scores` are the programs' average
  validation scores (a list indexed by program).

  ## Examples

      iex> alias DSPex.Optimizers.GEPA.{Pareto, PySet}
      iex> fronts = [{0, PySet.new([0, 1])}, {1, PySet.new([1])}]
      iex> for {v, s} <- Pareto.remove_dominated(fronts, [0.5, 1.0]), do: {v, PySet.to_list(s)}
      [{0, [1]}, {1, [1]}]
  """
  @spec remove_dominated(fronts, [number]) :: fronts
  def remove_dominated(fronts, scores) do
    fronts = for {v, s} <- fronts, do: {v, PySet.copy(s)}

    programs =
      fronts
      |> Enum.flat_map(fn {_, s} -> PySet.to_list(s) end)
      |> Enum.uniq()
      |> Enum.with_index()
      |> Enum.sort_by(fn {p, i} -> {Enum.at(scores, p), i} end)
      |> Enum.map(&elem(&1, 0))

    dominated = find_dominated(programs, fronts, MapSet.new())
    dominators = Enum.reject(programs, &MapSet.member?(dominated, &1))

    for {v, s} <- fronts,
        do: {v, s |> PySet.to_list() |> Enum.filter(&(&1 in dominators)) |> PySet.new()}
  end

  defp find_dominated(programs, fronts, dominated) do
    found =
      Enum.find(programs, fn y ->
        not MapSet.member?(dominated, y) and
          dominated?(y, MapSet.new(programs -- [y]) |> MapSet.difference(dominated), fronts)
      end)

    if found == nil,
      do: dominated,
      else: find_dominated(programs, fronts, MapSet.put(dominated, found))
  end

  defp dominated?(y, others, fronts) do
    fronts
    |> Enum.filter(fn {_, s} -> PySet.member?(s, y) end)
    |> Enum.all?(fn {_, s} -> Enum.any?(PySet.to_list(s), &MapSet.member?(others, &1)) end)
  end

  @doc """
  `select_program_candidate_from_pareto_front`: returns `{program, rng}`.

  ## Examples

      iex> alias DSPex.Optimizers.GEPA.{Pareto, PySet}
      iex> {p, _} = Pareto.select([{0, PySet.new([0])}], [0.0], DSPex.Random.new(0))
      iex> p
      0
  """
  @spec select(fronts, [number], DSPex.Random.t()) :: {non_neg_integer, DSPex.Random.t()}
  def select(fronts, scores, rng) do
    fronts = remove_dominated(fronts, scores)

    {order, freq} =
      Enum.reduce(fronts, {[], %{}}, fn {_, s}, acc ->
        Enum.reduce(PySet.to_list(s), acc, fn p, {order, freq} ->
          if Map.has_key?(freq, p),
            do: {order, Map.update!(freq, p, &(&1 + 1))},
            else: {order ++ [p], Map.put(freq, p, 1)}
        end)
      end)

    list = Enum.flat_map(order, &List.duplicate(&1, Map.fetch!(freq, &1)))
    DSPex.Random.choice(rng, list)
  end

  @doc """
  `find_dominator_programs`: the non-dominated programs, in the order of
  `list(set(...))` over the fronts.

  ## Examples

      iex> alias DSPex.Optimizers.GEPA.{Pareto, PySet}
      iex> Pareto.dominators([{0, PySet.new([0, 1])}, {1, PySet.new([2])}], [0.2, 0.5, 0.4])
      [1, 2]
  """
  @spec dominators(fronts, [number]) :: [non_neg_integer]
  def dominators(fronts, scores) do
    fronts
    |> remove_dominated(scores)
    |> Enum.flat_map(fn {_, s} -> PySet.to_list(s) end)
    |> PySet.new()
    |> PySet.to_list()
  end
end
