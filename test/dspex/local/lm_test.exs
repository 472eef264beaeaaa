defmodule DSPex.LM.LocalTest do
  use ExUnit.Case, async: false

  doctest DSPex.LM.Local
  doctest DSPex.Local.Models

  @qwen Path.expand("fixtures/qwen2-qwen2-q4_0-mha-tied.gguf", __DIR__)
  @msgs [%{role: "system", content: "Be brief."}, %{role: "user", content: "Hello"}]

  # a private cache directory, so earlier runs' entries do not answer these requests
  setup_all do
    dir =
      Path.join(System.tmp_dir!(), "dspex_local_lm_test_#{System.unique_integer([:positive])}")

    old = DSPex.LM.Cache.config()
    DSPex.LM.Cache.configure(dir: dir)

    on_exit(fn ->
      DSPex.LM.Cache.configure(dir: old.dir)
      File.rm_rf(dir)
    end)

    :ok
  end

  setup do
    DSPex.LM.Cache.clear_memory()
    :ok
  end

  test "DSPex.LM.new(\"local/...\") builds the local LM" do
    lm = DSPex.LM.new("local/" <> @qwen, max_tokens: 5, threads: 1)
    assert %DSPex.LM.Local{model: "local/" <> _} = lm

    assert {:ok, %{choices: [%{text: t, finish_reason: "length"}], usage: u}} =
             DSPex.LM.request(lm, @msgs, %{})

    assert is_binary(t) and u.completion_tokens == 5 and u.total_tokens == u.prompt_tokens + 5
  end

  test "the cache returns the same completion with zero usage; cache: false bypasses it" do
    lm = DSPex.LM.Local.new(@qwen, max_tokens: 6)
    {:ok, a} = DSPex.LM.request(lm, @msgs, %{})
    {:ok, b} = DSPex.LM.request(lm, @msgs, %{})
    assert b.cache_hit and b.choices == a.choices and b.usage.total_tokens == 0
    {:ok, c} = DSPex.LM.request(lm, @msgs, %{cache: false})
    refute Map.get(c, :cache_hit)
    assert c.choices == a.choices
    {:ok, d} = DSPex.LM.request(lm, @msgs, %{max_tokens: 3})
    assert d.usage.completion_tokens == 3
  end

  test "usage is recorded in DSPex.Usage scopes, telemetry spans the request" do
    lm = DSPex.LM.Local.new(@qwen, max_tokens: 4, cache: false)
    parent = self()

    :ok =
      DSPex.Telemetry.attach(
        "local-lm-test",
        [:dspex, :lm, :request, :stop],
        fn _, m, meta, _ ->
          send(parent, {:span, m, meta})
        end,
        nil
      )

    on_exit(fn -> DSPex.Telemetry.detach("local-lm-test") end)
    {{:ok, c}, usage} = DSPex.Usage.track(fn -> DSPex.LM.request(lm, @msgs, %{}) end)
    assert usage == %{lm.model => c.usage}
    cu = c.usage
    assert_receive {:span, %{duration: _}, %{provider: "local", cache_hit: false, usage: ^cu}}
  end

  test "streaming sends deltas that add up to the text; n > 1 gives several choices" do
    lm = DSPex.LM.Local.new(@qwen, max_tokens: 12, cache: false, ignore_eos: true)
    parent = self()
    {:ok, c} = DSPex.LM.stream(lm, @msgs, %{}, &send(parent, &1))
    deltas = collect([])
    assert IO.iodata_to_binary(deltas) == hd(c.choices).text
    {:ok, many} = DSPex.LM.request(lm, @msgs, %{n: 3, temperature: 1.0, seed: 5})
    assert length(many.choices) == 3
    assert many.usage.completion_tokens == 36
  end

  test "errors are DSPex.Error structs" do
    lm = DSPex.LM.Local.new(@qwen, max_tokens: 4, cache: false, n_ctx: 8)
    long = [%{role: "user", content: String.duplicate("word ", 50)}]
    assert {:error, %DSPex.Error{type: :context_window}} = DSPex.LM.request(lm, long, %{})

    assert {:error, %DSPex.Error{type: :bad_request}} =
             DSPex.LM.request(lm, @msgs, %{max_tokens: 0})

    assert_raise DSPex.Error, ~r/no model file/, fn ->
      DSPex.LM.Local.new("no-such-model.gguf")
    end
  end

  defp collect(acc) do
    receive do
      {:delta, t} -> collect([acc, t])
    after
      0 -> acc
    end
  end
end
