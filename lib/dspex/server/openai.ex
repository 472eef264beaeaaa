defmodule DSPex.Server.OpenAI do
  @moduledoc """
  OpenAI-compatible endpoints of `DSPex.Server`, over any LM DSPex can call — a
  provider, a fallback chain, a local model: tools that speak OpenAI's Chat Completions
  API (SDKs, editors, other DSPy installs with `api_base=`) can use them.

    * `GET /v1/models` — `{"object": "list", "data": [{"id": name, "object": "model", ...}]}`
    * `POST /v1/chat/completions` — `model` (a served name), `messages`, and the
      request params DSPex knows (`temperature`, `max_tokens` or
      `max_completion_tokens`, `n`, `stop`, `top_p`, `seed`, `presence_penalty`,
      `frequency_penalty`, `logprobs`, `top_logprobs`, `response_format`, `tools`,
      `tool_choice`, `reasoning_effort`); other fields are ignored. `"stream": true`
      answers with `chat.completion.chunk` server-sent events and `data: [DONE]`
      (with `stream_options.include_usage`, a last chunk carries the usage).

  The served names are the server's `models:` option: `:registry` (default) serves
  every named LM (`config :dspex, lms: [...]`, `DSPex.LM.Registry`) under its name; a
  map or keyword list names LMs (or registry names) explicitly, e.g.
  `models: %{"gpt-4o-mini" => DSPex.LM.new("openai/gpt-4o-mini"), "local" => :local}`.
  A request's `model` is matched against those names as a string (no atom is made).

  Calls go through `DSPex.BaseLM` (usage, history, the `[:dspex, :lm, :call]` span) in
  a task of the server, bounded by `request_timeout_ms`.
  """

  alias DSPex.Error
  alias DSPex.Server.{Response, Router}

  @params %{
    "temperature" => :temperature,
    "max_tokens" => :max_tokens,
    "max_completion_tokens" => :max_tokens,
    "n" => :n,
    "stop" => :stop,
    "top_p" => :top_p,
    "seed" => :seed,
    "presence_penalty" => :presence_penalty,
    "frequency_penalty" => :frequency_penalty,
    "logprobs" => :logprobs,
    "top_logprobs" => :top_logprobs,
    "response_format" => :response_format,
    "tools" => :tools,
    "tool_choice" => :tool_choice,
    "reasoning_effort" => :reasoning_effort
  }

  @message_keys %{
    "role" => :role,
    "content" => :content,
    "name" => :name,
    "tool_calls" => :tool_calls,
    "tool_call_id" => :tool_call_id
  }

  @doc """
  The LMs a server answers for: `%{name => lm_or_registry_name}`.
  """
  @spec served(map) :: %{binary => struct | atom}
  def served(%{models: :registry}),
    do: Map.new(DSPex.LM.Registry.names(), &{Atom.to_string(&1), &1})

  def served(%{models: models}), do: models

  @doc false
  def models(ctx, _req) do
    data =
      for name <- ctx |> served() |> Map.keys() |> Enum.sort() do
        %{id: name, object: "model", created: 0, owned_by: "dspex"}
      end

    Response.json(200, %{object: "list", data: data})
  end

  @doc false
  def chat(ctx, req) do
    with {:ok, body} <- decode(req.body),
         {:ok, name, lm} <- model(ctx, body),
         {:ok, messages} <- messages(body),
         {:ok, params} <- params(body) do
      if body["stream"] == true do
        stream(ctx, name, lm, messages, params, get_in(body, ["stream_options", "include_usage"]))
      else
        case run(ctx, fn -> DSPex.BaseLM.request(lm, messages, params) end) do
          {:ok, completion} -> Response.json(200, completion_json(name, completion))
          {:error, %Error{} = e} -> Response.from_error(e)
        end
      end
    else
      {:error, %Error{} = e} -> Response.from_error(e)
    end
  end

  defp decode(body) do
    case DSPex.JSON.decode(body) do
      {:ok, %{} = map} -> {:ok, map}
      {:ok, _} -> {:error, Error.new(:invalid_request, "the body must be a JSON object")}
      {:error, e} -> {:error, Error.new(:invalid_json, "the body is not JSON: " <> e.message)}
    end
  end

  defp model(ctx, %{"model" => name}) when is_binary(name) do
    case Map.fetch(served(ctx), name) do
      {:ok, lm} when is_atom(lm) ->
        with {:ok, built} <- DSPex.LM.Registry.lookup(lm), do: {:ok, name, built}

      {:ok, lm} ->
        {:ok, name, lm}

      :error ->
        {:error,
         Error.new(
           :model_not_found,
           "the model #{inspect(String.slice(name, 0, 100))} is not served here; see GET /v1/models"
         )}
    end
  end

  defp model(_ctx, _body),
    do: {:error, Error.new(:invalid_request, "\"model\" (a string) is required")}

  defp messages(%{"messages" => [_ | _] = list}) do
    Enum.reduce_while(list, {:ok, []}, fn
      %{"role" => role} = m, {:ok, acc} when is_binary(role) ->
        msg = for {k, v} <- m, atom = @message_keys[k], into: %{}, do: {atom, v}

        if is_binary(msg[:content]) or is_list(msg[:content]) or is_nil(msg[:content]) do
          {:cont, {:ok, [Map.put_new(msg, :content, nil) | acc]}}
        else
          {:halt,
           {:error, Error.new(:invalid_request, "a message content is a string or a list")}}
        end

      _, _ ->
        {:halt,
         {:error, Error.new(:invalid_request, "each message is an object with a \"role\"")}}
    end)
    |> case do
      {:ok, acc} -> {:ok, Enum.reverse(acc)}
      err -> err
    end
  end

  defp messages(_),
    do: {:error, Error.new(:invalid_request, "\"messages\" (a non-empty list) is required")}

  defp params(body) do
    given = for {k, v} <- body, atom = @params[k], not is_nil(v), do: {atom, v}

    case DSPex.Options.validate(given, DSPex.BaseLM.params_schema(), "POST /v1/chat/completions") do
      {:ok, valid} -> {:ok, Map.new(valid)}
      {:error, e} -> {:error, %{e | type: :invalid_request}}
    end
  end

  defp run(ctx, fun) do
    task =
      Task.Supervisor.async_nolink(ctx.task_sup, fn ->
        try do
          fun.()
        rescue
          e -> {:error, Error.new(:internal, "the LM call raised " <> Error.describe(e))}
        end
      end)

    case Task.yield(task, ctx.request_timeout_ms) || Task.shutdown(task, :brutal_kill) do
      {:ok, result} ->
        result

      nil ->
        {:error, Error.new(:timeout, "no completion within #{ctx.request_timeout_ms} ms")}

      {:exit, reason} ->
        {:error, Error.new(:internal, "the LM call exited: " <> Error.describe(reason))}
    end
  end

  defp id, do: "chatcmpl-" <> Base.encode16(:crypto.strong_rand_bytes(12), case: :lower)

  @doc false
  def completion_json(name, completion) do
    %{
      id: id(),
      object: "chat.completion",
      created: System.os_time(:second),
      model: name,
      choices:
        completion.choices
        |> Enum.with_index()
        |> Enum.map(fn {c, i} ->
          message =
            %{role: "assistant", content: Map.get(c, :text)}
            |> put_present(:tool_calls, Map.get(c, :tool_calls))
            |> put_present(:reasoning_content, Map.get(c, :reasoning_content))

          %{
            index: i,
            message: message,
            logprobs: Map.get(c, :logprobs),
            finish_reason: Map.get(c, :finish_reason) || "stop"
          }
        end),
      usage: usage_json(Map.get(completion, :usage) || %{})
    }
  end

  defp put_present(map, _k, nil), do: map
  defp put_present(map, k, v), do: Map.put(map, k, v)

  defp usage_json(u) do
    p = Map.get(u, :prompt_tokens, 0)
    c = Map.get(u, :completion_tokens, 0)
    %{prompt_tokens: p, completion_tokens: c, total_tokens: Map.get(u, :total_tokens, p + c)}
  end

  # --- streaming ----------------------------------------------------------------------

  defp stream(ctx, name, lm, messages, params, include_usage) do
    producer = fn emit ->
      me = self()
      ref = make_ref()
      sink = fn {:delta, text} -> send(me, {ref, {:delta, text}}) end

      task =
        Task.Supervisor.async_nolink(ctx.task_sup, fn ->
          result =
            try do
              DSPex.BaseLM.stream(lm, messages, params, sink)
            rescue
              e -> {:error, Error.new(:internal, "the LM call raised " <> Error.describe(e))}
            end

          send(me, {ref, {:done, result}})
        end)

      chunk = %{
        id: id(),
        object: "chat.completion.chunk",
        created: System.os_time(:second),
        model: name
      }

      first =
        Map.put(chunk, :choices, [
          %{index: 0, delta: %{role: "assistant", content: ""}, finish_reason: nil}
        ])

      if emit.(Response.sse(nil, first)) == :ok do
        deadline = System.monotonic_time(:millisecond) + ctx.request_timeout_ms
        pump(task, ref, emit, chunk, include_usage == true, deadline)
      else
        Router.stop_task(task, ref)
      end
    end

    {:stream, 200, Response.sse_headers(), producer}
  end

  defp pump(task, ref, emit, chunk, include_usage, deadline) do
    wait = max(deadline - System.monotonic_time(:millisecond), 0)

    receive do
      {^ref, {:delta, text}} ->
        data =
          Map.put(chunk, :choices, [%{index: 0, delta: %{content: text}, finish_reason: nil}])

        case emit.(Response.sse(nil, data)) do
          :ok -> pump(task, ref, emit, chunk, include_usage, deadline)
          {:error, :closed} -> Router.stop_task(task, ref)
        end

      {^ref, {:done, {:ok, completion}}} ->
        finish = (List.first(completion.choices) || %{}) |> Map.get(:finish_reason) || "stop"

        emit.(
          Response.sse(
            nil,
            Map.put(chunk, :choices, [%{index: 0, delta: %{}, finish_reason: finish}])
          )
        )

        if include_usage do
          usage = usage_json(Map.get(completion, :usage) || %{})
          emit.(Response.sse(nil, chunk |> Map.put(:choices, []) |> Map.put(:usage, usage)))
        end

        emit.(Response.sse(nil, "[DONE]"))
        Router.stop_task(task, ref)

      {^ref, {:done, {:error, %Error{} = e}}} ->
        emit.(Response.sse(nil, Response.error_body(e)))
        emit.(Response.sse(nil, "[DONE]"))
        Router.stop_task(task, ref)

      # The task ended without its {:done, _} (which it sends before it returns).
      {:DOWN, tref, :process, _, reason} when tref == task.ref ->
        e = Error.new(:internal, "the LM call exited: " <> Error.describe(reason))
        emit.(Response.sse(nil, Response.error_body(e)))
        emit.(Response.sse(nil, "[DONE]"))
        Router.flush_replies(ref)
    after
      wait ->
        Router.stop_task(task, ref)
        e = Error.new(:timeout, "the stream passed its deadline")
        emit.(Response.sse(nil, Response.error_body(e)))
        emit.(Response.sse(nil, "[DONE]"))
    end
  end
end
