defmodule DSPex.Dataset.CSVTest do
  use ExUnit.Case, async: true

  alias DSPex.Dataset.CSV

  doctest DSPex.Dataset.CSV

  test "RFC 4180 records as Python's csv reads them" do
    cases = [
      {"a,b\n1,2\n", [["a", "b"], ["1", "2"]]},
      {"a,b\r\n1,2", [["a", "b"], ["1", "2"]]},
      {"a,b\r1,2\r", [["a", "b"], ["1", "2"]]},
      {"a,b\n\n\n1,2\n", [["a", "b"], ["1", "2"]]},
      {"a,,b\n", [["a", "", "b"]]},
      {"a,\n", [["a", ""]]},
      {~s("x, y","line1\nline2"\n), [["x, y", "line1\nline2"]]},
      {~s("say ""hi""",z\n), [[~s(say "hi"), "z"]]},
      {~s("",x\n), [["", "x"]]},
      {~s(ab"c,d\n), [[~s(ab"c), "d"]]},
      {~s("ab"c,d\n), [["abc", "d"]]},
      {<<0xEF, 0xBB, 0xBF, "a,b\n">>, [["a", "b"]]},
      {"é,ü\n日本,語\n", [["é", "ü"], ["日本", "語"]]}
    ]

    for {text, rows} <- cases do
      assert CSV.parse(text) == {:ok, rows}, inspect(text)
    end
  end

  test "line numbers count newlines inside quoted fields" do
    assert {:error, %DSPex.Error{details: %{line: 4}}} = CSV.parse(~s(a,b\n"1\n2",3\n"open))
  end

  test "separator must be one byte that is not a quote or newline" do
    assert_raise ArgumentError, fn -> CSV.parse("a", separator: "\"") end
    assert_raise ArgumentError, fn -> CSV.parse("a", separator: "ab") end
    assert {:ok, [["a", "b"]]} = CSV.parse("a\tb", separator: "\t")
  end

  test "encode/1 then parse/1 round-trips awkward fields" do
    rows = [["h1", "h2", "h3"], ["a,b", ~s(q"uote), "multi\r\nline"], ["", " x ", "plain"]]
    assert CSV.parse(CSV.encode(rows)) == {:ok, rows}
  end
end
