defmodule DSPex.EmbedderTest do
  use ExUnit.Case, async: false

  alias DSPex.Embedder
  alias DSPex.Test.LoopbackServer

  doctest DSPex.Embedder

  setup_all do
    dir =
      Path.join(System.tmp_dir!(), "dspex_embedder_test_#{System.unique_integer([:positive])}")

    old = DSPex.LM.Cache.config()
    DSPex.LM.Cache.configure(dir: dir)

    on_exit(fn ->
      DSPex.LM.Cache.configure(dir: old.dir)
      File.rm_rf(dir)
    end)

    :ok
  end

  # Embeds each text as [byte_size, index_in_batch], replying in reverse index order.
  defp server do
    {:ok, srv} =
      LoopbackServer.start_link(
        routes: %{
          "/v1/embeddings" => fn req ->
            body = DSPex.JSON.decode!(req.body)

            data =
              body["input"]
              |> Enum.with_index()
              |> Enum.map(fn {t, i} ->
                %{object: "embedding", index: i, embedding: [byte_size(t) * 1.0, i * 1.0]}
              end)
              |> Enum.reverse()

            n = length(body["input"])

            %{
              status: 200,
              body:
                DSPex.JSON.encode!(%{
                  object: "list",
                  data: data,
                  model: body["model"],
                  usage: %{prompt_tokens: n, total_tokens: n}
                })
            }
          end,
          "/bad/embeddings" => %{status: 401, body: ~s({"error":{"message":"invalid key"}})}
        }
      )

    srv
  end

  test "batches, keeps order, records usage, caches batches" do
    srv = server()

    emb =
      Embedder.new("openai/text-embedding-3-small",
        api_base: LoopbackServer.url(srv, "/v1"),
        api_key: "sk-e",
        batch_size: 2,
        dimensions: 2
      )

    texts = ["a", "bb", "ccc", "dddd", "eeeee #{System.unique_integer()}"]

    {{:ok, vecs}, usage} = DSPex.track_usage(fn -> Embedder.embed(emb, texts) end)
    assert Enum.map(vecs, &hd/1) == Enum.map(texts, &(byte_size(&1) * 1.0))
    assert Enum.map(vecs, &List.last/1) == [0.0, 1.0, 0.0, 1.0, 0.0]
    assert LoopbackServer.count(srv, "/v1/embeddings") == 3
    assert usage["openai/text-embedding-3-small"].prompt_tokens == 5

    [first | _] = LoopbackServer.requests(srv, "/v1/embeddings")

    assert %{"model" => "text-embedding-3-small", "input" => ["a", "bb"], "dimensions" => 2} =
             DSPex.JSON.decode!(first.body)

    assert {"authorization", "Bearer sk-e"} in first.headers

    assert {:ok, ^vecs} = Embedder.embed(emb, texts)
    assert LoopbackServer.count(srv, "/v1/embeddings") == 3

    assert {:ok, [1.0, +0.0]} = Embedder.embed(%{emb | caching: false}, "a")
  end

  test "HTTP errors are typed" do
    srv = server()

    emb =
      Embedder.new("openai/e",
        api_base: LoopbackServer.url(srv, "/bad"),
        api_key: "sk-e",
        caching: false
      )

    assert {:error, %DSPex.Error{type: :auth, message: msg}} = Embedder.embed(emb, ["x"])
    refute msg =~ "sk-e"
    assert_raise DSPex.Error, fn -> Embedder.embed!(emb, ["x"]) end
  end

  test "only OpenAI-compatible providers" do
    assert_raise ArgumentError, fn -> Embedder.new("anthropic/x") end
  end
end
