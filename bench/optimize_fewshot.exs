# Few-shot optimizers, DSPex vs Python DSPy 3.3.1 in the same run, on the same data and
# the same scripted answers:
#
#   1. BootstrapFewShot compile time: ChainOfThought("question -> answer") over N
#      training examples (every one tried: max_bootstrapped_demos = N, max_labeled_demos
#      16, max_rounds 2), the LM answered in-process on both sides (DSPex.LM.Scripted /
#      a DummyLM subclass) by the same rule. Best of REPS compiles each; the demos'
#      SHA-256 must match.
#   2. BootstrapFewShotWithRandomSearch on Predict("question -> answer") with a loopback
#      LM: both sides call ONE OpenAI-compatible HTTP server on 127.0.0.1 (DSPex through
#      its port program, DSPy through litellm), LM caches off, CANDIDATES candidate
#      programs, THREADS concurrent evaluations. DSPex best of two runs; DSPy one run.
#      The candidates' scores must match.
#
#   MIX_ENV=prod mix run bench/optimize_fewshot.exs
#
# Environment: N (default 300), REPS (default 3), RS_N (examples for part 2, default
# 60), CANDIDATES (default 8), THREADS (default 16), DSPY_PYTHON (default
# /work/venv/bin/python; without it the DSPy columns are n/a).
#
# The rule: question i is answered right when its rule is "always", or "tag" and a demo in
# the prompt carries the same [tag:x]; wrong otherwise ("never").

Code.require_file("../test/support/loopback_server.ex", __DIR__)

alias DSPex.Optimizers.{BootstrapFewShot, BootstrapFewShotWithRandomSearch}
alias DSPex.Test.LoopbackServer

n = String.to_integer(System.get_env("N", "300"))
reps = String.to_integer(System.get_env("REPS", "3"))
rs_n = String.to_integer(System.get_env("RS_N", "60"))
candidates = String.to_integer(System.get_env("CANDIDATES", "8"))
threads = String.to_integer(System.get_env("THREADS", "16"))

python =
  [System.get_env("DSPY_PYTHON"), "/work/venv/bin/python", "/opt/dspy-venv/bin/python"]
  |> Enum.find(&(&1 && File.exists?(&1)))

script = Path.join(__DIR__, "py/optimize_fewshot_bench.py")

rules = ~w(always tag tag never tag always)

world =
  for i <- 1..n do
    {a, b} = {rem(i * 7, 13), rem(i * 5, 11)}
    tag = String.at("abcd", rem(i, 4))
    id = "Q" <> String.pad_leading(Integer.to_string(i), 4, "0")

    %{
      "id" => id,
      "q" => "#{id} [tag:#{tag}] What is #{a} plus #{b}?",
      "tag" => tag,
      "answer" => "#{a + b}",
      "wrong" => "#{a + b + 1}",
      "rule" => Enum.at(rules, rem(i, length(rules)))
    }
  end

by_id = Map.new(world, &{&1["id"], &1})
world_path = Path.join(System.tmp_dir!(), "dspex_optimize_bench_#{System.os_time()}.json")
File.write!(world_path, DSPex.JSON.encode!(world))
rs_world_path = world_path <> ".rs.json"
File.write!(rs_world_path, DSPex.JSON.encode!(Enum.take(world, rs_n)))

request = "Respond with the corresponding output fields"

