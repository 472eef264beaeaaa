defmodule DSPex.Optimize.Chart do
  @moduledoc """
  An SVG chart of an optimizer job: the score of every trial, by trial number.

    * minibatch trials are small dots (`<circle class="minibatch">`),
    * trials scored on the whole valset (the default program, full evaluations, and every
      trial when the search does not minibatch) are squares (`<rect class="full">`),
    * the best score so far is a step line (`<polyline class="best">`) over the trials
      that can become the best (the ones DSPy compares: full evaluations).

  Every mark has a `<title>` (trial, kind, score) for hovering. The job writes the chart
  next to its journal (`<journal>.svg`) when it ends; `DSPex.Optimize.chart/2` writes it
  on demand. Plain SVG 1.1, no scripts, no external resources.
  """

  @w 760
  @h 380
  @ml 64
  @mr 24
  @mt 56
  @mb 52
  @pad 10

  @typedoc "One trial: number, kind, score (a number, or `:failed`), whether it can be the best."
  @type point :: %{
          number: pos_integer,
          kind: atom,
          score: number | :failed,
          full: boolean,
          counts_for_best: boolean
        }

  @doc """
  The chart of `points` as an SVG document. `opts`: `:title`, `:subtitle`.

  ## Examples

      iex> svg = DSPex.Optimize.Chart.svg([
      ...>   %{number: 1, kind: :default, score: 40.0, full: true, counts_for_best: true},
      ...>   %{number: 2, kind: :objective, score: 55.0, full: false, counts_for_best: false}
      ...> ])
      iex> String.starts_with?(svg, "<?xml")
      true
  """
  @spec svg([point], keyword) :: binary
  def svg(points, opts \\ []) do
    title = Keyword.get(opts, :title, "Optimizer trials")
    subtitle = Keyword.get(opts, :subtitle, "")
    scored = Enum.filter(points, &is_number(&1.score))
    {ymin, ymax, step} = y_range(Enum.map(scored, & &1.score))
    xmax = max(2, Enum.max(Enum.map(points, & &1.number), fn -> 2 end))
    # marks keep @pad pixels off the axes
    x = fn n -> @ml + @pad + (n - 1) / (xmax - 1) * (@w - @ml - @mr - 2 * @pad) end
    y = fn s -> @mt + @pad + (ymax - s) / (ymax - ymin) * (@h - @mt - @mb - 2 * @pad) end

    iodata = [
      ~s(<?xml version="1.0" encoding="UTF-8"?>\n),
      ~s(<svg xmlns="http://www.w3.org/2000/svg" width="#{@w}" height="#{@h}" ),
      ~s(viewBox="0 0 #{@w} #{@h}" font-family="Helvetica, Arial, sans-serif" font-size="12">\n),
      ~s(<rect class="background" x="0" y="0" width="#{@w}" height="#{@h}" fill="#ffffff"/>\n),
      ~s(<text class="title" x="#{@ml}" y="24" font-size="16" font-weight="bold">#{esc(title)}</text>\n),
      ~s(<text class="subtitle" x="#{@ml}" y="42" fill="#666666">#{esc(subtitle)}</text>\n),
      grid(ymin, ymax, step, xmax, x, y),
      axes(),
      best_line(points, x, y),
      Enum.map(points, &mark(&1, x, y)),
      legend(),
      "</svg>\n"
    ]

    IO.iodata_to_binary(iodata)
  end

  @doc """
  Writes the chart to `path`. Returns `:ok` or `{:error, %DSPex.Error{type: :file}}`.
  """
  @spec write(Path.t(), [point], keyword) :: :ok | {:error, DSPex.Error.t()}
  def write(path, points, opts \\ []) do
    case File.write(path, svg(points, opts)) do
      :ok ->
        :ok

      {:error, reason} ->
        {:error,
         DSPex.Error.new(
           :file,
           "cannot write the chart #{path}: #{:file.format_error(reason)}",
           %{path: path}
         )}
    end
  end

  # A y range with round ticks around the scores (percentages in practice).
  defp y_range([]), do: {0.0, 100.0, 20.0}

  defp y_range(scores) do
    lo = Enum.min(scores)
    hi = Enum.max(scores)
    span = max(hi - lo, 1.0)
    step = nice_step(span / 5)
    ymin = Float.floor(lo / step) * step
    ymax = Float.ceil(hi / step) * step
    ymax = if ymax <= ymin, do: ymin + step, else: ymax
    {ymin * 1.0, ymax * 1.0, step}
  end

  defp nice_step(raw) do
    mag = :math.pow(10, Float.floor(:math.log10(raw)))

    cond do
      raw / mag <= 1 -> mag
      raw / mag <= 2 -> 2 * mag
      raw / mag <= 5 -> 5 * mag
      true -> 10 * mag
    end
  end

  defp grid(ymin, ymax, step, xmax, x, y) do
    n = round((ymax - ymin) / step)

    ylines =
      for i <- 0..n do
        v = ymin + i * step
        yy = num(y.(v))

        [
          ~s(<line class="grid" x1="#{@ml}" y1="#{yy}" x2="#{@w - @mr}" y2="#{yy}" stroke="#e5e5e5"/>\n),
          ~s(<text class="ytick" x="#{@ml - 8}" y="#{num(y.(v) + 4)}" text-anchor="end" fill="#444444">#{label(v)}</text>\n)
        ]
      end

    xstep = max(1, ceil(xmax / 12))

    xticks =
      for n <- Enum.uniq([1 | Enum.to_list(xstep..xmax//xstep)]), n <= xmax do
        xx = num(x.(n))

        ~s(<text class="xtick" x="#{xx}" y="#{@h - @mb + 18}" text-anchor="middle" fill="#444444">#{n}</text>\n)
      end

    [ylines, xticks]
  end

  defp axes do
    [
      ~s(<line class="axis" x1="#{@ml}" y1="#{@h - @mb}" x2="#{@w - @mr}" y2="#{@h - @mb}" stroke="#333333"/>\n),
      ~s(<line class="axis" x1="#{@ml}" y1="#{@mt}" x2="#{@ml}" y2="#{@h - @mb}" stroke="#333333"/>\n),
      ~s(<text class="xlabel" x="#{div(@w + @ml, 2)}" y="#{@h - 12}" text-anchor="middle">trial</text>\n),
      ~s(<text class="ylabel" x="16" y="#{div(@h, 2)}" text-anchor="middle" ),
      ~s|transform="rotate(-90 16 #{div(@h, 2)})">score</text>\n|
    ]
  end

  # The best score so far, as a step line over the trials that count for it.
  defp best_line(points, x, y) do
    steps =
      points
      |> Enum.filter(&(&1.counts_for_best and is_number(&1.score)))
      |> Enum.sort_by(& &1.number)
      |> Enum.reduce([], fn p, acc ->
        case acc do
          [] -> [{p.number, p.score}]
          [{_, best} | _] when p.score > best -> [{p.number, p.score} | acc]
          _ -> acc
        end
      end)
      |> Enum.reverse()

    last = Enum.max(Enum.map(points, & &1.number), fn -> 1 end)

    case steps do
      [] ->
        []

      _ ->
        coords =
          steps
          |> Enum.chunk_every(2, 1)
          |> Enum.flat_map(fn
            [{n, s}, {n2, _}] -> [{n, s}, {n2, s}]
            [{n, s}] -> [{n, s}, {max(n, last), s}]
          end)
          |> Enum.map_join(" ", fn {n, s} -> "#{num(x.(n))},#{num(y.(s))}" end)

        ~s(<polyline class="best" points="#{coords}" fill="none" stroke="#d62728" stroke-width="2"/>\n)
    end
  end

  defp mark(%{score: s} = p, x, y) when is_number(s) do
    cx = num(x.(p.number))
    cy = num(y.(s))
    tip = ~s(<title>trial #{p.number} · #{kind(p)} · #{label(s)}</title>)

    if p.full do
      ~s(<rect class="full" x="#{num(x.(p.number) - 5)}" y="#{num(y.(s) - 5)}" width="10" height="10" ) <>
        ~s(fill="#1f4e79">#{tip}</rect>\n)
    else
      ~s(<circle class="minibatch" cx="#{cx}" cy="#{cy}" r="4" fill="#6baed6" fill-opacity="0.85">#{tip}</circle>\n)
    end
  end

  defp mark(p, x, _y) do
    # a failed trial: a cross on the axis
    ~s(<text class="failed" x="#{num(x.(p.number))}" y="#{@h - @mb - 4}" text-anchor="middle" fill="#999999">×) <>
      ~s(<title>trial #{p.number} · failed</title></text>\n)
  end

  defp legend do
    lx = @w - @mr - 300

    [
      ~s|<g class="legend" transform="translate(#{lx} 18)">\n|,
      ~s(<circle cx="6" cy="6" r="4" fill="#6baed6"/><text x="14" y="10">minibatch</text>\n),
      ~s(<rect x="86" y="1" width="10" height="10" fill="#1f4e79"/><text x="100" y="10">full valset</text>\n),
      ~s(<line x1="180" y1="6" x2="200" y2="6" stroke="#d62728" stroke-width="2"/><text x="206" y="10">best so far</text>\n),
      "</g>\n"
    ]
  end

  defp kind(%{kind: :default}), do: "default program"
  defp kind(%{kind: :full_eval}), do: "full evaluation"
  defp kind(%{kind: :candidate}), do: "candidate"
  defp kind(%{full: true}), do: "full valset"
  defp kind(_), do: "minibatch"

  defp label(v) do
    r = Float.round(v * 1.0, 2)

    if r == Float.round(r),
      do: Integer.to_string(trunc(r)),
      else: :erlang.float_to_binary(r, decimals: 2)
  end

  defp num(v), do: :erlang.float_to_binary(v * 1.0, decimals: 1)

  defp esc(s) do
    s
    |> to_string()
    |> String.replace("&", "&amp;")
    |> String.replace("<", "&lt;")
    |> String.replace(">", "&gt;")
  end
end
