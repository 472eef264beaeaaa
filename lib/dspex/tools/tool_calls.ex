defmodule DSPex.ToolCall do
  @moduledoc """
  One tool call an LM asked for — DSPy's `ToolCalls.ToolCall`: the provider's call `id`
  (`nil` when the call came as text), the tool `name` and its `args` (a map with string
  keys, as the LM wrote them). See `DSPex.ToolCalls`.
  """

  @type t :: %__MODULE__{id: binary | nil, name: binary, args: map}
  defstruct id: nil, name: nil, args: %{}
end

defmodule DSPex.ToolCalls do
  @moduledoc """
  The tool calls an LM asked for — DSPy's `dspy.ToolCalls`, the value of a
  `tool_calls`-typed output field — and their execution through a `DSPex.Tools`
  registry.

  With native function calling the calls come from the provider's reply
  (`from_provider/1`: OpenAI `tool_calls`, Anthropic `tool_use`, Gemini `functionCall`,
  all in the OpenAI shape by then); without it the LM writes
  `{"tool_calls": [{"name": "...", "args": {...}}]}` and the adapter parses it
  (`new/1`).

      {:ok, pred} = DSPex.call(agent, question: q, tools: tools)
      results = DSPex.ToolCalls.execute(pred.calls, tools)

  ## Examples

      iex> {:ok, calls} = DSPex.ToolCalls.new(%{"tool_calls" => [%{"name" => "add", "args" => %{"a" => 1, "b" => 2}}]})
      iex> add = DSPex.Tool.new(fn a, b -> a + b end, name: "add", args: [a: :integer, b: :integer])
      iex> [%{name: "add", result: {:ok, 3}}] = DSPex.ToolCalls.execute(calls, [add])
      iex> DSPex.ToolCalls.format(calls)
      %{"tool_calls" => [%{"name" => "add", "args" => %{"a" => 1, "b" => 2}}]}
  """

  alias DSPex.{Error, Settings, ToolCall, Tools}

  @type t :: %__MODULE__{tool_calls: [ToolCall.t()]}
  defstruct tool_calls: []

  @typedoc "The outcome of one executed call."
  @type result :: %{id: binary | nil, name: binary, result: {:ok, term} | {:error, Error.t()}}

  # Calls executed at once; an LM asking for more waits for free slots.
  @max_concurrency 16

  @doc """
  Builds the value from what an LM or a user gives, as DSPy's validator accepts it:
  `%{"tool_calls" => [call]}`, a list of calls, or one call, where a call is
  `%{"name" => ..., "args" => %{...}}` (`"arguments"` may be a JSON text) or an
  OpenAI-shaped `%{"id" => ..., "function" => %{"name" => ..., "arguments" => ...}}`.
  Keys may be atoms or strings.

  ## Examples

      iex> {:ok, c} = DSPex.ToolCalls.new([%{name: "search", args: %{query: "cats"}}])
      iex> hd(c.tool_calls)
      %DSPex.ToolCall{id: nil, name: "search", args: %{"query" => "cats"}}
      iex> {:error, err} = DSPex.ToolCalls.new("search(cats)")
      iex> err.type
      :invalid_tool_calls
  """
  @spec new(term) :: {:ok, t} | {:error, Error.t()}
  def new(%__MODULE__{} = calls), do: {:ok, calls}

  def new(value) do
    value = stringify(value)

    items =
      case value do
        %{"tool_calls" => list} when is_list(list) -> list
        list when is_list(list) -> list
        %{} = one -> if call_map?(one), do: [one], else: :error
        _ -> :error
      end

    with list when is_list(list) <- items,
         calls when is_list(calls) <- collect(list) do
      {:ok, %__MODULE__{tool_calls: calls}}
    else
      _ ->
        {:error,
         Error.new(
           :invalid_tool_calls,
           "Received invalid value for tool calls: expected {\"tool_calls\": [{\"name\": ..., " <>
             "\"args\": {...}}]}, got: " <> inspect(value, limit: 5, printable_limit: 80)
         )}
    end
  end

  @doc """
  Like `new/1` but raises the `%DSPex.Error{}`.

  ## Examples

      iex> DSPex.ToolCalls.new!([]).tool_calls
      []
  """
  @spec new!(term) :: t
  def new!(value) do
    case new(value) do
      {:ok, calls} -> calls
      {:error, e} -> raise e
    end
  end

  defp collect(list) do
    Enum.reduce_while(list, [], fn item, acc ->
      case item do
        %{} = m -> if call_map?(m), do: {:cont, [call(m) | acc]}, else: {:halt, :error}
        _ -> {:halt, :error}
      end
    end)
    |> case do
      :error -> :error
      calls -> Enum.reverse(calls)
    end
  end

  defp call_map?(m),
    do:
      (is_binary(m["name"]) and (Map.has_key?(m, "args") or Map.has_key?(m, "arguments"))) or
        is_map(m["function"])

  defp call(%{"function" => %{} = f} = m) do
    %ToolCall{id: id(m), name: f["name"] || m["name"], args: args(f["arguments"])}
  end

  defp call(m),
    do: %ToolCall{id: id(m), name: m["name"], args: args(Map.get(m, "args", m["arguments"]))}

  defp id(m) do
    case m["id"] || m["call_id"] do
      id when is_binary(id) -> id
      _ -> nil
    end
  end

  # String arguments are repaired like DSPy's json_repair.loads; anything but an object
  # is no arguments.
  defp args(%{} = map), do: map

  defp args(text) when is_binary(text) do
    case DSPex.JSON.decode(text) do
      {:ok, %{} = map} ->
        map

      _ ->
        case DSPex.JSON.repair(text) do
          {:ok, repaired} ->
            case DSPex.JSON.decode(repaired) do
              {:ok, %{} = map} -> map
              _ -> %{}
            end

          _ ->
            %{}
        end
    end
  end

  defp args(_), do: %{}

  defp stringify(%_{} = s), do: s
  defp stringify(m) when is_map(m), do: Map.new(m, fn {k, v} -> {key(k), stringify(v)} end)
  defp stringify(l) when is_list(l), do: Enum.map(l, &stringify/1)
  defp stringify(v), do: v

  defp key(k) when is_atom(k), do: Atom.to_string(k)
  defp key(k), do: k

  @doc """
  Builds the value from a completion choice's `tool_calls` (the OpenAI shape every
  DSPex provider returns: `%{id:, type: "function", function: %{name:, arguments:}}`).

  ## Examples

      iex> c = DSPex.ToolCalls.from_provider([%{id: "call_1", type: "function", function: %{name: "f", arguments: ~s({"x": 1})}}])
      iex> c.tool_calls
      [%DSPex.ToolCall{id: "call_1", name: "f", args: %{"x" => 1}}]
  """
  @spec from_provider([map] | nil) :: t
  def from_provider(nil), do: %__MODULE__{}

  def from_provider(list) when is_list(list) do
    %__MODULE__{tool_calls: Enum.map(list, &call(stringify(&1)))}
  end

  @doc """
  The value as DSPy formats it: `%{"tool_calls" => [%{"name" => ..., "args" => ...}]}`.

  ## Examples

      iex> DSPex.ToolCalls.format(%DSPex.ToolCalls{})
      %{"tool_calls" => []}
  """
  @spec format(t) :: map
  def format(%__MODULE__{tool_calls: calls}) do
    %{"tool_calls" => Enum.map(calls, &%{"name" => &1.name, "args" => &1.args})}
  end

  @doc """
  Executes every call through `tools` (a `DSPex.Tools` registry or a list of tools),
  concurrently, each in its own supervised task (`DSPex.Tool.call/3`); returns one
  result per call, in call order. Options are passed to `DSPex.Tool.call/3`
  (`timeout:`).

  ## Examples

      iex> {:ok, calls} = DSPex.ToolCalls.new([%{"name" => "nope", "args" => %{}}])
      iex> [%{result: {:error, err}}] = DSPex.ToolCalls.execute(calls, [])
      iex> err.type
      :tool_not_found
  """
  @spec execute(t, Tools.t() | list, keyword) :: [result]
  def execute(%__MODULE__{tool_calls: calls}, tools, opts \\ []) do
    registry = Tools.new(tools)

    calls
    |> Settings.async_stream(
      fn c ->
        %{
          id: c.id,
          name: c.name,
          result: Tools.execute(registry, c.name, c.args, Keyword.put(opts, :call_id, c.id))
        }
      end,
      max_concurrency: @max_concurrency,
      timeout: :infinity,
      ordered: true
    )
    |> Enum.map(fn {:ok, r} -> r end)
  end

  @doc """
  The messages that continue a native function-calling conversation after `execute/3`:
  the assistant turn with the calls, then one `role: "tool"` message per result (its
  value as text, JSON for data; an error as DSPy's `"Execution error in ..."`). Every
  provider renders these in its own format.

  ## Examples

      iex> calls = DSPex.ToolCalls.from_provider([%{id: "c1", function: %{name: "f", arguments: "{}"}}])
      iex> [assistant, tool] = DSPex.ToolCalls.messages(calls, [%{id: "c1", name: "f", result: {:ok, %{"t" => 20}}}])
      iex> {assistant.role, tool}
      {"assistant", %{role: "tool", tool_call_id: "c1", name: "f", content: ~s({"t":20})}}
  """
  @spec messages(t, [result]) :: [map]
  def messages(%__MODULE__{tool_calls: calls}, results) do
    assistant = %{
      role: "assistant",
      content: nil,
      tool_calls:
        Enum.map(calls, fn c ->
          %{
            id: c.id,
            type: "function",
            function: %{name: c.name, arguments: DSPex.JSON.encode!(c.args)}
          }
        end)
    }

    tool_msgs =
      Enum.map(results, fn r ->
        content =
          case r.result do
            {:ok, v} -> result_text(v)
            {:error, %Error{message: m}} -> Tools.error_observation(r.name, m)
          end

        %{role: "tool", tool_call_id: r.id, name: r.name, content: content}
      end)

    [assistant | tool_msgs]
  end

  @doc false
  # A tool result as the text a tool message carries: strings as they are, JSON for
  # data (DSPy's _tool_result_content), anything else inspected.
  def result_text(v) when is_binary(v), do: v

  def result_text(v) do
    case DSPex.JSON.encode(v) do
      {:ok, json} -> json
      {:error, _} -> inspect(v, limit: 50, printable_limit: 4096)
    end
  end
end
