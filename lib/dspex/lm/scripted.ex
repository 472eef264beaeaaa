defmodule DSPex.LM.Scripted do
  @moduledoc """
  A deterministic LM for tests and demos, like DSPy's `DummyLM`.

  `new/2` takes a script:

    * a list of strings — returned in order, one per choice (a request with `n: 3`
      consumes three). When the list is exhausted the LM returns
      `{:error, %DSPex.Error{type: :scripted_exhausted}}`, or starts over with
      `cycle: true`;
    * a list of field maps (e.g. `%{answer: "Paris"}`) — each is rendered as the
      assistant reply for the calling predictor's signature with its adapter's
      `format_assistant_message/2` (so the same script works with the Chat and JSON
      adapters; a direct call gets the ChatAdapter layout). Strings and maps can be
      mixed;
    * a function `fn messages, params -> reply end` where `reply` is a string, a list
      of strings (one per choice), a field map, `{:ok, completion}` or
      `{:error, %DSPex.Error{}}`. A 3-arity function also receives the call context
      (`%{signature:, adapter:, predictor:, attempt:}`, see `DSPex.BaseLM`).

  The LM learns who is calling from the call context `DSPex.BaseLM` hands to
  `forward/4` — an argument, not process state.

  State (position in the script, recorded requests) lives in a process linked to the
  caller of `new/2`, so the LM works from any process (tasks, `DSPex.Parallel`); its
  crash reports and `:sys.get_status/1` show counts, never the recorded prompts.
  `requests/1` returns every request as `%{messages:, params:, context:}` for
  assertions.

  Usage is deterministic: `prompt_tokens` = bytes of all message contents div 4,
  `completion_tokens` = bytes of the reply div 4 (at least 1 each).

  Streaming: the reply is sent to the sink in chunks of `chunk_size` bytes, then the same
  completion as a whole request is returned.

  ## Examples

      iex> lm = DSPex.LM.Scripted.new(["hello"])
      iex> {:ok, c} = DSPex.LM.request(lm, [%{role: "user", content: "hi"}], %{})
      iex> hd(c.choices).text
      "hello"
      iex> {:error, %DSPex.Error{type: :scripted_exhausted}} = DSPex.LM.request(lm, [], %{})
      iex> length(DSPex.LM.Scripted.requests(lm))
      2
  """

  @behaviour DSPex.BaseLM

  alias DSPex.LM.Scripted.Script

  @type script :: [binary | map] | (list, map -> term) | (list, map, map -> term)
  @type t :: %__MODULE__{pid: pid, model: binary, chunk_size: pos_integer}

  defstruct pid: nil, model: "scripted", chunk_size: 8

  @options DSPex.Options.schema!(
             cycle: [
               type: :boolean,
               default: false,
               doc: "Start a list script over when it is exhausted."
             ],
             model: [type: :string, default: "scripted", doc: "The model name it reports."],
             chunk_size: [
               type: :pos_integer,
               default: 8,
               doc: "Bytes per streamed delta."
             ]
           )

  @doc """
  Builds a scripted LM.

  ## Options

  #{DSPex.Options.docs(@options)}

  ## Examples

      iex> DSPex.LM.Scripted.new(["a"], model: "test/model").model
      "test/model"
  """
  @spec new(script, keyword) :: t
  def new(script, opts \\ []) when is_list(script) or is_function(script) do
    opts = DSPex.Options.validate!(opts, @options, "DSPex.LM.Scripted.new/2")
    {:ok, pid} = Script.start_link(script, opts[:cycle])
    %__MODULE__{pid: pid, model: opts[:model], chunk_size: opts[:chunk_size]}
  end

  @doc """
  Every request received so far, oldest first: `%{messages:, params:, context:}`
  (`context` holds the caller's `predictor` and `attempt`).

  ## Examples

      iex> DSPex.LM.Scripted.requests(DSPex.LM.Scripted.new([]))
      []
  """
  @spec requests(t) :: [map]
  def requests(%__MODULE__{pid: pid}), do: GenServer.call(pid, :requests)

  @doc """
  Replaces the script and rewinds.

  ## Examples

      iex> lm = DSPex.LM.Scripted.new([])
      iex> DSPex.LM.Scripted.set_script(lm, ["x"])
      :ok
  """
  @spec set_script(t, script) :: :ok
  def set_script(%__MODULE__{pid: pid}, script) when is_list(script) or is_function(script),
    do: GenServer.call(pid, {:set_script, script})

  @impl DSPex.BaseLM
  @doc false
  def forward(%__MODULE__{} = lm, messages, params, %{call: call, sink: sink}) do
    n = max(1, Map.get(params, :n) || 1)
    req = %{messages: messages, params: params, context: Map.take(call, [:predictor, :attempt])}

    replies =
      case GenServer.call(lm.pid, {:take, n, req}) do
        {:fun, fun} -> call_fun(fun, messages, params, call, n)
        other -> other
      end

    result =
      case replies do
        {:completion, c} -> {:ok, c}
        {:ok, items} -> {:ok, completion(lm, messages, Enum.map(items, &render(&1, call)))}
        {:error, _} = err -> err
      end

    with {:ok, c} <- result, true <- sink != nil do
      DSPex.BaseLM.replay_text(c, sink, lm.chunk_size)
    end

    result
  end

  @impl DSPex.BaseLM
  @doc false
  def supports?(_lm, feature), do: feature == :stream

  defp call_fun(fun, messages, params, call, n) do
    reply =
      case fun do
        f when is_function(f, 3) -> f.(messages, params, call)
        f when is_function(f, 2) -> f.(messages, params)
      end

    case reply do
      {:ok, %{choices: _} = completion} -> {:completion, completion}
      {:error, %DSPex.Error{}} = err -> err
      list when is_list(list) -> {:ok, list}
      one when is_binary(one) or is_map(one) -> {:ok, List.duplicate(one, n)}
    end
  end

  defp render(text, _call) when is_binary(text), do: text

  defp render(fields, call) when is_map(fields) do
    fields = Map.new(fields, fn {k, v} -> {to_key(k), v} end)

    case call do
      %{signature: sig, adapter: adapter} when not is_nil(sig) and not is_nil(adapter) ->
        adapter.format_assistant_message(sig, fields)

      _ ->
        # A direct call (no predictor): the ChatAdapter layout.
        Enum.map_join(fields, "", fn {k, v} -> "[[ ## #{k} ## ]]\n#{to_text(v)}\n\n" end) <>
          "[[ ## completed ## ]]\n"
    end
  end

  defp to_key(k) when is_atom(k), do: k
  defp to_key(k) when is_binary(k), do: String.to_atom(k)

  defp to_text(v) when is_binary(v), do: v
  defp to_text(v), do: inspect(v)

  defp completion(lm, messages, texts) do
    prompt_bytes =
      Enum.reduce(messages, 0, fn m, acc ->
        case m[:content] || m["content"] do
          c when is_binary(c) -> acc + byte_size(c)
          _ -> acc
        end
      end)

    p = max(1, div(prompt_bytes, 4))
    c = texts |> Enum.map(&max(1, div(byte_size(&1), 4))) |> Enum.sum()

    %{
      choices:
        Enum.map(texts, fn t ->
          %{
            text: t,
            finish_reason: "stop",
            tool_calls: nil,
            logprobs: nil,
            reasoning_content: nil
          }
        end),
      usage: %{prompt_tokens: p, completion_tokens: c, total_tokens: p + c},
      model: lm.model
    }
  end
