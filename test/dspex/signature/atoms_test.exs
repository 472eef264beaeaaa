defmodule DSPex.Signature.AtomsTest do
  # Not async: the atom budget is VM-wide and this test uses it up on purpose.
  use ExUnit.Case, async: false

  alias DSPex.Signature

  doctest DSPex.Signature.Atoms

  defp hostile(i, n) do
    names = for j <- 1..n, do: "h#{i}_#{j}_#{System.unique_integer([:positive])}"
    Enum.join(names, ", ") <> " -> out"
  end

  # Loading a module adds its atoms to the table: run every path once before counting.
  setup_all do
    {:ok, _} = Signature.parse(hostile(1_000_001, 3))
    {:error, _} = Signature.parse(hostile(1_000_002, 3), atoms: :existing)
    previous = Application.get_env(:dspex, :signature_atom_budget)
    Application.put_env(:dspex, :signature_atom_budget, 0)
    {:error, _} = Signature.parse(hostile(1_000_003, 3))

    if previous,
      do: Application.put_env(:dspex, :signature_atom_budget, previous),
      else: Application.delete_env(:dspex, :signature_atom_budget)

    :ok
  end

  test "hostile parses cannot grow the atom table past the budget" do
    used = DSPex.Signature.Atoms.budget().used
    budget = used + 2_000
    previous = Application.get_env(:dspex, :signature_atom_budget)
    Application.put_env(:dspex, :signature_atom_budget, budget)
    before = :erlang.system_info(:atom_count)

    try do
      results = for i <- 1..1000, do: Signature.parse(hostile(i, 1000))
      grown = :erlang.system_info(:atom_count) - before
      # the budget, plus the few atoms other code may create meanwhile
      assert grown <= 2_000 + 100
      assert {:error, err} = List.last(results)
      assert err.type == :signature_parse
      assert err.message =~ "budget of #{budget} new field-name atoms is used up"
      assert err.message =~ "atoms: :existing"
      assert %{column: 1, option: :atoms} = err.details

      # names that exist are still accepted once the budget is gone
      assert {:ok, _} = Signature.parse("question, context -> answer")
    after
      if previous,
        do: Application.put_env(:dspex, :signature_atom_budget, previous),
        else: Application.delete_env(:dspex, :signature_atom_budget)
    end
  end

  test "atoms: :existing never creates an atom" do
    before = :erlang.system_info(:atom_count)
    text = hostile(0, 200)
    assert {:error, err} = Signature.parse(text, atoms: :existing)
    assert err.message =~ "is not an existing atom and atoms: :existing never creates one"
    assert err.details.field =~ "h0_1_"
    assert err.details.column == 1
    assert :erlang.system_info(:atom_count) - before < 50
    assert {:ok, sig} = Signature.parse("question -> answer", atoms: :existing)
    assert Signature.output_names(sig) == [:answer]
  end

  test "an over-long field name is a parse error with a column, not a SystemLimitError" do
    name = String.duplicate("a", 256)
    assert {:error, err} = Signature.parse("q, " <> name <> " -> b")
    assert err.type == :signature_parse
    assert err.details.column == 4
    assert err.message =~ "256 characters long; the limit is 255"
    assert {:ok, _} = Signature.parse(String.duplicate("é", 255) <> " -> b")

    assert_raise ArgumentError, ~r/at most 255 characters/, fn ->
      DSPex.Signature.Field.new(name, :input)
    end
  end

  test "other ways text becomes a field atom share the rule" do
    assert_raise ArgumentError, ~r/atoms: :existing never creates one/, fn ->
      DSPex.Signature.Field.new("never_seen_as_an_atom_9d1c", :input, atoms: :existing)
    end

    sig = Signature.parse!("q -> a")

    assert_raise ArgumentError, ~r/atoms: :existing/, fn ->
      Signature.append(sig, "also_never_seen_as_an_atom_c71", kind: :input, atoms: :existing)
    end

    # a lookup by name never creates an atom
    assert Signature.field(sig, "certainly_not_an_atom_0e7b") == nil
  end
end
