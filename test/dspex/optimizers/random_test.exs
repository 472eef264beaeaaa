defmodule DSPex.RandomTest do
  use ExUnit.Case, async: true

  alias DSPex.Random

  doctest DSPex.Random

  @fixture Path.expand("../../fixtures/random/pyrandom.json", __DIR__)

  defp state_hash(%Random{state: s}), do: :crypto.hash(:sha256, s) |> Base.encode16(case: :lower)

  defp int(s), do: String.to_integer(s)

  defp float(s) do
    {f, ""} = Float.parse(s)
    f
  end

  defp ints(list), do: Enum.map(list, &int/1)
  defp range(n), do: 0..(n - 1)//1

  # One fixture call through the public API: {:ok, result, rng} or {:error, rng}.
  defp run(rng, %{"op" => op} = c) do
    {result, rng} =
      case op do
        "random" -> Random.random(rng)
        "uniform" -> Random.uniform(rng, float(c["a"]), float(c["b"]))
        "getrandbits" -> Random.getrandbits(rng, int(c["k"]))
        "randbelow" -> Random.randrange(rng, int(c["n"]))
        "randrange" -> randrange(rng, c)
        "randint" -> Random.randint(rng, int(c["a"]), int(c["b"]))
        "choice" -> Random.choice(rng, range(int(c["n"])))
        "shuffle" -> Random.shuffle(rng, Enum.to_list(range(int(c["n"]))))
        "sample" -> sample(rng, int(c["n"]), int(c["k"]))
        "choices" -> Random.choices(rng, range(int(c["n"])), k: int(c["k"]))
        "choices_w" -> choices_w(rng, Enum.map(c["weights"], &float/1), int(c["k"]))
      end

    {:ok, result, rng}
  rescue
    ArgumentError -> {:error, rng}
  end

  defp randrange(rng, %{"start" => start, "stop" => nil}), do: Random.randrange(rng, int(start))

  defp randrange(rng, %{"start" => start, "stop" => stop, "step" => step}),
    do: Random.randrange(rng, int(start), int(stop), int(step))

  # small populations as lists, large ones as ranges: both paths are checked
  defp sample(rng, n, k) when n <= 1000, do: Random.sample(rng, Enum.to_list(range(n)), k)
  defp sample(rng, n, k), do: Random.sample(rng, range(n), k)

  defp choices_w(rng, w, k), do: Random.choices(rng, range(length(w)), weights: w, k: k)

  defp expected(%{"op" => "random", "out" => o}), do: float(o)
  defp expected(%{"op" => "uniform", "out" => o}), do: float(o)
  defp expected(%{"out" => o}) when is_list(o), do: ints(o)
  defp expected(%{"out" => o}), do: int(o)

  test "every call in the CPython fixture gives Python's result and Python's state" do
    doc = @fixture |> File.read!() |> DSPex.JSON.decode!()

    results =
      for c <- doc["cases"], reduce: [] do
        acc ->
          rng =
            case c["seed"] do
              %{"int" => i} -> Random.new(int(i))
              %{"str" => s} -> Random.new(s)
            end

          assert state_hash(rng) == c["state"], "seeding #{inspect(c["seed"])}"

          {acc, _} =
            Enum.reduce(c["ops"], {acc, rng}, fn op, {acc, rng} ->
              {ok?, rng} =
                case run(rng, op) do
                  {:ok, result, rng} ->
                    {not Map.has_key?(op, "error") and result == expected(op), rng}

                  {:error, rng} ->
                    {Map.has_key?(op, "error"), rng}
                end

              {[{ok? and state_hash(rng) == op["state"], op} | acc], rng}
            end)

          acc
      end

    bad = for {false, op} <- results, do: op
    assert length(results) > 600

    assert bad == [],
           "#{length(bad)} of #{length(results)} calls differ, first: #{inspect(hd(bad ++ [nil]))}"
  end

  test "integers beyond 64 bits take Python's path" do
    {v, _} = Random.randrange(Random.new(0), -(2 ** 80), 2 ** 80, 3)
    assert v == -1_062_084_909_002_760_705_993_850
    {v, _} = Random.randint(Random.new(0), 0, 2 ** 70)
    assert v == 99_991_896_773_263_558_274
  end

  test "sample with counts, like sample(population, k, counts=...)" do
    assert {["b", "c", "c", "b", "a"], _} =
             Random.sample(Random.new(11), ~w(a b c), 5, counts: [1, 3, 2])
  end

  test "large lists go through the dirty scheduler and still match Python" do
    {list, rng} = Random.shuffle(Random.new(3), Enum.to_list(0..49_999))

    assert :crypto.hash(:sha256, Enum.join(list, ",")) |> Base.encode16(case: :lower) ==
             "badebd08e1f5e4468284e4d22b434a27c67205dd0b565f5829e7f7b161fdcde5"

    {picked, rng} = Random.sample(rng, list, 30_000)
    assert Enum.take(picked, 3) == [40906, 3910, 10475]
    assert {0.0076089281863909175, _} = Random.random(rng)
  end

  test "a generator is a value: any process drawing from it sees the same numbers" do
    rng = Random.new(2024)
    draws = fn -> rng |> Random.shuffle(Enum.to_list(1..20)) |> elem(0) end
    results = 1..8 |> Enum.map(fn _ -> Task.async(draws) end) |> Enum.map(&Task.await/1)
    assert results |> Enum.uniq() |> length() == 1
  end

  test "Python's errors are ArgumentErrors with Python's messages" do
    rng = Random.new(1)
    assert_raise ArgumentError, "empty range for randrange()", fn -> Random.randrange(rng, 0) end

    assert_raise ArgumentError, "empty range for randrange() (5, 5, 0)", fn ->
      Random.randint(rng, 5, 4)
    end

    assert_raise ArgumentError, "zero step for randrange()", fn ->
      Random.randrange(rng, 0, 10, 0)
    end

    assert_raise ArgumentError, "Cannot choose from an empty sequence", fn ->
      Random.choice(rng, [])
    end

    assert_raise ArgumentError, ~r/Sample larger than population/, fn ->
      Random.sample(rng, [1, 2], 3)
    end

    assert_raise ArgumentError, ~r/total of weights/, fn ->
      Random.choices(rng, [1, 2], weights: [0, 0])
    end

    assert_raise ArgumentError, ~r/does not match/, fn ->
      Random.choices(rng, [1, 2], weights: [1])
    end

    assert_raise ArgumentError, ~r/both weights/, fn ->
      Random.choices(rng, [1], weights: [1], cum_weights: [1])
    end

    assert_raise ArgumentError, ~r/integer or string seed/, fn -> Random.new(1.5) end

    assert_raise ArgumentError, ~r/DSPex.Random state/, fn ->
      Random.random(%Random{state: "bogus"})
    end

    assert {[], _} = Random.choices(rng, [], k: 0)
  end

  test "bad argument types raise an ArgumentError that says what was wrong" do
    rng = Random.new(0)
    deep_list = Enum.reduce(1..100_000, 1, fn _, acc -> [acc] end)
    deep_map = Enum.reduce(1..100_000, 1, fn _, acc -> %{"a" => acc} end)

    bad = [
      1,
      :atom,
      [1 | 2],
      {1, 2},
      self(),
      1.5,
      "x",
      %{1 => 2},
      <<1::3>>,
      -1,
      deep_list,
      deep_map
    ]

    calls = [
      &Random.new/1,
      &Random.random/1,
      &Random.uniform(rng, &1, 1.0),
      &Random.uniform(&1, 0.0, 1.0),
      &Random.getrandbits(rng, &1),
      &Random.randrange(rng, &1),
      &Random.randrange(rng, 0, &1, 1),
      &Random.randrange(rng, 0, 10, &1),
      &Random.randint(rng, &1, 5),
      &Random.choice(rng, &1),
      &Random.choice(&1, [1]),
      &Random.shuffle(rng, &1),
      &Random.sample(rng, &1, 1),
      &Random.sample(rng, [1, 2], &1),
      &Random.sample(rng, [1, 2], 1, &1),
      &Random.sample(rng, [1, 2], 1, counts: &1),
      &Random.choices(rng, &1),
      &Random.choices(rng, [1, 2], &1),
      &Random.choices(rng, [1, 2], weights: &1),
      &Random.choices(rng, [1, 2], cum_weights: &1),
      &Random.choices(rng, [1, 2], k: &1),
      &Random.to_python_state/1,
      &Random.from_python_state/1
    ]

    failures =
      for {fun, i} <- Enum.with_index(calls), value <- bad, (res = outcome(fun, value)) != :ok do
        {i, res}
      end

    assert failures == []
  end

  defp outcome(fun, value) do
    fun.(value)
    :ok
  rescue
    e in ArgumentError -> if e.message in [nil, "", "argument error"], do: {:bare, e}, else: :ok
    e -> {:raised, e}
  catch
    kind, reason -> {kind, reason}
  end

  test "Python's getstate() form round-trips and is checked" do
    rng = Random.new("seed text")
    {_, rng} = Random.random(rng)
    assert Random.from_python_state(Random.to_python_state(rng)) == rng
    {3, words, nil} = Random.to_python_state(rng)

    assert_raise ArgumentError, fn ->
      Random.from_python_state({3, put_elem(words, 624, 625), nil})
    end

    assert_raise ArgumentError, fn -> Random.from_python_state({2, words, nil}) end
  end

  test "inspect shows a short summary, not the 2.5 KB state" do
    assert inspect(Random.new(0)) =~ ~r/^#DSPex.Random<position: 624, fingerprint: \d+>$/
  end
end
