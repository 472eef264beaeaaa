defmodule DSPex.TelemetrySpanTest do
  use ExUnit.Case, async: true

  doctest DSPex.Telemetry
  doctest DSPex.TelemetryTest
  doctest DSPex.Error

  alias DSPex.Telemetry

  defp capture(prefix) do
    DSPex.TelemetryTest.attach_event_handlers(self(), [
      prefix ++ [:start],
      prefix ++ [:stop],
      prefix ++ [:exception]
    ])
  end

  test "span emits start and stop shaped like :telemetry.span/3" do
    prefix = [:dspex, :test, :span_ok]
    ref = capture(prefix)

    assert :result ==
             Telemetry.span(prefix, %{who: :me}, fn -> {:result, %{extra: 1}, %{who: :me}} end)

    assert_received {[:dspex, :test, :span_ok, :start], ^ref, start_m, start_meta}
    assert is_integer(start_m.monotonic_time) and is_integer(start_m.system_time)
    assert start_meta.who == :me
    ctx = start_meta.telemetry_span_context
    assert is_reference(ctx)

    assert_received {[:dspex, :test, :span_ok, :stop], ^ref, stop_m, stop_meta}
    assert stop_m.duration >= 0 and is_integer(stop_m.monotonic_time)
    assert stop_m.extra == 1
    assert stop_meta.telemetry_span_context == ctx
    DSPex.TelemetryTest.detach(ref)
  end

  test "span emits exception with kind/reason/stacktrace and re-raises" do
    prefix = [:dspex, :test, :span_raise]
    ref = capture(prefix)

    assert_raise RuntimeError, "boom", fn ->
      Telemetry.span(prefix, %{id: 7}, fn -> raise "boom" end)
    end

    assert_received {[:dspex, :test, :span_raise, :exception], ^ref, m, meta}
    assert Map.keys(m) |> Enum.sort() == [:duration, :monotonic_time]
    assert meta.kind == :error
    assert %RuntimeError{message: "boom"} = meta.reason
    assert is_list(meta.stacktrace)
    assert meta.id == 7
    refute_received {[:dspex, :test, :span_raise, :stop], ^ref, _, _}

    catch_throw(Telemetry.span(prefix, %{}, fn -> throw(:t) end))
    assert_received {[:dspex, :test, :span_raise, :exception], ^ref, _, %{kind: :throw}}
    DSPex.TelemetryTest.detach(ref)
  end

  test "a failing handler is detached and never breaks the caller" do
    event = [:dspex, :test, :bad_handler]
    :ok = Telemetry.attach("bad-handler", event, fn _, _, _, _ -> raise "handler bug" end, nil)

    ExUnit.CaptureLog.capture_log(fn ->
      assert :ok == Telemetry.execute(event, %{n: 1}, %{})
    end)

    assert {:error, :not_found} == Telemetry.detach("bad-handler")
  end

  test "attach rejects duplicate handler ids" do
    f = fn _, _, _, _ -> :ok end
    assert :ok == Telemetry.attach("dup", [:dspex, :dup], f, nil)
    assert {:error, :already_exists} == Telemetry.attach("dup", [:dspex, :dup], f, nil)
    assert :ok == Telemetry.detach("dup")
  end
end
