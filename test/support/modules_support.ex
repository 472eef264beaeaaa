# Stand-ins used by the modules tests until (and as a fallback when) the real
# DSPex.Signature parser and DSPex.Adapter.Chat are available.
defmodule DSPex.ModulesTest.Support do
  @moduledoc false
  alias DSPex.Signature
  alias DSPex.Signature.Field

  @doc "Parses a simple `a, b -> c` signature (no types) — or uses the real parser."
  def sig(string, instructions \\ nil) do
    sig =
      if real_signature?() and match?({:ok, _}, try_real(string)) do
        {:ok, s} = try_real(string)
        s
      else
        [ins, outs] = String.split(string, "->")

        %Signature{
          inputs: fields(ins, :input),
          outputs: fields(outs, :output)
        }
        |> then(fn s ->
          %{s | instructions: default_instructions(s)}
        end)
      end

    if instructions, do: %{sig | instructions: instructions}, else: sig
  end

  defp try_real(string) do
    {:ok, DSPex.Predict.resolve_signature(string)}
  rescue
    e -> {:error, e}
  end

  def real_signature? do
    Code.ensure_loaded?(DSPex.Signature) and function_exported?(DSPex.Signature, :resolve!, 1)
  end

  def real_chat? do
    Code.ensure_loaded?(DSPex.Adapter.Chat) and function_exported?(DSPex.Adapter.Chat, :parse, 2)
  end

  @doc "Saves the global settings and restores them when the test exits."
  def keep_global_settings do
    saved = :persistent_term.get({DSPex.Settings, :global}, %{})
    ExUnit.Callbacks.on_exit(fn -> :persistent_term.put({DSPex.Settings, :global}, saved) end)
    :ok
  end

  @doc "The adapter to use in tests: the real Chat adapter if present."
  def adapter, do: if(real_chat?(), do: DSPex.Adapter.Chat, else: DSPex.ModulesTest.Adapter)

  defp fields(s, kind) do
    s
    |> String.split(",", trim: true)
    |> Enum.map(&String.trim/1)
    |> Enum.map(fn name ->
      name = String.to_atom(name)

      %Field{
        name: name,
        kind: kind,
        type: :str,
        type_defined?: false,
        desc: nil,
        prefix: prefix(name)
      }
    end)
  end

  defp prefix(name) do
    (name |> Atom.to_string() |> String.split("_") |> Enum.map_join(" ", &String.capitalize/1)) <>
      ":"
  end

  defp default_instructions(s) do
    "Given the fields #{Enum.map_join(s.inputs, ", ", &"`#{&1.name}`")}, produce the fields " <>
      "#{Enum.map_join(s.outputs, ", ", &"`#{&1.name}`")}."
  end
end

defmodule DSPex.ModulesTest.Adapter do
  @moduledoc false
  # A small ChatAdapter-shaped stand-in: markers `[[ ## field ## ]]`.
  @behaviour DSPex.Adapter

  @impl true
  def format(sig, demos, inputs, _opts) do
    system = %{role: "system", content: "Your objective is: #{sig.instructions}"}

    demo_msgs =
      Enum.flat_map(demos, fn d ->
        [
          %{role: "user", content: user(sig, d)},
          %{role: "assistant", content: format_assistant_message(sig, d)}
        ]
      end)

    [system | demo_msgs] ++
      [%{role: "user", content: user(sig, inputs) <> "\n\n" <> reminder(sig)}]
  end

  defp user(sig, values) do
    Enum.map_join(sig.inputs, "\n\n", fn f ->
      "[[ ## #{f.name} ## ]]\n#{val(Map.get(values, f.name))}"
    end)
  end

  defp reminder(sig) do
    [first | _] = sig.outputs

    "Respond with the corresponding output fields, starting with the field `[[ ## #{first.name} ## ]]`, " <>
      "and then ending with the marker for `[[ ## completed ## ]]`."
  end

  defp val(v) when is_binary(v), do: v
  defp val(v), do: inspect(v)

  @impl true
  def format_assistant_message(sig, outputs) do
    Enum.map_join(sig.outputs, "", fn f ->
      "[[ ## #{f.name} ## ]]\n#{val(Map.get(outputs, f.name))}\n\n"
    end) <>
      "[[ ## completed ## ]]\n"
  end

  @impl true
  def parse(sig, text) do
    parts =
      Regex.split(~r/\[\[ ## (\w+) ## \]\]/, text, include_captures: true, trim: true)
      |> chunk()

    values = for {name, v} <- parts, into: %{}, do: {name, String.trim(v)}

    missing = for f <- sig.outputs, not Map.has_key?(values, Atom.to_string(f.name)), do: f.name

    if missing == [] do
      {:ok, Map.new(sig.outputs, fn f -> {f.name, values[Atom.to_string(f.name)]} end)}
    else
      {:error,
       DSPex.Error.new(
         :adapter_parse,
         "expected fields #{inspect(missing)} missing from the LM response",
         %{
           missing: missing
         }
       )}
    end
  end

  defp chunk([marker, value | rest]) do
    case Regex.run(~r/\[\[ ## (\w+) ## \]\]/, marker) do
      [_, name] -> [{name, value} | chunk(rest)]
      _ -> chunk([value | rest])
    end
  end

  defp chunk(_), do: []
end
