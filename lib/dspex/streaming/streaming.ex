defmodule DSPex.Streaming do
  @moduledoc """
  Token streaming of a program's output fields, like DSPy's `streamify`.

  `stream/3` (also `DSPex.stream/3`) returns a lazy `Stream`. Enumerating it runs
  `DSPex.call/3` in a separate process with the streaming settings (`:stream_to`,
  `:stream_ref`); every predictor inside sends its LM's text deltas back, and a
  `DSPex.StreamListener` per predictor cuts them into `%DSPex.StreamChunk{}`s per output
  field (ChatAdapter `[[ ## field ## ]]` markers or JSONAdapter keys). Native tool calls
  stream as `%DSPex.ToolCallChunk{}`s. The last element is the final
  `%DSPex.Prediction{}` (whatever the program returned in `{:ok, value}`).

      DSPex.stream(qa, question: "Why is the sky blue?")
      |> Enum.each(fn
        %DSPex.StreamChunk{field: :answer, text: t} -> IO.write(t)
        %DSPex.Prediction{} = pred -> IO.puts("\\n" <> pred.answer)
        _ -> :ok
      end)

  Options: those below, plus everything `DSPex.call/3` takes.

  Cache hits produce no chunks, only the final prediction; an LM that does not stream
  (`DSPex.BaseLM.supports?/2`) sends its whole reply as one delta. Halting the enumeration early (`Enum.take/2`,
  `Stream.take_while/2`, ...) kills the running call, which cancels its HTTP request.
  Tracking scopes (`DSPex.track_usage/1`) and settings of the caller follow the call.
  A failure inside the call becomes an error that names what failed, not the data it
  carried (`DSPex.Error.describe/1`).
  """

  alias DSPex.{Error, StreamChunk, StreamListener}

  @options DSPex.Options.schema!(
             on_error: [
               type: {:in, [:raise, :yield]},
               default: :raise,
               doc:
                 "`:raise`: the `%DSPex.Error{}` is raised inside the enumeration; `:yield`: the last element is `{:error, %DSPex.Error{}}`."
             ],
             fields: [
               type: {:or, [{:list, :atom}, nil]},
               doc: "Only stream these output fields; the final prediction still has all of them."
             ],
             include_final: [
               type: :boolean,
               default: true,
               doc: "Yield the final prediction."
             ]
           )
  @own_keys DSPex.Options.keys(@options)

  @doc """
  Streams `program` on `inputs`. See the module doc.

  ## Options

  #{DSPex.Options.docs(@options)}

  ## Examples

      iex> lm = DSPex.LM.Scripted.new([%{answer: "Paris"}])
      iex> qa = DSPex.Predict.new("question -> answer", lm: lm)
      iex> items = DSPex.Streaming.stream(qa, question: "Capital of France?") |> Enum.to_list()
      iex> for %DSPex.StreamChunk{field: :answer, text: t} <- items, into: "", do: t
      "Paris"
      iex> List.last(items).answer
      "Paris"
  """
  @spec stream(struct, keyword | map, keyword) :: Enumerable.t()
  def stream(program, inputs, opts \\ []) do
    {own, call_opts} = Keyword.split(opts, @own_keys)
    own = DSPex.Options.validate!(own, @options, "DSPex.stream/3")

    Stream.resource(
      fn ->
        start(program, inputs, call_opts, own[:fields], own[:on_error], own[:include_final])
      end,
      &next/1,
      &stop/1
    )
  end

  defp start(program, inputs, call_opts, fields, on_error, include_final) do
    parent = self()
    ref = make_ref()
    snapshot = DSPex.Settings.capture()

    # Linked so that a consumer that dies takes the call (and its HTTP request) with it;
    # `stop/1` unlinks before killing it.
    {pid, mref} =
      :erlang.spawn_opt(
        fn ->
          DSPex.Settings.restore(snapshot)

          result =
            try do
              DSPex.Settings.with_settings([stream_to: parent, stream_ref: ref], fn ->
                DSPex.call(program, inputs, call_opts)
              end)
            rescue
              e in Error ->
                {:error, e}

              e ->
                {:error,
                 Error.new(:stream, "streamed call raised " <> Error.describe(e), %{
                   exception: e.__struct__
                 })}
            catch
              kind, reason ->
                {:error,
                 Error.new(:stream, "streamed call failed: #{kind} #{Error.describe(reason)}", %{
                   kind: kind
                 })}
            end

          send(parent, {ref, :result, result})
        end,
        [:link, :monitor]
      )

    %{
      ref: ref,
      pid: pid,
      mref: mref,
      listeners: %{},
      fields: fields,
      on_error: on_error,
      include_final: include_final,
      done: false
    }
  end

  defp next(%{done: true} = st), do: {:halt, st}

  defp next(%{ref: ref, mref: mref} = st) do
    receive do
      {:dspex_stream, ^ref, pred, {:delta, text}} when is_binary(text) ->
        l = Map.get_lazy(st.listeners, pred, fn -> new_listener(st) end)
        {chunks, l} = StreamListener.feed(l, text)
        {to_chunks(pred, chunks), %{st | listeners: Map.put(st.listeners, pred, l)}}

      {:dspex_stream, ^ref, pred, :start} ->
        # A new LM call of this predictor (retry, adapter fallback): fresh boundaries.
        case Map.fetch(st.listeners, pred) do
          {:ok, l} ->
            {[], %{st | listeners: Map.put(st.listeners, pred, StreamListener.reset(l))}}

          :error ->
            {[], st}
        end

      {:dspex_stream, ^ref, pred, {:tool_call_delta, %{} = piece}} ->
        {[struct(DSPex.ToolCallChunk, Map.put(piece, :predictor, pred))], st}

      {:dspex_stream, ^ref, _pred, _other} ->
        {[], st}

      {^ref, :result, result} ->
        Process.unlink(st.pid)
        Process.demonitor(mref, [:flush])
        flush_exit(st.pid)
        flushed = flush_listeners(st)
        st = %{st | done: true}

        case result do
          {:ok, value} ->
            {flushed ++ if(st.include_final, do: [value], else: []), st}

          {:error, %Error{} = e} ->
            finish_error(flushed, e, st)

          {:error, other} ->
            finish_error(
              flushed,
              Error.new(:stream, "streamed call failed: #{Error.describe(other)}"),
              st
            )

          other ->
            {flushed ++ if(st.include_final, do: [other], else: []), st}
        end

      {:DOWN, ^mref, :process, _pid, reason} ->
        finish_error(
          [],
          Error.new(:stream, "the streamed call exited: #{Error.describe(reason)}"),
          %{
            st
            | done: true
          }
        )
    end
  end

  defp finish_error(flushed, e, %{on_error: :yield} = st), do: {flushed ++ [{:error, e}], st}

  defp finish_error(_flushed, e, st) do
    stop(st)
    raise e
  end

  defp new_listener(%{fields: nil}), do: StreamListener.new()
  defp new_listener(%{fields: fields}), do: StreamListener.new(fields: fields)

  defp flush_listeners(st) do
    st.listeners
    |> Enum.sort_by(fn {pred, _} -> pred end)
    |> Enum.flat_map(fn {pred, l} ->
      {chunks, _} = StreamListener.finish(l)
      to_chunks(pred, chunks)
    end)
  end

  defp to_chunks(pred, chunks) do
    for {field, text, last?} <- chunks do
      %StreamChunk{predictor: pred, field: field_name(field), text: text, last?: last?}
    end
  end

  defp field_name(name) do
    String.to_existing_atom(name)
  rescue
    ArgumentError -> name
  end

  defp stop(%{pid: pid, mref: mref, ref: ref}) do
    Process.unlink(pid)
    Process.exit(pid, :kill)
    Process.demonitor(mref, [:flush])
    flush_exit(pid)
    flush(ref)
    :ok
  end

  # A consumer that traps exits may have received the runner's exit signal before the
  # unlink; drop it so it never shows up in the caller's mailbox.
  defp flush_exit(pid) do
    receive do
      {:EXIT, ^pid, _} -> :ok
    after
      0 -> :ok
    end
  end

  defp flush(ref) do
    receive do
      {:dspex_stream, ^ref, _, _} -> flush(ref)
      {^ref, :result, _} -> flush(ref)
    after
      0 -> :ok
    end
  end
end
