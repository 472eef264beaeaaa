# The TPE sampler's `ask` (c_src/core/optim/tpe.c) against optuna 5's
# TPESampler(seed=9, multivariate=True) -- what DSPy's MIPROv2 runs -- on the same
# MIPROv2-shaped studies with the same scripted scores. Both sides print a digest of
# their proposals, so the timing compares identical work.
#
#   MIX_ENV=prod mix run bench/tpe.exs
#
# The C side is compiled here with cc -O2 (it lives in the port program, not the NIF).
# The Python side needs optuna: $OPTUNA_PYTHON, else /work/venv/bin/python.

seconds = System.get_env("BENCH_SECONDS", "2")
root = Path.expand("..", __DIR__)
out = Path.join(root, "_build/bench/tpe_bench")
File.mkdir_p!(Path.dirname(out))

sources =
  ~w(bench/tpe_bench.c c_src/core/optim/tpe.c c_src/core/optim/parzen.c c_src/core/base/mt19937.c)
  |> Enum.map(&Path.join(root, &1))

{log, status} =
  System.cmd(
    "cc",
    ["-std=c11", "-O2", "-D_POSIX_C_SOURCE=200809L", "-I#{root}/include", "-I#{root}/c_src/core"] ++
      sources ++ ["-o", out, "-lm"],
    stderr_to_stdout: true
  )

if status != 0, do: raise("compiling the TPE bench failed:\n" <> log)

python =
  Enum.find([System.get_env("OPTUNA_PYTHON"), "/work/venv/bin/python"], fn p ->
    p && File.exists?(p) &&
      match?({_, 0}, System.cmd(p, ["-c", "import optuna"], stderr_to_stdout: true))
  end)

configs = [
  {"light: 1 predictor, 3 instr x 6 demo sets, 10 trials", ~w(1 3 6 10)},
  {"medium: 2 predictors, 6 x 12, 28 trials", ~w(2 6 12 28)},
  {"heavy: 3 predictors, 9 x 18, 50 trials", ~w(3 9 18 50)},
  {"large: 3 predictors, 30 x 30, 300 trials", ~w(3 30 30 300)}
]

parse = fn text ->
  [_, us] = Regex.run(~r/us_per_ask=([0-9.]+)/, text)
  [_, digest] = Regex.run(~r/digest=([0-9a-f]+)/, text)
  {String.to_float(us), digest}
end

IO.puts("TPE ask (mean over all asks of each study, startup trials included)")

if python == nil,
  do: IO.puts("  optuna not found (set OPTUNA_PYTHON to a Python with optuna); C figures only")

for {label, args} <- configs do
  {c_out, 0} = System.cmd(out, args ++ [seconds])
  {c_us, c_digest} = parse.(c_out)
  IO.puts("  #{label}")
  IO.puts("    DSPex C TPE:  #{Float.round(c_us, 2)} µs/ask")

  if python do
    {py_out, 0} =
      System.cmd(python, [Path.join(root, "bench/py/tpe_bench.py") | args] ++ [seconds],
        stderr_to_stdout: true
      )

    {py_us, py_digest} = parse.(py_out)
    same = if py_digest == c_digest, do: "identical proposals", else: "PROPOSALS DIFFER"

    IO.puts(
      "    optuna #{Float.round(py_us, 1)} µs/ask -> DSPex #{Float.round(py_us / c_us, 1)}x faster (#{same})"
    )
  end
end
