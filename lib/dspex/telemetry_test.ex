defmodule DSPex.TelemetryTest do
  @moduledoc """
  Test helper that captures DSPex telemetry events as messages, like
  `:telemetry_test.attach_event_handlers/2`.

  Each event arrives in the calling process as
  `{event_name, ref, measurements, metadata}`.

  ## Examples

      iex> ref = DSPex.TelemetryTest.attach_event_handlers(self(), [[:dspex, :doc, :stop]])
      iex> DSPex.Telemetry.execute([:dspex, :doc, :stop], %{duration: 1}, %{})
      iex> receive do {[:dspex, :doc, :stop], ^ref, %{duration: 1}, _} -> :got end
      :got
      iex> DSPex.TelemetryTest.detach(ref)
      :ok
  """

  @doc """
  Attaches a handler that sends every listed event to `dest`. Returns a reference that
  tags the messages and detaches the handler with `detach/1`.

  ## Examples

      iex> ref = DSPex.TelemetryTest.attach_event_handlers(self(), [[:dspex, :x]])
      iex> is_reference(ref)
      true
  """
  @spec attach_event_handlers(pid, [DSPex.Telemetry.event_name()]) :: reference
  def attach_event_handlers(dest, events) when is_pid(dest) and is_list(events) do
    ref = make_ref()

    :ok =
      DSPex.Telemetry.attach_many(
        {__MODULE__, ref},
        events,
        &__MODULE__.handle_event/4,
        {dest, ref}
      )

    ref
  end

  @doc """
  Detaches the handler created by `attach_event_handlers/2`.

  ## Examples

      iex> ref = DSPex.TelemetryTest.attach_event_handlers(self(), [[:dspex, :y]])
      iex> DSPex.TelemetryTest.detach(ref)
      :ok
  """
  @spec detach(reference) :: :ok | {:error, :not_found}
  def detach(ref), do: DSPex.Telemetry.detach({__MODULE__, ref})

  @doc false
  def handle_event(event, measurements, metadata, {dest, ref}) do
    send(dest, {event, ref, measurements, metadata})
  end
end
