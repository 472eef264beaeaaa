defmodule DSPex.LM.Scripted do
  @moduledoc """
  A deterministic LM for tests and demos, like DSPy's `DummyLM`.

  `new/2` takes a script:

    * a list of strings — returned in order, one per choice (a request with `n: 3`
      consumes three). When the list is exhausted the LM returns
      `{:error, %DSPex.Error{type: :scripted_exhausted}}`, or starts over with
      `cycle: true`;
    * a list of field maps (e.g. `%{answer: "Paris"}`) — each is rendered as the
      assistant reply for the requesting predictor's signature with its adapter's
      `format_assistant_message/2` (so the same script works with the Chat and JSON
      adapters). Strings and maps can be mixed;
    * a function `fn messages, params -> reply end` where `reply` is a string, a list
      of strings (one per choice), a field map, `{:ok, completion}` or
      `{:error, %DSPex.Error{}}`. A 3-arity function also receives the call context
      (`%{signature:, adapter:, predictor:}`).

  State (position in the script, recorded requests) lives in a process linked to the
  caller of `new/2`, so the LM works from any process (tasks, `DSPex.Parallel`).
  `requests/1` returns every request as `%{messages:, params:, context:}` for
  assertions.

  Usage is deterministic: `prompt_tokens` = bytes of all message contents div 4,
  `completion_tokens` = bytes of the reply div 4 (at least 1 each).

  Streaming: `stream/4` emits the reply in chunks of `chunk_size` bytes (default 8) to
  the sink, then returns the same completion as `request/3`.

  ## Examples

      iex> lm = DSPex.LM.Scripted.new(["hello"])
      iex> {:ok, c} = DSPex.LM.request(lm, [%{role: "user", content: "hi"}], %{})
      iex> hd(c.choices).text
      "hello"
      iex> {:error, %DSPex.Error{type: :scripted_exhausted}} = DSPex.LM.request(lm, [], %{})
      iex> length(DSPex.LM.Scripted.requests(lm))
      2
  """

  @behaviour DSPex.LM

  @type script :: [binary | map] | (list, map -> term) | (list, map, map -> term)
  @type t :: %__MODULE__{pid: pid, model: binary, chunk_size: pos_integer}

  defstruct pid: nil, model: "scripted", chunk_size: 8

  @doc """
  Builds a scripted LM. Options: `:cycle` (restart a list script when exhausted,
  default `false`), `:model` (default `"scripted"`), `:chunk_size` (streaming).

  ## Examples

      iex> DSPex.LM.Scripted.new(["a"], model: "test/model").model
      "test/model"
  """
  @spec new(script, keyword) :: t
  def new(script, opts \\ []) when is_list(script) or is_function(script) do
    cycle = Keyword.get(opts, :cycle, false)
    {:ok, pid} = Agent.start_link(fn -> %{script: script, pos: 0, cycle: cycle, requests: []} end)

    %__MODULE__{
      pid: pid,
      model: Keyword.get(opts, :model, "scripted"),
      chunk_size: Keyword.get(opts, :chunk_size, 8)
    }
  end

  @doc """
  Every request received so far, oldest first: `%{messages:, params:, context:}`.

  ## Examples

      iex> DSPex.LM.Scripted.requests(DSPex.LM.Scripted.new([]))
      []
  """
  @spec requests(t) :: [map]
  def requests(%__MODULE__{pid: pid}), do: Agent.get(pid, &Enum.reverse(&1.requests))

  @doc """
  Replaces the script and rewinds.

  ## Examples

      iex> lm = DSPex.LM.Scripted.new([])
      iex> DSPex.LM.Scripted.set_script(lm, ["x"])
      :ok
  """
  @spec set_script(t, script) :: :ok
  def set_script(%__MODULE__{pid: pid}, script) do
    Agent.update(pid, &%{&1 | script: script, pos: 0})
  end

  @impl DSPex.LM
  def request(%__MODULE__{} = lm, messages, params) do
    context = DSPex.Predict.current_call() || %{}
    n = max(1, Map.get(params, :n) || 1)

    req = %{
      messages: messages,
      params: params,
      context: Map.take(context, [:predictor, :attempt])
    }

    replies =
      case Agent.get_and_update(lm.pid, &take(&1, n, req)) do
        {:fun, fun} -> call_fun(fun, messages, params, context, n)
        other -> other
      end

    case replies do
      {:completion, c} ->
        {:ok, record_usage(c)}

      {:ok, texts} ->
        {:ok, record_usage(completion(lm, messages, Enum.map(texts, &render(&1, context))))}

      {:error, _} = err ->
        err
    end
  end

  # Like a provider LM, report usage to the open DSPex.Usage scopes.
  defp record_usage(completion) do
    DSPex.Usage.record(
      Map.get(completion, :model, "scripted"),
      Map.get(completion, :usage) || %{}
    )

    completion
  end

  @doc """
  Like `request/3`, but emits the reply text to `sink` as `{:delta, chunk}` in
  `chunk_size`-byte pieces first.
  """
  @impl DSPex.LM
  @spec stream(t, list, map, (term -> term)) :: {:ok, map} | {:error, DSPex.Error.t()}
  def stream(%__MODULE__{} = lm, messages, params, sink) when is_function(sink, 1) do
    with {:ok, completion} <- request(lm, messages, params) do
      DSPex.LM.replay_text(completion, sink, lm.chunk_size)
      {:ok, completion}
    end
  end

  defp take(%{script: fun} = st, _n, req) when is_function(fun) do
    {{:fun, fun}, %{st | requests: [req | st.requests]}}
  end

  defp take(%{script: script, pos: pos, cycle: cycle} = st, n, req) do
    st = %{st | requests: [req | st.requests]}
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

  defp call_fun(fun, messages, params, context, n) do
    reply =
      case fun do
        f when is_function(f, 3) -> f.(messages, params, context)
        f when is_function(f, 2) -> f.(messages, params)
      end

    case reply do
      {:ok, %{choices: _} = completion} -> {:completion, completion}
      {:error, %DSPex.Error{}} = err -> err
      list when is_list(list) -> {:ok, list}
      one when is_binary(one) or is_map(one) -> {:ok, List.duplicate(one, n)}
    end
  end

  defp render(text, _context) when is_binary(text), do: text

  defp render(fields, context) when is_map(fields) do
    fields = Map.new(fields, fn {k, v} -> {to_key(k), v} end)

    case context do
      %{signature: sig, adapter: adapter} when not is_nil(sig) and not is_nil(adapter) ->
        adapter.format_assistant_message(sig, fields)

      _ ->
        # No predictor context (a raw DSPex.LM.request): ChatAdapter layout.
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
