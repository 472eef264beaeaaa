# The simulated LMs of the guideline classifier example. NOT language models: two
# deterministic functions behind DSPex.LM.Scripted, so the example runs offline, in
# seconds, with the same numbers every time.
#
# The task model reads the prompt DSPex sends (the instruction in the system message,
# the conversation and the guidelines in the user message) and matches guidelines by
# cue words. How carefully it does so depends on the instruction, as a real model's
# behaviour does, in three ways it looks for:
#
#   * "condition"        -> it checks each guideline's condition (a question about
#                           arrival, a refund asked for and not already received, a
#                           compliment rather than a polite "thanks") instead of firing
#                           on any word of the guideline's topic;
#   * "negated"          -> it ignores cue words the customer negates ("nothing is
#                           broken", "I don't want to cancel");
#   * "already provided" -> it does not ask for an order number that is already in the
#                           conversation.
#
# Without them it fires on any topic word: high recall, many false positives. It
# knows only this example's eight guideline ids and never matches others.
#
# The prompt model answers COPRO's two proposer prompts. Asked to improve the basic
# instruction, it proposes the instruction plus one criterion sentence each; shown
# the scored attempts, it combines the criteria of the best ones (and tries each
# missing criterion on the best). COPRO's search, scoring and choice are the real
# thing; only the two models are stand-ins.

