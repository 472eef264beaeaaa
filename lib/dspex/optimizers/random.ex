defmodule DSPex.Random do
  @moduledoc """
  Python's `random.Random`, draw for draw: with the same seed and the same calls,
  every function returns exactly what CPython returns, so DSPex optimizers pick the
  same demos, shuffles and minibatches as DSPy does.

      iex> rng = DSPex.Random.new(0)
      iex> {x, _rng} = DSPex.Random.random(rng)
      iex> x
      0.8444218515250481

  is `random.Random(0).random()`. The generator is CPython's (MT19937 with
  `init_by_array` seeding, `getrandbits`-based `_randbelow`, Python 3.11's `shuffle`,
  `sample` and `choices` algorithms), implemented in C and checked against real CPython
  on 685 calls, including the generator state after each one.

  ## Values, not processes

  A `DSPex.Random` is an immutable value (the 2.5 KB Mersenne Twister state). Every
  draw takes a generator and returns `{result, next_generator}`; pass the new one to
  the next draw, as with `:rand`'s explicit-state functions:

      iex> rng = DSPex.Random.new(0)
      iex> {a, rng} = DSPex.Random.random(rng)
      iex> {b, _rng} = DSPex.Random.random(rng)
      iex> {a, b}
      {0.8444218515250481, 0.7579544029403025}

  Because nothing is shared, a generator can be used from any process, sent to another
  node or stored (`to_python_state/1` gives Python's `getstate()` form). Two processes
  drawing from the *same* value get the *same* numbers: a DSPy optimizer's shared
  `self.rng` becomes one value threaded through its steps, not a value drawn from in
  parallel.

  ## Seeds

  `new/1` takes what `random.Random(seed)` takes: an integer of any size (the sign is
  ignored, as in Python) or a string (a UTF-8 binary; Python's `str` seeds hash the
  text with SHA-512, and any binary works like a Python `bytes` seed).

  ## Errors

  Where Python raises `ValueError` or `IndexError` (an empty range, a sample larger
  than the population, weights that do not sum to a positive number), these functions
  raise `ArgumentError` with Python's message: like `Enum.random/1`, those are mistakes
  in the calling code, not conditions to handle.

  ## Telemetry

  None: these are primitives called many times per optimizer step. Instrument the
  optimizer instead.
  """

  alias DSPex.NIF

  @enforce_keys [:state]
  defstruct [:state]

  @typedoc "A generator state (opaque; 624 words and a position, as CPython holds them)."
  @type t :: %__MODULE__{state: binary}

  @typedoc "What `random.Random(seed)` accepts: an integer or a string."
  @type seed :: integer | String.t()

  @two64 0x1_0000_0000_0000_0000

  @doc """
  A generator seeded like `random.Random(seed)`.

  ## Examples

      iex> {x, _} = DSPex.Random.new(0) |> DSPex.Random.random()
      iex> x
      0.8444218515250481

      iex> {x, _} = DSPex.Random.new("abc") |> DSPex.Random.random()
      iex> x
      0.7720246314157545

      iex> DSPex.Random.new(-7) == DSPex.Random.new(7)
      true
  """
  @spec new(seed) :: t
  def new(seed) when is_integer(seed) do
    bytes = if seed == 0, do: <<>>, else: :binary.encode_unsigned(abs(seed), :little)
    %__MODULE__{state: NIF.guard(fn -> NIF.random_seed_int(bytes) end)}
  end

  def new(seed) when is_binary(seed) do
    # CPython's version-2 str seed: the big-endian integer of text || sha512(text).
    new(:binary.decode_unsigned(seed <> :crypto.hash(:sha512, seed)))
  end

  def new(seed) do
    raise ArgumentError,
          "DSPex.Random.new/1 expects an integer or string seed, got: #{inspect(seed)}"
  end

  @doc """
  `random()`: a float in `[0.0, 1.0)` with 53 random bits.

  ## Examples

      iex> {x, _rng} = DSPex.Random.random(DSPex.Random.new(42))
      iex> x
      0.6394267984578837
  """
  @spec random(t) :: {float, t}
  def random(%__MODULE__{state: s}) do
    {x, s} = NIF.guard(fn -> NIF.random_random(s) end)
    {x, %__MODULE__{state: s}}
  end

  def random(rng), do: bad!("random/1", [rng])

  @doc """
  `uniform(a, b)`: `a + (b - a) * random()`.

  ## Examples

      iex> {x, _rng} = DSPex.Random.uniform(DSPex.Random.new(7), 1.5, 2.5)
      iex> x
      1.8238327648331625
  """
  @spec uniform(t, number, number) :: {float, t}
  def uniform(%__MODULE__{} = rng, a, b) when is_number(a) and is_number(b) do
    {x, rng} = random(rng)
    {a + (b - a) * x, rng}
  end

  def uniform(rng, a, b), do: bad!("uniform/3 (numbers a and b)", [rng, a, b])

  @doc """
  `getrandbits(k)`: a non-negative integer with `k` random bits (`k` up to 2^20).

  ## Examples

      iex> {n, _rng} = DSPex.Random.getrandbits(DSPex.Random.new(5), 100)
      iex> n
      454911232961676339139289971781
  """
  @spec getrandbits(t, non_neg_integer) :: {non_neg_integer, t}
  def getrandbits(%__MODULE__{state: s}, k) when is_integer(k) and k >= 0 do
    {bits, s} = NIF.guard(fn -> NIF.random_getrandbits(s, k) end)
    {:binary.decode_unsigned(bits, :little), %__MODULE__{state: s}}
  end

  def getrandbits(rng, k), do: bad!("getrandbits/2 (k a non-negative integer)", [rng, k])

  @doc """
  `randrange(stop)`: an integer in `0..stop-1` (Python's `_randbelow`).

  ## Examples

      iex> {n, _rng} = DSPex.Random.randrange(DSPex.Random.new(42), 10)
      iex> n
      1
  """
  @spec randrange(t, integer) :: {non_neg_integer, t}
  def randrange(%__MODULE__{} = rng, stop) when is_integer(stop) do
    if stop > 0, do: below(rng, stop), else: raise(ArgumentError, "empty range for randrange()")
  end

  def randrange(rng, stop), do: bad!("randrange/2 (an integer stop)", [rng, stop])

  @doc """
  `randrange(start, stop, step)`: a random element of `range(start, stop, step)`.
  Integers of any size, like Python.

  ## Examples

      iex> rng = DSPex.Random.new(42)
      iex> {a, rng} = DSPex.Random.randrange(rng, 10)
      iex> {b, rng} = DSPex.Random.randrange(rng, 0, 100, 5)
      iex> {c, _rng} = DSPex.Random.randrange(rng, 10, 0, -3)
      iex> {a, b, c}
      {1, 0, 4}
  """
  @spec randrange(t, integer, integer, integer) :: {integer, t}
  def randrange(rng, start, stop, step \\ 1)

  def randrange(%__MODULE__{} = rng, start, stop, step)
      when is_integer(start) and is_integer(stop) and is_integer(step) do
    width = stop - start

    cond do
      step == 1 and width > 0 ->
        {v, rng} = below(rng, width)
        {start + v, rng}

      step == 1 ->
        raise ArgumentError, "empty range for randrange() (#{start}, #{stop}, #{width})"

      step == 0 ->
        raise ArgumentError, "zero step for randrange()"

      true ->
        # Python's floor division: (width + step - 1) // step, or + 1 for a negative step
        n = Integer.floor_div(if(step > 0, do: width + step - 1, else: width + step + 1), step)
        if n <= 0, do: raise(ArgumentError, "empty range for randrange()")
        {v, rng} = below(rng, n)
        {start + step * v, rng}
    end
  end

  def randrange(rng, start, stop, step),
    do: bad!("randrange/4 (integers start, stop, step)", [rng, start, stop, step])

  @doc """
  `randint(a, b)`: an integer in `a..b`, both ends included.

  ## Examples

      iex> {n, _rng} = DSPex.Random.randint(DSPex.Random.new(9), 1, 4)
      iex> n
      4

      iex> {n, _rng} = DSPex.Random.randint(DSPex.Random.new(0), 0, 2 ** 70)
      iex> n
      99991896773263558274
  """
  @spec randint(t, integer, integer) :: {integer, t}
  def randint(%__MODULE__{} = rng, a, b) when is_integer(a) and is_integer(b),
    do: randrange(rng, a, b + 1)

  def randint(rng, a, b), do: bad!("randint/3 (integers a and b)", [rng, a, b])

  @doc """
  `choice(seq)`: one element of a non-empty list or range.

  ## Examples

      iex> {x, _rng} = DSPex.Random.choice(DSPex.Random.new(9), ~w(a b c d e f))
      iex> x
      "d"
  """
  @spec choice(t, list | Range.t()) :: {term, t}
  def choice(%__MODULE__{} = rng, seq) when is_list(seq) or is_struct(seq, Range) do
    case count!(seq, "choice/2") do
      0 ->
        raise ArgumentError, "Cannot choose from an empty sequence"

      n ->
        {i, rng} = below(rng, n)
        {Enum.at(seq, i), rng}
    end
  end

  def choice(rng, seq), do: bad!("choice/2 (a list or range)", [rng, seq])

  @doc """
  `shuffle(x)`: the list (or range) in Python's shuffled order. Python shuffles in
  place; here the shuffled list is returned.

  ## Examples

      iex> {list, _rng} = DSPex.Random.new(0) |> DSPex.Random.shuffle(Enum.to_list(1..10))
      iex> list
      [8, 9, 2, 6, 4, 5, 3, 1, 10, 7]
  """
  @spec shuffle(t, list | Range.t()) :: {list, t}
  def shuffle(%__MODULE__{state: s}, seq) when is_list(seq) or is_struct(seq, Range) do
    list = Enum.to_list(seq)
    {list, s} = NIF.guard(fn -> NIF.random_shuffle(s, list) end)
    {list, %__MODULE__{state: s}}
  end

  def shuffle(rng, seq), do: bad!("shuffle/2 (a list or range)", [rng, seq])

  @doc """
  `sample(population, k)`: `k` distinct elements in Python's selection order, using
  Python's list-or-set strategy (which decides how many draws are made). A range is
  sampled without being materialised, like `sample(range(n), k)`.

  Option `counts:` repeats elements like Python's `sample(population, k, counts=...)`.

  ## Examples

      iex> {picked, _rng} = DSPex.Random.sample(DSPex.Random.new(0), ~w(a b c d e), 3)
      iex> picked
      ["d", "e", "a"]

      iex> {picked, _rng} = DSPex.Random.sample(DSPex.Random.new(123), 0..999_999, 3)
      iex> picked
      [54907, 280679, 91421]
  """
  @spec sample(t, list | Range.t(), non_neg_integer, keyword) :: {list, t}
  def sample(rng, population, k, opts \\ [])

  def sample(%__MODULE__{} = rng, population, k, counts: counts)
      when (is_list(population) or is_struct(population, Range)) and is_integer(k) and
             is_list(counts) do
    pop = Enum.to_list(population)

    if count!(counts, "sample/4 counts") != count!(pop, "sample/4"),
      do: raise(ArgumentError, "The number of counts does not match the population")

    unless Enum.all?(counts, &is_integer/1), do: raise(ArgumentError, "Counts must be integers")
    cum = Enum.scan(counts, &(&2 + &1))
    total = List.last(cum) || 0
    if total <= 0, do: raise(ArgumentError, "Total of counts must be greater than zero")
    {picks, rng} = sample(rng, 0..(total - 1), k)
    cum = List.to_tuple(cum)
    pop = List.to_tuple(pop)
    {Enum.map(picks, &elem(pop, bisect_right(cum, &1))), rng}
  end

  def sample(%__MODULE__{state: s}, %Range{} = range, k, []) when is_integer(k) do
    n = Enum.count(range)
    check_sample(n, k)

    if n >= @two64,
      do: raise(ArgumentError, "sample/3: ranges of 2^64 or more elements are not supported")

    {idx, s} = NIF.guard(fn -> NIF.random_sample(s, n, k) end)
    {Enum.map(idx, &Enum.at(range, &1)), %__MODULE__{state: s}}
  end

  def sample(%__MODULE__{state: s}, population, k, [])
      when is_list(population) and is_integer(k) do
    check_sample(count!(population, "sample/3"), k)
    {picked, s} = NIF.guard(fn -> NIF.random_sample(s, population, k) end)
    {picked, %__MODULE__{state: s}}
  end

  def sample(rng, population, k, opts) do
    bad!("sample/4 (a list or range, an integer k, optionally counts: [integer])", [
      rng,
      population,
      k,
      opts
    ])
  end

  @doc """
  `choices(population, weights=None, *, cum_weights=None, k=1)`: `k` elements chosen
  with replacement. Options `weights:` or `cum_weights:` (lists of numbers the length
  of the population; Python accumulates `weights` left to right) and `k:`.

  Weights are compared as 64-bit floats, so integer weights above 2^53 can pick
  differently from Python, which compares them exactly.

  ## Examples

      iex> rng = DSPex.Random.new(1)
      iex> {picked, _rng} = DSPex.Random.choices(rng, ~w(x y z), weights: [1, 2, 7], k: 5)
      iex> picked
      ["y", "z", "z", "y", "z"]

      iex> {picked, _rng} = DSPex.Random.choices(DSPex.Random.new(1), ~w(x y z), k: 4)
      iex> picked
      ["x", "z", "z", "x"]
  """
  @spec choices(t, list | Range.t(), keyword) :: {list, t}
  def choices(rng, population, opts \\ [])

  def choices(%__MODULE__{state: s}, population, opts)
      when (is_list(population) or is_struct(population, Range)) and is_list(opts) do
    pop = Enum.to_list(population)
    k = Keyword.get(opts, :k, 1)

    cum =
      case {Keyword.get(opts, :weights), Keyword.get(opts, :cum_weights)} do
        {nil, nil} ->
          nil

        {w, nil} when is_list(w) ->
          accumulate(w)

        {nil, c} when is_list(c) ->
          c

        {w, c} when w != nil and c != nil ->
          raise ArgumentError, "Cannot specify both weights and cumulative weights"

        _ ->
          raise ArgumentError, "choices/3: weights: and cum_weights: must be lists of numbers"
      end

    if cum != nil and count!(cum, "choices/3 weights") != count!(pop, "choices/3"),
      do: raise(ArgumentError, "The number of weights does not match the population")

    unless is_integer(k) and k >= 0,
      do: raise(ArgumentError, "choices: k must be a non-negative integer")

    {picked, s} = NIF.guard(fn -> NIF.random_choices(s, pop, cum, k) end)
    {picked, %__MODULE__{state: s}}
  end

  def choices(rng, population, opts),
    do: bad!("choices/3 (a list or range and a keyword list)", [rng, population, opts])

  @doc """
  The state as Python's `random.getstate()` returns it: `{3, words_and_position, nil}`
  (625 integers). `from_python_state/1` is the inverse, so a stream can be handed
  between DSPex and Python.

  ## Examples

      iex> {3, words, nil} = DSPex.Random.to_python_state(DSPex.Random.new(0))
      iex> {tuple_size(words), elem(words, 0), elem(words, 624)}
      {625, 2147483648, 624}
  """
  @spec to_python_state(t) :: {3, tuple, nil}
  def to_python_state(%__MODULE__{state: s}) when byte_size(s) == 2500 do
    words = for <<w::little-unsigned-32 <- s>>, do: w
    {3, List.to_tuple(words), nil}
  end

  def to_python_state(rng), do: bad!("to_python_state/1", [rng])

  @doc """
  A generator from Python's `random.getstate()` value (see `to_python_state/1`).

  ## Examples

      iex> rng = DSPex.Random.new(9)
      iex> DSPex.Random.from_python_state(DSPex.Random.to_python_state(rng)) == rng
      true
  """
  @spec from_python_state({3, tuple, term}) :: t
  def from_python_state({3, words, _gauss_next}) when tuple_size(words) == 625 do
    list = Tuple.to_list(words)

    unless Enum.all?(list, &(is_integer(&1) and &1 >= 0 and &1 < 0x1_0000_0000)) and
             elem(words, 624) <= 624,
           do:
             raise(
               ArgumentError,
               "not a random.getstate() value: words must be uint32, position <= 624"
             )

    %__MODULE__{state: for(w <- list, into: <<>>, do: <<w::little-unsigned-32>>)}
  end

  def from_python_state(other) do
    raise ArgumentError, "not a random.getstate() value: #{inspect(other, limit: 5)}"
  end

  # Python's _randbelow: getrandbits(n.bit_length()) until below n. In C for n < 2^64;
  # here, with exact integers, above that.
  defp below(%__MODULE__{state: s}, n) when n < @two64 do
    {v, s} = NIF.guard(fn -> NIF.random_below(s, n) end)
    {v, %__MODULE__{state: s}}
  end

  defp below(rng, n) do
    k = bit_length(n)
    {v, rng} = getrandbits(rng, k)
    if v < n, do: {v, rng}, else: below_retry(rng, n, k)
  end

  defp below_retry(rng, n, k) do
    {v, rng} = getrandbits(rng, k)
    if v < n, do: {v, rng}, else: below_retry(rng, n, k)
  end

  defp bit_length(n), do: length(Integer.digits(n, 2))

  # itertools.accumulate: left to right, exact for integers like Python's ints
  defp accumulate(weights) do
    count!(weights, "choices/3 weights")

    unless Enum.all?(weights, &is_number/1),
      do: raise(ArgumentError, "choices/3: weights must be numbers")

    Enum.scan(weights, &(&2 + &1))
  end

  defp count!(%Range{} = r, _fun), do: Enum.count(r)

  defp count!(list, fun) do
    length(list)
  rescue
    ArgumentError ->
      reraise ArgumentError, [message: "#{fun} expects a proper list"], __STACKTRACE__
  end

  defp bad!(what, args) do
    shown = Enum.map_join(args, ", ", &inspect(&1, limit: 5, printable_limit: 40))

    raise ArgumentError,
          "DSPex.Random.#{what}: bad arguments (the generator comes from DSPex.Random.new/1): " <>
            shown
  end

  defp check_sample(n, k) do
    unless k >= 0 and k <= n,
      do: raise(ArgumentError, "Sample larger than population or is negative")
  end

  # bisect.bisect_right over a tuple of cumulative counts
  defp bisect_right(cum, x), do: bisect_right(cum, x, 0, tuple_size(cum))

  defp bisect_right(_cum, _x, lo, hi) when lo >= hi, do: lo

  defp bisect_right(cum, x, lo, hi) do
    mid = div(lo + hi, 2)

    if x < elem(cum, mid),
      do: bisect_right(cum, x, lo, mid),
      else: bisect_right(cum, x, mid + 1, hi)
  end

  defimpl Inspect do
    # The 2.5 KB state would flood logs: show the position and a short fingerprint.
    def inspect(
          %DSPex.Random{state: <<_::binary-size(2496), pos::little-unsigned-32>> = s},
          _opts
        ),
        do: "#DSPex.Random<position: #{pos}, fingerprint: #{:erlang.phash2(s)}>"

    def inspect(%DSPex.Random{}, _opts), do: "#DSPex.Random<invalid state>"
  end
end
