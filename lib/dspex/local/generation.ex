defmodule DSPex.Local.Generation do
  @moduledoc false
  # The generation loop over the native session: each `local_gen_step/2` call runs on a
  # dirty CPU scheduler for about `slice_ms` (at least one prompt chunk or one token) and
  # returns the new token ids and the text that became final, so the loop can stream,
  # stop on request and never hold a scheduler for long.
  #
  # `run/4` loops in the calling process; `start/4` runs the loop in a worker process
  # that sends `{ref, {:delta, text, ids}}`, then `{ref, {:done, result}}` or
  # `{ref, {:error, error}}` to the caller, stops when the caller exits (monitor) or
  # sends `cancel/1`, and dies with nothing left behind (the session is a resource the
  # VM frees).

  alias DSPex.{Error, NIF}

  @type result :: %{
          tokens: [non_neg_integer],
          text: binary,
          finish_reason: :stop | :length | :context_full | :cancelled,
          usage: map,
          seed: non_neg_integer
        }

  @doc false
  @spec run(DSPex.Local.Model.t(), [integer], map, (binary, [integer] -> any)) ::
          {:ok, result} | {:error, Error.t()}
  def run(model, ids, params, on_delta) do
    with {:ok, gen} <- new(model, ids, params) do
      loop(gen, params.slice_ms, on_delta, fn -> :continue end, {[], []})
      |> finish(ids, params)
    end
  end

  @doc false
  @spec start(DSPex.Local.Model.t(), [integer], map, pid) :: {:ok, reference, pid}
  def start(model, ids, params, caller) do
    ref = make_ref()
    {:ok, pid} = Task.start(fn -> worker(model, ids, params, caller, ref) end)
    Process.put({:dspex_local_stream, ref}, pid)
    {:ok, ref, pid}
  end

  defp worker(model, ids, params, caller, ref) do
    mref = Process.monitor(caller)

    check = fn ->
      receive do
        {:DOWN, ^mref, :process, _, _} -> :halt
        {^ref, :cancel} -> :cancel
      after
        0 -> :continue
      end
    end

    run = fn ->
      try do
        with {:ok, gen} <- new(model, ids, params) do
          loop(gen, params.slice_ms, &send(caller, {ref, {:delta, &1, &2}}), check, {[], []})
          |> finish(ids, params)
        end
      rescue
        e -> {:error, Error.new(:inference, "generation failed: " <> Exception.message(e))}
      end
    end

    reply =
      DSPex.Telemetry.span([:dspex, :local, :stream], %{prompt_tokens: length(ids)}, fn ->
        r = run.()

        meta =
          case r do
            {:ok, res} -> %{finish_reason: res.finish_reason, usage: res.usage}
            {:error, e} -> %{error: e.type}
            :halt -> %{finish_reason: :caller_exited}
          end

        {r, meta}
      end)

    case reply do
      {:ok, result} -> send(caller, {ref, {:done, result}})
      {:error, e} -> send(caller, {ref, {:error, e}})
      :halt -> :ok
    end
  end

  @doc false
  @spec cancel(reference) :: :ok
  def cancel(ref) do
    case Process.delete({:dspex_local_stream, ref}) do
      pid when is_pid(pid) -> send(pid, {ref, :cancel})
      nil -> :ok
    end

    :ok
  end

  @doc false
  # The native generation (local_gen_new/3) for the validated params; `batched: true`
  # gives it a one-row context scratch (a batch evaluates it, DSPex.Local.Batcher).
  @spec new(DSPex.Local.Model.t(), [integer], map) :: {:ok, reference} | {:error, Error.t()}
  def new(model, ids, params) do
    native =
      Map.take(params, [
        :temperature,
        :top_k,
        :top_p,
        :min_p,
        :repeat_penalty,
        :repeat_last_n,
        :frequency_penalty,
        :presence_penalty,
        :seed,
        :max_tokens,
        :n_ctx,
        :stop,
        :ignore_eos,
        :grammar,
        :batched
      ])

    case NIF.guard(fn -> NIF.local_gen_new(model.ref, ids, native) end) do
      {:ok, gen} -> {:ok, gen}
      {:error, reason} -> {:error, NIF.wrap_error(reason)}
    end
  end

  defp loop(gen, slice_ms, on_delta, check, {toks, texts}) do
    case check.() do
      :continue ->
        case NIF.local_gen_step(gen, slice_ms * 1.0) do
          {status, ids, text} ->
            if ids != [] or text != "", do: on_delta.(text, ids)
            acc = {[ids | toks], [text | texts]}

            case status do
              :running -> loop(gen, slice_ms, on_delta, check, acc)
              {:done, reason} -> {:done, reason, acc}
            end

          {:error, reason} ->
            {:error, NIF.wrap_error(reason)}
        end

      :cancel ->
        {:done, :cancelled, {toks, texts}}

      :halt ->
        :halt
    end
  end

  defp finish({:done, reason, {toks, texts}}, prompt, params) do
    tokens = toks |> Enum.reverse() |> Enum.concat()
    n = length(prompt)
    m = length(tokens)

    {:ok,
     %{
       tokens: tokens,
       text: texts |> Enum.reverse() |> IO.iodata_to_binary(),
       finish_reason: reason,
       usage: %{prompt_tokens: n, completion_tokens: m, total_tokens: n + m},
       seed: params.seed
     }}
  end

  defp finish(other, _, _), do: other
end
