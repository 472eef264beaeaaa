defmodule DSPex.HashTest do
  use ExUnit.Case, async: true
  doctest DSPex.Hash

  test "equals :crypto for many sizes" do
    for size <- [0, 1, 55, 56, 63, 64, 65, 1000, 65_536, 65_537, 1_000_000] do
      data = :crypto.strong_rand_bytes(size)
      assert DSPex.Hash.sha256(data) == :crypto.hash(:sha256, data)

      assert DSPex.Hash.sha256_hex(data) ==
               Base.encode16(:crypto.hash(:sha256, data), case: :lower)
    end
  end

  test "iodata and sub-binaries" do
    <<_, sub::binary-size(100), _::binary>> = :binary.copy("xyz", 100)
    assert DSPex.Hash.sha256(sub) == :crypto.hash(:sha256, sub)
    assert DSPex.Hash.sha256(["ab", [?c | "d"]]) == :crypto.hash(:sha256, "abcd")
  end

  test "bad input raises ArgumentError" do
    assert_raise ArgumentError, fn -> DSPex.Hash.sha256(:atom) end
  end

  # Keys written by the C SHA-256 that DSPex used before it moved to :crypto (computed
  # with that code and kept here as literals): an existing on-disk cache stays valid.
  test "cache keys are identical to the ones the C implementation wrote" do
    requests = [
      {%{"model" => "openai/gpt-4o-mini", "messages" => []},
       "b303563393e40aa5220ce174e13ace295aae5a11b0f528cb3cecace2d057d43a"},
      {%{
         "model" => "openai/gpt-4o-mini",
         "messages" => [%{"role" => "user", "content" => "What is the capital of France?"}],
         "temperature" => 0.0,
         "max_tokens" => 1000
       }, "2cb8fa16db9fb99786a0592d4cfc1426792e8edf9c4791c913e8044a711d7f69"},
      {%{
         "model" => "anthropic/claude-3-5-haiku",
         "messages" => [
           %{"role" => "system", "content" => "Your input fields are:\n1. `question` (str):"},
           %{"role" => "user", "content" => "ünïcödé 🚀 «x»"}
         ],
         "n" => 3,
         "rollout_id" => 7,
         "temperature" => 1.0
       }, "737728f48bc1ab6c0a5c6c368eafd9ac8ff3dd07dd926c30cae14d4dbedd67dd"},
      {%{
         "model" => "gemini/gemini-2.0-flash",
         "messages" => [%{"role" => "user", "content" => String.duplicate("long text ", 10_000)}],
         "response_format" => %{"type" => "json_object"},
         "stop" => ["\n\n", "END"]
       }, "8f8b1635dcf6b1b1244d1e1c03b716725892f81b7aa7a7e002156951ae73a82a"},
      {%{
         "model" => "openai/x",
         "messages" => [%{"role" => "user", "content" => "tab\tnl\nquote\"bs\\ctl\u0001"}],
         "top_p" => 0.95,
         "seed" => 123_456_789_012,
         "logprobs" => true,
         "tools" => nil
       }, "610e54c60a3b2761b69444d41db5cd4e5b44edc8b941e7aef5b4f91a52dd5444"}
    ]

    for {request, key} <- requests, do: assert(DSPex.LM.Cache.key(request) == key)

    assert DSPex.Hash.sha256_hex(String.duplicate("a", 1_000_000)) ==
             "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"
  end
end
