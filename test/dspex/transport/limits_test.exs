defmodule DSPex.Transport.LimitsTest do
  # What the port refuses: replies over max_response_bytes (issue 8, defect 7) and
  # request bytes that would change the request on the wire (defect 8).
  use ExUnit.Case, async: true

  alias DSPex.Error
  alias DSPex.Test.LoopbackServer, as: LS

  @moduletag :capture_log

  setup do
    {:ok, srv} = LS.start_link(routes: %{"/ok" => %{body: "ok"}})
    {:ok, w} = DSPex.Port.start_link([])
    %{srv: srv, w: w}
  end

  defp get(srv, path, extra \\ %{}),
    do: Map.merge(%{url: LS.url(srv, path), method: "GET"}, extra)

  describe "max_response_bytes" do
    test "a body at the cap arrives whole; one byte more is :response_too_large", %{
      srv: srv,
      w: w
    } do
      LS.set_route(srv, "/b", %{body: :binary.copy("x", 1_000_000)})

      assert {:ok, %{status: 200, body: body}} =
               DSPex.Port.request(w, get(srv, "/b", %{max_response_bytes: 1_000_000}))

      assert byte_size(body) == 1_000_000

      assert {:error, %Error{type: :response_too_large, message: msg}} =
               DSPex.Port.request(w, get(srv, "/b", %{max_response_bytes: 999_999}))

      assert msg =~ "max_response_bytes (999999 bytes)"
    end

    test "an announced Content-Length over the cap is refused before the body is read", %{
      srv: srv,
      w: w
    } do
      # the server announces 4 MB and sends 10 bytes: reading would hang until a timeout
      LS.set_route(srv, "/lie", %{body: "0123456789", truncate: 4_000_000})

      assert {:error, %Error{type: :response_too_large}} =
               DSPex.Port.request(w, get(srv, "/lie", %{max_response_bytes: 1_000_000}),
                 timeout: 30_000
               )
    end

    test "a chunked body (no Content-Length) is cut at the cap", %{srv: srv, w: w} do
      LS.set_route(srv, "/c", %{chunks: List.duplicate(:binary.copy("y", 100_000), 30)})

      assert {:error, %Error{type: :response_too_large}} =
               DSPex.Port.request(w, get(srv, "/c", %{max_response_bytes: 1_000_000}))
    end

    test "the default cap is 32 MiB", %{srv: srv, w: w} do
      LS.set_route(srv, "/c", %{chunks: List.duplicate(:binary.copy("z", 1_048_576), 33)})

      assert {:error, %Error{type: :response_too_large, message: msg}} =
               DSPex.Port.request(w, get(srv, "/c"), timeout: 60_000)

      assert msg =~ "(33554432 bytes)"
    end

    test "a stream is cut at the cap after the events before it", %{srv: srv} do
      event = "data: #{String.duplicate("e", 90)}\n\n"
      LS.set_route(srv, "/s", %{flood: event})

      {:ok, h} =
        DSPex.Pool.stream(%{url: LS.url(srv, "/s"), method: "GET", max_response_bytes: 500_000})

      assert {events, %Error{type: :response_too_large}} = collect(h.ref, 0)
      assert events > 0 and events <= div(500_000, byte_size(event))
    end
  end

  describe "request bytes are checked before anything is sent" do
    test "CR/LF in the method never reaches the wire", %{srv: srv, w: w} do
      method = "GET /evil HTTP/1.1\r\nX-Injected: yes\r\nX-Pad:"

      assert {:error, %Error{type: :bad_request, message: msg}} =
               DSPex.Port.request(w, %{url: LS.url(srv, "/ok"), method: method})

      assert msg =~ "method must be an HTTP token"
      assert msg =~ "0x20 at offset 3"
      assert LS.connections(srv) == 0
    end

    test "method tokens with other separators are refused too", %{srv: srv, w: w} do
      for m <- ["GE T", "GET\t", "GET(", "G\"T", "", String.duplicate("A", 65)] do
        assert {:error, %Error{type: :bad_request}} =
                 DSPex.Port.request(w, %{url: LS.url(srv, "/ok"), method: m}),
               "method #{inspect(m)} was accepted"
      end

      assert {:ok, %{status: 200}} =
               DSPex.Port.request(w, %{url: LS.url(srv, "/ok"), method: "PATCH"})

      assert LS.count(srv, "/ok") == 1
    end

    test "a URL with NUL, CR/LF or spaces is refused, not truncated", %{srv: srv, w: w} do
      base = LS.url(srv, "/ok")

      for url <- [
            base <> <<0>> <> "/../admin",
            base <> "\r\nX: y",
            base <> " x",
            "http://",
            "http://:8080/x"
          ] do
        assert {:error, %Error{type: :bad_request, message: msg}} =
                 DSPex.Port.request(w, %{url: url, method: "GET"}),
               "url #{inspect(url)} was accepted"

        refute msg =~ "admin"
      end

      assert LS.connections(srv) == 0
    end

    test "header names must be tokens and values free of control characters; values are never quoted",
         %{srv: srv, w: w} do
      bad = [
        [{"x-key", "sk-secret\r\nX-Injected: yes"}],
        [{"x-key", "sk-secret" <> <<0>>}],
        [{"x-key", "sk-secret\n"}],
        [{"x key", "v"}],
        [{"x:key", "v"}],
        [{"", "v"}]
      ]

      for headers <- bad do
        assert {:error, %Error{type: :bad_request, message: msg}} =
                 DSPex.Port.request(w, %{url: LS.url(srv, "/ok"), headers: headers}),
               "headers #{inspect(headers)} were accepted"

        refute msg =~ "sk-secret"
      end

      assert LS.connections(srv) == 0

      # tabs and non-ASCII (obs-text) are legal in a value
      assert {:ok, %{status: 200}} =
               DSPex.Port.request(w, get(srv, "/ok", %{headers: [{"x-v", "a\tb é"}]}))
    end
  end

  defp collect(ref, n) do
    receive do
      {:dspex_http, ^ref, {:sse, events}} -> collect(ref, n + length(events))
      {:dspex_http, ^ref, {:stream_start, 200, _}} -> collect(ref, n)
      {:dspex_http, ^ref, {:error, e}} -> {n, e}
      {:dspex_http, ^ref, other} -> flunk("unexpected #{inspect(other)}")
    after
      20_000 -> flunk("no terminal message")
    end
  end
end
