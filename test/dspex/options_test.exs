defmodule DSPex.OptionsTest do
  use ExUnit.Case, async: true

  alias DSPex.Options

  doctest DSPex.Options

  @schema Options.schema!(
            temperature: [type: :number, doc: "Sampling temperature."],
            max_tokens: [type: :pos_integer],
            api_key: [type: :string, secret: true],
            api_base: [type: {:or, [:string, nil]}],
            base_url: [alias: :api_base],
            mode: [type: {:in, ["chat", "text"]}, default: "chat"],
            n: [type: :pos_integer, required: true],
            reward_fn: [type: {:fun, 2}],
            stops: [type: {:list, :string}],
            params: [type: {:map, :atom, :any}]
          )

  defp check(opts), do: Options.validate(opts, @schema, "Demo.new/2")

  test "defaults are filled and the given values kept, in the given order" do
    assert {:ok, [n: 1, temperature: 0.5, mode: "chat"]} = check(n: 1, temperature: 0.5)
  end

  test "unknown options name the valid ones and suggest the closest" do
    assert {:error, err} = check(n: 1, max_token: 5)
    assert err.type == :invalid_option
    assert err.details.suggestion == :max_tokens
    assert err.message =~ "unknown option :max_token for Demo.new/2 (did you mean :max_tokens?)"

    assert err.message =~
             "valid options: :api_base, :api_key, :base_url, :max_tokens, :mode, :n, :params, :reward_fn, :stops, :temperature"

    assert {:error, err} = check(n: 1, zzzzzz: 5)
    refute err.message =~ "did you mean"

    assert_raise ArgumentError, ~r/unknown option :tempreature .*did you mean :temperature/, fn ->
      Options.validate!([n: 1, tempreature: 0.1], @schema, "Demo.new/2")
    end
  end

  test "types are checked; secrets are never shown" do
    assert {:error, %{message: msg}} = check(n: 0)
    assert msg == "invalid value for option :n of Demo.new/2: expected a positive integer, got: 0"

    assert {:error, %{message: msg}} = check(n: 1, api_key: 12_345_678)
    refute msg =~ "12345678"
    assert msg =~ "not shown"

    assert {:error, _} = check(n: 1, mode: "other")
    assert {:error, _} = check(n: 1, reward_fn: fn x -> x end)
    assert {:ok, _} = check(n: 1, reward_fn: fn _, _ -> 1 end)
    assert {:error, _} = check(n: 1, stops: ["a", :b])
    assert {:ok, _} = check(n: 1, stops: ["a", "b"])
    assert {:error, _} = check(n: 1, params: %{"a" => 1})
    assert {:ok, _} = check(n: 1, params: %{a: 1})
    assert {:ok, [n: 1, api_base: nil, mode: "chat"]} = check(n: 1, api_base: nil)
  end

  test "required options, aliases, maps and malformed input" do
    assert {:error, %{message: "missing required option :n for Demo.new/2"}} = check([])
    assert {:ok, opts} = check(n: 2, base_url: "http://x")
    assert opts[:api_base] == "http://x"
    refute Keyword.has_key?(opts, :base_url)
    # the first occurrence wins, as Keyword.get/2 would read it
    assert {:ok, opts} = check(n: 2, api_base: "a", base_url: "b")
    assert opts[:api_base] == "a"
    assert {:ok, [n: 3, mode: "chat"]} = check(%{n: 3})
    assert {:error, %{message: msg}} = check([{"n", 1}])
    assert msg =~ "keyword list"
    assert {:error, _} = Options.validate(:nope, @schema, "Demo.new/2")
  end

  test "schemas are checked when built" do
    assert_raise ArgumentError, ~r/unknown type/, fn -> Options.schema!(a: [type: :strng]) end

    assert_raise ArgumentError, ~r/not a declared option/, fn ->
      Options.schema!(a: [alias: :b])
    end

    assert_raise ArgumentError, ~r/default of :a/, fn ->
      Options.schema!(a: [type: :boolean, default: 1])
    end
  end

  test "docs list every option with type, doc and default" do
    docs = Options.docs(@schema)
    assert docs =~ "* `:temperature` (a number) — Sampling temperature."
    assert docs =~ "* `:mode` (one of \"chat\", \"text\") — Default: `\"chat\"`."
    assert docs =~ "* `:n` (a positive integer) — Required."
    assert docs =~ "* `:base_url` — alias of `:api_base`."
  end
end
