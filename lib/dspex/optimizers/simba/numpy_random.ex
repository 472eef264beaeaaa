defmodule DSPex.Optimizers.SIMBA.NumpyRandom do
  @moduledoc """
  numpy's `numpy.random.default_rng(seed)` (a PCG64 bit generator seeded through
  `SeedSequence`), for the one draw SIMBA takes from it: `poisson(lam)`.

  DSPy's SIMBA decides how many demos to drop from a candidate with
  `rng_np.poisson(num_demos / max_demos)`; this module reproduces numpy 1.x/2.x draw
  for draw: `SeedSequence` entropy mixing (pool of four 32-bit words), PCG64's 128-bit
  LCG with the XSL-RR output, `next_double` (53 bits) and numpy's Poisson sampler
  (multiplication method below 10, PTRS transformed rejection from 10 up).

  A value, like `DSPex.Random`: every draw returns `{result, next_state}`.

      iex> rng = DSPex.Optimizers.SIMBA.NumpyRandom.new(0)
      iex> {k, _rng} = DSPex.Optimizers.SIMBA.NumpyRandom.poisson(rng, 2.5)
      iex> is_integer(k)
      true
  """

  import Bitwise

  @m32 0xFFFFFFFF
  @m64 0xFFFFFFFFFFFFFFFF
  @m128 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF
  @mult 0x2360ED051FC65DA44385DF649FCCF645

  defstruct [:state, :inc]

  @type t :: %__MODULE__{state: non_neg_integer, inc: non_neg_integer}

  @doc """
  `numpy.random.default_rng(seed)` for a non-negative integer seed.

  ## Examples

      iex> %DSPex.Optimizers.SIMBA.NumpyRandom{} = DSPex.Optimizers.SIMBA.NumpyRandom.new(42)
  """
  @spec new(non_neg_integer) :: t
  def new(seed) when is_integer(seed) and seed >= 0 do
    [s0, s1, s2, s3] = seed_sequence_state(words32(seed), 4)
    init_state = s0 <<< 64 ||| s1
    init_seq = s2 <<< 64 ||| s3
    inc = (init_seq <<< 1 ||| 1) &&& @m128
    st = %__MODULE__{state: 0, inc: inc} |> step()
    %{st | state: st.state + init_state &&& @m128} |> step()
  end

  defp words32(0), do: [0]

  defp words32(n) do
    Stream.unfold(n, fn
      0 -> nil
      x -> {x &&& @m32, x >>> 32}
    end)
    |> Enum.to_list()
  end

  # SeedSequence(entropy).generate_state(n_words, np.uint64)
  defp seed_sequence_state(entropy, n64) do
    pool = mix_entropy(entropy)
    n32 = n64 * 2

    {words, _} =
      pool
      |> Stream.cycle()
      |> Enum.take(n32)
      |> Enum.map_reduce(0x8B51F9DD, fn v, h ->
        v = bxor(v, h)
        h = h * 0x58F38DED &&& @m32
        v = v * h &&& @m32
        {bxor(v, v >>> 16), h}
      end)

    words |> Enum.chunk_every(2) |> Enum.map(fn [lo, hi] -> hi <<< 32 ||| lo end)
  end

  defp hashmix(v, h) do
    v = bxor(v, h)
    h = h * 0x931E8875 &&& @m32
    v = v * h &&& @m32
    {bxor(v, v >>> 16), h}
  end

  defp mix(x, y) do
    r = 0xCA01F9DD * x - 0x4973F715 * y &&& @m32
    bxor(r, r >>> 16)
  end

  defp mix_entropy(entropy) do
    {pool, h} =
      Enum.map_reduce(0..3, 0x43B0D7E5, fn i, h -> hashmix(Enum.at(entropy, i, 0), h) end)

    pool = List.to_tuple(pool)

    {pool, h} =
      for src <- 0..3, dst <- 0..3, src != dst, reduce: {pool, h} do
        {pool, h} ->
          {hv, h} = hashmix(elem(pool, src), h)
          {put_elem(pool, dst, mix(elem(pool, dst), hv)), h}
      end

    {pool, _h} =
      Enum.reduce(Enum.drop(entropy, 4), {pool, h}, fn e, {pool, h} ->
        Enum.reduce(0..3, {pool, h}, fn dst, {pool, h} ->
          {hv, h} = hashmix(e, h)
          {put_elem(pool, dst, mix(elem(pool, dst), hv)), h}
        end)
      end)

    Tuple.to_list(pool)
  end

  defp step(%__MODULE__{state: s, inc: inc} = st),
    do: %{st | state: s * @mult + inc &&& @m128}

  @doc """
  PCG64's `next_uint64` (step, then XSL-RR output).

  ## Examples

      iex> {x, _} = DSPex.Optimizers.SIMBA.NumpyRandom.next_uint64(DSPex.Optimizers.SIMBA.NumpyRandom.new(0))
      iex> x < 18_446_744_073_709_551_616
      true
  """
  @spec next_uint64(t) :: {non_neg_integer, t}
  def next_uint64(%__MODULE__{} = st) do
    st = step(st)
    s = st.state
    v = bxor(s >>> 64, s &&& @m64)
    rot = s >>> 122
    {(v >>> rot ||| v <<< (64 - rot &&& 63)) &&& @m64, st}
  end

  @doc """
  numpy's `next_double`: 53 random bits over 2^53.

  ## Examples

      iex> {x, _} = DSPex.Optimizers.SIMBA.NumpyRandom.next_double(DSPex.Optimizers.SIMBA.NumpyRandom.new(0))
      iex> x >= 0.0 and x < 1.0
      true
  """
  @spec next_double(t) :: {float, t}
  def next_double(st) do
    {u, st} = next_uint64(st)
    {(u >>> 11) * (1.0 / 9_007_199_254_740_992.0), st}
  end

  @doc """
  `Generator.poisson(lam)` for a scalar `lam >= 0`.

  ## Examples

      iex> {0, _} = DSPex.Optimizers.SIMBA.NumpyRandom.poisson(DSPex.Optimizers.SIMBA.NumpyRandom.new(0), 0.0)
  """
  @spec poisson(t, number) :: {non_neg_integer, t}
  def poisson(st, lam) when is_number(lam) and lam >= 10, do: ptrs(st, lam * 1.0)
  def poisson(st, lam) when lam == 0, do: {0, st}

  def poisson(st, lam) when is_number(lam) and lam > 0,
    do: mult(st, :math.exp(-lam), 0, 1.0)

  defp mult(st, enlam, x, prod) do
    {u, st} = next_double(st)
    prod = prod * u
    if prod > enlam, do: mult(st, enlam, x + 1, prod), else: {x, st}
  end

  defp ptrs(st, lam) do
    slam = :math.sqrt(lam)
    loglam = :math.log(lam)
    b = 0.931 + 2.53 * slam
    a = -0.059 + 0.02483 * b
    invalpha = 1.1239 + 1.1328 / (b - 3.4)
    vr = 0.9277 - 3.6224 / (b - 2)
    ptrs_loop(st, lam, slam, loglam, a, b, invalpha, vr)
  end

  defp ptrs_loop(st, lam, slam, loglam, a, b, invalpha, vr) do
    {u, st} = next_double(st)
    u = u - 0.5
    {v, st} = next_double(st)
    us = 0.5 - abs(u)
    k = floor((2 * a / us + b) * u + lam + 0.43)

    cond do
      us >= 0.07 and v <= vr ->
        {k, st}

      k < 0 or (us < 0.013 and v > us) ->
        ptrs_loop(st, lam, slam, loglam, a, b, invalpha, vr)

      # log(0) is -inf in C: the test passes
      v == 0 or
          :math.log(v) + :math.log(invalpha) - :math.log(a / (us * us) + b) <=
            -lam + k * loglam - loggam(k + 1.0) ->
        {k, st}

      true ->
        ptrs_loop(st, lam, slam, loglam, a, b, invalpha, vr)
    end
  end

  @loggam_a [
    8.333333333333333e-02,
    -2.777777777777778e-03,
    7.936507936507937e-04,
    -5.952380952380952e-04,
    8.417508417508418e-04,
    -1.917526917526918e-03,
    6.410256410256410e-03,
    -2.955065359477124e-02,
    1.796443723688307e-01,
    -1.39243221690590e+00
  ]

  defp loggam(x) when x == 1.0 or x == 2.0, do: 0.0

  defp loggam(x) do
    n = if x < 7.0, do: trunc(7 - x), else: 0
    x0 = x + n
    x2 = 1.0 / x0 * (1.0 / x0)
    [a9 | rest] = Enum.reverse(@loggam_a)
    gl0 = Enum.reduce(rest, a9, fn ak, gl0 -> gl0 * x2 + ak end)
    gl = gl0 / x0 + 0.5 * 1.8378770664093453 + (x0 - 0.5) * :math.log(x0) - x0

    if x < 7.0 do
      {gl, _} =
        Enum.reduce(1..n//1, {gl, x0}, fn _, {gl, x0} -> {gl - :math.log(x0 - 1.0), x0 - 1.0} end)

      gl
    else
      gl
    end
  end
end
