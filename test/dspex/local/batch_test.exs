defmodule DSPex.Local.BatchTest do
  # Shared-prefix KV reuse and continuous batching through the product path (real NIF,
  # real driver process): batched and one-at-a-time generations give the same tokens;
  # an Evaluate whose prompts share a long system prompt prefills it once; callers that
  # die or cancel leave the batch.
  use ExUnit.Case, async: false

  alias DSPex.Local

  @q41 Path.expand("fixtures/qwen2-qwen2-q4_1-gqa-tied.gguf", __DIR__)

  setup_all do
    dir =
      Path.join(System.tmp_dir!(), "dspex_local_batch_test_#{System.unique_integer([:positive])}")

    old = DSPex.LM.Cache.config()
    DSPex.LM.Cache.configure(dir: dir)

    on_exit(fn ->
      DSPex.LM.Cache.configure(dir: old.dir)
      File.rm_rf(dir)
    end)

    :ok
  end

  # varied requests: greedy and seeded sampling, stop strings, a grammar, several lengths
  defp requests(m) do
    colors =
      {:json_schema, %{"type" => "array", "items" => %{"enum" => ["red", "green", "blue"]}}}

    for i <- 0..9 do
      prompt = Enum.map(0..(20 + rem(i, 4) * 15), &rem(&1 * 37 + i * 101 + 7, 2000))

      opts =
        [max_tokens: 6 + 3 * i, seed: 1000 + i, temperature: if(rem(i, 2) == 0, do: 0, else: 0.9)] ++
          if(i == 3, do: [stop: ["e"]], else: []) ++
          if(i == 5, do: [grammar: colors], else: [])

      {m, prompt, opts}
    end
  end

  defp gen({m, prompt, opts}) do
    {:ok, r} = Local.generate(m, prompt, opts)
    Map.take(r, [:tokens, :text, :finish_reason, :usage])
  end

  test "concurrent generations decoded in one batch equal each run alone" do
    alone = Local.load!(@q41, batching: false, prefix_cache: 0)
    batched = Local.load!(@q41, max_seqs: 3, batch_tokens: 16)
    want = alone |> requests() |> Enum.map(&gen/1)

    got =
      batched
      |> requests()
      |> Task.async_stream(&gen/1, max_concurrency: 10, ordered: true, timeout: :infinity)
      |> Enum.map(fn {:ok, r} -> r end)

    assert got == want
    s = Local.stats(batched)
    assert s.batch_max_active in 2..3
    # every sampled token is one decode row, but a generation's last one may not be evaluated
    n_tokens = Enum.sum(Enum.map(got, &length(&1.tokens)))
    assert s.batch_decode_rows in (n_tokens - length(got))..n_tokens
    assert s.batch_active == 0 and s.max_seqs == 3 and s.batch_tokens == 16
    # streaming through the batch gives the same text, in deltas
    {m, prompt, opts} = Enum.at(requests(batched), 4)
    assert Enum.join(Local.stream_text(m, prompt, opts)) == Enum.at(want, 4).text
  end

  test "a caller that exits or cancels leaves the batch" do
    m = Local.load!(@q41, n_ctx: 2048)
    parent = self()

    pid =
      spawn(fn ->
        {:ok, ref} = Local.generate_stream(m, [1, 2, 3], max_tokens: 2000, ignore_eos: true)
        receive do: ({^ref, {:delta, _, _}} -> send(parent, :started))
        exit(:gone)
      end)

    mon = Process.monitor(pid)
    assert_receive :started, 30_000
    assert_receive {:DOWN, ^mon, :process, _, :gone}
    assert eventually(fn -> Local.stats(m).batch_active == 0 end)
    assert Local.stats(m).batch_decode_rows < 1999

    {:ok, ref} = Local.generate_stream(m, [1, 2, 3], max_tokens: 2000, ignore_eos: true)
    assert_receive {^ref, {:delta, _, _}}, 30_000
    :ok = Local.cancel(ref)
    assert_receive {^ref, {:done, %{finish_reason: :cancelled, tokens: toks}}}, 30_000
    assert length(toks) < 2000
    # errors still come back from the batched path
    assert {:error, %DSPex.Error{type: :context_window}} =
             Local.generate(m, Enum.to_list(1..2048), max_tokens: 2)
  end

  defp eventually(f, n \\ 500) do
    cond do
      f.() -> true
      n == 0 -> false
      true -> Process.sleep(10) && eventually(f, n - 1)
    end
  end

  test "an Evaluate over 100 examples with a ~1500-token system prompt prefills it once" do
    instructions =
      String.duplicate(
        "Answer the question with one short word, exactly as the examples show. ",
        60
      )

    devset =
      for i <- 1..100 do
        DSPex.Example.new(question: "What is item number #{i}?", answer: "x")
        |> DSPex.Example.with_inputs([:question])
      end

    run = fn lm_opts, devset ->
      lm = DSPex.LM.Local.new(@q41, [max_tokens: 48, cache: false] ++ lm_opts)
      sig = DSPex.Predict.new("question -> answer").signature
      qa = DSPex.Predict.new(DSPex.Signature.with_instructions(sig, instructions), lm: lm)
      metric = fn _ex, pred -> is_binary(pred.answer) end
      {:ok, res} = DSPex.Evaluate.run(qa, devset, metric: metric, max_concurrency: 4)
      {Enum.map(res.results, fn {_, pred, _} -> pred.answer end), Local.stats(lm.local)}
    end

    {answers, s} = run.([], devset)
    # the shared part (the system prompt, >= 1500 tokens) was computed once: every other
    # prompt copied it and computed only its own ~70-token question
    assert s.prefix_lookups == 100 and s.prefix_hits == 99
    assert s.reused_tokens >= 99 * 1500
    assert s.prefilled_tokens < 1600 + 100 * 100
    assert s.cache_bytes <= s.cache_capacity and s.cache_bytes > 0
    # the same greedy answers without reuse, where every prompt is computed in full
    {answers_off, off} = run.([prefix_cache: 0], Enum.take(devset, 20))
    assert answers_off == Enum.take(answers, 20)
    assert off.prefix_hits == 0 and off.reused_tokens == 0 and off.prefilled_tokens > 20 * 1500
  end
end
