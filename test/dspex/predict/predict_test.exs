defmodule DSPex.PredictTest do
  use ExUnit.Case, async: false
  doctest DSPex.Predict

  import DSPex.ModulesTest.Support
  alias DSPex.{Error, LM.Scripted, Prediction, Predict}

  setup do
    keep_global_settings()
    DSPex.configure(adapter: adapter())
    :ok
  end

  defp reply(fields), do: adapter().format_assistant_message(sig("question -> answer"), fields)

  test "predict returns a prediction with dot and Access syntax" do
    lm = Scripted.new([%{answer: "Paris"}])
    qa = Predict.new(sig("question -> answer"), lm: lm)
    assert {:ok, %Prediction{} = pred} = DSPex.call(qa, question: "Capital of France?")
    assert pred.answer == "Paris"
    assert pred[:answer] == "Paris"
    assert Prediction.fields(pred) == %{answer: "Paris"}
    assert pred.completions == [%{answer: "Paris"}]

    [req] = Scripted.requests(lm)
    user = List.last(req.messages)
    assert user.role == "user"
    assert user.content =~ "Capital of France?"
  end

  test "global lm via configure and per-call lm override" do
    global = Scripted.new([%{answer: "global"}])
    local = Scripted.new([%{answer: "local"}])
    DSPex.configure(lm: global)
    qa = Predict.new(sig("question -> answer"))
    assert {:ok, %{answer: "local"}} = DSPex.call(qa, %{question: "q"}, lm: local)
    assert {:ok, %{answer: "global"}} = DSPex.call(qa, %{"question" => "q"})
  end

  test "with_settings overrides only the calling process" do
    a = Scripted.new([%{answer: "A"}], cycle: true)
    b = Scripted.new([%{answer: "B"}], cycle: true)
    DSPex.configure(lm: a)
    qa = Predict.new(sig("question -> answer"))

    DSPex.with_settings([lm: b], fn ->
      assert {:ok, %{answer: "B"}} = DSPex.call(qa, question: "q")
      # a plain process spawned by the user does not inherit
      assert {:ok, %{answer: "A"}} =
               Task.async(fn -> DSPex.call(qa, question: "q") end) |> Task.await()

      # DSPex.Settings.async does
      assert {:ok, %{answer: "B"}} =
               DSPex.Settings.async(fn -> DSPex.call(qa, question: "q") end) |> Task.await()
    end)

    assert {:ok, %{answer: "A"}} = DSPex.call(qa, question: "q")
  end

  test "missing inputs and missing lm are errors" do
    qa = Predict.new(sig("question, context -> answer"), lm: Scripted.new([]))
    assert {:error, %Error{type: :missing_inputs} = e} = DSPex.call(qa, question: "q")
    assert e.details.missing == [:context]
    assert e.message =~ "`context`"

    assert {:error, %Error{type: :no_lm}} =
             DSPex.call(Predict.new(sig("question -> answer")), question: "q")

    assert_raise Error, fn -> DSPex.call!(qa, question: "q") end
  end

  test "n > 1 parses every choice and forces temperature 0.7" do
    lm = Scripted.new([%{answer: "1"}, %{answer: "2"}, %{answer: "3"}])
    qa = Predict.new(sig("question -> answer"), lm: lm, n: 3)
    assert {:ok, pred} = DSPex.call(qa, question: "q")
    assert pred.answer == "1"
    assert Enum.map(pred.completions, & &1.answer) == ["1", "2", "3"]
    [req] = Scripted.requests(lm)
    assert req.params.temperature == 0.7
    assert req.params.n == 3

    out = DSPex.LM.History.format_entries(DSPex.LM.History.last(1), colors: true)
    assert out =~ "\e[31m \t (and 2 other completions)\e[0m\n"
    assert out =~ "\e[34m["

    lm2 = Scripted.new([%{answer: "x"}, %{answer: "y"}])
    qa2 = Predict.new(sig("question -> answer"), lm: lm2, config: %{n: 2, temperature: 0.9})
    assert {:ok, _} = DSPex.call(qa2, question: "q")
    assert hd(Scripted.requests(lm2)).params.temperature == 0.9
  end

  test "per-call config and demos" do
    lm = Scripted.new([%{answer: "ok"}])
    qa = Predict.new(sig("question -> answer"), lm: lm, temperature: 0.1)
    demo = DSPex.Example.new(question: "2+2?", answer: "4")

    assert {:ok, _} = DSPex.call(qa, [question: "q"], config: %{max_tokens: 5}, demos: [demo])
    [req] = Scripted.requests(lm)
    assert req.params == %{temperature: 0.1, max_tokens: 5}
    contents = Enum.map(req.messages, & &1.content)
    assert Enum.any?(contents, &(&1 =~ "2+2?"))
    assert Enum.any?(contents, &(&1 =~ "4"))
  end

  test "parse failure retries with the error and the format reminder, then succeeds" do
    lm = Scripted.new(["I think it is Paris.", reply(%{answer: "Paris"})])
    ref = DSPex.TelemetryTest.attach_event_handlers(self(), [[:dspex, :predict, :stop]])
    qa = Predict.new(sig("question -> answer"), lm: lm)

    assert {:ok, %{answer: "Paris"}} = DSPex.call(qa, question: "q")

    [first, second] = Scripted.requests(lm)
    assert length(second.messages) == length(first.messages) + 2
    [bad, followup] = Enum.take(second.messages, -2)
    assert bad == %{role: "assistant", content: "I think it is Paris."}
    assert followup.role == "user"
    assert followup.content =~ "could not be parsed"
    assert followup.content =~ "Respond with"

    assert_receive {[:dspex, :predict, :stop], ^ref, _, %{attempt: 1, parse_status: :error}}

    assert_receive {[:dspex, :predict, :stop], ^ref, %{duration: _},
                    %{attempt: 2, parse_status: :ok} = meta}

    assert meta.predictor == "self"
    assert meta.lm == "scripted"
    assert meta.usage.total_tokens > 0
    DSPex.TelemetryTest.detach(ref)

    [h1, h2] = DSPex.LM.History.last(2)
    assert {h1.attempt, h2.attempt} == {1, 2}
  end

  test "parse failure after retries is an :adapter_parse error" do
    lm = Scripted.new(["nope", "still nope"])
    qa = Predict.new(sig("question -> answer"), lm: lm)
    assert {:error, %Error{type: :adapter_parse} = e} = DSPex.call(qa, question: "q")
    assert e.details.attempts == 2
    assert e.details.completion == "still nope"

    lm0 = Scripted.new(["nope"])
    qa0 = Predict.new(sig("question -> answer"), lm: lm0, max_parse_retries: 0)
    assert {:error, %Error{type: :adapter_parse}} = DSPex.call(qa0, question: "q")
    assert length(Scripted.requests(lm0)) == 1
  end

  test "json_fallback: after the retries, one more attempt with the JSON adapter" do
    if real_chat?() do
      lm = Scripted.new(["nope", "still nope", ~s({"answer": "Paris"})])
      ref = DSPex.TelemetryTest.attach_event_handlers(self(), [[:dspex, :predict, :stop]])
      qa = Predict.new(sig("question -> answer"), lm: lm, json_fallback: true)
      assert {:ok, %{answer: "Paris"}} = DSPex.call(qa, question: "q")
      [_, _, third] = Scripted.requests(lm)
      assert hd(third.messages).content =~ "JSON"
      assert length(third.messages) == 2
      assert_receive {_, ^ref, _, %{attempt: 3, adapter: DSPex.Adapter.JSON, parse_status: :ok}}
      DSPex.TelemetryTest.detach(ref)
    end
  end

  test "LM errors are returned as is" do
    lm = Scripted.new(fn _, _ -> {:error, Error.new(:rate_limit, "slow down")} end)

    assert {:error, %Error{type: :rate_limit}} =
             DSPex.call(Predict.new(sig("question -> answer"), lm: lm), question: "q")
  end

  test "scripted function responses see messages and params" do
    lm =
      Scripted.new(fn messages, params ->
        %{answer: "#{length(messages)}/#{params[:temperature]}"}
      end)

    qa = Predict.new(sig("question -> answer"), lm: lm, temperature: 0.3)
    assert {:ok, pred} = DSPex.call(qa, question: "q")
    assert pred.answer =~ "/0.3"
  end

  test "traces record predictor name, inputs and outputs" do
    lm = Scripted.new([%{answer: "a1"}, %{answer: "a2"}])
    qa = Predict.new(sig("question -> answer"), lm: lm)

    {_, trace} =
      DSPex.Trace.with_trace(fn ->
        DSPex.call!(qa, question: "q1")
        DSPex.call!(qa, question: "q2")
      end)

    assert trace == [
             {"self", %{question: "q1"}, %{answer: "a1"}},
             {"self", %{question: "q2"}, %{answer: "a2"}}
           ]

    DSPex.with_settings([max_trace_size: 1], fn ->
      lm = Scripted.new([%{answer: "b"}], cycle: true)

      {_, trace} =
        DSPex.Trace.with_trace(fn ->
          for q <- ~w(x y z), do: DSPex.call!(qa, [question: q], lm: lm)
        end)

      assert [{"self", %{question: "z"}, _}] = trace
    end)
  end

  test "inspect_history prints the prompt and response like DSPy" do
    lm = Scripted.new([%{answer: "Paris"}])
    DSPex.call!(Predict.new(sig("question -> answer"), lm: lm), question: "Capital of France?")

    out = ExUnit.CaptureIO.capture_io(fn -> DSPex.inspect_history(1) end)
    assert out =~ ~r/\[\d{4}-\d\d-\d\dT[\d:.]+\]/
    assert out =~ "System message:"
    assert out =~ "User message:"
    assert out =~ "Capital of France?"
    assert out =~ "Response:"
    assert out =~ "Paris"
    refute out =~ "\e["
  end

  test "inspect_history output is byte-identical to DSPy's (no colours)" do
    if real_chat?() do
      # DummyLM's reply text for {answer: "Paris"}
      lm = Scripted.new(["[[ ## answer ## ]]\nParis"])
      {:ok, _} = DSPex.call(Predict.new(sig("question -> answer"), lm: lm), question: "Capital?")
      out = DSPex.LM.History.format_entries(DSPex.LM.History.last(1), colors: false)

      golden =
        File.read!(Path.expand("../../fixtures/dspy/modules_saved/inspect_history.txt", __DIR__))

      assert Regex.replace(~r/\[20[^\]]*\]/, out, "[TS]") == golden
    end
  end

  test "history is bounded by max_history_size" do
    lm = Scripted.new([%{answer: "x"}], cycle: true)
    qa = Predict.new(sig("question -> answer"), lm: lm)

    DSPex.with_settings([max_history_size: 3], fn ->
      for i <- 1..5, do: DSPex.call!(qa, question: "q#{i}")
      assert DSPex.LM.History.size() == 3
    end)

    assert [%{messages: msgs}] = DSPex.LM.History.last(1)
    assert List.last(msgs).content =~ "q5"
  end

  test "usage: predictions carry their usage; track_usage sums" do
    lm = Scripted.new([%{answer: "x"}], cycle: true, model: "m1")
    qa = Predict.new(sig("question -> answer"), lm: lm)
    {:ok, pred} = DSPex.call(qa, question: "q")
    assert %{"m1" => %{total_tokens: t}} = Prediction.usage(pred)
    assert t > 0

    {_, usage} =
      DSPex.track_usage(fn -> DSPex.call!(qa, question: "q") && DSPex.call!(qa, question: "q") end)

    assert usage["m1"].total_tokens == 2 * t
    assert DSPex.LM.History.usage_totals()["m1"].requests >= 3
  end

  test "streaming forwards deltas tagged with the predictor name" do
    lm = Scripted.new([%{answer: "Paris is the capital"}], chunk_size: 4)
    qa = Predict.new(sig("question -> answer"), lm: lm)
    ref = make_ref()

    {:ok, pred} =
      DSPex.with_settings([stream_to: self(), stream_ref: ref], fn ->
        DSPex.call(qa, question: "q")
      end)

    assert pred.answer == "Paris is the capital"

    chunks = collect(ref, [])
    assert IO.iodata_to_binary(chunks) =~ "Paris is the capital"
  end

  defp collect(ref, acc) do
    receive do
      {:dspex_stream, ^ref, "self", {:delta, t}} -> collect(ref, [acc, t])
      {:dspex_stream, ^ref, "self", :start} -> collect(ref, acc)
    after
      0 -> acc
    end
  end

  test "DSPex.stream yields field chunks and the final prediction, across a re-ask" do
    if Code.ensure_loaded?(DSPex.Streaming) and real_chat?() do
      lm = Scripted.new(["no markers here", %{answer: "Paris is the capital"}], chunk_size: 5)
      qa = Predict.new(sig("question -> answer"), lm: lm)
      items = DSPex.stream(qa, question: "q") |> Enum.to_list()
      assert %Prediction{} = last = List.last(items)
      assert %{answer: "Paris is the capital"} = last
      text = for %DSPex.StreamChunk{field: :answer, text: t} <- items, into: "", do: t
      assert text == "Paris is the capital"
    end
  end

  test "Predict.format renders without calling an LM" do
    {:ok, msgs} = Predict.format(Predict.new(sig("question -> answer")), question: "hi")
    assert List.last(msgs).content =~ "hi"
  end

  test "reserved output names are refused" do
    assert_raise ArgumentError, ~r/reserved/, fn ->
      Predict.new(sig("question -> completions"))
    end
  end

  test "scripted LM errors when exhausted and cycles when asked" do
    lm = Scripted.new(["a"])
    assert {:ok, _} = DSPex.LM.request(lm, [], %{})
    assert {:error, %Error{type: :scripted_exhausted}} = DSPex.LM.request(lm, [], %{})

    lm = Scripted.new(["a", "b"], cycle: true)
    texts = for _ <- 1..3, do: hd(elem(DSPex.LM.request(lm, [], %{}), 1).choices).text
    assert texts == ["a", "b", "a"]
  end
