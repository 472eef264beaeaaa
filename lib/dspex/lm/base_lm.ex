defmodule DSPex.BaseLM do
  @moduledoc """
  The language-model contract, like DSPy's `BaseLM`: what every LM implements, and the
  one entry point predictors call.

  An LM value is a struct (with a `:model` field naming the model) whose module
  implements this behaviour. DSPex ships two: the remote provider LM `DSPex.LM`
  (OpenAI, Anthropic, Gemini and every OpenAI-compatible server, over the port
  transport) and the deterministic `DSPex.LM.Scripted` for tests; a model run in
  process (`local/`) implements the same callbacks.

  ## Calling an LM

  `request/4` and `stream/5` run the LM's `forward/4` and then do, for every LM, what
  DSPy's `BaseLM.__call__` does: record the usage in the open `DSPex.track_usage/1`
  scopes (not for cache hits) and append the call to the call history
  (`DSPex.inspect_history/1`, `DSPex.LM.History`). `DSPex.LM.request/3` and
  `DSPex.LM.stream/4` are the same entry points.

  ## Completions

  A completion is `%{choices: [choice], usage: usage, model: binary}` where each choice is
  `%{text: binary | nil, finish_reason: binary | nil, tool_calls: list | nil,
  logprobs: term, reasoning_content: binary | nil}` and `usage` is
  `%{prompt_tokens:, completion_tokens:, total_tokens:}` (plus optional
  `cached_tokens`, `reasoning_tokens`). A cache hit sets `cache_hit: true` and zero usage.
  Tool calls use OpenAI's shape with atom keys:
  `%{id:, type: "function", function: %{name:, arguments: json_binary}}`.

  ## Request params

  `params` is a map of request parameters; the ones every LM should understand are
  declared in `params_schema/0` (`temperature`, `max_tokens`, `n`, `stop`, `rollout_id`,
  `cache`, ...). An LM ignores the ones it has no use for.

  ## The call context

  `forward/4` receives `%{call: call, sink: sink}`. `call` says who is asking —
  `%{predictor: name, attempt: n, signature: %DSPex.Signature{}, adapter: module}` when
  a predictor calls, `%{}` for a direct call — so an LM that needs it (the scripted LM
  renders field maps for the asking signature) gets it as an argument. `sink` is `nil`,
  or, when the caller streams and the LM `supports?(lm, :stream)`, a function to call
  with `{:delta, text}` for each text delta of the first choice as it arrives, and with
  `{:tool_call_delta, %{index:, id:, name:, arguments:}}` for each piece of one of its
  native tool calls (`index` counts the calls from 0; `id` and `name` come with a call's
  first piece, `nil` after; `arguments` is the next piece of its JSON text).

  ## Named LMs

  Wherever an LM is taken (`request/4`, `stream/5`, `supports?/2`, `DSPex.configure(lm:
  ...)`, a predictor's `lm:`), the name of an LM declared in `config :dspex, lms: [...]`
  works too; it is resolved through `DSPex.LM.Registry` at each call.

  ## Telemetry

  Every call of every LM runs in a `[:dspex, :lm, :call]` span: metadata `model`,
  `predictor`, `stream`; stop adds `response_model`, `usage`, `cache_hit` (or `error`,
  the error type). A remote LM's transport work is the nested `[:dspex, :lm, :request]`
  span of `DSPex.LM.Pipeline`.

  ## Examples

      iex> lm = DSPex.LM.Scripted.new(["Paris"])
      iex> {:ok, completion} = DSPex.BaseLM.request(lm, [%{role: "user", content: "Capital of France?"}])
      iex> hd(completion.choices).text
      "Paris"
  """

  alias DSPex.Error

  @type message :: %{required(:role) => binary, required(:content) => binary | list}
  @type choice :: %{
          required(:text) => binary | nil,
          optional(:finish_reason) => binary | nil,
          optional(:tool_calls) => list | nil,
          optional(:logprobs) => term,
          optional(:reasoning_content) => binary | nil
        }
  @type completion :: %{
          required(:choices) => [choice],
          required(:usage) => map,
          optional(:model) => binary,
          optional(:cache_hit) => boolean
        }
  @type result :: {:ok, completion} | {:error, Error.t()}

  @typedoc "Who is calling: empty for a direct call (see the module doc)."
  @type call :: %{
          optional(:predictor) => binary,
          optional(:attempt) => pos_integer,
          optional(:signature) => DSPex.Signature.t(),
          optional(:adapter) => module
        }

  @typedoc "Receives `{:delta, text}` while a completion streams."
  @type sink :: (term -> any)

  @doc """
  Produces a completion for `messages` (DSPy's `BaseLM.forward`). `opts.call` is the
  call context; `opts.sink` is `nil` or, when streaming, the function to send each text
  delta to as `{:delta, text}` before returning the assembled completion.
  """
  @callback forward(
              lm :: struct,
              messages :: [message],
              params :: map,
              opts :: %{call: call, sink: sink | nil}
            ) :: result

  @doc """
  Whether the LM supports a request feature: `:stream` (token streaming; without it a
  streamed call gets the whole text as one delta), `:response_format` (JSON mode),
  `:response_schema` (structured outputs), `:tools` (native function calling).
  """
  @callback supports?(lm :: struct, feature :: atom) :: boolean

  @doc "The LM's saved state (DSPy's `dump_state`), with no secrets."
  @callback dump_state(lm :: struct) :: map

  @optional_callbacks dump_state: 1

  @params_schema DSPex.Options.schema!(
                   temperature: [type: :number, doc: "Sampling temperature."],
                   max_tokens: [type: :pos_integer, doc: "Most tokens to generate."],
                   n: [type: :pos_integer, doc: "Number of choices."],
                   stop: [
                     type: {:or, [:string, {:list, :string}]},
                     doc: "Stop sequence(s)."
                   ],
                   top_p: [type: :number, doc: "Nucleus sampling mass."],
                   seed: [type: :integer, doc: "Sampling seed (where the provider has one)."],
                   presence_penalty: [type: :number, doc: "OpenAI presence penalty."],
                   frequency_penalty: [type: :number, doc: "OpenAI frequency penalty."],
                   logprobs: [type: :boolean, doc: "Return token log-probabilities."],
                   top_logprobs: [type: :non_neg_integer, doc: "Alternatives per token."],
                   response_format: [
                     type: :map,
                     doc: "JSON mode / structured outputs (`%{type: \"json_object\"}`, ...)."
                   ],
                   tools: [type: :list, doc: "Native tool (function) definitions."],
                   tool_choice: [type: {:or, [:string, :map]}, doc: "Tool choice."],
                   reasoning_effort: [
                     type: {:or, [:string, :atom]},
                     doc: "Reasoning effort of reasoning models."
                   ],
                   rollout_id: [
                     type: {:or, [:integer, :string]},
                     doc: "Separates cache entries of otherwise equal requests; never sent."
                   ],
                   cache: [type: :boolean, doc: "`false` bypasses the response cache."]
                 )

  @doc """
  The request params every LM should understand (an `DSPex.Options` schema):

  #{DSPex.Options.docs(@params_schema)}

  `DSPex.Predict.new/2` and `DSPex.LM.new/2` accept them as options; anything else a
  provider takes goes in `config:` (Predict) or `kwargs:` (LM).

  ## Examples

      iex> :temperature in DSPex.Options.keys(DSPex.BaseLM.params_schema())
      true
  """
  @spec params_schema() :: DSPex.Options.schema()
  def params_schema, do: @params_schema

  # Request params that may hold credentials: never recorded in the history.
  @secret_params [:api_key, "api_key", :headers, "headers"]

  @doc """
  Calls `lm` with `messages` and request `params`, then records usage and history (see
  the module doc). `opts`: `call:` — the call context (default `%{}`).

  ## Examples

      iex> lm = DSPex.LM.Scripted.new(["hello"], model: "demo/scripted")
      iex> {:ok, c} = DSPex.BaseLM.request(lm, [%{role: "user", content: "hi"}], %{temperature: 0.0})
      iex> {c.model, hd(c.choices).text}
      {"demo/scripted", "hello"}
  """
  @spec request(struct | atom, [message], map, keyword) :: result
  def request(lm, messages, params \\ %{}, opts \\ [])

  def request(name, messages, params, opts) when is_atom(name) and not is_nil(name) do
    with {:ok, lm} <- DSPex.LM.Registry.lookup(name), do: request(lm, messages, params, opts)
  end

  def request(%mod{} = lm, messages, params, opts)
      when is_list(messages) and is_map(params) and is_list(opts) do
    call = Keyword.get(opts, :call, %{})

    result =
      call_span(lm, call, false, fn ->
        mod.forward(lm, messages, params, %{call: call, sink: nil})
      end)

    finish(lm, messages, params, call, result)
  end

  @doc """
  Like `request/4`, but streams: `sink.({:delta, text})` is called for each text delta of
  the first choice as it arrives, then the assembled completion is returned. For an LM
  without streaming support (`supports?(lm, :stream)` is `false`) the whole text is sent
  as one delta once it is complete. A cache hit sends no deltas.

  ## Examples

      iex> lm = DSPex.LM.Scripted.new(["Paris is big"], chunk_size: 5)
      iex> me = self()
      iex> {:ok, _} = DSPex.BaseLM.stream(lm, [%{role: "user", content: "?"}], %{}, &send(me, &1))
      iex> for _ <- 1..3, do: receive(do: ({:delta, d} -> d))
      ["Paris", " is b", "ig"]
  """
  @spec stream(struct | atom, [message], map, sink, keyword) :: result
  def stream(lm, messages, params, sink, opts \\ [])

  def stream(name, messages, params, sink, opts) when is_atom(name) and not is_nil(name) do
    with {:ok, lm} <- DSPex.LM.Registry.lookup(name),
         do: stream(lm, messages, params, sink, opts)
  end

  def stream(%mod{} = lm, messages, params, sink, opts)
      when is_list(messages) and is_map(params) and is_function(sink, 1) and is_list(opts) do
    call = Keyword.get(opts, :call, %{})

    result =
      call_span(lm, call, true, fn ->
        if mod.supports?(lm, :stream) do
          mod.forward(lm, messages, params, %{call: call, sink: sink})
        else
          with {:ok, completion} <- mod.forward(lm, messages, params, %{call: call, sink: nil}) do
            replay_text(completion, sink)
            {:ok, completion}
          end
        end
      end)

    finish(lm, messages, params, call, result)
  end

  # Every LM call, whatever the LM: a [:dspex, :lm, :call] span. Stop metadata: the
  # answering model (`response_model`, e.g. the LM of a fallback chain that answered),
  # `usage`, `cache_hit`, or the error type.
  defp call_span(lm, call, stream?, fun) do
    meta = %{model: model(lm), predictor: Map.get(call, :predictor), stream: stream?}

    DSPex.Telemetry.span([:dspex, :lm, :call], meta, fn ->
      case fun.() do
        {:ok, completion} = result ->
          {result,
           Map.merge(meta, %{
             response_model: Map.get(completion, :model) || meta.model,
             usage: Map.get(completion, :usage) || %{},
             cache_hit: Map.get(completion, :cache_hit, false) == true
           })}

        {:error, %Error{type: type}} = result ->
          {result, Map.put(meta, :error, type)}
      end
    end)
  end

  @doc """
  Whether `lm` supports `feature` (see the `c:supports?/2` callback).

  ## Examples

      iex> DSPex.BaseLM.supports?(DSPex.LM.new("openai/gpt-4o-mini"), :response_schema)
      true
      iex> DSPex.BaseLM.supports?(DSPex.LM.Scripted.new([]), :tools)
      false
  """
  @spec supports?(struct | atom, atom) :: boolean
  def supports?(%mod{} = lm, feature) when is_atom(feature),
    do: mod.supports?(lm, feature) == true

  def supports?(name, feature) when is_atom(name) and is_atom(feature) do
    case DSPex.LM.Registry.lookup(name) do
      {:ok, lm} -> supports?(lm, feature)
      {:error, _} -> false
    end
  end

  @doc """
  The LM's saved state (`c:dump_state/1`), or `nil` for an LM that has none to save.

  ## Examples

      iex> DSPex.BaseLM.dump_state(DSPex.LM.new("openai/gpt-4o-mini"))["model"]
      "openai/gpt-4o-mini"
      iex> DSPex.BaseLM.dump_state(DSPex.LM.Scripted.new([]))
      nil
  """
  @spec dump_state(struct) :: map | nil
  def dump_state(%mod{} = lm) do
    # An optional callback: a module that declares it exports it.
    if Code.ensure_loaded?(mod) and function_exported?(mod, :dump_state, 1),
      do: mod.dump_state(lm),
      else: nil
  end

  @doc """
  The model name of `lm` (its `:model` field), for telemetry and history.

  ## Examples

      iex> DSPex.BaseLM.model(DSPex.LM.new("anthropic/claude-x"))
      "anthropic/claude-x"
  """
  @spec model(term) :: binary
  def model(%{model: model}) when is_binary(model), do: model
  def model(%mod{}), do: inspect(mod)

  def model(name) when is_atom(name) and not is_nil(name) do
    case DSPex.LM.Registry.lookup(name) do
      {:ok, lm} -> model(lm)
      {:error, _} -> "unknown"
    end
  end

  def model(_), do: "unknown"

  @doc """
  Sends the first choice's text of a finished `completion` to a streaming `sink` as
  `{:delta, chunk}` events of `chunk_size` bytes (`:all`: one delta); nothing for an
  empty text. Then each of its tool calls as one `{:tool_call_delta, piece}`. For LMs
  that answer whole but are asked to stream.

  ## Examples

      iex> me = self()
      iex> DSPex.BaseLM.replay_text(%{choices: [%{text: "abcde"}]}, &send(me, &1), 2)
      iex> for _ <- 1..3, do: receive(do: ({:delta, d} -> d))
      ["ab", "cd", "e"]
  """
  @spec replay_text(map, sink, pos_integer | :all) :: :ok
  def replay_text(completion, sink, chunk_size \\ :all) do
    case completion do
      %{choices: [%{text: text} = choice | _]} ->
        if is_binary(text),
          do: text |> text_chunks(chunk_size) |> Enum.each(&sink.({:delta, &1}))

        replay_tool_calls(Map.get(choice, :tool_calls), sink)

      _ ->
        :ok
    end
  end

  defp replay_tool_calls(calls, sink) when is_list(calls) do
    calls
    |> Enum.with_index()
    |> Enum.each(fn {call, i} ->
      f = Map.get(call, :function) || %{}

      sink.(
        {:tool_call_delta,
         %{index: i, id: Map.get(call, :id), name: f[:name], arguments: f[:arguments] || ""}}
      )
    end)
  end

  defp replay_tool_calls(_none, _sink), do: :ok

  defp text_chunks("", _), do: []
  defp text_chunks(text, :all), do: [text]

  defp text_chunks(text, size) do
    case text do
      <<chunk::binary-size(size), rest::binary>> -> [chunk | text_chunks(rest, size)]
      _ -> [text]
    end
  end

  # What DSPy's BaseLM.__call__ does after forward: usage to the open tracking scopes
  # (a cache hit costs nothing), then one history entry.
  defp finish(lm, messages, params, call, {:ok, completion} = result) do
    model = Map.get(completion, :model) || model(lm)
    usage = Map.get(completion, :usage) || %{}
    cache_hit = Map.get(completion, :cache_hit, false) == true

    unless cache_hit, do: DSPex.Usage.record(model, usage)

    DSPex.LM.History.record(%{
      model: model,
      predictor: Map.get(call, :predictor),
      attempt: Map.get(call, :attempt),
      messages: messages,
      outputs: Enum.map(Map.get(completion, :choices, []), &Map.get(&1, :text)),
      params: Map.drop(params, @secret_params),
      usage: usage,
      cache_hit: cache_hit
    })

    result
  end

  defp finish(_lm, _messages, _params, _call, {:error, %Error{}} = result), do: result
end
