defmodule DSPex.Tool do
  @moduledoc """
  A tool an agent can call — DSPy's `dspy.Tool`, ALTAR-style: a declared name,
  description and typed parameters in front of an Elixir function.

  Three ways to make one:

      # 1. a named function: names, defaults, types and description come from its
      #    documented signature, @spec and @doc (see DSPex.Tool.Introspect)
      DSPex.Tool.new(&MyApp.Search.top/2)

      # 2. any function with declared parameters
      DSPex.Tool.new(fn city, unit -> MyApp.Weather.now(city, unit) end,
        name: "get_weather",
        desc: "The current weather in a city.",
        args: [city: [type: :string, desc: "City name"], unit: [type: {:literal, ["C", "F"]}, default: "C"]]
      )

      # 3. a module
      defmodule MyApp.WeatherTool do
        @moduledoc "The current weather in a city."
        use DSPex.Tool, name: "get_weather"

        param :city, :string, desc: "City name"
        param :unit, {:literal, ["C", "F"]}, default: "C"

        @impl DSPex.Tool
        def run(%{city: city, unit: unit}), do: MyApp.Weather.now(city, unit)
      end

  Parameter types are type terms of the one type model (`DSPex.Signature.Field`:
  `:string`, `:integer`, `{:list, :str}`, `{:optional, :int}`, `"dict[str, int]"`, ...);
  the JSON schema the LM sees is derived from them.

  ## Calling

  `call/3` validates the arguments first — unknown names (`"Arg k is not in the tool's
  args."`), missing required ones, values that do not fit their type — then fills
  defaults and runs the function in its own task under `DSPex.Tools.TaskSupervisor`
  with a timeout (`timeout:`, default 30 s). A raise, throw, exit, timeout or
  `{:error, reason}` return comes back as `{:error, %DSPex.Error{}}`; the caller never
  crashes, and nothing the tool raised is logged. `{:ok, value}` returns `value`; any
  other return value is the result as is. The caller's settings overrides
  (`DSPex.with_settings/2`, usage tracking, streaming) travel into the task, so a tool
  may run DSPex programs itself.

  Names and arguments written by the LM are untrusted text: they are matched against the
  declared parameter names as strings and never become atoms.

  Each call runs in a `[:dspex, :tool, :call]` telemetry span (metadata `tool`,
  `call_id`; stop adds `status: :ok | :error` and `error`, the error type).

  ## Examples

      iex> add = DSPex.Tool.new(fn a, b -> a + b end, name: "add", args: [a: :integer, b: :integer])
      iex> DSPex.Tool.call(add, %{"a" => 2, "b" => 3})
      {:ok, 5}
      iex> {:error, err} = DSPex.Tool.call(add, %{"a" => 2, "c" => 3})
      iex> err.message
      "Arg c is not in the tool's args."
  """

  alias DSPex.{Error, Settings, Telemetry}
  alias DSPex.Tool.{Args, Introspect, Param}

  @typedoc "How the function receives its arguments."
  @type style :: :positional | :map

  @type t :: %__MODULE__{
          name: binary,
          desc: binary | nil,
          params: [Param.t()],
          fun: function,
          style: style,
          extra_args: boolean,
          timeout: timeout
        }

  @default_timeout 30_000

  defstruct name: nil,
            desc: nil,
            params: [],
            fun: nil,
            style: :map,
            extra_args: false,
            timeout: @default_timeout

  @typedoc "Anything `new/2` and `DSPex.Tools` accept as a tool."
  @type tool_like :: t | module | function | {module, atom}

  @doc "Runs the tool with its validated arguments (atom keys, defaults filled)."
  @callback run(args :: map) :: term

  @options DSPex.Options.schema!(
             name: [
               type: :string,
               doc:
                 "The name the LM calls it by (letters, digits, `_`, `-`; at most 64). Default: the function's name."
             ],
             desc: [
               type: {:or, [:string, nil]},
               doc: "What it does, for the LM. Default: the function's `@doc`."
             ],
             args: [
               type: :list,
               doc:
                 "Its parameters, in order: `[city: :string, days: [type: :integer, default: 3, desc: \"...\"]]`. Default: read from the function's documented signature and `@spec`."
             ],
             timeout: [
               type: :timeout,
               doc: "Milliseconds a call may run before it is stopped (default 30_000)."
             ],
             extra_args: [
               type: :boolean,
               doc:
                 "Accept arguments not in `args` and pass them on (DSPy's `**kwargs`; default `false`); only for functions taking a map."
             ]
           )

  @name_re ~r/\A[A-Za-z0-9_-]{1,64}\z/

  @doc """
  Builds a tool from a function (a capture like `&MyApp.Search.top/2` or an anonymous
  function), `{module, function}`, a module that `use DSPex.Tool`, or a `%DSPex.Tool{}`
  (options then override its fields). Raises `ArgumentError` on a bad option or a
  function whose parameters cannot be found.

  A function with as many parameters as `args` is called positionally (in `args`
  order); a function of one parameter with several `args` gets them as a map with
  atom keys.

  ## Options

  #{DSPex.Options.docs(@options)}

  ## Examples

      iex> t = DSPex.Tool.new(&String.starts_with?/2, name: "starts_with")
      iex> {t.name, Enum.map(t.params, & &1.name), t.style}
      {"starts_with", [:string, :prefix], :positional}
      iex> t = DSPex.Tool.new(fn q -> String.upcase(q) end, name: "shout", args: [q: :string])
      iex> DSPex.Tool.call(t, %{"q" => "hi"})
      {:ok, "HI"}
  """
  @spec new(tool_like, keyword) :: t
  def new(tool, opts \\ []) when is_list(opts) do
    opts = DSPex.Options.validate!(opts, @options, "DSPex.Tool.new/2")
    tool |> base(opts) |> finish(opts)
  end

  @doc """
  Normalizes anything `new/2` accepts into a `%DSPex.Tool{}` (a tool is returned as is).

  ## Examples

      iex> t = DSPex.Tool.new(fn -> :ok end, name: "ping", args: [])
      iex> DSPex.Tool.from(t) == t
      true
  """
  @spec from(tool_like) :: t
  def from(%__MODULE__{} = tool), do: tool
  def from(other), do: new(other)

  # --- building ------------------------------------------------------------------

  defp base(%__MODULE__{} = tool, _opts), do: tool

  defp base(module, _opts) when is_atom(module) do
    Code.ensure_loaded(module)

    if function_exported?(module, :__tool__, 0) do
      module.__tool__()
    else
      raise ArgumentError,
            "#{inspect(module)} is not a tool: `use DSPex.Tool` in it, or pass a function " <>
              "(e.g. &#{inspect(module)}.fun/1)"
    end
  end

  defp base({module, fun}, opts) when is_atom(module) and is_atom(fun) do
    Code.ensure_loaded(module)

    arity =
      case opts[:args] do
        nil ->
          case for({^fun, a} <- module.__info__(:functions), do: a) |> Enum.max(fn -> nil end) do
            nil -> raise ArgumentError, "#{inspect(module)}.#{fun} is not a public function"
            a -> a
          end

        args ->
          length(args)
      end

    base(Function.capture(module, fun, arity), opts)
  end

  defp base(fun, opts) when is_function(fun) do
    info = Function.info(fun)
    {:arity, arity} = Function.info(fun, :arity)

    {params, desc, name} =
      case {opts[:args], info[:type]} do
        {nil, :external} ->
          case Introspect.params(info[:module], info[:name], arity) do
            {:ok, {params, desc}} -> {params, desc, Atom.to_string(info[:name])}
            {:error, msg} -> raise ArgumentError, msg
          end

        {nil, _local} when arity == 0 ->
          {[], nil, nil}

        {nil, _local} ->
          raise ArgumentError,
                "an anonymous function tool needs its parameters: DSPex.Tool.new(fun, name: " <>
                  "\"...\", args: [name: type, ...])"

        {args, type} ->
          name = if type == :external, do: Atom.to_string(info[:name]), else: nil
          {Param.list!(args), nil, name}
      end

    %__MODULE__{name: name, desc: desc, params: params, fun: fun, style: style!(fun, params)}
  end

  defp base(other, _opts) do
    raise ArgumentError,
          "a tool is a function, {module, function}, a module that `use DSPex.Tool` or a " <>
            "%DSPex.Tool{}, got: #{inspect(other)}"
  end

  defp style!(fun, params) do
    {:arity, arity} = Function.info(fun, :arity)

    cond do
      arity == length(params) ->
        :positional

      arity == 1 ->
        :map

      true ->
        raise ArgumentError,
              "the tool function takes #{arity} argument(s) but #{length(params)} parameter(s) " <>
                "are declared: take them positionally (one per parameter) or as one map"
    end
  end

  defp finish(tool, opts) do
    tool =
      Enum.reduce(opts, tool, fn
        {:name, n}, t -> %{t | name: n}
        {:desc, d}, t -> %{t | desc: d}
        {:timeout, ms}, t -> %{t | timeout: ms}
        {:extra_args, e}, t -> %{t | extra_args: e}
        {:args, _}, t -> t
      end)

    cond do
      not is_binary(tool.name) ->
        raise ArgumentError, "this tool needs a name: DSPex.Tool.new(fun, name: \"search\", ...)"

      not Regex.match?(@name_re, tool.name) ->
        raise ArgumentError,
              "invalid tool name #{inspect(tool.name)}: use letters, digits, '_' and '-' " <>
                "(at most 64), as LM providers require"

      tool.extra_args and tool.style != :map ->
        raise ArgumentError, "extra_args: true needs a function that takes its arguments as a map"

      true ->
        tool
    end
  end

  # --- what the LM sees -----------------------------------------------------------

  @doc """
  The tool as DSPy writes it into prompts (`str(dspy.Tool)`, e.g. in `DSPex.ReAct`'s
  instructions): `name, whose description is <desc>...</desc>. It takes arguments
  {...}.` with the argument schemas as a Python dict.

  ## Examples

      iex> t = DSPex.Tool.new(fn q, k -> {q, k} end, name: "search", desc: "Search the web.",
      ...>   args: [query: :string, k: [type: :integer, default: 3]])
      iex> DSPex.Tool.format(t)
      "search, whose description is <desc>Search the web.</desc>. It takes arguments {'query': {'type': 'string'}, 'k': {'type': 'integer', 'default': 3}}."
  """
  @spec format(t) :: binary
  def format(%__MODULE__{} = tool), do: Args.text(tool)

  @doc """
  The argument schemas, DSPy's `Tool.args`: each parameter's JSON schema (pydantic's,
  derived from its type), with `"default"` and `"description"` when it has them — as an
  ordered object `{:ordered, [{name, schema}]}` (`DSPex.JSON` encodes it in that order).

  ## Examples

      iex> t = DSPex.Tool.new(fn tags -> tags end, name: "tag", args: [tags: [type: {:list, :str}, desc: "Tags"]])
      iex> DSPex.Tool.args(t)
      {:ordered, [{"tags", {:ordered, [{"items", {:ordered, [{"type", "string"}]}}, {"type", "array"}, {"description", "Tags"}]}}]}
  """
  @spec args(t) :: {:ordered, [{binary, term}]}
  def args(%__MODULE__{} = tool), do: Args.schemas(tool)

  @doc """
  The tool as a native function definition, DSPy's `format_as_litellm_function_call()`
  (OpenAI's shape; every DSPex provider converts it): parameters are a JSON-schema
  object of `args/1`, `required` lists the parameters without a default; `description`
  is left out for a tool without one.

  ## Examples

      iex> t = DSPex.Tool.new(fn q -> q end, name: "echo", desc: "Echo.", args: [q: :string])
      iex> spec = DSPex.Tool.function_spec(t)
      iex> {spec.type, spec.function.name, DSPex.JSON.encode!(spec.function.parameters)}
      {"function", "echo", ~s({"type":"object","properties":{"q":{"type":"string"}},"required":["q"]})}
  """
  @spec function_spec(t) :: map
  def function_spec(%__MODULE__{} = tool) do
    required = for p <- tool.params, Param.required?(p), do: p.key

    function = %{
      name: tool.name,
      parameters:
        {:ordered, [{"type", "object"}, {"properties", args(tool)}, {"required", required}]}
    }

    # a tool without a description sends none (DSPy's None is dropped on the wire)
    function = if tool.desc, do: Map.put(function, :description, tool.desc), else: function
    %{type: "function", function: function}
  end

  # --- calling -------------------------------------------------------------------

  @doc """
  Validates `args` (a map with string or atom keys, e.g. as decoded from the LM's JSON)
  and runs the tool (see the module doc). Options: `timeout:` (overrides the tool's),
  `call_id:` (for telemetry).

  ## Examples

      iex> slow = DSPex.Tool.new(fn -> Process.sleep(:infinity) end, name: "slow", args: [])
      iex> {:error, err} = DSPex.Tool.call(slow, %{}, timeout: 10)
      iex> {err.type, err.message}
      {:tool_timeout, "the tool did not finish within 10 ms"}
      iex> boom = DSPex.Tool.new(fn -> raise "no network" end, name: "boom", args: [])
      iex> {:error, err} = DSPex.Tool.call(boom, %{})
      iex> {err.type, err.message}
      {:tool_error, "no network"}
  """
  @spec call(t, map, keyword) :: {:ok, term} | {:error, Error.t()}
  def call(%__MODULE__{} = tool, args, opts \\ []) when is_list(opts) do
    meta = %{tool: tool.name, call_id: Keyword.get(opts, :call_id)}
    timeout = Keyword.get(opts, :timeout, tool.timeout)

    Telemetry.span([:dspex, :tool, :call], meta, fn ->
      result =
        with {:ok, values} <- validate_args(tool, args) do
          run(tool, values, timeout)
        end

      stop =
        case result do
          {:ok, _} -> %{status: :ok}
          {:error, %Error{type: t}} -> %{status: :error, error: t}
        end

      {result, Map.merge(meta, stop)}
    end)
  end

  @doc """
  Checks `args` against the tool's parameters and returns them as a map with the
  declared (atom) names, values coerced to their types and defaults filled; an
  `:tool_args` error names the first problem in DSPy's words.

  ## Examples

      iex> t = DSPex.Tool.new(fn q, k -> {q, k} end, name: "top", args: [q: :string, k: [type: :integer, default: 3]])
      iex> DSPex.Tool.validate_args(t, %{"q" => "elixir"})
      {:ok, %{q: "elixir", k: 3}}
      iex> {:error, err} = DSPex.Tool.validate_args(t, %{"q" => "elixir", "k" => "many"})
      iex> err.message =~ "Arg k is invalid"
      true
      iex> {:error, err} = DSPex.Tool.validate_args(t, %{})
      iex> err.message
      "Arg q is required but was not given."
  """
  @spec validate_args(t, map) :: {:ok, map} | {:error, Error.t()}
  def validate_args(%__MODULE__{} = tool, args) when is_map(args) do
    by_key = Map.new(tool.params, &{&1.key, &1})

    given =
      Enum.reduce_while(args, {:ok, %{}, %{}}, fn {k, v}, {:ok, known, extra} ->
        key = if is_atom(k), do: Atom.to_string(k), else: k

        case by_key do
          %{^key => param} ->
            {:cont, {:ok, Map.put(known, param.key, {param, v}), extra}}

          _ when tool.extra_args and is_binary(key) ->
            {:cont, {:ok, known, Map.put(extra, key, v)}}

          _ ->
            {:halt, {:error, args_error(tool, "Arg #{key_text(key)} is not in the tool's args.")}}
        end
      end)

    with {:ok, known, extra} <- given,
         {:ok, values} <- check_params(tool, known) do
      {:ok, Map.merge(extra, values)}
    end
  end

  def validate_args(%__MODULE__{} = tool, other) do
    {:error,
     args_error(tool, "the tool's arguments must be a JSON object, got: #{inspect_short(other)}")}
  end

  defp check_params(tool, known) do
    Enum.reduce_while(tool.params, {:ok, %{}}, fn p, {:ok, acc} ->
      case {Map.fetch(known, p.key), p.default} do
        {{:ok, {_, value}}, _} ->
          case Args.validate(p.type, value) do
            {:ok, v} ->
              {:cont, {:ok, Map.put(acc, p.name, v)}}

            {:error, msg} ->
              {:halt, {:error, args_error(tool, "Arg #{p.key} is invalid: #{msg}")}}
          end

        {:error, {:value, default}} ->
          {:cont, {:ok, Map.put(acc, p.name, default)}}

        {:error, nil} ->
          {:halt, {:error, args_error(tool, "Arg #{p.key} is required but was not given.")}}
      end
    end)
  end

  defp args_error(tool, message), do: Error.new(:tool_args, message, %{tool: tool.name})

  # An LM-written key is shown, but bounded.
  defp key_text(k) when is_binary(k), do: String.slice(k, 0, 64)
  defp key_text(k), do: inspect_short(k)

  defp inspect_short(term), do: inspect(term, limit: 5, printable_limit: 64)

  # Runs the function in its own task under DSPex.Tools.TaskSupervisor: a crash, a kill
  # or a hang stays in the task. The task catches what the tool raises (so no crash
  # report quotes its arguments) and carries the caller's settings.
  defp run(tool, values, timeout) do
    snapshot = Settings.capture()

    task =
      Task.Supervisor.async_nolink(DSPex.Tools.TaskSupervisor, fn ->
        Settings.restore(snapshot)
        invoke(tool, values)
      end)

    case Task.yield(task, timeout) || Task.shutdown(task, :brutal_kill) do
      {:ok, {:ok, value}} ->
        {:ok, value}

      {:ok, {:error, message}} ->
        {:error, Error.new(:tool_error, message, %{tool: tool.name})}

      {:exit, reason} ->
        {:error,
         Error.new(:tool_error, "the tool exited: " <> Error.describe(reason), %{tool: tool.name})}

      nil ->
        {:error,
         Error.new(:tool_timeout, "the tool did not finish within #{timeout} ms", %{
           tool: tool.name,
           timeout: timeout
         })}
    end
  end

  defp invoke(tool, values) do
    result =
      case tool.style do
        :map -> tool.fun.(values)
        :positional -> apply(tool.fun, Enum.map(tool.params, &Map.fetch!(values, &1.name)))
      end

    case result do
      {:ok, value} -> {:ok, value}
      {:error, reason} -> {:error, reason_text(reason)}
      value -> {:ok, value}
    end
  catch
    :error, e -> {:error, Exception.message(Exception.normalize(:error, e, __STACKTRACE__))}
    :throw, value -> {:error, "the tool threw: " <> inspect_short(value)}
    :exit, reason -> {:error, "the tool exited: " <> Error.describe(reason)}
  end

  defp reason_text(text) when is_binary(text), do: text
  defp reason_text(%{__exception__: true} = e), do: Exception.message(e)
  defp reason_text(reason) when is_atom(reason), do: Atom.to_string(reason)
  defp reason_text(reason), do: inspect_short(reason)

  # --- use DSPex.Tool ------------------------------------------------------------

  @doc false
  defmacro __using__(opts) do
    quote do
      @behaviour DSPex.Tool
      import DSPex.Tool, only: [param: 2, param: 3]
      Module.register_attribute(__MODULE__, :dspex_tool_params, accumulate: true)
      @dspex_tool_opts unquote(opts)
      @before_compile DSPex.Tool
    end
  end

  @doc """
  Declares a parameter of a tool module: `param name, type, opts` with `desc:` and
  `default:` (see `DSPex.Tool.Param.new/3`).
  """
  defmacro param(name, type, opts \\ []) do
    quote do
      @dspex_tool_params {unquote(name), unquote(type), unquote(opts)}
    end
  end

  @doc false
  defmacro __before_compile__(env) do
    params = env.module |> Module.get_attribute(:dspex_tool_params) |> Enum.reverse()
    opts = Module.get_attribute(env.module, :dspex_tool_opts) || []

    desc =
      case Module.get_attribute(env.module, :moduledoc) do
        {_, text} when is_binary(text) -> String.trim(text)
        text when is_binary(text) -> String.trim(text)
        _ -> nil
      end

    default_name = env.module |> Module.split() |> List.last() |> Macro.underscore()

    quote do
      @doc false
      # Built when asked for, not at compile time: type strings need the NIF, which is
      # not loaded while the project compiles.
      def __tool__ do
        DSPex.Tool.__module_tool__(
          __MODULE__,
          unquote(Macro.escape(params)),
          unquote(Macro.escape(opts)),
          unquote(default_name),
          unquote(desc)
        )
      end
    end
  end

  @doc false
  def __module_tool__(module, params, opts, default_name, desc) do
    params = Enum.map(params, fn {name, type, popts} -> Param.new(name, type, popts) end)

    tool = %__MODULE__{
      name: default_name,
      desc: desc,
      params: params,
      fun: &module.run/1,
      style: :map
    }

    new(tool, opts)
  end
end
