defmodule DSPex.Server.Keys do
  @moduledoc """
  API keys of a `DSPex.Server`: stored hashed, checked in constant time, each with a
  token-bucket rate limit and a cap on requests in flight.

  ## Configuring keys

      api_keys: [
        [id: "team-a", hash: "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"],
        [id: "batch-jobs", hash: "sha256:...", rate: 50, burst: 200, max_concurrency: 32],
        [id: "dev", key: System.fetch_env!("DSPEX_DEV_KEY")]
      ]

  `hash:` is `hash/1` of the key (`mix dspex.serve --hash-key` prints it); `key:` is
  hashed when the server starts and is not kept. Keys must be random tokens (make one
  with `generate/0`: 32 random bytes), which is why one SHA-256 is enough: there is no
  password to guess. A client sends its key as `Authorization: Bearer <key>` or
  `x-api-key: <key>`.

  ## Checking a key

  The presented key is hashed once and compared with **every** stored hash with
  `:crypto.hash_equals/2` (constant time, no early exit), so the time taken says
  nothing about which stored key, or how much of one, matched. Only the key's `id`
  travels further (telemetry, metrics labels, logs); the key and its hash never do.

  ## Limits per key

    * `rate` (requests per second, default 10) and `burst` (bucket size, default 20):
      a token bucket; a batch request costs one token per item. Over the limit:
      HTTP 429, `type: "rate_limited"`, with `Retry-After`.
    * `max_concurrency` (default 8): requests of this key being served at once; over
      it: HTTP 429, `type: "concurrency_limited"`.

  Buckets and counters live in a public ETS table updated with compare-and-swap, so the
  check takes no lock and no process hop.
  """

  @prefix "sha256:"

  @key_schema DSPex.Options.schema!(
                id: [type: :string, required: true, doc: "Name of the key (logs, metrics)."],
                hash: [type: :string, doc: "`hash/1` of the key."],
                key: [type: :string, secret: true, doc: "The key itself (hashed at start)."],
                rate: [type: :number, doc: "Requests per second (token refill rate)."],
                burst: [type: :pos_integer, doc: "Bucket size."],
                max_concurrency: [type: :pos_integer, doc: "Requests in flight."]
              )

  @typedoc "A stored key: its id, hash and limits."
  @type entry :: %{
          id: binary,
          hash: binary,
          rate: number,
          burst: pos_integer,
          max_concurrency: pos_integer
        }

  @doc """
  The stored form of `key`: `"sha256:" <> lowercase hex`.

  ## Examples

      iex> DSPex.Server.Keys.hash("test")
      "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
  """
  @spec hash(binary) :: binary
  def hash(key) when is_binary(key),
    do: @prefix <> Base.encode16(:crypto.hash(:sha256, key), case: :lower)

  @doc """
  A fresh random key: `"dsx_"` and 32 random bytes, base64url.

  ## Examples

      iex> key = DSPex.Server.Keys.generate()
      iex> {String.starts_with?(key, "dsx_"), byte_size(key)}
      {true, 47}
  """
  @spec generate() :: binary
  def generate, do: "dsx_" <> Base.url_encode64(:crypto.strong_rand_bytes(32), padding: false)

  @doc """
  Validates `api_keys:` entries (keyword lists or maps, see the module doc) into stored
  entries, with `defaults` (`rate`, `burst`, `max_concurrency`) for missing limits.
  Raises `ArgumentError` on a malformed entry, never showing a key.

  ## Examples

      iex> [e] = DSPex.Server.Keys.entries([[id: "a", key: "k1"]], rate: 5, burst: 10, max_concurrency: 2)
      iex> {e.id, e.hash == DSPex.Server.Keys.hash("k1"), e.rate, e.burst, e.max_concurrency}
      {"a", true, 5, 10, 2}
  """
  @spec entries([keyword | map], keyword) :: [entry]
  def entries(list, defaults) when is_list(list) do
    entries =
      Enum.map(list, fn spec ->
        spec = if is_map(spec), do: Map.to_list(spec), else: spec
        opts = DSPex.Options.validate!(spec, @key_schema, "DSPex.Server api_keys:")

        hash =
          case {opts[:hash], opts[:key]} do
            {nil, key} when is_binary(key) and key != "" ->
              hash(key)

            {@prefix <> hex = h, nil} when byte_size(hex) == 64 ->
              String.downcase(h)

            _ ->
              raise ArgumentError,
                    "API key #{inspect(opts[:id])}: give exactly one of key: or hash: (\"sha256:\" and 64 hex digits)"
          end

        %{
          id: opts[:id],
          hash: hash,
          rate: opts[:rate] || Keyword.fetch!(defaults, :rate),
          burst: opts[:burst] || Keyword.fetch!(defaults, :burst),
          max_concurrency: opts[:max_concurrency] || Keyword.fetch!(defaults, :max_concurrency)
        }
      end)

    case entries |> Enum.frequencies_by(& &1.id) |> Enum.filter(fn {_, n} -> n > 1 end) do
      [] -> entries
      dups -> raise ArgumentError, "duplicate API key ids: #{inspect(Keyword.keys(dups))}"
    end
  end

  @doc """
  Finds the entry whose key is `presented`: hashes it once and compares the hash with
  every entry in constant time. Returns the entry or `nil`.

  ## Examples

      iex> entries = DSPex.Server.Keys.entries([[id: "a", key: "k1"], [id: "b", key: "k2"]], rate: 1, burst: 1, max_concurrency: 1)
      iex> DSPex.Server.Keys.verify(entries, "k2").id
      "b"
      iex> DSPex.Server.Keys.verify(entries, "k3")
      nil
  """
  @spec verify([entry], binary) :: entry | nil
  def verify(entries, presented) when is_binary(presented) do
    h = hash(presented)

    # Visit every entry whatever matched: the loop's length does not depend on the key.
    Enum.reduce(entries, nil, fn entry, found ->
      if :crypto.hash_equals(entry.hash, h) and found == nil, do: entry, else: found
    end)
  end

  @doc """
  Extracts the presented key from request headers (lowercase names): `authorization:
  Bearer <key>` or `x-api-key: <key>`.

  ## Examples

      iex> DSPex.Server.Keys.presented([{"authorization", "Bearer k1"}])
      "k1"
      iex> DSPex.Server.Keys.presented([{"x-api-key", "k2"}])
      "k2"
      iex> DSPex.Server.Keys.presented([])
      nil
  """
  @spec presented([{binary, binary}]) :: binary | nil
  def presented(headers) do
    case List.keyfind(headers, "authorization", 0) do
      {_, "Bearer " <> key} ->
        String.trim(key)

      {_, "bearer " <> key} ->
        String.trim(key)

      _ ->
        case List.keyfind(headers, "x-api-key", 0) do
          {_, key} -> String.trim(key)
          nil -> nil
        end
    end
  end

  # --- limits -----------------------------------------------------------------------

  @doc false
  # The ETS table of buckets and in-flight counters of one server.
  @spec new_table() :: :ets.tid()
  def new_table,
    do: :ets.new(__MODULE__, [:set, :public, write_concurrency: true, read_concurrency: true])

  @doc """
  Takes `cost` tokens from the bucket of `entry` in `table`. Returns `:ok` or
  `{:error, retry_after_seconds}`.
  """
  @spec take(:ets.tid(), entry, pos_integer) :: :ok | {:error, pos_integer}
  def take(table, %{id: id, rate: rate, burst: burst}, cost \\ 1) do
    now = System.monotonic_time(:microsecond)

    case :ets.lookup(table, {:bucket, id}) do
      [] ->
        # A full bucket; whoever inserts first, the next round sees the row.
        :ets.insert_new(table, {{:bucket, id}, burst * 1.0, now})
        take(table, %{id: id, rate: rate, burst: burst}, cost)

      [{k, tokens, last} = row] ->
        refilled = min(burst * 1.0, tokens + (now - last) / 1_000_000 * rate)

        cond do
          cost > burst ->
            {:error, ceil(cost / max(rate, 1.0e-9))}

          refilled >= cost ->
            if cas(table, row, {k, refilled - cost, now}),
              do: :ok,
              else: take(table, %{id: id, rate: rate, burst: burst}, cost)

          true ->
            {:error, max(1, ceil((cost - refilled) / max(rate, 1.0e-9)))}
        end
    end
  end

  defp cas(table, old, new), do: :ets.select_replace(table, [{old, [], [{:const, new}]}]) == 1

  @doc """
  Counts one more request in flight for `entry`; `:ok`, or `:error` (and nothing
  counted) when it already has `max_concurrency`. Pair every `:ok` with `release/2`.
  """
  @spec acquire(:ets.tid(), entry) :: :ok | :error
  def acquire(table, %{id: id, max_concurrency: max}) do
    n = :ets.update_counter(table, {:inflight, id}, {2, 1}, {{:inflight, id}, 0})

    if n > max do
      :ets.update_counter(table, {:inflight, id}, {2, -1})
      :error
    else
      :ok
    end
  end

  @doc "Counts one request of `entry` less in flight."
  @spec release(:ets.tid(), entry) :: :ok
  def release(table, %{id: id}) do
    :ets.update_counter(table, {:inflight, id}, {2, -1}, {{:inflight, id}, 1})
    :ok
  end
end
