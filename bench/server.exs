# DSPex.Server under load: 10 000 requests with `wrk` against a program whose LM is
# scripted (so the figures are the server's and DSPex's, not a model's), next to the
# same load against a bare OTP httpd answering a fixed JSON body — the peer whose
# HTTP stack DSPex.Server is built on.
#
#     MIX_ENV=prod mix run bench/server.exs      # make bench installs wrk first
#
# Env: REQUESTS (10000), CONNECTIONS (32), THREADS (2). Prints, per target, requests/s,
# p50/p99 latency and the error count (must be 0), the ratios, and the in-process cost
# of the same program call without HTTP.

defmodule Bench.Hello do
  @moduledoc false
  # The peer: OTP's httpd with one request module returning a fixed body (TCP_NODELAY
  # as DSPex.Server sets it; see DSPex.Server.HTTP).
  require Record
  Record.defrecordp(:mod, Record.extract(:mod, from_lib: "inets/include/httpd.hrl"))

  @body ~s({"prediction":{"answer":"Paris"}})

  def unquote(:do)(m) do
    :inet.setopts(mod(m, :socket), nodelay: true)
    :counters.add(:persistent_term.get(__MODULE__), 1, 1)

    {:proceed,
     [
       {:response,
        {:response,
         [
           code: 200,
           content_type: ~c"application/json",
           content_length: Integer.to_charlist(byte_size(@body))
         ], @body}}
     ]}
  end

  def start do
    :persistent_term.put(__MODULE__, :counters.new(1, [:write_concurrency]))
    root = String.to_charlist(System.tmp_dir!())

    {:ok, pid} =
      :inets.start(
        :httpd,
        [
          port: 0,
          bind_address: {127, 0, 0, 1},
          server_name: ~c"hello",
          server_root: root,
          document_root: root,
          modules: [__MODULE__],
          max_clients: 1000
        ],
        :stand_alone
      )

    [{{:httpd_instance_sup, _, port, _}, _, _, _}] = Supervisor.which_children(pid)
    "http://127.0.0.1:#{port}"
  end

  def served, do: :counters.get(:persistent_term.get(__MODULE__), 1)
end

defmodule Bench.Wrk do
  @moduledoc false
  # wrk has no request-count limit: each thread stops itself after its share of the
  # requests (Lua), and once the server has answered them all the bench sends wrk
  # SIGINT, on which wrk stops its clock and prints its summary. Non-2xx replies count
  # as errors.

  @lua """
  local limit = tonumber(os.getenv("WRK_PER_THREAD"))
  local key = os.getenv("WRK_KEY")
  wrk.method = "POST"
  wrk.body = '{"question": "What is the capital of France?"}'
  wrk.headers["Content-Type"] = "application/json"
  if key and key ~= "" then wrk.headers["Authorization"] = "Bearer " .. key end
  local n = 0
  response = function(status, headers, body)
    n = n + 1
    if n >= limit then wrk.thread:stop() end
  end
  done = function(summary, latency, requests)
    local e = summary.errors
    io.write(string.format("RESULT requests=%d duration_us=%d errors=%d non2xx=%d p50_us=%d p99_us=%d\\n",
      summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
      latency:percentile(50), latency:percentile(99)))
  end
  """

  # `served` returns how many requests the target has answered so far.
  def run(url, requests, conns, threads, key, served) do
    script = Path.join(System.tmp_dir!(), "dspex_bench_server.lua")
    File.write!(script, @lua)
    before = served.()

    port =
      Port.open({:spawn_executable, System.find_executable("wrk")}, [
        :binary,
        :exit_status,
        :stderr_to_stdout,
        args: ["-t#{threads}", "-c#{conns}", "-d300s", "--timeout", "10s", "-s", script, url],
        env: [
          {~c"WRK_PER_THREAD", String.to_charlist(to_string(div(requests, threads)))},
          {~c"WRK_KEY", String.to_charlist(key || "")}
        ]
      ])

    {:os_pid, os_pid} = Port.info(port, :os_pid)
    wait_until(fn -> served.() - before >= requests end)
    System.cmd("kill", ["-INT", to_string(os_pid)])
    out = collect(port, "")

    [line] = for l <- String.split(out, "\n"), String.starts_with?(l, "RESULT "), do: l

    for kv <- String.split(String.trim_leading(line, "RESULT ")), into: %{} do
      [k, v] = String.split(kv, "=")
      {String.to_atom(k), String.to_integer(v)}
    end
  end

  defp wait_until(fun) do
    unless fun.() do
      Process.sleep(2)
      wait_until(fun)
    end
  end

  defp collect(port, acc) do
    receive do
      {^port, {:data, d}} -> collect(port, acc <> d)
      {^port, {:exit_status, _}} -> acc
    end
  end
