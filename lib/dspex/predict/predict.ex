defmodule DSPex.Predict do
  @moduledoc """
  The basic predictor, like `dspy.Predict`: one signature, its demos, an optional LM
  and adapter, and request config.

      qa = DSPex.Predict.new("question -> answer")
      {:ok, pred} = DSPex.call(qa, question: "What is the capital of France?")
      pred.answer

  A call formats the prompt with the adapter (`DSPex.Adapter.Chat` unless configured),
  sends it to the LM, parses every choice, records call history
  (`DSPex.inspect_history/1`), appends `{name, inputs, outputs}` to the active trace
  (`DSPex.Trace`) and returns `{:ok, %DSPex.Prediction{}}`.

  ## Options (`new/2`) and per-call overrides (`DSPex.call/3`)

    * `:demos` — few-shot examples (maps with atom keys or `%DSPex.Example{}`);
    * `:lm`, `:adapter` — override `DSPex.Settings` (`DSPex.configure/1`);
    * `:config` — request params (`temperature`, `max_tokens`, `n`, `stop`, ...). Any
      other keyword given to `new/2` is also put in `config`, like DSPy's `**config`.
      With `n > 1` and a temperature unset or ≤ 0.15, temperature is forced to 0.7
      (as DSPy does); every choice is parsed and `pred.completions` holds the ones
      that parsed (a choice that does not parse is dropped; only when none parses is
      the call re-asked or failed);
    * `:name` — the predictor's name (set by `DSPex.Module`; `"self"` when bare);
    * `:max_parse_retries` (default 1) — when the reply cannot be parsed, the
      predictor re-asks the LM with its bad reply and a follow-up user message that
      quotes the parse error and the expected output format (instead of DSPy's silent
      JSON fallback, issue #1932);
    * `:json_fallback` (default `false`) — after the retries, try once more with
      `DSPex.Adapter.JSON`;
    * `:signature` (per call only) — use another signature for this call.

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
          json_fallback: boolean
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
            json_fallback: false

  @own_opts [:demos, :lm, :adapter, :config, :name, :max_parse_retries, :json_fallback]
  @call_key :"$dspex_current_call"
  @default_adapter DSPex.Adapter.Chat
  @json_adapter DSPex.Adapter.JSON

  @doc """
  Builds a predictor from a signature string, a `%DSPex.Signature{}` or a module that
  `use DSPex.Signature`.

  ## Examples

      iex> p = DSPex.Predict.new(%DSPex.Signature{inputs: [%DSPex.Signature.Field{name: :q}], outputs: [%DSPex.Signature.Field{name: :a, kind: :output}]}, temperature: 0.2)
      iex> {p.name, p.config}
      {"self", %{temperature: 0.2}}
  """
  @spec new(DSPex.Signature.t() | binary | module, keyword) :: t
  def new(signature, opts \\ []) when is_list(opts) do
    sig = resolve_signature(signature)
    check_reserved!(sig)
    {own, rest} = Keyword.split(opts, @own_opts)
    config = Map.merge(Map.new(rest), Map.new(Keyword.get(own, :config, %{})))

    %__MODULE__{
      signature: sig,
      demos: normalize_demos(Keyword.get(own, :demos, [])),
      lm: Keyword.get(own, :lm),
      adapter: Keyword.get(own, :adapter),
      config: config,
      name: Keyword.get(own, :name, "self"),
      max_parse_retries: Keyword.get(own, :max_parse_retries, 1),
      json_fallback: Keyword.get(own, :json_fallback, false)
    }
  end

  @doc false
  @spec resolve_signature(term) :: DSPex.Signature.t()
  def resolve_signature(%DSPex.Signature{} = sig), do: sig
  # resolve!/1 is owned by DSPex.Signature; called through apply/3 so this module
  # compiles whatever state that module is in.
  def resolve_signature(other), do: apply(DSPex.Signature, :resolve!, [other])

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
  The call context while a predictor waits for its LM: `%{signature:, adapter:,
  predictor:, attempt:}`, or `nil` outside a predictor call. LMs such as
  `DSPex.LM.Scripted` use it to render field maps for the requesting signature.

  ## Examples

      iex> DSPex.Predict.current_call()
      nil
  """
  @spec current_call() :: map | nil
  def current_call, do: Process.get(@call_key)

  @doc """
  Renders the messages this predictor would send for `inputs`, without calling an LM
  (DSPy issue #7830). Returns `{:ok, messages}` or `{:error, %DSPex.Error{}}`.
  """
  @spec format(t, map | keyword, keyword) :: {:ok, [map]} | {:error, Error.t()}
  def format(%__MODULE__{} = p, inputs, opts \\ []) do
    sig = call_signature(p, opts)
    inputs = normalize_inputs(sig, inputs)

    with :ok <- check_inputs(sig, inputs) do
      {sig, inputs} = apply_hint(p.name, sig, inputs)
      adapter = opts[:adapter] || p.adapter || Settings.get(:adapter) || @default_adapter
      demos = normalize_demos(Keyword.get(opts, :demos, p.demos))
      {:ok, adapter.format(sig, demos, sig_inputs(sig, inputs), [])}
    end
  end

  @doc """
  Runs the predictor. Prefer `DSPex.call/3`.
  """
  @spec call(t, map | keyword, keyword) :: {:ok, Prediction.t()} | {:error, Error.t()}
  def call(%__MODULE__{} = p, inputs, opts \\ []) do
    sig = call_signature(p, opts)
    inputs = normalize_inputs(sig, inputs)

    with :ok <- check_inputs(sig, inputs),
         {:ok, lm} <- resolve_lm(p, opts) do
      {sig, inputs} = apply_hint(p.name, sig, inputs)
      adapter = opts[:adapter] || p.adapter || Settings.get(:adapter) || @default_adapter
      demos = normalize_demos(Keyword.get(opts, :demos, p.demos))
      params = request_params(p, opts)
      call_inputs = sig_inputs(sig, inputs)

      state = %{
        predict: p,
        sig: sig,
        lm: lm,
        params: params,
        demos: demos,
        inputs: call_inputs,
        usage: %{}
      }

      messages = adapter.format(sig, demos, call_inputs, [])

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

  # DSPex.Refine sets per-predictor advice; every predictor called while it is set gets
  # DSPy's `hint_` input field.
  defp apply_hint(name, sig, inputs) do
    case Settings.get(:refine_hints) do
      hints when is_map(hints) ->
        field = %DSPex.Signature.Field{
          name: :hint_,
          kind: :input,
          type: :str,
          type_defined?: true,
          desc: "A hint to the module from an earlier run",
          prefix: "Hint :"
        }

        advice = Map.get(hints, name, "N/A")
        {%{sig | inputs: sig.inputs ++ [field]}, Map.put(inputs, :hint_, to_text(advice))}

      _ ->
        {sig, inputs}
    end
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

          state.predict.json_fallback and adapter != json_adapter() ->
            json = json_adapter()
            json_messages = json.format(state.sig, state.demos, state.inputs, [])
            run_attempts(state, json, json_messages, attempt + 1, 0)

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

  @doc false
  # The follow-up user message after an unparseable reply.
  def retry_message(%Error{message: msg}, messages, sig) do
    "Your previous response could not be parsed.\n" <>
      condense(msg) <> "\n\n" <> reminder(messages, sig)
  end

  # The adapter's message quotes the whole bad reply, which is already the previous
  # assistant turn: drop that part and the blank lines.
  defp condense(msg) do
    msg
    |> then(&Regex.replace(~r/LM Response:.*?(?=\n\nExpected|\z)/s, &1, ""))
    |> String.split("\n")
    |> Enum.map(&String.trim/1)
    |> Enum.reject(&(&1 == ""))
    |> Enum.join("\n")
  end

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

    DSPex.Telemetry.span([:dspex, :predict], meta, fn ->
      previous =
        Process.put(@call_key, %{
          signature: state.sig,
          adapter: adapter,
          predictor: p.name,
          attempt: attempt
        })

      result =
        try do
          lm_request(state.lm, messages, state.params, p.name)
        after
          if previous, do: Process.put(@call_key, previous), else: Process.delete(@call_key)
        end

      case result do
        {:ok, completion} ->
          usage = Map.get(completion, :usage) || %{}
          model = Map.get(completion, :model) || model
          texts = Enum.map(completion.choices, &Map.get(&1, :text))

          DSPex.LM.History.record(%{
            model: model,
            predictor: p.name,
            attempt: attempt,
            messages: messages,
            outputs: texts,
            params: state.params,
            usage: usage,
            cache_hit: Map.get(completion, :cache_hit, false)
          })

          state = %{state | usage: DSPex.Usage.merge(state.usage, %{model => usage})}

          parsed = Enum.map(texts, &parse_choice(adapter, state.sig, &1))
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

  defp parse_choice(_adapter, _sig, nil),
    do: {:error, Error.new(:adapter_parse, "the completion has no text", %{})}

  defp parse_choice(adapter, sig, text) do
    case adapter.parse(sig, text) do
      {:ok, fields} -> {:ok, fields}
      {:error, %Error{}} = err -> err
    end
  end

  # Streaming goes through DSPex.LM.stream/4 like any other LM call: it dispatches to the
  # LM's own stream/4 or, for an LM that only answers whole, replays the text as one delta.
  defp lm_request(lm, messages, params, name) do
    stream_to = Settings.get(:stream_to)

    if is_pid(stream_to) do
      ref = Settings.get(:stream_ref)
      sink = fn event -> send(stream_to, {:dspex_stream, ref, name, event}) end
      # A new LM call of this predictor (first try, re-ask, JSON fallback): the
      # consumer resets its field boundaries.
      send(stream_to, {:dspex_stream, ref, name, :start})
      DSPex.LM.stream(lm, messages, params, sink)
    else
      DSPex.LM.request(lm, messages, params)
    end
  end

  # A function, not a literal, so this module compiles before the adapter exists.
  defp json_adapter, do: @json_adapter

  @doc false
  def lm_model(lm) when is_map(lm), do: to_string(Map.get(lm, :model) || inspect(lm.__struct__))
  def lm_model(_), do: "unknown"
end
