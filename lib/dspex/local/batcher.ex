defmodule DSPex.Local.Batcher do
  @moduledoc false
  # Continuous batching of one model's generations (c_src/core/infer/batch.c): a driver
  # process per model owns the model's batch and calls the dirty NIF `local_batch_step/2`
  # in a loop; each call runs one forward pass over the batch (every decoding sequence's
  # next token plus prompt chunks of joining ones) and returns what each sequence
  # produced. Requests join between steps and leave when they finish, when their caller
  # exits (monitor) or on `{ref, :cancel}`; at most `max_seqs` decode at once, the rest
  # wait in a queue. Messages are handled between steps (`:step` is re-sent to self, so
  # it queues behind them).
  #
  # The driver's pid lives in the model resource (`local_driver/1`, set by compare-and-set
  # with `local_driver_claim/3`), so every process finds the same driver; a driver idle
  # for @idle_ms clears it and exits (then the model can be collected), and a request
  # that meets a driver on its way out starts the next one.
  #
  # Callers get the messages of DSPex.Local.generate_stream/3: `{ref, {:delta, text,
  # ids}}` (when streaming), then `{ref, {:done, result}}` or `{ref, {:error, error}}`.
  # A streamed generation's [:dspex, :local, :stream] span is emitted here (start at
  # join, stop when it ends), shaped like DSPex.Telemetry.span/3's.

  use GenServer

  alias DSPex.{Error, NIF, Telemetry}
  alias DSPex.Local.Generation

  @idle_ms 5_000
  @step_ms 1.0

  # ----------------------------------------------------------------------------------
  # Requests (in the caller's process)

  @doc false
  # Creates the generation (a dirty NIF: grammar matcher, parameters) and hands it to the
  # model's driver. Returns {:ok, ref, driver_pid} or {:error, %DSPex.Error{}}.
  @spec start(DSPex.Local.Model.t(), [integer], map, pid, boolean) ::
          {:ok, reference, pid} | {:error, Error.t()}
  def start(model, ids, params, caller, stream?) do
    with {:ok, gen} <- Generation.new(model, ids, Map.put(params, :batched, true)) do
      ref = make_ref()
      join(model, {gen, ref, caller, stream?, length(ids), params.seed}, 5)
    end
  end

  defp join(_model, _req, 0),
    do: {:error, Error.new(:inference, "could not reach the model's batch driver")}

  defp join(model, {_, ref, _, _, _, _} = req, tries) do
    pid = driver(model)

    try do
      :ok = GenServer.call(pid, {:join, req}, :infinity)
      {:ok, ref, pid}
    catch
      # the driver was on its way out (idle): the next one takes the request
      :exit, _ -> join(model, req, tries - 1)
    end
  end

  defp driver(model) do
    case NIF.local_driver(model.ref) do
      pid when is_pid(pid) ->
        if Process.alive?(pid), do: pid, else: start_driver(model, pid)

      nil ->
        start_driver(model, nil)
    end
  end

  defp start_driver(model, expected) do
    {:ok, pid} = GenServer.start(__MODULE__, model)

    if NIF.local_driver_claim(model.ref, expected, pid) do
      pid
    else
      GenServer.stop(pid)
      driver(model)
    end
  end

  @doc false
  # Waits for a batched generation's result in the caller (deltas are ignored).
  @spec await(reference, pid) :: {:ok, Generation.result()} | {:error, Error.t()}
  def await(ref, pid) do
    mon = Process.monitor(pid)

    receive do
      {^ref, {:done, r}} ->
        Process.demonitor(mon, [:flush])
        {:ok, r}

      {^ref, {:error, e}} ->
        Process.demonitor(mon, [:flush])
        {:error, e}

      {:DOWN, ^mon, :process, _, reason} ->
        {:error, Error.new(:inference, "the model's batch driver exited: #{inspect(reason)}")}
    end
  end

  # ----------------------------------------------------------------------------------
  # The driver

  @impl true
  def init(model) do
    {:ok, %{model: model, seqs: %{}, queue: :queue.new(), next_id: 1, stepping: false}, @idle_ms}
  end

  @impl true
  def handle_call({:join, {gen, ref, caller, stream?, n_prompt, seed}}, _from, st) do
    seq = %{
      gen: gen,
      ref: ref,
      caller: caller,
      mon: Process.monitor(caller),
      stream: stream?,
      n_prompt: n_prompt,
      seed: seed,
      toks: [],
      texts: [],
      t0: System.monotonic_time()
    }

    if stream?,
      do:
        Telemetry.execute(
          [:dspex, :local, :stream, :start],
          %{monotonic_time: seq.t0, system_time: System.system_time()},
          %{prompt_tokens: n_prompt, telemetry_span_context: ref}
        )

    st = %{st | queue: :queue.in(seq, st.queue)} |> admit() |> kick()
    {:reply, :ok, st}
  end

  @impl true
  def handle_info(:step, st) do
    result =
      Telemetry.span([:dspex, :local, :batch_step], %{active: map_size(st.seqs)}, fn ->
        r = NIF.local_batch_step(st.model.ref, @step_ms)
        {r, %{active: map_size(st.seqs), reported: if(is_list(r), do: length(r), else: 0)}}
      end)

    st =
      case result do
        {:error, reason} ->
          e = NIF.wrap_error(reason)
          Enum.each(st.seqs, fn {_, s} -> reply(s, {:error, e}) end)
          %{st | seqs: %{}}

        news ->
          Enum.reduce(news, st, &news/2)
      end

    %{st | stepping: false} |> admit() |> kick() |> noreply()
  end

  def handle_info({ref, :cancel}, st) when is_reference(ref) do
    case Enum.find(st.seqs, fn {_, s} -> s.ref == ref end) do
      {id, s} ->
        NIF.local_batch_leave(st.model.ref, s.gen)
        reply(s, {:done, result(s, :cancelled)})
        %{st | seqs: Map.delete(st.seqs, id)} |> admit() |> kick() |> noreply()

      nil ->
        noreply(%{st | queue: drop_queued(st.queue, &(&1.ref == ref), :cancelled)})
    end
  end

  def handle_info({:DOWN, mon, :process, _, _}, st) do
    case Enum.find(st.seqs, fn {_, s} -> s.mon == mon end) do
      {id, s} ->
        NIF.local_batch_leave(st.model.ref, s.gen)
        span_stop(s, %{finish_reason: :caller_exited})
        %{st | seqs: Map.delete(st.seqs, id)} |> admit() |> kick() |> noreply()

      nil ->
        noreply(%{st | queue: drop_queued(st.queue, &(&1.mon == mon), nil)})
    end
  end

  def handle_info(:timeout, st) do
    if map_size(st.seqs) == 0 and :queue.is_empty(st.queue) and
         NIF.local_driver_claim(st.model.ref, self(), nil) do
      {:stop, :normal, st}
    else
      noreply(st)
    end
  end

  def handle_info(_other, st), do: noreply(st)

  # one sequence's news from a step
  defp news({id, status, ids, text}, st) do
    case Map.fetch(st.seqs, id) do
      {:ok, s} ->
        if s.stream and (ids != [] or text != ""),
          do: send(s.caller, {s.ref, {:delta, text, ids}})

        s = %{s | toks: [ids | s.toks], texts: [text | s.texts]}

        case status do
          :running ->
            %{st | seqs: Map.put(st.seqs, id, s)}

          {:done, reason} ->
            reply(s, {:done, result(s, reason)})
            %{st | seqs: Map.delete(st.seqs, id)}
        end

      :error ->
        st
    end
  end

  defp reply(s, msg) do
    Process.demonitor(s.mon, [:flush])
    send(s.caller, {s.ref, msg})

    case msg do
      {:done, r} -> span_stop(s, %{finish_reason: r.finish_reason, usage: r.usage})
      {:error, e} -> span_stop(s, %{error: e.type})
    end
  end

  defp span_stop(%{stream: false}, _meta), do: :ok

  defp span_stop(s, meta) do
    now = System.monotonic_time()

    Telemetry.execute(
      [:dspex, :local, :stream, :stop],
      %{duration: now - s.t0, monotonic_time: now},
      Map.put(meta, :telemetry_span_context, s.ref)
    )
  end

  defp result(s, reason) do
    tokens = s.toks |> Enum.reverse() |> Enum.concat()
    m = length(tokens)

    %{
      tokens: tokens,
      text: s.texts |> Enum.reverse() |> IO.iodata_to_binary(),
      finish_reason: reason,
      usage: %{prompt_tokens: s.n_prompt, completion_tokens: m, total_tokens: s.n_prompt + m},
      seed: s.seed
    }
  end

  # queued requests join while the batch has seats
  defp admit(st) do
    max = st.model.max_seqs

    if map_size(st.seqs) < max do
      case :queue.out(st.queue) do
        {{:value, s}, q} ->
          case NIF.local_batch_join(st.model.ref, s.gen, st.next_id) do
            :ok ->
              admit(%{
                st
                | queue: q,
                  seqs: Map.put(st.seqs, st.next_id, s),
                  next_id: st.next_id + 1
              })

            {:error, reason} ->
              reply(s, {:error, NIF.wrap_error(reason)})
              admit(%{st | queue: q})
          end

        {:empty, _} ->
          st
      end
    else
      st
    end
  end

  defp drop_queued(q, pred, reason) do
    {gone, kept} = q |> :queue.to_list() |> Enum.split_with(pred)

    Enum.each(gone, fn s ->
      if reason,
        do: reply(s, {:done, result(s, reason)}),
        else: span_stop(s, %{finish_reason: :caller_exited})
    end)

    :queue.from_list(kept)
  end

  defp kick(%{stepping: true} = st), do: st

  defp kick(st) do
    if map_size(st.seqs) > 0 do
      send(self(), :step)
      %{st | stepping: true}
    else
      st
    end
  end

  # an empty driver waits @idle_ms for work, then leaves (handle_info(:timeout, _))
  defp noreply(st) do
    if map_size(st.seqs) == 0 and :queue.is_empty(st.queue) and not st.stepping,
      do: {:noreply, st, @idle_ms},
      else: {:noreply, st}
  end
end
