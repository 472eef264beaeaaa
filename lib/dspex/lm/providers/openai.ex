defmodule DSPex.LM.Providers.OpenAI do
  @moduledoc """
  OpenAI Chat Completions (`POST {api_base}/chat/completions`), and therefore every
  OpenAI-compatible server (vLLM, llama.cpp server, Ollama, LM Studio, Together, Groq, ...)
  through `api_base:`. `model_type: "text"` uses the legacy `/completions` endpoint with
  DSPy's prompt layout.

  Parameters are passed through as given (`temperature`, `max_tokens`, `n`, `stop`, `seed`,
  `response_format`, `tools`, `tool_choice`, `logprobs`, `top_logprobs`, `top_p`,
  `reasoning_effort`, ...). Reasoning models (`o1`/`o3`/`o4`/`o5`, `gpt-5*` except
  `gpt-5-chat*`) follow DSPy's rules: `temperature` must be unset or 1.0, `max_tokens`
  unset or at least 16000, and `max_tokens` is sent as `max_completion_tokens`.

  Tool calls come back in OpenAI's shape with atom keys:
  `%{id: "call_1", type: "function", function: %{name: "f", arguments: "{\\"x\\": 1}"}}`.
  """

  @behaviour DSPex.LM.Provider

  alias DSPex.Error
  alias DSPex.LM.Provider

  @default_base "https://api.openai.com/v1"

  @reasoning ~r/^(o[1345](-(mini|nano|pro))?(-\d{4}-\d{2}-\d{2})?|gpt-5(?!-chat)(-.*)?)$/

  @doc """
  Whether `model` (without the `openai/` prefix) is an OpenAI reasoning model.

  ## Examples

      iex> DSPex.LM.Providers.OpenAI.reasoning_model?("o3-mini")
      true
      iex> DSPex.LM.Providers.OpenAI.reasoning_model?("gpt-5-nano")
      true
      iex> DSPex.LM.Providers.OpenAI.reasoning_model?("gpt-5-chat-latest")
      false
      iex> DSPex.LM.Providers.OpenAI.reasoning_model?("gpt-4o-mini")
      false
  """
  @spec reasoning_model?(binary) :: boolean
  def reasoning_model?(model) when is_binary(model) do
    family = model |> String.split("/") |> List.last()
    Regex.match?(@reasoning, family)
  end

  @doc """
  Checks DSPy's reasoning-model parameter rules for `model` and `params` (binary keys).

  ## Examples

      iex> DSPex.LM.Providers.OpenAI.check_reasoning_params("o3", %{"temperature" => 1.0, "max_tokens" => 20000})
      :ok
      iex> {:error, e} = DSPex.LM.Providers.OpenAI.check_reasoning_params("o3", %{"temperature" => 0.0})
      iex> e.type
      :bad_request
      iex> DSPex.LM.Providers.OpenAI.check_reasoning_params("gpt-4o", %{"temperature" => 0.0})
      :ok
  """
  @spec check_reasoning_params(binary, map) :: :ok | {:error, Error.t()}
  def check_reasoning_params(model, params) do
    if reasoning_model?(model) do
      t = params["temperature"]
      m = params["max_tokens"] || params["max_completion_tokens"]

      cond do
        not (is_nil(t) or t == 1 or t == 1.0) ->
          {:error, reasoning_error(model)}

        not (is_nil(m) or (is_integer(m) and m >= 16_000)) ->
          {:error, reasoning_error(model)}

        true ->
          :ok
      end
    else
      :ok
    end
  end

  defp reasoning_error(model) do
    Error.new(
      :bad_request,
      "OpenAI's reasoning models (#{model}) require passing temperature=1.0 or nil and " <>
        "max_tokens >= 16000 or nil, e.g. DSPex.LM.new(\"openai/#{model}\", temperature: 1.0, max_tokens: 16000)",
      %{model: model}
    )
  end

  @impl true
  def default_base, do: @default_base

  @impl true
  def build(lm, messages, params, stream?) do
    model = lm.model_name

    reasoning? =
      case Keyword.fetch(lm.options || [], :reasoning_model) do
        {:ok, r} when is_boolean(r) -> r
        _ -> reasoning_model?(model)
      end

    with :ok <- if(reasoning?, do: check_reasoning_params(model, params), else: :ok) do
      params =
        if reasoning? and Map.has_key?(params, "max_tokens") do
          {m, rest} = Map.pop(params, "max_tokens")
          Map.put(rest, "max_completion_tokens", m)
        else
          params
        end

      base = Provider.base_url(lm, @default_base)

      {path, body} =
        if lm.model_type == "text" do
          prompt =
            messages
            |> Enum.map(&Provider.content_text(Provider.get(&1, :content)))
            |> Kernel.++(["BEGIN RESPONSE:"])
            |> Enum.join("\n\n")

          {"/completions", Map.merge(params, %{"model" => model, "prompt" => prompt})}
        else
          {"/chat/completions",
           Map.merge(params, %{"model" => model, "messages" => Provider.stringify(messages)})}
        end

      body =
        if stream? do
          body
          |> Map.put("stream", true)
          |> Map.update(
            "stream_options",
            %{"include_usage" => true},
            &Map.put(&1, "include_usage", true)
          )
        else
          body
        end

      headers = Provider.headers(lm, {"authorization", "Bearer "})
      {:ok, %{url: base <> path, headers: headers, body: body}}
    end
  end

  @impl true
  def parse(%{"choices" => choices} = body, lm) when is_list(choices) do
    choices =
      choices
      |> Enum.sort_by(&(&1["index"] || 0))
      |> Enum.map(&choice/1)

    Provider.completion(choices, usage(body["usage"]), lm, body["model"])
  end

  def parse(body, _lm) do
    case Provider.generic_error_info(body) do
      {msg, _} when is_binary(msg) ->
        {:error, Error.new(:server, "OpenAI-compatible server returned an error: " <> msg)}

      _ ->
        {:error, Error.new(:server, "OpenAI-compatible server returned no choices")}
    end
  end

  defp choice(c) do
    msg = c["message"] || %{}

    %{
      text: msg["content"] || c["text"],
      finish_reason: c["finish_reason"],
      tool_calls: tool_calls(msg["tool_calls"]),
      logprobs: c["logprobs"],
      reasoning_content: msg["reasoning_content"] || msg["reasoning"]
    }
  end

  defp tool_calls(nil), do: nil
  defp tool_calls([]), do: nil

  defp tool_calls(list) when is_list(list) do
    Enum.map(list, fn tc ->
      f = tc["function"] || %{}
      args = f["arguments"]
      args = if is_binary(args), do: args, else: Provider.encode_json!(args || %{})

      %{
        id: tc["id"],
        type: tc["type"] || "function",
        function: %{name: f["name"], arguments: args}
      }
    end)
  end

  @doc false
  def usage(nil), do: Provider.usage(0, 0, 0, 0, 0)

  def usage(u) when is_map(u) do
    Provider.usage(
      u["prompt_tokens"],
      u["completion_tokens"],
      u["total_tokens"],
      get_in(u, ["prompt_tokens_details", "cached_tokens"]),
      get_in(u, ["completion_tokens_details", "reasoning_tokens"])
    )
  end

  @impl true
  def error_info(body), do: Provider.generic_error_info(body)

  # --- streaming -------------------------------------------------------------------

  @impl true
  def stream_init(lm), do: %{lm: lm, choices: %{}, usage: nil, response_model: nil}

  @impl true
  def stream_event(state, _event, data) do
    case String.trim(data) do
      "[DONE]" ->
        {:done, [], state}

      "" ->
        {:ok, [], state}

      json ->
        with {:ok, chunk} <- Provider.decode_json(json) do
          chunk(state, chunk)
        end
    end
  end

  defp chunk(_state, %{"error" => _} = body) do
    {msg, code} = Provider.generic_error_info(body)
    msg = msg || "stream error"

    {:error,
     Error.new(
       Provider.classify(400, msg, code) |> stream_type(code),
       "OpenAI-compatible stream error: " <> msg
     )}
  end

  defp chunk(state, chunk) when is_map(chunk) do
    state = %{state | response_model: state.response_model || chunk["model"]}
    state = if is_map(chunk["usage"]), do: %{state | usage: chunk["usage"]}, else: state

    {deltas, state} =
      Enum.reduce(chunk["choices"] || [], {[], state}, fn c, {ds, st} ->
        idx = c["index"] || 0
        delta = c["delta"] || %{}
        text = delta["content"] || c["text"]

        acc =
          Map.get(st.choices, idx, %{
            text: [],
            reasoning: [],
            tool_calls: %{},
            finish_reason: nil,
            logprobs: nil
          })

        acc = if is_binary(text), do: %{acc | text: [acc.text | text]}, else: acc

        acc =
          case delta["reasoning_content"] || delta["reasoning"] do
            r when is_binary(r) -> %{acc | reasoning: [acc.reasoning | r]}
            _ -> acc
          end

        acc = if c["finish_reason"], do: %{acc | finish_reason: c["finish_reason"]}, else: acc
        acc = if c["logprobs"], do: %{acc | logprobs: c["logprobs"]}, else: acc
        tool_deltas = delta["tool_calls"] || []
        acc = Enum.reduce(tool_deltas, acc, &tool_delta/2)

        ds = if idx == 0 and is_binary(text) and text != "", do: [text | ds], else: ds
        ds = if idx == 0, do: Enum.reduce(tool_deltas, ds, &[tool_call_event(&1) | &2]), else: ds
        {ds, %{st | choices: Map.put(st.choices, idx, acc)}}
      end)

    {:ok, Enum.reverse(deltas), state}
  end

  defp chunk(state, _), do: {:ok, [], state}

  defp stream_type(:bad_request, code) when code in ["rate_limit_exceeded"], do: :rate_limit
  defp stream_type(:bad_request, code) when code in ["server_error"], do: :server
  defp stream_type(t, _), do: t

  # A streamed piece of a tool call of the first choice, for the sink (see
  # DSPex.LM.Provider.stream_event/3): `id` and `name` come with the first piece.
  defp tool_call_event(tc) do
    f = tc["function"] || %{}

    {:tool_call,
     %{
       index: tc["index"] || 0,
       id: tc["id"],
       name: f["name"],
       arguments: if(is_binary(f["arguments"]), do: f["arguments"], else: "")
     }}
  end

  defp tool_delta(tc, acc) do
    i = tc["index"] || 0
    f = tc["function"] || %{}
    cur = Map.get(acc.tool_calls, i, %{id: nil, name: nil, args: []})

    cur = %{
      cur
      | id: cur.id || tc["id"],
        name: cur.name || f["name"],
        args: if(is_binary(f["arguments"]), do: [cur.args | f["arguments"]], else: cur.args)
    }

    %{acc | tool_calls: Map.put(acc.tool_calls, i, cur)}
  end

  @impl true
  def stream_finish(state) do
    choices =
      state.choices
      |> Enum.sort_by(fn {i, _} -> i end)
      |> Enum.map(fn {_, acc} ->
        reasoning = IO.iodata_to_binary(acc.reasoning)

        tcs =
          case Enum.sort_by(acc.tool_calls, fn {i, _} -> i end) do
            [] ->
              nil

            list ->
              Enum.map(list, fn {_, t} ->
                %{
                  id: t.id,
                  type: "function",
                  function: %{name: t.name, arguments: IO.iodata_to_binary(t.args)}
                }
              end)
          end

        %{
          text: IO.iodata_to_binary(acc.text),
          finish_reason: acc.finish_reason,
          tool_calls: tcs,
          logprobs: acc.logprobs,
          reasoning_content: if(reasoning == "", do: nil, else: reasoning)
        }
      end)

    Provider.completion(choices, usage(state.usage), state.lm, state.response_model)
  end
end
