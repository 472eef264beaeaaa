defmodule DSPex.PortTest do
  use ExUnit.Case, async: true

  require Logger
  alias DSPex.Test.LoopbackServer, as: LS

  setup do
    {:ok, srv} =
      LS.start_link(
        routes: %{
          "/ok" => %{status: 200, headers: [{"x-test", "1"}], body: "hello"},
          "/echo" => fn req -> %{status: 201, body: req.method <> " " <> req.body} end,
          "/big" => %{status: 200, body: :binary.copy("x", 3_000_000)},
          "/slow" => %{delay_ms: 5_000, body: "late"}
        }
      )

    {:ok, w} = DSPex.Port.start_link([])
    %{srv: srv, w: w}
  end

  test "unknown options raise ArgumentError listing the valid ones", %{w: w} do
    e = assert_raise ArgumentError, fn -> DSPex.Port.start_link(max_inflight: 3) end
    assert e.message =~ ":max_inflight"
    assert e.message =~ ":max_in_flight"

    assert_raise ArgumentError, ~r/:retry_on_port_exit/, fn ->
      DSPex.Port.request(w, %{url: "http://x/"}, retries: 1)
    end
  end

  test "the port's diagnostics go to Logger, not the console", %{w: w} do
    port = :sys.get_state(w).port

    log =
      ExUnit.CaptureLog.capture_log(fn ->
        Port.command(port, "not a term")
        assert :ok = DSPex.Port.ping(w)
        Logger.flush()
      end)

    assert log =~ "dspex_port (worker 1, os pid #{DSPex.Port.os_pid(w)}): ignored frame"
  end

  test "ping round trip", %{w: w} do
    assert :ok = DSPex.Port.ping(w)
    assert is_integer(DSPex.Port.os_pid(w))
  end

  test "plain request/response with headers and info", %{srv: srv, w: w} do
    assert {:ok, resp} = DSPex.Port.request(w, %{url: LS.url(srv, "/ok"), method: "GET"})
    assert resp.status == 200
    assert resp.body == "hello"
    assert {"x-test", "1"} in resp.headers
    assert {"content-length", "5"} in resp.headers
    assert %{attempts: 1, elapsed_us: us, retry_after_ms: nil, timeout: nil} = resp.info
    assert is_integer(us)
  end

  test "request body, method and headers reach the server", %{srv: srv, w: w} do
    req = %{
      url: LS.url(srv, "/echo"),
      method: "PUT",
      body: "payload",
      headers: [{"x-key", "secret"}]
    }

    assert {:ok, %{status: 201, body: "PUT payload"}} = DSPex.Port.request(w, req)
    [seen] = LS.requests(srv, "/echo")
    assert {"x-key", "secret"} in seen.headers
    refute List.keymember?(seen.headers, "expect", 0)
  end

  test "large bodies come back whole", %{srv: srv, w: w} do
    assert {:ok, %{status: 200, body: body}} =
             DSPex.Port.request(w, %{url: LS.url(srv, "/big"), method: "GET"})

    assert byte_size(body) == 3_000_000
  end

  test "many concurrent requests on one port reuse connections", %{srv: srv, w: w} do
    url = LS.url(srv, "/echo")

    results =
      1..200
      |> Task.async_stream(fn i -> DSPex.Port.request(w, %{url: url, body: "n#{i}"}) end,
        max_concurrency: 50
      )
      |> Enum.map(fn {:ok, r} -> r end)

    for {{:ok, %{status: 201, body: body}}, i} <- Enum.with_index(results, 1),
        do: assert(body == "POST n#{i}")

    assert length(results) == 200
    assert LS.connections(srv) <= 50
  end

  test "a malformed request is answered with :bad_request", %{w: w} do
    assert {:error, %DSPex.Error{type: :bad_request}} = DSPex.Port.request(w, %{method: "GET"})

    assert {:error, %DSPex.Error{type: :bad_request}} =
             DSPex.Port.request(w, %{url: "http://x/", headers: [{"a\r\nb", "c"}]})
  end

  test "caller deadline holds even when the server is slow", %{srv: srv, w: w} do
    assert {:error, %DSPex.Error{type: :timeout}} =
             DSPex.Port.request(w, %{url: LS.url(srv, "/slow"), method: "GET"}, timeout: 200)

    assert %{in_flight: 0} = wait_idle(w)
  end

  test "stdin EOF makes the port program exit (VM-death safety)" do
    path = Path.join(to_string(:code.priv_dir(:dspex)), "dspex_port")
    port = Port.open({:spawn_executable, path}, [:binary, {:packet, 4}, :exit_status, :use_stdio])
    {:os_pid, os_pid} = Port.info(port, :os_pid)
    # close our end of the pipes without killing the program: it must notice EOF and exit 0
    Port.close(port)
    assert wait_gone(os_pid, 200)
  end

  test "stdin EOF with requests in flight exits cleanly", %{srv: srv} do
    path = Path.join(to_string(:code.priv_dir(:dspex)), "dspex_port")
    port = Port.open({:spawn_executable, path}, [:binary, {:packet, 4}, :exit_status, :use_stdio])
    {:os_pid, os_pid} = Port.info(port, :os_pid)

    for id <- 1..20 do
      Port.command(
        port,
        :erlang.term_to_binary({:http, id, %{url: LS.url(srv, "/slow"), method: "GET"}})
      )
    end

    Port.close(port)
    assert wait_gone(os_pid, 200)
  end

  test "garbage and malformed commands never kill the port program" do
    _ = DSPex.Port.port_atoms()
    path = Path.join(to_string(:code.priv_dir(:dspex)), "dspex_port")
    port = Port.open({:spawn_executable, path}, [:binary, {:packet, 4}, :exit_status, :use_stdio])
    :rand.seed(:exsss, {1, 2, 3})

    for n <- 0..300 do
      Port.command(port, :crypto.strong_rand_bytes(rem(n, 64)))
    end

    malformed = [
      {:http, 1, "not a map"},
      {:http, 2, %{url: 123}},
      {:http, 3, %{"url" => "http://127.0.0.1:1/"}},
      {:http, 4, %{url: "http://127.0.0.1:1/", headers: [{"a"}]}},
      {:http, 5, %{url: "http://127.0.0.1:1/", headers: [{"a", 1}]}},
      {:http, 6, %{url: "http://127.0.0.1:1/", headers: :nope}},
      {:http, 7, %{url: "http://127.0.0.1:1/", max_retries: 10 ** 40}},
      {:http, 8, %{url: "http://127.0.0.1:1/", stream: :maybe}},
      {:http, 9, %{url: "ftp://127.0.0.1/", max_retries: 0}},
      {:http, 10, %{url: "http://127.0.0.1:1/", headers: [{"x-nul", <<0, 1>>}]}},
      {:http, -1, %{url: "http://x/"}},
      {:http, 10 ** 30, %{url: "http://x/"}},
      {:cancel, 999},
      {:bogus, 1},
      {:ping},
      [1, 2, 3],
      %{a: 1}
    ]

    for t <- malformed, do: Port.command(port, :erlang.term_to_binary(t))
    Port.command(port, :erlang.term_to_binary({:ping, 42}))

    replies = collect_until_pong(port, 42, [])
    errors = for {:error, id, type, _msg, _info} <- replies, do: {id, type}

    for id <- 1..8, do: assert({id, :bad_request} in errors)
    assert {9, :bad_request} in errors
    assert {10, :bad_request} in errors
    assert Port.info(port) != nil
    Port.close(port)
  end

  defp collect_until_pong(port, id, acc) do
    receive do
      {^port, {:data, d}} ->
        case :erlang.binary_to_term(d, [:safe]) do
          {:pong, ^id} -> Enum.reverse(acc)
          other -> collect_until_pong(port, id, [other | acc])
        end

      {^port, {:exit_status, s}} ->
        flunk("port exited with #{s}")
    after
      5_000 -> flunk("no pong")
    end
  end

  defp wait_idle(w, n \\ 100) do
    s = DSPex.Port.stats(w)

    if s.in_flight == 0 or n == 0 do
      s
    else
      Process.sleep(20)
      wait_idle(w, n - 1)
    end
  end

  defp wait_gone(_os_pid, 0), do: false

  defp wait_gone(os_pid, n) do
    if File.exists?("/proc/#{os_pid}") and not zombie?(os_pid) do
      Process.sleep(10)
      wait_gone(os_pid, n - 1)
    else
      true
    end
  end

  defp zombie?(os_pid) do
    case File.read("/proc/#{os_pid}/stat") do
      {:ok, stat} -> stat |> String.split(" ") |> Enum.at(2) == "Z"
      _ -> true
    end
  end
end
