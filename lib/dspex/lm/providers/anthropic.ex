defmodule DSPex.LM.Providers.Anthropic do
  @moduledoc """
  Anthropic Messages API (`POST {api_base}/v1/messages`).

  * `system` messages are joined (blank line between) into the top-level `system` field;
  * consecutive messages of one role are merged (the API wants alternating turns);
  * `max_tokens` is required by the API; DSPex sends 4096 unless given;
  * OpenAI-style `tools` (`%{type: "function", function: %{name, description, parameters}}`)
    become Anthropic tools (`name`, `description`, `input_schema`); `tool_choice`
    `"auto"`/`"required"`/`"none"`/a named function map to `auto`/`any`/`none`/`tool`,
    and `parallel_tool_calls: false` to `disable_parallel_tool_use`;
  * assistant `tool_calls` and `role: "tool"` results in the history become `tool_use` /
    `tool_result` blocks; `tool_use` blocks in the reply become OpenAI-shaped
    `tool_calls`;
  * image parts (`%{type: "image_url", image_url: %{url: ...}}`) become base64 or URL
    image blocks;
  * `stop` → `stop_sequences`; `n` > 1 is not supported by the API (error).

  Headers: `x-api-key`, `anthropic-version: 2023-06-01` (override with the
  `anthropic_version:` LM option).
  """

  @behaviour DSPex.LM.Provider

  alias DSPex.Error
  alias DSPex.LM.Provider

  @default_base "https://api.anthropic.com"
  @default_max_tokens 4096
  @passthrough ~w(temperature top_p top_k metadata thinking service_tier)

  @impl true
  def default_base, do: @default_base

  @impl true
  def build(lm, messages, params, stream?) do
    if (params["n"] || 1) > 1 do
      {:error, Error.new(:bad_request, "Anthropic's Messages API does not support n > 1")}
    else
      {system, msgs} = split_system(messages)

      body =
        params
        |> Map.take(@passthrough)
        |> Map.merge(%{
          "model" => lm.model_name,
          "messages" => msgs,
          "max_tokens" =>
            params["max_tokens"] || params["max_completion_tokens"] || @default_max_tokens
        })
        |> Provider.put_if("system", if(system == "", do: nil, else: system))
        |> Provider.put_if("stop_sequences", Provider.stop_list(params["stop"]))
        |> Provider.put_if("tools", tools(params["tools"]))
        |> Provider.put_if(
          "tool_choice",
          tool_choice(params["tool_choice"], params["parallel_tool_calls"])
        )
        |> Provider.put_if("stream", if(stream?, do: true, else: nil))

      version = Keyword.get(lm.options || [], :anthropic_version, "2023-06-01")
      headers = Provider.headers(lm, {"x-api-key", ""}, [{"anthropic-version", version}])

      {:ok,
       %{
         url: Provider.base_url(lm, @default_base) <> "/v1/messages",
         headers: headers,
         body: body
       }}
    end
  end

  @doc false
  def split_system(messages) do
    {system, rest} = Provider.split_system(messages)
    {system, rest |> Enum.map(&convert/1) |> merge_roles()}
  end

  defp convert(m) do
    case Provider.get(m, :role) do
      "tool" ->
        %{
          "role" => "user",
          "content" => [
            %{
              "type" => "tool_result",
              "tool_use_id" => Provider.get(m, :tool_call_id),
              "content" => Provider.content_text(Provider.get(m, :content))
            }
          ]
        }

      "assistant" ->
        text_blocks = blocks(Provider.get(m, :content))

        tool_blocks =
          for tc <- Provider.get(m, :tool_calls) || [] do
            f = Provider.get(tc, :function) || %{}

            %{
              "type" => "tool_use",
              "id" => Provider.get(tc, :id),
              "name" => Provider.get(f, :name),
              "input" => Provider.tool_arguments(Provider.get(f, :arguments))
            }
          end

        %{"role" => "assistant", "content" => text_blocks ++ tool_blocks}

      role ->
        %{"role" => role || "user", "content" => blocks(Provider.get(m, :content))}
    end
  end

  defp blocks(content), do: Provider.convert_parts(content, &text_block/1, &image_block/1)

  defp text_block(text), do: %{"type" => "text", "text" => text}

  defp image_block(url) do
    case Provider.data_url(url || "") do
      {:ok, mime, data} ->
        %{
          "type" => "image",
          "source" => %{"type" => "base64", "media_type" => mime, "data" => data}
        }

      :error ->
        %{"type" => "image", "source" => %{"type" => "url", "url" => url}}
    end
  end

  defp merge_roles(msgs) do
    msgs
    |> Provider.merge_turns("content")
    |> Enum.map(fn
      # A plain single text block is sent as a string (the common, compact form).
      %{"content" => [%{"type" => "text", "text" => t}]} = m -> %{m | "content" => t}
      m -> m
    end)
  end

  defp tools(nil), do: nil

  defp tools(list) when is_list(list) do
    Enum.map(list, fn t ->
      case Provider.get(t, :function) do
        f when is_map(f) ->
          %{
            "name" => Provider.get(f, :name),
            "description" => Provider.get(f, :description) || "",
            "input_schema" =>
              Provider.stringify(
                Provider.get(f, :parameters) || %{"type" => "object", "properties" => %{}}
              )
          }

        nil ->
          Provider.stringify(t)
      end
    end)
  end

  # `parallel_tool_calls: false` is Anthropic's `disable_parallel_tool_use` (on a
  # tool_choice, `auto` unless one is given).
  defp tool_choice(choice, false) do
    (tool_choice(choice) || %{"type" => "auto"})
    |> Map.put("disable_parallel_tool_use", true)
  end

  defp tool_choice(choice, _parallel), do: tool_choice(choice)

  defp tool_choice(nil), do: nil
  defp tool_choice("auto"), do: %{"type" => "auto"}
  defp tool_choice("required"), do: %{"type" => "any"}
  defp tool_choice("any"), do: %{"type" => "any"}
  defp tool_choice("none"), do: %{"type" => "none"}

  defp tool_choice(m) when is_map(m) do
    case Provider.get(m, :function) do
      f when is_map(f) -> %{"type" => "tool", "name" => Provider.get(f, :name)}
      nil -> Provider.stringify(m)
    end
  end

  @impl true
  def parse(%{"content" => content} = body, lm) when is_list(content) do
    Provider.completion(
      [choice_from_blocks(content, body["stop_reason"])],
      usage(body["usage"]),
      lm,
      body["model"]
    )
  end

  def parse(body, _lm) do
    {msg, _} = error_info(body)
    {:error, Error.new(:server, "Anthropic returned an unexpected body: #{msg || "no content"}")}
  end

  defp choice_from_blocks(blocks, stop_reason) do
    text = for %{"type" => "text", "text" => t} <- blocks, into: "", do: t
    thinking = for %{"type" => "thinking", "thinking" => t} <- blocks, into: "", do: t

    tool_calls =
      for %{"type" => "tool_use"} = b <- blocks do
        %{
          id: b["id"],
          type: "function",
          function: %{name: b["name"], arguments: Provider.encode_json!(b["input"] || %{})}
        }
      end

    %{
      text: text,
      finish_reason: finish_reason(stop_reason),
      tool_calls: if(tool_calls == [], do: nil, else: tool_calls),
      logprobs: nil,
      reasoning_content: if(thinking == "", do: nil, else: thinking)
    }
  end

  @doc false
  def finish_reason("end_turn"), do: "stop"
  def finish_reason("stop_sequence"), do: "stop"
  def finish_reason("max_tokens"), do: "length"
  def finish_reason("tool_use"), do: "tool_calls"
  def finish_reason("refusal"), do: "content_filter"
  def finish_reason(other), do: other

  @doc false
  def usage(nil), do: Provider.zero_usage()

  def usage(u) do
    input =
      (u["input_tokens"] || 0) + (u["cache_read_input_tokens"] || 0) +
        (u["cache_creation_input_tokens"] || 0)

    output = u["output_tokens"] || 0

    Provider.usage(input, output, input + output, u["cache_read_input_tokens"], 0)
    |> Map.put(:cache_creation_tokens, u["cache_creation_input_tokens"] || 0)
  end

  @impl true
  def error_info(%{"error" => %{} = e}), do: {e["message"], e["type"]}
  def error_info(body), do: Provider.generic_error_info(body)

  # --- streaming -------------------------------------------------------------------

  @impl true
  def stream_init(lm),
    do: %{lm: lm, blocks: %{}, tools: %{}, usage: %{}, stop_reason: nil, response_model: nil}

  @impl true
  def stream_event(state, event, data) do
    with {:ok, ev} <- Provider.decode_json(data) do
      type = ev["type"] || event
      handle(type, ev, state)
    end
  end

  defp handle("message_start", ev, state) do
    msg = ev["message"] || %{}

    {:ok, [],
     %{state | usage: Map.merge(state.usage, msg["usage"] || %{}), response_model: msg["model"]}}
  end

  defp handle("content_block_start", ev, state) do
    b = ev["content_block"] || %{}
    text = b["text"] || ""
    idx = ev["index"] || 0
    block = %{type: b["type"], text: [text], json: [], id: b["id"], name: b["name"]}
    state = %{state | blocks: Map.put(state.blocks, idx, block)}

    case b["type"] do
      "text" when text != "" ->
        {:ok, [text], state}

      "tool_use" ->
        # tool calls are counted from 0 among the tool_use blocks
        n = map_size(state.tools)
        piece = %{index: n, id: b["id"], name: b["name"], arguments: ""}
        {:ok, [{:tool_call, piece}], %{state | tools: Map.put(state.tools, idx, n)}}

      _ ->
        {:ok, [], state}
    end
  end

  defp handle("content_block_delta", ev, state) do
    idx = ev["index"] || 0
    d = ev["delta"] || %{}
    block = Map.get(state.blocks, idx, %{type: "text", text: [], json: [], id: nil, name: nil})

    {block, deltas} =
      case d["type"] do
        "text_delta" ->
          {%{block | text: [block.text | d["text"] || ""]}, [d["text"] || ""]}

        "input_json_delta" ->
          part = d["partial_json"] || ""
          piece = %{index: Map.get(state.tools, idx, 0), id: nil, name: nil, arguments: part}

          {%{block | json: [block.json | part]},
           if(part == "", do: [], else: [{:tool_call, piece}])}

        "thinking_delta" ->
          {%{block | text: [block.text | d["thinking"] || ""]}, []}

        _ ->
          {block, []}
      end

    {:ok, Enum.reject(deltas, &(&1 == "")), %{state | blocks: Map.put(state.blocks, idx, block)}}
  end

  defp handle("message_delta", ev, state) do
    stop = get_in(ev, ["delta", "stop_reason"]) || state.stop_reason
    {:ok, [], %{state | stop_reason: stop, usage: Map.merge(state.usage, ev["usage"] || %{})}}
  end

  defp handle("message_stop", _ev, state), do: {:done, [], state}

  defp handle("error", ev, _state) do
    {msg, code} = error_info(ev)
    msg = msg || "stream error"

    type =
      case code do
        "overloaded_error" -> :server
        "api_error" -> :server
        "rate_limit_error" -> :rate_limit
        "authentication_error" -> :auth
        "permission_error" -> :auth
        _ -> Provider.classify(400, msg, code)
      end

    {:error, Error.new(type, "Anthropic stream error: " <> msg, %{code: code})}
  end

  defp handle(_other, _ev, state), do: {:ok, [], state}

  @impl true
  def stream_finish(state) do
    blocks =
      state.blocks
      |> Enum.sort_by(fn {i, _} -> i end)
      |> Enum.map(fn {_, b} ->
        case b.type do
          "tool_use" ->
            input =
              case IO.iodata_to_binary(b.json) do
                "" ->
                  %{}

                json ->
                  case Provider.decode_json(json) do
                    {:ok, m} -> m
                    _ -> %{}
                  end
              end

            %{"type" => "tool_use", "id" => b.id, "name" => b.name, "input" => input}

          "thinking" ->
            %{"type" => "thinking", "thinking" => IO.iodata_to_binary(b.text)}

          _ ->
            %{"type" => "text", "text" => IO.iodata_to_binary(b.text)}
        end
      end)

    Provider.completion(
      [choice_from_blocks(blocks, state.stop_reason)],
      usage(state.usage),
      state.lm,
      state.response_model
    )
  end
end
