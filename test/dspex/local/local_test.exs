Code.require_file("gguf_writer.exs", __DIR__)

defmodule DSPex.LocalTest do
  use ExUnit.Case, async: true

  import Bitwise

  alias DSPex.Local
  alias DSPex.Local.Check
  alias DSPex.Local.Test.GGUFWriter, as: W

  doctest DSPex.Local
  doctest DSPex.Local.Model
  doctest DSPex.Local.Check

  @fixtures Path.expand("fixtures", __DIR__)
  @qwen Path.join(@fixtures, "qwen2-qwen2-q4_0-mha-tied.gguf")
  @llama Path.join(@fixtures, "llama-gpt2-q4_0-mha-untied.gguf")

  setup_all do
    {:ok, qwen: Local.load!(@qwen), llama: Local.load!(@llama)}
  end

  describe "against llama.cpp (committed fixtures)" do
    for {name, file, type} <- [
          {"qwen2 q4_0", "qwen2-qwen2-q4_0-mha-tied", "q4_0"},
          {"llama q4_0", "llama-gpt2-q4_0-mha-untied", "q4_0"},
          {"qwen2 q4_1", "qwen2-qwen2-q4_1-gqa-tied", "q4_1"}
        ] do
      test "#{name}: tokens, log-probs at every position, greedy continuation" do
        model = Local.load!(Path.join(@fixtures, unquote(file) <> ".gguf"))
        {:ok, ref} = Check.read_ref(Path.join(@fixtures, unquote(file) <> ".ref.json"))
        r = Check.compare(model, ref, unquote(type))
        assert r.tokenize_ok == r.tokenize_total and r.tokenize_total == 24
        assert r.pos0_delta <= 1.0e-4
        assert r.max_delta <= 0.5
        assert r.argmax_ok == r.argmax_n
        assert r.greedy_same and r.greedy_steps > 0
        assert r.pass
      end
    end

    test "scalar kernels agree with the reference too" do
      model = Local.load!(@qwen, simd: false, threads: 1)
      {:ok, ref} = Check.read_ref(Path.join(@fixtures, "qwen2-qwen2-q4_0-mha-tied.ref.json"))
      assert Local.info(model).kernels == "scalar"
      assert Check.compare(model, ref, "q4_0").pass
    end
  end

  describe "models are shared resources" do
    test "a model loaded in one process works in others after the loader exits", %{qwen: _} do
      parent = self()

      spawn(fn ->
        send(parent, {:model, Local.load!(@qwen, threads: 1)})
      end)

      model = receive(do: ({:model, m} -> m))

      tasks =
        for _ <- 1..4,
            do:
              Task.async(fn ->
                Local.generate!(model, [785, 922], max_tokens: 6, temperature: 0).tokens
              end)

      [first | rest] = Task.await_many(tasks, 30_000)
      assert Enum.all?(rest, &(&1 == first))
      assert first == Local.generate!(model, [785, 922], max_tokens: 6, temperature: 0).tokens
    end

    test "the file is unmapped when the last reference is collected" do
      path =
        Path.join(System.tmp_dir!(), "dspex-unmap-#{System.unique_integer([:positive])}.gguf")

      File.cp!(@qwen, path)
      on_exit(fn -> File.rm(path) end)

      task =
        Task.async(fn ->
          m = Local.load!(path, threads: 1)
          mapped? = File.read!("/proc/self/maps") =~ path
          _ = Local.tokenize(m, "hi")
          mapped?
        end)

      assert Task.await(task)
      # the task's heap is gone; collect everywhere so the resource destructor runs
      for pid <- Process.list(), do: :erlang.garbage_collect(pid)
      Process.sleep(50)
      refute File.read!("/proc/self/maps") =~ path
    end
  end

  describe "tokenize / detokenize" do
    test "special tokens, add_special, round trips", %{qwen: m} do
      assert Local.tokenize(m, "<|endoftext|>") != [2048]
      assert Local.tokenize(m, "<|endoftext|>", parse_special: true) == [2048]
      text = "héllo wörld – naïve café 你好 🦙"
      assert Local.detokenize(m, Local.tokenize(m, text)) == text
      assert Local.tokenize(m, "") == []

      assert_raise ArgumentError, ~r/outside the vocabulary/, fn ->
        Local.detokenize(m, [999_999])
      end

      assert_raise ArgumentError, fn -> Local.detokenize(m, [:a]) end
    end

    test "long texts go to a dirty scheduler and still tokenize exactly", %{llama: m} do
      text = String.duplicate("The quick brown fox jumps over the lazy dog. ", 2_000)
      ids = Local.tokenize(m, text)
      assert length(ids) > 10_000
      assert Local.detokenize(m, ids) == text
    end
  end

  describe "eval_logprobs" do
    test "matches one-token-at-a-time generation and rejects a too-long input", %{qwen: m} do
      ids = Local.tokenize(m, "The quick brown fox jumps")
      {:ok, rows} = Local.eval_logprobs(m, ids, top: 1)
      greedy = Enum.map(rows, fn %{top: [{id, _}]} -> id end)
      # the argmax after the full prompt is the first greedy token
      assert hd(Local.generate!(m, ids, max_tokens: 1, temperature: 0).tokens) ==
               List.last(greedy)

      assert Enum.all?(rows, fn %{top: [{_, lp}]} -> lp <= 0 end)
      assert {:error, %DSPex.Error{type: :context_window}} = Local.eval_logprobs(m, ids, n_ctx: 2)
      assert {:ok, []} = Local.eval_logprobs(m, [])
      assert_raise ArgumentError, fn -> Local.eval_logprobs(m, ids, top: 0) end
    end
  end

  describe "generate" do
    test "seeded sampling is reproducible; different seeds differ", %{qwen: m} do
      opts = [max_tokens: 24, temperature: 1.2, top_k: 0, top_p: 1.0, min_p: 0.0]
      a = Local.generate!(m, "Hello", [seed: 1] ++ opts)
      assert a == Local.generate!(m, "Hello", [seed: 1] ++ opts)
      refute a.tokens == Local.generate!(m, "Hello", [seed: 2] ++ opts).tokens
      assert is_integer(Local.generate!(m, "Hello", max_tokens: 1).seed)
    end

    test "stop strings cut the text; usage counts real tokens", %{qwen: m} do
      base = Local.generate!(m, "Hello world", max_tokens: 30, temperature: 0, ignore_eos: true)
      assert byte_size(base.text) > 6
      stop = binary_part(base.text, 3, 2)
      [before | _] = String.split(base.text, stop, parts: 2)

      r =
        Local.generate!(m, "Hello world",
          max_tokens: 30,
          temperature: 0,
          ignore_eos: true,
          stop: [stop]
        )

      assert r.text == before
      assert r.finish_reason == :stop

      assert r.usage.prompt_tokens ==
               length(Local.tokenize(m, "Hello world", add_special: true, parse_special: true))

      assert r.usage.completion_tokens == length(r.tokens)
    end

    test "the context window: prompt too long is an error, generation stops at n_ctx", %{qwen: m} do
      ids = Local.tokenize(m, "one two three four five six")

      assert {:error, %DSPex.Error{type: :context_window, message: msg}} =
               Local.generate(m, ids, n_ctx: length(ids))

      assert msg =~ "n_ctx"

      r =
        Local.generate!(m, ids,
          n_ctx: length(ids) + 3,
          max_tokens: 50,
          temperature: 0,
          ignore_eos: true
        )

      assert r.finish_reason == :context_full
      assert length(r.tokens) == 4
    end

    test "bad options raise ArgumentError naming the option", %{qwen: m} do
      assert_raise ArgumentError, ~r/max_tokens/, fn -> Local.generate(m, "x", max_tokens: 0) end
      assert_raise ArgumentError, ~r/top_p/, fn -> Local.generate(m, "x", top_p: 2) end

      assert_raise ArgumentError, ~r/stop/, fn ->
        Local.generate(m, "x", stop: List.duplicate("a", 17))
      end

      assert_raise ArgumentError, ~r/unknown keys/, fn -> Local.generate(m, "x", bogus: 1) end
      assert_raise ArgumentError, fn -> Local.generate(m, [-1], max_tokens: 1) end
    end
  end

  describe "telemetry" do
    test "generate, stream, tokenize and load emit :telemetry-shaped spans", %{qwen: m} do
      parent = self()
      id = "local-telemetry-#{System.unique_integer([:positive])}"

      events =
        for op <- [:generate, :stream, :tokenize, :load],
            kind <- [:start, :stop],
            do: [:dspex, :local, op, kind]

      :ok =
        DSPex.Telemetry.attach_many(
          id,
          events,
          fn e, meas, meta, _ -> send(parent, {:tel, e, meas, meta}) end,
          nil
        )

      on_exit(fn -> DSPex.Telemetry.detach(id) end)

      {:ok, r} = Local.generate(m, [785, 922], max_tokens: 2, temperature: 0)

      assert_receive {:tel, [:dspex, :local, :generate, :start], %{system_time: _},
                      %{prompt_tokens: 2}}

      assert_receive {:tel, [:dspex, :local, :generate, :stop], %{duration: _}, %{usage: usage}}
      assert usage == r.usage

      {:ok, ref} = Local.generate_stream(m, [785, 922], max_tokens: 2, temperature: 0)
      assert_receive {^ref, {:done, _}}, 10_000

      assert_receive {:tel, [:dspex, :local, :stream, :stop], %{duration: _},
                      %{finish_reason: :length}}

      Local.tokenize(m, "hi")
      assert_receive {:tel, [:dspex, :local, :tokenize, :stop], _, %{tokens: _}}
      Local.load!(@qwen, threads: 1)
      assert_receive {:tel, [:dspex, :local, :load, :stop], _, %{ok: true}}
    end
  end

  describe "streaming" do
    test "deltas add up to the final text", %{qwen: m} do
      {:ok, ref} =
        Local.generate_stream(m, "Hello", max_tokens: 20, temperature: 0, ignore_eos: true)

      {deltas, ids, result} = collect(ref, [], [])
      assert IO.iodata_to_binary(deltas) == result.text
      assert ids == result.tokens

      assert result ==
               Local.generate!(m, "Hello", max_tokens: 20, temperature: 0, ignore_eos: true)
               |> Map.put(:seed, result.seed)
    end

    test "cancel stops a long generation", %{qwen: m} do
      {:ok, ref} =
        Local.generate_stream(m, "Hello",
          max_tokens: 100_000,
          n_ctx: 2048,
          temperature: 0,
          ignore_eos: true,
          slice_ms: 5
        )

      assert_receive {^ref, {:delta, _, _}}, 10_000
      :ok = Local.cancel(ref)
      result = wait_done(ref)
      assert result.finish_reason == :cancelled
      assert length(result.tokens) < 2000
    end

    test "the worker stops when its caller dies", %{qwen: m} do
      parent = self()

      caller =
        spawn(fn ->
          {:ok, _ref, pid} =
            DSPex.Local.Generation.start(
              m,
              [785, 922],
              gen_params(max_tokens: 100_000, n_ctx: 4096),
              self()
            )

          send(parent, {:worker, pid})
          Process.sleep(:infinity)
        end)

      worker = receive(do: ({:worker, pid} -> pid))
      mref = Process.monitor(worker)
      Process.exit(caller, :kill)
      assert_receive {:DOWN, ^mref, :process, ^worker, _}, 10_000
    end

    test "stream_text is lazy and cancels when halted early", %{qwen: m} do
      first =
        Local.stream_text(m, "Hello", max_tokens: 1000, temperature: 0, ignore_eos: true)
        |> Enum.take(2)

      assert length(first) == 2
      refute_received {_, {:delta, _, _}}
    end
  end

  describe "chat templates" do
    test "detected from the file, chosen explicitly, or a clear error", %{qwen: q, llama: l} do
      msgs = [%{role: "system", content: "Be brief."}, %{"role" => "user", "content" => "Hi"}]

      assert {:ok,
              "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"} =
               Local.apply_chat_template(q, msgs)

      assert {:ok, "<start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\n"} =
               Local.apply_chat_template(l, msgs, chat_template: "gemma")

      assert {:error, %DSPex.Error{type: :chat_template, message: m1}} =
               Local.apply_chat_template(l, msgs)

      assert m1 =~ "no tokenizer.chat_template" and m1 =~ "chatml"

      assert {:error, %DSPex.Error{type: :chat_template, message: m2}} =
               Local.apply_chat_template(q, msgs, chat_template: "jinja")

      assert m2 =~ "valid names"
      assert_raise ArgumentError, fn -> Local.apply_chat_template(q, [%{content: "x"}]) end
      # parts content (OpenAI multimodal shape) contributes its text parts
      assert {:ok, text} =
               Local.apply_chat_template(q, [
                 %{role: "user", content: [%{type: "text", text: "Hi"}]}
               ])

      assert text =~ "Hi<|im_end|>"
    end

    test "chat/3 renders and generates", %{qwen: q} do
      {:ok, r} = Local.chat(q, [%{role: "user", content: "Hi"}], max_tokens: 2, temperature: 0)
      {:ok, prompt} = Local.apply_chat_template(q, [%{role: "user", content: "Hi"}])

      assert r.usage.prompt_tokens ==
               length(Local.tokenize(q, prompt, add_special: true, parse_special: true))
    end
  end

  describe "hostile files give {:error, %DSPex.Error{type: :model_load}} naming the problem" do
    setup do
      dir = Path.join(System.tmp_dir!(), "dspex-hostile-#{System.unique_integer([:positive])}")
      File.mkdir_p!(dir)
      on_exit(fn -> File.rm_rf(dir) end)
      {:ok, dir: dir}
    end

    defp load_bytes(dir, bytes) do
      path = Path.join(dir, "m#{System.unique_integer([:positive])}.gguf")
      File.write!(path, bytes)
      Local.load(path, threads: 1)
    end

    test "the valid tiny model loads and runs", %{dir: dir} do
      assert {:ok, m} = load_bytes(dir, W.tiny_llama())

      assert Local.generate!(m, "hello", max_tokens: 3, temperature: 0).usage.completion_tokens in 0..3
    end

    test "truncated at many points", %{dir: dir} do
      bytes = W.tiny_llama()

      for cut <- [0, 3, 10, 23, 24, 100, 1000, div(byte_size(bytes), 2), byte_size(bytes) - 100] do
        assert {:error, %DSPex.Error{type: :model_load, message: msg}} =
                 load_bytes(dir, binary_part(bytes, 0, cut))

        assert is_binary(msg) and msg != ""
      end
    end

    test "header and metadata attacks", %{dir: dir} do
      cases = [
        {"XXXX" <> binary_part(W.header(0, 0), 4, 20), "bad magic"},
        {W.header(0, W.u64_max()), "key count"},
        {W.header(1 <<< 60, 0), "tensor count"},
        {W.header(0, 2) <> W.kv("k", :u32, 1) <> W.kv("k", :u32, 2),
         "duplicate metadata key 'k'"},
        {W.header(0, 1) <> W.str("nest") <> <<9::little-32, 9::little-32, 1::little-64>>,
         "nested array"},
        {W.header(0, 1) <> W.str("big") <> <<9::little-32, 4::little-32, 1 <<< 62::little-64>>,
         "'big'"},
        {W.header(0, 1) <> W.str("str") <> <<8::little-32, 1 <<< 62::little-64>>, "'str'"},
        {W.header(0, 1) <> W.str("t") <> <<99::little-32>>, "unknown value type 99"},
        {W.header(0, 1) <> W.kv("general.alignment", :u32, 3), "power of two"}
      ]

      for {bytes, needle} <- cases do
        assert {:error, %DSPex.Error{type: :model_load, message: msg}} = load_bytes(dir, bytes)
        assert msg =~ needle, "expected #{inspect(needle)} in #{inspect(msg)}"
      end
    end

    test "tensor attacks: bad offsets, overflowing shapes, unknown types", %{dir: dir} do
      one = fn name, dims, type, off, data ->
        W.pad(W.header(1, 0) <> W.tensor_info(name, dims, type, off)) <> data
      end

      cases = [
        {one.("far", [8], 0, 1 <<< 40, <<0::256>>), "'far'"},
        {one.("wrap", [8], 0, W.u64_max() - 31, <<0::256>>), "'wrap'"},
        {one.("short", [64], 0, 0, <<0::256>>), "'short'"},
        {one.("odd", [8], 0, 8, <<0::512>>), "alignment"},
        {one.("ovf", [1 <<< 32, 1 <<< 32, 16], 0, 0, <<>>), "overflow"},
        {one.("zero", [8, 0], 0, 0, <<>>), "'zero'"},
        {one.("gone", [8], 4, 0, <<0::256>>), "unknown ggml type 4"},
        {one.("rows", [33], 8, 0, <<0::512>>), "block size"}
      ]

      for {bytes, needle} <- cases do
        assert {:error, %DSPex.Error{type: :model_load, message: msg}} = load_bytes(dir, bytes)
        assert msg =~ needle, "expected #{inspect(needle)} in #{inspect(msg)}"
      end
    end

    test "model-level problems name the key or tensor", %{dir: dir} do
      cases = [
        {W.tiny_llama(drop: ["llama.embedding_length"]), "llama.embedding_length"},
        {W.tiny_llama(drop: ["llama.feed_forward_length"]), "llama.feed_forward_length"},
        {W.tiny_llama(drop: ["blk.0.ffn_up.weight"]), "blk.0.ffn_up.weight"},
        {W.tiny_llama(
           drop: ["llama.block_count"],
           extra_kv: [W.kv("llama.block_count", :u64, 1)]
         ), "expected u32"},
        {W.tiny_llama(
           drop: ["llama.attention.head_count"],
           extra_kv: [W.kv("llama.attention.head_count", :u32, 3)]
         ), "wrong shape"},
        {W.tiny_llama(
           drop: ["llama.block_count"],
           extra_kv: [W.kv("llama.block_count", :u32, 100_000)]
         ), "out of range"},
        {W.tiny_llama(
           drop: ["general.architecture"],
           extra_kv: [W.kv("general.architecture", :string, "mamba")]
         ), "architecture 'mamba'"},
        {W.tiny_llama(
           drop: ["tokenizer.ggml.pre"],
           extra_kv: [W.kv("tokenizer.ggml.pre", :string, "klingon")]
         ), "unknown pre-tokenizer"},
        {W.tiny_llama(drop: ["tokenizer.ggml.merges"]), "tokenizer.ggml.merges"}
      ]

      for {bytes, needle} <- cases do
        assert {:error, %DSPex.Error{type: :model_load, message: msg}} = load_bytes(dir, bytes)
        assert msg =~ needle, "expected #{inspect(needle)} in #{inspect(msg)}"
      end
    end

    test "random byte flips never crash the VM", %{dir: dir} do
      bytes = W.tiny_llama()
      :rand.seed(:exsss, {7, 7, 7})

      for _ <- 1..60 do
        pos = :rand.uniform(min(byte_size(bytes), 4000)) - 1
        <<a::binary-size(pos), _, b::binary>> = bytes
        mutated = a <> <<:rand.uniform(256) - 1>> <> b

        case load_bytes(dir, mutated) do
          {:ok, m} -> Local.generate(m, [1, 2], max_tokens: 2, temperature: 0)
          {:error, %DSPex.Error{type: :model_load}} -> :ok
        end
      end
    end

    test "bad arguments raise ArgumentError", %{dir: _} do
      assert_raise ArgumentError, fn -> Local.load("a\0b") end
      assert_raise ArgumentError, ~r/threads/, fn -> Local.load(@qwen, threads: 0) end
      assert_raise ArgumentError, ~r/unknown keys/, fn -> Local.load(@qwen, nope: 1) end
    end
  end

  describe "inspect_file/1" do
    test "reports unsupported files and why", %{} do
      dir = System.tmp_dir!()
      path = Path.join(dir, "dspex-unsupported-#{System.unique_integer([:positive])}.gguf")

      File.write!(
        path,
        W.tiny_llama(
          drop: ["general.architecture"],
          extra_kv: [W.kv("general.architecture", :string, "rwkv6")]
        )
      )

      on_exit(fn -> File.rm(path) end)

      assert {:ok, %{supported: false, reason: reason, tensors: tensors}} =
               Local.inspect_file(path)

      assert reason =~ "rwkv6"
      assert length(tensors) == 11
    end
  end

  defp gen_params(overrides) do
    Map.merge(
      %{
        temperature: 0.0,
        top_k: 40,
        top_p: 0.95,
        min_p: 0.05,
        repeat_penalty: 1.0,
        repeat_last_n: 64,
        frequency_penalty: 0.0,
        presence_penalty: 0.0,
        seed: 0,
        max_tokens: 16,
        n_ctx: 512,
        stop: [],
        ignore_eos: true,
        slice_ms: 5
      },
      Map.new(overrides)
    )
  end

  defp collect(ref, deltas, ids) do
    receive do
      {^ref, {:delta, text, new_ids}} -> collect(ref, [deltas, text], ids ++ new_ids)
      {^ref, {:done, r}} -> {deltas, ids, r}
    after
      30_000 -> flunk("no stream end")
    end
  end

  defp wait_done(ref) do
    receive do
      {^ref, {:delta, _, _}} -> wait_done(ref)
      {^ref, {:done, r}} -> r
    after
      30_000 -> flunk("no stream end")
    end
  end
end
