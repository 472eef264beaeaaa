defmodule DSPex.Optimize.Engine do
  @moduledoc """
  The BEAM side of the optimizer engine: one `priv/dspex_port` process holding one
  job's search state and journal (`c_src/core/optim/engine.c`), spoken to with the
  `optim_*` messages of `docs/port-protocol.md`.

  A job's runner process opens the engine and is the only process that talks to it:
  every function sends one command and waits for its one reply. The port is owned by
  (linked to) the opening process; when that process dies the port sees stdin close and
  exits, releasing the journal's lock. When the port dies (`kill -9`), the call in
  progress returns `{:error, %DSPex.Error{type: :engine_lost}}`; the journal on disk is
  then complete up to the last trial boundary and `open/4` resumes it.

  This is the transport of `DSPex.Optimize`; optimizers use it through
  `DSPex.Optimize.Run`. Its functions return `{:ok, value}` or
  `{:error, %DSPex.Error{}}` whose `type` is one of `:spec_mismatch` (the journal
  belongs to another job), `:corrupt`, `:disk_full`, `:io`, `:busy` (another process
  holds the journal), `:not_a_journal`, `:broken` (a write failed after the sampler
  moved: resume from the journal), `:sequence` (a journal written by a sampler that
  proposes differently), `:no_candidate` (DSPy's "No valid program found" ValueError),
  `:state`, `:limit`, `:no_memory`, `:bad_request`, `:engine_lost`, `:timeout`.
  """

  require Logger

  use GenServer

  @enforce_keys [:pid, :job, :path]
  defstruct [:pid, :job, :path, :os_pid]

  @type t :: %__MODULE__{pid: pid, job: pos_integer, path: binary, os_pid: integer | nil}

  # Every atom a reply can hold, so `binary_to_term(_, [:safe])` finds them.
  @atoms [:optim, :opened, :trial, :need, :done, :told, :status, :batch, :ok, :error, :log] ++
           [:number, :kind, :params, :examples, :counts_for_best, :all, :default, :objective] ++
           [:full_eval, :candidate, :asked, :objective_told, :num_trials, :planned] ++
           [:outstanding, :finished, :best_number, :best_score, :usage, :lm_calls] ++
           [:prompt_tokens, :completion_tokens, :cost, :records, :file_bytes, :torn_bytes] ++
           [:created, :run, :setup, :best, :tpe, :queue, :mode, :seed, :n_startup_trials] ++
           [:n_ei_candidates, :valset_size, :minibatch, :minibatch_size, :full_eval_steps] ++
           [:failed, :offset, :errno, :io, :disk_full, :not_a_journal, :corrupt, :spec_mismatch] ++
           [:busy, :broken, :limit, :no_memory, :state, :sequence, :no_candidate, :bad_request] ++
           [:sync_us, :port_us, :warning, :info, nil, true, false]

  # A journal sync is an fdatasync: milliseconds on a disk, longer on a loaded one.
  @call_timeout 120_000

  @doc false
  def atoms, do: @atoms

  @doc """
  Starts an engine port and opens (or creates) the journal at `path` for the job whose
  canonical spec is `spec` (a binary; see `DSPex.Optimize.Spec`). `run` is a term
  recorded in the journal's RUN record for this (re)start.

  Returns `{:ok, engine, replay}` where `replay` is
  `%{created: boolean, torn_bytes: n, records: n, events: [event]}` and the events are
  the journal's records in order: `{:run, term}`, `{:setup, config, term}`,
  `{:batch, index, size, term}`, `{:asked, trial}`, `{:told, number, score | :failed,
  usage, term}`, `{:best, term}`, `{:done, term}` (terms are what was written, decoded
  with `binary_to_term/2` `[:safe]`).

  Options: `:port_path` (default: `$DSPEX_PORT_PATH`, else `priv/dspex_port`),
  `:max_record` (largest journal record in bytes; default 16 MiB).

  ## Examples

      {:ok, engine, %{created: true}} = DSPex.Optimize.Engine.open("/tmp/j", ~s({"a":1}), %{}, [])
  """
  @spec open(Path.t(), binary, term, keyword) :: {:ok, t, map} | {:error, DSPex.Error.t()}
  def open(path, spec, run, opts \\ []) when is_binary(spec) do
    path = Path.expand(path)
    exe = opts[:port_path] || default_port_path()
    File.mkdir_p(Path.dirname(path))
    req = %{path: path, spec: spec, run: :erlang.term_to_binary(run)}
    req = if opts[:max_record], do: Map.put(req, :max_record, opts[:max_record]), else: req

    with {:ok, pid} <- GenServer.start_link(__MODULE__, {exe, path}) do
      os_pid = GenServer.call(pid, :os_pid)

      case call_pid(pid, path, fn id -> {:optim_open, id, req} end, @call_timeout) do
        {:ok, {:opened, job, info, events}} ->
          engine = %__MODULE__{pid: pid, job: job, path: path, os_pid: os_pid}
          {:ok, engine, Map.put(info, :events, Enum.map(events, &decode_event/1))}

        {:error, %DSPex.Error{type: :spec_mismatch} = e} ->
          stop(pid)
          {:error, explain_spec(e, path, spec)}

        {:error, _} = err ->
          stop(pid)
          err
      end
    else
      {:error, reason} ->
        {:error,
         DSPex.Error.new(:engine_lost, "cannot start the engine port: #{inspect(reason)}", %{
           journal: path
         })}
    end
  end

  @doc """
  Fixes the job's search (once): `config` is a map with `mode` (`:tpe` or `:queue`) and,
  for `:tpe`, `params` (`[{name, n_choices}]`, suggest order), `seed`, `num_trials`,
  `valset_size`, `minibatch`, `minibatch_size`, `full_eval_steps`, `rng_state` (the
  2500-byte `DSPex.Random` state, or nil) and `usage` (spending so far); `proposals` is
  any term, kept in the journal for a resume.
  """
  @spec setup(t, map, term) :: :ok | {:error, DSPex.Error.t()}
  def setup(%__MODULE__{} = e, config, proposals) do
    blob = :erlang.term_to_binary(proposals)

    case call(e, fn id -> {:optim_setup, id, e.job, config, blob} end) do
      {:ok, :ok} -> :ok
      other -> other
    end
  end

  @doc "Adds a QUEUE batch of `n` candidates scored on `examples` (`:all` or indices)."
  @spec add_batch(t, pos_integer, :all | [non_neg_integer], term) ::
          {:ok, non_neg_integer} | {:error, DSPex.Error.t()}
  def add_batch(%__MODULE__{} = e, n, examples, term) do
    blob = :erlang.term_to_binary(term)

    case call(e, fn id -> {:optim_batch, id, e.job, n, examples, blob} end) do
      {:ok, {:batch, index}} -> {:ok, index}
      other -> other
    end
  end

  @doc """
  The next trial: `{:ok, {:trial, %{number:, kind:, params:, examples:, counts_for_best:}}}`,
  `{:ok, :need}` (QUEUE: add a batch) or `{:ok, :done}` (every planned trial told).
  """
  @spec ask(t) :: {:ok, {:trial, map} | :need | :done} | {:error, DSPex.Error.t()}
  def ask(%__MODULE__{} = e), do: call(e, fn id -> {:optim_ask, id, e.job} end)

  @doc """
  Records the outstanding trial's score (`:failed` for a trial whose run raised), its
  usage (`%{lm_calls:, prompt_tokens:, completion_tokens:, cost:}`) and a term kept in
  the journal (per-example scores, feedback). Synced before it returns. Returns the
  engine's status (see `status/1`).
  """
  @spec tell(t, pos_integer, number | :failed, map, term) ::
          {:ok, map} | {:error, DSPex.Error.t()}
  def tell(%__MODULE__{} = e, number, score, usage, tail \\ nil) do
    tail = if tail == nil, do: "", else: :erlang.term_to_binary(tail)

    case call(e, fn id -> {:optim_tell, id, e.job, number, score, usage, tail} end) do
      {:ok, {:told, status}} -> {:ok, status}
      other -> other
    end
  end

  @doc """
  `tell/5` and `ask/1` in one crossing (a trial boundary costs one round trip):
  `{:ok, status, next}` where `next` is what `ask/1` returns (`{:trial, trial}`,
  `:need`, `:done`) or `{:error, %DSPex.Error{}}` when the tell succeeded but the ask
  did not.
  """
  @spec tell_ask(t, pos_integer, number | :failed, map, term) ::
          {:ok, map, {:trial, map} | :need | :done | {:error, DSPex.Error.t()}}
          | {:error, DSPex.Error.t()}
  def tell_ask(%__MODULE__{} = e, number, score, usage, tail \\ nil) do
    tail = if tail == nil, do: "", else: :erlang.term_to_binary(tail)

    case call(e, fn id -> {:optim_tell_ask, id, e.job, number, score, usage, tail} end) do
      {:ok, {:told, status, {:error, type, message}}} ->
        {:ok, status, {:error, DSPex.Error.new(type, message, %{journal: e.path})}}

      {:ok, {:told, status, next}} ->
        {:ok, status, next}

      other ->
        other
    end
  end

  @doc "Journals a `:best` (the best program so far) or `:done` note, synced."
  @spec note(t, :best | :done, term) :: :ok | {:error, DSPex.Error.t()}
  def note(%__MODULE__{} = e, what, term) when what in [:best, :done] do
    blob = :erlang.term_to_binary(term)

    case call(e, fn id -> {:optim_note, id, e.job, what, blob} end) do
      {:ok, :ok} -> :ok
      other -> other
    end
  end

  @doc """
  The engine's counters: `%{asked, told, objective_told, num_trials, planned,
  outstanding, finished, best_number, best_score, usage}`.
  """
  @spec status(t) :: {:ok, map} | {:error, DSPex.Error.t()}
  def status(%__MODULE__{} = e) do
    case call(e, fn id -> {:optim_status, id, e.job} end) do
      {:ok, {:status, s}} -> {:ok, s}
      other -> other
    end
  end

  @doc "Closes the job (its journal) and the port."
  @spec close(t) :: :ok
  def close(%__MODULE__{} = e) do
    _ = call(e, fn id -> {:optim_close, id, e.job} end, 10_000)
    stop(e.pid)
  end

  defp stop(pid) do
    GenServer.stop(pid, :normal, 10_000)
  catch
    :exit, _ -> :ok
  end

  # ------------------------------------------------------------------ calls

  defp call(engine, fun, timeout \\ @call_timeout)

  defp call(%__MODULE__{pid: pid, path: path}, fun, timeout),
    do: call_pid(pid, path, fun, timeout)

  defp call_pid(pid, path, fun, timeout) do
    GenServer.call(pid, {:cmd, fun, timeout}, :infinity)
  catch
    :exit, _ -> {:error, lost(path, nil)}
  end

  # ------------------------------------------------------------------ server
  # One process owns the port: it traps exits, so a port that dies (kill -9, EPIPE)
  # becomes an :engine_lost reply instead of an exit signal in the job's process; its
  # link to the opener closes the port (and so the journal's lock) when the job dies.

  @impl true
  def init({exe, path}) do
    Process.flag(:trap_exit, true)

    port =
      Port.open({:spawn_executable, exe}, [:binary, {:packet, 4}, :exit_status, :use_stdio, :hide])

    os_pid =
      case Port.info(port, :os_pid) do
        {:os_pid, p} -> p
        _ -> nil
      end

    {:ok, %{port: port, os_pid: os_pid, path: path, waiting: nil, down: nil}}
  rescue
    e -> {:stop, Exception.message(e)}
  end

  @impl true
  def handle_call(:os_pid, _from, st), do: {:reply, st.os_pid, st}

  def handle_call({:cmd, _fun, _timeout}, _from, %{down: status} = st) when status != nil do
    {:reply, {:error, lost(st.path, status)}, st}
  end

  def handle_call({:cmd, fun, timeout}, from, st) do
    id = System.unique_integer([:positive, :monotonic])
    Port.command(st.port, :erlang.term_to_binary(fun.(id)))
    timer = Process.send_after(self(), {:timeout, id, timeout}, timeout)
    {:noreply, %{st | waiting: {id, from, timer}}}
  rescue
    ArgumentError -> {:reply, {:error, lost(st.path, nil)}, st}
  end

  @impl true
  def handle_info({port, {:data, bin}}, %{port: port} = st) do
    case :erlang.binary_to_term(bin, [:safe]) do
      {:log, level, message} ->
        Logger.log(level, "dspex_port (optimizer engine): #{message}")
        {:noreply, st}

      {:optim, id, result} ->
        {:noreply, answer(st, id, {:ok, result})}

      {:error, id, type, message, info} ->
        {:noreply,
         answer(
           st,
           id,
           {:error, DSPex.Error.new(type, message, Map.put(info, :journal, st.path))}
         )}

      _ ->
        {:noreply, st}
    end
  end

  def handle_info({port, {:exit_status, status}}, %{port: port} = st) do
    st = %{st | down: status}

    case st.waiting do
      {id, _, _} -> {:noreply, answer(st, id, {:error, lost(st.path, status)})}
      nil -> {:noreply, st}
    end
  end

  def handle_info({:timeout, id, timeout}, st) do
    err =
      DSPex.Error.new(:timeout, "the optimizer engine did not answer within #{timeout} ms", %{
        journal: st.path
      })

    {:noreply, answer(st, id, {:error, err})}
  end

  def handle_info({:EXIT, port, _reason}, %{port: port} = st) do
    st = %{st | down: st.down || :closed}

    case st.waiting do
      {id, _, _} -> {:noreply, answer(st, id, {:error, lost(st.path, nil)})}
      nil -> {:noreply, st}
    end
  end

  def handle_info({:EXIT, _other, reason}, st), do: {:stop, reason, st}
  def handle_info(_msg, st), do: {:noreply, st}

  @impl true
  def terminate(_reason, st) do
    if st.down == nil do
      try do
        Port.close(st.port)
      catch
        _, _ -> :ok
      end
    end

    :ok
  end

  defp answer(%{waiting: {id, from, timer}} = st, id, reply) do
    Process.cancel_timer(timer)
    GenServer.reply(from, reply)
    %{st | waiting: nil}
  end

  defp answer(st, _id, _reply), do: st

  defp lost(path, status) do
    DSPex.Error.new(
      :engine_lost,
      "the optimizer engine's port exited#{if is_integer(status), do: " (status #{status})", else: ""}; " <>
        "the journal holds every trial told so far",
      %{journal: path, exit_status: status}
    )
  end

  defp decode_event({:run, blob}), do: {:run, term(blob)}
  defp decode_event({:best, blob}), do: {:best, term(blob)}
  defp decode_event({:done, blob}), do: {:done, term(blob)}
  defp decode_event({:setup, config, blob}), do: {:setup, config, term(blob)}
  defp decode_event({:batch, i, n, blob}), do: {:batch, i, n, term(blob)}
  defp decode_event({:asked, trial}), do: {:asked, trial}
  defp decode_event({:told, n, score, usage, blob}), do: {:told, n, score, usage, term(blob)}

  defp term(""), do: nil
  defp term(blob), do: :erlang.binary_to_term(blob, [:safe])

  # The journal's own spec, read from its first record, to say which settings differ.
  defp explain_spec(%DSPex.Error{} = e, path, spec) do
    with {:ok,
          <<"DSPEXJNL", _::binary-size(8), "DXJR", len::little-32, _::binary-size(16),
            theirs::binary-size(len), _::binary>>} <- read_head(path),
         {:ok, %{} = theirs} <- DSPex.JSON.decode(theirs),
         {:ok, %{} = ours} <- DSPex.JSON.decode(spec) do
      keys = (Map.keys(theirs) ++ Map.keys(ours)) |> Enum.uniq() |> Enum.sort()
      differ = Enum.filter(keys, &(Map.get(theirs, &1) != Map.get(ours, &1)))

      %{
        e
        | message:
            "the journal #{path} belongs to a different job (these settings differ: " <>
              Enum.join(differ, ", ") <>
              "); resume with the original program, data and settings, or use a new journal path",
          details: Map.merge(e.details, %{differ: differ, journal_spec: theirs})
      }
    else
      _ -> e
    end
  end

  defp read_head(path) do
    with {:ok, f} <- File.open(path, [:read, :binary]) do
      data = IO.binread(f, 1_048_576)
      File.close(f)
      if is_binary(data), do: {:ok, data}, else: :error
    end
  end

  @doc false
  def default_port_path do
    case System.get_env("DSPEX_PORT_PATH") do
      p when p in [nil, ""] ->
        case :code.priv_dir(:dspex) do
          {:error, _} -> Path.expand("priv/dspex_port")
          dir -> Path.join(to_string(dir), "dspex_port")
        end

      p ->
        p
    end
  end
end
