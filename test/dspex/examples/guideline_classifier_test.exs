# The example's modules and the fake OpenAI server, loaded before this module compiles.
Code.require_file("../../../examples/guideline_classifier/runner.ex", __DIR__)
Code.require_file("../../../examples/support/fake_openai.exs", __DIR__)

defmodule DSPex.Examples.GuidelineClassifierTest do
  # examples/guideline_classifier run end to end: as `mix run .../run.exs` runs it (the
  # simulated LM), and with `--model openai/... --api-base` against the fake OpenAI
  # server on 127.0.0.1 (real HTTP through the port program).
  use ExUnit.Case, async: false

  import ExUnit.CaptureIO

  @dir Path.expand("../../../examples/guideline_classifier", __DIR__)

  setup do
    out = Path.join(System.tmp_dir!(), "gc-test-#{System.unique_integer([:positive])}")
    example_lm = System.get_env("DSPEX_EXAMPLE_LM")
    System.delete_env("DSPEX_EXAMPLE_LM")

    on_exit(fn ->
      if example_lm, do: System.put_env("DSPEX_EXAMPLE_LM", example_lm)
      File.rm_rf(out)
    end)

    %{out: out}
  end

  defp eval_run_exs(argv) do
    saved = System.argv()
    System.argv(argv)

    try do
      with_io(:stderr, fn ->
        with_io(fn -> Code.eval_file(Path.join(@dir, "run.exs")) |> elem(0) end)
      end)
    after
      System.argv(saved)
    end
  end

  test "run.exs: simulated LM, COPRO improves the dev score, the saved program loads", %{
    out: out
  } do
    {{r, stdout}, stderr} = eval_run_exs(["--out", out])

    assert stdout =~ "LM: SIMULATED. No language model runs here"
    # the train and dev files as shipped
    assert stdout =~ "train: 30 conversations, dev: 16"

    # COPRO's progress lines, one per scored candidate (breadth 4 x depth 2)
    assert length(Regex.scan(~r/^Trial \d\/8 /m, stderr)) == 8
    assert r.result.total_calls == 8

    # the optimized instruction is one COPRO proposed, and it scores better on dev
    assert r.before.jaccard == 58.33
    assert r.after.jaccard == 87.5
    assert r.after.exact > r.before.exact
    assert r.instruction =~ "its condition is actually met"
    assert r.instruction =~ "Ignore negated mentions"
    assert r.instruction =~ "already provided"
    assert stdout =~ "dev Jaccard: 58.33 -> 87.50 (+29.17 points)"

    # saved as DSPy JSON, and a fresh program loaded from it is the optimized one
    assert r.path == Path.join(out, "guideline_classifier.json")
    state = r.path |> File.read!() |> DSPex.JSON.decode!()
    assert state["match.predict"]["signature"]["instructions"] == r.instruction
    assert state["metadata"]["dependency_versions"] == %{"dspy" => "3.3.1"}
    assert r.loaded_instruction == r.instruction
    assert r.reloaded.jaccard == r.after.jaccard
    assert stdout =~ "same signature true, dev Jaccard 87.50"
  end

  test "--model openai/... --api-base: the same run over HTTP", %{out: out} do
    proposed =
      "Decide which guidelines apply. A guideline applies only when its condition is met."

    fake =
      DSPex.Examples.FakeOpenAI.start(
        answers: %{
          "reasoning" => "The customer reports a defect.",
          "applicable" => fn text ->
            if text =~ ~r/broke|crack|bent|damaged/, do: ["apologize_defect"], else: []
          end,
          "proposed_instruction" => proposed,
          "proposed_prefix_for_output_field" => "Applicable:"
        }
      )

    argv =
      ~w(--model openai/gpt-4o-mini --api-base #{fake.url} --train 4 --dev 4) ++
        ~w(--breadth 2 --depth 1 --no-cache --out #{out})

    {{r, stdout}, _stderr} =
      with_io(:stderr, fn -> with_io(fn -> GuidelineClassifier.Run.main(argv) end) end)

    assert stdout =~ "LM: openai/gpt-4o-mini (task)"
    refute stdout =~ "SIMULATED"
    assert r.result.total_calls == 2
    assert proposed in Enum.map(r.result.candidate_programs, & &1.instruction)
    assert r.before.errors == 0 and r.after.errors == 0
    assert r.loaded_instruction == r.instruction
    assert r.reloaded.jaccard == r.after.jaccard
    # every step over HTTP: before (4), COPRO (1 proposal, 2 candidates x 4), after (4),
    # reloaded (4)
    assert DSPex.Examples.FakeOpenAI.count(fake) == 4 + 1 + 2 * 4 + 4 + 4
  end
end
