defmodule DSPex.Test.OptimizerWorld do
  @moduledoc false
  # The scripted world of the optimizer golden fixtures (tools/gen_optimizer_fixtures.py):
  # the same questions, the same LM rules, metrics and program shapes as the Python
  # generator, so DSPex and DSPy run the same scenarios. Keep the two in step.

  alias DSPex.Example

  @fixtures Path.expand("../fixtures/optimizers", __DIR__)
  @request "Respond with the corresponding output fields"

  def fixture!(name) do
    @fixtures |> Path.join(name) |> File.read!() |> DSPex.JSON.decode!()
  end

  def world, do: fixture!("world.json")["cases"]

  def by_id(world), do: Map.new(world, &{&1["id"], &1})
  def by_q(world), do: Map.new(world, &{&1["q"], &1})

  def example(world, id) do
    e = Map.fetch!(by_id(world), id)
    Example.new(question: e["q"], answer: e["answer"]) |> Example.with_inputs([:question])
  end

  def examples(world, ids), do: Enum.map(ids, &example(world, &1))

  @doc "The scripted LM of the world (`smart`: every non-failing entry answered right)."
  def lm(world, smart \\ false) do
    DSPex.LM.Scripted.new(fn messages, params ->
      case answer(world, messages, params, smart) do
        {:ok, _entry, _rollout, out} -> out
        {:error, _} = err -> err
      end
    end)
  end

  @doc "An LM that always gives the wrong answer."
  def dumb_lm(world) do
    DSPex.LM.Scripted.new(fn messages, _params ->
      last = content(List.last(messages))
      entry = Enum.find(world, &String.contains?(last, &1["q"]))

      Map.new(fields(last), fn
        :answer -> {:answer, entry["wrong"]}
        f -> {f, "Guessing #{entry["id"]}."}
      end)
    end)
  end

  @doc "The world's answer to one request (the Python generator's `world_answer`)."
  def answer(world, messages, params, smart) do
    last = content(List.last(messages))
    rollout = Map.get(params, :rollout_id) || 0
    fields = fields(last)

    case Enum.find(world, &String.contains?(last, &1["q"])) do
      nil ->
        {:ok, nil, rollout, Map.new(fields, &{&1, "unknown"})}

      %{"rule" => "fail", "id" => id} ->
        {:error, DSPex.Error.new(:scripted_failure, "scripted failure for #{id}")}

      entry ->
        context = messages |> Enum.drop(-1) |> Enum.map_join("\n", &content/1)

        good =
          cond do
            smart and entry["rule"] != "metric_fail" -> true
            entry["rule"] in ["always", "metric_fail"] -> true
            entry["rule"] == "tag" -> String.contains?(context, "[tag:#{entry["tag"]}]")
            entry["rule"] == "round" -> rollout >= entry["round"]
            true -> false
          end

        out =
          Map.new(fields, fn
            :answer -> {:answer, if(good, do: entry["answer"], else: entry["wrong"])}
            :reasoning -> {:reasoning, "Thinking about #{entry["id"]} (rollout #{rollout})."}
            f -> {f, "#{f} of #{entry["id"]}"}
          end)

        {:ok, entry, rollout, out}
    end
  end

  defp content(m), do: m[:content] || m["content"] || ""

  defp fields(last) do
    case :binary.matches(last, @request) do
      [] ->
        [:answer]

      matches ->
        {at, _} = List.last(matches)
        tail = binary_part(last, at, byte_size(last) - at)

        for [_, f] <- Regex.scan(~r/\[\[ ## (\w+) ## \]\]/, tail),
            f != "completed",
            do: String.to_atom(f)
    end
  end

  @doc "The successful calls of `lms`, as the generator logs them: [id, rollout, hot]."
  def call_log(world, lms) do
    for lm <- lms,
        req <- DSPex.LM.Scripted.requests(lm),
        {:ok, entry, rollout, _} <- [answer(world, req.messages, req.params, false)] do
      [entry && entry["id"], rollout, Map.get(req.params, :temperature) == 1.0]
    end
  end

  @doc "The generator's metrics by name."
  def metric(nil, _world), do: nil

  def metric(kind, world) do
    by_q = by_q(world)

    fn example, pred, trace ->
      entry = Map.fetch!(by_q, example[:question])

      if kind == "raising" and entry["rule"] == "metric_fail" do
        raise ArgumentError, "metric failure for #{entry["id"]}"
      end

      got = pred.answer

      score =
        cond do
          got == example[:answer] -> 1.0
          got == entry["half"] -> 0.5
          true -> 0.0
        end

      case kind do
        k when k in ["exact", "raising"] -> got == example[:answer]
        "graded" -> score
        "trace_aware" -> if trace == nil, do: score, else: score >= 1.0 and trace != []
      end
    end
  end

  @doc "The generator's program shapes."
  def program("predict"), do: DSPex.Predict.new("question -> answer")
  def program("cot"), do: DSPex.ChainOfThought.new("question -> answer")
  def program("two"), do: DSPex.Test.OptimizerWorld.Two.new()
  def program("three"), do: DSPex.Test.OptimizerWorld.Three.new()

  @doc "Fixture demos ([[key, value]] pairs) as DSPex demo maps."
  def demo(pairs), do: Map.new(pairs, fn [k, v] -> {String.to_atom(k), v} end)

  def demos(by_name), do: Map.new(by_name, fn {name, ds} -> {name, Enum.map(ds, &demo/1)} end)

  def demos_of(program) do
    Map.new(DSPex.Module.named_predictors(program), fn {n, p} -> {n, p.demos} end)
  end

  @doc "The key order of every demo as DSPex.Program saves it, by predictor name."
  def saved_key_order(program) do
    {:ordered, entries} = DSPex.Program.dump_state(program)

    # A bare Predict is saved at the top level (DSPy's Predict.dump_state).
    entries =
      if match?(%DSPex.Predict{}, program), do: [{"self", {:ordered, entries}}], else: entries

    for {name, {:ordered, state}} <- entries, name != "metadata", into: %{} do
      {"demos", demos} = List.keyfind(state, "demos", 0)
      {name, Enum.map(demos, fn kw -> Enum.map(kw, &Atom.to_string(elem(&1, 0))) end)}
    end
  end
end

defmodule DSPex.Test.OptimizerWorld.Two do
  @moduledoc false
  use DSPex.Module

  predictor :rewrite, "question -> query"
  predictor :answer, DSPex.ChainOfThought, "query, question -> answer"

  @impl DSPex.Module
  def forward(program, %{question: question}) do
    with {:ok, q} <- DSPex.call(program.rewrite, question: question) do
      DSPex.call(program.answer, query: q.query, question: question)
    end
  end
end

defmodule DSPex.Test.OptimizerWorld.Three do
  @moduledoc false
  use DSPex.Module

  predictor :a, "question -> answer"
  predictor :b, "question -> answer"
  predictor :c, DSPex.ChainOfThought, "question -> answer"

  @impl DSPex.Module
  def forward(program, %{question: question}),
    do: DSPex.call(program.c, question: question)
end