end

defmodule DSPex.LM.Scripted.Script do
  @moduledoc false
  # The scripted LM's state: the script, the position in it and the recorded requests.
  use GenServer

  def start_link(script, cycle),
    do: GenServer.start_link(__MODULE__, %{script: script, pos: 0, cycle: cycle, requests: []})

  @impl true
  def init(state), do: {:ok, state}

  @impl true
  def handle_call(:requests, _from, st), do: {:reply, Enum.reverse(st.requests), st}

  def handle_call({:set_script, script}, _from, st),
    do: {:reply, :ok, %{st | script: script, pos: 0}}

  def handle_call({:take, n, req}, _from, st) when is_integer(n) and n > 0 do
    {reply, st} = take(%{st | requests: [req | st.requests]}, n)
    {:reply, reply, st}
  end

  # No function_clause crash on a stray call: its stack frame would carry the arguments
  # (the state with every recorded prompt), which format_status/1 cannot reach.
  def handle_call(_other, _from, st), do: {:reply, {:error, :unknown_call}, st}

  # OTP 25 calls format_status/1 (when exported) for crash reports and
  # :sys.get_status/1: the recorded prompts become counts, the message being handled and
  # the exit reason a description without data (DSPex.Error.describe/1). (Elixir 1.14's
  # GenServer declares only format_status/2, hence no @impl.)
  def format_status(status) do
    status
    |> Map.update(:state, nil, &redact_state/1)
    |> Map.update(:message, nil, &DSPex.Error.describe/1)
    |> Map.update(:reason, nil, &DSPex.Error.describe/1)
    |> Map.update(:log, [], fn _ -> [] end)
  end

  defp redact_state(%{script: script} = st) do
    shown = if is_list(script), do: "<#{length(script)} scripted replies>", else: script
    %{st | script: shown, requests: "<#{length(st.requests)} recorded requests>"}
  end

  defp redact_state(other), do: other

  defp take(%{script: fun} = st, _n) when is_function(fun), do: {{:fun, fun}, st}

  defp take(%{script: script, pos: pos, cycle: cycle} = st, n) do
    len = length(script)

    cond do
      len == 0 ->
        {{:error, exhausted(0)}, st}

      cycle ->
        items = for i <- 0..(n - 1), do: Enum.at(script, rem(pos + i, len))
        {{:ok, items}, %{st | pos: rem(pos + n, len)}}

      pos + n > len ->
        {{:error, exhausted(len)}, %{st | pos: len}}

      true ->
        {{:ok, Enum.slice(script, pos, n)}, %{st | pos: pos + n}}
    end
  end

  defp exhausted(len) do
    DSPex.Error.new(
      :scripted_exhausted,
      "DSPex.LM.Scripted ran out of scripted responses (#{len} given); add more or pass cycle: true",
      %{given: len}
    )
  end
end
