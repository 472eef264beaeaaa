defmodule DSPex.LM.Cache do
  @moduledoc """
  The LM response cache: an in-memory LRU (ETS, bounded by entry count) in front of an
  on-disk store (one file per entry, sharded by hash prefix, bounded by total bytes), like
  DSPy's `dspy.cache`.

  * **Key**: lowercase hex SHA-256 (`DSPex.Hash`, `:crypto`) of the canonical JSON
    (`DSPex.JSON.encode(request, sort_keys: true)`) of the request: model, messages, and
    every request parameter that reaches the provider, plus `rollout_id`, plus the
    endpoint when the LM talks to a server other than its provider's default; minus
    secrets and transport settings (`api_key`, headers, timeouts, retries). See
    `DSPex.LM.Pipeline.cache_key/4`.
  * **Lookup**: memory, then disk (a disk hit is promoted to memory).
  * **Writes**: memory at once; disk through a temporary file and `rename/2`, so readers
    never see half a file and concurrent writers of one key are harmless.
  * **Disk layout**: `<dir>/<first two hex chars>/<key>.bin`, each file
    `:erlang.term_to_binary({:dspex_cache_v1, key, completion})`, read back with
    `binary_to_term(bin, [:safe])`; unreadable files are treated as misses and removed.
  * **Eviction**: the memory tier drops its least recently used entries beyond
    `:memory_max_entries`; the disk tier, when it grows beyond `:disk_size_limit_bytes`,
    removes the oldest files (by modification time; hits touch their file) down to 90 %.

  Configure with `configure/1` (or `config :dspex, :cache, ...`, read at first use).

  Disable caching per LM (`DSPex.LM.new(..., cache: false)`) or per call
  (`%{cache: false}` in params).

  ## Examples

      iex> key = DSPex.LM.Cache.key(%{"model" => "openai/x", "messages" => []})
      iex> byte_size(key)
      64
      iex> key == DSPex.LM.Cache.key(%{"messages" => [], "model" => "openai/x"})
      true
  """

  alias DSPex.LM.Cache.Store

  @doc """
  The cache key of a request map (any JSON-encodable map; key order does not matter).
  Returns `nil` when the request is not JSON-encodable (such a request is not cached).
  """
  @spec key(map) :: binary | nil
  def key(request) when is_map(request) do
    case DSPex.JSON.encode(request, sort_keys: true) do
      {:ok, json} -> sha256_hex(json)
      _ -> nil
    end
  end

  defp sha256_hex(data), do: DSPex.Hash.sha256_hex(data)

  @doc """
  Looks `key` up: memory first, then disk. Returns `{:ok, completion}` or `:miss`.

  ## Examples

      iex> DSPex.LM.Cache.get(nil)
      :miss
  """
  @spec get(binary | nil) :: {:ok, map} | :miss
  def get(nil), do: :miss
  def get(key) when is_binary(key), do: Store.get(key)

  @doc """
  Stores `completion` under `key` in both tiers. Returns `:ok`.

  ## Examples

      iex> DSPex.LM.Cache.put(nil, %{choices: []})
      :ok
  """
  @spec put(binary | nil, map) :: :ok
  def put(nil, _), do: :ok

  def put(key, completion) when is_binary(key) and is_map(completion),
    do: Store.put(key, completion)

  @doc """
  Changes the cache configuration. Returns `:ok`; unknown options raise
  `ArgumentError`.

  ## Options

  #{DSPex.Options.docs(Store.options_schema())}

  ## Examples

      iex> DSPex.LM.Cache.configure(memory_max_entries: 1_000_000)
      :ok
  """
  @spec configure(keyword) :: :ok
  def configure(opts) when is_list(opts), do: Store.configure(opts)

  @doc """
  The current configuration.

  ## Examples

      iex> Map.keys(DSPex.LM.Cache.config()) |> Enum.sort()
      [:dir, :disk_size_limit_bytes, :enable_disk, :enable_memory, :memory_max_entries]
  """
  @spec config() :: map
  def config, do: Store.config()

  @doc "Empties the memory tier (the disk tier is kept). Returns `:ok`."
  @spec clear_memory() :: :ok
  def clear_memory, do: Store.clear_memory()

  @doc "Empties both tiers (removes the cache files). Returns `:ok`."
  @spec clear() :: :ok
  def clear, do: Store.clear()

  @doc """
  Writes the memory tier to `path` (like DSPy's `save_memory_cache`). Returns
  `{:ok, entry_count}` or `{:error, %DSPex.Error{type: :io}}`.

  ## Examples

      iex> path = Path.join(System.tmp_dir!(), "dspex_doc_mem_#{System.unique_integer([:positive])}")
      iex> {:ok, n} = DSPex.LM.Cache.save_memory(path)
      iex> {:ok, ^n} = DSPex.LM.Cache.load_memory(path)
      iex> File.rm(path)
      :ok
  """
  @spec save_memory(Path.t()) :: {:ok, non_neg_integer} | {:error, DSPex.Error.t()}
  def save_memory(path), do: Store.save_memory(path)

  @doc """
  Loads entries written by `save_memory/1` into the memory tier (read with
  `binary_to_term(bin, [:safe])`). Returns `{:ok, entry_count}` or `{:error, %DSPex.Error{}}`.
  """
  @spec load_memory(Path.t()) :: {:ok, non_neg_integer} | {:error, DSPex.Error.t()}
  def load_memory(path), do: Store.load_memory(path)

  @doc """
  Entry count of the memory tier and bytes/files of the disk tier.

  ## Examples

      iex> DSPex.LM.Cache.stats() |> Map.keys() |> Enum.sort()
      [:disk_bytes, :disk_files, :memory_entries]
  """
  @spec stats() :: %{
          memory_entries: non_neg_integer,
          disk_bytes: non_neg_integer,
          disk_files: non_neg_integer
        }
  def stats, do: Store.stats()
end
