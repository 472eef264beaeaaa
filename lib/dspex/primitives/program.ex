defmodule DSPex.Program do
  @moduledoc """
  Saving and loading program state in DSPy's JSON format (`module.save("x.json")` /
  `module.load("x.json")`), so a program optimized in Python DSPy can be served from
  Elixir and back.

  Like DSPy, the file holds *state*, not structure: for every named predictor
  (`DSPex.Module.named_predictors/1`: `"self"`, `"predict"`, `"answer.predict"`,
  `"programs[0].predict"`, ...) its `traces`, `train`, `demos`, `signature`
  (`instructions` and, per field in inputs-then-outputs order, `prefix` and
  `description`) and `lm`; plus `metadata.dependency_versions`. Loading applies a file
  to a program of the same shape built in code: field entries are matched to the
  existing signature's fields by position, as DSPy does.

      :ok = DSPex.Program.save(program, "rag.json")
      {:ok, program} = DSPex.Program.load(RAG.new(), "rag.json")

  ## LM state and safety

  A predictor's `%DSPex.LM{}` is saved with `DSPex.LM.dump_state/1` (no `api_key`,
  `api_base` or headers). On load, `api_base`, `base_url`, `api_key` and `model_list` in
  a file are ignored unless `allow_unsafe_lm_state: true`, and an `_dspy_lm_class`
  other than `dspy.clients.lm.LM` is refused (DSPy's rule): a file cannot redirect
  your requests or credentials to another host. Other LM values (e.g.
  `DSPex.LM.Scripted`) are saved as `null`.

  ## Metadata

  `metadata.dependency_versions` is `{"dspy": "3.3.1"}` — the DSPy release whose format
  DSPex writes. DSPy's loader looks every key of that object up in its own version table
  (an unknown key raises `KeyError`), so DSPex's version is stored next to it as
  `metadata.dspex_version`, which DSPy ignores.

  Loading is all-or-nothing: on any error the program is returned unchanged inside
  `{:error, %DSPex.Error{type: :load_state}}`.
  """

  alias DSPex.{Error, Predict, Signature}
  alias DSPex.Signature.Field

  @dspy_compat "3.3.1"
  @lm_class "dspy.clients.lm.LM"
  @unsafe_lm_keys ~w(api_base base_url api_key model_list)

  @doc """
  The state as an ordered JSON term (`{:ordered, [{key, value}]}`), DSPy's
  `dump_state()` plus `metadata`.
  """
  @spec dump_state(term) :: {:ordered, list}
  def dump_state(%Predict{} = p) do
    # DSPy writes a bare Predict's state at the top level (Predict.dump_state).
    {:ordered, pairs} = predictor_state(p)
    {:ordered, pairs ++ [{"metadata", metadata()}]}
  end

  def dump_state(program) do
    preds =
      for {name, p} <- DSPex.Module.named_predictors(program) do
        {name, predictor_state(p)}
      end

    {:ordered, preds ++ [{"metadata", metadata()}]}
  end

  defp metadata do
    {:ordered,
     [
       {"dependency_versions", {:ordered, [{"dspy", @dspy_compat}]}},
       {"dspex_version", dspex_version()}
     ]}
  end

  defp dspex_version do
    case Application.spec(:dspex, :vsn) do
      nil -> "0.1.0"
      v -> to_string(v)
    end
  end

  @doc false
  def predictor_state(%Predict{} = p) do
    sig = p.signature

    fields =
      for f <- sig.inputs ++ sig.outputs do
        # A keyword list, not {:ordered, _}: inside a list, DSPex.JSON reads a
        # `[{:ordered, pairs}]` as the keyword list `[ordered: pairs]`.
        [
          prefix: f.prefix || Field.infer_prefix(f.name) <> ":",
          description: f.desc || "${#{f.name}}"
        ]
      end

    {:ordered,
     [
       {"traces", jsonable(p.traces)},
       {"train", jsonable(p.train)},
       {"demos", Enum.map(Predict.normalize_demos(p.demos), &demo_state(&1, sig))},
       {"signature", {:ordered, [{"instructions", sig.instructions || ""}, {"fields", fields}]}},
       {"lm", lm_state(p.lm)}
     ]}
  end

  defp demo_state(demo, sig) do
    order = Enum.map(sig.inputs ++ sig.outputs, & &1.name)
    {aug, rest} = Map.split(demo, [:augmented, "augmented"])
    known = for k <- order, Map.has_key?(rest, k), do: k
    others = rest |> Map.keys() |> Kernel.--(known) |> Enum.sort_by(&to_string/1)

    head = for {_, v} <- aug, do: {"augmented", v}

    {:ordered,
     head ++ Enum.map(known ++ others, fn k -> {key(k), jsonable(Map.fetch!(rest, k))} end)}
  end

  @doc false
  # Converts any term to something DSPex.JSON encodes, like DSPy's serialize_object.
  def jsonable(v) when is_binary(v) or is_number(v) or is_boolean(v) or is_nil(v), do: v
  def jsonable(v) when is_atom(v), do: Atom.to_string(v)
  def jsonable(%DSPex.Example{fields: f}), do: jsonable(f)
  def jsonable(%DSPex.Prediction{} = p), do: jsonable(DSPex.Prediction.fields(p))
  def jsonable(%_{} = s), do: s |> Map.from_struct() |> jsonable()

  def jsonable({:ordered, pairs}),
    do: {:ordered, Enum.map(pairs, fn {k, v} -> {to_string(k), jsonable(v)} end)}

  def jsonable(m) when is_map(m), do: Map.new(m, fn {k, v} -> {key(k), jsonable(v)} end)
  def jsonable(l) when is_list(l), do: Enum.map(l, &jsonable/1)
  def jsonable(t) when is_tuple(t), do: t |> Tuple.to_list() |> jsonable()
  def jsonable(other), do: inspect(other)

  defp key(k) when is_binary(k), do: k
  defp key(k) when is_atom(k), do: Atom.to_string(k)
  defp key(k), do: inspect(k)

  defp lm_state(%DSPex.LM{} = lm), do: lm |> DSPex.LM.dump_state() |> order_lm_state()
  defp lm_state(_), do: nil

  # DSPy's key order: class, model, model_type, cache, num_retries, kwargs...,
  # finetuning_model, launch_kwargs, train_kwargs.
  defp order_lm_state(state) do
    # dspy.LM always keeps `temperature` and `max_tokens` in its kwargs (None when
    # unset), so its dump_state has them: write them too, for identical state.
    state = state |> Map.put_new("temperature", nil) |> Map.put_new("max_tokens", nil)
    head = ~w(_dspy_lm_class model model_type cache num_retries temperature max_tokens)
    tail = ~w(finetuning_model launch_kwargs train_kwargs)
    middle = state |> Map.keys() |> Kernel.--(head ++ tail) |> Enum.sort()

    {:ordered,
     for k <- head ++ middle ++ tail, Map.has_key?(state, k) do
       {k, jsonable(Map.fetch!(state, k))}
     end}
  end

  @doc """
  Writes the program's state to `path` as pretty JSON (two-space indent, trailing
  newline, like DSPy's orjson options). Returns `:ok` or `{:error, %DSPex.Error{}}`.
  """
  @spec save(term, Path.t()) :: :ok | {:error, Error.t()}
  def save(program, path) do
    with {:ok, json} <- DSPex.JSON.encode(dump_state(program), pretty: true) do
      case File.write(path, [json, "\n"]) do
        :ok ->
          :ok

        {:error, reason} ->
          {:error,
           Error.new(:io, "cannot write #{path}: #{:file.format_error(reason)}", %{reason: reason})}
      end
    end
  end

  @doc """
  Reads a state file saved by DSPex or DSPy and applies it to `program` (built in code
  with the same shape). Options: `allow_unsafe_lm_state` (default `false`), `lm_opts`
  (extra options for rebuilt LMs, e.g. `api_key:`).
  """
  @spec load(term, Path.t(), keyword) :: {:ok, term} | {:error, Error.t()}
  def load(program, path, opts \\ []) do
    with {:ok, bin} <- read(path),
         {:ok, state} <- decode_ordered(bin) do
      load_state(program, state, opts)
    end
  end

  # JSON objects as {:ordered, pairs} in the file's order (nif_json.c decode flag), so a
  # dict inside a demo value keeps its order (DSPy's json.loads keeps it, and the prompt
  # shows it); everything else becomes maps again (see unordered/1, demo_value/1).
  @ordered_objects 16
  @max_depth 512
  defp decode_ordered(bin) do
    case DSPex.NIF.guard(fn -> DSPex.NIF.json_decode(bin, {@ordered_objects, @max_depth}) end) do
      {:ok, state} -> {:ok, unordered(state, 2)}
      {:error, err} -> {:error, DSPex.NIF.wrap_error(err, :offset)}
    end
  end

  # Maps down to `depth` object levels (the file's top level and the predictor entries);
  # below that, predictor entries convert their own parts (load_predictor/3).
  defp unordered({:ordered, pairs}, depth) when depth > 0,
    do: Map.new(pairs, fn {k, v} -> {k, unordered(v, depth - 1)} end)

  defp unordered({:ordered, _} = v, 0), do: v
  defp unordered(v, _depth), do: v

  # Fully converted to maps and lists.
  defp plain_json({:ordered, pairs}), do: Map.new(pairs, fn {k, v} -> {k, plain_json(v)} end)
  defp plain_json(%{} = m), do: Map.new(m, fn {k, v} -> {k, plain_json(v)} end)
  defp plain_json(l) when is_list(l), do: Enum.map(l, &plain_json/1)
  defp plain_json(v), do: v

  # A demo value: a map where the map's own order is the file's, else {:ordered, pairs}
  # (rendered and saved in that order).
  defp demo_value({:ordered, pairs}) do
    pairs = Enum.map(pairs, fn {k, v} -> {k, demo_value(v)} end)
    map = Map.new(pairs)
    if Map.keys(map) == Enum.map(pairs, &elem(&1, 0)), do: map, else: {:ordered, pairs}
  end

  defp demo_value(l) when is_list(l), do: Enum.map(l, &demo_value/1)
  defp demo_value(v), do: v

  @doc "Like `load/3` but returns the program or raises."
  @spec load!(term, Path.t(), keyword) :: term
  def load!(program, path, opts \\ []) do
    case load(program, path, opts) do
      {:ok, p} -> p
      {:error, e} -> raise e
    end
  end

  defp read(path) do
    case File.read(path) do
      {:ok, bin} ->
        {:ok, bin}

      {:error, reason} ->
        {:error,
         Error.new(:io, "cannot read #{path}: #{:file.format_error(reason)}", %{reason: reason})}
    end
  end

  @doc """
  Applies a decoded state map (binary keys) to `program`. Every named predictor must
  have an entry.
  """
  @spec load_state(term, map, keyword) :: {:ok, term} | {:error, Error.t()}
  def load_state(program, state, opts \\ [])

  def load_state(%Predict{} = p, state, opts) when is_map(state) do
    entry = if Map.has_key?(state, "signature"), do: state, else: Map.get(state, "self")

    if is_map(entry) do
      try do
        {:ok, load_predictor(p, entry, opts)}
      catch
        {:load_error, msg, details} -> {:error, Error.new(:load_state, msg, details)}
      end
    else
      {:error, Error.new(:load_state, "the state is not a Predict state (no \"signature\")", %{})}
    end
  end

  def load_state(program, state, opts) when is_map(state) do
    names = Enum.map(DSPex.Module.named_predictors(program), &elem(&1, 0))

    case Enum.reject(names, &Map.has_key?(state, &1)) do
      [] ->
        try do
          {:ok,
           DSPex.Module.map_predictors(program, fn name, p ->
             load_predictor(p, Map.fetch!(state, name), opts)
           end)}
        catch
          {:load_error, msg, details} -> {:error, Error.new(:load_state, msg, details)}
        end

      missing ->
        {:error,
         Error.new(
           :load_state,
           "the state has no entry for predictors #{inspect(missing)} (it has #{inspect(Map.keys(state) -- ["metadata"])})",
           %{missing: missing}
         )}
    end
  end

  defp load_predictor(%Predict{} = p, {:ordered, _} = s, opts),
    do: load_predictor(p, unordered(s, 1), opts)

  defp load_predictor(%Predict{} = p, s, opts) when is_map(s) do
    sig =
      load_signature(
        p.signature,
        plain_json(Map.get(s, "signature") || fail("predictor #{p.name}: no signature", %{}))
      )

    %{
      p
      | signature: sig,
        traces: plain_json(Map.get(s, "traces") || []),
        train: plain_json(Map.get(s, "train") || []),
        demos: Enum.map(Map.get(s, "demos") || [], &load_demo(&1, sig)),
        lm: load_lm(plain_json(Map.get(s, "lm")), opts, p.name)
    }
  end

  defp load_predictor(p, _s, _opts),
    do: fail("predictor #{p.name}: its state is not an object", %{})

  defp load_signature(sig, %{"fields" => fields} = s) when is_list(fields) do
    all = sig.inputs ++ sig.outputs

    updated =
      all
      |> Enum.with_index()
      |> Enum.map(fn {%Field{} = f, i} ->
        case Enum.at(fields, i) do
          %{} = saved ->
            desc =
              case Map.get(saved, "description") do
                nil -> f.desc
                d -> if d == "${#{f.name}}", do: nil, else: d
              end

            %{f | prefix: Map.get(saved, "prefix", f.prefix), desc: desc}

          _ ->
            f
        end
      end)

    {ins, outs} = Enum.split(updated, length(sig.inputs))

    # DSPy's Signature.load_state sets the instructions as written; reading them back
    # applies inspect.cleandoc (the metaclass property), and no default is filled in.
    instructions =
      case Map.get(s, "instructions") do
        text when is_binary(text) -> Signature.cleandoc(text)
        nil -> sig.instructions
        other -> fail("signature instructions must be a string, got: #{inspect(other)}", %{})
      end

    Signature.compile(%{sig | inputs: ins, outputs: outs, instructions: instructions})
  end

  defp load_signature(_sig, _), do: fail("signature state has no fields list", %{})

  defp load_demo({:ordered, pairs}, sig), do: load_demo(Map.new(pairs), sig)

  # Keys: the signature's field atoms, :augmented, other names only as existing atoms
  # (else kept as strings: a file never creates atoms).
  defp load_demo(demo, sig) when is_map(demo) do
    names = Map.new(sig.inputs ++ sig.outputs, &{Atom.to_string(&1.name), &1.name})

    Map.new(demo, fn {k, v} ->
      v = demo_value(v)

      cond do
        Map.has_key?(names, k) -> {names[k], v}
        k == "augmented" -> {:augmented, v}
        true -> {existing_atom(k), v}
      end
    end)
  end

  defp load_demo(other, _), do: fail("a demo is not an object: #{inspect(other)}", %{})

  defp existing_atom(k) do
    String.to_existing_atom(k)
  rescue
    ArgumentError -> k
  end

  defp load_lm(nil, _opts, _name), do: nil

  defp load_lm(%{} = state, opts, name) do
    unsafe = Keyword.get(opts, :allow_unsafe_lm_state, false)
    class = Map.get(state, "_dspy_lm_class", @lm_class)

    if class != @lm_class and not unsafe do
      fail(
        "predictor #{name}: refusing LM class #{inspect(class)} (only #{@lm_class}); pass allow_unsafe_lm_state: true for trusted files",
        %{class: class}
      )
    end

    extra =
      if unsafe do
        for {k, opt} <- [{"api_base", :api_base}, {"base_url", :api_base}, {"api_key", :api_key}],
            state[k] != nil do
          {opt, state[k]}
        end
      else
        []
      end

    state = Map.drop(state, @unsafe_lm_keys)

    try do
      DSPex.LM.load_state(state, Keyword.merge(extra, Keyword.get(opts, :lm_opts, [])))
    rescue
      e -> fail("predictor #{name}: cannot rebuild its LM: #{Exception.message(e)}", %{})
    end
  end

  defp load_lm(other, _opts, name),
    do: fail("predictor #{name}: bad lm state #{inspect(other)}", %{})

  defp fail(msg, details), do: throw({:load_error, msg, details})
end
