defmodule DSPex.DatasetTest do
  use ExUnit.Case, async: true

  alias DSPex.{Dataset, Example}

  doctest DSPex.Dataset

  @fixtures Path.expand("../../fixtures/evaluate", __DIR__)

  describe "from_jsonl/2" do
    test "named keys become atoms, the rest stay strings; blank lines are skipped" do
      {:ok, exs} = Dataset.from_jsonl(Path.join(@fixtures, "dev.jsonl"), inputs: [:question])
      assert length(exs) == 4
      [ex | _] = exs
      assert ex.fields == %{:question => "q1", "answer" => "a1", "source" => "set-1"}
      assert Example.inputs(ex) == %{question: "q1"}
      assert Enum.at(exs, 2).fields["extra"] == %{"nested" => [1, 2]}
    end

    test "fields: keeps only the named keys (plus inputs); limit: stops early" do
      {:ok, exs} =
        Dataset.from_jsonl(Path.join(@fixtures, "dev.jsonl"),
          inputs: [:question],
          fields: [:answer],
          limit: 2
        )

      assert Enum.map(exs, & &1.fields) == [
               %{question: "q1", answer: "a1"},
               %{question: "q2", answer: "a2"}
             ]

      assert Example.labels(hd(exs)) == %{answer: "a1"}
    end

    @tag :tmp_dir
    test "keys from the file never become new atoms", %{tmp_dir: dir} do
      key = "dspex_key_#{System.unique_integer([:positive])}_never_an_atom"
      path = Path.join(dir, "keys.jsonl")
      File.write!(path, ~s({"question": "q", "#{key}": 1}\n))
      {:ok, [ex]} = Dataset.from_jsonl(path, inputs: [:question])
      assert ex.fields[key] == 1
      assert_raise ArgumentError, fn -> String.to_existing_atom(key) end
    end

    @tag :tmp_dir
    test "errors name the file and the line", %{tmp_dir: dir} do
      bad = Path.join(dir, "bad.jsonl")
      File.write!(bad, ~s({"question": "q1"}\n{"question": \n))

      assert {:error, %DSPex.Error{type: :json_decode, details: %{line: 2, path: ^bad}} = e} =
               Dataset.from_jsonl(bad)

      assert e.message =~ "line 2 of #{bad}"

      File.write!(bad, ~s({"question": "q1"}\n[1, 2]\n))
      assert {:error, %DSPex.Error{type: :dataset, details: %{line: 2}}} = Dataset.from_jsonl(bad)

      File.write!(bad, ~s({"question": "q1"}\n{"answer": "a"}\n))

      assert {:error, %DSPex.Error{type: :dataset, message: msg}} =
               Dataset.from_jsonl(bad, inputs: [:question])

      assert msg =~ ~s(line 2 of #{bad} has no "question")

      assert {:error, %DSPex.Error{type: :file, details: %{reason: :enoent}}} =
               Dataset.from_jsonl(Path.join(dir, "missing.jsonl"))

      assert_raise DSPex.Error, fn -> Dataset.from_jsonl!(Path.join(dir, "missing.jsonl")) end
    end

    test "options are checked" do
      path = Path.join(@fixtures, "dev.jsonl")

      assert_raise ArgumentError, ~r/unknown keys \[:input\]/, fn ->
        Dataset.from_jsonl(path, input: [:q])
      end

      assert_raise ArgumentError, ~r/inputs: must be a list of atoms/, fn ->
        Dataset.from_jsonl(path, inputs: ["q"])
      end

      assert_raise ArgumentError, ~r/unknown keys \[:separator\]/, fn ->
        Dataset.from_jsonl(path, separator: ";")
      end
    end
  end

  describe "from_csv/2" do
    test "quotes, embedded commas and newlines, doubled quotes, CRLF and a BOM" do
      {:ok, exs} =
        Dataset.from_csv!(Path.join(@fixtures, "dev.csv"),
          inputs: [:question],
          fields: [:answer, :source]
        )
        |> then(&{:ok, &1})

      assert Enum.map(exs, & &1.fields) == [
               %{
                 question: "What is the capital of France, in one word?",
                 answer: "Paris",
                 source: "geo"
               },
               %{question: "Name a color\r\nof the sky.", answer: "blue", source: ""},
               %{question: "2+2?", answer: "4", source: "He said \"four\""}
             ]

      assert Enum.all?(exs, &(&1.input_keys == [:question]))
    end

    test "without fields: every column, unnamed ones as strings" do
      {:ok, [ex | _]} = Dataset.from_csv(Path.join(@fixtures, "dev.csv"), inputs: [:question])
      assert Map.keys(ex.fields) |> Enum.sort() == [:question, "answer", "source"]
    end

    @tag :tmp_dir
    test "bad files give errors with the line", %{tmp_dir: dir} do
      p = Path.join(dir, "x.csv")

      File.write!(p, "a,b\n1,2\n3\n")

      assert {:error, %DSPex.Error{type: :dataset, message: m, details: %{line: 3}}} =
               Dataset.from_csv(p)

      assert m =~ "has 1 fields, the header has 2"

      File.write!(p, "a,a\n1,2\n")
      assert {:error, %DSPex.Error{type: :dataset, message: m}} = Dataset.from_csv(p)
      assert m =~ "duplicate columns"

      File.write!(p, "a,b\n1,\"open\n2,3\n")
      assert {:error, %DSPex.Error{type: :csv_parse, details: %{line: 2}}} = Dataset.from_csv(p)

      File.write!(p, <<"a,b\n1,", 0xFF, "\n">>)
      assert {:error, %DSPex.Error{type: :csv_parse, message: m}} = Dataset.from_csv(p)
      assert m =~ "not valid UTF-8"

      File.write!(p, "")
      assert {:error, %DSPex.Error{type: :dataset}} = Dataset.from_csv(p)

      File.write!(p, "q;a\n1;x\n")

      assert {:ok, [%Example{fields: %{q: "1", a: "x"}}]} =
               Dataset.from_csv(p, fields: [:q, :a], separator: ";")
    end
  end

  describe "split/2 and sample/3" do
    test "the same seed gives the same split; another seed another one" do
      xs = Enum.to_list(1..100)
      {a, b} = Dataset.split(xs, train_size: 0.7, seed: 1)
      assert {a, b} == Dataset.split(xs, train_size: 0.7, seed: 1)
      assert {length(a), length(b)} == {70, 30}
      assert Enum.sort(a ++ b) == xs
      refute a == Enum.take(xs, 70)
      refute Dataset.split(xs, train_size: 0.7, seed: 2) == {a, b}
    end

    test "sizes as counts, test_size leaving examples out, and bad sizes" do
      xs = Enum.to_list(1..10)
      {a, b} = Dataset.split(xs, train_size: 4, test_size: 3, seed: 0)
      assert {length(a), length(b)} == {4, 3}
      assert MapSet.disjoint?(MapSet.new(a), MapSet.new(b))

      assert_raise ArgumentError, ~r/more than the 10 examples/, fn ->
        Dataset.split(xs, train_size: 8, test_size: 3)
      end

      assert_raise ArgumentError, ~r/train_size: must be a fraction/, fn ->
        Dataset.split(xs, train_size: 1.5)
      end
    end

    test "sample/3 draws without replacement, reproducibly" do
      xs = Enum.to_list(1..50)
      s = Dataset.sample(xs, 10, seed: 42)
      assert length(Enum.uniq(s)) == 10
      assert s == Dataset.sample(xs, 10, seed: 42)
      assert Enum.sort(Dataset.sample(xs, 50)) == xs
      assert_raise ArgumentError, ~r/cannot sample 51 of 50/, fn -> Dataset.sample(xs, 51) end
    end
  end
end
