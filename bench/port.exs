# Port transport benchmark: DSPex.LM (cache off) through DSPex.Pool / dspex_port versus
# `wrk` and OTP's :httpc against the same loopback keep-alive server returning a tiny
# chat completion; then the port under a flooding SSE stream and with a reply at the
# response-size cap.
#
#     MIX_ENV=prod mix run bench/port.exs
#     BENCH_PARTS=flood,cap MIX_ENV=prod mix run bench/port.exs   # only some parts
#     DSPEX_PORT_PATH=/tmp/old/dspex_port ...                     # another port binary
#
# throughput: requests/s at concurrency 1, 64 and 256, mean per-call latency at
# concurrency 1 (and DSPex's overhead over wrk's), the ratios, and, with 50 ms server
# latency at concurrency 256, the achieved throughput as a percentage of the ideal
# 256 / 0.05 s. Runs in well under 90 s (BENCH_SECONDS per point, default 2.5).
#
# flood: one stream from a server that writes SSE events back to back as fast as the
# socket takes them (no pacing), read by a consumer that discards them. For 8 s: the
# port's peak RSS (VmRSS samples every 100 ms; the port is killed above 1 GiB so a
# regression cannot eat the machine), ping round trips and a plain request on the same
# port every 250 ms, and when the stream's 5 s deadline fires.
#
# cap: the port's peak RSS (VmHWM) while it receives one reply of exactly 32 MiB (the
# default max_response_bytes) and hands it to the BEAM.

defmodule Bench.Server do
  @moduledoc false
  # Minimal HTTP/1.1 keep-alive server (one process per connection, the BEAM's C HTTP
  # packet parser), answering every request with a fixed chat completion after
  # `latency_ms`.

  @body ~s({"id":"c1","object":"chat.completion","model":"bench","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":1,"total_tokens":6}})

  def start(latency_ms) do
    {:ok, ls} =
      :gen_tcp.listen(0, [
        :binary,
        active: false,
        reuseaddr: true,
        ip: {127, 0, 0, 1},
        backlog: 4096,
        nodelay: true
      ])

    {:ok, port} = :inet.port(ls)

    resp =
      "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: #{byte_size(@body)}\r\n\r\n" <>
        @body

    pid = spawn(fn -> accept(ls, resp, latency_ms) end)
    :ok = :gen_tcp.controlling_process(ls, pid)
    {pid, port}
  end

  def stop({pid, _}), do: Process.exit(pid, :kill)

  defp accept(ls, resp, latency) do
    case :gen_tcp.accept(ls) do
      {:ok, s} ->
        c = spawn(fn -> receive(do: (:go -> conn(s, resp, latency))) end)
        :ok = :gen_tcp.controlling_process(s, c)
        send(c, :go)
        accept(ls, resp, latency)

      {:error, _} ->
        :ok
    end
  end

  defp conn(s, resp, latency) do
    :ok = :inet.setopts(s, packet: :http_bin)

    case :gen_tcp.recv(s, 0) do
      {:ok, {:http_request, _m, {:abs_path, path}, _v}} ->
        len = headers(s, 0)
        :ok = :inet.setopts(s, packet: :raw)
        if len > 0, do: {:ok, _} = :gen_tcp.recv(s, len)
        if latency > 0, do: Process.sleep(latency)

        case respond(s, path, resp) do
          :ok -> conn(s, resp, latency)
          _ -> :gen_tcp.close(s)
        end

      _ ->
        :gen_tcp.close(s)
    end
  end

  # "/flood": an endless SSE stream written back to back (64 KiB chunks of small
  # OpenAI-shaped events) until the client goes away. "/big/N": an N-byte body.
  defp respond(s, "/flood", _resp) do
    :ok =
      :gen_tcp.send(
        s,
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
      )

    event = ~s(data: {"choices":[{"index":0,"delta":{"content":"tok"}}]}\n\n)
    piece = :binary.copy(event, div(65_536, byte_size(event)))
    chunk = [Integer.to_string(byte_size(piece), 16), "\r\n", piece, "\r\n"]
    flood(s, chunk)
  end

  defp respond(s, "/big/" <> n, _resp) do
    size = String.to_integer(n)
    head = "HTTP/1.1 200 OK\r\ncontent-length: #{size}\r\n\r\n"
    :gen_tcp.send(s, [head, :binary.copy("x", size)])
  end

  defp respond(s, _path, resp), do: :gen_tcp.send(s, resp)

  defp flood(s, chunk) do
    case :gen_tcp.send(s, chunk) do
      :ok -> flood(s, chunk)
      err -> err
    end
  end

  defp headers(s, len) do
    case :gen_tcp.recv(s, 0) do
      {:ok, {:http_header, _, :"Content-Length", _, v}} -> headers(s, String.to_integer(v))
      {:ok, {:http_header, _, _, _, _}} -> headers(s, len)
      {:ok, :http_eoh} -> len
      _ -> exit(:normal)
    end
  end
