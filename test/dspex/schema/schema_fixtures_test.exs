defmodule DSPex.SchemaFixturesTest do
  # Golden fixtures from DSPy 3.3.1 with the equivalent pydantic models
  # (tools/gen_schema_fixtures.py): DSPex.Schema modules declared from the same neutral
  # description must render byte-identical prompts, parse the same replies into the same
  # values, refuse the same invalid ones, and give a tool with a model parameter the same
  # text.
  use ExUnit.Case, async: true

  import DSPex.Test.DSPyFixtures, except: [signature: 1]

  alias DSPex.Signature
  alias DSPex.Signature.Field

  @root Path.expand("../../fixtures/schema", __DIR__)
  @paths Path.wildcard(Path.join(@root, "*.json")) |> Enum.sort()
  for p <- @paths, do: @external_resource(p)

  test "there are enough fixtures" do
    assert length(@paths) >= 20
  end

  for path <- @paths do
    name = Path.basename(path, ".json")

    test "schema #{name}" do
      fx = load(unquote(path))
      ns = Module.concat([DSPex.Test.SchemaFixtures, Macro.camelize(unquote(name))])
      define_models(fx["models"], ns)
      check(fx, ns)
    end
  end

  defp check(%{"kind" => "render"} = fx, ns) do
    sig = signature(fx["signature"], ns)
    demos = Enum.map(fx["demos"], &values(&1, sig, ns))
    inputs = values(fx["inputs"], sig, ns)
    messages = adapter(fx["adapter"]).format(sig, demos, inputs, [])
    assert length(messages) == length(fx["messages"])

    for {a, e} <- Enum.zip(messages, fx["messages"]) do
      assert a.role == e["role"]
      assert a.content == e["content"]
    end
  end

  defp check(%{"kind" => "parse"} = fx, ns) do
    sig = signature(fx["signature"], ns)

    case {adapter(fx["adapter"]).parse(sig, fx["completion"]), fx["ok"]} do
      {{:ok, outputs}, true} ->
        for {k, v} <- fx["outputs"] do
          assert dump(Map.fetch!(outputs, String.to_existing_atom(k))) == result(v)
        end

      {{:error, %DSPex.Error{type: :adapter_parse}}, false} ->
        :ok

      {other, ok} ->
        flunk("expected ok=#{ok}, got #{inspect(other, limit: 8)}")
    end
  end

  defp check(%{"kind" => "tool"} = fx, ns) do
    tool =
      DSPex.Tool.new(fn invoice, copies -> {invoice, copies} end,
        name: "file_invoice",
        desc: "File an invoice.",
        args: [invoice: Module.concat(ns, fx["model"]), copies: [type: :integer, default: 1]]
      )

    assert DSPex.Tool.format(tool) == fx["text"]
  end

  defp check(%{"kind" => "image"} = fx, ns) do
    sig = signature(fx["signature"], ns)
    images = fx["images"]

    conv = fn m ->
      Map.new(m, fn {k, v} ->
        v =
          cond do
            k not in images -> v
            is_list(v) -> Enum.map(v, &DSPex.Image.new/1)
            true -> DSPex.Image.new(v)
          end

        {String.to_existing_atom(k), v}
      end)
    end

    messages =
      adapter(fx["adapter"]).format(sig, Enum.map(fx["demos"], conv), conv.(fx["inputs"]), [])

    assert length(messages) == length(fx["messages"])

    for {a, e} <- Enum.zip(messages, fx["messages"]) do
      assert a.role == e["role"]
      assert a.content == e["content"]
    end
  end

  # --- neutral descriptions -> DSPex terms ---------------------------------------------

  defp define_models(models, ns) do
    for {name, spec} <- models do
      mod = Module.concat(ns, name)

      unless Code.ensure_loaded?(mod) do
        fields =
          for f <- spec["fields"] do
            opts =
              Enum.map(f["constraints"] || %{}, fn {k, v} -> {String.to_atom(k), v} end) ++
                if(f["desc"], do: [desc: f["desc"]], else: []) ++
                if(Map.has_key?(f, "default"), do: [default: value(f["default"])], else: [])

            quote do
              field(
                unquote(String.to_atom(f["name"])),
                unquote(Macro.escape(ftype(f["type"], ns))),
                unquote(Macro.escape(opts))
              )
            end
          end

        body =
          quote do
            use DSPex.Schema, title: unquote(name), desc: unquote(spec["doc"])
            unquote_splicing(fields)
          end

        Module.create(mod, body, Macro.Env.location(__ENV__))
      end
    end
  end

  defp ftype(["model", name], ns), do: Module.concat(ns, name)
  defp ftype(["list", t], ns), do: {:list, ftype(t, ns)}
  defp ftype(["optional", t], ns), do: {:optional, ftype(t, ns)}
  defp ftype(["dict", k, v], ns), do: {:dict, ftype(k, ns), ftype(v, ns)}
  defp ftype(t, _ns), do: type(t)

  defp signature(%{"instructions" => instr, "inputs" => ins, "outputs" => outs}, ns) do
    field = fn f, kind ->
      Field.new(f["name"], kind, type: ftype(f["type"], ns), desc: f["desc"])
    end

    %Signature{
      instructions: instr,
      inputs: Enum.map(ins, &field.(&1, :input)),
      outputs: Enum.map(outs, &field.(&1, :output))
    }
  end

  # Input and demo values: a model's JSON becomes its struct.
  defp values(map, sig, _ns) do
    Map.new(map, fn {k, v} ->
      f = Signature.field(sig, String.to_existing_atom(k))
      {f.name, as_value(f.type, value(v))}
    end)
  end

  defp as_value(type, v) do
    {:ok, x} = DSPex.Tool.Args.validate(type, v)
    x
  end

  # A parsed value as pydantic's model_dump(mode="json").
  defp dump(%DateTime{} = d), do: d |> DateTime.to_iso8601() |> String.replace("+00:00", "Z")
  defp dump(%Date{} = d), do: Date.to_iso8601(d)

  defp dump(%mod{} = s) do
    if DSPex.Schema.schema?(mod),
      do: Map.new(mod.__schema__().fields, &{&1.key, dump(Map.get(s, &1.name))}),
      else: s
  end

  defp dump(m) when is_map(m), do: Map.new(m, fn {k, v} -> {k, dump(v)} end)
  defp dump(l) when is_list(l), do: Enum.map(l, &dump/1)
  defp dump(v), do: v
end
