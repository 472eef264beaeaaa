defmodule DSPex.Optimize.Meter do
  @moduledoc """
  Counts and caps an optimizer job's LM spending.

  A job starts one meter process; `wrap/2` turns any LM into a metered one (a
  `DSPex.BaseLM` that delegates to it), and the job runs its programs and proposers
  with metered LMs only. Every call first asks the meter for permission, then reports
  its usage:

    * **calls** — LM calls that reached the model (cache hits are not counted: they cost
      nothing); with `max_lm_calls: n` the call that would be the `n+1`-th is refused
      (calls in flight count, so the cap is never passed);
    * **tokens and cost** — `cost` comes from the job's price table
      (`%{model => %{prompt: $/1M tokens, completion: $/1M tokens}}`, the format of
      `DSPex.Usage.cost/2`), priced by the LM's model name; with `max_cost: dollars` no
      call starts once the spent cost reaches it (calls already running finish, so the
      total can pass the cap by what those cost);
    * **deadline** — with `max_wall: ms`, no call starts after it;
    * **stop** — `stop/2` (cancel) refuses every later call.

  A refused call returns `{:error, %DSPex.Error{type: :budget_exhausted}}` (or
  `:cancelled`), which the program sees as a failed LM call; the job notices the
  refusal (`refused?/1`) and abandons the trial instead of recording a score made of
  failures.

  The meter is a process, so metered LMs work from any process and any node
  (`DSPex.Evaluate`'s `nodes:`): a call costs one round trip to it (microseconds, next to
  an LM call's milliseconds).
  """

  use GenServer
  @behaviour DSPex.BaseLM

  @enforce_keys [:inner, :server, :model]
  defstruct [:inner, :server, :model]

  @type t :: %__MODULE__{inner: struct, server: pid, model: binary}

  @typedoc "What a job has spent: the sums over every metered call."
  @type totals :: %{
          lm_calls: non_neg_integer,
          cache_hits: non_neg_integer,
          prompt_tokens: non_neg_integer,
          completion_tokens: non_neg_integer,
          cost: float,
          refused: non_neg_integer,
          unpriced: [binary],
          by_model: DSPex.Usage.by_model()
        }

  @doc """
  Starts a meter linked to the caller. Options: `max_lm_calls`, `max_cost`, `max_wall`
  (ms from now), `prices` (price table).

  ## Examples

      {:ok, meter} = DSPex.Optimize.Meter.start_link(max_lm_calls: 100)
  """
  @spec start_link(keyword) :: GenServer.on_start()
  def start_link(opts), do: GenServer.start_link(__MODULE__, opts)

  @doc """
  A metered version of `lm` (itself when it already is one for this meter; `nil` stays
  `nil`).

  ## Examples

      metered = DSPex.Optimize.Meter.wrap(meter, DSPex.LM.Scripted.new(["hi"]))
  """
  @spec wrap(pid, struct | nil) :: t | nil
  def wrap(_server, nil), do: nil
  def wrap(server, %__MODULE__{server: server} = m), do: m
  def wrap(server, %__MODULE__{inner: inner}), do: wrap(server, inner)

  def wrap(server, lm) when is_struct(lm),
    do: %__MODULE__{inner: lm, server: server, model: DSPex.BaseLM.model(lm)}

  @doc "The LM a metered LM wraps (any other value is returned as is)."
  @spec unwrap(term) :: term
  def unwrap(%__MODULE__{inner: inner}), do: inner
  def unwrap(other), do: other

  @doc "Every predictor's own LM of `program`, metered (for running it, not for keeping)."
  @spec wrap_program(pid, term) :: term
  def wrap_program(server, program),
    do: DSPex.Module.map_predictors(program, fn p -> %{p | lm: wrap(server, p.lm)} end)

  @doc "The spending so far (see `t:totals/0`)."
  @spec totals(pid) :: totals
  def totals(server), do: GenServer.call(server, :totals)

  @doc "Refused calls so far (a trial compares the count before and after it ran)."
  @spec refused?(pid, non_neg_integer) :: boolean
  def refused?(server, before), do: totals(server).refused > before

  @doc """
  Why the next call would be refused: `nil`, or `{:max_lm_calls, n}`,
  `{:max_cost, dollars}`, `{:max_wall, ms}` or `{:stopped, reason}`.
  """
  @spec exhausted(pid) :: nil | {atom, term}
  def exhausted(server), do: GenServer.call(server, :exhausted)

  @doc """
  Counts spending from before this meter started (a resumed job's journal totals)
  against the caps.
  """
  @spec carry(pid, map) :: :ok
  def carry(server, spent), do: GenServer.call(server, {:carry, spent})

  @doc "Refuses every later call with `reason` (e.g. `:cancelled`)."
  @spec stop(pid, term) :: :ok
  def stop(server, reason), do: GenServer.call(server, {:stop, reason})

  # ------------------------------------------------------------------ BaseLM

  @impl DSPex.BaseLM
  @doc false
  def forward(
        %__MODULE__{inner: %mod{} = inner, server: server, model: model},
        messages,
        params,
        opts
      ) do
    case begin(server) do
      :ok ->
        result =
          try do
            mod.forward(inner, messages, params, opts)
          catch
            kind, reason ->
              GenServer.cast(server, {:finish, model, nil})
              :erlang.raise(kind, reason, __STACKTRACE__)
          end

        case result do
          {:ok, c} -> GenServer.cast(server, {:finish, model, c})
          _ -> GenServer.cast(server, {:finish, model, :failed})
        end

        result

      {:refused, why} ->
        {:error, refusal(why)}
    end
  end

  @impl DSPex.BaseLM
  @doc false
  def supports?(%__MODULE__{inner: inner}, feature), do: DSPex.BaseLM.supports?(inner, feature)

  @impl DSPex.BaseLM
  @doc false
  def dump_state(%__MODULE__{inner: inner}), do: DSPex.BaseLM.dump_state(inner)

  defp begin(server) do
    GenServer.call(server, :begin, :infinity)
  catch
    :exit, _ -> {:refused, {:stopped, :job_ended}}
  end

  defp refusal({:stopped, :cancelled}),
    do: DSPex.Error.new(:cancelled, "the optimizer job was cancelled", %{})

  defp refusal({:stopped, reason}),
    do: DSPex.Error.new(:cancelled, "the optimizer job stopped (#{inspect(reason)})", %{})

  defp refusal({budget, limit}) do
    DSPex.Error.new(
      :budget_exhausted,
      "the optimizer job's #{budget} budget (#{inspect(limit)}) is spent",
      %{budget: budget, limit: limit}
    )
  end

  # ------------------------------------------------------------------ server

  @impl true
  def init(opts) do
    now = System.monotonic_time(:millisecond)

    {:ok,
     %{
       max_lm_calls: opts[:max_lm_calls],
       max_cost: opts[:max_cost],
       deadline: if(opts[:max_wall], do: now + opts[:max_wall]),
       max_wall: opts[:max_wall],
       prices: opts[:prices] || %{},
       stopped: nil,
       inflight: 0,
       lm_calls: 0,
       cache_hits: 0,
       prompt_tokens: 0,
       completion_tokens: 0,
       cost: 0.0,
       refused: 0,
       unpriced: MapSet.new(),
       by_model: %{}
     }}
  end

  @impl true
  def handle_call(:begin, _from, st) do
    case why_refused(st) do
      nil -> {:reply, :ok, %{st | inflight: st.inflight + 1}}
      why -> {:reply, {:refused, why}, %{st | refused: st.refused + 1}}
    end
  end

  def handle_call(:exhausted, _from, st), do: {:reply, why_refused(st), st}
  def handle_call({:stop, reason}, _from, st), do: {:reply, :ok, %{st | stopped: reason}}

  def handle_call({:carry, spent}, _from, st) do
    {:reply, :ok,
     %{
       st
       | lm_calls: st.lm_calls + Map.get(spent, :lm_calls, 0),
         prompt_tokens: st.prompt_tokens + Map.get(spent, :prompt_tokens, 0),
         completion_tokens: st.completion_tokens + Map.get(spent, :completion_tokens, 0),
         cost: st.cost + Map.get(spent, :cost, 0.0)
     }}
  end

  def handle_call(:totals, _from, st) do
    totals = %{
      lm_calls: st.lm_calls,
      cache_hits: st.cache_hits,
      prompt_tokens: st.prompt_tokens,
      completion_tokens: st.completion_tokens,
      cost: st.cost,
      refused: st.refused,
      unpriced: Enum.sort(st.unpriced),
      by_model: st.by_model
    }

    {:reply, totals, st}
  end

  @impl true
  def handle_cast({:finish, model, completion}, st) do
    st = %{st | inflight: max(st.inflight - 1, 0)}

    case completion do
      %{cache_hit: true} ->
        {:noreply, %{st | cache_hits: st.cache_hits + 1}}

      %{} = c ->
        usage = Map.get(c, :usage) || %{}
        pt = Map.get(usage, :prompt_tokens) || 0
        ct = Map.get(usage, :completion_tokens) || 0
        priced = DSPex.Usage.cost(%{model => usage}, st.prices)

        {:noreply,
         %{
           st
           | lm_calls: st.lm_calls + 1,
             prompt_tokens: st.prompt_tokens + pt,
             completion_tokens: st.completion_tokens + ct,
             cost: st.cost + priced.total,
             unpriced: Enum.into(priced.unpriced, st.unpriced),
             by_model: DSPex.Usage.merge(st.by_model, %{model => usage})
         }}

      # a failed call reached the model (or not): it counts as a call, with no usage
      _ ->
        {:noreply, %{st | lm_calls: st.lm_calls + 1}}
    end
  end

  defp why_refused(st) do
    cond do
      st.stopped != nil ->
        {:stopped, st.stopped}

      st.max_lm_calls != nil and st.lm_calls + st.inflight >= st.max_lm_calls ->
        {:max_lm_calls, st.max_lm_calls}

      st.max_cost != nil and st.cost >= st.max_cost ->
        {:max_cost, st.max_cost}

      st.deadline != nil and System.monotonic_time(:millisecond) >= st.deadline ->
        {:max_wall, st.max_wall}

      true ->
        nil
    end
  end
end