end

defmodule Bench.Load do
  @moduledoc false
  # Runs `fun` in `c` concurrent loops for `seconds`; returns {requests_per_s, errors}.
  def run(c, seconds, fun) do
    deadline = System.monotonic_time(:millisecond) + round(seconds * 1000)
    parent = self()

    pids =
      for _ <- 1..c do
        spawn_link(fn -> send(parent, {:done, self(), loop(fun, deadline, 0, 0)}) end)
      end

    t0 = System.monotonic_time(:microsecond)

    {ok, err} =
      Enum.reduce(pids, {0, 0}, fn pid, {o, e} ->
        receive do
          {:done, ^pid, {o2, e2}} -> {o + o2, e + e2}
        end
      end)

    elapsed = (System.monotonic_time(:microsecond) - t0) / 1_000_000
    {ok / elapsed, err}
  end

  defp loop(fun, deadline, ok, err) do
    if System.monotonic_time(:millisecond) >= deadline do
      {ok, err}
    else
      case fun.() do
        :ok -> loop(fun, deadline, ok + 1, err)
        _ -> loop(fun, deadline, ok, err + 1)
      end
    end
  end
end

defmodule Bench.Wrk do
  @moduledoc false
  def available?, do: System.find_executable("wrk") != nil

  def run(url, c, seconds, body) do
    script =
      Path.join(System.tmp_dir!(), "dspex_bench_wrk_#{System.unique_integer([:positive])}.lua")

    File.write!(script, """
    wrk.method = "POST"
    wrk.body = [[#{body}]]
    wrk.headers["Content-Type"] = "application/json"
    """)

    threads = min(c, 2)

    {out, 0} =
      System.cmd(
        "wrk",
        ["-t#{threads}", "-c#{c}", "-d#{max(1, round(seconds))}s", "-s", script, url],
        stderr_to_stdout: true
      )

    File.rm(script)

    case Regex.run(~r/Requests\/sec:\s+([\d.]+)/, out) do
      [_, rps] -> String.to_float(rps)
      _ -> raise "could not parse wrk output:\n" <> out
    end
  end
end

