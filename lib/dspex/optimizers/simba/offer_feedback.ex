defmodule DSPex.Optimizers.SIMBA.OfferFeedback do
  @moduledoc """
  SIMBA's `append_a_rule` strategy: DSPy 3.3.1's `OfferFeedback` signature (exact
  instructions, field names, types and descriptions), the `inspect_modules` text and the
  orjson-style (indent 2) JSON rendering of the trajectories it is shown.
  """

  alias DSPex.Signature.Field

  @instructions "You will be given two trajectories of an LLM-driven program's execution. Your goal is to help the program's modules\n" <>
                  "build up experience on how to maximize the reward value assigned to the program's outputs if it were to receive\n" <>
                  "similar inputs in the future.\n\n" <>
                  "The module won't see its own history. It will rely on your advice balancing being concrete and being generalizable.\n\n" <>
                  "In your advice:\n" <>
                  "- Avoid boilerplate. Offer advice that would change the module's behavior for the better in the future.\n" <>
                  "- Ensure that advice offered to a module M is specific to that M's specific sub-task, not the overall program.\n" <>
                  "- Rely on contrasting the behavior of the worse trajectory against the better trajectory in making recommendations.\n" <>
                  "- Ensure each unique module name appears exactly once as a key in the advice dictionary."

  @traj "The trajectory of the program's execution, showing each module's I/O"
  @outs "The outputs of the program that we are analyzing"
  @reward "The reward value assigned to the program's outputs"
  @info "Additional information that might be helpful to understanding the assigned reward value."

  @inputs [
    {:program_code, :str, "The code of the program that we are analyzing"},
    {:modules_defn, :str, "The definition of each module in the program, including its I/O"},
    {:program_inputs, :str, "The inputs to the program that we are analyzing"},
    {:oracle_metadata, :str,
     "Any (hidden) metadata about the training set instance we're analyzing"},
    {:worse_program_trajectory, :str, @traj},
    {:worse_program_outputs, :str, @outs},
    {:worse_reward_value, :float, @reward},
    {:worse_reward_info, :str, @info},
    {:better_program_trajectory, :str, @traj},
    {:better_program_outputs, :str, @outs},
    {:better_reward_value, :float, @reward},
    {:better_reward_info, :str, @info},
    {:module_names, {:list, :str},
     "The names of the modules in the program, for which we seek advice"}
  ]

  @outputs [
    {:discussion, :str, "Discussing blame of where each module went wrong, if it did"},
    {:module_advice, {:dict, :str, :str},
     "For each module, describe very concretely: If the module receives ${description of input or patterns " <>
       "therein}, then it should ${description of content, behavior, or strategies to adopt and/or others to avoid}. " <>
       "Basically, your advice be such that if the module has access to your tip, it would be much more likely to act " <>
       "like the successful trajectory rather than the lower-scoring trajectory."}
  ]

  @doc """
  DSPy's `OfferFeedback` signature.

  ## Examples

      iex> sig = DSPex.Optimizers.SIMBA.OfferFeedback.signature()
      iex> Enum.map(sig.outputs, & &1.name)
      [:discussion, :module_advice]
  """
  @spec signature() :: DSPex.Signature.t()
  def signature do
    %DSPex.Signature{
      instructions: @instructions,
      inputs: Enum.map(@inputs, &field(&1, :input)),
      outputs: Enum.map(@outputs, &field(&1, :output))
    }
  end

  defp field({name, type, desc}, kind) do
    prefix =
      (name |> Atom.to_string() |> String.split("_") |> Enum.map_join(" ", &String.capitalize/1)) <>
        ":"

    %Field{name: name, kind: kind, type: type, type_defined?: true, desc: desc, prefix: prefix}
  end

  @doc """
  A value as SIMBA passes it to the signature: strings as they are, anything else as
  orjson's `OPT_INDENT_2` text (`{:ordered, pairs}` keeps key order).

  ## Examples

      iex> DSPex.Optimizers.SIMBA.OfferFeedback.dump(["self"])
      "[\\n  \\"self\\"\\n]"
      iex> DSPex.Optimizers.SIMBA.OfferFeedback.dump("text")
      "text"
  """
  @spec dump(term) :: binary
  def dump(v) when is_binary(v), do: v

  def dump(v) do
    case DSPex.JSON.encode(jsonable(v), pretty: true) do
      {:ok, s} -> s
      {:error, _} -> inspect(v)
    end
  end

  # recursive_mask: what JSON cannot hold becomes a placeholder
  defp jsonable({:ordered, pairs}),
    do: {:ordered, for({k, v} <- pairs, do: {to_string(k), jsonable(v)})}

  defp jsonable(%DSPex.Prediction{} = p),
    do: jsonable({:ordered, DSPex.Prediction.to_list(p)})

  defp jsonable(%_{} = s), do: "<non-serializable: #{inspect(s.__struct__)}>"

  defp jsonable(m) when is_map(m),
    do:
      {:ordered,
       for({k, v} <- Enum.sort_by(m, &to_string(elem(&1, 0))), do: {to_string(k), jsonable(v)})}

  defp jsonable(l) when is_list(l), do: Enum.map(l, &jsonable/1)
  defp jsonable(t) when is_tuple(t), do: t |> Tuple.to_list() |> jsonable()
  defp jsonable(a) when is_atom(a) and a not in [nil, true, false], do: Atom.to_string(a)
  defp jsonable(v) when is_binary(v) or is_number(v) or is_boolean(v) or is_nil(v), do: v
  defp jsonable(v), do: "<non-serializable: #{inspect(v)}>"

  @doc """
  The source text of the program's module (DSPy shows `inspect.getsource` of the
  program's Python class; DSPex shows the Elixir module's source file, or its name when
  the source is not at hand).

  ## Examples

      iex> DSPex.Optimizers.SIMBA.OfferFeedback.program_code(:not_a_program)
      ":not_a_program"
  """
  @spec program_code(term) :: binary
  def program_code(%mod{}) do
    with true <- Code.ensure_loaded?(mod),
         source when is_list(source) <- mod.module_info(:compile)[:source],
         {:ok, text} <- File.read(List.to_string(source)),
         true <- byte_size(text) <= 20_000 do
      text
    else
      _ -> "#{inspect(mod)} (source not available)"
    end
  end

  def program_code(other), do: inspect(other)
end