end

unless System.find_executable("wrk") do
  IO.puts("bench/server.exs needs wrk: run `tools/install-deps.sh --bench` (make bench does)")
  System.halt(1)
end

requests = String.to_integer(System.get_env("REQUESTS", "10000"))
conns = String.to_integer(System.get_env("CONNECTIONS", "32"))
threads = String.to_integer(System.get_env("THREADS", "2"))

DSPex.configure(disable_history: true)
lm = DSPex.LM.Scripted.new([%{answer: "Paris"}], cycle: true)
key = DSPex.Server.Keys.generate()

{:ok, _} =
  DSPex.Server.start_link(
    name: :bench_server,
    port: 0,
    lm: lm,
    programs: %{"qa" => {DSPex.Predict, "question -> answer"}},
    api_keys: [
      [id: "bench", key: key, rate: 1.0e9, burst: 1_000_000_000, max_concurrency: 10_000]
    ],
    max_connections: 1_000
  )

server_url = DSPex.Server.url(:bench_server, "/v1/programs/qa")
hello_url = Bench.Hello.start() <> "/v1/programs/qa"

# In-process: the same program call without HTTP (what a request does besides HTTP).
qa = DSPex.Predict.new("question -> answer")
n_direct = 2_000

DSPex.with_settings([lm: lm], fn ->
  for _ <- 1..200, do: {:ok, _} = DSPex.call(qa, question: "warm up")
end)

{direct_us, _} =
  :timer.tc(fn ->
    DSPex.with_settings([lm: lm], fn ->
      for _ <- 1..n_direct,
          do: {:ok, _} = DSPex.call(qa, question: "What is the capital of France?")
    end)
  end)

# Requests DSPex.Server has answered (its own metrics table).
server_served = fn ->
  DSPex.Server.ctx(:bench_server).metrics
  |> :ets.match({{:requests, :_, :_}, :"$1"})
  |> List.flatten()
  |> Enum.sum()
end

# Warm-up runs, then the measured ones.
_ = Bench.Wrk.run(server_url, 1_000, conns, threads, key, server_served)
_ = Bench.Wrk.run(hello_url, 1_000, conns, threads, nil, &Bench.Hello.served/0)
server = Bench.Wrk.run(server_url, requests, conns, threads, key, server_served)
hello = Bench.Wrk.run(hello_url, requests, conns, threads, nil, &Bench.Hello.served/0)

rps = fn r -> r.requests / (r.duration_us / 1_000_000) end
ms = fn us -> :erlang.float_to_binary(us / 1000, decimals: 2) end

{load, _} = System.cmd("cat", ["/proc/loadavg"])

IO.puts("""

DSPex.Server vs bare OTP httpd — #{requests} POSTs each, wrk -t#{threads} -c#{conns}, 127.0.0.1
machine: #{System.schedulers_online()} schedulers, load average #{load |> String.split() |> Enum.take(3) |> Enum.join(" ")}

| target | requests | errors | req/s | p50 | p99 |
|---|---|---|---|---|---|
| DSPex.Server: key check + Predict (scripted LM) | #{server.requests} | #{server.errors + server.non2xx} | #{round(rps.(server))} | #{ms.(server.p50_us)} ms | #{ms.(server.p99_us)} ms |
| OTP httpd, fixed JSON (peer) | #{hello.requests} | #{hello.errors + hello.non2xx} | #{round(rps.(hello))} | #{ms.(hello.p50_us)} ms | #{ms.(hello.p99_us)} ms |

throughput ratio DSPex.Server / httpd: #{:erlang.float_to_binary(rps.(server) / rps.(hello), decimals: 2)}
p50 ratio: #{:erlang.float_to_binary(server.p50_us / max(hello.p50_us, 1), decimals: 2)}, p99 ratio: #{:erlang.float_to_binary(server.p99_us / max(hello.p99_us, 1), decimals: 2)}
in-process Predict call (no HTTP): #{round(direct_us / n_direct)} µs each
""")

if server.errors + server.non2xx > 0 do
  IO.puts("FAIL: DSPex.Server answered #{server.errors + server.non2xx} requests with errors")
  System.halt(1)
end
