defmodule DSPex.Predict do
  @moduledoc """
  The basic predictor, like `dspy.Predict`: one signature, its demos, an optional LM
  and adapter, and request config.

      iex> lm = DSPex.LM.Scripted.new([%{answer: "Paris"}])
      iex> qa = DSPex.Predict.new("question -> answer", lm: lm)
      iex> {:ok, pred} = DSPex.call(qa, question: "What is the capital of France?")
      iex> pred.answer
      "Paris"

  A call formats the prompt with the adapter (`DSPex.Adapter.Chat` unless configured),
  sends it to the LM through `DSPex.BaseLM` (which records usage and the call history,
  `DSPex.inspect_history/1`), parses every choice, appends `{name, inputs, outputs}` to
  the active trace (`DSPex.Trace`) and returns `{:ok, %DSPex.Prediction{}}`.

  Options of `new/2` are listed there; per-call options of `DSPex.call/3` at `call/3`.
  With `n > 1` and a temperature unset or ≤ 0.15, temperature is forced to 0.7 (as DSPy
  does); every choice is parsed and `pred.completions` holds the ones that parsed (a
  choice that does not parse is dropped; only when none parses is the call re-asked or
  failed).

  When the reply cannot be parsed, the predictor re-asks the LM (`max_parse_retries`
  times) with its bad reply and a follow-up user message built from the parse error's
  data — which output fields were expected, which were parsed, which are missing — and
  the expected output format (instead of DSPy's silent JSON fallback, issue #1932);
  `json_fallback: true` then tries once more with `DSPex.Adapter.JSON`.

  `hint` (a field, not an option) holds advice from `DSPex.Refine`: when it is a
  string, the call gets DSPy's extra input field `hint_` ("A hint to the module from an
  earlier run").

  Each LM attempt runs in a `[:dspex, :predict]` telemetry span (metadata:
  `predictor`, `signature`, `adapter`, `lm`, `attempt`; stop adds `usage`,
  `parse_status`) and appears in the call history with its `attempt` number.

  Missing inputs are an error (`:missing_inputs`); inputs typed `{:optional, _}` may be
  omitted. Inputs not in the signature are ignored.
  """

  alias DSPex.{Error, Prediction, Settings}

  @type t :: %__MODULE__{
          signature: DSPex.Signature.t(),
          demos: [map],
          lm: struct | nil,
          adapter: module | nil,
          config: map,
          name: binary,
          traces: list,
          train: list,
          max_parse_retries: non_neg_integer,
          json_fallback: boolean,
          use_native_function_calling: boolean | nil,
          hint: binary | nil
        }

  defstruct signature: nil,
            demos: [],
            lm: nil,
            adapter: nil,
            config: %{},
            name: "self",
            traces: [],
            train: [],
            max_parse_retries: 1,
            json_fallback: false,
            use_native_function_calling: nil,
            hint: nil

  @own_options DSPex.Options.schema!(
                 demos: [
                   type: :list,
                   default: [],
                   doc:
                     "Few-shot examples: maps with atom keys, keyword lists or `%DSPex.Example{}`."
                 ],
                 lm: [
                   type: {:or, [:struct, :atom, nil]},
                   doc:
                     "The LM (or the name of one in `config :dspex, lms:`); else the configured one (`DSPex.configure(lm: ...)`)."
                 ],
                 adapter: [
                   type: {:or, [:module, nil]},
                   doc: "The adapter; else the configured one, else `DSPex.Adapter.Chat`."
                 ],
                 config: [
                   type: {:or, [:map, :keyword]},
                   default: %{},
                   doc:
                     "Request params, sent as given (DSPy's `**config`); the ones below may also be given directly."
                 ],
                 name: [
                   type: :string,
                   default: "self",
                   doc: "The predictor's name (`DSPex.Module` sets it to its path)."
                 ],
                 max_parse_retries: [
                   type: :non_neg_integer,
                   default: 1,
                   doc: "Re-asks after an unparseable reply."
                 ],
                 json_fallback: [
                   type: :boolean,
                   default: false,
                   doc: "After the re-asks, one more try with `DSPex.Adapter.JSON`."
                 ],
                 use_native_function_calling: [
                   type: {:or, [:boolean, nil]},
                   doc:
                     "Send `tools`-typed inputs as the provider's native tools and read `tool_calls` outputs from its tool calls (default: the adapter's choice, as in DSPy: no for Chat, yes for JSON). See `DSPex.Adapter.plan/6`."
                 ]
               )

  @options @own_options ++ DSPex.BaseLM.params_schema()
  @param_keys DSPex.Options.keys(DSPex.BaseLM.params_schema())

  @call_options DSPex.Options.schema!(
                  lm: [
                    type: {:or, [:struct, :atom, nil]},
                    doc: "The LM (or its name) for this call."
                  ],
                  adapter: [type: {:or, [:module, nil]}, doc: "The adapter for this call."],
                  config: [
                    type: {:or, [:map, :keyword]},
                    doc: "Request params merged over the predictor's."
                  ],
                  demos: [type: :list, doc: "Demos instead of the predictor's."],
                  signature: [type: :any, doc: "Another signature for this call."],
                  use_native_function_calling: [
                    type: {:or, [:boolean, nil]},
                    doc: "Native function calling for this call (see `new/2`)."
                  ],
                  ordered_dicts: [
                    type: :boolean,
                    doc:
                      "Dict outputs as `{:ordered, [{key, value}]}` in the LM's key order (`DSPex.ReAct`)."
                  ]
                )

  # Options of the LM's connection: a predictor has no use for them, and they must not
  # travel in its request params (which appear in the call history).
  @lm_only DSPex.Options.keys(DSPex.LM.options_schema()) -- @param_keys
  @lm_only_strings Enum.map(@lm_only, &Atom.to_string/1)

  @default_adapter DSPex.Adapter.Chat
  @json_adapter DSPex.Adapter.JSON

  @doc """
  Builds a predictor from a signature string, a `%DSPex.Signature{}` or a module that
  `use DSPex.Signature`.

  ## Options

  #{DSPex.Options.docs(@options)}

  LM connection options (`api_key`, `api_base`, `headers`, ...) are refused with an
  `ArgumentError`: give them to `DSPex.LM.new/2` and pass the LM as `lm:`.

  ## Examples

      iex> qa = DSPex.Predict.new("question -> answer", temperature: 0.2)
      iex> {qa.name, qa.config}
      {"self", %{temperature: 0.2}}
      iex> DSPex.Predict.new("question -> answer", api_key: "sk-1")
      ** (ArgumentError) :api_key is an option of DSPex.LM.new/2, not of DSPex.Predict.new/2: build the LM with it and pass it as lm: DSPex.LM.new(model, api_key: ...)
  """
  @spec new(DSPex.Signature.t() | binary | module, keyword) :: t
  def new(signature, opts \\ []) when is_list(opts) do
    refuse_lm_options!(opts, "DSPex.Predict.new/2")
    opts = DSPex.Options.validate!(opts, @options, "DSPex.Predict.new/2")
    sig = resolve_signature(signature)
    check_reserved!(sig)

    %__MODULE__{
      signature: sig,
      demos: normalize_demos(opts[:demos]),
      lm: opts[:lm],
      adapter: opts[:adapter],
      config: Map.merge(Map.new(Keyword.take(opts, @param_keys)), Map.new(opts[:config])),
      name: opts[:name],
      max_parse_retries: opts[:max_parse_retries],
      json_fallback: opts[:json_fallback],
      use_native_function_calling: opts[:use_native_function_calling]
    }
  end

  @doc """
  The option schema of `new/2` (`DSPex.Options`), for modules that wrap a predictor.
  """
  @spec options_schema() :: DSPex.Options.schema()
  def options_schema, do: @options

  @doc false
  # LM connection options (keys of `opts` or of a `config:` map) raise, naming the key
  # only: their values are credentials.
  def refuse_lm_options!(opts, context) do
    config = if is_list(opts), do: Keyword.get(opts, :config, %{}), else: %{}

    config_keys =
      if is_map(config) or Keyword.keyword?(config), do: Enum.map(config, &elem(&1, 0)), else: []

    keys = if(is_list(opts), do: Enum.map(opts, &option_key/1), else: []) ++ config_keys

    case Enum.find(keys, &(&1 in @lm_only or &1 in @lm_only_strings)) do
      nil ->
        :ok

      key ->
        raise ArgumentError,
              "#{inspect(key)} is an option of DSPex.LM.new/2, not of #{context}: build the LM " <>
                "with it and pass it as lm: DSPex.LM.new(model, #{key}: ...)"
    end
  end

  defp option_key({k, _}), do: k
  defp option_key(_), do: nil

  @doc false
  @spec resolve_signature(term) :: DSPex.Signature.t()
  def resolve_signature(%DSPex.Signature{} = sig), do: sig
  def resolve_signature(other), do: DSPex.Signature.resolve!(other)

  defp check_reserved!(sig) do
    bad = for f <- sig.outputs, f.name in Prediction.reserved_keys(), do: f.name

    if bad != [] do
      raise ArgumentError,
            "output field names #{inspect(bad)} are reserved by DSPex.Prediction; rename them"
    end
  end

  @doc false
  def normalize_demos(demos) when is_list(demos) do
    Enum.map(demos, fn
      %DSPex.Example{fields: f} -> f
      %Prediction{} = p -> Prediction.fields(p)
      m when is_map(m) -> m
      kw when is_list(kw) -> Map.new(kw)
    end)
  end

  @doc """
  Renders the messages this predictor would send for `inputs`, without calling an LM
  (DSPy issue #7830). Takes the per-call options of `call/3`. Returns `{:ok, messages}`
  or `{:error, %DSPex.Error{}}`.

  ## Examples

      iex> qa = DSPex.Predict.new("question -> answer")
      iex> {:ok, [system, user]} = DSPex.Predict.format(qa, question: "Capital of France?")
      iex> {system.role, user.content =~ "Capital of France?"}
      {"system", true}
  """
  @spec format(t, map | keyword, keyword) :: {:ok, [map]} | {:error, Error.t()}
  def format(%__MODULE__{} = p, inputs, opts \\ []) do
    opts = DSPex.Options.validate!(opts, @call_options, "DSPex.Predict.format/3")
    sig = call_signature(p, opts)
    inputs = normalize_inputs(sig, inputs)

    with :ok <- check_inputs(sig, inputs) do
      {sig, inputs} = apply_hint(p.hint, sig, inputs)
      adapter = opts[:adapter] || p.adapter || Settings.get(:adapter) || @default_adapter
      demos = normalize_demos(Keyword.get(opts, :demos, p.demos))
      lm = opts[:lm] || p.lm || Settings.get(:lm)
      call_inputs = sig_inputs(sig, inputs)
      plan = plan(adapter, lm, sig, call_inputs, request_params(p, opts), p, opts)
      {:ok, adapter.format(plan.render, demos, call_inputs, [])}
    end
  end

  @doc """
  Runs the predictor. Prefer `DSPex.call/3`.

  ## Per-call options

  #{DSPex.Options.docs(@call_options)}

  ## Examples

      iex> lm = DSPex.LM.Scripted.new([%{answer: "Paris"}])
      iex> qa = DSPex.Predict.new("question -> answer", lm: lm)
      iex> {:ok, pred} = DSPex.Predict.call(qa, question: "Capital of France?")
      iex> pred.answer
      "Paris"
  """
  @spec call(t, map | keyword, keyword) :: {:ok, Prediction.t()} | {:error, Error.t()}
  def call(%__MODULE__{} = p, inputs, opts \\ []) do
    opts = DSPex.Options.validate!(opts, @call_options, "DSPex.Predict.call/3")
    refuse_lm_options!([config: opts[:config] || %{}], "the config: of DSPex.call/3")
    sig = call_signature(p, opts)
    inputs = normalize_inputs(sig, inputs)

    with :ok <- check_inputs(sig, inputs),
         {:ok, lm} <- resolve_lm(p, opts) do
      {sig, inputs} = apply_hint(p.hint, sig, inputs)
      adapter = opts[:adapter] || p.adapter || Settings.get(:adapter) || @default_adapter
      demos = normalize_demos(Keyword.get(opts, :demos, p.demos))
      params = request_params(p, opts)
      call_inputs = sig_inputs(sig, inputs)
      plan = plan(adapter, lm, sig, call_inputs, params, p, opts)

      state = %{
        predict: p,
        sig: sig,
        lm: lm,
        params: params,
        plan: plan,
        opts: opts,
        demos: demos,
        inputs: call_inputs,
        usage: %{}
      }

      messages = adapter.format(plan.render, demos, call_inputs, [])

      case run_attempts(state, adapter, messages, 1, p.max_parse_retries) do
        {:ok, completions, state} ->
          order = Enum.map(sig.outputs, & &1.name)
          pred = Prediction.from_completions(completions, order: order, lm_usage: state.usage)
          DSPex.Trace.record(p.name, inputs, Prediction.fields(pred))
          {:ok, pred}

        {:error, _} = err ->
          err
      end
    end
  end

  # DSPex.Adapter.plan/6 for this call: native tool calls, parse options.
  defp plan(adapter, lm, sig, inputs, params, p, opts) do
    native = Keyword.get(opts, :use_native_function_calling, p.use_native_function_calling)

    DSPex.Adapter.plan(adapter, lm, sig, inputs, params,
      native: native,
      ordered_dicts: Keyword.get(opts, :ordered_dicts, false)
    )
  end

  defp call_signature(p, opts) do
    case Keyword.get(opts, :signature) do
      nil -> p.signature
      s -> resolve_signature(s)
    end
  end

  defp resolve_lm(p, opts) do
    case opts[:lm] || p.lm || Settings.get(:lm) do
      nil ->
        {:error,
         Error.new(
           :no_lm,
           "no LM configured for predictor #{inspect(p.name)}: call DSPex.configure(lm: ...) " <>
             "or pass lm: to the predictor or the call",
           %{predictor: p.name}
         )}

      lm ->
        {:ok, lm}
    end
  end

  defp request_params(p, opts) do
    config =
      Settings.get(:lm_params, %{})
      |> Map.new()
      |> Map.merge(p.config)
      |> Map.merge(Map.new(Keyword.get(opts, :config, %{})))

    n = Map.get(config, :n, 1)
    t = Map.get(config, :temperature)

    if is_integer(n) and n > 1 and (is_nil(t) or t <= 0.15),
      do: Map.put(config, :temperature, 0.7),
      else: config
  end

  @doc false
  # Inputs as a map keyed like the signature's fields (atoms); binary keys that name a
  # field are converted.
  def normalize_inputs(sig, inputs) when is_list(inputs),
    do: normalize_inputs(sig, Map.new(inputs))

  def normalize_inputs(_sig, %DSPex.Example{} = ex) do
    if ex.input_keys, do: DSPex.Example.inputs(ex), else: ex.fields
  end

  def normalize_inputs(sig, inputs) when is_map(inputs) do
    names = Map.new(sig.inputs ++ sig.outputs, &{Atom.to_string(&1.name), &1.name})

    Map.new(inputs, fn
      {k, v} when is_binary(k) -> {Map.get(names, k, k), v}
      kv -> kv
    end)
  end

  defp check_inputs(sig, inputs) do
    missing =
      for f <- sig.inputs,
          not Map.has_key?(inputs, f.name),
          not optional_type?(f.type),
          do: f.name

    case missing do
      [] ->
        :ok

      _ ->
        {:error,
         Error.new(
           :missing_inputs,
           "missing input fields #{Enum.map_join(missing, ", ", &"`#{&1}`")} " <>
             "(expected #{Enum.map_join(sig.inputs, ", ", &"`#{&1.name}`")})",
           %{missing: missing, signature: signature_string(sig)}
         )}
    end
  end

  defp optional_type?({:optional, _}), do: true
  defp optional_type?({:union, ts}), do: :none in ts
  defp optional_type?(_), do: false

  defp sig_inputs(sig, inputs) do
    Map.take(inputs, Enum.map(sig.inputs, & &1.name))
  end

  # Advice from DSPex.Refine: DSPy's `hint_` input field.
  defp apply_hint(nil, sig, inputs), do: {sig, inputs}

  defp apply_hint(hint, sig, inputs) do
    field = %DSPex.Signature.Field{
      name: :hint_,
      kind: :input,
      type: :str,
      type_defined?: true,
      desc: "A hint to the module from an earlier run",
      prefix: "Hint :"
    }

    {%{sig | inputs: sig.inputs ++ [field]}, Map.put(inputs, :hint_, to_text(hint))}
  end

  defp to_text(v) when is_binary(v), do: v
  defp to_text(v), do: inspect(v)

  @doc false
  @spec signature_string(DSPex.Signature.t()) :: binary
  def signature_string(sig) do
    Enum.map_join(sig.inputs, ", ", &Atom.to_string(&1.name)) <>
      " -> " <> Enum.map_join(sig.outputs, ", ", &Atom.to_string(&1.name))
  end

  # ---------------------------------------------------------------------------------
  # Attempts: LM call, parse, re-ask with the parse error, optional JSON fallback.

  defp run_attempts(state, adapter, messages, attempt, retries_left) do
    case attempt(state, adapter, messages, attempt) do
      {:ok, completions, state} ->
        {:ok, completions, state}

      {:lm_error, err} ->
        {:error, err}

      {:parse_error, err, bad_text, state} ->
        cond do
          retries_left > 0 ->
            followup = retry_message(err, messages, state.sig)

            messages =
              messages ++
                [%{role: "assistant", content: bad_text}, %{role: "user", content: followup}]

            run_attempts(state, adapter, messages, attempt + 1, retries_left - 1)

          state.predict.json_fallback and adapter != @json_adapter ->
            json = @json_adapter

            plan =
              plan(
                json,
                state.lm,
                state.sig,
                state.inputs,
                state.params,
                state.predict,
                state.opts
              )

            json_messages = json.format(plan.render, state.demos, state.inputs, [])
            run_attempts(%{state | plan: plan}, json, json_messages, attempt + 1, 0)

          true ->
            {:error,
             %{
               err
               | details:
                   Map.merge(err.details, %{
                     attempts: attempt,
                     completion: bad_text,
                     predictor: state.predict.name
                   })
             }}
        end
    end
  end

  @doc """
  The follow-up user message after an unparseable reply, built from the parse error's
  data (`details` of an `:adapter_parse` error: `missing` and `found` output fields) and
  the output-format paragraph of the last user message. The bad reply itself is not
  quoted: it is the assistant turn right before.

  ## Examples

      iex> sig = DSPex.Signature.parse!("question -> reasoning, answer")
      iex> err = DSPex.Error.new(:adapter_parse, "...", %{adapter: :chat, lm_response: "[[ ## reasoning ## ]]\\nhmm",
      ...>   missing: [:answer], found: [:reasoning], signature: sig})
      iex> DSPex.Predict.retry_message(err, [], sig)
      "Your previous response could not be parsed.\\nExpected output fields: `reasoning`, `answer`.\\nParsed: `reasoning`.\\nMissing or not parseable: `answer`.\\n\\nRespond with the output fields `reasoning`, `answer`, in the format described above."
  """
  @spec retry_message(Error.t(), [map], DSPex.Signature.t()) :: binary
  def retry_message(%Error{details: details}, messages, sig) do
    Enum.join(
      ["Your previous response could not be parsed." | problem(details, sig)],
      "\n"
    ) <> "\n\n" <> reminder(messages, sig)
  end

  # What the parse error's data says went wrong, one line each.
  defp problem(%{missing: missing, found: found} = details, sig)
       when is_list(missing) and is_list(found) do
    expected = Enum.map(sig.outputs, & &1.name)
    bad = Enum.filter(expected, &(&1 in missing or &1 not in found))

    # why a value did not fit its type, with where it failed ("items[2].price: ...")
    why = for {name, reason} <- Map.get(details, :errors, %{}), do: "`#{name}`: #{reason}"

    [
      "Expected output fields: #{fields(expected)}.",
      "Parsed: #{fields(Enum.filter(expected, &(&1 in found)))}.",
      if(bad == [],
        do: "A field's value does not have the type the format asks for.",
        else: "Missing or not parseable: #{fields(bad)}."
      )
    ] ++ why
  end

  defp problem(_details, _sig), do: []

  defp fields([]), do: "none"
  defp fields(names), do: Enum.map_join(names, ", ", &"`#{&1}`")

  defp reminder(messages, sig) do
    last_user =
      messages
      |> Enum.reverse()
      |> Enum.find(fn m ->
        to_string(m[:role] || m["role"]) == "user" and is_binary(m[:content] || m["content"])
      end)

    paragraph =
      case last_user do
        nil ->
          nil

        m ->
          (m[:content] || m["content"])
          |> String.split("\n\n")
          |> List.last()
          |> String.trim()
      end

    if is_binary(paragraph) and String.starts_with?(paragraph, "Respond with") do
      paragraph
    else
      "Respond with the output fields " <>
        Enum.map_join(sig.outputs, ", ", &"`#{&1.name}`") <> ", in the format described above."
    end
  end

  defp attempt(state, adapter, messages, attempt) do
    p = state.predict
    model = lm_model(state.lm)

    meta = %{
      predictor: p.name,
      signature: signature_string(state.sig),
      adapter: adapter,
      lm: model,
      attempt: attempt
    }

    # Who is asking: the LM gets it as an argument (DSPex.BaseLM's call context) and
    # records it in the call history.
    call = %{signature: state.sig, adapter: adapter, predictor: p.name, attempt: attempt}

    DSPex.Telemetry.span([:dspex, :predict], meta, fn ->
      case lm_request(state.lm, messages, state.plan.params, call) do
        {:ok, completion} ->
          usage = Map.get(completion, :usage) || %{}
          model = Map.get(completion, :model) || model
          texts = Enum.map(completion.choices, &Map.get(&1, :text))

          state = %{state | usage: DSPex.Usage.merge(state.usage, %{model => usage})}

          parsed =
            Enum.map(completion.choices, &DSPex.Adapter.parse_choice(adapter, state.plan, &1))

          oks = for {:ok, fields} <- parsed, do: fields

          case {oks, parsed} do
            {[], [{:error, err} | _]} ->
              {{:parse_error, err, hd(texts) || "", state},
               Map.merge(meta, %{usage: usage, parse_status: :error})}

            {[], []} ->
              err = Error.new(:adapter_parse, "the LM returned no choices", %{})

              {{:parse_error, err, "", state},
               Map.merge(meta, %{usage: usage, parse_status: :error})}

            _ ->
              {{:ok, oks, state}, Map.merge(meta, %{usage: usage, parse_status: :ok})}
          end

        {:error, %Error{} = err} ->
          {{:lm_error, err},
           Map.merge(meta, %{usage: %{}, parse_status: :lm_error, error: err.type})}
      end
    end)
  end

  # Streaming goes through DSPex.BaseLM.stream/5 like any other LM call: the LM streams,
  # or, when it only answers whole, its text is replayed as one delta. The sink comes
  # from DSPex.stream/3's settings (dspy.context(send_stream=...) in DSPy), so it reaches
  # predictors that a program builds inside forward/2 too.
  defp lm_request(lm, messages, params, call) do
    stream_to = Settings.get(:stream_to)

    if is_pid(stream_to) do
      ref = Settings.get(:stream_ref)
      name = call.predictor
      sink = fn event -> send(stream_to, {:dspex_stream, ref, name, event}) end
      # A new LM call of this predictor (first try, re-ask, JSON fallback): the
      # consumer resets its field boundaries.
      send(stream_to, {:dspex_stream, ref, name, :start})
      DSPex.BaseLM.stream(lm, messages, params, sink, call: call)
    else
      DSPex.BaseLM.request(lm, messages, params, call: call)
    end
  end

  @doc false
  def lm_model(lm), do: DSPex.BaseLM.model(lm)
end
