defmodule DSPex.Test.OptimizeSupport do
  @moduledoc """
  The scripted world of the optimizer golden tests, identical to the one
  `tools/gen_mipro_traces.py` runs real DSPy in (compiled into the test build, so
  `DSPex.Test.Cluster` peers have it too):

    * `dataset/2` — "What is a plus b?" examples from CPython's `random.Random(seed)`;
    * `task_lm/1` — answers from a hash of the exact prompt: correct when
      `sha256(system <> "\\0" <> last user message <> "\\0" <> message count)` starts
      with a byte < 154, else "wrong"; other output fields get "Let me think.";
    * `prompt_lm/0` — the prompt model: replies by the asked signature's output fields
      and a per-field call counter, as the Python script does;
    * `Two`, `Three` — the multi-predictor programs of the traces.
  """

  alias DSPex.LM.Scripted

  @doc "`n` examples from `random.Random(seed)`: `randint(1, 99)` twice each."
  def dataset(n, seed) do
    {list, _} =
      Enum.map_reduce(1..n, DSPex.Random.new(seed), fn _, rng ->
        {a, rng} = DSPex.Random.randint(rng, 1, 99)
        {b, rng} = DSPex.Random.randint(rng, 1, 99)
        {example("What is #{a} plus #{b}?", Integer.to_string(a + b)), rng}
      end)

    list
  end

  @doc "An example with `question` as input."
  def example(q, a),
    do: DSPex.Example.new(question: q, answer: a) |> DSPex.Example.with_inputs([:question])

  @doc "Exact match on `answer` (a named function: usable on every node)."
  def metric(example, pred), do: example[:answer] == pred.answer

  @doc "Whether the task model answers this prompt correctly (the shared hash rule)."
  def task_correct?(messages) do
    system = content(hd(messages))
    user = content(List.last(messages))

    <<b, _::binary>> =
      :crypto.hash(
        :sha256,
        system <> <<0>> <> user <> <<0>> <> Integer.to_string(length(messages))
      )

    b < 154
  end

  @doc "The task model (see the module doc). `opts`: `model:`."
  def task_lm(opts \\ []) do
    Scripted.new(&task_reply/3, model: Keyword.get(opts, :model, "scripted/task"))
  end

  @doc false
  def task_reply(messages, params, call) do
    n = max(1, Map.get(params, :n) || 1)
    reply = task_fields(messages, call.signature)
    List.duplicate(reply, n)
  end

  @doc "The task model's output fields for `messages` asked with `signature`."
  def task_fields(messages, signature) do
    gold =
      case Regex.run(~r/What is (\d+) plus (\d+)\?/, content(List.last(messages))) do
        [_, a, b] -> Integer.to_string(String.to_integer(a) + String.to_integer(b))
        _ -> "unknown"
      end

    answer = if task_correct?(messages), do: gold, else: "wrong"

    Map.new(signature.outputs, fn f ->
      {f.name, if(f.name == :answer, do: answer, else: "Let me think.")}
    end)
  end

  @doc "The prompt model (see the module doc); call counters live in `:counters`."
  def prompt_lm(opts \\ []) do
    counters = :counters.new(3, [])

    Scripted.new(fn _messages, params, call -> prompt_reply(counters, params, call) end,
      model: Keyword.get(opts, :model, "scripted/prompt")
    )
  end

  defp prompt_reply(counters, params, call) do
    n = max(1, Map.get(params, :n) || 1)
    fields = Enum.map(call.signature.outputs, & &1.name)
    for _ <- 1..n, do: prompt_fields(counters, fields)
  end

  defp count(counters, i) do
    :counters.add(counters, i, 1)
    :counters.get(counters, i)
  end

  defp prompt_fields(c, [:observations]) do
    k = count(c, 1)

    if k in [3, 5],
      do: %{observations: "COMPLETE - nothing to add."},
      else: %{observations: "Observation #{k}: the questions add two small numbers. "}
  end

  defp prompt_fields(_c, [:summary]),
    do: %{summary: "Summary: Questions that add two numbers; answers are their sums."}

  defp prompt_fields(_c, [:program_description]),
    do: %{program_description: "Program Description: it answers arithmetic questions."}

  defp prompt_fields(_c, [:module_description]),
    do: %{module_description: "This module produces the answer."}

  defp prompt_fields(c, [:proposed_instruction]) do
    k = count(c, 2)

    texts = [
      "Proposed Instruction: Add the two numbers and reply with the sum only (variant #{k}).",
      "\"Compute the sum carefully, variant #{k}.\"",
      "**Instruction:** Read the question, add, answer (variant #{k}).",
      "You are a careful calculator. Variant #{k}: give just the number."
    ]

    %{proposed_instruction: Enum.at(texts, rem(k, 4))}
  end

  defp prompt_fields(c, [:proposed_instruction, :proposed_prefix_for_output_field]) do
    k = count(c, 3)
    j = div(k + 1, 2)
    instruction = "Instruction #{j}: add the two numbers and give the sum."
    instruction = if rem(k, 3) == 0, do: "\"#{instruction}\"", else: instruction
    %{proposed_instruction: instruction, proposed_prefix_for_output_field: "Answer #{j}:"}
  end

  @doc """
  The same world over HTTP: an OpenAI-compatible chat-completions server on 127.0.0.1
  (a `DSPex.Test.LoopbackServer`) answering DSPy Chat-adapter prompts of any signature
  as `task_lm/1` (a signature with an `answer` output) and `prompt_lm/0` (every other)
  do. Used by the mix task test and by `bench/optimize.exs`, where DSPex and Python DSPy
  both call it. `delay_ms:` waits before each reply. Returns `{:ok, server}`; the LM is
  `DSPex.LM.new("openai/loopback", api_base: lm_server_base(server), cache: false)`.
  """
  def start_lm_server(opts \\ []) do
    delay = Keyword.get(opts, :delay_ms, 0)
    counters = :counters.new(3, [])

    route = fn req ->
      body = DSPex.JSON.decode!(req.body)
      messages = body["messages"]
      system = content(hd(messages))
      fields = output_fields(system)
      n = max(body["n"] || 1, 1)

      texts =
        for _ <- 1..n do
          values =
            if "answer" in fields,
              do: task_values(messages, fields),
              else: prompt_fields(counters, Enum.map(fields, &String.to_atom/1))

          Enum.map_join(fields, "", fn f ->
            "[[ ## #{f} ## ]]\n#{Map.fetch!(values, field_key(values, f))}\n\n"
          end) <>
            "[[ ## completed ## ]]"
        end

      prompt_bytes = Enum.reduce(messages, 0, &(byte_size(content(&1)) + &2))

      reply = %{
        id: "chatcmpl-loopback",
        object: "chat.completion",
        created: 0,
        model: body["model"] || "loopback",
        choices:
          Enum.map(Enum.with_index(texts), fn {t, i} ->
            %{index: i, message: %{role: "assistant", content: t}, finish_reason: "stop"}
          end),
        usage: %{
          prompt_tokens: max(1, div(prompt_bytes, 4)),
          completion_tokens: Enum.sum(Enum.map(texts, &max(1, div(byte_size(&1), 4)))),
          total_tokens: 0
        }
      }

      %{
        status: 200,
        delay_ms: if(delay > 0, do: delay),
        headers: [{"content-type", "application/json"}],
        body: DSPex.JSON.encode!(reply)
      }
    end

    DSPex.Test.LoopbackServer.start_link(
      routes: %{"/v1/chat/completions" => route},
      record: false
    )
  end

  @doc "The `api_base` of `start_lm_server/1`'s server."
  def lm_server_base(srv), do: DSPex.Test.LoopbackServer.url(srv, "/v1")

  @doc "Chat completions the server answered."
  def lm_server_count(srv), do: DSPex.Test.LoopbackServer.count(srv, "/v1/chat/completions")

  defp field_key(values, f), do: if(Map.has_key?(values, f), do: f, else: String.to_atom(f))

  # The output field names the Chat adapter lists in the system message.
  defp output_fields(system) do
    case String.split(system, "Your output fields are:\n", parts: 2) do
      [_, rest] ->
        block = rest |> String.split("\n\n", parts: 2) |> hd()
        for [_, name] <- Regex.scan(~r/^\d+\. `([A-Za-z_][A-Za-z0-9_]*)`/m, block), do: name

      _ ->
        []
    end
  end

  defp task_values(messages, fields) do
    gold =
      case Regex.run(~r/What is (\d+) plus (\d+)\?/, content(List.last(messages))) do
        [_, a, b] -> Integer.to_string(String.to_integer(a) + String.to_integer(b))
        _ -> "unknown"
      end

    answer = if task_correct?(messages), do: gold, else: "wrong"
    Map.new(fields, fn f -> {f, if(f == "answer", do: answer, else: "Let me think.")} end)
  end

  defp content(%{content: c}) when is_binary(c), do: c
  defp content(%{"content" => c}) when is_binary(c), do: c
  defp content(_), do: ""

  @doc "A run of test/fixtures/mipro/traces.json by name."
  def mipro_run(name) do
    %{"runs" => runs} = "test/fixtures/mipro/traces.json" |> File.read!() |> DSPex.JSON.decode!()
    Enum.find(runs, &(&1["name"] == name)) || raise "no run #{name}"
  end

  @doc "A fixture run's trainset."
  def trainset(run), do: for(e <- run["trainset"], do: example(e["question"], e["answer"]))

  @doc "The options of a fixture run (fresh scripted LMs) plus `extra`."
  def mipro_opts(run, extra) do
    kw =
      for {k, v} <- Map.merge(run["init"], run["compile"]),
          k != "seed" or run["compile"]["seed"] != nil do
        key = String.to_atom(k)
        {key, if(key == :auto and v != nil, do: String.to_atom(v), else: v)}
      end

    Keyword.merge(
      [
        metric: &__MODULE__.metric/2,
        prompt_model: prompt_lm(),
        task_model: task_lm(),
        progress: false
      ] ++ kw,
      extra
    )
  end

  @doc """
  Starts a fixture run as a job (on whatever node this runs on): `{:ok, job}`. The
  scripted LMs are owned by a process that lives as long as the node (an `:erpc` call's
  process exits when the call returns, and would take linked LMs with it).
  """
  def start_mipro(name, extra) do
    parent = self()
    ref = make_ref()

    spawn(fn ->
      run = mipro_run(name)
      opts = mipro_opts(run, extra)

      send(
        parent,
        {ref,
         DSPex.Optimize.start(
           DSPex.Optimizers.MIPROv2,
           program(run["program"]),
           trainset(run),
           opts
         )}
      )

      Process.sleep(:infinity)
    end)

    receive do
      {^ref, result} -> result
    end
  end

  @doc "The program of a trace: `\"predict\"`, `\"cot\"`, `\"two\"`, `\"three\"`."
  def program("predict"), do: DSPex.Predict.new("question -> answer")
  def program("cot"), do: DSPex.ChainOfThought.new("question -> answer")
  def program("two"), do: __MODULE__.Two.new()
  def program("three"), do: __MODULE__.Three.new()

  defmodule Two do
    @moduledoc "Drafts, then answers (two predictors)."
    use DSPex.Module

    predictor :draft, "question -> draft"
    predictor :answer, "question, draft -> answer"

    @impl DSPex.Module
    def forward(p, %{question: q}) do
      with {:ok, d} <- DSPex.call(p.draft, question: q) do
        DSPex.call(p.answer, question: q, draft: d.draft)
      end
    end
  end

  defmodule Three do
    @moduledoc "Topic, draft, answer (three predictors)."
    use DSPex.Module

    predictor :topic, "question -> topic"
    predictor :draft, "question, topic -> draft"
    predictor :answer, "question, draft -> answer"

    @impl DSPex.Module
    def forward(p, %{question: q}) do
      with {:ok, t} <- DSPex.call(p.topic, question: q),
           {:ok, d} <- DSPex.call(p.draft, question: q, topic: t.topic) do
        DSPex.call(p.answer, question: q, draft: d.draft)
      end
    end
  end

  # ------------------------------------------------------------------ killing the engine

  @doc """
  Wraps a scripted LM's reply function: at its `at`-th call it sends
  `{:kill_port, self(), ref}` to `test` and waits for `{ref, :killed}`, so the kill
  lands in the middle of a trial's evaluation (see `kill_port_when_asked/1`).
  """
  def killing_reply(reply, at, test) do
    calls = :counters.new(1, [])

    fn messages, params, call ->
      :counters.add(calls, 1, 1)

      if :counters.get(calls, 1) == at do
        ref = make_ref()
        send(test, {:kill_port, self(), ref})
        receive do: ({^ref, :killed} -> :ok)
      end

      reply.(messages, params, call)
    end
  end

  @doc """
  In the test process: waits for a `killing_reply/3` request, `kill -9`s the job's
  engine port, waits until the OS process is gone, then lets the LM call go on.
  """
  def kill_port_when_asked(job) do
    receive do
      {:kill_port, from, ref} ->
        os_pid = DSPex.Optimize.status(job).engine_os_pid
        {_, 0} = System.cmd("kill", ["-9", Integer.to_string(os_pid)])
        wait_dead(os_pid)
        send(from, {ref, :killed})
    after
      60_000 -> ExUnit.Assertions.flunk("the task LM never reached the kill call")
    end
  end

  defp wait_dead(os_pid, tries \\ 200) do
    case System.cmd("kill", ["-0", Integer.to_string(os_pid)], stderr_to_stdout: true) do
      {_, 0} when tries > 0 ->
        Process.sleep(10)
        wait_dead(os_pid, tries - 1)

      _ ->
        :ok
    end
  end
end
