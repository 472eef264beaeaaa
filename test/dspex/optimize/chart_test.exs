defmodule DSPex.Optimize.ChartTest do
  # The SVG's structure (not its pixels): one mark per trial of the right kind, a
  # best-so-far step line over the trials that can be best, failed trials marked,
  # well-formed XML.
  use ExUnit.Case, async: true

  alias DSPex.Optimize.Chart

  doctest Chart

  defp parse(svg) do
    {doc, []} = :xmerl_scan.string(:binary.bin_to_list(svg), quiet: true)
    doc
  end

  defp count(doc, xpath), do: length(:xmerl_xpath.string(String.to_charlist(xpath), doc))

  defp attr(doc, xpath) do
    [{:xmlAttribute, _, _, _, _, _, _, _, v, _}] =
      :xmerl_xpath.string(String.to_charlist(xpath), doc)

    List.to_string(v)
  end

  test "marks, best-so-far steps, titles" do
    points = [
      %{number: 1, kind: :default, score: 50.0, full: true, counts_for_best: true},
      %{number: 2, kind: :objective, score: 70.0, full: false, counts_for_best: false},
      %{number: 3, kind: :objective, score: :failed, full: false, counts_for_best: false},
      %{number: 4, kind: :full_eval, score: 62.5, full: true, counts_for_best: true},
      %{number: 5, kind: :objective, score: 40.0, full: false, counts_for_best: false},
      %{number: 6, kind: :full_eval, score: 55.0, full: true, counts_for_best: true}
    ]

    doc = parse(Chart.svg(points, title: "mipro_v2 <trials>", subtitle: "a & b"))
    assert attr(doc, "/svg/@viewBox") == "0 0 760 380"
    assert count(doc, "//circle[@class='minibatch']") == 2
    assert count(doc, "//rect[@class='full']") == 3
    assert count(doc, "//text[@class='failed']") == 1
    # 50 from trial 1, 62.5 from trial 4 to the end: 4 vertices
    points_attr = attr(doc, "//polyline[@class='best']/@points")
    assert length(String.split(points_attr)) == 4
    assert [t] = :xmerl_xpath.string(~c"//text[@class='title']/text()", doc)
    assert List.to_string(elem(t, 4)) == "mipro_v2 <trials>"
    # every mark has a tooltip
    assert count(doc, "//circle[@class='minibatch']/title") == 2
  end

  test "no trials yet is still a valid chart" do
    doc = parse(Chart.svg([]))
    assert count(doc, "//polyline") == 0 and count(doc, "//text[@class='ytick']") > 0
  end

  test "write/3 reports an unwritable path", %{} do
    assert {:error, %DSPex.Error{type: :file}} = Chart.write("/nonexistent/dir/x.svg", [])
  end

  # The chart as a person sees it: rendered by headless Chromium (when installed; CI does
  # not install it), then the screenshot's pixels checked for the marks' colours. The
  # demo's chart was looked at this way too (docs/guide/optim.md).
  @chromium System.find_executable("chromium") || System.find_executable("chromium-browser")
  @tag :chromium
  @tag skip: if(@chromium, do: false, else: "chromium is not installed")
  @tag :tmp_dir
  test "Chromium renders the chart with its marks", %{tmp_dir: dir} do
    points =
      for n <- 1..12 do
        full = rem(n, 4) == 1

        %{
          number: n,
          kind: if(full, do: :full_eval, else: :objective),
          score: 40.0 + n * 3,
          full: full,
          counts_for_best: full
        }
      end

    svg = Path.join(dir, "chart.svg")
    png = Path.join(dir, "chart.png")
    :ok = Chart.write(svg, points, title: "rendered")

    {_, 0} =
      System.cmd(
        @chromium,
        ~w(--headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=760,380) ++
          ["--screenshot=#{png}", "file://#{svg}"],
        stderr_to_stdout: true
      )

    {760, 380, pixels} = decode_png(File.read!(png))
    colours = MapSet.new(pixels)
    # the best-so-far line (#d62728) and the full-valset squares are drawn opaque
    assert MapSet.member?(colours, {0xD6, 0x27, 0x28})
    assert Enum.count(pixels, &(&1 != {255, 255, 255})) > 2_000
  end

  # 8-bit RGB/RGBA PNG → {width, height, [{r, g, b}]} (inflate, then undo the row filters).
  defp decode_png(<<137, "PNG", 13, 10, 26, 10, rest::binary>>) do
    chunks = chunks(rest, [])
    <<w::32, h::32, 8, type, _::binary>> = chunks |> List.keyfind("IHDR", 0) |> elem(1)
    bpp = %{2 => 3, 6 => 4}[type]

    raw =
      chunks
      |> Enum.filter(&(elem(&1, 0) == "IDAT"))
      |> Enum.map(&elem(&1, 1))
      |> :zlib.uncompress()

    stride = w * bpp

    {rows, _} =
      Enum.map_reduce(0..(h - 1), :binary.copy(<<0>>, stride), fn r, prev ->
        <<filter, line::binary-size(stride)>> = binary_part(raw, r * (stride + 1), stride + 1)
        row = unfilter(filter, line, prev, bpp)
        {row, row}
      end)

    pixels = for row <- rows, <<px::binary-size(bpp) <- row>>, do: rgb(px)
    {w, h, pixels}
  end

  defp chunks(<<len::32, type::binary-4, data::binary-size(len), _crc::32, rest::binary>>, acc),
    do: chunks(rest, [{type, data} | acc])

  defp chunks(<<>>, acc), do: Enum.reverse(acc)

  defp rgb(<<r, g, b>>), do: {r, g, b}
  defp rgb(<<r, g, b, _a>>), do: {r, g, b}

  defp unfilter(0, line, _prev, _bpp), do: line

  defp unfilter(filter, line, prev, bpp) do
    up = prev
    line = :binary.bin_to_list(line)
    prev = :binary.bin_to_list(prev)

    {out, _} =
      Enum.reduce(Enum.zip(line, prev), {[], 0}, fn {x, b}, {acc, i} ->
        a = if i >= bpp, do: Enum.at(acc, bpp - 1), else: 0
        c = if i >= bpp, do: :binary.at(up, i - bpp), else: 0

        v =
          case filter do
            1 -> x + a
            2 -> x + b
            3 -> x + div(a + b, 2)
            4 -> x + paeth(a, b, c)
          end

        {[rem(v, 256) | acc], i + 1}
      end)

    out |> Enum.reverse() |> :binary.list_to_bin()
  end

  defp paeth(a, b, c) do
    p = a + b - c
    {pa, pb, pc} = {abs(p - a), abs(p - b), abs(p - c)}

    cond do
      pa <= pb and pa <= pc -> a
      pb <= pc -> b
      true -> c
    end
  end
end
