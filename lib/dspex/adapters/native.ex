defmodule DSPex.Adapter.Native do
  @moduledoc false
  # Shared plumbing of DSPex.Adapter.Chat and DSPex.Adapter.JSON: argument
  # normalization, the NIF calls on compiled signatures (c_src/nif/nif_adapter.c),
  # plain data in and out, and telemetry spans.
  #
  # The NIF takes plain tagged data (c_src/nif/nif_terms.h). It answers :stale when the
  # signature is not compiled as it is now (then it is compiled and the call repeated)
  # and :plain when a value holds a struct (then the values are converted with plain/1
  # and the call repeated); the common case crosses once.

  alias DSPex.{Error, NIF, Signature, Telemetry}

  @spec format(module, :chat | :json, term, list, term) :: [DSPex.Adapter.message()]
  def format(module, kind, signature, demos, inputs) do
    sig = resolve(signature)
    demos = Enum.map(List.wrap(demos), &fields/1)
    inputs = fields(inputs)
    meta = meta(module, sig)

    Telemetry.span([:dspex, :adapter, :format], meta, fn ->
      format = fn ref, key, {d, i} -> NIF.adapter_format(kind, ref, key, d, i) end

      messages =
        case call_plain(sig, {demos, inputs}, format) do
          {{:ok, messages}, false} ->
            messages

          # values holding structs went through plain/1 — images among them, whose
          # markers make the user turns content parts (DSPy's marker expansion)
          {{:ok, messages}, true} ->
            DSPex.Image.expand_messages(messages)
        end

      {messages, meta}
    end)
  end

  @spec format_assistant(:chat | :json, term, term, binary | nil) :: binary
  def format_assistant(kind, signature, outputs, missing) do
    sig = resolve(signature)

    {:ok, text} =
      call(sig, fields(outputs), fn ref, key, o ->
        NIF.adapter_format_assistant(kind, ref, key, o, missing)
      end)

    text
  end

  @spec format_user(:chat | :json, term, term) :: binary
  def format_user(kind, signature, inputs) do
    sig = resolve(signature)

    {:ok, text} =
      call(sig, fields(inputs), fn ref, key, i -> NIF.adapter_format_user(kind, ref, key, i) end)

    text
  end

  @spec parse(module, :chat | :json, term, binary, keyword) :: {:ok, map} | {:error, Error.t()}
  def parse(module, kind, signature, text, opts \\ [])

  def parse(module, kind, signature, text, opts) when is_binary(text) do
    sig = resolve(signature)
    meta = meta(module, sig)
    ordered = Keyword.get(opts, :ordered_dicts, false) == true

    Telemetry.span([:dspex, :adapter, :parse], meta, fn ->
      result =
        case call(sig, text, fn ref, key, t -> NIF.adapter_parse(kind, ref, key, t, ordered) end) do
          {:ok, map} ->
            {:ok, cast_outputs(sig, map)}

          {:ok_tagged, map} ->
            {:ok, cast_outputs(sig, Map.new(map, fn {k, v} -> {k, from_tagged(v)} end))}

          {:error, {type, message, {response, missing, found, bad}}} ->
            details = %{
              adapter: kind,
              lm_response: response,
              missing: missing,
              found: found,
              errors: Map.new(bad),
              signature: sig
            }

            {:error, Error.new(type, message, details)}
        end

      {result, Map.put(meta, :ok, match?({:ok, _}, result))}
    end)
  end

  def parse(_module, _kind, _signature, other, _opts) do
    raise ArgumentError, "completion text must be a binary, got: #{inspect(other)}"
  end

  @spec parse!(module, :chat | :json, term, binary) :: map
  def parse!(module, kind, signature, text) do
    case parse(module, kind, signature, text) do
      {:ok, fields} -> fields
      {:error, err} -> raise err
    end
  end

  @doc false
  # DSPy's parse_value(text, type) for one type term: {:ok, value} | {:error, %Error{}}.
  @spec parse_value(term, binary) :: {:ok, term} | {:error, Error.t()}
  def parse_value(type, text) when is_binary(text) do
    case NIF.guard(fn -> NIF.adapter_parse_value(DSPex.Schema.expand(type), text) end) do
      {:ok, v} -> {:ok, cast(type, v)}
      {:ok_tagged, v} -> {:ok, cast(type, from_tagged(v))}
      {:error, triple} -> {:error, NIF.wrap_error(triple)}
    end
  end

  defp cast_outputs(sig, map) do
    Enum.reduce(sig.outputs, map, fn %{name: name, type: type}, acc ->
      case acc do
        %{^name => v} -> %{acc | name => cast(type, v)}
        _ -> acc
      end
    end)
  end

  @doc false
  # A validated value (plain data from C) as the Elixir value of its type: dspy.ToolCalls
  # as %DSPex.ToolCalls{}, a schema's dict as its struct (DSPex.Schema), inside lists,
  # dicts and optionals too.
  @spec cast(term, term) :: term
  def cast(_type, nil), do: nil
  def cast(:tool_calls, %{} = v), do: DSPex.ToolCalls.new!(v)

  def cast(module, %{} = v) when is_atom(module) and not is_struct(v) do
    if DSPex.Schema.schema?(module), do: DSPex.Schema.to_struct(module, v), else: v
  end

  def cast({:optional, t}, v), do: cast(t, v)
  def cast({:list, t}, v) when is_list(v), do: Enum.map(v, &cast(t, &1))
  def cast({:dict, _k, t}, %{} = v), do: Map.new(v, fn {k, x} -> {k, cast(t, x)} end)
  def cast(_type, v), do: v

  @doc false
  # One NIF call on the compiled signature, compiling it when it is stale (or was never
  # compiled) and converting the values when they hold structs, at most once each. Also
  # used by DSPex.Local.Grammar (the adapters' output grammars).
  def call(sig, args, fun), do: sig |> call_plain(args, fun) |> elem(0)

  # {result, whether the values went through plain/1}
  defp call_plain(sig, args, fun) do
    key = Signature.compile_key(sig)
    call(sig, key, sig.compiled || 0, args, fun, 2, false)
  end

  defp call(sig, key, id, args, fun, tries, plained) do
    case NIF.guard(fn -> fun.(id, key, args) end) do
      :stale when tries > 0 ->
        call(sig, key, Signature.compile_id(sig, key), args, fun, tries - 1, plained)

      :plain when tries > 0 ->
        call(sig, key, id, plain_args(args), fun, tries - 1, true)

      result ->
        {result, plained}
    end
  end

  defp plain_args({demos, inputs}), do: {Enum.map(demos, &plain/1), plain(inputs)}
  defp plain_args(text) when is_binary(text), do: text
  defp plain_args(values), do: plain(values)

  @doc false
  # A value as plain tagged data (c_src/nif/nif_terms.h): structs become what Python
  # would see (a set, a History, a datetime, a dict of the struct's fields).
  @spec plain(term) :: term
  def plain(%MapSet{} = s), do: {:__dspex__, :set, Enum.map(s, &plain/1)}
  def plain(%DSPex.History{messages: m}), do: {:__dspex__, :history, Enum.map(m, &plain/1)}
  def plain(%Date{} = d), do: {:__dspex__, :date, Date.to_iso8601(d)}
  def plain(%NaiveDateTime{} = d), do: {:__dspex__, :datetime, iso(d, "")}

  def plain(%DateTime{} = d) do
    offset = d.utc_offset + d.std_offset
    zone = if offset == 0, do: "Z", else: utc_offset(offset)
    {:__dspex__, :datetime, iso(DateTime.to_naive(d), zone)}
  end

  def plain(%DSPex.Tool{} = t), do: DSPex.Tool.format(t)
  def plain(%DSPex.Image{} = img), do: DSPex.Image.marker(img)

  def plain(%DSPex.ToolCalls{tool_calls: calls}) do
    # ToolCalls.format(): {"tool_calls": [{"name": ..., "args": ...}]}, in that key order
    {:ordered,
     [{"tool_calls", Enum.map(calls, &{:ordered, [{"name", &1.name}, {"args", plain(&1.args)}]})}]}
  end

  def plain(%mod{} = s) do
    if DSPex.Schema.schema?(mod), do: DSPex.Schema.plain(s), else: s |> fields() |> plain()
  end

  def plain(m) when is_map(m), do: Map.new(m, fn {k, v} -> {plain(k), plain(v)} end)

  def plain({:ordered, pairs}) when is_list(pairs) do
    {:ordered,
     Enum.map(pairs, fn
       {k, v} -> {plain(k), plain(v)}
       other -> other
     end)}
  end

  def plain(t) when is_tuple(t), do: t |> Tuple.to_list() |> Enum.map(&plain/1) |> List.to_tuple()
  def plain(l) when is_list(l), do: plain_list(l)
  def plain(other), do: other

  # an improper list stays improper (the NIF names it)
  defp plain_list([h | t]), do: [plain(h) | plain_list(t)]
  defp plain_list(other), do: other

  # pydantic's JSON form of a datetime: seconds always, microseconds when not zero.
  defp iso(%NaiveDateTime{} = d, zone) do
    d = %{d | microsecond: {elem(d.microsecond, 0), 6}}
    base = d |> NaiveDateTime.truncate(:second) |> NaiveDateTime.to_iso8601()
    frac = if elem(d.microsecond, 0) == 0, do: "", else: "." <> pad6(elem(d.microsecond, 0))
    base <> frac <> zone
  end

  defp pad6(us), do: us |> Integer.to_string() |> String.pad_leading(6, "0")

  defp utc_offset(seconds) do
    sign = if seconds < 0, do: "-", else: "+"
    s = abs(seconds)
    pad = &(&1 |> Integer.to_string() |> String.pad_leading(2, "0"))
    sign <> pad.(div(s, 3600)) <> ":" <> pad.(rem(div(s, 60), 60))
  end

  @doc false
  # Parse results back from plain tagged data: sets and frozensets as MapSet, datetimes
  # as NaiveDateTime (naive) or DateTime (aware, in UTC), dates as Date.
  @spec from_tagged(term) :: term
  def from_tagged({:__dspex__, tag, items}) when tag in [:set, :frozenset],
    do: MapSet.new(items, &from_tagged/1)

  def from_tagged({:__dspex__, :date, iso}), do: Date.from_iso8601!(iso)

  def from_tagged({:__dspex__, :datetime, iso}) do
    case DateTime.from_iso8601(iso) do
      {:ok, dt, _offset} -> dt
      {:error, _} -> NaiveDateTime.from_iso8601!(iso)
    end
  end

  def from_tagged(%_{} = struct), do: struct

  def from_tagged(m) when is_map(m),
    do: Map.new(m, fn {k, v} -> {from_tagged(k), from_tagged(v)} end)

  def from_tagged(l) when is_list(l), do: Enum.map(l, &from_tagged/1)

  def from_tagged(t) when is_tuple(t),
    do: t |> Tuple.to_list() |> Enum.map(&from_tagged/1) |> List.to_tuple()

  def from_tagged(other), do: other

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

  # the signature string only when a handler can see it (a per-call cost otherwise)
  defp meta(module, sig) do
    if Telemetry.enabled?(),
      do: %{adapter: module, signature: Signature.signature_string(sig)},
      else: %{adapter: module}
  end
end