defmodule GuidelineClassifier.Simulated do
  @moduledoc false

  @criteria [
    condition:
      "A guideline applies only when its condition is actually met by the customer's latest message; sharing a topic word with the message is not enough.",
    negation:
      "Ignore negated mentions: something the customer says did not happen, is not the case or is not wanted does not trigger a guideline.",
    provided:
      "A guideline that asks for missing information does not apply when the customer has already provided that information in the conversation."
  ]

  @detect [
    condition: ~r/\bcondition\b/i,
    negation: ~r/\bnegat/i,
    provided: ~r/already provided/i
  ]

  # Cue words of each guideline's topic (the careless reading).
  @topic %{
    "apologize_defect" =>
      ~r/broken|broke|damaged|defect|cracked|crack|torn|bent|faulty|overheat|stopped working/i,
    "no_refund_promise" => ~r/refund|money back/i,
    "ask_order_number" => ~r/order/i,
    "escalate_legal" => ~r/lawyer|legal|chargeback|\bsue\b|court/i,
    "shipping_estimate" => ~r/arriv|deliver|ship|tracking/i,
    "no_medical_advice" => ~r/allerg|pregnan|eczema|safe for|health/i,
    "thank_compliment" =>
      ~r/thank|great|love|awesome|amazing|excellent|fantastic|helpful|perfect/i,
    "cancel_window" => ~r/cancel/i
  }

  # Each guideline's condition (the careful reading).
  @condition %{
    "apologize_defect" =>
      ~r/broken|broke|damaged|defect|cracked|crack|torn|bent|faulty|overheat|stopped working|smell/i,
    "no_refund_promise" => ~r/refund|money back/i,
    "ask_order_number" =>
      ~r/\b(my order|the order|an order|order #?\d|ordered|bought|purchase|package)\b/i,
    "escalate_legal" =>
      ~r/lawyer|legal action|chargeback|\bsue\b|court|dispute the charge|consumer protection/i,
    "shipping_estimate" =>
      ~r/\b(when|how long|how soon)\b[^.?!]{0,40}(arriv|deliver|ship|get here|take)|(arriv|deliver|get here)[^.?!]{0,40}\?/i,
    "no_medical_advice" => ~r/allerg|pregnan|eczema|safe for|health/i,
    "thank_compliment" =>
      ~r/love|awesome|amazing|excellent|fantastic|helpful|perfect|great (product|service|job|support|quality)/i,
    "cancel_window" => ~r/cancel/i
  }

  @already_received ~r/(received|got|already)[^.]{0,20}(refund|money back)/i
  @order_number ~r/#\s?\d{4,}|\b\d{5,}\b/
  @negators ~w(not no never nothing don't won't isn't hasn't didn't doesn't can't)

  @doc "The simulated task model."
  def task_lm, do: DSPex.LM.Scripted.new(&answer/3, model: "simulated/guideline-matcher")

  @doc "The simulated prompt model (COPRO's instruction proposer)."
  def prompt_lm, do: DSPex.LM.Scripted.new(&propose/3, model: "simulated/instruction-proposer")

  @doc "The criteria sentences, by name (the README shows them)."
  def criteria, do: @criteria

  # ------------------------------------------------------------------ task model

  defp answer(messages, _params, _call) do
    system = messages |> hd() |> content()
    objective = system |> String.split("your objective is:") |> List.last()
    mode = for {name, re} <- @detect, Regex.match?(re, objective), into: MapSet.new(), do: name
    user = messages |> Enum.filter(&(role(&1) == "user")) |> List.last() |> content()

    conversation = section(user, "conversation")
    guidelines = user |> section("guidelines") |> DSPex.JSON.decode() |> ids()
    latest = latest_customer_turn(conversation)

    hits = for id <- guidelines, cue = applies(id, latest, conversation, mode), do: {id, cue}

    reasoning =
      case hits do
        [] ->
          "None of the guidelines is triggered by the latest message."

        _ ->
          Enum.map_join(hits, " ", fn {id, cue} -> "#{id}: the customer wrote \"#{cue}\"." end)
      end

    %{reasoning: reasoning, applicable: Enum.map(hits, &elem(&1, 0))}
  end

  # The cue that triggers guideline `id`, or nil.
  defp applies(id, latest, conversation, mode) do
    careful = MapSet.member?(mode, :condition)
    re = if careful, do: Map.get(@condition, id), else: Map.get(@topic, id)

    cue = re && first_cue(re, latest, MapSet.member?(mode, :negation))

    cond do
      cue == nil ->
        nil

      careful and id == "no_refund_promise" and Regex.match?(@already_received, latest) ->
        nil

      MapSet.member?(mode, :provided) and id == "ask_order_number" and
          Regex.match?(@order_number, conversation) ->
        nil

      true ->
        cue
    end
  end

  # The first match of `re` in `text` (not negated, when asked).
  defp first_cue(re, text, skip_negated) do
    re
    |> Regex.scan(text, return: :index)
    |> Enum.map(&hd/1)
    |> Enum.find_value(fn {at, len} ->
      if skip_negated and negated?(text, at), do: nil, else: binary_part(text, at, len)
    end)
  end

  # A negator among the four words before `at`, in the same sentence.
  defp negated?(text, at) do
    before = binary_part(text, 0, at)
    sentence = before |> String.split(~r/[.!?]/) |> List.last()

    sentence
    |> String.downcase()
    |> String.split(~r/[^a-z']+/, trim: true)
    |> Enum.take(-4)
    |> Enum.any?(&(&1 in @negators))
  end

  defp latest_customer_turn(conversation) do
    conversation
    |> String.split("\n")
    |> Enum.filter(&String.starts_with?(&1, "Customer:"))
    |> List.last()
    |> Kernel.||(conversation)
  end

  defp ids({:ok, %{} = map}), do: map |> Map.keys() |> Enum.filter(&Map.has_key?(@topic, &1))
  defp ids(_), do: []

  # ------------------------------------------------------------------ prompt model

  defp propose(messages, params, _call) do
    user = messages |> Enum.filter(&(role(&1) == "user")) |> List.last() |> content()
    n = max(1, params[:n] || 1)

    sets =
      if String.contains?(user, "[[ ## attempted_instructions ## ]]") do
        user |> section("attempted_instructions") |> attempts() |> combine()
      else
        # one criterion each
        [[:condition], [:negation], [:provided]]
      end

    base = base_instruction(user)

    # n choices, as a sampled model would give: the same idea may come back twice
    sets
    |> Stream.cycle()
    |> Enum.take(n)
    |> Enum.map(fn set ->
      %{
        proposed_instruction: instruction(base, set),
        proposed_prefix_for_output_field: "Applicable guideline ids:"
      }
    end)
  end

  # [{criteria, score}] from the "[k] «Instruction #j: ...»" / "«Resulting Score #j: ...»"
  # items of the attempts list
  defp attempts(text) do
    instructions = Regex.scan(~r/«Instruction #(\d+): (.*?)»/s, text)
    scores = Map.new(Regex.scan(~r/«Resulting Score #(\d+): ([\d.]+)»/, text), &score/1)

    for [_, j, instruction] <- instructions,
        do: {criteria_in(instruction), Map.get(scores, j, 0.0)}
  end

  defp score([_, j, s]) do
    {f, _} = Float.parse(s)
    {j, f}
  end

  # Proposals from scored attempts: the criteria of the two best together, of every
  # attempt that beat the worst, then the best plus each criterion it lacks.
  defp combine(attempts) do
    ranked = Enum.sort_by(attempts, fn {_, s} -> -s end)
    worst = attempts |> Enum.map(&elem(&1, 1)) |> Enum.min(fn -> 0.0 end)
    best = ranked |> List.first({[], 0.0}) |> elem(0)
    top2 = ranked |> Enum.take(2) |> Enum.flat_map(&elem(&1, 0))
    better = for {c, s} <- ranked, s > worst, c2 <- c, do: c2
    names = Keyword.keys(@criteria)

    ([top2, better] ++ for(c <- names, c not in best, do: best ++ [c]) ++ [best])
    |> Enum.map(fn set -> Enum.filter(names, &(&1 in set)) end)
    |> Enum.uniq()
  end

  defp criteria_in(instruction),
    do: for({name, re} <- @detect, Regex.match?(re, instruction), do: name)

  # The instruction without the criteria sentences this model adds.
  defp base_instruction(user) do
    text =
      if String.contains?(user, "[[ ## basic_instruction ## ]]"),
        do: section(user, "basic_instruction"),
        else: user |> section("attempted_instructions") |> first_instruction()

    @criteria
    |> Keyword.values()
    |> Enum.reduce(text, &String.replace(&2, &1, ""))
    |> String.trim()
  end

  defp first_instruction(text) do
    case Regex.run(~r/«Instruction #\d+: (.*?)»/s, text) do
      [_, i] -> i
      _ -> ""
    end
  end

  defp instruction(base, set),
    do: Enum.join([base | for(c <- set, do: Keyword.fetch!(@criteria, c))], " ")

  # ------------------------------------------------------------------ prompt parsing

  defp section(text, name) do
    case Regex.run(~r/\[\[ ## #{name} ## \]\]\n(.*?)(?=\n\n\[\[ ## |\n\nRespond with|\z)/s, text) do
      [_, value] -> String.trim(value)
      _ -> ""
    end
  end

  defp role(m), do: m[:role] || m["role"]
  defp content(nil), do: ""
  defp content(m), do: to_string(m[:content] || m["content"] || "")
end
