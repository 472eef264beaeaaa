# Shared by the benchmarks in bench/: a timing loop and the Python DSPy peer.
defmodule DSPex.Bench do
  @moduledoc false

  @doc "Mean µs per call of `fun` over `seconds`, after `warmup` untimed calls."
  def measure_us(fun, seconds, warmup \\ 2000) do
    for _ <- 1..warmup, do: fun.()
    deadline = System.monotonic_time(:microsecond) + seconds * 1_000_000
    start = System.monotonic_time(:microsecond)

    n =
      Stream.repeatedly(fn -> Enum.each(1..200, fn _ -> fun.() end) end)
      |> Enum.reduce_while(0, fn _, acc ->
        if System.monotonic_time(:microsecond) >= deadline,
          do: {:halt, acc + 200},
          else: {:cont, acc + 200}
      end)

    (System.monotonic_time(:microsecond) - start) / n
  end

  @doc "The Python interpreter with dspy installed ($DSPY_PYTHON or /opt/dspy-venv), or nil."
  def dspy_python do
    python = System.get_env("DSPY_PYTHON") || "/opt/dspy-venv/bin/python"
    if File.exists?(python), do: python
  end

  @doc """
  Runs a peer script under DSPy's Python that prints `us_per_call=N`; prints the peer's
  figure and the ratio against `dspex_us`, or says why there is no comparison.
  """
  def compare_with_dspy(label, script, args, dspex_us) do
    case dspy_python() do
      nil ->
        IO.puts("  Python DSPy not found (set DSPY_PYTHON); no comparison")

      python ->
        {out, 0} = System.cmd(python, [script | args], stderr_to_stdout: true)
        [_, us] = Regex.run(~r/us_per_call=([0-9.]+)/, out)
        py_us = String.to_float(us)
        IO.puts("  #{label}: #{Float.round(py_us, 2)} µs/call")
        IO.puts("  ratio: DSPex is #{Float.round(py_us / dspex_us, 1)}x faster")
    end
  end
end
