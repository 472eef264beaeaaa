# Port transport benchmark: DSPex.LM (cache off) through DSPex.Pool / dspex_port versus
# `wrk` and OTP's :httpc against the same loopback keep-alive server returning a tiny
# chat completion.
#
#     MIX_ENV=prod mix run bench/port.exs
#
# Prints requests/s at concurrency 1, 64 and 256, mean per-call latency at concurrency 1
# (and DSPex's overhead over wrk's), the ratios, and, with 50 ms server latency at
# concurrency 256, the achieved throughput as a percentage of the ideal 256 / 0.05 s.
# Runs in well under 90 s (BENCH_SECONDS per point, default 2.5).

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
      {:ok, {:http_request, _m, _uri, _v}} ->
        len = headers(s, 0)
        :ok = :inet.setopts(s, packet: :raw)
        if len > 0, do: {:ok, _} = :gen_tcp.recv(s, len)
        if latency > 0, do: Process.sleep(latency)

        case :gen_tcp.send(s, resp) do
          :ok -> conn(s, resp, latency)
          _ -> :gen_tcp.close(s)
        end

      _ ->
        :gen_tcp.close(s)
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

seconds =
  case Float.parse(System.get_env("BENCH_SECONDS", "2.5")) do
    {s, _} -> s
    :error -> 2.5
  end

{:ok, _} = Application.ensure_all_started(:inets)
{:ok, _} = Application.ensure_all_started(:dspex)

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
         {httpc_url, [{~c"authorization", ~c"Bearer sk-bench"}], ~c"application/json", req_body},
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
