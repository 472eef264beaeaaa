defmodule DSPex.LM.ScriptedTest do
  use ExUnit.Case, async: true

  alias DSPex.LM.Scripted

  doctest DSPex.LM.Scripted

  test "options are checked" do
    assert_raise ArgumentError,
                 ~r/unknown option :cycles for DSPex.LM.Scripted.new\/2 \(did you mean :cycle\?\)/,
                 fn ->
                   Scripted.new([], cycles: true)
                 end
  end

  test "streams its reply in chunk_size pieces, then returns the whole completion" do
    lm = Scripted.new(["abcdefghij"], chunk_size: 4)
    me = self()
    {:ok, c} = DSPex.LM.stream(lm, [%{role: "user", content: "x"}], %{}, &send(me, &1))
    assert hd(c.choices).text == "abcdefghij"

    assert {:messages, [delta: "abcd", delta: "efgh", delta: "ij"]} =
             Process.info(self(), :messages)
  end
end
