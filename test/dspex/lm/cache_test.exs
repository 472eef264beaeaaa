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
    b = LM.new("openai/m", api_key: "k2", api_base: "http://b/v1", timeout: 9, num_retries: 7)
    key = fn lm, params, rid -> LM.cache_key(lm, msgs, params, rid) end
    assert key.(a, %{"temperature" => 0.0}, nil) == key.(b, %{"temperature" => 0.0}, nil)
    refute key.(a, %{"temperature" => 0.0}, nil) == key.(a, %{"temperature" => 0.5}, nil)
    refute key.(a, %{}, nil) == key.(a, %{}, 1)
    refute key.(a, %{}, nil) == key.(LM.new("openai/m2"), %{}, nil)
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
