defmodule DSPex.Server.LimitsTest do
  # Misbehaving clients over raw TCP: slow heads, dripped bodies, oversized requests,
  # too many connections. A slow or malicious client must not hold the server.
  use ExUnit.Case, async: false

  alias DSPex.Test.{HTTP, ServerPrograms, Wait}

  defp start(opts) do
    name = :"limits_test_#{System.unique_integer([:positive])}"

    start_supervised!(
      {DSPex.Server,
       Keyword.merge(
         [
           name: name,
           port: 0,
           lm: ServerPrograms.lm(%{answer: "ok"}),
           programs: %{"qa" => {DSPex.Predict, "question -> answer"}}
         ],
         opts
       )}
    )

    DSPex.Server.url(name)
  end

  defp ok?(url) do
    match?({200, _}, HTTP.post_json(url <> "/v1/programs/qa", %{question: "?"}))
  end

  test "a body over max_body_bytes is refused with 413 before it is sent" do
    url = start(max_body_bytes: 1_000)
    sock = HTTP.connect(url)

    :ok =
      :gen_tcp.send(
        sock,
        "POST /v1/programs/qa HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" <>
          "Content-Length: 50000000\r\n\r\n"
      )

    assert {_, "HTTP/1.1 413" <> _} = HTTP.read_all(sock, 10_000)
    assert ok?(url)
  end

  test "a head over max_header_bytes is refused with 413" do
    url = start(max_header_bytes: 2_048)
    sock = HTTP.connect(url)
    big = String.duplicate("a", 4_000)
    :ok = :gen_tcp.send(sock, "GET /health HTTP/1.1\r\nHost: x\r\nX-Big: #{big}\r\n\r\n")
    assert {_, "HTTP/1.1 413" <> _} = HTTP.read_all(sock, 10_000)
  end

  test "a URI over max_uri_bytes is refused with 414" do
    url = start(max_uri_bytes: 256)
    sock = HTTP.connect(url)
    :ok = :gen_tcp.send(sock, "GET /#{String.duplicate("a", 1_000)} HTTP/1.1\r\nHost: x\r\n\r\n")
    assert {_, "HTTP/1.1 414" <> _} = HTTP.read_all(sock, 10_000)
  end

  test "slowloris: a head sent a byte at a time is cut off at header_timeout_s" do
    url = start(header_timeout_s: 1)
    sock = HTTP.connect(url)
    me = self()

    dripper =
      spawn_link(fn ->
        head = "GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: " <> String.duplicate("z", 200)

        result =
          Enum.reduce_while(:binary.bin_to_list(head), :ok, fn byte, :ok ->
            Process.sleep(100)

            case :gen_tcp.send(sock, <<byte>>) do
              :ok -> {:cont, :ok}
              err -> {:halt, err}
            end
          end)

        send(me, {:dripped, result})
      end)

    # While it drips, the server answers others at once.
    assert ok?(url)
    # httpd closes the connection once the head has not arrived in time.
    assert_receive {:dripped, {:error, _}}, 15_000
    Process.unlink(dripper)
  end

  test "a body dripped below min_bytes_per_second gets the connection closed" do
    url = start(min_bytes_per_second: 64)
    sock = HTTP.connect(url)

    :ok =
      :gen_tcp.send(
        sock,
        "POST /v1/programs/qa HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" <>
          "Content-Length: 1000\r\n\r\n{"
      )

    t0 = System.monotonic_time(:millisecond)

    closed =
      Enum.reduce_while(1..30, :open, fn _, _ ->
        Process.sleep(500)

        case :gen_tcp.send(sock, " ") do
          :ok ->
            case :gen_tcp.recv(sock, 0, 0) do
              {:error, :closed} -> {:halt, :closed}
              _ -> {:cont, :open}
            end

          {:error, _} ->
            {:halt, :closed}
        end
      end)

    assert closed == :closed
    # Well before the 15 s the drip would last (checks run each second after 3 s).
    assert System.monotonic_time(:millisecond) - t0 < 12_000
    assert ok?(url)
  end

  test "beyond max_connections a client gets 503; slow clients are shed and service resumes" do
    url = start(max_connections: 3, header_timeout_s: 2)

    # Three connections that never finish their request head.
    socks =
      for _ <- 1..3 do
        s = HTTP.connect(url)
        :ok = :gen_tcp.send(s, "GET /health HTTP/1.1\r\nHost: x\r\n")
        s
      end

    Wait.until(fn ->
      {status, _h, _b} = HTTP.request(:get, url <> "/health")
      status == 503
    end)

    # httpd drops them at the head deadline; then the server serves again.
    Wait.until(fn -> match?({200, _, _}, HTTP.request(:get, url <> "/health")) end, 10_000)
    Enum.each(socks, &:gen_tcp.close/1)
  end
end
