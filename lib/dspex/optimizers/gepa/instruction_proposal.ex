defmodule DSPex.Optimizers.GEPA.InstructionProposal do
  @moduledoc """
  GEPA's reflective instruction proposal (the `gepa` package's
  `InstructionProposalSignature`, which DSPy's GEPA adapter uses): the exact prompt
  template, the markdown rendering of the reflective records (`# Example N`, `## key`,
  `### subkey`, …) and the extraction of the new instruction from the reply's fenced
  block.

      iex> alias DSPex.Optimizers.GEPA.InstructionProposal, as: P
      iex> P.extract("Here:\\n```\\nAdd the numbers.\\n```")
      "Add the numbers."
  """

  @template "I provided an assistant with the following instructions to perform a task for me:\n```\n<curr_param>\n```\n\n" <>
              "The following are examples of different task inputs provided to the assistant along with the assistant's response for each of them, and some feedback on how the assistant's response could be better:\n```\n<side_info>\n```\n\n" <>
              "Your task is to write a new instruction for the assistant.\n\n" <>
              "Read the inputs carefully and identify the input format and infer detailed task description about the task I wish to solve with the assistant.\n\n" <>
              "Read all the assistant responses and the corresponding feedback. Identify all niche and domain specific factual information about the task and include it in the instruction, as a lot of it may not be available to the assistant in the future. The assistant may have utilized a generalizable strategy to solve the task, if so, include that in the instruction as well.\n\n" <>
              "Provide the new instructions within ``` blocks."

  @doc "The default prompt template (`<curr_param>` and `<side_info>` are replaced)."
  @spec template() :: binary
  def template, do: @template

  @doc """
  The reflection prompt for `instruction` and `records` (each an ordered list of
  `{key, value}`; values are strings, ordered lists (nested records) or lists).

  ## Examples

      iex> p = DSPex.Optimizers.GEPA.InstructionProposal.prompt("Answer.", [[{"Feedback", "ok"}]])
      iex> p =~ "# Example 1\\n## Feedback\\nok\\n\\n"
      true
  """
  @spec prompt(binary, [list], binary | nil) :: binary
  def prompt(instruction, records, template \\ nil) do
    text =
      records
      |> Enum.with_index(1)
      |> Enum.map_join("\n\n", fn {rec, n} ->
        "# Example #{n}\n" <> Enum.map_join(rec, "", fn {k, v} -> "## #{k}\n" <> render(v, 3) end)
      end)

    (template || @template)
    |> String.replace("<curr_param>", instruction)
    |> String.replace("<side_info>", text)
  end

  defp render({:ordered, pairs}, level) do
    body =
      Enum.map_join(pairs, "", fn {k, v} ->
        String.duplicate("#", level) <> " #{k}\n" <> render(v, min(level + 1, 6))
      end)

    if pairs == [], do: body <> "\n", else: body
  end

  defp render(list, level) when is_list(list) do
    body =
      list
      |> Enum.with_index(1)
      |> Enum.map_join("", fn {v, i} ->
        String.duplicate("#", level) <> " Item #{i}\n" <> render(v, min(level + 1, 6))
      end)

    if list == [], do: body <> "\n", else: body
  end

  defp render(v, _level), do: String.trim(to_string(v)) <> "\n\n"

  @doc """
  The new instruction in a reply (the reply is stripped first): the text between the
  first and the last ```, without a language tag line; a reply with one fence or none
  is taken as it is (a leading fence line or a trailing fence dropped).

  ## Examples

      iex> DSPex.Optimizers.GEPA.InstructionProposal.extract("```text\\nDo it.\\n```")
      "Do it."
      iex> DSPex.Optimizers.GEPA.InstructionProposal.extract("no fences")
      "no fences"
  """
  @spec extract(binary) :: binary
  def extract(reply) do
    out = String.trim(reply)

    case {:binary.match(out, "```"), last_fence(out)} do
      {{first, 3}, last} when first + 3 < last ->
        content = binary_part(out, first + 3, last - first - 3)
        content = Regex.replace(~r/\A\S*\n/u, content, "", global: false)
        String.trim(content)

      _ ->
        cond do
          String.starts_with?(out, "```") ->
            case Regex.run(~r/\A```\S*\n?/u, out) do
              [m] ->
                out |> binary_part(byte_size(m), byte_size(out) - byte_size(m)) |> String.trim()

              _ ->
                out
            end

          String.ends_with?(out, "```") ->
            out |> binary_part(0, byte_size(out) - 3) |> String.trim()

          true ->
            out
        end
    end
  end

  defp last_fence(s) do
    case :binary.matches(s, "```") do
      [] -> -1
      ms -> ms |> List.last() |> elem(0)
    end
  end
end