defmodule Bench.Proc do
  @moduledoc false
  # A /proc/<pid>/status field in MiB (VmRSS: now, VmHWM: peak), or nil once it is gone.
  def mib(os_pid, field) do
    with {:ok, s} <- File.read("/proc/#{os_pid}/status"),
         [_, kb] <- Regex.run(~r/^#{field}:\s+(\d+) kB/m, s) do
      String.to_integer(kb) / 1024
    else
      _ -> nil
    end
  end

  def median([]), do: nil
  def median(l), do: l |> Enum.sort() |> Enum.at(div(length(l), 2))
end

defmodule Bench.Flood do
  @moduledoc false
  @seconds 8
  @stream_deadline_ms 5_000
  @kill_above_mib 1024

  def run(port) do
    pool = :bench_flood_pool
    {:ok, sup} = DSPex.Pool.start_link(name: pool, size: 1)
    %{workers: [%{os_pid: os_pid}]} = DSPex.Pool.stats(pool)
    base = "http://127.0.0.1:#{port}"
    parent = self()
    t0 = now()
    consumer = spawn(fn -> consume(parent, t0, 0) end)

    {:ok, _h} =
      DSPex.Pool.stream(
        # the largest cap, so the stream runs until its deadline
        %{url: base <> "/flood", method: "GET", max_response_bytes: 256 * 1024 * 1024},
        pool: pool,
        timeout: @stream_deadline_ms,
        to: consumer,
        circuit_breaker: false
      )

    prober = spawn_link(fn -> probe(pool, base <> "/v1/chat/completions", parent, []) end)
    {peak, killed?} = sample(os_pid, t0 + @seconds * 1000, 0.0, false)
    send(prober, :stop)

    probes =
      receive do
        {:probes, p} -> p
      after
        5_000 -> []
      end

    terminal =
      receive do
        {:terminal, ms, what, bytes} -> {ms, what, bytes}
      after
        0 ->
          send(consumer, {:report, self()})

          receive do
            {:bytes, b} -> {nil, :none, b}
          after
            1_000 -> {nil, :none, 0}
          end
      end

    Process.exit(consumer, :kill)
    Supervisor.stop(sup)
    report(peak, killed?, probes, terminal)
  end

  defp now, do: System.monotonic_time(:millisecond)

  defp consume(parent, t0, bytes) do
    receive do
      {:dspex_http, _ref, {:sse, events}} ->
        consume(parent, t0, Enum.reduce(events, bytes, fn {_e, d}, acc -> acc + byte_size(d) end))

      {:dspex_http, _ref, {:stream_start, _, _}} ->
        consume(parent, t0, bytes)

      {:dspex_http, _ref, {:error, e}} ->
        send(parent, {:terminal, now() - t0, e.type, bytes})

      {:dspex_http, _ref, other} ->
        send(parent, {:terminal, now() - t0, elem(other, 0), bytes})

      {:report, pid} ->
        send(pid, {:bytes, bytes})
    end
  end

  defp sample(os_pid, until, peak, killed?) do
    if now() >= until do
      {peak, killed?}
    else
      rss = Bench.Proc.mib(os_pid, "VmRSS") || 0.0

      killed? =
        if rss > @kill_above_mib and not killed? do
          System.cmd("kill", ["-9", Integer.to_string(os_pid)])
          true
        else
          killed?
        end

      Process.sleep(100)
      sample(os_pid, until, max(peak, rss), killed?)
    end
  end

  # Every 250 ms: a ping and a plain request through the same (only) port.
  defp probe(pool, url, parent, acc) do
    receive do
      :stop -> send(parent, {:probes, Enum.reverse(acc)})
    after
      250 ->
        {ping_us, ping} = :timer.tc(fn -> DSPex.Pool.ping(pool, 2_000) end)

        {req_us, req} =
          :timer.tc(fn ->
            DSPex.Pool.request(%{url: url, body: "{}"},
              pool: pool,
              timeout: 2_000,
              circuit_breaker: false
            )
          end)

        probe(pool, url, parent, [
          {ping == :ok, ping_us / 1000, match?({:ok, %{status: 200}}, req), req_us / 1000} | acc
        ])
    end
  end

  defp report(peak, killed?, probes, {ms, what, bytes}) do
    pings = for {ok, ms, _, _} <- probes, ok, do: ms
    reqs = for {_, _, ok, ms} <- probes, ok, do: ms
    n = length(probes)
    f = fn x -> if x, do: :erlang.float_to_binary(x * 1.0, decimals: 1), else: "n/a" end

    IO.puts(
      "  port peak RSS: #{f.(peak)} MiB#{if killed?, do: " (killed above 1 GiB)", else: ""}"
    )

    IO.puts(
      "  pings answered: #{length(pings)}/#{n} (median #{f.(Bench.Proc.median(pings))} ms, " <>
        "max #{f.(Enum.max(pings, fn -> nil end))} ms)"
    )

    IO.puts(
      "  plain requests on the same port: #{length(reqs)}/#{n} ok (median " <>
        "#{f.(Bench.Proc.median(reqs))} ms)"
    )

    IO.puts(
      "  stream: #{f.(bytes / 1_048_576)} MiB of event data delivered; terminal: " <>
        if(ms,
          do: "#{what} after #{ms} ms (deadline #{@stream_deadline_ms} ms)",
          else: "none within #{@seconds} s (deadline #{@stream_deadline_ms} ms)"
        )
    )
  end
end

defmodule Bench.Cap do
  @moduledoc false
  @size 32 * 1024 * 1024

  def run(port) do
    pool = :bench_cap_pool
    {:ok, sup} = DSPex.Pool.start_link(name: pool, size: 1)
    %{workers: [%{os_pid: os_pid}]} = DSPex.Pool.stats(pool)
    idle = Bench.Proc.mib(os_pid, "VmHWM")

    req = %{
      url: "http://127.0.0.1:#{port}/big/#{@size}",
      method: "GET",
      max_response_bytes: @size
    }

    {us, {:ok, %{status: 200, body: body}}} =
      :timer.tc(fn -> DSPex.Pool.request(req, pool: pool, timeout: 60_000) end)

    true = byte_size(body) == @size
    peak = Bench.Proc.mib(os_pid, "VmHWM")
    Supervisor.stop(sup)

    IO.puts(
      "  32 MiB reply: port peak RSS #{Float.round(peak, 1)} MiB (idle #{Float.round(idle, 1)} MiB, " <>
        "+#{Float.round(peak - idle, 1)} MiB = #{Float.round((peak - idle) / 32, 2)}x the body), " <>
        "#{Float.round(us / 1000, 1)} ms"
    )
  end
end

seconds =
  case Float.parse(System.get_env("BENCH_SECONDS", "2.5")) do
    {s, _} -> s
    :error -> 2.5
  end

{:ok, _} = Application.ensure_all_started(:inets)
{:ok, _} = Application.ensure_all_started(:dspex)

parts =
  System.get_env("BENCH_PARTS", "throughput,flood,cap")
  |> String.split(",", trim: true)

if "throughput" in parts do
  server = Bench.Server.start(0)
  {_, port} = server
  base = "http://127.0.0.1:#{port}/v1"
  url = base <> "/chat/completions"
  messages = [%{role: "user", content: "ping"}]

  lm =
    DSPex.LM.new("openai/bench", api_base: base, api_key: "sk-bench", cache: false, num_retries: 0)

  req_body = DSPex.JSON.encode!(%{model: "bench", messages: messages})

  dspex_call = fn ->
    case DSPex.LM.request(lm, messages) do
      {:ok, _} -> :ok
      other -> other
    end
  end

  :ok =
    :httpc.set_options(
      max_sessions: 512,
      max_keep_alive_length: 1_000_000,
      keep_alive_timeout: 120_000
    )

  httpc_url = String.to_charlist(url)

  httpc_call = fn ->
    case :httpc.request(
           :post,
           {httpc_url, [{~c"authorization", ~c"Bearer sk-bench"}], ~c"application/json",
            req_body},
           [timeout: 10_000],
           body_format: :binary
         ) do
      {:ok, {{_, 200, _}, _, body}} ->
        {:ok, _} = DSPex.JSON.decode(body)
        :ok

      other ->
        other
    end
  end

  # Warm up connections and code paths.
  for _ <- 1..50, do: dspex_call.()
  for _ <- 1..50, do: httpc_call.()

  IO.puts(
    "DSPex port transport benchmark (#{System.schedulers_online()} schedulers, #{seconds} s per point)"
  )

  IO.puts("server: loopback keep-alive, tiny chat completion; DSPex.LM cache off, 0 retries\n")

  wrk? = Bench.Wrk.available?()
  unless wrk?, do: IO.puts("wrk not found: skipping the wrk comparison (apt-get install wrk)\n")

  rows =
    for c <- [1, 64, 256] do
      {dspex_rps, dspex_err} = Bench.Load.run(c, seconds, dspex_call)
      {httpc_rps, httpc_err} = Bench.Load.run(c, seconds, httpc_call)
      wrk_rps = if wrk?, do: Bench.Wrk.run(url, c, seconds, req_body), else: nil

      if dspex_err + httpc_err > 0,
        do: IO.puts("  (c=#{c}: errors dspex=#{dspex_err} httpc=#{httpc_err})")

      {c, dspex_rps, httpc_rps, wrk_rps}
    end

  fmt = fn
    nil -> "      n/a"
    x -> String.pad_leading(:erlang.float_to_binary(x * 1.0, decimals: 0), 9)
  end

  ratio = fn
    _, nil -> "   n/a"
    a, b -> String.pad_leading(:erlang.float_to_binary(a / b, decimals: 2), 6)
  end

  IO.puts(
    "concurrency |  DSPex.LM req/s |   :httpc req/s |      wrk req/s | DSPex/httpc | DSPex/wrk"
  )

  for {c, d, h, w} <- rows do
    IO.puts(
      "#{String.pad_leading(to_string(c), 11)} | #{fmt.(d)}       | #{fmt.(h)}      | #{fmt.(w)}      |      #{ratio.(d, h)} |    #{ratio.(d, w)}"
    )
  end

  {_, d1, h1, w1} = hd(rows)

  IO.puts(
    "\nper-call latency at concurrency 1 (mean): DSPex.LM #{Float.round(1.0e6 / d1, 1)} us, :httpc #{Float.round(1.0e6 / h1, 1)} us" <>
      if(w1,
        do:
          ", wrk #{Float.round(1.0e6 / w1, 1)} us; DSPex overhead over wrk #{Float.round(1.0e6 / d1 - 1.0e6 / w1, 1)} us per call",
        else: ""
      )
  )

  # The LM layer's own cost (request building, JSON encode/decode, parsing, telemetry,
  # usage): interleaved single calls, DSPex.LM.request vs DSPex.Pool.request of the same
  # bytes; medians are robust to a noisy shared machine.
  raw_req = %{
    url: url,
    method: "POST",
    headers: [{"content-type", "application/json"}, {"authorization", "Bearer sk-bench"}],
    body: req_body,
    max_retries: 0
  }

  pairs =
    for _ <- 1..2000 do
      {a, {:ok, _}} = :timer.tc(fn -> DSPex.Pool.request(raw_req, timeout: 600_000) end)
      {b, {:ok, _}} = :timer.tc(fn -> DSPex.LM.request(lm, messages) end)
      {a, b}
    end

  median = fn l -> l |> Enum.sort() |> Enum.at(div(length(l), 2)) end
  {raw_t, lm_t} = Enum.unzip(pairs)

  IO.puts(
    "median single call: DSPex.Pool.request #{median.(raw_t)} us, DSPex.LM.request #{median.(lm_t)} us " <>
      "(LM layer: #{median.(lm_t) - median.(raw_t)} us per call)"
  )

  Bench.Server.stop(server)

  # 50 ms server latency at concurrency 256: how close to 256 / 0.05 s = 5120 req/s?
  slow = Bench.Server.start(50)
  {_, sport} = slow

  slm =
    DSPex.LM.new("openai/bench",
      api_base: "http://127.0.0.1:#{sport}/v1",
      api_key: "sk-bench",
      cache: false,
      num_retries: 0
    )

  slow_call = fn ->
    case DSPex.LM.request(slm, messages) do
      {:ok, _} -> :ok
      other -> other
    end
  end

  for _ <- 1..5, do: slow_call.()
  {slow_rps, slow_err} = Bench.Load.run(256, max(seconds, 3.0), slow_call)
  ideal = 256 / 0.05

  slow_wrk =
    if wrk?,
      do:
        Bench.Wrk.run(
          "http://127.0.0.1:#{sport}/v1/chat/completions",
          256,
          max(seconds, 3.0),
          req_body
        ),
      else: nil

  IO.puts(
    "\n50 ms server latency, concurrency 256: DSPex.LM #{round(slow_rps)} req/s = " <>
      "#{Float.round(100 * slow_rps / ideal, 1)} % of ideal #{round(ideal)} req/s" <>
      if(slow_wrk,
        do: " (wrk: #{round(slow_wrk)} req/s = #{Float.round(100 * slow_wrk / ideal, 1)} %)",
        else: ""
      ) <>
      if(slow_err > 0, do: " [#{slow_err} errors]", else: "")
  )

  Bench.Server.stop(slow)
end

if "flood" in parts or "cap" in parts do
  server = Bench.Server.start(0)
  {_, port} = server

  if "flood" in parts do
    IO.puts("\nflooding SSE stream, one port (#{System.get_env("DSPEX_PORT_PATH") || "priv"}):")
    Bench.Flood.run(port)
  end

  if "cap" in parts do
    IO.puts("\nreply at the response-size cap:")
    Bench.Cap.run(port)
  end

  Bench.Server.stop(server)
end
