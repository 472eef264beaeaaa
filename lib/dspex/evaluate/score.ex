defmodule DSPex.Evaluate.Score do
  @moduledoc """
  Python's number semantics for Evaluate's score, so DSPex reports what DSPy reports.

  DSPy computes `round(100 * sum(scores) / len(devset), 2)`. Three Python details
  matter and differ from Elixir's defaults:

    * `round(x, n)` rounds the **exact binary value** of `x` half-to-even
      (`round(12.125, 2) == 12.12`); `Float.round/2` rounds half away from zero;
    * `f"{x:.2f}"` (the progress text) is correctly rounded the same way, while
      `:erlang.float_to_binary(0.125, decimals: 2)` gives `"0.13"` (Python: `"0.12"`);
    * `sum/1` adds left to right, exactly while every item is an int or bool, then in
      floats (CPython 3.11, the interpreter DSPy 3.3.1 runs on here; CPython ≥ 3.12
      compensates float sums, which can change the last bit of a float total).

  Elixir's `+` and `/` already behave like Python's `+` and true division on these
  values (ints below 2^53, IEEE doubles), so only rounding and formatting are written
  out here.

  ## Examples

      iex> DSPex.Evaluate.Score.round(12.125, 2)
      12.12
      iex> DSPex.Evaluate.Score.percent(97, 800)
      12.12
      iex> DSPex.Evaluate.Score.format_fixed(0.125, 2)
      "0.12"
      iex> DSPex.Evaluate.Score.sum([true, false, 0.5, 1])
      2.5
  """

  import Bitwise

  @doc """
  The number a metric result counts as: `true` → 1, `false` → 0, a number as is, a
  `%DSPex.Prediction{}` with a `:score` field → that score (as DSPy adds a
  `Prediction` through its `score`). Raises `ArgumentError` for anything else.

  ## Examples

      iex> DSPex.Evaluate.Score.value(true)
      1
      iex> DSPex.Evaluate.Score.value(DSPex.Prediction.new(score: 0.5))
      0.5
  """
  @spec value(term) :: number
  def value(true), do: 1
  def value(false), do: 0
  def value(n) when is_number(n), do: n

  def value(%DSPex.Prediction{} = p) do
    case DSPex.Prediction.get(p, :score) do
      s when is_number(s) or is_boolean(s) -> value(s)
      _ -> bad_value!(p)
    end
  end

  def value(other), do: bad_value!(other)

  defp bad_value!(other) do
    raise ArgumentError,
          "a metric must return a boolean, a number or a DSPex.Prediction with a numeric " <>
            ":score field, got: #{inspect(other, limit: 5, printable_limit: 60)}"
  end

  @doc """
  Python's `sum()` of metric results (see the module doc): an integer while every item
  is a boolean or an integer, a float from the first float on.

  ## Examples

      iex> DSPex.Evaluate.Score.sum([true, true, false])
      2
      iex> DSPex.Evaluate.Score.sum([0.1, 0.2])
      0.30000000000000004
  """
  @spec sum([term]) :: number
  def sum(scores), do: Enum.reduce(scores, 0, fn s, acc -> acc + value(s) end)

  @doc """
  `round(100 * total / n, digits)` with Python's rounding: DSPy's Evaluate score
  (`digits` 2) and the percentage in its progress text (`digits` 1).

  ## Examples

      iex> DSPex.Evaluate.Score.percent(9, 12)
      75.0
      iex> DSPex.Evaluate.Score.percent(8, 11, 1)
      72.7
  """
  @spec percent(number, pos_integer, non_neg_integer) :: float
  def percent(total, n, digits \\ 2) when is_integer(n) and n > 0 do
    __MODULE__.round(100 * total / n, digits)
  end

  @doc """
  Python's `round(x, digits)` for a float or integer `x`: the exact binary value of `x`
  rounded half-to-even at `digits` decimals, read back as the nearest float.

  ## Examples

      iex> DSPex.Evaluate.Score.round(2.675, 2)
      2.67
      iex> DSPex.Evaluate.Score.round(0.5, 0)
      0.0
      iex> DSPex.Evaluate.Score.round(-1.25, 1)
      -1.2
  """
  @spec round(number, non_neg_integer) :: float
  def round(x, digits) when is_integer(x), do: round(x * 1.0, digits)

  def round(x, digits) when is_float(x) and is_integer(digits) and digits >= 0 do
    {sign, q} = scaled_half_even(x, digits)
    String.to_float(sign <> decimal(q, max(digits, 1), digits))
  end

  @doc """
  Python's `f"{x:.{digits}f}"`: fixed notation, correctly rounded half-to-even on the
  exact binary value.

  ## Examples

      iex> DSPex.Evaluate.Score.format_fixed(12, 2)
      "12.00"
      iex> DSPex.Evaluate.Score.format_fixed(2.675, 2)
      "2.67"
      iex> DSPex.Evaluate.Score.format_fixed(-0.004, 2)
      "-0.00"
  """
  @spec format_fixed(number, non_neg_integer) :: binary
  def format_fixed(x, digits) when is_integer(x), do: format_fixed(x * 1.0, digits)

  def format_fixed(x, digits) when is_float(x) and is_integer(digits) and digits >= 0 do
    {sign, q} = scaled_half_even(x, digits)
    sign <> decimal(q, digits, digits)
  end

  @doc """
  Python's `str()`/`repr()` of an int or float (`7.0`, `0.30000000000000004`,
  `1e+16`, `1e-05`), for texts DSPy prints with `{value}`.

  ## Examples

      iex> DSPex.Evaluate.Score.py_str(9)
      "9"
      iex> DSPex.Evaluate.Score.py_str(7.0)
      "7.0"
      iex> DSPex.Evaluate.Score.py_str(1.0e16)
      "1e+16"
  """
  @spec py_str(number) :: binary
  def py_str(x) when is_integer(x), do: Integer.to_string(x)

  def py_str(x) when is_float(x) do
    ax = abs(x)

    if ax == 0.0 or (ax >= 1.0e-4 and ax < 1.0e16) do
      # Elixir prints the same shortest digits in plain notation in this range.
      plain(x)
    else
      # Python: shortest digits as d[.ddd]e±XX (at least two exponent digits).
      [mant, exp] = String.split(Float.to_string(x), "e")
      mant = String.replace_suffix(mant, ".0", "")
      esign = if String.starts_with?(exp, "-"), do: "-", else: "+"
      edigits = String.trim_leading(exp, "-")
      mant <> "e" <> esign <> String.pad_leading(edigits, 2, "0")
    end
  end

  defp plain(x) do
    s = Float.to_string(x)
    if String.contains?(s, "e"), do: :erlang.float_to_binary(x, [:short]), else: s
  end

  @doc """
  DSPy's progress text for `total` over `n` scored examples:
  `Average Metric: 9.00 / 12 (75.0%)`.

  ## Examples

      iex> DSPex.Evaluate.Score.average_text(8, 11)
      "Average Metric: 8.00 / 11 (72.7%)"
      iex> DSPex.Evaluate.Score.average_text(0, 0)
      "Average Metric: 0.00 / 0 (0%)"
  """
  @spec average_text(number, non_neg_integer) :: binary
  def average_text(total, n) do
    pct = if n > 0, do: py_str(percent(total, n, 1)), else: "0"
    "Average Metric: #{format_fixed(total, 2)} / #{n} (#{pct}%)"
  end

  # The exact value of x, times 10^digits, rounded half-to-even: {sign, integer}.
  defp scaled_half_even(x, digits) do
    <<s::1, e::11, m::52>> = <<x::float>>
    sign = if s == 1, do: "-", else: ""

    # x = mant * 2^exp exactly (subnormals have e = 0 and no hidden bit).
    {mant, exp} = if e == 0, do: {m, -1074}, else: {m + (1 <<< 52), e - 1075}
    scale = pow10(digits)

    q =
      if exp >= 0 do
        (mant <<< exp) * scale
      else
        num = mant * scale
        den = 1 <<< -exp
        q = div(num, den)
        r2 = 2 * rem(num, den)

        cond do
          r2 > den -> q + 1
          r2 < den -> q
          rem(q, 2) == 1 -> q + 1
          true -> q
        end
      end

    {sign, q}
  end

  defp pow10(0), do: 1
  defp pow10(n), do: 10 * pow10(n - 1)

  # q / 10^digits as text with `shown` (>= digits) decimals.
  defp decimal(q, shown, digits) do
    s = q |> Integer.to_string() |> String.pad_leading(digits + 1, "0")
    {int, frac} = String.split_at(s, byte_size(s) - digits)
    frac = String.pad_trailing(frac, shown, "0")
    if shown == 0, do: int, else: int <> "." <> frac
  end
end
