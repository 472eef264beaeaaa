defmodule DSPex.Test.DSPyFixtures do
  @moduledoc false
  # Reading the golden fixtures made by the real DSPy 3.3.1 (tools/gen_*_fixtures.py):
  # their neutral signature, type and value forms as DSPex terms. Shared by the adapter,
  # ReAct and schema fixture tests.

  alias DSPex.Adapter.{Chat, JSON}
  alias DSPex.Signature
  alias DSPex.Signature.Field

  def load(path), do: path |> File.read!() |> DSPex.JSON.decode!()

  def adapter("chat"), do: Chat
  def adapter("json"), do: JSON

  def signature(%{"instructions" => instr, "inputs" => ins, "outputs" => outs}) do
    %Signature{
      instructions: instr,
      inputs: Enum.map(ins, &field(&1, :input)),
      outputs: Enum.map(outs, &field(&1, :output))
    }
  end

  defp field(%{"name" => name, "type" => type, "desc" => desc, "constraints" => cons}, kind) do
    %Field{
      name: String.to_atom(name),
      kind: kind,
      type: type(type),
      desc: desc,
      prefix: nil,
      constraints: Enum.map(cons, fn [k, v] -> {String.to_atom(k), v} end)
    }
  end

  def type("ellipsis"), do: :ellipsis
  def type(s) when is_binary(s), do: String.to_atom(s)
  def type(["list", t]), do: {:list, type(t)}
  def type(["set", t]), do: {:set, type(t)}
  def type(["dict", k, v]), do: {:dict, type(k), type(v)}
  def type(["tuple", ts]), do: {:tuple, Enum.map(ts, &type/1)}
  def type(["literal", vals]), do: {:literal, vals}
  def type(["optional", t]), do: {:optional, type(t)}
  def type(["union", ts]), do: {:union, Enum.map(ts, &type/1)}

  def type(["enum", name, [[_, _] | _] = members]),
    do: {:enum, name, Enum.map(members, fn [n, v] -> {n, v} end)}

  def type(["enum", name, vals]), do: {:enum, name, vals}

  # values as inputs: ordered dicts keep their order
  def value(%{"__tuple__" => l}), do: List.to_tuple(Enum.map(l, &value/1))
  def value(%{"__set__" => l}), do: MapSet.new(Enum.map(l, &value/1))
  def value(%{"__history__" => msgs}), do: DSPex.History.new(Enum.map(msgs, &fields/1))

  def value(%{"__ordered__" => pairs}),
    do: {:ordered, Enum.map(pairs, fn [k, v] -> {k, value(v)} end)}

  def value(m) when is_map(m), do: Map.new(m, fn {k, v} -> {k, value(v)} end)
  def value(l) when is_list(l), do: Enum.map(l, &value/1)
  def value(v), do: v

  def fields(m), do: Map.new(m, fn {k, v} -> {String.to_atom(k), value(v)} end)

  # values as parse results
  def result(%{"__tuple__" => l}), do: List.to_tuple(Enum.map(l, &result/1))
  def result(%{"__set__" => l}), do: MapSet.new(l, &result/1)

  def result(%{"__ordered__" => pairs}),
    do: Map.new(pairs, fn [k, v] -> {result(k), result(v)} end)

  def result(m) when is_map(m), do: Map.new(m, fn {k, v} -> {k, result(v)} end)
  def result(l) when is_list(l), do: Enum.map(l, &result/1)
  def result(v), do: v
end
