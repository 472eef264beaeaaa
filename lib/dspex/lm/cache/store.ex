defmodule DSPex.LM.Cache.Store do
  @moduledoc false
  # Owns the cache's ETS tables (memory tier + LRU index + disk byte counter) and
  # serializes disk eviction. Started on first use (or under the application).
  use GenServer

  @mem :dspex_lm_cache_mem
  @lru :dspex_lm_cache_lru
  @meta :dspex_lm_cache_meta
  @config_key {DSPex.LM.Cache, :config}
  @tag :dspex_cache_v1

  # Entries are read back with `binary_to_term(bin, [:safe])`, which refuses to create
  # atoms. Naming the completion's atoms here makes them exist as soon as this module is
  # loaded, so a fresh VM can read entries written by another one.
  @known_atoms [
    :dspex_cache_v1,
    :choices,
    :usage,
    :model,
    :response_model,
    :cache_hit,
    :text,
    :finish_reason,
    :tool_calls,
    :logprobs,
    :reasoning_content,
    :id,
    :type,
    :function,
    :name,
    :arguments,
    :prompt_tokens,
    :completion_tokens,
    :total_tokens,
    :cached_tokens,
    :reasoning_tokens,
    :cache_creation_tokens,
    :vectors
  ]

  @doc false
  def known_atoms, do: @known_atoms

  def start_link(_opts \\ []), do: GenServer.start_link(__MODULE__, :ok, name: __MODULE__)

  def ensure_started do
    if :ets.whereis(@mem) == :undefined do
      DSPex.TableOwner.start_once(__MODULE__, :ok, __MODULE__)
    end

    :ok
  end

  @impl true
  def init(:ok) do
    DSPex.TableOwner.create_tables(
      for {name, type} <- [{@mem, :set}, {@lru, :ordered_set}, {@meta, :set}] do
        {name, [type, read_concurrency: true, write_concurrency: true]}
      end
    )

    {:ok, nil}
  end

  @impl true
  def handle_cast({:evict_disk, dir, limit}, state) do
    evict_disk(dir, limit)
    {:noreply, state}
  end

  @impl true
  def handle_call(:sync, _from, state), do: {:reply, :ok, state}

  # --- configuration ----------------------------------------------------------------

  def config do
    case :persistent_term.get(@config_key, nil) do
      nil ->
        cfg = build_config(Application.get_env(:dspex, :cache, []))
        :persistent_term.put(@config_key, cfg)
        cfg

      cfg ->
        cfg
    end
  end

  defp build_config(opts) do
    base = %{
      enable_memory: true,
      enable_disk: true,
      dir:
        System.get_env("DSPEX_CACHE_DIR") ||
          Path.join([System.user_home() || System.tmp_dir!(), ".cache", "dspex"]),
      memory_max_entries: 1_000_000,
      disk_size_limit_bytes: env_int("DSPEX_CACHE_LIMIT", 30_000_000_000)
    }

    Map.merge(base, Map.new(opts))
  end

  defp env_int(name, default) do
    case Integer.parse(System.get_env(name) || "") do
      {n, ""} when n > 0 -> n
      _ -> default
    end
  end

  @options DSPex.Options.schema!(
             enable_memory: [type: :boolean, doc: "Use the memory tier (default `true`)."],
             enable_disk: [type: :boolean, doc: "Use the disk tier (default `true`)."],
             dir: [
               type: :string,
               doc: "Disk tier directory (default `$DSPEX_CACHE_DIR` or `~/.cache/dspex`)."
             ],
             memory_max_entries: [
               type: :non_neg_integer,
               doc: "Memory tier bound, in entries (default 1 000 000)."
             ],
             disk_size_limit_bytes: [
               type: :non_neg_integer,
               doc: "Disk tier bound, in bytes (default `$DSPEX_CACHE_LIMIT` or 30 GB)."
             ]
           )

  def options_schema, do: @options

  def configure(opts) do
    opts = DSPex.Options.validate!(opts, @options, "DSPex.LM.Cache.configure/1")

    :persistent_term.put(@config_key, Map.merge(config(), Map.new(opts)))
    ensure_started()
    # Memory beyond a lowered bound is trimmed at once.
    trim_memory(config().memory_max_entries)
    :ok
  end

  # --- lookups ----------------------------------------------------------------------

  def get(key) do
    ensure_started()
    cfg = config()

    case cfg.enable_memory && :ets.lookup(@mem, key) do
      [{^key, value, tick}] ->
        touch_lru(key, tick)
        {:ok, value}

      _ ->
        if cfg.enable_disk, do: disk_get(cfg, key), else: :miss
    end
  end

  def put(key, value) do
    ensure_started()
    cfg = config()
    if cfg.enable_memory, do: mem_put(cfg, key, value)
    if cfg.enable_disk, do: disk_put(cfg, key, value)
    :ok
  end

  defp mem_put(cfg, key, value) do
    tick = :erlang.unique_integer([:monotonic, :positive])

    case :ets.lookup(@mem, key) do
      [{^key, _, old}] -> :ets.delete(@lru, old)
      [] -> :ok
    end

    :ets.insert(@mem, {key, value, tick})
    :ets.insert(@lru, {tick, key})
    trim_memory(cfg.memory_max_entries)
  end

  defp touch_lru(key, old_tick) do
    tick = :erlang.unique_integer([:monotonic, :positive])
    :ets.delete(@lru, old_tick)
    :ets.insert(@lru, {tick, key})
    :ets.update_element(@mem, key, {3, tick})
  end

  defp trim_memory(max) do
    if :ets.whereis(@mem) != :undefined and :ets.info(@mem, :size) > max do
      case :ets.first(@lru) do
        :"$end_of_table" ->
          :ok

        tick ->
          case :ets.take(@lru, tick) do
            [{^tick, key}] -> :ets.match_delete(@mem, {key, :_, tick})
            _ -> :ok
          end

          trim_memory(max)
      end
    end

    :ok
  end

  # --- disk tier --------------------------------------------------------------------

  defp path(dir, key), do: Path.join([dir, binary_part(key, 0, 2), key <> ".bin"])

  defp disk_get(cfg, key) do
    file = path(cfg.dir, key)

    case File.read(file) do
      {:ok, bin} ->
        case safe_decode(bin) do
          {@tag, ^key, value} when is_map(value) ->
            _ = File.touch(file)
            if cfg.enable_memory, do: mem_put(cfg, key, value)
            {:ok, value}

          _ ->
            _ = File.rm(file)
            :miss
        end

      {:error, _} ->
        :miss
    end
  end

  defp safe_decode(bin) do
    :erlang.binary_to_term(bin, [:safe])
  rescue
    _ -> :corrupt
  end

  defp disk_put(cfg, key, value) do
    file = path(cfg.dir, key)

    if not File.exists?(file) do
      bin = :erlang.term_to_binary({@tag, key, value})
      tmp = file <> ".tmp-#{System.unique_integer([:positive])}"

      with :ok <- File.mkdir_p(Path.dirname(file)),
           :ok <- File.write(tmp, bin),
           :ok <- File.rename(tmp, file) do
        bytes = add_bytes(cfg.dir, byte_size(bin))

        if bytes > cfg.disk_size_limit_bytes do
          GenServer.cast(__MODULE__, {:evict_disk, cfg.dir, cfg.disk_size_limit_bytes})
        end
      else
        _ -> _ = File.rm(tmp)
      end
    end

    :ok
  end

  defp add_bytes(dir, n) do
    case :ets.lookup(@meta, {:bytes, dir}) do
      [] -> :ets.insert_new(@meta, {{:bytes, dir}, scan_bytes(dir) - n})
      _ -> :ok
    end

    :ets.update_counter(@meta, {:bytes, dir}, n)
  end

  defp files(dir) do
    Path.wildcard(Path.join([dir, "??", "*.bin"]))
  end

  defp scan_bytes(dir), do: dir |> files() |> total_size()

  # Bytes in `files` (a file that vanished meanwhile counts 0).
  defp total_size(files) do
    Enum.reduce(files, 0, fn f, acc ->
      case File.stat(f) do
        {:ok, %{size: s}} -> acc + s
        _ -> acc
      end
    end)
  end

  defp evict_disk(dir, limit) do
    entries =
      for f <- files(dir), {:ok, st} <- [File.stat(f, time: :posix)] do
        {st.mtime, st.size, f}
      end

    total = Enum.reduce(entries, 0, fn {_, s, _}, acc -> acc + s end)
    target = div(limit * 9, 10)

    {kept, _} =
      entries
      |> Enum.sort()
      |> Enum.reduce({total, :go}, fn
        {_, size, f}, {t, :go} when t > target ->
          _ = File.rm(f)
          {t - size, :go}

        _, {t, _} ->
          {t, :stop}
      end)

    :ets.insert(@meta, {{:bytes, dir}, kept})
  end

  # --- maintenance ------------------------------------------------------------------

  def clear_memory do
    ensure_started()
    :ets.delete_all_objects(@mem)
    :ets.delete_all_objects(@lru)
    :ok
  end

  def clear do
    clear_memory()
    dir = config().dir
    Enum.each(files(dir) ++ Path.wildcard(Path.join([dir, "??", "*.tmp-*"])), &File.rm/1)
    :ets.delete(@meta, {:bytes, dir})
    :ok
  end

  def save_memory(path) do
    ensure_started()
    entries = :ets.select(@mem, [{{:"$1", :"$2", :_}, [], [{{:"$1", :"$2"}}]}])
    bin = :erlang.term_to_binary({:dspex_memory_cache_v1, entries})
    tmp = "#{path}.tmp-#{System.unique_integer([:positive])}"

    with :ok <- File.mkdir_p(Path.dirname(path)),
         :ok <- File.write(tmp, bin),
         :ok <- File.rename(tmp, path) do
      {:ok, length(entries)}
    else
      {:error, reason} ->
        _ = File.rm(tmp)

        {:error,
         DSPex.Error.new(:io, "cannot write #{path}: #{:file.format_error(reason)}", %{path: path})}
    end
  end

  def load_memory(path) do
    ensure_started()
    cfg = config()

    with {:ok, bin} <- File.read(path),
         {:dspex_memory_cache_v1, entries} when is_list(entries) <- safe_decode(bin) do
      loaded = for {k, v} when is_binary(k) and is_map(v) <- entries, do: mem_put(cfg, k, v)
      {:ok, length(loaded)}
    else
      {:error, reason} ->
        {:error,
         DSPex.Error.new(:io, "cannot read #{path}: #{:file.format_error(reason)}", %{path: path})}

      _ ->
        {:error, DSPex.Error.new(:io, "#{path} is not a DSPex memory-cache file", %{path: path})}
    end
  end

  def stats do
    ensure_started()
    dir = config().dir
    fs = files(dir)

    %{
      memory_entries: :ets.info(@mem, :size),
      disk_files: length(fs),
      disk_bytes: total_size(fs)
    }
  end

  @doc false
  # Waits until queued evictions ran (tests).
  def sync do
    ensure_started()
    GenServer.call(__MODULE__, :sync)
  end
end