end

defmodule DSPex.PredictTest.ContractAdapter do
  @moduledoc false
  # The ChatAdapter, with parse errors shaped as the adapter contract promises
  # (docs/contracts.md): `details` carry `adapter`, `lm_response`, `missing`, `found`,
  # `signature`; the message is one Predict must not read.
  @behaviour DSPex.Adapter

  @impl true
  def format(sig, demos, inputs, opts), do: DSPex.Adapter.Chat.format(sig, demos, inputs, opts)

  @impl true
  def format_assistant_message(sig, outputs),
    do: DSPex.Adapter.Chat.format_assistant_message(sig, outputs)

  @impl true
  def parse(sig, text) do
    case DSPex.Adapter.Chat.parse(sig, text) do
      {:ok, _} = ok ->
        ok

      {:error, _} ->
        names = Enum.map(sig.outputs, & &1.name)
        found = Enum.filter(names, &String.contains?(text, "[[ ## #{&1} ## ]]"))

        {:error,
         DSPex.Error.new(:adapter_parse, "MESSAGE-PREDICT-MUST-NOT-READ " <> text, %{
           adapter: :chat,
           lm_response: text,
           missing: names -- found,
           found: found,
           signature: sig
         })}
    end
  end
end

defmodule DSPex.PredictDataTest do
  # Issue 7: data, not strings or hidden state; options are checked. Issue 8 #4: a key
  # given to a predictor is refused, never shown.
  use ExUnit.Case, async: false

  alias DSPex.{Error, LM.Scripted, Predict}
  alias DSPex.PredictTest.ContractAdapter

  test "the re-ask is built from the parse error's data, not from its message" do
    sig = DSPex.Signature.parse!("question -> reasoning, answer")

    lm =
      Scripted.new([
        "[[ ## reasoning ## ]]\nIt is the capital.",
        %{reasoning: "It is the capital.", answer: "Paris"}
      ])

    qa = Predict.new(sig, lm: lm, adapter: ContractAdapter)
    assert {:ok, %{answer: "Paris"}} = DSPex.call(qa, question: "Capital of France?")

    [_, second] = Scripted.requests(lm)
    [bad, followup] = Enum.take(second.messages, -2)
    assert bad.content == "[[ ## reasoning ## ]]\nIt is the capital."

    assert followup.content ==
             "Your previous response could not be parsed.\n" <>
               "Expected output fields: `reasoning`, `answer`.\n" <>
               "Parsed: `reasoning`.\n" <>
               "Missing or not parseable: `answer`.\n\n" <>
               "Respond with the corresponding output fields, starting with the field " <>
               "`[[ ## reasoning ## ]]`, then `[[ ## answer ## ]]`, and then ending with the " <>
               "marker for `[[ ## completed ## ]]`."

    refute followup.content =~ "MESSAGE-PREDICT-MUST-NOT-READ"
  end

  test "the final parse error keeps the adapter's data and adds the attempts" do
    qa =
      Predict.new("question -> answer",
        lm: Scripted.new(["nope", "still nope"]),
        adapter: ContractAdapter
      )

    assert {:error, %Error{type: :adapter_parse, details: d}} = DSPex.call(qa, question: "q")
    assert %{adapter: :chat, lm_response: "still nope", missing: [:answer], found: []} = d
    assert %{attempts: 2, completion: "still nope", predictor: "self"} = d
  end

  test "the LM learns who calls from the call context argument, from any process" do
    sig = DSPex.Signature.parse!("question -> answer")

    lm =
      Scripted.new(fn _msgs, _params, call -> %{answer: "#{call.predictor}/#{call.attempt}"} end)

    qa = Predict.new(sig, lm: lm, name: "qa", adapter: DSPex.Adapter.JSON)

    # the predictor's call runs in a task: nothing travels in a process dictionary
    assert {:ok, %{answer: "qa/1"}} =
             Task.async(fn -> DSPex.call(qa, question: "q") end) |> Task.await()

    assert [%{context: %{predictor: "qa", attempt: 1}}] = Scripted.requests(lm)

    # a field map is rendered for the caller's signature and adapter (JSON here) ...
    maps = Scripted.new([%{answer: "Paris"}, %{answer: "Lyon"}])
    call = %{signature: sig, adapter: DSPex.Adapter.JSON, predictor: "x", attempt: 1}
    {:ok, c} = DSPex.BaseLM.request(maps, [%{role: "user", content: "?"}], %{}, call: call)
    assert DSPex.JSON.decode!(hd(c.choices).text) == %{"answer" => "Paris"}
    # ... and in the ChatAdapter layout for a direct call
    {:ok, c} = DSPex.BaseLM.request(maps, [%{role: "user", content: "?"}])
    assert hd(c.choices).text == "[[ ## answer ## ]]\nLyon\n\n[[ ## completed ## ]]\n"
  end

  test "Refine's advice reaches the predictor as its hint field" do
    p = %{Predict.new("question -> answer") | hint: "Be brief."}
    {:ok, msgs} = Predict.format(p, question: "Q?")
    assert List.last(msgs).content =~ "[[ ## hint_ ## ]]\nBe brief."
    {:ok, msgs} = Predict.format(Predict.new("question -> answer"), question: "Q?")
    refute List.last(msgs).content =~ "hint_"
  end

  test "unknown options raise, naming the valid ones and the closest" do
    err =
      assert_raise ArgumentError, fn -> Predict.new("question -> answer", tempreature: 0.1) end

    assert err.message =~
             "unknown option :tempreature for DSPex.Predict.new/2 (did you mean :temperature?)"

    assert err.message =~ ":max_parse_retries"

    assert_raise ArgumentError,
                 ~r/:max_parse_retries of DSPex.Predict.new\/2: expected a non-negative integer/,
                 fn ->
                   Predict.new("question -> answer", max_parse_retries: -1)
                 end

    qa = Predict.new("question -> answer", lm: Scripted.new([]))

    assert_raise ArgumentError,
                 ~r/unknown option :confg for DSPex.Predict.call\/3 \(did you mean :config\?\)/,
                 fn ->
                   DSPex.call(qa, [question: "q"], confg: %{})
                 end

    for {ctor, ctx} <- [
          {&DSPex.ChainOfThought.new/2, "DSPex.ChainOfThought.new/2"},
          {&DSPex.MultiChainComparison.new/2, "DSPex.MultiChainComparison.new/2"}
        ] do
      assert_raise ArgumentError, ~r/unknown option :tmperature for #{Regex.escape(ctx)}/, fn ->
        ctor.("question -> answer", tmperature: 0.1)
      end
    end

    assert_raise ArgumentError,
                 ~r/missing required option :reward_fn for DSPex.BestOfN.new\/2/,
                 fn ->
                   DSPex.BestOfN.new(qa, n: 2)
                 end

    assert_raise ArgumentError,
                 ~r/unknown option :feedbak_lm for DSPex.Refine.new\/2 \(did you mean :feedback_lm\?\)/,
                 fn ->
                   DSPex.Refine.new(qa, n: 2, reward_fn: fn _, _ -> 1 end, feedbak_lm: nil)
                 end

    assert_raise ArgumentError, ~r/unknown option :num_thread for DSPex.Parallel.run\/2/, fn ->
      DSPex.Parallel.batch(qa, [], num_thread: 2)
    end

    assert_raise ArgumentError,
                 ~r/:on_error of DSPex.stream\/3: expected one of :raise, :yield/,
                 fn ->
                   DSPex.stream(qa, [question: "q"], on_error: :ignore)
                 end

    # the other options of a stream are the program's: checked when it runs
    assert_raise Error, ~r/unknown option :on_eror for DSPex.Predict.call\/3/, fn ->
      DSPex.stream(qa, [question: "q"], on_eror: :yield) |> Enum.to_list()
    end
  end

  test "a predictor refuses an API key and never shows one" do
    key = "sk-PREDICT-#{System.unique_integer([:positive])}"

    for opts <- [
          [api_key: key],
          [config: %{api_key: key}],
          [config: %{"api_key" => key}],
          [headers: [{"authorization", key}]]
        ] do
      err = assert_raise ArgumentError, fn -> Predict.new("question -> answer", opts) end
      assert err.message =~ "is an option of DSPex.LM.new/2"
      refute err.message =~ key
    end

    qa = Predict.new("question -> answer", lm: Scripted.new([%{answer: "x"}]))

    err =
      assert_raise ArgumentError, fn ->
        DSPex.call(qa, [question: "q"], config: [api_key: key])
      end

    refute err.message =~ key

    # the key belongs to the LM, which keeps it out of inspect and the history
    lm = DSPex.LM.new("openai/x", api_key: key)
    qa = Predict.new("question -> answer", lm: lm)
    refute inspect(qa, limit: :infinity, printable_limit: :infinity) =~ key
    refute inspect(DSPex.Module.named_predictors(qa), limit: :infinity) =~ key

    scripted = Scripted.new([%{answer: "x"}])
    DSPex.LM.History.clear()
    {:ok, _} = DSPex.BaseLM.request(scripted, [%{role: "user", content: "q"}], %{api_key: key})
    refute inspect(DSPex.LM.History.last(5), limit: :infinity, printable_limit: :infinity) =~ key
  end
end
