defmodule DSPex.AdapterTest do
  use ExUnit.Case, async: true

  alias DSPex.Adapter.{Chat, JSON}
  alias DSPex.Signature
  alias DSPex.Signature.Field

  doctest DSPex.Adapter.Chat
  doctest DSPex.Adapter.JSON
  doctest DSPex.History

  defp field(name, kind, type) do
    %Field{name: name, kind: kind, type: type}
  end

  defp sig(inputs, outputs, instructions \\ "Do it.") do
    %Signature{
      instructions: instructions,
      inputs: Enum.map(inputs, fn {n, t} -> field(n, :input, t) end),
      outputs: Enum.map(outputs, fn {n, t} -> field(n, :output, t) end)
    }
  end

  @attr_sig Signature.parse!("q -> a")

  @qa %Signature{
    instructions: "Do it.",
    inputs: [%Field{name: :question, kind: :input, type: :str}],
    outputs: [%Field{name: :answer, kind: :output, type: :str}]
  }

  describe "format/4" do
    test "accepts DSPex.Example structs and keyword lists as demos" do
      ex = DSPex.Example.new(question: "1+1?", answer: "2")
      [_, u1, a1, _] = Chat.format(@qa, [ex], %{question: "q"}, [])
      assert u1.content == "[[ ## question ## ]]\n1+1?"
      assert a1.content == "[[ ## answer ## ]]\n2\n\n[[ ## completed ## ]]\n"

      assert Chat.format(@qa, [[question: "1+1?", answer: "2"]], %{question: "q"}) ==
               Chat.format(@qa, [ex], %{question: "q"})
    end

    test "renders a signature string" do
      assert [%{role: "system"}, %{role: "user", content: content}] =
               Chat.format("question -> answer", [], %{question: "hi"})

      assert content =~ "[[ ## question ## ]]\nhi"
    end

    test "atoms render as their text, tuples and MapSets as JSON arrays" do
      s = sig([a: :str, b: :any, c: :any], out: :str)
      [_, user] = Chat.format(s, [], %{a: :hello, b: {1, "x"}, c: MapSet.new([3])})

      assert user.content =~
               "[[ ## a ## ]]\nhello\n\n[[ ## b ## ]]\n[1, \"x\"]\n\n[[ ## c ## ]]\n[3]"
    end

    test "integers beyond 64 bits render with all their digits, like Python" do
      s = sig([a: :int, b: :any], out: :str)
      big = 123_456_789_012_345_678_901_234_567_890
      [_, user] = Chat.format(s, [], %{a: big, b: [-(2 ** 64), 10 ** 27]})
      assert user.content =~ "[[ ## a ## ]]\n#{big}\n"
      assert user.content =~ "[-18446744073709551616, 1000000000000000000000000000]"
    end

    test "{:ordered, pairs} keeps dict key order" do
      s = sig([d: :any], out: :str)
      [_, user] = Chat.format(s, [], %{d: {:ordered, [{"z", 1}, {"a", 2}]}})
      assert user.content =~ ~s|{"z": 1, "a": 2}|
    end

    test "bad values raise ArgumentError with an actionable message" do
      assert_raise ArgumentError, ~r/adapter values must be/, fn ->
        Chat.format(@qa, [], %{question: self()})
      end

      assert_raise ArgumentError, ~r/inputs must be a map|demos, inputs and outputs/, fn ->
        Chat.format(@qa, [], "nope")
      end

      bad = %{@qa | outputs: [field(:answer, :output, :strng)]}

      assert_raise ArgumentError, ~r/unknown type; supported: :str/, fn ->
        Chat.format(bad, [], %{question: "q"})
      end
    end

    test "large inputs run on a dirty scheduler and still render" do
      big = String.duplicate("lorem ipsum ", 20_000)
      [_, user] = Chat.format(@qa, [], %{question: big})
      assert byte_size(user.content) > 200_000
      {:ok, out} = Chat.parse(@qa, "[[ ## answer ## ]]\n" <> big)
      assert out.answer == String.trim(big)
      assert Chat.format_assistant_message(@qa, %{answer: big}) =~ "[[ ## completed ## ]]"
    end

    test "emits telemetry spans" do
      parent = self()
      ref = make_ref()

      :ok =
        DSPex.Telemetry.attach_many(
          ref,
          [[:dspex, :adapter, :format, :stop], [:dspex, :adapter, :parse, :stop]],
          fn event, _m, meta, _ -> send(parent, {ref, event, meta}) end,
          nil
        )

      Chat.format(@qa, [], %{question: "q"})
      JSON.parse(@qa, ~s|{"answer": "x"}|)
      DSPex.Telemetry.detach(ref)

      assert_received {^ref, [:dspex, :adapter, :format, :stop],
                       %{adapter: Chat, signature: "question -> answer"}}

      assert_received {^ref, [:dspex, :adapter, :parse, :stop],
                       %{adapter: JSON, signature: "question -> answer"}}
    end
  end

  describe "compiled signatures" do
    test "a signature changed by hand is compiled again, never rendered stale" do
      sig = Signature.parse!("question -> answer")
      [system, _] = Chat.format(sig, [], %{question: "q"})
      refute system.content =~ "extra"

      changed = %{sig | outputs: sig.outputs ++ [Field.new(:extra, :output, type: :int)]}
      [system, user] = Chat.format(changed, [], %{question: "q"})
      assert system.content =~ "2. `extra` (int)"
      assert user.content =~ "`[[ ## extra ## ]]` (must be formatted as a valid Python int)"

      assert Chat.parse(changed, "[[ ## answer ## ]]\na\n[[ ## extra ## ]]\n2") ==
               {:ok, %{answer: "a", extra: 2}}

      renamed = %{sig | instructions: "Other."}
      [system, _] = Chat.format(renamed, [], %{question: "q"})
      assert system.content =~ "your objective is: \n        Other."
    end

    test "demo messages are reused only for an identical demos list, per adapter" do
      sig = Signature.parse!("question -> answer: int")
      demos = [%{question: "one?", answer: 1}, %{question: "two?", answer: 2}]
      inputs = %{question: "three?"}

      first = Chat.format(sig, demos, inputs)
      assert Enum.map(first, & &1.role) == ~w(system user assistant user assistant user)
      assert Chat.format(sig, demos, inputs) == first

      assert Chat.format(sig, Enum.map(demos, & &1), %{question: "four?"}) |> Enum.at(1) ==
               Enum.at(first, 1)

      assert List.last(Chat.format(sig, demos, %{question: "four?"})).content =~ "four?"

      changed = [%{question: "one?", answer: 10}, Enum.at(demos, 1)]
      assert Enum.at(Chat.format(sig, changed, inputs), 2).content =~ "10"
      assert Chat.format(sig, demos, inputs) == first
      # an equal list built anew is the same demos
      assert Chat.format(
               sig,
               [%{question: "one?", answer: 1}, %{answer: 2, question: "two?"}],
               inputs
             ) ==
               first

      json = JSON.format(sig, demos, inputs)
      assert Enum.at(json, 2).content =~ ~s("answer": 1)
      assert Chat.format(sig, demos, inputs) == first
      assert JSON.format(sig, demos, inputs) == json
      assert Chat.format(sig, [], inputs) == [hd(first), List.last(first)]
    end

    test "concurrent calls with different demos on one signature each get their own" do
      sig = Signature.parse!("question -> answer")
      cases = for i <- 1..6, do: {[%{question: "q#{i}", answer: "a#{i}"}], %{question: "x#{i}"}}
      expected = Map.new(cases, fn {d, i} -> {d, Chat.format(sig, d, i)} end)

      cases
      |> Task.async_stream(
        fn {d, i} ->
          for _ <- 1..300, do: assert(Chat.format(sig, d, i) == expected[d])
          :ok
        end,
        max_concurrency: 6
      )
      |> Enum.each(&assert(&1 == {:ok, :ok}))
    end

    test "signatures stay plain data: ==, inspect, module attributes, term_to_binary" do
      a = Signature.parse!("question -> answer: int")
      b = Signature.parse!("question->answer:int")
      assert a == b
      refute inspect(a) =~ "compiled"
      assert a |> :erlang.term_to_binary() |> :erlang.binary_to_term() == a
      assert Chat.format(@attr_sig, [], %{q: "x"}) == Chat.format("q -> a", [], %{q: "x"})
    end

    test "a 1e6-float input runs off the normal schedulers" do
      s = sig([x: {:list, :float}], y: :str)
      floats = for i <- 1..1_000_000, do: i * 0.5
      :erlang.system_monitor(self(), [{:long_schedule, 100}])

      try do
        [_, user] = Chat.format(s, [], %{x: floats})
        assert byte_size(user.content) > 7_000_000
      after
        :erlang.system_monitor(:undefined)
      end

      me = self()
      refute_received {:monitor, ^me, :long_schedule, _}
    end
  end

  describe "parse/2" do
    test "typed fields" do
      s =
        sig([q: :str],
          n: :int,
          x: :float,
          ok: :bool,
          t: {:tuple, [:int, :str]},
          d: {:dict, :str, {:list, :int}}
        )

      text = """
      [[ ## n ## ]]
      42
      [[ ## x ## ]]
      2
      [[ ## ok ## ]]
      True
      [[ ## t ## ]]
      (1, 'a')
      [[ ## d ## ]]
      {'k': [1, 2]}
      [[ ## completed ## ]]
      """

      assert Chat.parse(s, text) ==
               {:ok, %{n: 42, x: 2.0, ok: true, t: {1, "a"}, d: %{"k" => [1, 2]}}}
    end

    test "literal and enum matching" do
      s = sig([q: :str], l: {:literal, ["yes", "no"]}, e: {:enum, "Color", ["red", "green"]})

      assert Chat.parse(s, "[[ ## l ## ]]\nLiteral['no']\n[[ ## e ## ]]\ngreen") ==
               {:ok, %{l: "no", e: "green"}}

      assert {:error, %DSPex.Error{message: msg}} =
               Chat.parse(s, "[[ ## l ## ]]\nmaybe\n[[ ## e ## ]]\ngreen")

      assert msg =~ "Failed to parse field l with value maybe"
    end

    test "missing optional outputs become nil, missing required outputs are errors" do
      s = sig([q: :str], a: :str, b: {:optional, :int})
      assert Chat.parse(s, "[[ ## a ## ]]\nx") == {:ok, %{a: "x", b: nil}}
      assert {:error, err} = Chat.parse(s, "[[ ## b ## ]]\n3")
      assert err.type == :adapter_parse
      assert err.message =~ "Expected to find output fields in the LM response: [a, b]"
      assert err.message =~ "Actual output fields parsed from the LM response: [b]"
      assert_raise DSPex.Error, fn -> Chat.parse!(s, "nothing") end
    end

    test "JSON adapter extracts the first object and drops unknown keys" do
      assert JSON.parse(@qa, "ok:\n```json\n{\"answer\": \"x\", \"other\": 1}\n```") ==
               {:ok, %{answer: "x"}}

      assert {:error, err} = JSON.parse(@qa, "no object")
      assert err.message =~ "LM response cannot be serialized to a JSON object."
    end

    test "the parse error quotes a long LM response in full" do
      long = String.duplicate("é", 5000)
      assert {:error, err} = Chat.parse(@qa, long)
      assert err.message =~ "LM Response: " <> long <> " \n\n"
      assert String.valid?(err.message)
    end

    test "parse errors carry the response, the missing and found fields, adapter and signature" do
      s = sig([q: :str], a: :str, b: {:optional, :int}, c: :int)
      assert {:error, err} = Chat.parse(s, "[[ ## b ## ]]\n3")

      assert %{adapter: :chat, lm_response: "[[ ## b ## ]]\n3", missing: [:a, :c], found: [:b]} =
               err.details

      assert err.details.signature == s

      # a value that fails to parse: its field is missing, the ones before it found
      assert {:error, err} = Chat.parse(s, "[[ ## a ## ]]\nx\n[[ ## c ## ]]\nseven")
      assert err.message =~ "Failed to parse field c with value seven"
      assert {err.details.missing, err.details.found} == {[:b, :c], [:a]}

      assert {:error, err} = JSON.parse(s, ~s|Sure: {"b": 1} done|)

      assert %{
               adapter: :json,
               lm_response: ~s|Sure: {"b": 1} done|,
               missing: [:a, :c],
               found: [:b]
             } = Map.take(err.details, [:adapter, :lm_response, :missing, :found])
    end

    test "nested sets, frozensets, datetimes and dates come back as Elixir values" do
      s =
        sig([q: :str],
          s: {:list, {:set, :int}},
          f: {:frozenset, :str},
          when: :datetime,
          naive: :datetime,
          day: :date
        )

      text = """
      [[ ## s ## ]]
      [[1, 1, 2], []]
      [[ ## f ## ]]
      ["a"]
      [[ ## when ## ]]
      2024-01-02T03:04:05+02:00
      [[ ## naive ## ]]
      2024-01-02 03:04:05.5
      [[ ## day ## ]]
      2024-02-29
      """

      assert {:ok, out} = Chat.parse(s, text)
      assert out.s == [MapSet.new([1, 2]), MapSet.new()]
      assert out.f == MapSet.new(["a"])
      assert out.when == ~U[2024-01-02 01:04:05Z]
      assert out.naive == ~N[2024-01-02 03:04:05.500000]
      assert out.day == ~D[2024-02-29]
    end

    test "an output default fills a missing field" do
      s =
        Signature.new([
          Field.new(:q, :input),
          Field.new(:a, :output),
          Field.new(:n, :output, type: :int, default: 3)
        ])

      assert Chat.parse(s, "[[ ## a ## ]]\nx") == {:ok, %{a: "x", n: 3}}
      assert Chat.parse(s, "[[ ## a ## ]]\nx\n[[ ## n ## ]]\n4") == {:ok, %{a: "x", n: 4}}
    end

    test "non-binary completion raises" do
      assert_raise ArgumentError, fn -> Chat.parse(@qa, 42) end
    end

    test "format_assistant_message round-trips through parse" do
      s = sig([q: :str], a: :str, n: :int, l: {:list, :str}, d: {:dict, :str, :float})
      out = %{a: "multi\nline", n: 7, l: ["x", "é"], d: %{"k" => 0.5}}

      for mod <- [Chat, JSON],
          do: assert(mod.parse(s, mod.format_assistant_message(s, out)) == {:ok, out})
    end

    test "format_assistant_message renders missing fields" do
      s = sig([q: :str], a: :str, b: :str)

      assert Chat.format_assistant_message(s, %{a: "x"}) ==
               "[[ ## a ## ]]\nx\n\n[[ ## b ## ]]\nNone\n\n[[ ## completed ## ]]\n"

      assert JSON.format_assistant_message(s, %{a: "x"}, "n/a") ==
               ~s|{\n  "a": "x",\n  "b": "n/a"\n}|
    end
  end
end
