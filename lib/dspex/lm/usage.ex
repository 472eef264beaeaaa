defmodule DSPex.Usage do
  @moduledoc """
  Token-usage accounting per model, like DSPy's `track_usage`.

  `track/1` opens a tracking scope for the calling process **and for the tasks DSPex
  starts from it** (the scope travels in the settings overrides, so
  `DSPex.Settings.async/1`, `DSPex.Parallel`, `DSPex.stream/3` follow it). Every LM
  call (`DSPex.BaseLM.request/4`, any LM) records its usage with `record/2`; cache hits
  record nothing (their usage is zero). Scopes nest: an inner scope's usage also counts in
  the outer one.

  Totals are `%{model => %{prompt_tokens:, completion_tokens:, total_tokens:,
  cached_tokens:, reasoning_tokens:, ...}}`: numeric entries are summed, nested maps are
  summed recursively.

  ## Examples

      iex> {:done, usage} = DSPex.Usage.track(fn ->
      ...>   DSPex.Usage.record("openai/gpt-4o-mini", %{prompt_tokens: 10, completion_tokens: 2, total_tokens: 12})
      ...>   DSPex.Usage.record("openai/gpt-4o-mini", %{prompt_tokens: 5, completion_tokens: 1, total_tokens: 6})
      ...>   :done
      ...> end)
      iex> usage
      %{"openai/gpt-4o-mini" => %{prompt_tokens: 15, completion_tokens: 3, total_tokens: 18}}
  """

  @key :usage_trackers

  @typedoc "Usage totals keyed by model id."
  @type by_model :: %{binary => map}

  @doc """
  Runs `fun` in a tracking scope and returns `{result, usage_by_model}`.

  ## Examples

      iex> DSPex.Usage.track(fn -> DSPex.Usage.record("m", %{total_tokens: 2}); :ok end)
      {:ok, %{"m" => %{total_tokens: 2}}}
  """
  @spec track((() -> result)) :: {result, by_model} when result: term
  def track(fun) when is_function(fun, 0) do
    {:ok, pid} = Agent.start(fn -> %{} end)
    trackers = [pid | DSPex.Settings.get(@key) || []]

    try do
      result = DSPex.Settings.with_settings([{@key, trackers}], fun)
      {result, Agent.get(pid, & &1)}
    after
      Agent.stop(pid)
    end
  end

  @doc """
  Adds `usage` for `model` to every open tracking scope of the calling process. A no-op
  outside `track/1`. Returns `:ok`.

  ## Examples

      iex> DSPex.Usage.record("m", %{total_tokens: 1})
      :ok
  """
  @spec record(binary, map) :: :ok
  def record(model, usage) when is_map(usage) do
    for pid <- DSPex.Settings.get(@key) || [] do
      try do
        Agent.update(pid, fn acc ->
          Map.update(acc, to_string(model), clean(usage), &add(&1, usage))
        end)
      catch
        # The scope already closed (a stray task finished late): drop the record.
        :exit, _ -> :ok
      end
    end

    :ok
  end

  def record(_model, _usage), do: :ok

  @doc """
  Whether the calling process is inside a tracking scope.

  ## Examples

      iex> DSPex.Usage.tracking?()
      false
  """
  @spec tracking?() :: boolean
  def tracking?, do: (DSPex.Settings.get(@key) || []) != []

  @doc """
  Sums two usage maps (numbers add, nested maps add recursively, other values: the
  right one wins).

  ## Examples

      iex> DSPex.Usage.add(%{prompt_tokens: 1, details: %{a: 1}}, %{prompt_tokens: 2, details: %{a: 2, b: 1}})
      %{prompt_tokens: 3, details: %{a: 3, b: 1}}
  """
  @spec add(map, map) :: map
  def add(a, b) when is_map(a) and is_map(b) do
    Map.merge(a, clean(b), fn
      _k, x, y when is_number(x) and is_number(y) -> x + y
      _k, x, y when is_map(x) and is_map(y) -> add(x, y)
      _k, x, nil -> x
      _k, _x, y -> y
    end)
  end

  @doc """
  Merges two usage-by-model maps.

  ## Examples

      iex> DSPex.Usage.merge(%{"m" => %{total_tokens: 1}}, %{"m" => %{total_tokens: 2}, "n" => %{total_tokens: 3}})
      %{"m" => %{total_tokens: 3}, "n" => %{total_tokens: 3}}
  """
  @spec merge(by_model, by_model) :: by_model
  def merge(a, b), do: Map.merge(a, b, fn _m, x, y -> add(x, y) end)

  @doc """
  Total tokens over all models.

  ## Examples

      iex> DSPex.Usage.total_tokens(%{"a" => %{total_tokens: 3}, "b" => %{total_tokens: 4}})
      7
  """
  @spec total_tokens(by_model) :: non_neg_integer
  def total_tokens(by_model) do
    by_model |> Map.values() |> Enum.map(&(Map.get(&1, :total_tokens) || 0)) |> Enum.sum()
  end

  @doc """
  Cost in currency units from a price table `%{model => %{prompt: price_per_million,
  completion: price_per_million, cached: price_per_million}}` (`cached` optional: cached
  prompt tokens are billed at it instead of `prompt`). Models missing from the table cost
  nothing and are listed in `unpriced`.

  ## Examples

      iex> usage = %{"openai/gpt-4o-mini" => %{prompt_tokens: 1_000_000, completion_tokens: 500_000, cached_tokens: 0}}
      iex> DSPex.Usage.cost(usage, %{"openai/gpt-4o-mini" => %{prompt: 0.15, completion: 0.60}})
      %{total: 0.45, by_model: %{"openai/gpt-4o-mini" => 0.45}, unpriced: []}
  """
  @spec cost(by_model, map) :: %{total: float, by_model: %{binary => float}, unpriced: [binary]}
  def cost(by_model, prices) when is_map(by_model) and is_map(prices) do
    {costs, unpriced} =
      Enum.reduce(by_model, {%{}, []}, fn {model, u}, {acc, missing} ->
        case Map.get(prices, model) do
          nil ->
            {acc, [model | missing]}

          p ->
            cached = Map.get(u, :cached_tokens) || 0
            prompt = (Map.get(u, :prompt_tokens) || 0) - if(p[:cached], do: cached, else: 0)

            c =
              (prompt * (p[:prompt] || 0) +
                 (Map.get(u, :completion_tokens) || 0) * (p[:completion] || 0) +
                 if(p[:cached], do: cached * p[:cached], else: 0)) / 1_000_000

            {Map.put(acc, model, Float.round(c * 1.0, 10)), missing}
        end
      end)

    %{
      total: Float.round(Enum.sum(Map.values(costs)) * 1.0, 10),
      by_model: costs,
      unpriced: Enum.sort(unpriced)
    }
  end

  defp clean(usage) do
    usage
    |> Enum.reject(fn {_, v} -> is_nil(v) end)
    |> Map.new(fn
      {k, v} when is_map(v) -> {k, clean(v)}
      kv -> kv
    end)
  end
end
