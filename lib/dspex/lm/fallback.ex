defmodule DSPex.LM.Fallback do
  @moduledoc """
  A fallback chain of LMs: the first LM answers unless its call fails with one of the
  error types in `fallback_on`; then the next one is asked, and so on.

      lm = DSPex.LM.new(["anthropic/claude-sonnet-4-5", "openai/gpt-4o"],
             fallback_on: [:rate_limit, :server, :circuit_open, :timeout])
      DSPex.configure(lm: lm)

  Built by `DSPex.LM.new/2` from a list; entries are model ids, `{model, opts}` pairs,
  names of registered LMs (`DSPex.LM.Registry`) or LM structs. The options given to
  `DSPex.LM.new/2` (besides `fallback_on`) apply to every entry that is a model id.

  ## The circuit breaker decides

  Each remote LM's requests go through `DSPex.Pool`, whose per-endpoint
  `DSPex.CircuitBreaker` opens after consecutive network errors, timeouts or 5xx
  replies. While a provider's breaker is open its calls fail at once with
  `:circuit_open` — no request, no wait — so the chain moves to the next provider
  immediately; after the breaker's cooldown one probe request is let through again and,
  when it succeeds, the provider is back first in line. The chain keeps no state of its
  own.

  ## What is recorded

  The chain is one LM call for `DSPex.BaseLM`: one history entry and the usage of the
  LM that answered, under that LM's model (the completion's `model`). Every step to the
  next LM emits `[:dspex, :lm, :fallback]` with `%{count: 1}` and metadata `%{from:,
  to:, reason:, index:}` (models and the error type; never a prompt). When every LM
  fails, the last error is returned with `details.fallback` listing
  `%{model:, type:}` for each attempt.

  ## Streaming

  A streamed call falls back only while no text has reached the caller: once a provider
  has streamed a delta, its failure is returned as is (its text cannot be taken back).
  """

  @behaviour DSPex.BaseLM

  alias DSPex.Error

  defstruct model: nil, lms: [], fallback_on: []

  @type t :: %__MODULE__{model: binary, lms: [struct, ...], fallback_on: [atom]}

  @default_fallback_on [:rate_limit, :server, :circuit_open, :timeout, :network]

  @schema DSPex.Options.schema!(
            fallback_on: [
              type: {:list, :atom},
              default: @default_fallback_on,
              doc:
                "Error types that move the call to the next LM (`:rate_limit`, `:server`, `:circuit_open`, `:timeout`, `:network`, `:port_exited`, `:auth`, ...)."
            ]
          )

  @doc """
  The option schema of a chain (`DSPex.Options`); `DSPex.LM.new/2` adds the LM options.

  #{DSPex.Options.docs(@schema)}
  """
  @spec options_schema() :: DSPex.Options.schema()
  def options_schema, do: @schema

  @doc """
  Builds a chain from built LMs (`DSPex.LM.new/2` builds them from a list).

  ## Examples

      iex> a = DSPex.LM.new("anthropic/claude-x")
      iex> b = DSPex.LM.new("openai/gpt-4o-mini")
      iex> lm = DSPex.LM.Fallback.new([a, b], fallback_on: [:rate_limit])
      iex> {lm.model, lm.fallback_on}
      {"anthropic/claude-x,openai/gpt-4o-mini", [:rate_limit]}
  """
  @spec new([struct, ...], keyword) :: t
  def new([_ | _] = lms, opts \\ []) do
    opts = DSPex.Options.validate!(opts, @schema, "DSPex.LM.Fallback.new/2")

    Enum.each(lms, fn
      %_{} -> :ok
      other -> raise ArgumentError, "a fallback chain holds LM structs, got: #{inspect(other)}"
    end)

    %__MODULE__{
      model: Enum.map_join(lms, ",", &DSPex.BaseLM.model/1),
      lms: lms,
      fallback_on: opts[:fallback_on]
    }
  end

  @impl DSPex.BaseLM
  @doc false
  def forward(%__MODULE__{lms: lms} = chain, messages, params, opts) do
    lms
    |> Enum.with_index()
    |> Enum.reduce_while({nil, []}, fn {%mod{} = lm, i}, {_, tried} ->
      {result, streamed?} = forward_one(mod, lm, messages, params, opts)
      next = Enum.at(lms, i + 1)

      case result do
        {:error, %Error{type: type} = e} when next != nil ->
          if type in chain.fallback_on and not streamed? do
            DSPex.Telemetry.execute([:dspex, :lm, :fallback], %{count: 1}, %{
              from: DSPex.BaseLM.model(lm),
              to: DSPex.BaseLM.model(next),
              reason: type,
              index: i
            })

            {:cont, {e, [%{model: DSPex.BaseLM.model(lm), type: type} | tried]}}
          else
            {:halt, {:done, result}}
          end

        {:error, %Error{type: type} = e} ->
          tried = Enum.reverse([%{model: DSPex.BaseLM.model(lm), type: type} | tried])
          {:halt, {:done, {:error, %{e | details: Map.put(e.details, :fallback, tried)}}}}

        ok ->
          {:halt, {:done, ok}}
      end
    end)
    |> elem(1)
  end

  # One LM of the chain, called through its own forward/4 (the chain's BaseLM call
  # records usage and history once). A streaming caller's sink is wrapped to learn
  # whether any text went out.
  defp forward_one(mod, lm, messages, params, %{sink: nil} = opts),
    do: {mod.forward(lm, messages, params, opts), false}

  defp forward_one(mod, lm, messages, params, %{sink: sink} = opts) do
    sent = :atomics.new(1, [])

    counting = fn event ->
      :atomics.put(sent, 1, 1)
      sink.(event)
    end

    result =
      if mod.supports?(lm, :stream) do
        mod.forward(lm, messages, params, %{opts | sink: counting})
      else
        with {:ok, completion} <- mod.forward(lm, messages, params, %{opts | sink: nil}) do
          DSPex.BaseLM.replay_text(completion, counting)
          {:ok, completion}
        end
      end

    {result, :atomics.get(sent, 1) == 1}
  end

  @impl DSPex.BaseLM
  @doc false
  # Streaming is handled here for LMs that cannot; other features need every LM.
  def supports?(_chain, :stream), do: true

  def supports?(%__MODULE__{lms: lms}, feature),
    do: Enum.all?(lms, &DSPex.BaseLM.supports?(&1, feature))
end
