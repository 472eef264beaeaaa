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
end
