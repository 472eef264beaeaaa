defmodule DSPex.Evaluate.TableTest do
  use ExUnit.Case, async: true

  alias DSPex.{Example, Prediction}
  alias DSPex.Evaluate.Table

  doctest DSPex.Evaluate.Table
  doctest DSPex.Evaluate.Result

  test "a prediction that is not a map gives one prediction column" do
    ex = Example.new(q: "x")

    assert Table.rows([{ex, "plain", 1}], "m") == [
             [{"q", "x"}, {"prediction", "plain"}, {"m", 1}]
           ]
  end

  test "cells are cut to 25 words and 50 characters, newlines shown as \\n" do
    long = Enum.map_join(1..30, " ", &"w#{&1}")
    rows = Table.rows([{Example.new(q: long, r: "a\nb"), Prediction.new(a: "x"), 0.0}], "m")
    out = rows |> Table.render("m") |> IO.iodata_to_binary()
    [_header, row] = String.split(out, "\n", trim: true)
    assert row =~ "w1 w2 w3 w4 w5 w6 w7 w8 w9 w10 w11 w12 w13 w14 ..."
    assert row =~ "a\\nb"
    assert row =~ "✔️ [0.000]"
  end

  test "wide characters keep columns aligned" do
    rows = [[{"q", "日本語"}, {"m", true}], [{"q", "abcdef"}, {"m", false}]]

    [h, r1, r2] =
      rows |> Table.render("m") |> IO.iodata_to_binary() |> String.split("\n", trim: true)

    assert h == "        q           m"
    assert r1 == "0  日本語   ✔️ [true]"
    assert r2 == "1  abcdef  ✔️ [false]"
  end

  @tag :tmp_dir
  test "CSV cells: nil empty, booleans as Python writes them, lists as JSON", %{tmp_dir: dir} do
    path = Path.join(dir, "t.csv")

    :ok =
      Table.save_csv(
        [[{"a", nil}, {"b", false}, {"c", ["x", 1]}, {"d", 0.5}], [{"e", "only"}]],
        path
      )

    assert File.read!(path) == "a,b,c,d,e\r\n,False,\"[\"\"x\"\",1]\",0.5,\r\n,,,,only\r\n"
  end
end
