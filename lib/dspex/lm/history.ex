defmodule DSPex.LM.History do
  @moduledoc """
  Bounded call history of every LM request made by predictors, plus per-model usage
  totals — DSPy's `GLOBAL_HISTORY` and `dspy.inspect_history`.

  `DSPex.BaseLM` records one entry per successful LM call (predictor calls and direct
  `DSPex.LM.request/3` calls alike, as DSPy's `BaseLM.__call__` does).

  Entries live in a public ordered ETS table owned by a `DSPex.TableOwner` (started
  under `DSPex.Application`, or on demand). Writers insert directly (no message round
  trip) and trim oldest-first to two bounds, so memory stays bounded (DSPy issue
  #7262):

    * `DSPex.Settings.get(:max_history_size)` entries (default 10 000), and
    * `DSPex.Settings.get(:max_history_bytes)` bytes (default 64 MiB), an entry's size
      being `:erlang.external_size/1` of it — its prompts and replies. The newest entry
      is always kept, so one call larger than the bound can still be inspected.

  Set `disable_history: true` to stop recording.

  An entry is a map:

    * `:timestamp` — ISO 8601 local-less time (`"2026-11-22T03:20:11.123456"`)
    * `:uuid`, `:model`, `:predictor` (predictor name), `:attempt` (1-based)
    * `:messages` — the request messages
    * `:outputs` — list of completion texts (one per choice)
    * `:params` — request params, `:usage` — usage map, `:cache_hit`

  ## Examples

      iex> DSPex.LM.History.clear()
      :ok
      iex> DSPex.LM.History.record(%{model: "m", messages: [%{role: "user", content: "hi"}], outputs: ["yo"], usage: %{}})
      :ok
      iex> [entry] = DSPex.LM.History.last(1)
      iex> entry.outputs
      ["yo"]
  """

  @table :dspex_lm_history
  @usage_table :dspex_lm_usage_totals
  # {:totals, entries, bytes}: how many entries @table holds and their bytes, kept by
  # update_counter (reading :ets.info(table, :size) of a write-concurrent table sums
  # per-scheduler counters: slow under load, and it ran on every LM call).
  @meta_table :dspex_lm_history_meta
  @zero {:totals, 0, 0}

  @doc false
  # The owner of the history tables (a DSPex.TableOwner, started by DSPex.Application).
  def table_owner do
    [
      name: __MODULE__,
      tables: [
        {@table, [:ordered_set, write_concurrency: true]},
        {@usage_table, [:set, write_concurrency: true]},
        {@meta_table, [:set, write_concurrency: true]}
      ]
    ]
  end

  @doc false
  def ensure_started do
    if :ets.whereis(@table) == :undefined do
      DSPex.TableOwner.ensure_started(table_owner())
    end

    :ok
  end

  @doc """
  Records one entry (fills `:timestamp` and `:uuid` when missing) and adds its usage to
  the per-model totals. A no-op for the history (not the totals) when `disable_history`
  is set. `DSPex.track_usage/1` scopes are not fed from here: the LM itself reports its
  usage to `DSPex.Usage`, once per request.

  ## Examples

      iex> DSPex.LM.History.record(%{model: "m", messages: [], outputs: [""], usage: %{}})
      :ok
  """
  @spec record(map) :: :ok
  def record(entry) when is_map(entry) do
    ensure_started()

    entry =
      entry
      |> Map.put_new_lazy(:timestamp, &timestamp/0)
      |> Map.put_new_lazy(:uuid, &uuid/0)

    add_usage(Map.get(entry, :model) || "unknown", Map.get(entry, :usage) || %{})

    if DSPex.Settings.get(:disable_history, false) != true do
      size = :erlang.external_size(entry)
      :ets.insert(@table, {:erlang.unique_integer([:monotonic, :positive]), entry, size})
      [n, bytes] = :ets.update_counter(@meta_table, :totals, [{2, 1}, {3, size}], @zero)

      trim(
        n,
        bytes,
        DSPex.Settings.get(:max_history_size, 10_000),
        DSPex.Settings.get(:max_history_bytes, 64 * 1024 * 1024)
      )
    end

    :ok
  end

  # Drops the oldest entries while there are more than `max_entries`, or more than
  # `max_bytes` and more than one entry. `:ets.take/2` makes concurrent trimmers each
  # subtract the entries and bytes they removed, once.
  defp trim(n, bytes, max_entries, max_bytes) do
    if n > max_entries or (n > 1 and bytes > max_bytes) do
      case :ets.first(@table) do
        :"$end_of_table" ->
          :ok

        k ->
          case :ets.take(@table, k) do
            [{_, _, size}] ->
              [n, bytes] = :ets.update_counter(@meta_table, :totals, [{2, -1}, {3, -size}], @zero)
              trim(n, bytes, max_entries, max_bytes)

            [] ->
              [{:totals, n, bytes}] = totals()
              trim(n, bytes, max_entries, max_bytes)
          end
      end
    end

    :ok
  end

  defp totals do
    case :ets.lookup(@meta_table, :totals) do
      [] -> [@zero]
      row -> row
    end
  end

  @doc """
  Bytes held by the entries (the sum of their `:erlang.external_size/1`).

  ## Examples

      iex> DSPex.LM.History.bytes() >= 0
      true
  """
  @spec bytes() :: non_neg_integer
  def bytes do
    ensure_started()

    [{:totals, _n, bytes}] = totals()
    bytes
  end

  @doc """
  The last `n` entries, oldest first.

  ## Examples

      iex> is_list(DSPex.LM.History.last(3))
      true
  """
  @spec last(non_neg_integer) :: [map]
  def last(n \\ 1) when is_integer(n) and n >= 0 do
    ensure_started()
    take_last(:ets.last(@table), n, [])
  end

  defp take_last(_, 0, acc), do: acc
  defp take_last(:"$end_of_table", _, acc), do: acc

  defp take_last(k, n, acc) do
    case :ets.lookup(@table, k) do
      [{_, e, _}] -> take_last(:ets.prev(@table, k), n - 1, [e | acc])
      [] -> take_last(:ets.prev(@table, k), n, acc)
    end
  end

  @doc """
  Number of entries held.

  ## Examples

      iex> DSPex.LM.History.size() >= 0
      true
  """
  @spec size() :: non_neg_integer
  def size do
    ensure_started()
    :ets.info(@table, :size)
  end

  @doc """
  Drops all entries and usage totals.

  ## Examples

      iex> DSPex.LM.History.clear()
      :ok
  """
  @spec clear() :: :ok
  def clear do
    ensure_started()
    :ets.delete_all_objects(@table)
    :ets.delete_all_objects(@meta_table)
    :ets.delete_all_objects(@usage_table)
    :ok
  end

  @doc """
  Usage totals per model since start (or `clear/0`):
  `%{model => %{prompt_tokens:, completion_tokens:, total_tokens:, requests:}}`.

  ## Examples

      iex> is_map(DSPex.LM.History.usage_totals())
      true
  """
  @spec usage_totals() :: map
  def usage_totals do
    ensure_started()

    for {model, p, c, t, r} <- :ets.tab2list(@usage_table), into: %{} do
      {model, %{prompt_tokens: p, completion_tokens: c, total_tokens: t, requests: r}}
    end
  end

  @doc false
  # Adds usage to the global per-model totals.
  @spec add_usage(binary, map) :: :ok
  def add_usage(model, usage) when is_map(usage) do
    p = num(usage, :prompt_tokens)
    c = num(usage, :completion_tokens)
    t = Map.get(usage, :total_tokens) || p + c

    :ets.update_counter(
      @usage_table,
      model,
      [{2, p}, {3, c}, {4, t}, {5, 1}],
      {model, 0, 0, 0, 0}
    )

    :ok
  end

  defp num(map, k) do
    case Map.get(map, k) do
      n when is_integer(n) -> n
      _ -> 0
    end
  end

  @doc """
  Renders the last `n` entries like `dspy.inspect_history`. `colors: true` adds ANSI
  colours (blue timestamp, red role headers, green response).

  ## Examples

      iex> DSPex.LM.History.format_entries([%{timestamp: "T", messages: [%{role: "user", content: "hi "}], outputs: ["yo"]}], colors: false)
      "\\n\\n\\n\\n[T]\\n\\nUser message:\\n\\nhi\\n\\n\\nResponse:\\n\\nyo\\n\\n\\n\\n\\n\\n"
  """
  @spec format_entries([map], keyword) :: binary
  def format_entries(entries, opts \\ []) do
    colors = Keyword.get(opts, :colors, false)

    body =
      Enum.map(entries, fn e ->
        msgs =
          Enum.map(Map.get(e, :messages) || [], fn m ->
            role = to_string(m[:role] || m["role"])

            [
              red(String.capitalize(role) <> " message:", "\n", colors),
              "\n",
              content_text(m[:content] || m["content"], colors),
              "\n\n"
            ]
          end)

        outputs = Map.get(e, :outputs) || []

        response =
          case outputs do
            [first | _] ->
              [
                red("Response:", "\n", colors),
                "\n",
                green(output_text(first), "\n", colors),
                "\n"
              ]

            [] ->
              []
          end

        more =
          if length(outputs) > 1 do
            [red(" \t (and #{length(outputs) - 1} other completions)", "", colors), "\n"]
          else
            []
          end

        [
          "\n\n\n\n",
          blue("[#{Map.get(e, :timestamp, "Unknown time")}]", "\n", colors),
          "\n",
          msgs,
          response,
          more
        ]
      end)

    IO.iodata_to_binary([body, "\n\n\n\n"])
  end

  defp content_text(c, _colors) when is_binary(c), do: [String.trim(c), "\n"]

  defp content_text(parts, colors) when is_list(parts) do
    Enum.map(parts, fn part ->
      type = part[:type] || part["type"]

      case type do
        "text" ->
          [String.trim(part[:text] || part["text"] || ""), "\n"]

        "image_url" ->
          url = get_in_any(part, ["image_url", "url"]) || ""

          s =
            case String.split(url, "base64,", parts: 2) do
              [head, data] -> "<#{head}base64,<IMAGE BASE 64 ENCODED(#{String.length(data)})>"
              _ -> "<image_url: #{url}>"
            end

          blue(s, "\n", colors)

        _ ->
          [inspect(part), "\n"]
      end
    end)
  end

  defp content_text(other, _), do: [to_string(other), "\n"]

  defp get_in_any(map, [k | rest]) do
    v = Map.get(map, k) || Map.get(map, String.to_atom(k))
    if rest == [] or not is_map(v), do: v, else: get_in_any(v, rest)
  end

  defp output_text(t) when is_binary(t), do: t
  defp output_text(%{text: t}) when is_binary(t), do: t
  defp output_text(other), do: inspect(other)

  defp blue(t, e, true), do: ["\e[34m", t, "\e[0m", e]
  defp blue(t, e, false), do: [t, e]
  defp red(t, e, true), do: ["\e[31m", t, "\e[0m", e]
  defp red(t, e, false), do: [t, e]
  defp green(t, e, true), do: ["\e[32m", String.trim_leading(t), "\e[0m", e]
  defp green(t, e, false), do: [String.trim_leading(t), e]

  @doc """
  Prints the last `n` entries. Options: `:device` (default `:stdio`), `:colors`
  (default: only when the device is `:stdio` and ANSI is enabled, i.e. a terminal).

  ## Examples

      iex> {:ok, dev} = StringIO.open("")
      iex> DSPex.LM.History.inspect_history(0, device: dev)
      :ok
  """
  @spec inspect_history(non_neg_integer, keyword) :: :ok
  def inspect_history(n \\ 1, opts \\ []) do
    device = Keyword.get(opts, :device, :stdio)
    colors = Keyword.get_lazy(opts, :colors, fn -> device == :stdio and IO.ANSI.enabled?() end)
    IO.write(device, format_entries(last(n), colors: colors))
  end

  @doc false
  def timestamp do
    NaiveDateTime.utc_now() |> NaiveDateTime.to_iso8601()
  end

  @doc false
  def uuid do
    # an entry id, not a secret: :rand's per-process generator is enough (and cheap)
    <<a::32, b::16, _::4, c::12, _::2, d::62>> = :rand.bytes(16)
    hex = Base.encode16(<<a::32, b::16, 4::4, c::12, 2::2, d::62>>, case: :lower)

    <<p1::binary-8, p2::binary-4, p3::binary-4, p4::binary-4, p5::binary-12>> = hex
    Enum.join([p1, p2, p3, p4, p5], "-")
  end
end
