defmodule DSPex.Server.ProgramsTest do
  # Programs from a directory of saved states (real files), hot-reloaded while the
  # server runs, served over real HTTP.
  use ExUnit.Case, async: false
  @moduletag :capture_log

  alias DSPex.Test.{HTTP, ServerPrograms, Wait}

  setup do
    dir = Path.join(System.tmp_dir!(), "dspex_programs_#{System.unique_integer([:positive])}")
    File.mkdir_p!(dir)
    on_exit(fn -> File.rm_rf!(dir) end)
    lm = ServerPrograms.lm(%{answer: "Paris"})
    %{dir: dir, lm: lm}
  end

  defp start(opts) do
    name = :"programs_test_#{System.unique_integer([:positive])}"
    start_supervised!({DSPex.Server, Keyword.merge([name: name, port: 0], opts)})
    %{name: name, url: DSPex.Server.url(name)}
  end

  # Saves `program` with `instructions` as NAME.json the way a deploy should: a
  # temporary file renamed over the old one.
  defp save(dir, name, program, instructions) do
    program =
      DSPex.Module.map_predictors(program, fn _, p ->
        %{p | signature: %{p.signature | instructions: instructions}}
      end)

    tmp = Path.join(dir, ".#{name}.json.tmp")
    :ok = DSPex.Program.save(program, tmp)
    :ok = File.rename(tmp, Path.join(dir, name <> ".json"))
  end

  defp system_prompt(lm) do
    %{messages: [%{content: sys} | _]} = List.last(DSPex.LM.Scripted.requests(lm))
    sys
  end

  defp version(url, name) do
    {200, %{"programs" => programs}} = HTTP.get_json(url <> "/health")
    get_in(programs, [name, "version"])
  end

  test "a saved state in the directory is applied to the program's spec", %{dir: dir, lm: lm} do
    save(dir, "qa", DSPex.Predict.new("question -> answer"), "Answer in one word.")

    %{url: url} =
      start(lm: lm, programs_dir: dir, programs: %{"qa" => {DSPex.Predict, "question -> answer"}})

    assert {200, %{"prediction" => %{"answer" => "Paris"}}} =
             HTTP.post_json(url <> "/v1/programs/qa", %{question: "Capital of France?"})

    assert system_prompt(lm) =~ "Answer in one word."
  end

  test "a sidecar NAME.program.json says what to build", %{dir: dir, lm: lm} do
    File.write!(
      Path.join(dir, "cot.program.json"),
      ~s({"predictor": "ChainOfThought", "signature": "question -> answer"})
    )

    File.write!(
      Path.join(dir, "rewrite.program.json"),
      ~s({"module": "DSPex.Test.ServerPrograms.Rewrite"})
    )

    %{url: url} =
      start(lm: ServerPrograms.lm(%{reasoning: "r", query: "q", answer: "A"}), programs_dir: dir)

    assert {200, %{"prediction" => %{"reasoning" => "r", "answer" => "A"}}} =
             HTTP.post_json(url <> "/v1/programs/cot", %{question: "?"})

    assert {200, %{"prediction" => %{"answer" => "A"}}} =
             HTTP.post_json(url <> "/v1/programs/rewrite", %{question: "?"})

    _ = lm
  end

  test "a sidecar cannot name an arbitrary module, nor make an atom", %{dir: dir, lm: lm} do
    File.write!(Path.join(dir, "evil.program.json"), ~s({"module": "File"}))

    File.write!(
      Path.join(dir, "ghost.program.json"),
      ~s({"module": "Surely.Not.A.Module.#{System.unique_integer([:positive])}"})
    )

    %{url: url} = start(lm: lm, programs_dir: dir)
    {200, health} = HTTP.get_json(url <> "/health")

    assert health["status"] == "degraded"
    assert health["failed"]["evil"]["message"] =~ "is not a module that uses DSPex.Module"
    assert health["failed"]["ghost"]["message"] =~ "unknown module"
    assert {404, _} = HTTP.post_json(url <> "/v1/programs/evil", %{})
  end

  test "hot reload: a new version serves after the rename; a broken one keeps the old serving",
       %{dir: dir, lm: lm} do
    save(dir, "qa", DSPex.Predict.new("question -> answer"), "Version one.")

    %{url: url} =
      start(
        lm: lm,
        programs_dir: dir,
        reload_interval_ms: 50,
        programs: %{"qa" => {DSPex.Predict, "question -> answer"}}
      )

    {200, _} = HTTP.post_json(url <> "/v1/programs/qa", %{question: "?"})
    assert system_prompt(lm) =~ "Version one."
    v1 = version(url, "qa")

    save(dir, "qa", DSPex.Predict.new("question -> answer"), "Version two.")
    Wait.until(fn -> version(url, "qa") != v1 end)
    {200, _} = HTTP.post_json(url <> "/v1/programs/qa", %{question: "?"})
    assert system_prompt(lm) =~ "Version two."
    v2 = version(url, "qa")

    # A broken file: the previous version keeps serving, /health and /metrics say so.
    File.write!(Path.join(dir, "qa.json"), "{ this is not json")

    Wait.until(fn ->
      {200, h} = HTTP.get_json(url <> "/health")
      h["status"] == "degraded"
    end)

    assert version(url, "qa") == v2
    {200, _} = HTTP.post_json(url <> "/v1/programs/qa", %{question: "?"})
    assert system_prompt(lm) =~ "Version two."
    {200, text} = HTTP.get_json(url <> "/metrics")
    assert text =~ ~s(dspex_server_program_reloads_total{program="qa",outcome="error"} 1)
  end

  test "files appearing and disappearing add and remove programs", %{dir: dir, lm: lm} do
    %{url: url, name: name} = start(lm: lm, programs_dir: dir, reload_interval_ms: 0)
    assert {404, _} = HTTP.post_json(url <> "/v1/programs/late", %{question: "?"})

    File.write!(
      Path.join(dir, "late.program.json"),
      ~s({"predictor": "Predict", "signature": "question -> answer"})
    )

    save(dir, "late", DSPex.Predict.new("question -> answer"), "Late.")
    # Polling is off: an explicit rescan.
    :ok = DSPex.Server.reload(name)
    assert {200, _} = HTTP.post_json(url <> "/v1/programs/late", %{question: "?"})

    File.rm!(Path.join(dir, "late.json"))
    File.rm!(Path.join(dir, "late.program.json"))
    :ok = DSPex.Server.reload(name)
    assert {404, _} = HTTP.post_json(url <> "/v1/programs/late", %{question: "?"})
  end

  test "a state that does not fit the spec is reported, not served", %{dir: dir, lm: lm} do
    save(dir, "two", DSPex.Test.ServerPrograms.Rewrite.new(), "x")

    %{url: url} =
      start(lm: lm, programs_dir: dir, programs: %{"two" => {DSPex.Predict, "q -> a"}})

    {200, health} = HTTP.get_json(url <> "/health")
    assert health["failed"]["two"]["type"] == "load_state"
  end
end
