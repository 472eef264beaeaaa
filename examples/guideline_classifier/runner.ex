# The steps of run.exs (see there for the options): evaluate, optimize with COPRO,
# evaluate, save, load. `GuidelineClassifier.Run.main(argv)` returns the scores, the
# COPRO result and the saved path, for tests.

Code.require_file("guideline_classifier.ex", __DIR__)
Code.require_file("simulated_lm.ex", __DIR__)

defmodule GuidelineClassifier.Run do
  @moduledoc false

  @switches [
    model: :string,
    prompt_model: :string,
    api_base: :string,
    breadth: :integer,
    depth: :integer,
    train: :integer,
    dev: :integer,
    out: :string,
    max_tokens: :integer,
    cache: :boolean
  ]

  def main(argv) do
    opts =
      case OptionParser.parse(argv, strict: @switches) do
        {opts, [], []} -> opts
        {_, rest, bad} -> Mix.raise("unknown arguments: #{inspect(rest ++ bad)}")
      end

    # DSPEX_EXAMPLE_LM picks the model as for the other examples
    opts = Keyword.put_new(opts, :model, System.get_env("DSPEX_EXAMPLE_LM"))

    data = Path.join(__DIR__, "data")
    trainset = take(GuidelineClassifier.dataset(Path.join(data, "train.jsonl")), opts[:train])
    devset = take(GuidelineClassifier.dataset(Path.join(data, "dev.jsonl")), opts[:dev])
    out = opts[:out] || Path.join(System.tmp_dir!(), "dspex_guideline_classifier")
    File.mkdir_p!(out)
    {task, prompt} = lms(opts)

    IO.puts("train: #{length(trainset)} conversations, dev: #{length(devset)}")
    program = GuidelineClassifier.new()

    DSPex.with_settings([lm: task], fn ->
      before = evaluate(program, devset)
      report("before (the signature's instruction)", before)

      breadth = opts[:breadth] || 4
      depth = opts[:depth] || 2
      IO.puts("\nCOPRO: breadth #{breadth}, depth #{depth} on the trainset ...")

      journal = Path.join(out, "copro.journal")
      File.rm(journal)

      result =
        DSPex.Optimizers.COPRO.compile(program, trainset,
          metric: &GuidelineClassifier.jaccard/3,
          prompt_model: prompt,
          task_model: task,
          breadth: breadth,
          depth: depth,
          journal: journal,
          max_concurrency: if(local?(opts[:model]), do: 1, else: 8)
        )
        |> case do
          {:ok, result} -> result
          {:error, e} -> Mix.raise("COPRO failed: " <> Exception.message(e))
        end

      IO.puts(
        "  #{result.total_calls} candidates scored on the trainset, best first " <>
          "(\"...\" is the signature's instruction):"
      )

      base = program.match.predict.signature.instructions

      for c <- Enum.take(result.candidate_programs, 6) do
        shown = String.replace(c.instruction, base, "...")
        IO.puts("  #{pad(c.score)}  round #{c.depth}  #{shown}")
      end

      optimized = result.program
      IO.puts("\nthe chosen instruction:\n  " <> optimized.match.predict.signature.instructions)

      after_ = evaluate(optimized, devset)
      report("after COPRO", after_)

      IO.puts(
        "\ndev Jaccard: #{pad(before.jaccard)} -> #{pad(after_.jaccard)} " <>
          "(#{signed(after_.jaccard - before.jaccard)} points), " <>
          "exact set match: #{pad(before.exact)} -> #{pad(after_.exact)}"
      )

      path = Path.join(out, "guideline_classifier.json")
      :ok = DSPex.Program.save(optimized, path)
      IO.puts("\nsaved #{path} (DSPy's JSON: dspy.ChainOfThought(Match).load(path) reads it)")

      {:ok, loaded} = DSPex.Program.load(GuidelineClassifier.new(), path)
      reloaded = evaluate(loaded, devset)

      same = loaded.match.predict.signature == optimized.match.predict.signature

      IO.puts(
        "loaded it into a fresh GuidelineClassifier: same signature #{same}, " <>
          "dev Jaccard #{pad(reloaded.jaccard)}"
      )

      %{
        before: before,
        after: after_,
        reloaded: reloaded,
        result: result,
        path: path,
        instruction: optimized.match.predict.signature.instructions,
        loaded_instruction: loaded.match.predict.signature.instructions
      }
    end)
  end

  defp take(set, nil), do: set
  defp take(set, n), do: Enum.take(set, n)

  defp local?(model), do: is_binary(model) and String.starts_with?(model, "local/")

  defp lms(opts) do
    case opts[:model] do
      nil ->
        IO.puts("""
        LM: SIMULATED. No language model runs here: the task model is a deterministic
        cue-word matcher that reads the instruction in its prompt (it checks guideline
        conditions, negations and information already given only when the instruction
        asks for it), and the prompt model proposes instructions by adding and combining
        those criteria (see simulated_lm.ex). COPRO's search and scoring are real.
        Pass --model openai/gpt-4o-mini or --model local/smollm2 for a real model.
        """)

        {GuidelineClassifier.Simulated.task_lm(), GuidelineClassifier.Simulated.prompt_lm()}

      model ->
        task = lm!(model, opts)
        prompt = if opts[:prompt_model], do: lm!(opts[:prompt_model], opts), else: task
        IO.puts("LM: #{model} (task), #{opts[:prompt_model] || model} (instruction proposals)")
        {task, prompt}
    end
  end

  defp lm!(model, opts) do
    lm_opts =
      [
        temperature: 0.0,
        max_tokens: opts[:max_tokens] || if(local?(model), do: 256, else: 1000),
        cache: Keyword.get(opts, :cache, true)
      ]
      |> then(&if opts[:api_base], do: [{:api_base, opts[:api_base]} | &1], else: &1)

    lm = DSPex.LM.new(model, lm_opts)

    if local?(model) do
      lm
    else
      case DSPex.LM.require_key(lm) do
        :ok -> lm
        {:error, e} -> Mix.raise(e.message)
      end
    end
  end

  defp evaluate(program, devset) do
    {:ok, j} = DSPex.Evaluate.run(program, devset, metric: &GuidelineClassifier.jaccard/3)

    exact =
      Enum.count(j.results, fn {ex, pred, _} ->
        is_map(pred) and GuidelineClassifier.exact(ex, pred)
      end)

    %{
      jaccard: j.score,
      exact: Float.round(100 * exact / max(length(devset), 1), 2),
      results: j.results,
      errors: length(j.errors)
    }
  end

  defp report(title, r) do
    IO.puts(
      "\n#{title}: dev Jaccard #{pad(r.jaccard)}, exact set match #{pad(r.exact)}" <>
        if(r.errors > 0, do: ", #{r.errors} failed calls", else: "")
    )

    for {ex, pred, score} <- Enum.take(r.results, 3) do
      got = if is_map(pred), do: inspect(pred[:applicable]), else: "(failed)"
      turn = ex[:conversation] |> String.split("\n") |> List.last()
      IO.puts("  #{String.slice(turn, 0, 70)}")
      IO.puts("    labelled #{inspect(ex[:applicable])}, predicted #{got} (#{score(score)})")
    end
  end

  defp score(s) when is_number(s), do: :erlang.float_to_binary(s * 1.0, decimals: 2)
  defp score(s), do: inspect(s)
  defp pad(x), do: :erlang.float_to_binary(x * 1.0, decimals: 2)
  defp signed(x) when x >= 0, do: "+" <> pad(x)
  defp signed(x), do: pad(x)
end
