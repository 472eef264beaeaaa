defmodule DSPex.CacheTest do
  # The cache configuration is global: not async.
  use ExUnit.Case, async: false

  alias DSPex.LM
  alias DSPex.LM.Cache

  doctest DSPex.LM.Cache

  setup do
    dir = Path.join(System.tmp_dir!(), "dspex_cache_test_#{System.unique_integer([:positive])}")
    old = Cache.config()

    Cache.configure(
      dir: dir,
      memory_max_entries: 1_000_000,
      disk_size_limit_bytes: 30_000_000_000,
      enable_disk: true,
      enable_memory: true
    )

    Cache.clear()

    on_exit(fn ->
      Cache.configure(
        dir: old.dir,
        memory_max_entries: old.memory_max_entries,
        disk_size_limit_bytes: old.disk_size_limit_bytes,
        enable_disk: old.enable_disk,
        enable_memory: old.enable_memory
      )

      File.rm_rf(dir)
    end)

    {:ok, dir: dir}
  end

  defp completion(text),
    do: %{
      choices: [%{text: text, finish_reason: "stop"}],
      usage: %{total_tokens: 3},
      model: "openai/m"
    }

  test "key: canonical JSON, order-independent, equals SHA-256 of sorted-key JSON" do
    req = %{
      "model" => "openai/m",
      "messages" => [%{"role" => "user", "content" => "hi"}],
      "temperature" => 0.0
    }

    key = Cache.key(req)
    assert key == Cache.key(req |> Enum.reverse() |> Map.new())
    json = DSPex.JSON.encode!(req, sort_keys: true)
    assert key == :crypto.hash(:sha256, json) |> Base.encode16(case: :lower)
    assert Cache.key(%{"f" => {:not, :json}}) == nil
  end

  test "LM cache key ignores secrets and transport settings, includes params and rollout_id" do
    msgs = [%{role: "user", content: "q"}]
    a = LM.new("openai/m", api_key: "k1", api_base: "http://a/v1", timeout: 5, num_retries: 1)
    b = LM.new("openai/m", api_key: "k2", api_base: "http://a/v1/", timeout: 9, num_retries: 7)
    key = fn lm, params, rid -> DSPex.LM.Pipeline.cache_key(lm, msgs, params, rid) end
    assert key.(a, %{"temperature" => 0.0}, nil) == key.(b, %{"temperature" => 0.0}, nil)
    refute key.(a, %{"temperature" => 0.0}, nil) == key.(a, %{"temperature" => 0.5}, nil)
    refute key.(a, %{}, nil) == key.(a, %{}, 1)
    refute key.(a, %{}, nil) == key.(LM.new("openai/m2"), %{}, nil)
  end

  # Issue 8 #11: an answer cached from one server must not be served for another.
  test "the endpoint joins the key for a custom api_base; default-endpoint keys are unchanged" do
    msgs = [%{role: "user", content: "hi"}]
    key = fn lm, params, rid -> DSPex.LM.Pipeline.cache_key(lm, msgs, params, rid) end

    # Written by DSPex before the endpoint was part of the key (commit e9e9773): these
    # LMs talk to their provider's default server, so their disk entries stay valid.
    assert key.(LM.new("openai/gpt-4o-mini"), %{"temperature" => 0.0}, nil) ==
             "c0649ce75292bf549aa7095f1d92a14dec9afd0b4576406afaf2e29efe9bafee"

    assert key.(LM.new("ollama/llama3"), %{}, nil) ==
             "6302ebe0835c965c12d209950dfd92484e9fb3e6cd7a9e6b91c04fafd5391e7f"

    assert key.(LM.new("anthropic/claude-x"), %{"max_tokens" => 10}, 2) ==
             "30335c33b2c0ff086fc4a2b86845842f272ec9f19b97761207a3468fd0f1360e"

    # Naming the default server explicitly is still the default server.
    assert key.(
             LM.new("openai/gpt-4o-mini", api_base: "https://api.openai.com/v1/"),
             %{"temperature" => 0.0},
             nil
           ) ==
             "c0649ce75292bf549aa7095f1d92a14dec9afd0b4576406afaf2e29efe9bafee"

    # Two servers, two keys (it was "ffa89a5f..." for both before the fix) ...
    one = LM.new("openai/x", api_base: "http://127.0.0.1:9/v1")
    two = LM.new("openai/x", api_base: "http://127.0.0.2:9/v1")

    refute key.(one, %{}, nil) ==
             "ffa89a5fd2b0a7d24abd8cb5216bada07571c1f6f26ac5af2ab1d0e6a67f00c8"

    refute key.(one, %{}, nil) == key.(two, %{}, nil)

    # ... while credentials in the URL and the key never enter it.
    with_creds =
      LM.new("openai/x",
        api_base: "http://user:sk-in-url@127.0.0.1:9/v1?key=sk-q",
        api_key: "sk-k"
      )

    assert key.(with_creds, %{}, nil) == key.(one, %{}, nil)

    # Embeddings follow the same rule.
    emb = DSPex.Embedder.new("openai/text-embedding-3-small", dimensions: 8)
    body = %{"model" => "text-embedding-3-small", "input" => ["a", "b"], "dimensions" => 8}

    assert DSPex.Embedder.cache_key(emb, body) ==
             "296cb308f1f7bc276c7148afa4145007e4085638127ac3dab226040d32631eef"

    local =
      DSPex.Embedder.new("openai/text-embedding-3-small",
        dimensions: 8,
        api_base: "http://127.0.0.1:9/v1"
      )

    refute DSPex.Embedder.cache_key(local, body) == DSPex.Embedder.cache_key(emb, body)
  end

  test "two servers behind one LM config get separate cached answers" do
    {:ok, a} =
      DSPex.Test.LoopbackServer.start_link(routes: %{"/v1/chat/completions" => reply("from A")})

    {:ok, b} =
      DSPex.Test.LoopbackServer.start_link(routes: %{"/v1/chat/completions" => reply("from B")})

    msgs = [%{role: "user", content: "same question #{System.unique_integer()}"}]

    for {srv, text} <- [{a, "from A"}, {b, "from B"}, {a, "from A"}] do
      lm = LM.new("openai/m", api_base: DSPex.Test.LoopbackServer.url(srv, "/v1"), num_retries: 0)
      assert {:ok, %{choices: [%{text: ^text}]}} = LM.request(lm, msgs)
    end

    # the third call was a cache hit: server A was asked once
    assert DSPex.Test.LoopbackServer.count(a, "/v1/chat/completions") == 1
  end

  defp reply(text) do
    %{
      status: 200,
      headers: [{"content-type", "application/json"}],
      body:
        DSPex.JSON.encode!(%{
          choices: [
            %{index: 0, message: %{role: "assistant", content: text}, finish_reason: "stop"}
          ],
          usage: %{prompt_tokens: 1, completion_tokens: 1, total_tokens: 2}
        })
    }
  end

  test "memory then disk; a disk hit survives clearing memory and is promoted", %{dir: dir} do
    key = Cache.key(%{"model" => "m", "n" => 1})
    assert Cache.get(key) == :miss
    :ok = Cache.put(key, completion("a"))
    assert {:ok, %{choices: [%{text: "a"}]}} = Cache.get(key)

    file = Path.join([dir, binary_part(key, 0, 2), key <> ".bin"])
    assert File.regular?(file)
    assert Path.wildcard(Path.join([dir, "**", "*.tmp-*"])) == []

    Cache.clear_memory()
    assert Cache.stats().memory_entries == 0
    assert {:ok, %{choices: [%{text: "a"}]}} = Cache.get(key)
    assert Cache.stats().memory_entries == 1
  end

  test "a fresh VM (:peer node) reads what this one wrote", %{dir: dir} do
    key = Cache.key(%{"model" => "m", "peer" => true})
    :ok = Cache.put(key, completion("from the first VM"))

    paths = Enum.flat_map(:code.get_path(), fn p -> [~c"-pa", p] end)
    {:ok, peer, _node} = :peer.start_link(%{connection: :standard_io, args: paths})

    try do
      :ok = :peer.call(peer, DSPex.LM.Cache, :configure, [[dir: dir]])

      assert {:ok, %{choices: [%{text: "from the first VM"}]}} =
               :peer.call(peer, DSPex.LM.Cache, :get, [key])

      assert :miss =
               :peer.call(peer, DSPex.LM.Cache, :get, [Cache.key(%{"model" => "m", "other" => 1})])
    after
      :peer.stop(peer)
    end
  end

  test "memory tier is a bounded LRU" do
    Cache.configure(memory_max_entries: 3, enable_disk: false)
    keys = for i <- 1..4, do: Cache.key(%{"i" => i})
    [k1, k2, k3, k4] = keys
    Enum.each([k1, k2, k3], &Cache.put(&1, completion(&1)))
    # touch k1 so k2 becomes the least recently used
    assert {:ok, _} = Cache.get(k1)
    Cache.put(k4, completion(k4))
    assert Cache.stats().memory_entries == 3
    assert Cache.get(k2) == :miss
    for k <- [k1, k3, k4], do: assert({:ok, _} = Cache.get(k))
  end

  test "disk tier evicts the oldest files beyond its size limit", %{dir: dir} do
    big = String.duplicate("x", 1000)
    Cache.configure(disk_size_limit_bytes: 10_000, enable_memory: false)

    for i <- 1..30 do
      Cache.put(Cache.key(%{"i" => i}), completion(big <> "#{i}"))
    end

    DSPex.LM.Cache.Store.sync()
    stats = Cache.stats()
    assert stats.disk_bytes <= 10_000
    assert stats.disk_files > 0
    assert length(Path.wildcard(Path.join([dir, "??", "*.bin"]))) == stats.disk_files
  end

  test "a corrupt file is a miss and is removed", %{dir: dir} do
    key = Cache.key(%{"corrupt" => 1})
    file = Path.join([dir, binary_part(key, 0, 2), key <> ".bin"])
    File.mkdir_p!(Path.dirname(file))
    File.write!(file, "not a term")
    assert Cache.get(key) == :miss
    refute File.exists?(file)
  end

  test "save_memory / load_memory round trip", %{dir: dir} do
    Cache.configure(enable_disk: false)
    key = Cache.key(%{"saved" => 1})
    Cache.put(key, completion("kept"))
    path = Path.join(dir, "mem.bin")
    assert {:ok, 1} = Cache.save_memory(path)
    Cache.clear_memory()
    assert Cache.get(key) == :miss
    assert {:ok, 1} = Cache.load_memory(path)
    assert {:ok, %{choices: [%{text: "kept"}]}} = Cache.get(key)
    File.write!(path, "garbage")
    assert {:error, %DSPex.Error{type: :io}} = Cache.load_memory(path)
    assert {:error, %DSPex.Error{type: :io}} = Cache.load_memory(Path.join(dir, "missing"))
  end

  test "disabled tiers" do
    Cache.configure(enable_memory: false, enable_disk: false)
    key = Cache.key(%{"off" => 1})
    Cache.put(key, completion("x"))
    assert Cache.get(key) == :miss
  end
end
