defmodule DSPex.SignatureTest do
  use ExUnit.Case, async: true

  alias DSPex.Signature
  alias DSPex.Signature.Field

  doctest DSPex.Signature
  doctest DSPex.Signature.Field
  doctest DSPex.Signature.DSL

  # Signature modules used by the DSL tests -------------------------------------------

  defmodule QA do
    @moduledoc """
    Answer questions with short factoid answers.

        Keep it short.
    """
    use DSPex.Signature

    input(:question)
    input :context, {:list, :str}, desc: "may contain relevant facts"
    output :answer, :string, desc: "often between 1 and 5 words"
  end

  defmodule Typed do
    use DSPex.Signature, instructions: "  Rate the text.\n  Be fair.\n"

    input :text, :string, prefix: "Passage:"
    input :history, DSPex.History
    input :tags, "set[str] | None"
    output :sentiment, {:enum, "Sentiment", ["positive", "negative", "neutral"]}
    output :confidence, :float, ge: 0.0, le: 1.0, desc: "how sure"
    output :rating, :integer, gt: 0, lt: 6
    output :words, {:list, :str}, min_length: 1, max_length: 3
    output :ok, :boolean
  end

  defmodule NoDoc do
    use DSPex.Signature

    input(:questionText)
    output(:finalAnswer)
  end

  defmodule HiddenDoc do
    @moduledoc false
    use DSPex.Signature
    input(:a)
    output(:b)
  end

  # parse ------------------------------------------------------------------------------

  defp types(string) do
    sig = Signature.parse!(string)
    Enum.map(Signature.fields(sig), &{&1.name, &1.type, &1.type_defined?})
  end

  defp type_of(type_string) do
    [{:x, t, true}, {:y, :str, false}] = types("x: #{type_string} -> y")
    t
  end

  describe "parse/2" do
    test "untyped fields are str with type_defined? false, in order" do
      sig = Signature.parse!("question, context -> answer")
      assert Signature.input_names(sig) == [:question, :context]
      assert Signature.output_names(sig) == [:answer]

      for f <- Signature.fields(sig) do
        assert f.type == :str
        refute f.type_defined?
        assert f.desc == nil
        assert f.constraints == []
      end

      assert Enum.map(sig.inputs, & &1.kind) == [:input, :input]
      assert hd(sig.outputs).kind == :output
      assert Enum.map(Signature.fields(sig), & &1.prefix) == ["Question:", "Context:", "Answer:"]
    end

    test "default instructions, like DSPy" do
      assert Signature.parse!("a, b -> c").instructions ==
               "Given the fields `a`, `b`, produce the fields `c`."

      assert Signature.parse!("-> answer").instructions ==
               "Given the fields , produce the fields `answer`."

      assert Signature.parse!("question ->").instructions ==
               "Given the fields `question`, produce the fields ."
    end

    test "instructions option is cleandoc'd" do
      sig = Signature.parse!("q -> a", instructions: "\n    Answer.\n      Carefully.\n")
      assert sig.instructions == "Answer.\n  Carefully."
      # as in DSPy, "" means the default
      assert Signature.parse!("q -> a", instructions: "").instructions ==
               "Given the fields `q`, produce the fields `a`."
    end

    test "scalar types" do
      assert type_of("str") == :str
      assert type_of("int") == :int
      assert type_of("float") == :float
      assert type_of("bool") == :bool
      assert type_of("Any") == :any
      assert type_of("typing.Any") == :any
      # DSPy's make_signature turns a `None` annotation (the constant) into str
      assert type_of("None") == :str
      assert type_of("NoneType") == :none
      assert type_of("datetime.datetime") == :datetime
      assert type_of("datetime.date") == :date
      assert type_of("History") == :history
      assert type_of("dspy.History") == :history
    end

    test "generic types, bare and parameterized, incl. typing aliases" do
      assert type_of("list") == :list
      assert type_of("dict") == :dict
      assert type_of("tuple") == :tuple
      assert type_of("set") == :set
      assert type_of("List") == :list
      assert type_of("list[str]") == {:list, :str}
      assert type_of("List[int]") == {:list, :int}
      assert type_of("typing.List[int]") == {:list, :int}
      assert type_of("set[int]") == {:set, :int}
      assert type_of("frozenset[str]") == {:frozenset, :str}
      assert type_of("FrozenSet") == :frozenset
      assert type_of("dict[str, int]") == {:dict, :str, :int}
      assert type_of("Dict[str, Any]") == {:dict, :str, :any}
      assert type_of("tuple[int, str]") == {:tuple, [:int, :str]}
      assert type_of("Tuple[int, ...]") == {:tuple, [:int, :ellipsis]}
    end

    test "nested types" do
      assert type_of("list[dict[str, list[tuple[int, float]]]]") ==
               {:list, {:dict, :str, {:list, {:tuple, [:int, :float]}}}}

      assert type_of("dict[str, Optional[list[Literal['a', 'b']]]]") ==
               {:dict, :str, {:optional, {:list, {:literal, ["a", "b"]}}}}
    end

    test "Literal values" do
      assert type_of(~s|Literal['a', "b", 1, -2, 2.5, True, False, None]|) ==
               {:literal, ["a", "b", 1, -2, 2.5, true, false, nil]}

      assert type_of(~S|Literal['it\'s', "say \"hi\"", 'a\nb', '\u00e9']|) ==
               {:literal, ["it's", ~s|say "hi"|, "a\nb", "é"]}

      # repeated values are dropped like typing.Literal (1 and 1.0 and True are distinct)
      assert type_of("Literal[1, 'a', 1, True, 'a', 1.0]") == {:literal, [1, "a", true, 1.0]}

      # '->' inside a string is not the separator
      assert type_of("Literal['a->b']") == {:literal, ["a->b"]}
    end

    test "Optional and unions normalize like typing.Union" do
      assert type_of("Optional[int]") == {:optional, :int}
      assert type_of("int | None") == {:optional, :int}
      # DSPy's string parser: `X | NoneType` and `NoneType | X` are Optional[X]; the
      # constant None keeps its place (Union[None, int])
      assert type_of("NoneType | int") == {:optional, :int}
      assert type_of("None | int") == {:union, [:none, :int]}
      assert type_of("Union[None, int, str]") == {:union, [:none, :int, :str]}
      assert type_of("int | str") == {:union, [:int, :str]}
      assert type_of("Union[int, str]") == {:union, [:int, :str]}
      assert type_of("Union[int, str, None]") == {:optional, {:union, [:int, :str]}}
      assert type_of("typing.Union[int]") == :int
      assert type_of("Union[int, int, str]") == {:union, [:int, :str]}
      assert type_of("Optional[Optional[int]]") == {:optional, :int}
      assert type_of("list[int | None] | None") == {:optional, {:list, {:optional, :int}}}
    end

    test "whitespace anywhere and trailing commas" do
      assert types("\n  a ,\tb :\n dict[ str , int ] , -> c ,") == [
               {:a, :str, false},
               {:b, {:dict, :str, :int}, true},
               {:c, :str, false}
             ]

      assert types("a,b->c") == types("a, b -> c")
      assert Signature.parse!(" -> ") |> Signature.fields() == []
    end

    test "errors carry the column and say what to write" do
      cases = [
        {"question answer", 16, "expected exactly one '->' but found none"},
        {"a -> b -> c", 8, "found a second one at column 8"},
        {"question: strng -> answer", 11,
         "unknown type 'strng' at column 11; supported: str, int"},
        {"a -> a", 6,
         "duplicate field name 'a' at column 6 (input and output fields must have distinct names)"},
        {"a, a -> b", 4, "duplicate field name 'a'"},
        {"a, 1b -> c", 4, "starts with a digit"},
        {"a,, b -> c", 3, "remove the extra ','"},
        {"a: -> b", 4, "missing type after 'a:'"},
        {"a: dict[str] -> b", 8, "takes 2 type arguments, e.g. dict[str, int]"},
        {"a: list[int, str] -> b", 8, "takes 1 type argument, e.g. list[str]"},
        {"a: Optional -> b", 4, "needs arguments in brackets, e.g. Optional[int]"},
        {"a: Literal[] -> b", 4, "needs at least one value"},
        {"a: Literal['x] -> b", 12, "unterminated string"},
        {"a: int = 3 -> b", 8, "default value at column 8 is not supported"},
        {"a -> b: dspy.Audio", 9, "unknown type 'dspy.Audio'"},
        {"class -> b", 1, "is a Python keyword"}
      ]

      for {string, column, message} <- cases do
        assert {:error, %DSPex.Error{type: :signature_parse} = err} = Signature.parse(string)
        assert err.details == %{column: column}, "#{string}: #{inspect(err)}"
        assert err.message =~ message, "#{string}: #{err.message}"
      end
    end

    test "bounded input: size and nesting limits" do
      big = "a -> b" <> String.duplicate(" ", 70_000)
      assert {:error, err} = Signature.parse(big)
      assert err.message =~ "the limit is 65536 bytes"

      deep =
        "a: " <> String.duplicate("list[", 40) <> "int" <> String.duplicate("]", 40) <> " -> b"

      assert {:error, err} = Signature.parse(deep)
      assert err.message =~ "nesting deeper than 32 levels"

      # large but valid input runs (on a dirty scheduler) and keeps order
      names = for i <- 1..900, do: "field_#{i}"
      sig = Signature.parse!(Enum.join(names, ", ") <> " -> out")
      assert length(sig.inputs) == 900
      assert List.last(sig.inputs).name == :field_900
    end

    test "invalid bytes and non-binaries" do
      assert {:error, err} = Signature.parse("a\0 -> b")
      assert err.details.column == 2
      assert {:error, err} = Signature.parse(<<"a", 0xFF, " -> b">>)
      assert err.message =~ "invalid UTF-8"
      assert_raise ArgumentError, fn -> Signature.parse(:nope) end
    end

    test "parse!/2 raises DSPex.Error" do
      err = assert_raise DSPex.Error, fn -> Signature.parse!("nope") end
      assert err.type == :signature_parse
    end
  end

  describe "prefix inference (DSPy infer_prefix)" do
    test "documented examples" do
      assert Field.infer_prefix("camelCaseText") == "Camel Case Text"
      assert Field.infer_prefix("snake_case_text") == "Snake Case Text"
      assert Field.infer_prefix("text2number") == "Text 2 Number"
      assert Field.infer_prefix("HTMLParser") == "HTML Parser"
    end

    test "more cases checked against dspy 3.3.1" do
      assert Field.infer_prefix("a") == "A"
      assert Field.infer_prefix("ABC") == "ABC"
      assert Field.infer_prefix("x_1") == "X 1"
      assert Field.infer_prefix("abc123def") == "Abc 123 Def"
      assert Field.infer_prefix("__init") == "  Init"
      assert Field.infer_prefix("a__b") == "A  B"
      assert Field.infer_prefix("MyHTMLParser2X") == "My HTML Parser 2 X"
    end

    test "the C parser's prefixes agree with Field.infer_prefix/1" do
      names = ~w(camelCaseText snake_case_text text2number HTMLParser MyHTMLParser2X __init a__b
                 abc123def x_1 ABC getHTTPResponseCode2xx already_Snake_Case v2Beta3 _x9Y aB_cD)

      sig = Signature.parse!(Enum.join(names, ", ") <> " -> out")

      for f <- sig.inputs do
        assert f.prefix == Field.infer_prefix(f.name) <> ":"
      end
    end

    test "fields get prefix + ':'" do
      sig = Signature.parse!("camelCaseText -> HTMLParser")
      assert Enum.map(Signature.fields(sig), & &1.prefix) == ["Camel Case Text:", "HTML Parser:"]
    end
  end

  describe "to_string/1 and signature_string/1" do
    test "round trips" do
      for s <- [
            "question, context: list[str] -> answer",
            "a: int, b: dict[str, list[float]] -> c: Optional[int], d: Union[int, str]",
            "x: tuple[int, ...], y: tuple[str, bool] -> z: set[str]",
            "x: Literal['a', \"it's\", 1, 2.5, True, None] -> y: Any",
            "h: History -> n: None, l: list, d: dict",
            " -> answer"
          ] do
        sig = Signature.parse!(s)
        out = Signature.to_string(sig)
        assert Signature.equals?(Signature.parse!(out), sig), "#{s} -> #{out}"
      end

      assert Signature.to_string(Signature.parse!("question, context: list[str] -> answer")) ==
               "question, context: list[str] -> answer"

      assert "#{Signature.parse!("a -> b: int")}" == "a -> b: int"
    end

    test "typed str stays typed; aliases are normalized" do
      assert Signature.parse!("a: str -> b: List[int]") |> Signature.to_string() ==
               "a: str -> b: list[int]"
    end

    test "signature_string is names only" do
      assert Signature.parse!("a: int, b -> c: list[str]") |> Signature.signature_string() ==
               "a, b -> c"
    end
  end

  describe "DSL" do
    test "module with @moduledoc instructions" do
      sig = QA.__signature__()

      assert sig.instructions ==
               "Answer questions with short factoid answers.\n\nKeep it short."

      assert Signature.input_names(sig) == [:question, :context]
      [q, c] = sig.inputs
      assert {q.type, q.type_defined?, q.desc} == {:str, false, nil}

      assert {c.type, c.type_defined?, c.desc} ==
               {{:list, :str}, true, "may contain relevant facts"}

      [a] = sig.outputs
      assert {a.type, a.type_defined?, a.prefix} == {:str, true, "Answer:"}
    end

    test "types, aliases, type strings, enums, constraints, prefix override" do
      sig = Typed.__signature__()
      assert sig.instructions == "Rate the text.\nBe fair."

      assert Enum.map(Signature.fields(sig), &{&1.name, &1.type}) == [
               text: :str,
               history: :history,
               tags: {:union_type, [{:set, :str}, :none]},
               sentiment: {:enum, "Sentiment", ["positive", "negative", "neutral"]},
               confidence: :float,
               rating: :int,
               words: {:list, :str},
               ok: :bool
             ]

      assert Signature.field(sig, :text).prefix == "Passage:"
      conf = Signature.field(sig, :confidence)
      assert conf.constraints == [ge: 0.0, le: 1.0]
      assert conf.desc == "how sure"

      assert Field.constraints_text(conf) ==
               "greater than or equal to: 0.0, less than or equal to: 1.0"

      assert Field.constraints_text(Signature.field(sig, :rating)) ==
               "greater than: 0, less than: 6"

      assert Field.constraints_text(Signature.field(sig, :words)) ==
               "minimum length: 1, maximum length: 3"
    end

    test "default instructions and prefixes without a moduledoc" do
      sig = NoDoc.__signature__()

      assert sig.instructions ==
               "Given the fields `questionText`, produce the fields `finalAnswer`."

      assert Enum.map(Signature.fields(sig), & &1.prefix) == ["Question Text:", "Final Answer:"]

      assert HiddenDoc.__signature__().instructions ==
               "Given the fields `a`, produce the fields `b`."
    end

    test "resolve!/1 accepts modules, strings and structs" do
      assert Signature.resolve!(QA) == QA.__signature__()
      assert Signature.resolve!("a -> b") == Signature.parse!("a -> b")
      assert_raise ArgumentError, ~r/not a signature module/, fn -> Signature.resolve!(String) end
      assert_raise ArgumentError, fn -> Signature.resolve!(42) end
      assert_raise DSPex.Error, fn -> Signature.resolve!("a b") end
    end

    test "compile errors carry file and line" do
      file = "test/dspex/sig_dup_fixture.ex"

      err =
        assert_raise CompileError, fn ->
          Code.compile_string(
            """
            defmodule DSPex.SignatureTest.Dup do
              use DSPex.Signature
              input :a
              output :a
            end
            """,
            file
          )
        end

      assert err.file =~ "sig_dup_fixture.ex"
      assert err.line == 4
      assert Exception.message(err) =~ "duplicate field name :a"

      err =
        assert_raise CompileError, fn ->
          Code.compile_string(
            """
            defmodule DSPex.SignatureTest.BadType do
              use DSPex.Signature
              input :a

              output :b, :strng
            end
            """,
            file
          )
        end

      assert err.line == 5
      assert Exception.message(err) =~ "unknown type :strng"

      err =
        assert_raise CompileError, fn ->
          Code.compile_string(
            """
            defmodule DSPex.SignatureTest.BadString do
              use DSPex.Signature
              input :a, "list[strr]"
              output :b
            end
            """,
            file
          )
        end

      assert err.line == 3
      assert Exception.message(err) =~ "unknown type 'strr' at column 6"

      assert_raise CompileError, ~r/invalid constraint/, fn ->
        Code.compile_string(
          """
          defmodule DSPex.SignatureTest.BadConstraint do
            use DSPex.Signature
            input :a, :int, gt: "zero"
            output :b
          end
          """,
          file
        )
      end
    end
  end

  describe "manipulation" do
    setup do
      {:ok, sig: Signature.parse!("question -> answer", instructions: "Answer.")}
    end

    test "with_instructions and append_instructions", %{sig: sig} do
      assert Signature.with_instructions(sig, "New.").instructions == "New."
      assert Signature.append_instructions(sig, "More.").instructions == "Answer.\n\nMore."
      # fields untouched
      assert Signature.with_instructions(sig, "New.").inputs == sig.inputs
    end

    test "append / prepend / insert within the kind's list", %{sig: sig} do
      sig =
        sig
        |> Signature.prepend(:reasoning, kind: :output, desc: "Think step by step.")
        |> Signature.append(:context, kind: :input, type: {:list, :str})
        |> Signature.append(:confidence, kind: :output, type: :float, ge: 0)
        |> Signature.insert(1, :hint, kind: :input)

      assert Signature.input_names(sig) == [:question, :hint, :context]
      assert Signature.output_names(sig) == [:reasoning, :answer, :confidence]
      assert Signature.field(sig, :reasoning).desc == "Think step by step."
      assert Signature.field(sig, :reasoning).prefix == "Reasoning:"
      assert Signature.field(sig, :confidence).constraints == [ge: 0]
      assert sig.instructions == "Answer."

      # negative indices like DSPy: -1 appends, -2 inserts before the last
      s2 = Signature.insert(sig, -2, :x, kind: :output)
      assert Signature.output_names(s2) == [:reasoning, :answer, :x, :confidence]
      s3 = Signature.insert(sig, -4, :y, kind: :output)
      assert Signature.output_names(s3) == [:y, :reasoning, :answer, :confidence]
    end

    test "insert errors", %{sig: sig} do
      assert_raise ArgumentError, ~r/invalid index to insert: 5/, fn ->
        Signature.insert(sig, 5, :x, kind: :input)
      end

      assert_raise ArgumentError, ~r/invalid index to insert: -3/, fn ->
        Signature.insert(sig, -3, :x, kind: :input)
      end

      assert_raise ArgumentError, ~r/already exists/, fn ->
        Signature.append(sig, :answer, kind: :input)
      end

      assert_raise ArgumentError, ~r/kind: :input or kind: :output/, fn ->
        Signature.append(sig, :x, type: :int)
      end

      assert_raise ArgumentError, ~r/unknown type/, fn ->
        Signature.append(sig, :x, kind: :input, type: :nope)
      end

      assert_raise ArgumentError, ~r/invalid field name/, fn ->
        Signature.append(sig, "1x", kind: :input)
      end
    end

    test "delete", %{sig: sig} do
      assert Signature.delete(sig, :question) |> Signature.input_names() == []
      assert Signature.delete(sig, :missing) == sig
      assert Signature.delete(sig, "answer") |> Signature.output_names() == []
    end

    test "update_field", %{sig: sig} do
      s = Signature.update_field(sig, :answer, desc: "A short answer.")
      f = Signature.field(s, :answer)
      assert {f.desc, f.type, f.type_defined?} == {"A short answer.", :str, false}

      s = Signature.update_field(s, :answer, type: "list[int]", min_length: 1, prefix: "Ans:")
      f = Signature.field(s, :answer)

      assert {f.desc, f.type, f.type_defined?, f.prefix} ==
               {"A short answer.", {:list, :int}, true, "Ans:"}

      assert f.constraints == [min_length: 1]
      s = Signature.update_field(s, :answer, max_length: 4)
      assert Signature.field(s, :answer).constraints == [min_length: 1, max_length: 4]
      s = Signature.update_field(s, :answer, constraints: [])
      assert Signature.field(s, :answer).constraints == []

      assert_raise ArgumentError, ~r/no field :nope/, fn ->
        Signature.update_field(sig, :nope, desc: "x")
      end
    end

    test "fields / field / names", %{sig: sig} do
      assert Enum.map(Signature.fields(sig), & &1.name) == [:question, :answer]
      assert Signature.field(sig, "question").kind == :input
      assert Signature.field(sig, "never_seen_atom_zz9") == nil
    end

    test "equals?", %{sig: sig} do
      assert Signature.equals?(sig, Signature.parse!("question->answer", instructions: "Answer."))
      refute Signature.equals?(sig, Signature.update_field(sig, :answer, desc: "x"))

      refute Signature.equals?(
               sig,
               Signature.parse!("question -> answer: int", instructions: "Answer.")
             )

      refute Signature.equals?(sig, :not_a_signature)
    end
  end

  describe "constraints and type names" do
    test "constraints text, DSPy phrasing, given order, Python str() values" do
      assert Field.constraints_text(
               gt: 1,
               ge: 2.0,
               lt: 3.5,
               le: 1.0e16,
               min_length: 1,
               max_length: 10,
               multiple_of: 0.5
             ) ==
               "greater than: 1, greater than or equal to: 2.0, less than: 3.5, " <>
                 "less than or equal to: 1e+16, minimum length: 1, maximum length: 10, " <>
                 "a multiple of the given number: 0.5"

      assert Field.constraints_text(le: 5, gt: 1) == "less than or equal to: 5, greater than: 1"
    end

    test "Python float formatting" do
      for {f, s} <- [
            {1.0, "1.0"},
            {0.5, "0.5"},
            {-2.25, "-2.25"},
            {0.0001, "0.0001"},
            {0.00001, "1e-05"},
            {1.0e15, "1000000000000000.0"},
            {1.0e16, "1e+16"},
            {1.2345678901234567e20, "1.2345678901234567e+20"},
            {1.0e22, "1e+22"},
            {123_456_789.0, "123456789.0"},
            {5.0e-324, "5e-324"},
            {1.7976931348623157e308, "1.7976931348623157e+308"},
            {0.1 + 0.2, "0.30000000000000004"},
            {-0.0, "-0.0"}
          ] do
        assert Field.py_str(f) == s
      end
    end

    test "type_name matches DSPy's get_annotation_name" do
      for {t, name} <- [
            {:str, "str"},
            {{:optional, :int}, "Union[int, NoneType]"},
            {{:optional, {:union, [:int, :str]}}, "Union[int, str, NoneType]"},
            {{:union, [:int, :str]}, "Union[int, str]"},
            {{:tuple, [:int, :ellipsis]}, "tuple[int, Ellipsis]"},
            {{:dict, :str, {:list, :int}}, "dict[str, list[int]]"},
            {:history, "History"},
            {:any, "Any"},
            {:none, "NoneType"},
            {{:literal, [1, true, nil, "a", "it's", 2.5]},
             ~s|Literal[1, True, None, 'a', "it's", 2.5]|}
          ] do
        assert Field.type_name(t) == name
      end
    end

    test "normalize_type" do
      assert Field.normalize_type(:integer) == {:ok, :int}
      assert Field.normalize_type({:list, :boolean}) == {:ok, {:list, :bool}}
      assert Field.normalize_type({:union, [:int, :none]}) == {:ok, {:optional, :int}}
      # a type string is a Python annotation in a class body: `|` is PEP 604
      assert Field.normalize_type("int | None") == {:ok, {:union_type, [:int, :none]}}
      assert Field.normalize_type("Optional[int]") == {:ok, {:optional, :int}}
      assert {:error, msg} = Field.normalize_type("list[")
      assert msg.message =~ "invalid type string"
      assert {:error, _} = Field.normalize_type({:literal, [%{}]})
    end
  end
end
