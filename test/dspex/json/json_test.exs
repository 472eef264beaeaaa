defmodule DSPex.JSONTest do
  use ExUnit.Case, async: true

  alias DSPex.JSON

  doctest DSPex.JSON

  defp dec(s, opts \\ []), do: JSON.decode(s, opts)
  defp enc!(t, opts \\ []), do: JSON.encode!(t, opts)

  defp dec_error(s, opts \\ []) do
    assert {:error, %DSPex.Error{type: :json_decode} = e} = JSON.decode(s, opts)
    e
  end

  defp enc_error(t, opts \\ []) do
    assert {:error, %DSPex.Error{type: :json_encode} = e} = JSON.encode(t, opts)
    e
  end

  describe "decode: values" do
    test "scalars" do
      assert dec("null") == {:ok, nil}
      assert dec("true") == {:ok, true}
      assert dec("false") == {:ok, false}
      assert dec(" 0 ") == {:ok, 0}
      assert dec("-0") == {:ok, 0}
      assert dec("42") == {:ok, 42}
      assert dec("-17") == {:ok, -17}
      assert dec("1.5") == {:ok, 1.5}
      assert dec("1e2") == {:ok, 100.0}
      assert dec("1E-2") == {:ok, 0.01}
      assert dec("-2.5e+3") == {:ok, -2500.0}
      assert dec(~s("hi")) == {:ok, "hi"}
      assert dec(~s("")) == {:ok, ""}
    end

    test "negative zero float keeps its sign" do
      assert {:ok, z} = dec("-0.0")
      assert <<1::1, _::63>> = <<z::float>>
    end

    test "containers" do
      assert dec("[]") == {:ok, []}
      assert dec("{}") == {:ok, %{}}

      assert dec(~s( {"a" : [1, {"b": null}], "c":"d"} )) ==
               {:ok, %{"a" => [1, %{"b" => nil}], "c" => "d"}}

      assert dec("[[[]]]") == {:ok, [[[]]]}
      assert dec(" \t\r\n[ 1 ,\n 2 ]\n") == {:ok, [1, 2]}
    end

    test "large objects (hash maps) and arrays" do
      obj = Map.new(1..1000, fn i -> {"k#{i}", i} end)
      assert dec(enc!(obj)) == {:ok, obj}
      assert dec(enc!(Enum.to_list(1..5000))) == {:ok, Enum.to_list(1..5000)}
    end

    test "repeated object keys share one term" do
      {:ok, [a, b]} = dec(~s([{"content": 1}, {"content": 2}]))
      [ka] = Map.keys(a)
      [kb] = Map.keys(b)
      assert ka == "content"
      assert :erts_debug.same(ka, kb)
    end

    test "duplicate keys: last wins" do
      assert dec(~s({"a":1,"b":2,"a":3})) == {:ok, %{"a" => 3, "b" => 2}}
      big = "{" <> Enum.map_join(1..40, ",", &~s("k#{&1}":#{&1})) <> ~s(,"k1":"last"})
      assert {:ok, m} = dec(big)
      assert m["k1"] == "last"
      assert map_size(m) == 40
    end

    test "integers of any size round-trip exactly" do
      for s <- [
            "9223372036854775807",
            "-9223372036854775808",
            "9223372036854775808",
            "-9223372036854775809",
            "18446744073709551615",
            "18446744073709551616",
            "123456789012345678901234567890",
            "-" <> String.duplicate("9", 400),
            String.duplicate("12345678901234567890", 50)
          ] do
        assert {:ok, i} = dec(s)
        assert is_integer(i)
        assert Integer.to_string(i) == s
        assert enc!(i) == s
      end
    end

    test "floats read exactly like Erlang's reader" do
      for s <- ~w(0.1 3.141592653589793 2.2250738585072014e-308 1.7976931348623157e308 5e-324
                  0.30000000000000004 1e22 1e23 9007199254740993.0 1.00000000000000000000001
                  123456789012345678901234567890.5 4.9406564584124654e-324) do
        {:ok, f} = dec(s)
        assert f === erlang_float(s), "#{s}"
      end
    end

    test "random 1-25 digit decimals read exactly like String.to_float/1" do
      :rand.seed(:exsss, {9, 9, 9})

      for _ <- 1..5000 do
        digits = for _ <- 1..:rand.uniform(25), into: "", do: <<?0 + :rand.uniform(10) - 1>>
        int_len = :rand.uniform(String.length(digits))
        int = digits |> String.slice(0, int_len) |> String.to_integer() |> Integer.to_string()
        frac = String.slice(digits, int_len..-1//1)
        frac = if frac == "", do: "0", else: frac
        s = "#{int}.#{frac}e#{:rand.uniform(80) - 40}"
        assert {:ok, f} = dec(s)
        assert f === String.to_float(s), s
      end
    end

    test "1e-400 underflows to 0.0; 1e400 is out of range" do
      assert dec("1e-400") == {:ok, 0.0}
      e = dec_error("1e400")
      assert e.message =~ "out of range"
      assert e.details == %{offset: 0}
    end

    test "iodata input" do
      assert dec(["[1,", ?2, "]"]) == {:ok, [1, 2]}
    end
  end

  defp erlang_float(s) do
    s = if String.contains?(s, "."), do: s, else: String.replace(s, "e", ".0e")
    String.to_float(s)
  end

  describe "decode: strings" do
    test "escapes" do
      assert dec(~S("a\nb\t\"q\"\\\/\b\f\r")) == {:ok, "a\nb\t\"q\"\\/\b\f\r"}
      assert dec(~S("\u00e9\u20AC")) == {:ok, "é€"}
      assert dec(~S("\u0000")) == {:ok, <<0>>}
    end

    test "surrogate pairs" do
      assert dec(~S("\ud83d\ude00")) == {:ok, "😀"}
      assert dec(~S("x\uD834\uDD1Ey")) == {:ok, "x𝄞y"}
    end

    test "lone surrogates are errors" do
      assert dec_error(~S("\ud800")).message =~ "lone surrogate"
      assert dec_error(~S("\udc00")).message =~ "lone surrogate"
      assert dec_error(~S("\ud800\u0041")).message =~ "lone surrogate"
      assert dec_error(~S("ab\ud800x")).details == %{offset: 3}
    end

    test "raw UTF-8 passes through" do
      s = "日本語 Ελληνικά 😀 naïve"
      assert dec(~s("#{s}")) == {:ok, s}
    end

    test "invalid UTF-8 is an error with the offset of the bad byte" do
      for {bin, off} <- [
            {<<?", ?a, 0xFF, ?">>, 2},
            {<<?", 0xC0, 0xAF, ?">>, 1},
            {<<?", 0xED, 0xA0, 0x80, ?">>, 1},
            {<<?", 0xF4, 0x90, 0x80, 0x80, ?">>, 1},
            {<<?", ?x, 0xE2, 0x82, ?">>, 2},
            {<<"{\"k", 0x80, "\":1}">>, 3}
          ] do
        e = dec_error(bin)
        assert e.message =~ "UTF-8"
        assert e.details == %{offset: off}
      end
    end

    test "control characters must be escaped" do
      e = dec_error("\"a\nb\"")
      assert e.message =~ "control character 0x0A"
      assert e.details == %{offset: 2}
    end

    test "bad escapes" do
      assert dec_error(~S("\x")).message =~ "invalid escape"
      assert dec_error(~S("\u12")).message =~ "\\u escape"
      assert dec_error(~S("\u12G4")).message =~ "\\u escape"
    end

    # Issue 8 #9: a provider reply holding a lone surrogate (Python's json.dumps writes
    # half an emoji as "\ud83d") failed the whole call.
    test "invalid_unicode: :replace turns lone surrogates into U+FFFD" do
      r = [invalid_unicode: :replace]
      assert dec(~S("\ud83d"), r) == {:ok, "\uFFFD"}
      assert dec(~S("a\ud83db"), r) == {:ok, "a\uFFFDb"}
      assert dec(~S("\udc00"), r) == {:ok, "\uFFFD"}
      assert dec(~S("\ud800\u0041"), r) == {:ok, "\uFFFDA"}
      assert dec(~S("\ud83d\ud83d\ude00"), r) == {:ok, "\uFFFD😀"}
      assert dec(~S("\ud83d\ude00"), r) == {:ok, "😀"}
      assert dec(~S({"k\udfff": "\ud83d"}), r) == {:ok, %{"k\uFFFD" => "\uFFFD"}}

      reply = ~S({"choices": [{"message": {"content": "Great job! \ud83d"}}]})
      assert {:ok, %{"choices" => [%{"message" => %{"content" => content}}]}} = dec(reply, r)
      assert content == "Great job! \uFFFD" and String.valid?(content)
      # the default stays strict
      assert dec_error(reply).message =~ "lone surrogate"
      assert dec_error(reply, invalid_unicode: :error).message =~ "lone surrogate"
    end

    test "invalid_unicode: :replace turns each ill-formed UTF-8 sequence into one U+FFFD" do
      r = [invalid_unicode: :replace]
      assert dec(<<?", ?a, 0xFF, ?">>, r) == {:ok, "a\uFFFD"}
      assert dec(<<?", ?x, 0xE2, 0x82, ?">>, r) == {:ok, "x\uFFFD"}
      assert dec(<<?", 0xE2, 0x82, ?x, 0xE2, 0x82, 0xAC, ?">>, r) == {:ok, "\uFFFDx€"}
      assert dec(<<?", 0xC0, 0xAF, ?">>, r) == {:ok, "\uFFFD\uFFFD"}
      assert dec(<<?", 0xED, 0xA0, 0x80, ?">>, r) == {:ok, "\uFFFD\uFFFD\uFFFD"}
      assert dec(<<?", 0xF4, 0x90, 0x80, 0x80, ?">>, r) == {:ok, String.duplicate("\uFFFD", 4)}
      assert dec(<<"{\"k", 0x80, "\":1}">>, r) == {:ok, %{"k\uFFFD" => 1}}
      # everything else stays strict
      assert dec_error("\"a\nb\"", r).message =~ "control character"
      assert dec_error(~S("\x"), r).message =~ "invalid escape"
      assert dec_error(~S("\u12G4"), r).message =~ "\\u escape"
      assert dec_error(~S([1,]), r).message =~ "expected a value"
    end

    test "invalid_unicode: :replace on a large input (dirty scheduler) and with atom keys" do
      big = "[" <> String.duplicate(~S("ok \ud83d", ), 20_000) <> "1]"
      assert {:ok, list} = dec(big, invalid_unicode: :replace)
      assert length(list) == 20_001 and hd(list) == "ok \uFFFD"

      assert dec(~S({"name": "\ud83d"}), invalid_unicode: :replace, keys: :atoms_existing) ==
               {:ok, %{name: "\uFFFD"}}

      assert_raise ArgumentError, ~r/invalid_unicode/, fn -> dec("1", invalid_unicode: :drop) end
    end

    test "long strings (sub-binaries) are correct and usable after the input is gone" do
      long = String.duplicate("abcdefgh", 100)
      {:ok, [s]} = dec(~s(["#{long}"]))
      assert s == long
      assert :binary.copy(s) == long
    end
  end

  describe "decode: errors" do
    test "readable messages with byte offsets" do
      cases = [
        {~s({"a": 1 x}), 8, "unexpected character 'x' at byte 8, expected ',' or '}'"},
        {"[1,]", 3, "unexpected character ']' at byte 3, expected a value"},
        {~s({"a":1,}), 7, "unexpected character '}' at byte 7, expected a string key"},
        {"", 0, "unexpected end of input at byte 0, expected a value"},
        {"[1", 2, "unexpected end of input at byte 2, expected ',' or ']'"},
        {"[1] x", 4,
         "unexpected character 'x' at byte 4, expected end of input after the top-level value"},
        {"{1:2}", 1, "unexpected character '1' at byte 1, expected a string key or '}'"},
        {~s({"a" 1}), 5, "unexpected character '1' at byte 5, expected ':' after the object key"}
      ]

      for {input, off, msg} <- cases do
        e = dec_error(input)
        assert e.details == %{offset: off}, inspect(input)
        assert e.message == msg
      end
    end

    test "strictness: no comments, trailing commas, leading zeros, single quotes, NaN" do
      for bad <- [
            "// c\n1",
            "/* c */ 1",
            "[1,]",
            ~s({"a":1,}),
            "01",
            "-01",
            "'a'",
            "NaN",
            "Infinity",
            "1.",
            ".5",
            "1e",
            "-",
            "+1",
            "tru",
            "nul",
            "[1 2]",
            "{\"a\"}",
            "\"abc",
            "0x10",
            "1 2"
          ] do
        assert {:error, %DSPex.Error{type: :json_decode}} = dec(bad), inspect(bad)
      end
    end

    test "leading zeros message" do
      assert dec_error("01").message =~ "leading zeros"
    end

    test "unterminated string points at its start" do
      e = dec_error(~s([1, "abc))
      assert e.details == %{offset: 4}
      assert e.message =~ "unterminated string"
    end

    test "non-printable bytes are shown as hex" do
      assert dec_error(<<"[", 1>>).message =~ "byte 0x01"
    end

    test "decode! raises the error struct" do
      assert_raise DSPex.Error, ~r/unexpected end of input/, fn -> JSON.decode!("[") end
    end

    test "non-binary input raises ArgumentError" do
      assert_raise ArgumentError, fn -> JSON.decode(123) end
    end

    test "bad options raise ArgumentError" do
      assert_raise ArgumentError, fn -> JSON.decode("1", keys: :atoms) end
      assert_raise ArgumentError, fn -> JSON.decode("1", max_depth: 0) end
    end
  end

  describe "decode: depth limit" do
    test "default 512" do
      ok = String.duplicate("[", 512) <> String.duplicate("]", 512)
      assert {:ok, _} = dec(ok)
      deep = String.duplicate("[", 513) <> String.duplicate("]", 513)
      e = dec_error(deep)
      assert e.message =~ "max_depth (512)"
      assert e.details == %{offset: 512}
    end

    test "configurable" do
      assert dec_error(~s({"a":{"b":[1]}}), max_depth: 2).message =~ "max_depth (2)"
      assert {:ok, _} = dec(~s({"a":{"b":[1]}}), max_depth: 3)
    end

    test "a very deep document cannot crash the VM" do
      deep = String.duplicate("[", 1_000_000)
      assert dec_error(deep).message =~ "max_depth"
      assert dec_error(deep, max_depth: 2_000_000).message =~ "unexpected end of input"
    end
  end

  describe "decode: keys" do
    test "atoms_existing" do
      _ = :dspex_json_test_existing_key

      assert dec(~s({"dspex_json_test_existing_key": {"ok": 1}}), keys: :atoms_existing) ==
               {:ok, %{dspex_json_test_existing_key: %{ok: 1}}}
    end

    test "unicode atom keys" do
      _ = :ключ
      assert dec(~s({"ключ": 1}), keys: :atoms_existing) == {:ok, %{ключ: 1}}
      _ = :café
      assert dec(~s({"caf\\u00e9": 1}), keys: :atoms_existing) == {:ok, %{café: 1}}
    end

    test "a key that is not an existing atom is an error" do
      e = dec_error(~s({"ok": 1, "no_such_atom_dspex_xyzzy_42": 2}), keys: :atoms_existing)
      assert e.message =~ "not an existing atom"
      assert e.message =~ "no_such_atom_dspex_xyzzy_42"
      assert e.details == %{offset: 10}
      refute_atom("no_such_atom_dspex_xyzzy_42")
      e = dec_error(~s({"нет_такого_атома_dspex": 2}), keys: :atoms_existing)
      assert e.message =~ "not an existing atom"
      refute_atom("нет_такого_атома_dspex")
    end
  end

  defp refute_atom(name) do
    assert_raise ArgumentError, fn -> String.to_existing_atom(name) end
  end

  describe "encode: values" do
    test "scalars" do
      assert enc!(nil) == "null"
      assert enc!(true) == "true"
      assert enc!(false) == "false"
      assert enc!(:hello) == ~s("hello")
      assert enc!(:ключ) == ~s("ключ")
      assert enc!(:café) == ~s("café")
      assert enc!(0) == "0"
      assert enc!(-42) == "-42"
      assert enc!(-9_223_372_036_854_775_808) == "-9223372036854775808"
      assert enc!("hi") == ~s("hi")
      assert enc!("") == ~s("")
    end

    test "floats: shortest round-trip form" do
      assert enc!(0.1) == "0.1"
      assert enc!(1.0) == "1.0"
      assert enc!(-1.0) == "-1.0"
      assert enc!(0.0) == "0.0"
      assert enc!(-0.0) == "-0.0"
      assert enc!(100.0) == "100.0"
      assert enc!(1.0e20) == "1.0e20"
      assert enc!(1.0e16) == "1.0e16"
      assert enc!(1.0e15) == "1000000000000000.0"
      assert enc!(1.5e-7) == "1.5e-7"
      assert enc!(0.0001) == "0.0001"
      assert enc!(0.00001) == "1.0e-5"
      assert enc!(1 / 3) == "0.3333333333333333"
      assert enc!(0.1 + 0.2) == "0.30000000000000004"
      assert enc!(1.7976931348623157e308) == "1.7976931348623157e308"
      assert enc!(123_456.789) == "123456.789"
    end

    test "floats agree with Erlang's shortest formatting (digits)" do
      :rand.seed(:exsss, {1, 2, 3})

      for _ <- 1..5000 do
        f = (:rand.uniform() - 0.5) * :math.pow(10, :rand.uniform(40) - 20)
        s = enc!(f)
        assert {:ok, ^f} = dec(s)
        assert sig_digits(s) <= sig_digits(:erlang.float_to_binary(f, [:short])), "#{f}: #{s}"
      end
    end

    test "strings are escaped" do
      assert enc!("a\"b\\c\n\t\r\b\f\u0001/") == ~S("a\"b\\c\n\t\r\b\f\u0001/")
      assert enc!("é😀") == ~s("é😀")
      assert enc!(<<0>>) == ~S("\u0000")
    end

    test "escape: :unicode gives ASCII output" do
      out = enc!(%{"ключ" => "é😀"}, escape: :unicode)
      assert out == ~S({"\u043a\u043b\u044e\u0447":"\u00e9\ud83d\ude00"})
      assert dec(out) == {:ok, %{"ключ" => "é😀"}}
    end

    test "maps with atom and binary keys" do
      assert dec(enc!(%{"b" => [2], a: 1})) == {:ok, %{"a" => 1, "b" => [2]}}
      assert enc!(%{}) == "{}"
      assert enc!([]) == "[]"
    end

    test "keyword lists and {:ordered, pairs} keep their order" do
      assert enc!(z: 1, a: 2, m: [x: true]) == ~s({"z":1,"a":2,"m":{"x":true}})
      assert enc!({:ordered, [{"z", 1}, {:a, 2}]}) == ~s({"z":1,"a":2})
      assert enc!({:ordered, []}) == "{}"
      assert enc!([{:ordered, [{"b", 1}, {"a", 2}]}, 3]) == ~s([{"b":1,"a":2},3])
      assert enc!([{:ordered, [{"b", 1}]}]) == ~s([{"b":1}])
      assert enc!([{:ordered, [b: 1]}, {:ordered, []}]) == ~s([{"b":1},{}])
      assert enc!(a: {:ordered, [c: 1]}) == ~s({"a":{"c":1}})
    end

    test "sort_keys sorts map keys by bytes, recursively" do
      m = %{
        "b" => %{"z" => 1, "y" => 2},
        "a" => 1,
        "B" => [%{"d" => 1, "c" => 2}],
        c: 0,
        é: 1,
        e: 2
      }

      assert enc!(m, sort_keys: true) ==
               ~s({"B":[{"c":2,"d":1}],"a":1,"b":{"y":2,"z":1},"c":0,"e":2,"é":1})

      big = Map.new(1..100, fn i -> {"k#{i}", i} end)

      keys =
        big
        |> enc!(sort_keys: true)
        |> then(&Regex.scan(~r/"(k\d+)"/, &1))
        |> Enum.map(&Enum.at(&1, 1))

      assert keys == Enum.sort(Map.keys(big))
    end

    test "sort_keys output is identical for equal maps built differently (cache keys)" do
      a = Enum.reduce(1..50, %{}, fn i, acc -> Map.put(acc, "k#{i}", %{"n" => i, "l" => [i]}) end)
      b = Enum.reduce(50..1, %{}, fn i, acc -> Map.put(acc, "k#{i}", %{"l" => [i], "n" => i}) end)
      assert enc!(a, sort_keys: true) == enc!(b, sort_keys: true)
    end

    test "pretty" do
      assert enc!(%{"a" => [1, 2], "b" => %{}, "c" => [], "d" => %{"e" => nil}},
               pretty: true,
               sort_keys: true
             ) ==
               """
               {
                 "a": [
                   1,
                   2
                 ],
                 "b": {},
                 "c": [],
                 "d": {
                   "e": null
                 }
               }\
               """

      assert enc!([], pretty: true) == "[]"
      assert enc!(1, pretty: true) == "1"
    end

    test "iodata: true returns a binary (which is iodata)" do
      assert JSON.encode([1], iodata: true) == {:ok, "[1]"}
    end
  end

  defp sig_digits(s) do
    [mant | _] = String.split(s, ["e", "E"])

    mant
    |> String.replace(["-", "."], "")
    |> String.trim_leading("0")
    |> String.trim_trailing("0")
    |> String.length()
  end

  describe "encode: errors" do
    test "unencodable terms are named" do
      e = enc_error(%{"p" => self()})
      assert e.message =~ "cannot encode a pid: #PID<"
      assert e.details.term == self()

      assert enc_error(make_ref()).message =~ "cannot encode a reference"
      assert enc_error(fn -> 1 end).message =~ "cannot encode a function"
      assert enc_error({1, 2}).message =~ "cannot encode tuple"
      assert enc_error({1, 2}).message =~ "{1, 2}"
      assert enc_error([1 | 2]).message =~ "improper list"
      assert enc_error(<<1::3>>).message =~ "bitstring"
      assert enc_error(Port.list() |> hd()).message =~ "port"
    end

    test "integer and other non-string map keys" do
      e = enc_error(%{1 => 2})
      assert e.message =~ "map key"
      assert e.details.term == 1
      assert enc_error(%{{:a} => 2}).message =~ "map key"
    end

    test "structs must be converted first" do
      e = enc_error(DSPex.Error.new(:x, "y"))
      assert e.message =~ "struct"
      assert {:ok, _} = JSON.encode(Map.from_struct(DSPex.Error.new(:x, "y")))
    end

    test "invalid UTF-8 in strings and keys" do
      e = enc_error(<<"ab", 0xFF>>)
      assert e.message =~ "invalid UTF-8 at byte 2"
      assert enc_error(%{<<0xC0, 0xAF>> => 1}).message =~ "map key"
      assert enc_error(["ok", <<0xED, 0xA0, 0x80>>]).message =~ "UTF-8"
    end

    test "a keyword list may not mix in other elements" do
      assert enc_error([{:a, 1}, 2]).message =~ "keyword lists"
      assert enc_error([{:a, 1}, 2]).details.term == {:a, 1}
    end

    test "ordered pairs must be 2-tuples with string keys" do
      assert enc_error({:ordered, [1]}).message =~ "ordered"
      assert enc_error({:ordered, [{1, 2}]}).message =~ "map key"
    end

    test "depth limit" do
      deep = Enum.reduce(1..600, 1, fn _, acc -> [acc] end)
      assert enc_error(deep).message =~ "max_depth (512)"
      assert {:ok, _} = JSON.encode(deep, max_depth: 600)
      very_deep = Enum.reduce(1..100_000, 1, fn _, acc -> %{"a" => acc} end)
      assert enc_error(very_deep).message =~ "max_depth"
      assert {:ok, out} = JSON.encode(very_deep, max_depth: 200_000)
      assert byte_size(out) == 100_000 * 6 + 1
    end

    test "encode! raises" do
      assert_raise DSPex.Error, ~r/cannot encode/, fn -> JSON.encode!(self()) end
    end

    test "bad options raise ArgumentError" do
      assert_raise ArgumentError, fn -> JSON.encode(1, pretty: :yes) end
      assert_raise ArgumentError, fn -> JSON.encode(1, escape: :html) end
    end
  end

  describe "large documents (dirty scheduler path)" do
    test "1 MB+ decode and encode round trip" do
      doc = %{
        "choices" =>
          for i <- 1..4000 do
            %{
              "index" => i,
              "text" => String.duplicate("token é😀 ", 20),
              "p" => i / 7,
              "big" => Integer.pow(10, 30) + i,
              "tags" => ["a", "b", nil, true]
            }
          end
      }

      json = enc!(doc)
      assert byte_size(json) > 1_000_000
      assert dec(json) == {:ok, doc}
      assert dec(enc!(doc, pretty: true)) == {:ok, doc}
      assert enc!(dec!(json), sort_keys: true) == enc!(doc, sort_keys: true)
    end

    test "long integer literals (decoded on a dirty scheduler)" do
      digits = String.duplicate("9876543210", 500)
      assert {:ok, i} = dec("[" <> digits <> ", -" <> digits <> "]")
      assert i == [String.to_integer(digits), -String.to_integer(digits)]
      assert enc!(i) == "[" <> digits <> ",-" <> digits <> "]"
      too_long = String.duplicate("1", 100_001)
      assert dec_error(too_long).message =~ "more than the limit of 100000"
    end

    test "large maps, keyword lists and ordered objects (encoded on a dirty scheduler)" do
      m = Map.new(1..20_000, fn i -> {"k#{i}", i} end)
      assert dec(enc!(m)) == {:ok, m}
      assert dec(enc!(m, sort_keys: true)) == {:ok, m}
      kw = for i <- 1..10_000, do: {:"kw#{rem(i, 100)}", i}
      assert {:ok, kw_map} = dec(enc!(kw))
      assert kw_map["kw0"] == 10_000
      ordered = {:ordered, for(i <- 1..10_000, do: {"o#{i}", i})}
      out = enc!(ordered)
      assert String.starts_with?(out, ~s({"o1":1,"o2":2,))
      assert map_size(dec!(out)) == 10_000
    end

    test "long strings: characters straddling internal chunk boundaries, late bad bytes" do
      for pad <- 4090..4097, ch <- ["é", "日", "😀", "\n"] do
        s = String.duplicate("a", pad) <> String.duplicate(ch, 5) <> "z"
        assert dec(enc!(s)) == {:ok, s}
        assert dec(enc!(s, escape: :unicode)) == {:ok, s}
      end

      e = enc_error(String.duplicate("é", 6000) <> <<0xFF>>)
      assert e.message =~ "invalid UTF-8 at byte 12000 of a string"
      e = enc_error(String.duplicate("a", 4095) <> <<0xE6, 0x97>>)
      assert e.message =~ "invalid UTF-8 at byte 4095"
    end

    test "a single 2 MB string" do
      s = String.duplicate("abc\"\\\n日本", 200_000)
      json = enc!(s)
      assert dec(json) == {:ok, s}
    end

    test "errors deep inside a large document report the right offset" do
      json = enc!(Enum.to_list(1..100_000))
      bad = binary_part(json, 0, byte_size(json) - 1) <> ",]"
      e = dec_error(bad)
      assert e.details == %{offset: byte_size(bad) - 1}
    end

    test "many concurrent large decodes" do
      json = enc!(for i <- 1..20_000, do: %{"i" => i, "s" => "x#{i}"})

      results =
        1..8
        |> Enum.map(fn _ -> Task.async(fn -> dec(json) end) end)
        |> Enum.map(&Task.await(&1, 60_000))

      assert Enum.all?(results, &match?({:ok, [_ | _]}, &1))
    end
  end

  defp dec!(s), do: JSON.decode!(s)

  describe "randomized round trip (fixed seed)" do
    test "random terms survive encode -> decode" do
      :rand.seed(:exsss, {42, 4242, 424_242})

      for _ <- 1..300 do
        t = random_term(4)
        json = enc!(t)
        assert dec(json) == {:ok, t}, "json: #{json}"
        assert dec(enc!(t, pretty: true)) == {:ok, t}
        assert dec(enc!(t, sort_keys: true, escape: :unicode)) == {:ok, t}
      end
    end

    test "random byte strings never crash the decoder" do
      :rand.seed(:exsss, {1, 1, 1})
      alphabet = ~c'{}[]",:0123456789.-+eEtrufalsn \\u\n' ++ [0xC3, 0xA9, 0xFF, 0xF0, 0x9F]

      for _ <- 1..3000 do
        bin = for _ <- 1..:rand.uniform(40), into: <<>>, do: <<Enum.random(alphabet)>>

        case dec(bin) do
          {:ok, t} ->
            assert dec(enc!(t)) == {:ok, t}

          {:error, %DSPex.Error{type: :json_decode, details: %{offset: off}}} ->
            assert off <= byte_size(bin)
        end
      end
    end
  end

  defp random_term(0), do: random_scalar()

  defp random_term(depth) do
    case :rand.uniform(6) do
      1 -> for _ <- 1..:rand.uniform(5), do: random_term(depth - 1)
      2 -> Map.new(1..:rand.uniform(5), fn _ -> {random_string(), random_term(depth - 1)} end)
      _ -> random_scalar()
    end
  end

  defp random_scalar do
    case :rand.uniform(9) do
      1 -> nil
      2 -> :rand.uniform(2) == 1
      3 -> :rand.uniform(1_000_000) - 500_000
      4 -> (:rand.uniform(2) * 2 - 3) * Integer.pow(7, :rand.uniform(80))
      5 -> (:rand.uniform() - 0.5) * :math.pow(10, :rand.uniform(60) - 30)
      6 -> :rand.uniform() |> :erlang.float_to_binary(decimals: 3) |> String.to_float()
      _ -> random_string()
    end
  end

  defp random_string do
    pool = ["a", "é", "日", "😀", "\"", "\\", "\n", "\u0001", "/", " ", "z", "\u2028"]
    Enum.map_join(1..:rand.uniform(12), fn _ -> Enum.random(pool) end)
  end
end
