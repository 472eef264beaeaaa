defmodule DSPex.Adapter do
  @moduledoc """
  Adapters turn a signature, demos and inputs into chat messages, and an LM completion
  back into output fields. `DSPex.Adapter.Chat` (default) and `DSPex.Adapter.JSON` render
  byte-identically to DSPy 3.3.1's ChatAdapter and JSONAdapter.
  """

  @type message :: %{role: binary, content: binary | list}

  @doc "Renders the full message list: system, demos, history, current user turn."
  @callback format(DSPex.Signature.t(), demos :: [map], inputs :: map, opts :: keyword) ::
              [message]

  @doc "Parses completion text into a map of output field name (atom) to value."
  @callback parse(DSPex.Signature.t(), completion :: binary) ::
              {:ok, %{atom => term}} | {:error, DSPex.Error.t()}

  @doc """
  `parse/2` with options; `ordered_dicts: true` keeps the LM's key order of dict
  values as `{:ordered, [{key, value}]}`.
  """
  @callback parse(DSPex.Signature.t(), completion :: binary, opts :: keyword) ::
              {:ok, %{atom => term}} | {:error, DSPex.Error.t()}

  @doc "Renders output values as an assistant message (used for demos and scripted LMs)."
  @callback format_assistant_message(DSPex.Signature.t(), outputs :: map) :: binary

  @doc "DSPy's `format_user_message_content`: the input blocks, no output reminder."
  @callback format_user_message_content(DSPex.Signature.t(), inputs :: map) :: binary

  @doc """
  Whether the adapter uses the LM's native function calling by default (DSPy:
  `ChatAdapter` no, `JSONAdapter` yes). See `plan/6`.
  """
  @callback native_function_calling?() :: boolean

  @optional_callbacks parse: 3, format_user_message_content: 2, native_function_calling?: 0

  @typedoc """
  How one predictor call is rendered and parsed (DSPy's `_call_preprocess`): the
  signature the prompt is rendered from, the request params, the output field native
  tool calls go to (`nil` when they are not used), and parse options.
  """
  @type plan :: %{
          signature: DSPex.Signature.t(),
          render: DSPex.Signature.t(),
          params: map,
          tool_calls_field: atom | nil,
          parse_opts: keyword
        }

  @tool_params [:tools, :tool_choice, :parallel_tool_calls]

  @doc """
  Plans one call of `signature` with `adapter` on `lm` (DSPy's
  `Adapter._call_preprocess`). With native function calling (`native:` `true`, or by
  default when the adapter's `c:native_function_calling?/0` says so) and a signature
  with an input typed `:tool` or `{:list, :tool}` and an output typed `:tool_calls`, an
  LM that `supports?(:tools)` gets the tools as native function definitions (`tools`
  param, `DSPex.Tool.function_spec/1`) and both fields leave the rendered prompt; the
  reply's tool calls fill the output (`parse_choice/3`). Without native function
  calling the `tools`, `tool_choice` and `parallel_tool_calls` params are dropped, as
  DSPy does. Options: `native:`, `ordered_dicts:`.

  ## Examples

      iex> sig = DSPex.Signature.parse!("question, tools: list[Tool] -> calls: ToolCalls")
      iex> t = DSPex.Tool.new(fn q -> q end, name: "search", args: [q: :string])
      iex> plan = DSPex.Adapter.plan(DSPex.Adapter.Chat, DSPex.LM.new("openai/gpt-4o-mini"), sig, %{tools: [t]}, %{}, native: true)
      iex> {DSPex.Signature.to_string(plan.render), plan.tool_calls_field, hd(plan.params.tools).function.name}
      {"question -> ", :calls, "search"}
  """
  @spec plan(module, struct, DSPex.Signature.t(), map, map, keyword) :: plan
  def plan(adapter, lm, sig, inputs, params, opts \\ []) do
    native =
      case Keyword.get(opts, :native) do
        nil -> native_default(adapter)
        n -> n
      end

    base = %{
      signature: sig,
      render: sig,
      params: params,
      tool_calls_field: nil,
      parse_opts: Keyword.take(opts, [:ordered_dicts])
    }

    tools_in = Enum.find(sig.inputs, &(&1.type in [:tool, {:list, :tool}]))
    calls_out = Enum.find(sig.outputs, &(&1.type == :tool_calls))

    cond do
      not native ->
        %{base | params: Map.drop(params, @tool_params ++ Enum.map(@tool_params, &to_string/1))}

      calls_out != nil and tools_in == nil ->
        raise ArgumentError,
              "You provided an output field #{calls_out.name} to receive the tool calls " <>
                "information, but did not provide any tools as the input. Please provide a list " <>
                "of tools as the input by adding an input field with type `list[Tool]`."

      calls_out != nil and is_struct(lm) and DSPex.BaseLM.supports?(lm, :tools) ->
        tools =
          inputs |> Map.get(tools_in.name, []) |> List.wrap() |> Enum.map(&DSPex.Tool.from/1)

        render =
          sig |> DSPex.Signature.delete(calls_out.name) |> DSPex.Signature.delete(tools_in.name)

        %{
          base
          | render: render,
            params: Map.put(params, :tools, Enum.map(tools, &DSPex.Tool.function_spec/1)),
            tool_calls_field: calls_out.name
        }

      true ->
        base
    end
  end

  defp native_default(adapter) do
    Code.ensure_loaded(adapter)

    function_exported?(adapter, :native_function_calling?, 0) and
      adapter.native_function_calling?() == true
  end

  @doc """
  Parses one completion choice by `plan` (DSPy's `_call_postprocess`): the text with the
  rendered signature; with native tool calls, the choice's `tool_calls` as a
  `%DSPex.ToolCalls{}` in the planned output field (a text beside them is parsed when it
  parses, and ignored when not). Outputs left out of the prompt are `nil` when the reply
  has none. A choice with neither text nor tool calls is an `:adapter_parse` error.

  ## Examples

      iex> plan = DSPex.Adapter.plan(DSPex.Adapter.Chat, nil, DSPex.Signature.parse!("q -> a"), %{}, %{}, native: false)
      iex> DSPex.Adapter.parse_choice(DSPex.Adapter.Chat, plan, %{text: "[[ ## a ## ]]\nok"})
      {:ok, %{a: "ok"}}
      iex> {:error, err} = DSPex.Adapter.parse_choice(DSPex.Adapter.Chat, plan, %{text: ""})
      iex> err.message
      "The LM returned an empty or null response."
  """
  @spec parse_choice(module, plan, map) :: {:ok, map} | {:error, DSPex.Error.t()}
  def parse_choice(adapter, plan, choice) do
    text = Map.get(choice, :text)
    calls = Map.get(choice, :tool_calls)
    native_calls? = plan.tool_calls_field != nil and is_list(calls) and calls != []
    has_text? = is_binary(text) and text != ""

    parsed =
      cond do
        native_calls? ->
          with true <- has_text? and plan.render.outputs != [],
               {:ok, fields} <- parse(adapter, plan.render, text, plan.parse_opts) do
            {:ok, fields}
          else
            _ -> {:ok, %{}}
          end

        has_text? ->
          parse(adapter, plan.render, text, plan.parse_opts)

        true ->
          {:error,
           DSPex.Error.new(:adapter_parse, "The LM returned an empty or null response.", %{
             adapter: adapter,
             lm_response: inspect(Map.take(choice, [:text, :tool_calls])),
             missing: Enum.map(plan.signature.outputs, & &1.name),
             found: [],
             signature: plan.signature
           })}
      end

    with {:ok, fields} <- parsed do
      fields = Enum.reduce(plan.signature.outputs, fields, &Map.put_new(&2, &1.name, nil))

      if native_calls?,
        do: {:ok, Map.put(fields, plan.tool_calls_field, DSPex.ToolCalls.from_provider(calls))},
        else: {:ok, fields}
    end
  end

  @doc """
  Parses with `adapter`, passing `opts` when the adapter takes them (`c:parse/3`).

  ## Examples

      iex> sig = DSPex.Signature.parse!("q -> a")
      iex> DSPex.Adapter.parse(DSPex.Adapter.Chat, sig, "[[ ## a ## ]]\nyes", [])
      {:ok, %{a: "yes"}}
  """
  @spec parse(module, DSPex.Signature.t(), binary, keyword) ::
          {:ok, %{atom => term}} | {:error, DSPex.Error.t()}
  def parse(adapter, sig, completion, []), do: adapter.parse(sig, completion)

  def parse(adapter, sig, completion, opts) do
    Code.ensure_loaded(adapter)

    if function_exported?(adapter, :parse, 3),
      do: adapter.parse(sig, completion, opts),
      else: adapter.parse(sig, completion)
  end

  @doc """
  DSPy's `format_user_message_content` with `adapter` (the ChatAdapter's, which the JSON
  adapter shares, for an adapter without its own).

  ## Examples

      iex> sig = DSPex.Signature.parse!("q -> a")
      iex> DSPex.Adapter.format_user_message_content(DSPex.Adapter.JSON, sig, %{q: "hi"})
      "[[ ## q ## ]]\nhi"
  """
  @spec format_user_message_content(module, DSPex.Signature.t(), map) :: binary
  def format_user_message_content(adapter, sig, inputs) do
    Code.ensure_loaded(adapter)

    if function_exported?(adapter, :format_user_message_content, 2),
      do: adapter.format_user_message_content(sig, inputs),
      else: DSPex.Adapter.Chat.format_user_message_content(sig, inputs)
  end
end
