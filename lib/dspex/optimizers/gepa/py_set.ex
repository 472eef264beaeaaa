defmodule DSPex.Optimizers.GEPA.PySet do
  @moduledoc """
  A CPython 3.11 `set` of non-negative integers, kept only for its **iteration order**.

  GEPA (the `gepa` package DSPy runs) walks Python sets of program indices when it
  builds its Pareto-front sampling list and picks merge ancestors, so the order of those
  walks decides which candidate `rng.choice` returns. A small int hashes to itself;
  CPython places it at `hash & mask` in an open-addressed table (probing with
  `i = (i * 5 + 1 + perturb) & mask` and nine linear probes in tables of more than 16
  slots), grows the table (to the smallest power of two above `4 × used`) when it is 3/5
  full, and iterates slot by slot. This module replays exactly that for insertion
  (no deletions: GEPA never removes from these sets) and for `set(other)` copies.

      iex> alias DSPex.Optimizers.GEPA.PySet
      iex> PySet.new([3, 9]) |> PySet.to_list()
      [9, 3]
      iex> PySet.new([0, 9]) |> PySet.to_list()
      [0, 9]
  """

  import Bitwise

  defstruct mask: 7, slots: %{}, used: 0

  @type t :: %__MODULE__{
          mask: pos_integer,
          slots: %{non_neg_integer => non_neg_integer},
          used: non_neg_integer
        }

  @linear_probes 9

  @doc "A set built by adding `items` in order (`set(list)`, `{a, b}`, a comprehension)."
  @spec new([non_neg_integer]) :: t
  def new(items \\ []), do: Enum.reduce(items, %__MODULE__{}, &add(&2, &1))

  @doc "`s.add(x)`."
  @spec add(t, non_neg_integer) :: t
  def add(%__MODULE__{} = s, x) when is_integer(x) and x >= 0 do
    if member?(s, x) do
      s
    else
      s = %{s | slots: Map.put(s.slots, free_slot(s.slots, s.mask, x), x), used: s.used + 1}
      if s.used * 5 < s.mask * 3, do: s, else: resize(s, s.used * 4)
    end
  end

  @doc "`x in s`."
  @spec member?(t, term) :: boolean
  def member?(%__MODULE__{slots: slots}, x), do: Enum.any?(slots, fn {_, v} -> v == x end)

  @doc "Iteration order."
  @spec to_list(t) :: [non_neg_integer]
  def to_list(%__MODULE__{slots: slots}),
    do: slots |> Enum.sort_by(&elem(&1, 0)) |> Enum.map(&elem(&1, 1))

  @doc "`set(other)` (a copy; CPython keeps the table when the sizes agree)."
  @spec copy(t) :: t
  def copy(%__MODULE__{} = other) do
    fresh = %__MODULE__{}

    fresh =
      if other.used * 5 >= fresh.mask * 3,
        do: resize(fresh, other.used * 2),
        else: fresh

    if fresh.mask == other.mask do
      other
    else
      Enum.reduce(to_list(other), fresh, &add(&2, &1))
    end
  end

  @doc "`a & b` (CPython iterates the smaller set, the right one on a tie)."
  @spec intersection(t, t) :: t
  def intersection(%__MODULE__{} = a, %__MODULE__{} = b) do
    {big, small} = if b.used > a.used, do: {b, a}, else: {a, b}
    small |> to_list() |> Enum.filter(&member?(big, &1)) |> new()
  end

  defp resize(s, minused) do
    size = new_size(8, minused)
    mask = size - 1

    slots =
      Enum.reduce(to_list(s), %{}, fn x, acc -> Map.put(acc, free_slot(acc, mask, x), x) end)

    %{s | mask: mask, slots: slots}
  end

  defp new_size(size, minused) when size > minused, do: size
  defp new_size(size, minused), do: new_size(size <<< 1, minused)

  defp free_slot(slots, mask, hash), do: probe(slots, mask, hash &&& mask, hash)

  defp probe(slots, mask, i, perturb) do
    probes = if i + @linear_probes <= mask, do: @linear_probes, else: 0

    case Enum.find(i..(i + probes), &(not Map.has_key?(slots, &1))) do
      nil ->
        perturb = perturb >>> 5
        probe(slots, mask, i * 5 + 1 + perturb &&& mask, perturb)

      j ->
        j
    end
  end
end
