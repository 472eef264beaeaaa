defmodule DSPex.Adapter.Native do
  @moduledoc false
  # Shared plumbing of DSPex.Adapter.Chat and DSPex.Adapter.JSON: argument
  # normalization, the NIF calls (c_src/nif/nif_adapter.c) and telemetry spans.

  alias DSPex.{Error, NIF, Signature, Telemetry}

  @spec format(module, :chat | :json, term, list, term) :: [DSPex.Adapter.message()]
  def format(module, kind, signature, demos, inputs) do
    sig = resolve(signature)
    demos = Enum.map(List.wrap(demos), &fields/1)
    inputs = fields(inputs)

    meta = meta(module, sig)

    Telemetry.span([:dspex, :adapter, :format], meta, fn ->
      {:ok, messages} = NIF.guard(fn -> NIF.adapter_format(kind, sig, demos, inputs) end)
      {messages, meta}
    end)
  end

  @spec format_assistant(:chat | :json, term, term, binary | nil) :: binary
  def format_assistant(kind, signature, outputs, missing) do
    sig = resolve(signature)

    {:ok, text} =
      NIF.guard(fn -> NIF.adapter_format_assistant(kind, sig, fields(outputs), missing) end)

    text
  end

  @spec parse(module, :chat | :json, term, binary) :: {:ok, map} | {:error, Error.t()}
  def parse(module, kind, signature, text) when is_binary(text) do
    sig = resolve(signature)
    meta = meta(module, sig)

    Telemetry.span([:dspex, :adapter, :parse], meta, fn ->
      result =
        case NIF.guard(fn -> NIF.adapter_parse(kind, sig, text) end) do
          {:ok, map} -> {:ok, sets(sig.outputs, map)}
          {:error, {type, message, _}} -> {:error, Error.new(type, message, %{adapter: module})}
        end

      {result, Map.put(meta, :ok, match?({:ok, _}, result))}
    end)
  end

  def parse(_module, _kind, _signature, other) do
    raise ArgumentError, "completion text must be a binary, got: #{inspect(other)}"
  end

  @spec parse!(module, :chat | :json, term, binary) :: map
  def parse!(module, kind, signature, text) do
    case parse(module, kind, signature, text) do
      {:ok, fields} -> fields
      {:error, err} -> raise err
    end
  end

  # set[...] outputs come back from C as lists
  defp sets(outputs, map) do
    Enum.reduce(outputs, map, fn
      %{name: name, type: t}, acc when t == :set or (is_tuple(t) and elem(t, 0) == :set) ->
        Map.update!(acc, name, &MapSet.new/1)

      _, acc ->
        acc
    end)
  end

  @doc false
  def resolve(%Signature{} = sig), do: sig
  def resolve(other), do: Signature.resolve!(other)

  @doc false
  # Demos, inputs and outputs: plain maps (atom keys), keyword lists, or structs that
  # carry their fields under :fields / :data (DSPex.Example, DSPex.Prediction).
  def fields(%{__struct__: _, fields: f}) when is_map(f), do: f
  def fields(%{__struct__: _, data: d}) when is_map(d), do: d
  def fields(%{__struct__: mod} = s) when mod != DSPex.History, do: Map.from_struct(s)
  def fields(m) when is_map(m), do: m

  def fields(l) when is_list(l) do
    Map.new(l)
  rescue
    # not a list of {key, value} pairs
    ArgumentError -> bad_fields!(l)
  end

  def fields(other), do: bad_fields!(other)

  defp bad_fields!(other) do
    raise ArgumentError,
          "demos, inputs and outputs must be maps with atom keys, got: " <>
            inspect(other, limit: 8, printable_limit: 80)
  end

  defp meta(module, sig) do
    %{adapter: module, signature: signature_string(sig)}
  end

  defp signature_string(%Signature{inputs: ins, outputs: outs}) do
    Enum.map_join(ins, ", ", &Atom.to_string(&1.name)) <>
      " -> " <> Enum.map_join(outs, ", ", &Atom.to_string(&1.name))
  end
end
