defmodule DSPex.ReAct do
  @moduledoc """
  A tool-using agent, like `dspy.ReAct` (DSPy 3.3.1, prompts byte for byte): in each
  step the LM writes a thought, picks a tool and its arguments, and sees the tool's
  result; when it picks `finish`, a chain of thought extracts the outputs from the
  trajectory.

      defmodule MyApp.Weather do
        @doc "The current weather in a city."
        @spec now(String.t()) :: String.t()
        def now(city), do: "Sunny in " <> city
      end

      agent = DSPex.ReAct.new("question -> answer", tools: [&MyApp.Weather.now/1], max_iters: 5)
      {:ok, pred} = DSPex.call(agent, question: "Is it sunny in Paris?")
      pred.answer
      pred.trajectory   #=> [{"thought_0", "..."}, {"tool_name_0", "now"}, {"tool_args_0", %{"city" => "Paris"}}, ...]

  Tools are anything `DSPex.Tools.new/1` takes (modules that `use DSPex.Tool`, named
  functions, `%DSPex.Tool{}`). Each runs in its own supervised task with a timeout; a
  failure becomes the observation `"Execution error in <tool>: <message>"` and the agent
  goes on.

  ## How it runs (as DSPy's)

    * The step predictor `react` (a `DSPex.Predict`) has the signature's inputs plus
      `trajectory: str`, and outputs `next_thought: str`, `next_tool_name` (a `Literal`
      of the tool names and `finish`) and `next_tool_args: dict[str, Any]`; its
      instructions are the signature's, then DSPy's agent instructions with one line per
      tool (`name, whose description is <desc>...</desc>. It takes arguments {...}.`).
    * The trajectory is rendered by the active adapter as `[[ ## thought_0 ## ]]`,
      `tool_name_0`, `tool_args_0`, `observation_0`, ... blocks.
    * At most `max_iters` steps (per call: the input `max_iters:`). The loop ends at
      `finish`, at `max_iters`, when the step's reply cannot be parsed (after
      `DSPex.Predict`'s re-asks), or when the prompt does not fit the context window.
    * On a `:context_window` error the oldest step (4 trajectory entries) is dropped
      and the call retried, at most 3 times; a trajectory of one step cannot shrink.
    * The extractor `extract` (a `DSPex.ChainOfThought` of inputs + `trajectory` →
      outputs, with the signature's instructions) produces the outputs; the prediction
      holds `reasoning`, the outputs and `trajectory` (ordered `{key, value}` pairs).

  Other LM errors (network, auth, ...) end the call with `{:error, %DSPex.Error{}}`.
  Saved state names the predictors `react` and `extract.predict`, as DSPy does, so
  optimizers tune both.

  `DSPex.ProgramOfThought` and `DSPex.CodeAct` (DSPy modules that run LM-written
  Python in a sandbox) are not provided.

  ## Examples

      iex> add = DSPex.Tool.new(fn a, b -> a + b end, name: "add", args: [a: :integer, b: :integer])
      iex> lm = DSPex.LM.Scripted.new([
      ...>   %{next_thought: "Add them.", next_tool_name: "add", next_tool_args: ~s({"a": 2, "b": 3})},
      ...>   %{next_thought: "Done.", next_tool_name: "finish", next_tool_args: "{}"},
      ...>   %{reasoning: "The tool said 5.", answer: "5"}
      ...> ])
      iex> agent = DSPex.ReAct.new("question -> answer", tools: [add], lm: lm)
      iex> {:ok, pred} = DSPex.call(agent, question: "What is 2 + 3?")
      iex> pred.answer
      "5"
      iex> List.keyfind(pred.trajectory, "observation_0", 0)
      {"observation_0", 5}
  """

  @behaviour DSPex.Module

  require Logger

  alias DSPex.{ChainOfThought, Error, Predict, Prediction, Settings, Signature, Tool, Tools}

  @type trajectory :: [{binary, term}]

  @type t :: %__MODULE__{
          signature: Signature.t(),
          tools: Tools.t(),
          max_iters: pos_integer,
          react: Predict.t(),
          extract: ChainOfThought.t()
        }

  defstruct signature: nil, tools: nil, max_iters: 20, react: nil, extract: nil

  @doc false
  def __dspex_fields__, do: [:react, :extract]

  @options DSPex.Options.schema!(
             tools: [
               type: :any,
               required: true,
               doc: "The tools: a list of anything `DSPex.Tool.from/1` takes, or a `DSPex.Tools`."
             ],
             max_iters: [
               type: :pos_integer,
               default: 20,
               doc: "Most tool steps before the outputs are extracted (DSPy's default, 20)."
             ]
           ) ++ DSPex.Options.take(DSPex.Predict.options_schema(), [:lm, :adapter, :config])

  @default_adapter DSPex.Adapter.Chat

  @doc """
  Builds the agent for `signature` (a string, `%DSPex.Signature{}` or signature module).

  ## Options

  #{DSPex.Options.docs(@options)}

  `lm:`, `adapter:` and `config:` go to both inner predictors. A tool named `finish`
  is refused (the agent's own `finish` tool has that name).

  ## Examples

      iex> agent = DSPex.ReAct.new("question -> answer", tools: [DSPex.Tool.new(fn -> "pong" end, name: "ping", args: [])])
      iex> DSPex.Tools.names(agent.tools)
      ["ping", "finish"]
      iex> for {name, _} <- DSPex.Module.named_predictors(agent), do: name
      ["react", "extract.predict"]
  """
  @spec new(term, keyword) :: t
  def new(signature, opts) when is_list(opts) do
    Predict.refuse_lm_options!(opts, "DSPex.ReAct.new/2")
    opts = DSPex.Options.validate!(opts, @options, "DSPex.ReAct.new/2")
    sig = Predict.resolve_signature(signature)
    user_tools = Tools.new(opts[:tools])

    if "finish" in Tools.names(user_tools) do
      raise ArgumentError,
            "a tool may not be named \"finish\": DSPex.ReAct adds its own finish tool"
    end

    tools = Tools.register(user_tools, finish_tool(sig))
    predict_opts = Keyword.take(opts, [:lm, :adapter, :config])

    react =
      sig.inputs
      |> signature_with(react_instructions(sig, tools))
      |> Signature.append(:trajectory, kind: :input, type: :str)
      |> Signature.append(:next_thought, kind: :output, type: :str)
      |> Signature.append(:next_tool_name, kind: :output, type: {:literal, Tools.names(tools)})
      |> Signature.append(:next_tool_args, kind: :output, type: {:dict, :str, :any})

    extract =
      (sig.inputs ++ sig.outputs)
      |> signature_with(sig.instructions)
      |> Signature.append(:trajectory, kind: :input, type: :str)

    DSPex.Module.assign_names(%__MODULE__{
      signature: sig,
      tools: tools,
      max_iters: opts[:max_iters],
      react: Predict.new(react, predict_opts),
      extract: ChainOfThought.new(extract, predict_opts)
    })
  end

  defp signature_with(fields, instructions) do
    {ins, outs} = Enum.split_with(fields, &(&1.kind == :input))
    %Signature{instructions: instructions, inputs: ins, outputs: outs}
  end

  defp finish_tool(sig) do
    Tool.new(fn -> "Completed." end,
      name: "finish",
      desc:
        "Marks the task as complete. That is, signals that all information for producing " <>
          "the outputs, i.e. #{backticked(sig.outputs)}, are now available to be extracted.",
      args: []
    )
  end

  defp backticked(fields), do: Enum.map_join(fields, ", ", &"`#{&1.name}`")

  # DSPy 3.3.1's agent instructions (dspy/predict/react.py), line for line.
  defp react_instructions(sig, tools) do
    inputs = backticked(sig.inputs)
    outputs = backticked(sig.outputs)
    own = if sig.instructions in [nil, ""], do: [], else: [sig.instructions <> "\n"]

    lines =
      own ++
        [
          "You are an Agent. In each episode, you will be given the fields #{inputs} as input. And you can see your past trajectory so far.",
          "Your goal is to use one or more of the supplied tools to collect any necessary information for producing #{outputs}.\n",
          "To do this, you will interleave next_thought, next_tool_name, and next_tool_args in each turn, and also when finishing the task.",
          "After each tool call, you receive a resulting observation, which gets appended to your trajectory.\n",
          "When writing next_thought, you may reason about the current situation and plan for future steps.",
          "When selecting the next_tool_name and its next_tool_args, the tool must be one of:\n"
        ] ++
        (tools
         |> Tools.list()
         |> Enum.with_index(1)
         |> Enum.map(fn {tool, i} -> "(#{i}) #{Tool.format(tool)}" end)) ++
        ["When providing `next_tool_args`, the value inside the field must be in JSON format"]

    Enum.join(lines, "\n")
  end

  @impl DSPex.Module
  @doc """
  Runs the agent on `inputs` (plus an optional `max_iters:` input for this call);
  `opts` are per-call predictor options (`lm:`, `adapter:`, `config:`, ...).
  """
  @spec forward(t, map, keyword) :: {:ok, Prediction.t()} | {:error, Error.t()}
  def forward(%__MODULE__{} = agent, inputs, opts \\ []) do
    {max_iters, inputs} = Map.pop(inputs, :max_iters, agent.max_iters)
    adapter = opts[:adapter] || agent.react.adapter || Settings.get(:adapter) || @default_adapter

    with {:ok, trajectory} <- loop(agent, inputs, opts, adapter, [], 0, max_iters),
         {:ok, pred, trajectory} <-
           call_truncating(agent.extract, trajectory, inputs, opts, adapter) do
      {:ok,
       Prediction.put(pred, :trajectory, Enum.map(trajectory, fn {k, v} -> {k, plain(v)} end))}
    end
  end

  defp loop(_agent, _inputs, _opts, _adapter, trajectory, idx, max) when idx >= max,
    do: {:ok, trajectory}

  defp loop(agent, inputs, opts, adapter, trajectory, idx, max) do
    case call_truncating(agent.react, trajectory, inputs, opts ++ [ordered_dicts: true], adapter) do
      {:ok, pred, trajectory} ->
        name = pred.next_tool_name
        args = pred.next_tool_args
        observation = agent.tools |> Tools.observe(name, plain(args)) |> observable()

        trajectory =
          trajectory ++
            [
              {"thought_#{idx}", pred.next_thought},
              {"tool_name_#{idx}", name},
              {"tool_args_#{idx}", args},
              {"observation_#{idx}", observation}
            ]

        if name == "finish",
          do: {:ok, trajectory},
          else: loop(agent, inputs, opts, adapter, trajectory, idx + 1, max)

      {:stop, reason, trajectory} ->
        Logger.warning("DSPex.ReAct: ending the trajectory: #{reason}")
        {:ok, trajectory}

      {:error, %Error{type: :adapter_parse}} ->
        Logger.warning("DSPex.ReAct: ending the trajectory: the agent's step could not be parsed")
        {:ok, trajectory}

      {:error, _} = err ->
        err
    end
  end

  # DSPy's _call_with_potential_trajectory_truncation: on a context-window error the
  # oldest step is dropped and the call retried, 3 tries in all.
  defp call_truncating(module, trajectory, inputs, opts, adapter, tries \\ 3)

  defp call_truncating(_module, trajectory, _inputs, _opts, _adapter, 0),
    do:
      {:stop, "the context window was exceeded even after 3 attempts to truncate the trajectory",
       trajectory}

  defp call_truncating(module, trajectory, inputs, opts, adapter, tries) do
    text = format_trajectory(adapter, trajectory)

    case DSPex.call(module, Map.put(inputs, :trajectory, text), opts) do
      {:ok, pred} ->
        {:ok, pred, trajectory}

      {:error, %Error{type: :context_window}} when length(trajectory) <= 4 ->
        {:stop,
         "the prompt exceeded the context window, and a trajectory of one step cannot be truncated",
         trajectory}

      {:error, %Error{type: :context_window}} ->
        Logger.warning(
          "DSPex.ReAct: the trajectory exceeded the context window, truncating the oldest step"
        )

        call_truncating(module, Enum.drop(trajectory, 4), inputs, opts, adapter, tries - 1)

      {:error, _} = err ->
        err
    end
  end

  @doc """
  The trajectory as the adapter renders it into the `trajectory` input: DSPy's
  `format_user_message_content` of a signature whose inputs are the trajectory's keys.

  ## Examples

      iex> DSPex.ReAct.format_trajectory(DSPex.Adapter.Chat, [{"thought_0", "Hmm."}, {"tool_args_0", %{"q" => 1}}])
      "[[ ## thought_0 ## ]]\\nHmm.\\n\\n[[ ## tool_args_0 ## ]]\\n{\\"q\\": 1}"
      iex> DSPex.ReAct.format_trajectory(DSPex.Adapter.Chat, [])
      ""
  """
  @spec format_trajectory(module, trajectory) :: binary
  def format_trajectory(_adapter, []), do: ""

  def format_trajectory(adapter, trajectory) do
    # the keys are ours ("thought_3", ...), never LM text
    fields = Enum.map(trajectory, fn {k, _} -> DSPex.Signature.Field.new(k, :input) end)

    sig = %Signature{
      instructions: "",
      inputs: fields,
      outputs: [DSPex.Signature.Field.new(:x, :output)]
    }

    values = Map.new(trajectory, fn {k, v} -> {String.to_existing_atom(k), v} end)
    DSPex.Adapter.format_user_message_content(adapter, sig, values)
  end

  # What a tool returned, as a value the adapter can render (DSPy renders anything with
  # str()/JSON): JSON-like data as it is, other terms inspected.
  defp observable(v) when is_binary(v) do
    if String.valid?(v), do: v, else: inspect(v)
  end

  defp observable(v) when is_number(v) or is_boolean(v) or is_nil(v), do: v
  defp observable(v) when is_atom(v), do: Atom.to_string(v)

  defp observable(v) when is_list(v),
    do: if(proper?(v), do: Enum.map(v, &observable/1), else: inspect(v))

  defp observable({:ordered, pairs} = v) when is_list(pairs) do
    if Enum.all?(pairs, &match?({k, _} when is_binary(k) or is_atom(k), &1)),
      do: {:ordered, Enum.map(pairs, fn {k, x} -> {to_string(k), observable(x)} end)},
      else: inspect(v)
  end

  defp observable(%_{} = v), do: inspect(v)

  defp observable(v) when is_map(v) do
    if Enum.all?(Map.keys(v), &(is_binary(&1) or is_atom(&1))),
      do: Map.new(v, fn {k, x} -> {to_string(k), observable(x)} end),
      else: inspect(v)
  end

  defp observable(v), do: inspect(v)

  defp proper?([]), do: true
  defp proper?([_ | t]), do: proper?(t)
  defp proper?(_), do: false

  # Ordered dicts (the LM's key order, kept for rendering) as plain maps.
  defp plain({:ordered, pairs}), do: Map.new(pairs, fn {k, v} -> {k, plain(v)} end)
  defp plain(list) when is_list(list), do: Enum.map(list, &plain/1)

  defp plain(%{} = m) when not is_struct(m), do: Map.new(m, fn {k, v} -> {k, plain(v)} end)

  defp plain(v), do: v
end
