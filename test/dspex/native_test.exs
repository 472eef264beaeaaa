defmodule DSPex.NativeTest do
  use ExUnit.Case, async: true

  alias DSPex.Test.Wait

  test "the NIF library is loaded from priv" do
    assert DSPex.NIF.nif_loaded()
  end

  test "the port program answers a ping and exits on stdin EOF" do
    path = Path.join(:code.priv_dir(:dspex), "dspex_port")
    port = Port.open({:spawn_executable, path}, [:binary, {:packet, 4}, :exit_status, :use_stdio])
    Port.command(port, :erlang.term_to_binary({:ping, 42}))
    assert_receive {^port, {:data, data}}, 5_000
    assert {:pong, 42} == :erlang.binary_to_term(data, [:safe])
    {:os_pid, os_pid} = Port.info(port, :os_pid)
    Port.close(port)
    # Closing the port closes the program's stdin; it must exit on its own.
    assert Wait.until(fn -> not File.exists?("/proc/#{os_pid}/status") or zombie?(os_pid) end)
  end

  defp zombie?(pid) do
    case File.read("/proc/#{pid}/status") do
      {:ok, s} -> s =~ ~r/State:\s+Z/
      _ -> true
    end
  end
end