# The rule, over chat messages (maps with "content" or :content).
answer = fn messages ->
  content = fn m -> m[:content] || m["content"] end
  last = content.(List.last(messages))
  [_, id] = Regex.run(~r/(Q\d{4}) \[tag:/, last)
  e = Map.fetch!(by_id, id)

  good =
    case e["rule"] do
      "always" ->
        true

      "tag" ->
        messages
        |> Enum.drop(-1)
        |> Enum.any?(&String.contains?(content.(&1), "[tag:#{e["tag"]}]"))

      _ ->
        false
    end

  {at, _} = :binary.matches(last, request) |> List.last()
  tail = binary_part(last, at, byte_size(last) - at)

  for [_, f] <- Regex.scan(~r/\[\[ ## (\w+) ## \]\]/, tail), f != "completed", into: %{} do
    if f == "answer",
      do: {:answer, if(good, do: e["answer"], else: e["wrong"])},
      else: {String.to_atom(f), "Thinking about #{e["id"]}."}
  end
end

examples = fn entries ->
  for e <- entries,
      do:
        DSPex.Example.new(question: e["q"], answer: e["answer"])
        |> DSPex.Example.with_inputs([:question])
end

exact = fn ex, pred, _trace -> pred.answer == ex[:answer] end

secs = fn fun ->
  t0 = System.monotonic_time()
  result = fun.()
  {System.convert_time_unit(System.monotonic_time() - t0, :native, :microsecond) / 1.0e6, result}
end

load = fn ->
  :os.cmd(~c"cat /proc/loadavg")
  |> to_string()
  |> String.split()
  |> Enum.take(3)
  |> Enum.join(" ")
end

fmt = fn x -> :erlang.float_to_binary(x * 1.0, decimals: 3) end

py_run = fn args ->
  if python do
    {out, status} = System.cmd(python, [script | args], stderr_to_stdout: true)
    if status != 0, do: IO.puts("DSPy run failed (#{status}):\n" <> out)
    out
  end
end

IO.puts(
  "DSPex few-shot optimizers vs DSPy #{if python, do: "3.3.1 (#{python})", else: "(not found)"}"
)

IO.puts("machine: #{System.schedulers_online()} schedulers; load average at start #{load.()}\n")

# --- 1. BootstrapFewShot compile time -------------------------------------------------

lm = DSPex.LM.Scripted.new(fn messages, _params -> answer.(messages) end)
trainset = examples.(world)
cot = DSPex.ChainOfThought.new("question -> answer")

compile_once = fn ->
  DSPex.with_settings([lm: lm], fn ->
    BootstrapFewShot.compile!(cot, trainset,
      metric: exact,
      max_bootstrapped_demos: n,
      max_labeled_demos: 16,
      max_rounds: 2
    )
  end)
end

_ = compile_once.()

{t_dspex, compiled} =
  Enum.map(1..reps, fn _ -> secs.(compile_once) end) |> Enum.min_by(&elem(&1, 0))

demos = Map.new(DSPex.Module.named_predictors(compiled), fn {name, p} -> {name, p.demos} end)
json = DSPex.JSON.encode!(DSPex.Program.jsonable(demos), sort_keys: true)
sha = Base.encode16(:crypto.hash(:sha256, json), case: :lower)
calls = length(DSPex.LM.Scripted.requests(lm)) |> div(reps + 1)

{t_py, py_sha} =
  case py_run.(["bootstrap", world_path, Integer.to_string(reps)]) do
    nil ->
      {nil, nil}

    out ->
      case Regex.run(~r/bootstrap seconds=([0-9.]+) demos_sha=(\w+)/, out) do
        [_, s, h] -> {String.to_float(s), h}
        _ -> {nil, nil}
      end
  end

IO.puts(
  "1. BootstrapFewShot.compile, ChainOfThought, #{n} examples, #{calls} LM calls per compile, best of #{reps}"
)

IO.puts(
  "   DSPex #{fmt.(t_dspex)} s   DSPy #{if t_py, do: fmt.(t_py) <> " s", else: "n/a"}" <>
    if(t_py, do: "   DSPy/DSPex #{Float.round(t_py / t_dspex, 1)}x", else: "")
)

IO.puts(
  "   same demos as DSPy: #{cond do
    py_sha == nil -> "n/a"
    py_sha == sha -> "yes (#{String.slice(sha, 0, 12)})"
    true -> "NO (DSPex #{String.slice(sha, 0, 12)}, DSPy #{String.slice(py_sha, 0, 12)})"
  end}\n"
)

# --- 2. BootstrapFewShotWithRandomSearch over a loopback LM ----------------------------

path = "/v1/chat/completions"

route = fn req ->
  text =
    req.body
    |> DSPex.JSON.decode!()
    |> Map.fetch!("messages")
    |> answer.()
    |> Enum.map_join("", fn {k, v} -> "[[ ## #{k} ## ]]\n#{v}\n\n" end)

  %{
    status: 200,
    headers: [{"content-type", "application/json"}],
    body:
      DSPex.JSON.encode!(%{
        id: "chatcmpl-bench",
        object: "chat.completion",
        created: 0,
        model: "loopback",
        choices: [
          %{
            index: 0,
            finish_reason: "stop",
            message: %{role: "assistant", content: text <> "[[ ## completed ## ]]"}
          }
        ],
        usage: %{prompt_tokens: 10, completion_tokens: 5, total_tokens: 15}
      })
  }
end

{:ok, srv} = LoopbackServer.start_link(routes: %{path => route}, record: false)

http_lm =
  DSPex.LM.new("openai/loopback",
    api_base: LoopbackServer.url(srv, "/v1"),
    api_key: "loopback",
    cache: false
  )

rs_trainset = examples.(Enum.take(world, rs_n))
qa = DSPex.Predict.new("question -> answer")

rs_once = fn ->
  DSPex.with_settings([lm: http_lm], fn ->
    BootstrapFewShotWithRandomSearch.run(qa, rs_trainset,
      metric: exact,
      max_bootstrapped_demos: 4,
      max_labeled_demos: 8,
      num_candidate_programs: candidates,
      max_concurrency: threads
    )
  end)
end

# warm-up: the port pool and connections
{:ok, _} =
  DSPex.with_settings([lm: http_lm], fn ->
    DSPex.Evaluate.run(qa, Enum.take(rs_trainset, 8), metric: exact, max_concurrency: 4)
  end)

before = LoopbackServer.count(srv, path)
{t1, {:ok, r1}} = secs.(rs_once)
dspex_requests = LoopbackServer.count(srv, path) - before
{t2, {:ok, _}} = secs.(rs_once)
t_rs = min(t1, t2)
scores = r1.candidates |> Enum.sort_by(& &1.seed) |> Enum.map(& &1.score)

before = LoopbackServer.count(srv, path)

{t_py_rs, py_scores} =
  case py_run.([
         "random_search",
         rs_world_path,
         LoopbackServer.url(srv, "/v1"),
         "#{threads}",
         "#{candidates}"
       ]) do
    nil ->
      {nil, nil}

    out ->
      case Regex.run(~r/random_search seconds=([0-9.]+) scores=(\[[^\]]*\])/, out) do
        [_, s, sc] -> {String.to_float(s), DSPex.JSON.decode!(sc)}
        _ -> {nil, nil}
      end
  end

# less the 8 requests of the DSPy side's warm-up evaluation
py_requests = LoopbackServer.count(srv, path) - before - 8

IO.puts(
  "2. BootstrapFewShotWithRandomSearch, Predict, #{rs_n} examples, #{candidates + 3} candidates, " <>
    "#{threads} concurrent, loopback HTTP LM"
)

IO.puts(
  "   DSPex #{fmt.(t_rs)} s (#{dspex_requests} HTTP requests)   " <>
    if(t_py_rs,
      do:
        "DSPy #{fmt.(t_py_rs)} s (#{py_requests} HTTP requests)   DSPy/DSPex #{Float.round(t_py_rs / t_rs, 1)}x",
      else: "DSPy n/a"
    )
)

IO.puts("   candidate scores (by seed): #{inspect(scores)}")

IO.puts(
  "   same scores as DSPy: #{cond do
    py_scores == nil -> "n/a"
    py_scores == scores -> "yes"
    true -> "NO (DSPy #{inspect(py_scores)})"
  end}"
)

IO.puts("\nload average at end #{load.()}")
LoopbackServer.stop(srv)
File.rm(world_path)
File.rm(rs_world_path)
