defmodule Mix.Tasks.Dspex.OptimizeTest do
  # mix dspex.optimize against an OpenAI-compatible loopback server answering as the
  # golden world does: the job runs, prints its trials and summary, saves DSPy JSON and
  # the candidates; --resume of a finished journal returns the same program without LM
  # calls; bad options are clear errors.
  use ExUnit.Case, async: true

  import ExUnit.CaptureIO

  alias DSPex.Test.OptimizeSupport, as: S

  @moduletag :tmp_dir
  @moduletag timeout: 300_000
  @moduletag capture_log: true

  setup %{tmp_dir: dir} do
    {:ok, srv} = S.start_lm_server()
    train = Path.join(dir, "train.jsonl")

    File.write!(
      train,
      Enum.map_join(S.dataset(60, 5), "", fn ex ->
        DSPex.JSON.encode!(%{question: ex[:question], answer: ex[:answer]}) <> "\n"
      end)
    )

    {:ok, srv: srv, base: S.lm_server_base(srv), train: train}
  end

  defp optimize(args), do: Mix.Tasks.Dspex.Optimize.run(args)

  test "mipro_v2 light: progress, summary, DSPy JSON out; resume of the finished journal", ctx do
    out = Path.join(ctx.tmp_dir, "qa.json")
    journal = Path.join(ctx.tmp_dir, "qa.journal")

    args = ~w(--optimizer mipro_v2 --auto light --program question->answer --train #{ctx.train}
         --metric exact_match --lm openai/loopback --api-base #{ctx.base} --no-cache --out #{out})

    {stdout, stderr} =
      with_io(:stderr, fn -> capture_io(fn -> optimize(args ++ ["--journal", journal]) end) end)
      |> then(fn {stdout, stderr} -> {stdout, stderr} end)

    assert stderr =~ ~r/^Trial 1\/\d+  default/m
    assert stdout =~ "Status: finished"
    assert stdout =~ "Journal: #{journal}"
    assert stdout =~ "Chart: #{journal}.svg"
    assert stdout =~ "Saved: #{out}"
    {:ok, loaded} = DSPex.Program.load(DSPex.Predict.new("question -> answer"), out)
    assert loaded.signature.instructions != ""

    cands =
      out
      |> String.replace_suffix(".json", ".candidates.json")
      |> File.read!()
      |> DSPex.JSON.decode!()

    assert [%{"full_eval" => true, "score" => _, "program" => %{"signature" => _}} | _] = cands

    calls = S.lm_server_count(ctx.srv)
    out2 = Path.join(ctx.tmp_dir, "again.json")
    args2 = List.replace_at(args, -1, out2) ++ ["--resume", journal]
    capture_io(:stderr, fn -> capture_io(fn -> optimize(args2) end) end)
    assert S.lm_server_count(ctx.srv) == calls
    assert File.read!(out2) == File.read!(out)
  end

  test "budgets from the command line stop the job cleanly", ctx do
    prices = Path.join(ctx.tmp_dir, "prices.json")
    File.write!(prices, ~s({"openai/loopback": {"prompt": 1000.0, "completion": 1000.0}}))

    stdout =
      capture_io(fn ->
        capture_io(:stderr, fn ->
          optimize(
            ~w(--optimizer copro --breadth 3 --depth 2 --program question->answer --train #{ctx.train}
               --metric exact_match --lm openai/loopback --api-base #{ctx.base} --no-cache
               --max-cost 5 --prices #{prices} --no-progress)
          )
        end)
      end)

    assert stdout =~ "Status: budget_exhausted (max_cost $5.0 reached)"
  end

  test "clear errors for bad options", ctx do
    assert_raise Mix.Error, ~r/--optimizer: expected one of/, fn ->
      optimize(~w(--optimizer nope --program q->a --train #{ctx.train} --metric em))
    end

    assert_raise Mix.Error, ~r/needs --train/, fn ->
      optimize(~w(--optimizer copro --program q->a --metric em))
    end

    assert_raise Mix.Error, ~r/--max-wall: expected a duration/, fn ->
      optimize(
        ~w(--optimizer copro --program question->answer --train #{ctx.train} --metric em --max-wall soon)
      )
    end

    assert Mix.Tasks.Dspex.Optimize.wall("90s") == 90_000 and
             Mix.Tasks.Dspex.Optimize.wall("2h") == 7_200_000
  end
end
