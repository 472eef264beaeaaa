defmodule DSPex.Evaluate.Progress do
  @moduledoc """
  Evaluate's progress display (`display_progress: true`).

  On a terminal it is one live line on stderr, redrawn at most every 100 ms, shaped
  like DSPy's tqdm bar:

      Average Metric: 9.00 / 12 (75.0%):  67%|█████████████▍      | 12/18 [00:02<00:01, 5.51it/s]

  The description is DSPy's: the sum and count of the examples scored so far (failed
  examples are not counted) and their percentage. When stderr is not a terminal (CI
  logs, files, `mix test`) it prints plain lines instead — one each time another 10% of
  the examples is done, at most one every 10 s otherwise, and a last one at the end:

      Average Metric: 9.00 / 12 (75.0%) | 12/18 done (67%) | 5.5 it/s | 00:02 elapsed | ETA 00:01

  Terminal detection: the device is `:standard_error`, `TERM` is not `dumb` and file
  descriptor 2 of the VM is a TTY (asked once per VM with `sh -c 'test -t 2'`, since
  OTP 25's `:standard_error` does not report it).

  ## Examples

      iex> DSPex.Evaluate.Progress.bar_line("Average Metric: 1.00 / 2 (50.0%)", 2, 4, 1.0, 10)
      "Average Metric: 1.00 / 2 (50.0%):  50%|█████     | 2/4 [00:01<00:01, 2.00it/s]"
  """

  alias DSPex.Evaluate.Score

  defstruct device: :standard_error,
            tty: false,
            total: 0,
            started: 0,
            last_render: nil,
            last_step: 0,
            enabled: false,
            describe: &Score.average_text/2

  @type t :: %__MODULE__{}

  @redraw_ms 100
  @plain_every_ms 10_000
  @bar_width 20
  @blocks ["", "▏", "▎", "▍", "▌", "▋", "▊", "▉"]

  @doc """
  A progress display for `total` examples. Options: `enabled` (default `true`),
  `device` (default `:standard_error`), `tty` (default: detected), `describe` (a
  function of `(sum, scored)` giving the description; default DSPy's
  `"Average Metric: ..."`, `DSPex.Evaluate.Score.average_text/2`).

  ## Examples

      iex> DSPex.Evaluate.Progress.new(10, enabled: false).enabled
      false
  """
  @spec new(non_neg_integer, keyword) :: t
  def new(total, opts \\ []) do
    device = Keyword.get(opts, :device, :standard_error)

    %__MODULE__{
      device: device,
      tty: Keyword.get_lazy(opts, :tty, fn -> tty?(device) end),
      total: total,
      started: now_ms(),
      enabled: Keyword.get(opts, :enabled, true),
      describe: Keyword.get(opts, :describe) || (&Score.average_text/2)
    }
  end

  @doc """
  Shows `done` of the total finished, with `sum` over `scored` examples; redraws only
  when due (see the module doc).
  """
  @spec update(t, non_neg_integer, number, non_neg_integer) :: t
  def update(%__MODULE__{enabled: false} = p, _done, _sum, _scored), do: p

  def update(%__MODULE__{} = p, done, sum, scored) do
    now = now_ms()
    step = if p.total > 0, do: div(done * 10, p.total), else: 10

    cond do
      p.tty and (p.last_render == nil or now - p.last_render >= @redraw_ms) ->
        IO.write(p.device, ["\r", line(p, done, sum, scored, now), "\e[K"])
        %{p | last_render: now}

      not p.tty and
          (step > p.last_step or now - (p.last_render || p.started) >= @plain_every_ms) ->
        IO.write(p.device, [line(p, done, sum, scored, now), "\n"])
        %{p | last_render: now, last_step: step}

      true ->
        p
    end
  end

  @doc """
  Draws the final state (always) and ends the line.
  """
  @spec finish(t, non_neg_integer, number, non_neg_integer) :: t
  def finish(%__MODULE__{enabled: false} = p, _done, _sum, _scored), do: p

  def finish(%__MODULE__{} = p, done, sum, scored) do
    now = now_ms()

    if p.tty,
      do: IO.write(p.device, ["\r", line(p, done, sum, scored, now), "\e[K\n"]),
      else: IO.write(p.device, [line(p, done, sum, scored, now), "\n"])

    %{p | last_render: now, last_step: 10}
  end

  defp line(p, done, sum, scored, now) do
    desc = p.describe.(sum, scored)
    elapsed = max(now - p.started, 0) / 1000

    if p.tty,
      do: bar_line(desc, done, p.total, elapsed, @bar_width),
      else: plain_line(desc, done, p.total, elapsed)
  end

  @doc """
  The terminal line: `desc: pct%|bar| done/total [elapsed<remaining, rate]`.

  ## Examples

      iex> DSPex.Evaluate.Progress.bar_line("x", 0, 3, 0.0, 4)
      "x:   0%|    | 0/3 [00:00<?, ?it/s]"
  """
  @spec bar_line(binary, non_neg_integer, non_neg_integer, float, pos_integer) :: binary
  def bar_line(desc, done, total, elapsed_s, width) do
    frac = if total > 0, do: min(done / total, 1.0), else: 1.0
    pct = frac |> Kernel.*(100) |> trunc() |> Integer.to_string() |> String.pad_leading(3)
    eighths = trunc(frac * width * 8)
    full = div(eighths, 8)
    part = Enum.at(@blocks, rem(eighths, 8))
    bar = String.duplicate("█", full) <> part
    bar = bar <> String.duplicate(" ", width - full - if(part == "", do: 0, else: 1))
    {rate, remaining} = rate(done, total, elapsed_s)

    "#{desc}: #{pct}%|#{bar}| #{done}/#{total} [#{clock(elapsed_s)}<#{remaining}, #{rate}]"
  end

  @doc """
  The plain line printed when stderr is not a terminal.

  ## Examples

      iex> DSPex.Evaluate.Progress.plain_line("x", 5, 10, 2.0)
      "x | 5/10 done (50%) | 2.5 it/s | 00:02 elapsed | ETA 00:02"
  """
  @spec plain_line(binary, non_neg_integer, non_neg_integer, float) :: binary
  def plain_line(desc, done, total, elapsed_s) do
    pct = if total > 0, do: div(done * 100, total), else: 100
    per_s = if elapsed_s > 0, do: done / elapsed_s, else: 0.0
    eta = if per_s > 0, do: clock((total - done) / per_s), else: "?"

    "#{desc} | #{done}/#{total} done (#{pct}%) | #{:erlang.float_to_binary(per_s, decimals: 1)} it/s" <>
      " | #{clock(elapsed_s)} elapsed | ETA #{eta}"
  end

  # tqdm's rate text: "12.34it/s", or "1.25s/it" below one per second.
  defp rate(0, _total, _elapsed), do: {"?it/s", "?"}

  defp rate(done, total, elapsed) when elapsed > 0 do
    per_s = done / elapsed
    remaining = clock((total - done) / per_s)

    text =
      if per_s >= 1,
        do: :erlang.float_to_binary(per_s, decimals: 2) <> "it/s",
        else: :erlang.float_to_binary(1 / per_s, decimals: 2) <> "s/it"

    {text, remaining}
  end

  defp rate(_done, _total, _elapsed), do: {"?it/s", "?"}

  defp clock(seconds) do
    s = trunc(seconds)
    {h, m, sec} = {div(s, 3600), div(rem(s, 3600), 60), rem(s, 60)}
    mmss = pad2(m) <> ":" <> pad2(sec)
    if h > 0, do: "#{h}:" <> mmss, else: mmss
  end

  defp pad2(n), do: n |> Integer.to_string() |> String.pad_leading(2, "0")

  defp now_ms, do: System.monotonic_time(:millisecond)

  @doc """
  Whether `device` is the VM's stderr and that is a terminal (see the module doc).

  ## Examples

      iex> {:ok, dev} = StringIO.open("")
      iex> DSPex.Evaluate.Progress.tty?(dev)
      false
  """
  @spec tty?(term) :: boolean
  def tty?(:standard_error) do
    System.get_env("TERM") not in [nil, "", "dumb"] and stderr_tty?()
  end

  def tty?(_device), do: false

  defp stderr_tty? do
    case :persistent_term.get({__MODULE__, :stderr_tty}, nil) do
      nil ->
        # The shell inherits the VM's file descriptor 2 (ports only redirect stdout).
        answer =
          case System.find_executable("sh") do
            nil ->
              false

            sh ->
              try do
                match?({_, 0}, System.cmd(sh, ["-c", "test -t 2"]))
              rescue
                _ -> false
              end
          end

        :persistent_term.put({__MODULE__, :stderr_tty}, answer)
        answer

      answer ->
        answer
    end
  end
end
