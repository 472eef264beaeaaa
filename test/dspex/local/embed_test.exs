defmodule DSPex.Local.EmbedTest do
  # Embeddings of local models: DSPex.Local.embed/3 and the "local/..." DSPex.Embedder.
  use ExUnit.Case, async: false

  @qwen Path.expand("fixtures/qwen2-qwen2-q4_0-mha-tied.gguf", __DIR__)

  defp dot(a, b), do: Enum.zip_with(a, b, &(&1 * &2)) |> Enum.sum()

  test "vectors: n_embd floats, unit length, deterministic, pooling changes them" do
    m = DSPex.Local.load!(@qwen, threads: 1)
    {:ok, [a, b, a2]} = DSPex.Local.embed(m, ["the cat sat", "a dog ran far away", "the cat sat"])
    assert length(a) == m.info.n_embd
    assert_in_delta dot(a, a), 1.0, 1.0e-5
    assert a == a2 and a != b
    {:ok, last} = DSPex.Local.embed(m, "the cat sat", pooling: :last)
    assert last != a
    {:ok, raw} = DSPex.Local.embed(m, "the cat sat", normalize: false)
    refute_in_delta dot(raw, raw), 1.0, 1.0e-3
    assert_raise ArgumentError, ~r/pooling/, fn -> DSPex.Local.embed(m, "x", pooling: :cls) end
    assert {:error, %DSPex.Error{type: :inference}} = DSPex.Local.embed(m, "", add_special: false)
  end

  test "DSPex.Embedder over a local model: batches, usage, option checks" do
    emb = DSPex.Embedder.new("local/" <> @qwen, batch_size: 2, threads: 1)
    texts = ["one", "two words", "three little words"]
    {{:ok, vecs}, usage} = DSPex.Usage.track(fn -> DSPex.Embedder.embed(emb, texts) end)
    assert length(vecs) == 3 and Enum.all?(vecs, &(length(&1) == 96))
    assert %{prompt_tokens: n} = usage["local/" <> @qwen]
    assert n >= 6
    assert {:ok, v} = DSPex.Embedder.embed(emb, "one")
    assert v == hd(vecs)

    assert_raise ArgumentError, ~r/unknown option :api_key/, fn ->
      DSPex.Embedder.new("local/" <> @qwen, api_key: "x")
    end
  end
end
