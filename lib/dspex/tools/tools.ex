defmodule DSPex.Tools do
  @moduledoc """
  A registry of tools by name: register tools (modules that `use DSPex.Tool`, named
  functions, `%DSPex.Tool{}`), list them, look one up and execute it by the name an LM
  wrote.

      tools = DSPex.Tools.new([MyApp.WeatherTool, &MyApp.Search.top/2])
      DSPex.Tools.names(tools)                   #=> ["get_weather", "top"]
      DSPex.Tools.execute(tools, "top", %{"query" => "elixir"})
      #=> {:ok, ["..."]}

  A registry is a plain value (programs hold it in a field, like DSPy holds its tools
  dict); names keep their registration order, which is the order an LM sees them in.
  Lookups compare the LM's text with the registered names as strings: no atom is ever
  created from it.

  `execute/4` returns `{:ok, result}` or `{:error, %DSPex.Error{}}` (`:tool_not_found`
  besides `DSPex.Tool.call/3`'s errors); `observe/4` returns what an agent appends to its
  trajectory: the result, or DSPy's `"Execution error in <name>: <message>"`.

  ## Examples

      iex> add = DSPex.Tool.new(fn a, b -> a + b end, name: "add", args: [a: :integer, b: :integer])
      iex> tools = DSPex.Tools.new([add])
      iex> DSPex.Tools.execute(tools, "add", %{"a" => 1, "b" => 2})
      {:ok, 3}
      iex> DSPex.Tools.observe(tools, "mul", %{})
      "Execution error in mul: Tool mul is not one of the registered tools: add."
  """

  alias DSPex.{Error, Tool}

  @type t :: %__MODULE__{tools: %{binary => Tool.t()}, order: [binary]}
  defstruct tools: %{}, order: []

  @doc """
  Builds a registry from a list of tools (anything `DSPex.Tool.from/1` accepts) or
  returns a registry as is. Raises `ArgumentError` on a duplicate name.

  ## Examples

      iex> DSPex.Tools.new([]) |> DSPex.Tools.names()
      []
  """
  @spec new(t | [Tool.tool_like()]) :: t
  def new(%__MODULE__{} = registry), do: registry
  def new(tools) when is_list(tools), do: Enum.reduce(tools, %__MODULE__{}, &register(&2, &1))

  def new(other) do
    raise ArgumentError, "tools are a list of tools or a DSPex.Tools, got: #{inspect(other)}"
  end

  @doc """
  Adds a tool. Raises `ArgumentError` when its name is taken.

  ## Examples

      iex> t = DSPex.Tool.new(fn -> "pong" end, name: "ping", args: [])
      iex> DSPex.Tools.new([]) |> DSPex.Tools.register(t) |> DSPex.Tools.names()
      ["ping"]
  """
  @spec register(t, Tool.tool_like()) :: t
  def register(%__MODULE__{} = registry, tool) do
    tool = Tool.from(tool)

    if Map.has_key?(registry.tools, tool.name) do
      raise ArgumentError, "a tool named #{inspect(tool.name)} is registered already"
    end

    %{
      registry
      | tools: Map.put(registry.tools, tool.name, tool),
        order: registry.order ++ [tool.name]
    }
  end

  @doc """
  The registered names, in registration order.

  ## Examples

      iex> DSPex.Tools.names(DSPex.Tools.new([]))
      []
  """
  @spec names(t) :: [binary]
  def names(%__MODULE__{order: order}), do: order

  @doc """
  The registered tools, in registration order.

  ## Examples

      iex> DSPex.Tools.list(DSPex.Tools.new([]))
      []
  """
  @spec list(t) :: [Tool.t()]
  def list(%__MODULE__{} = registry),
    do: Enum.map(registry.order, &Map.fetch!(registry.tools, &1))

  @doc """
  The registered tools as native function definitions (`DSPex.Tool.function_spec/1`,
  OpenAI's shape; every DSPex provider converts it), in registration order — what a
  request's `tools` param takes.

  ## Examples

      iex> t = DSPex.Tool.new(fn q -> q end, name: "echo", args: [q: :string])
      iex> [spec] = DSPex.Tools.specs(DSPex.Tools.new([t]))
      iex> spec.function.name
      "echo"
  """
  @spec specs(t) :: [map]
  def specs(%__MODULE__{} = registry), do: registry |> list() |> Enum.map(&Tool.function_spec/1)

  @doc """
  Looks a tool up by name (any binary, e.g. written by an LM).

  ## Examples

      iex> {:error, err} = DSPex.Tools.fetch(DSPex.Tools.new([]), "search")
      iex> {err.type, err.message}
      {:tool_not_found, "Tool search is not one of the registered tools: (none)."}
  """
  @spec fetch(t, binary) :: {:ok, Tool.t()} | {:error, Error.t()}
  def fetch(%__MODULE__{} = registry, name) when is_binary(name) do
    case registry.tools do
      %{^name => tool} ->
        {:ok, tool}

      _ ->
        known = if registry.order == [], do: "(none)", else: Enum.join(registry.order, ", ")

        {:error,
         Error.new(
           :tool_not_found,
           "Tool #{String.slice(name, 0, 64)} is not one of the registered tools: #{known}.",
           %{known: registry.order}
         )}
    end
  end

  def fetch(%__MODULE__{} = registry, name), do: fetch(registry, inspect(name))

  @doc """
  Looks the tool up and calls it (`DSPex.Tool.call/3`, same options).

  ## Examples

      iex> up = DSPex.Tool.new(fn s -> String.upcase(s) end, name: "up", args: [s: :string])
      iex> DSPex.Tools.execute(DSPex.Tools.new([up]), "up", %{"s" => "a"})
      {:ok, "A"}
  """
  @spec execute(t, binary, map, keyword) :: {:ok, term} | {:error, Error.t()}
  def execute(%__MODULE__{} = registry, name, args, opts \\ []) do
    with {:ok, tool} <- fetch(registry, name), do: Tool.call(tool, args, opts)
  end

  @doc """
  Executes and returns what an agent observes: the result, or
  `"Execution error in <name>: <message>"` (as DSPy's ReAct writes it) for any failure.

  ## Examples

      iex> half = DSPex.Tool.new(fn n -> div(n, 2) end, name: "half", args: [n: :integer])
      iex> DSPex.Tools.observe(DSPex.Tools.new([half]), "half", %{"n" => 10})
      5
      iex> DSPex.Tools.observe(DSPex.Tools.new([half]), "half", %{"n" => 1, "m" => 2})
      "Execution error in half: Arg m is not in the tool's args."
  """
  @spec observe(t, binary, map, keyword) :: term
  def observe(%__MODULE__{} = registry, name, args, opts \\ []) do
    case execute(registry, name, args, opts) do
      {:ok, value} -> value
      {:error, %Error{message: m}} -> error_observation(name, m)
    end
  end

  @doc false
  def error_observation(name, message) when is_binary(name),
    do: "Execution error in #{String.slice(name, 0, 64)}: #{message}"

  def error_observation(name, message), do: error_observation(inspect(name), message)
end
