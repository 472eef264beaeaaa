defmodule DSPex.LM.Providers.Gemini do
  @moduledoc """
  Google Gemini `generateContent` (`POST {api_base}/models/{model}:generateContent`,
  streaming via `:streamGenerateContent?alt=sse`), API key in the `x-goog-api-key` header.

  * `system` messages → `systemInstruction`; `user` → role `user`, `assistant` → role
    `model`; consecutive turns of one role are merged;
  * `temperature`, `max_tokens` (`maxOutputTokens`), `n` (`candidateCount`), `stop`
    (`stopSequences`), `seed`, `top_p`, `top_k` go into `generationConfig`;
  * `response_format` `json_object` → `responseMimeType: "application/json"`,
    `json_schema` → that plus `responseJsonSchema`;
  * OpenAI-style `tools` → `functionDeclarations` (their JSON-schema `parameters` as
    `parametersJsonSchema`); `tool_choice` → `toolConfig`;
    `functionCall` parts → OpenAI-shaped `tool_calls`; `thought: true` parts →
    `reasoning_content`;
  * `usageMetadata` → usage (`cachedContentTokenCount`, `thoughtsTokenCount`).
  """

  @behaviour DSPex.LM.Provider

  alias DSPex.Error
  alias DSPex.LM.Provider

  @default_base "https://generativelanguage.googleapis.com/v1beta"

  @impl true
  def default_base, do: @default_base

  @impl true
  def build(lm, messages, params, stream?) do
    {system, contents} = convert_messages(messages)

    gen =
      %{}
      |> Provider.put_if("temperature", params["temperature"])
      |> Provider.put_if(
        "maxOutputTokens",
        params["max_tokens"] || params["max_completion_tokens"]
      )
      |> Provider.put_if("candidateCount", params["n"])
      |> Provider.put_if("stopSequences", Provider.stop_list(params["stop"]))
      |> Provider.put_if("seed", params["seed"])
      |> Provider.put_if("topP", params["top_p"])
      |> Provider.put_if("topK", params["top_k"])
      |> Provider.put_if("responseLogprobs", params["logprobs"])
      |> Provider.put_if("logprobs", params["top_logprobs"])
      |> Map.merge(response_format(params["response_format"]))
      |> Map.merge(Provider.stringify(params["generation_config"] || %{}))

    body =
      %{"contents" => contents}
      |> Provider.put_if(
        "systemInstruction",
        if(system == "", do: nil, else: %{"parts" => [%{"text" => system}]})
      )
      |> Provider.put_if("generationConfig", if(gen == %{}, do: nil, else: gen))
      |> Provider.put_if("tools", tools(params["tools"]))
      |> Provider.put_if("toolConfig", tool_config(params["tool_choice"]))
      |> Provider.put_if("safetySettings", params["safety_settings"])

    base = Provider.base_url(lm, @default_base)

    url =
      if stream?,
        do: "#{base}/models/#{lm.model_name}:streamGenerateContent?alt=sse",
        else: "#{base}/models/#{lm.model_name}:generateContent"

    {:ok, %{url: url, headers: Provider.headers(lm, {"x-goog-api-key", ""}), body: body}}
  end

  defp response_format(nil), do: %{}

  defp response_format(rf) when is_map(rf) do
    case Provider.get(rf, :type) do
      "json_object" ->
        %{"responseMimeType" => "application/json"}

      "json_schema" ->
        js = Provider.get(rf, :json_schema) || %{}
        schema = Provider.get(js, :schema)

        Provider.put_if(
          %{"responseMimeType" => "application/json"},
          "responseJsonSchema",
          Provider.stringify(schema)
        )

      _ ->
        %{}
    end
  end

  defp response_format(_), do: %{}

  @doc false
  def convert_messages(messages) do
    {system, rest} = Provider.split_system(messages)

    # tool_call_id -> function name, for functionResponse parts.
    names =
      for m <- rest, tc <- Provider.get(m, :tool_calls) || [], into: %{} do
        {Provider.get(tc, :id), Provider.get(Provider.get(tc, :function) || %{}, :name)}
      end

    contents = rest |> Enum.map(&convert(&1, names)) |> Provider.merge_turns("parts")

    {system, contents}
  end

  defp convert(m, names) do
    case Provider.get(m, :role) do
      "tool" ->
        id = Provider.get(m, :tool_call_id)
        name = Provider.get(m, :name) || Map.get(names, id) || "tool"

        %{
          "role" => "user",
          "parts" => [
            %{
              "functionResponse" => %{
                "name" => name,
                "response" => %{"content" => Provider.content_text(Provider.get(m, :content))}
              }
            }
          ]
        }

      "assistant" ->
        calls =
          for tc <- Provider.get(m, :tool_calls) || [] do
            f = Provider.get(tc, :function) || %{}
            args = Provider.tool_arguments(Provider.get(f, :arguments))

            %{"functionCall" => %{"name" => Provider.get(f, :name), "args" => args}}
          end

        %{"role" => "model", "parts" => parts(Provider.get(m, :content)) ++ calls}

      _ ->
        %{"role" => "user", "parts" => parts(Provider.get(m, :content))}
    end
  end

  defp parts(content), do: Provider.convert_parts(content, &%{"text" => &1}, &image_part/1)

  defp image_part(url) do
    case Provider.data_url(url || "") do
      {:ok, mime, data} -> %{"inlineData" => %{"mimeType" => mime, "data" => data}}
      :error -> %{"fileData" => %{"fileUri" => url}}
    end
  end

  defp tools(nil), do: nil

  defp tools(list) when is_list(list) do
    decls =
      for t <- list, f = Provider.get(t, :function), is_map(f) do
        # `parametersJsonSchema` takes full JSON Schema (`additionalProperties`, `const`,
        # `default`, ...), which `parameters`' OpenAPI subset rejects.
        %{"name" => Provider.get(f, :name), "description" => Provider.get(f, :description) || ""}
        |> Provider.put_if(
          "parametersJsonSchema",
          Provider.stringify(Provider.get(f, :parameters))
        )
      end

    [%{"functionDeclarations" => decls}]
  end

  defp tool_config(nil), do: nil
  defp tool_config("auto"), do: %{"functionCallingConfig" => %{"mode" => "AUTO"}}
  defp tool_config("required"), do: %{"functionCallingConfig" => %{"mode" => "ANY"}}
  defp tool_config("none"), do: %{"functionCallingConfig" => %{"mode" => "NONE"}}

  defp tool_config(m) when is_map(m) do
    case Provider.get(m, :function) do
      f when is_map(f) ->
        %{
          "functionCallingConfig" => %{
            "mode" => "ANY",
            "allowedFunctionNames" => [Provider.get(f, :name)]
          }
        }

      _ ->
        nil
    end
  end

  defp tool_config(_), do: nil

  @impl true
  def parse(%{"candidates" => cands} = body, lm) when is_list(cands) and cands != [] do
    choices =
      cands
      |> Enum.sort_by(&(&1["index"] || 0))
      |> Enum.map(fn c ->
        choice(get_in(c, ["content", "parts"]) || [], c["finishReason"], c["logprobsResult"])
      end)

    Provider.completion(choices, usage(body["usageMetadata"]), lm, body["modelVersion"])
  end

  def parse(%{"promptFeedback" => %{"blockReason" => reason}}, _lm) do
    {:error,
     Error.new(:bad_request, "Gemini blocked the prompt: #{reason}", %{block_reason: reason})}
  end

  def parse(body, _lm) do
    {msg, _} = error_info(body)

    {:error,
     Error.new(:server, "Gemini returned no candidates#{if msg, do: ": " <> msg, else: ""}")}
  end

  defp choice(parts, finish, logprobs) do
    text = for %{"text" => t} = p <- parts, p["thought"] != true, into: "", do: t
    thought = for %{"text" => t, "thought" => true} <- parts, into: "", do: t

    calls =
      parts
      |> Enum.filter(&is_map(&1["functionCall"]))
      |> Enum.with_index()
      |> Enum.map(fn {%{"functionCall" => fc}, i} ->
        %{
          id: fc["id"] || "call_#{i}",
          type: "function",
          function: %{name: fc["name"], arguments: Provider.encode_json!(fc["args"] || %{})}
        }
      end)

    %{
      text: text,
      finish_reason: if(calls != [], do: "tool_calls", else: finish_reason(finish)),
      tool_calls: if(calls == [], do: nil, else: calls),
      logprobs: logprobs,
      reasoning_content: if(thought == "", do: nil, else: thought)
    }
  end

  @doc false
  def finish_reason(nil), do: nil
  def finish_reason("STOP"), do: "stop"
  def finish_reason("MAX_TOKENS"), do: "length"

  def finish_reason(r)
      when r in ~w(SAFETY RECITATION BLOCKLIST PROHIBITED_CONTENT SPII IMAGE_SAFETY),
      do: "content_filter"

  def finish_reason(r) when is_binary(r), do: String.downcase(r)

  @doc false
  def usage(nil), do: Provider.zero_usage()

  def usage(u) do
    prompt = u["promptTokenCount"] || 0
    thoughts = u["thoughtsTokenCount"] || 0
    completion = (u["candidatesTokenCount"] || 0) + thoughts

    Provider.usage(
      prompt,
      completion,
      u["totalTokenCount"],
      u["cachedContentTokenCount"],
      thoughts
    )
  end

  @impl true
  def error_info(body), do: Provider.generic_error_info(body)

  # --- streaming: every SSE event is a partial GenerateContentResponse --------------

  @impl true
  def stream_init(lm), do: %{lm: lm, cands: %{}, usage: nil, response_model: nil}

  @impl true
  def stream_event(state, _event, data) do
    with {:ok, chunk} <- Provider.decode_json(data) do
      case chunk do
        %{"error" => _} ->
          {msg, code} = error_info(chunk)
          {:error, Error.new(:server, "Gemini stream error: #{msg}", %{code: code})}

        %{} ->
          state = %{
            state
            | usage: chunk["usageMetadata"] || state.usage,
              response_model: state.response_model || chunk["modelVersion"]
          }

          {deltas, state} =
            Enum.reduce(chunk["candidates"] || [], {[], state}, fn c, {ds, st} ->
              idx = c["index"] || 0
              parts = get_in(c, ["content", "parts"]) || []
              acc = Map.get(st.cands, idx, %{parts: [], finish: nil})
              acc = %{acc | parts: [parts | acc.parts], finish: c["finishReason"] || acc.finish}

              new_text = for %{"text" => t} = p <- parts, p["thought"] != true, t != "", do: t

              ds = if idx == 0, do: Enum.reverse(new_text, ds), else: ds
              ds = if idx == 0, do: Enum.reverse(call_pieces(acc.parts, parts), ds), else: ds
              {ds, %{st | cands: Map.put(st.cands, idx, acc)}}
            end)

          {:ok, Enum.reverse(deltas), state}

        _ ->
          {:ok, [], state}
      end
    end
  end

  # Gemini streams each functionCall whole: one piece per call, numbered after the
  # calls of earlier chunks (ids as choice/3 gives them).
  defp call_pieces([_new | earlier], parts) do
    before = earlier |> Enum.concat() |> Enum.count(&is_map(&1["functionCall"]))

    parts
    |> Enum.filter(&is_map(&1["functionCall"]))
    |> Enum.with_index(before)
    |> Enum.map(fn {%{"functionCall" => fc}, i} ->
      {:tool_call,
       %{
         index: i,
         id: fc["id"] || "call_#{i}",
         name: fc["name"],
         arguments: Provider.encode_json!(fc["args"] || %{})
       }}
    end)
  end

  @impl true
  def stream_finish(state) do
    choices =
      state.cands
      |> Enum.sort_by(fn {i, _} -> i end)
      |> Enum.map(fn {_, acc} ->
        choice(acc.parts |> Enum.reverse() |> Enum.concat(), acc.finish, nil)
      end)

    Provider.completion(choices, usage(state.usage), state.lm, state.response_model)
  end
end
