defmodule DSPex.Signature.Atoms do
  @moduledoc """
  Field names become atoms; atoms are never garbage collected and the VM aborts when its
  atom table (1,048,576 by default) is full. So untrusted text never creates atoms
  without bound:

    * a name that already exists as an atom is always accepted;
    * with `atoms: :existing` no atom is ever created: an unknown name is an error;
    * with `atoms: :create` (the default, for signatures written in source code) a new
      atom is created only while the VM-wide budget lasts: 10,000 new field-name atoms,
      configurable with `config :dspex, :signature_atom_budget, n`. Past it, parsing
      fails with a `:signature_parse` error saying what to do.

  The budget is counted once per VM with `:counters` (the counter reference lives in
  `:persistent_term`), so concurrent parses share it.

  ## Examples

      iex> DSPex.Signature.Atoms.to_atom("question", :existing)
      {:ok, :question}
      iex> {:error, message} = DSPex.Signature.Atoms.to_atom("surely_not_an_atom_yet_7f3a", :existing)
      iex> message =~ "atoms: :existing"
      true
  """

  @on_load :init
  @default_budget 10_000
  @key {__MODULE__, :counter}

  @doc false
  def init do
    if :persistent_term.get(@key, nil) == nil do
      :persistent_term.put(@key, :counters.new(1, [:atomics]))
    end

    :ok
  end

  @doc """
  The budget: `%{used: new atoms created so far, limit: the configured limit}`.

  ## Examples

      iex> %{used: used, limit: limit} = DSPex.Signature.Atoms.budget()
      iex> is_integer(used) and is_integer(limit)
      true
  """
  @spec budget() :: %{used: non_neg_integer, limit: non_neg_integer}
  def budget, do: %{used: :counters.get(counter(), 1), limit: limit()}

  @doc """
  The atom for field name `name` (valid UTF-8, at most 255 characters, as the parsers
  check) under `mode` (`:create` or `:existing`), or `{:error, message}`.
  """
  @spec to_atom(binary, :create | :existing) :: {:ok, atom} | {:error, binary}
  def to_atom(name, mode) when is_binary(name) and mode in [:create, :existing] do
    {:ok, :erlang.binary_to_existing_atom(name, :utf8)}
  rescue
    ArgumentError -> new_atom(name, mode)
  end

  def to_atom(_name, mode) do
    raise ArgumentError, "atoms: must be :create or :existing, got: #{inspect(mode)}"
  end

  defp new_atom(name, :existing) do
    {:error,
     "field name #{inspect(name)} is not an existing atom and atoms: :existing never creates " <>
       "one (declare the name in code, or pass atoms: :create for trusted signatures)"}
  end

  defp new_atom(name, :create) do
    counter = counter()
    limit = limit()

    if :counters.get(counter, 1) >= limit do
      {:error,
       "field name #{inspect(name)} would be a new atom, but the VM-wide budget of #{limit} " <>
         "new field-name atoms is used up (atoms are never freed); parse untrusted signatures " <>
         "with atoms: :existing, or raise config :dspex, :signature_atom_budget"}
    else
      :counters.add(counter, 1, 1)
      {:ok, :erlang.binary_to_atom(name, :utf8)}
    end
  end

  defp counter do
    case :persistent_term.get(@key, nil) do
      nil ->
        init()
        :persistent_term.get(@key)

      ref ->
        ref
    end
  end

  defp limit, do: Application.get_env(:dspex, :signature_atom_budget, @default_budget)
end
