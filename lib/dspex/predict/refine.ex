defmodule DSPex.Refine do
  @moduledoc """
  Like `DSPex.BestOfN`, plus feedback between attempts, like `dspy.Refine`.

  After each attempt whose reward is below `threshold` (except the last), a
  `DSPex.Predict` with DSPy's `OfferFeedback` signature reads the program's code,
  its predictors' definitions, the inputs, the trajectory (each predictor's inputs and
  outputs), the outputs, the reward code, threshold and value, and the predictor names,
  and answers with `discussion` and `advice` (a map from predictor name to advice).
  On the next attempt every predictor of the program carries its advice, or `"N/A"`, as
  its `hint` (`DSPex.Predict`), which adds the input field `hint_` ("A hint to the module
  from an earlier run") to its prompt — DSPy's `WrapperAdapter`, passed as data in the
  program instead of through the settings.

  ## Examples

      iex> feedback_lm = DSPex.LM.Scripted.new([%{discussion: "Too long.", advice: %{"self" => "One word."}}])
      iex> lm = DSPex.LM.Scripted.new([%{answer: "It is Brussels"}, %{answer: "Brussels"}])
      iex> one_word = fn _inputs, pred -> if pred.answer =~ " ", do: 0.0, else: 1.0 end
      iex> refine = DSPex.Refine.new(DSPex.Predict.new("question -> answer", lm: lm),
      ...>   n: 3, reward_fn: one_word, threshold: 1.0, feedback_lm: feedback_lm)
      iex> {:ok, pred} = DSPex.call(refine, question: "Capital of Belgium?")
      iex> pred.answer
      "Brussels"
      iex> [_, second] = DSPex.LM.Scripted.requests(lm)
      iex> List.last(second.messages).content =~ "[[ ## hint_ ## ]]\\nOne word."
      true
  """

  @behaviour DSPex.Module

  alias DSPex.Signature.Field

  @type t :: %__MODULE__{}

  defstruct module: nil,
            n: 3,
            reward_fn: nil,
            threshold: nil,
            fail_count: nil,
            program_code: nil,
            reward_code: nil,
            feedback_lm: nil

  @doc false
  def __dspex_fields__, do: [:module]

  @options DSPex.BestOfN.options_schema() ++
             DSPex.Options.schema!(
               program_code: [
                 type: :string,
                 doc:
                   "The program's code shown to the feedback LM (default: the source file of its module, when readable)."
               ],
               reward_code: [
                 type: :string,
                 doc: "The reward function's code shown to it (default `inspect(reward_fn)`)."
               ],
               feedback_lm: [
                 type: {:or, [:struct, nil]},
                 doc: "The LM of the feedback predictor (default: the configured LM)."
               ]
             )

  @doc """
  Wraps `module` (a predictor or program).

  ## Options

  #{DSPex.Options.docs(@options)}
  """
  @spec new(term, keyword) :: t
  def new(module, opts) do
    opts = DSPex.Options.validate!(opts, @options, "DSPex.Refine.new/2")
    b = DSPex.BestOfN.new(module, Keyword.take(opts, [:n, :reward_fn, :threshold, :fail_count]))

    DSPex.Module.assign_names(%__MODULE__{
      module: b.module,
      n: b.n,
      reward_fn: b.reward_fn,
      threshold: b.threshold,
      fail_count: b.fail_count,
      program_code: Keyword.get_lazy(opts, :program_code, fn -> program_code(module) end),
      reward_code: Keyword.get_lazy(opts, :reward_code, fn -> inspect(b.reward_fn) end),
      feedback_lm: opts[:feedback_lm]
    })
  end

  @impl DSPex.Module
  @doc false
  def forward(%__MODULE__{} = r, inputs, opts \\ []) do
    feedback = fn info -> advise(r, info) end

    DSPex.BestOfN.Loop.run(
      r.module,
      r.n,
      r.reward_fn,
      r.threshold,
      r.fail_count,
      inputs,
      opts,
      feedback
    )
  end

  defp advise(r, %{module: module, inputs: inputs, prediction: pred, trace: trace, reward: reward}) do
    # Names relative to the refined program ("answer.predict"), as DSPy shows them; the
    # predictors themselves carry their full runtime names ("module.answer.predict").
    named = DSPex.Module.named_predictors(module)
    names = Enum.map(named, &elem(&1, 0))
    runtime = Map.new(named, fn {name, p} -> {p.name, name} end)

    trajectory =
      for {name, i, o} <- trace do
        {:ordered, [{"module_name", Map.get(runtime, name, name)}, {"inputs", i}, {"outputs", o}]}
      end

    args = %{
      program_code: r.program_code,
      modules_defn: inspect_modules(module),
      program_inputs: dump(inputs),
      program_trajectory: dump(trajectory),
      program_outputs: dump(DSPex.Prediction.fields(pred)),
      reward_code: r.reward_code,
      target_threshold: dump(r.threshold),
      reward_value: dump(reward),
      module_names: dump(names)
    }

    feedback = DSPex.Predict.new(offer_feedback(), lm: r.feedback_lm, name: "refine.feedback")

    # The feedback call runs outside the attempt's trace (and, a fresh predictor, with
    # no hint).
    {advice, _discarded_trace} =
      DSPex.Trace.with_trace(fn -> DSPex.Predict.call(feedback, args) end)

    case advice_map(advice, names) do
      nil -> nil
      m -> Map.new(runtime, fn {full, name} -> {full, Map.get(m, name, "N/A")} end)
    end
  end

  defp advice_map(result, names) do
    case result do
      {:ok, %{advice: advice}} when is_map(advice) ->
        Map.new(advice, fn {k, v} -> {to_string(k), v} end)

      {:ok, %{advice: advice}} when is_binary(advice) ->
        case DSPex.JSON.decode(advice) do
          {:ok, %{} = m} -> m
          _ -> Map.new(names, &{&1, advice})
        end

      _ ->
        nil
    end
  end

  defp dump(v) when is_binary(v), do: v

  defp dump(v) do
    case DSPex.JSON.encode(DSPex.Program.jsonable(v), pretty: true) do
      {:ok, s} -> s
      {:error, _} -> inspect(v)
    end
  end

  @doc """
  DSPy's `OfferFeedback` signature.
  """
  @spec offer_feedback() :: DSPex.Signature.t()
  def offer_feedback do
    ins = [
      {:program_code, :str, "The code of the program that we are analyzing"},
      {:modules_defn, :str, "The definition of each module in the program, including its I/O"},
      {:program_inputs, :str, "The inputs to the program that we are analyzing"},
      {:program_trajectory, :str,
       "The trajectory of the program's execution, showing each module's I/O"},
      {:program_outputs, :str, "The outputs of the program that we are analyzing"},
      {:reward_code, :str, "The code of the reward function that we are analyzing"},
      {:target_threshold, :float, "The target threshold for the reward function"},
      {:reward_value, :float, "The reward value assigned to the program's outputs"},
      {:module_names, {:list, :str},
       "The names of the modules in the program, for which we seek advice"}
    ]

    outs = [
      {:discussion, :str, "Discussing blame of where each module went wrong, if it did"},
      {:advice, {:dict, :str, :str},
       "For each module, describe very concretely, in this order: the specific scenarios in which it has made " <>
         "mistakes in the past and what each mistake was, followed by what it should do differently in that kind of" <>
         "scenario in the future. If the module is not to blame, write N/A."}
    ]

    %DSPex.Signature{
      instructions:
        "In the discussion, assign blame to each module that contributed to the final reward being below the threshold, if\n" <>
          "any. Then, prescribe concrete advice of how the module should act on its future input when we retry the process, if\n" <>
          "it were to receive the same or similar inputs. If a module is not to blame, the advice should be N/A.\n" <>
          "The module will not see its own history, so it needs to rely on entirely concrete and actionable advice from you\n" <>
          "to avoid the same mistake on the same or similar inputs.",
      inputs: Enum.map(ins, &field(&1, :input)),
      outputs: Enum.map(outs, &field(&1, :output))
    }
  end

  defp field({name, type, desc}, kind) do
    %Field{
      name: name,
      kind: kind,
      type: type,
      type_defined?: true,
      desc: desc,
      prefix: prefix(name)
    }
  end

  defp prefix(name) do
    (name |> Atom.to_string() |> String.split("_") |> Enum.map_join(" ", &String.capitalize/1)) <>
      ":"
  end

  @doc """
  DSPy's `inspect_modules`: each predictor's fields and instructions, between rules.
  """
  @spec inspect_modules(term) :: binary
  def inspect_modules(program) do
    sep = String.duplicate("-", 80)

    blocks =
      Enum.flat_map(DSPex.Module.named_predictors(program), fn {name, p} ->
        sig = p.signature
        instr = Enum.map_join(String.split(sig.instructions || "", "\n"), "", &("\n\t\t" <> &1))

        [
          "Module #{name}",
          "\n\tInput Fields:",
          indent(field_descriptions(sig.inputs)),
          "\tOutput Fields:",
          indent(field_descriptions(sig.outputs)),
          "\tOriginal Instructions: #{instr}",
          sep
        ]
      end)

    Enum.map_join([sep | blocks], "\n", &String.trim(&1, "\n"))
  end

  defp indent(text), do: text |> String.split("\n") |> Enum.map_join("", &("\n\t\t" <> &1))

  @doc false
  # DSPy's get_field_description_string.
  def field_descriptions(fields) do
    fields
    |> Enum.with_index(1)
    |> Enum.map_join("\n", fn {f, i} ->
      desc = if f.desc in [nil, "${#{f.name}}"], do: "", else: f.desc
      "#{i}. `#{f.name}` (#{type_name(f.type)}): #{desc}"
    end)
    |> String.trim()
  end

  defp type_name(t), do: Field.type_name(t)

  defp program_code(%mod{}) do
    with true <- Code.ensure_loaded?(mod),
         source when is_list(source) <- mod.module_info(:compile)[:source],
         {:ok, text} <- File.read(List.to_string(source)),
         true <- byte_size(text) <= 20_000 do
      text
    else
      _ -> "#{inspect(mod)} (source not available)"
    end
  end

  defp program_code(other), do: inspect(other)
end
