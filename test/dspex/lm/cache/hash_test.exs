defmodule DSPex.HashTest do
  use ExUnit.Case, async: true
  doctest DSPex.Hash

  test "equals :crypto for many sizes, including dirty-scheduler sizes" do
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
end
