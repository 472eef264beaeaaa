defmodule DSPex.Server do
  use Supervisor
  require Logger

  alias DSPex.Server.{HTTP, Keys, Metrics, Programs}

  @schema DSPex.Options.schema!(
            name: [type: :atom, default: __MODULE__, doc: "Registered name of the server."],
            port: [type: :non_neg_integer, default: 4000, doc: "TCP port (`0`: any free one)."],
            bind: [
              type: :string,
              default: "127.0.0.1",
              doc: "Address to listen on (`\"0.0.0.0\"` for every interface)."
            ],
            programs: [
              type: {:or, [:map, :keyword]},
              default: %{},
              doc: "`%{name => spec}` (see `DSPex.Server.Programs`)."
            ],
            programs_dir: [
              type: {:or, [:string, nil]},
              doc: "Directory of `NAME.json` saved states (and `NAME.program.json` specs)."
            ],
            reload_interval_ms: [
              type: :non_neg_integer,
              default: 1_000,
              doc: "How often the directory is checked for changes (`0`: never)."
            ],
            lm: [
              type: {:or, [:struct, :atom, nil]},
              doc: "Default LM of the programs' predictors (else `DSPex.configure/1`'s)."
            ],
            models: [
              type: {:or, [{:in, [:registry]}, :map, :keyword]},
              default: :registry,
              doc:
                "LMs served by `/v1/chat/completions`: `:registry` (every named LM) or `%{name => lm}`."
            ],
            api_keys: [
              type: {:or, [:list, nil]},
              secret: true,
              doc:
                "API keys (`DSPex.Server.Keys`); `nil`: no authentication (then bind to loopback)."
            ],
            rate: [type: :number, default: 10, doc: "Default requests per second per key."],
            burst: [type: :pos_integer, default: 20, doc: "Default bucket size per key."],
            max_concurrency_per_key: [
              type: :pos_integer,
              default: 8,
              doc: "Default requests in flight per key."
            ],
            public: [
              type: {:list, {:in, [:health, :metrics]}},
              default: [:health, :metrics],
              doc: "Endpoints that need no key."
            ],
            request_timeout_ms: [
              type: :pos_integer,
              default: 60_000,
              doc: "Deadline of one program or LM call (then 504)."
            ],
            batch_max_items: [type: :pos_integer, default: 100, doc: "Items per batch."],
            batch_concurrency: [
              type: :pos_integer,
              default: 8,
              doc: "Items of one batch run at once."
            ],
            max_connections: [
              type: :pos_integer,
              default: 200,
              doc: "Open connections (beyond: 503)."
            ],
            header_timeout_s: [
              type: :pos_integer,
              default: 10,
              doc: "Time to send the request head; also the idle keep-alive time."
            ],
            min_bytes_per_second: [
              type: {:or, [:pos_integer, {:in, [false]}]},
              default: 64,
              doc: "Slowest accepted sender (closes body drippers), `false` to turn off."
            ],
            max_header_bytes: [type: :pos_integer, default: 16_384, doc: "Request head size."],
            max_uri_bytes: [type: :pos_integer, default: 4_096, doc: "Request URI size."],
            max_body_bytes: [type: :pos_integer, default: 1_048_576, doc: "Request body size."]
          )

  @moduledoc """
  Serves DSPex programs — and the LMs behind them — over HTTP.

      children = [
        {DSPex.Server,
         port: 4000,
         programs: %{"jtbd" => JTBD.Analyzer, "qa" => {DSPex.ChainOfThought, "question -> answer"}},
         programs_dir: "priv/programs",          # NAME.json saved states, hot-reloaded
         lm: DSPex.LM.new("openai/gpt-4o-mini"),
         api_keys: [[id: "team-a", hash: "sha256:..."]]}
      ]

      $ curl -s localhost:4000/v1/programs/qa -H "authorization: Bearer $KEY" \\
          -d '{"question": "Why is the sky blue?"}'
      {"program":"qa","version":"3f2a...","prediction":{"reasoning":"...","answer":"..."},"usage":{...}}

  or from a shell: `mix dspex.serve --port 4000 --programs-dir priv/programs`.

  Endpoints (`DSPex.Server.Router`): `POST /v1/programs/:name` (and `/batch`, and
  streaming with server-sent events), OpenAI-compatible `POST /v1/chat/completions` and
  `GET /v1/models` (`DSPex.Server.OpenAI`), `GET /health`, `GET /metrics` (Prometheus,
  `DSPex.Server.Metrics`). Programs: `DSPex.Server.Programs`. API keys, rate and
  concurrency limits: `DSPex.Server.Keys`. Transport limits (connections, timeouts,
  sizes): `DSPex.Server.HTTP`.

  ## Why OTP's httpd

  The server is OTP's `:inets` httpd (no Hex dependency, and no HTTP parsing of our
  own), with one request module. A prototype on the port program's stack — libuv with
  Debian's `http-parser` 2.9 — answered a hello world 4–6× faster than httpd on the
  same loopback (`wrk`, 32 connections), but a request to a program spends most of its
  time in the program (signature formatting and parsing, the LM call), and a C server
  would add a round trip through the port for every request; bookworm packages no
  maintained parser for it either (`llhttp` is absent, `http-parser` is archived). The
  figures are in the README; `bench/server.exs` measures the server against a bare
  httpd.

  ## The supervision tree

  `DSPex.Server` is a supervisor (`rest_for_one`): a table owner (key buckets, metrics,
  programs), the metrics' telemetry handler, a `Task.Supervisor` the programs run in,
  `DSPex.Server.Programs` (loading and hot reload), then httpd. Several servers can
  run side by side under different `name:`s.

  ## Options

  #{DSPex.Options.docs(@schema)}
  """

  @doc "The option schema of `start_link/1` (`DSPex.Options`)."
  @spec options_schema() :: DSPex.Options.schema()
  def options_schema, do: @schema

  @doc """
  Starts a server (see the module doc for the options). Raises `ArgumentError` on an
  invalid option.

  ## Examples

      iex> {:ok, pid} = DSPex.Server.start_link(name: :doc_server, port: 0,
      ...>   programs: %{"qa" => {DSPex.Predict, "question -> answer"}})
      iex> DSPex.Server.url(:doc_server, "/health") =~ ~r"^http://127.0.0.1:\\d+/health$"
      true
      iex> Supervisor.stop(pid)
      :ok
  """
  @spec start_link(keyword) :: Supervisor.on_start()
  def start_link(opts) do
    opts = DSPex.Options.validate!(opts, @schema, "DSPex.Server.start_link/1")
    # Checked here, in the caller: a bad key entry raises instead of killing it.
    ctx = context(opts)
    {:ok, _} = Application.ensure_all_started(:inets)
    # The supervisor keeps its init argument: only hashed keys (in ctx) go in.
    Supervisor.start_link(__MODULE__, {Keyword.delete(opts, :api_keys), ctx}, name: opts[:name])
  end

  @doc """
  The child spec for a supervision tree: `{DSPex.Server, opts}`. Keys given as `key:`
  are hashed here, so the spec — which supervisors print in progress and crash
  reports — holds no key.
  """
  @spec child_spec(keyword) :: Supervisor.child_spec()
  def child_spec(opts) do
    opts =
      case Keyword.fetch(opts, :api_keys) do
        {:ok, list} when is_list(list) ->
          Keyword.put(opts, :api_keys, Enum.map(list, &hash_entry/1))

        _ ->
          opts
      end

    %{
      id: Keyword.get(opts, :name, __MODULE__),
      start: {__MODULE__, :start_link, [opts]},
      type: :supervisor
    }
  end

  defp hash_entry(entry) when is_map(entry), do: entry |> Map.to_list() |> hash_entry()

  defp hash_entry(entry) when is_list(entry) do
    case Keyword.pop(entry, :key) do
      {key, rest} when is_binary(key) and key != "" -> Keyword.put(rest, :hash, Keys.hash(key))
      _ -> entry
    end
  end

  defp hash_entry(other), do: other

  @impl true
  def init({opts, ctx}) do
    name = opts[:name]

    if ctx.keys == nil and ctx.bind not in ["127.0.0.1", "::1", "localhost"] do
      Logger.warning(
        "DSPex.Server #{inspect(name)} listens on #{ctx.bind} without API keys: anyone who reaches it can run its programs"
      )
    end

    :persistent_term.put({__MODULE__, name}, ctx)

    tables = [
      {ctx.keys_table, [:set, write_concurrency: true, read_concurrency: true]},
      {ctx.metrics, [:set, write_concurrency: true, read_concurrency: true]},
      {ctx.programs_table, [:set, read_concurrency: true]}
    ]

    children = [
      {DSPex.TableOwner, name: table(name, :tables), tables: tables},
      {Metrics, table: ctx.metrics},
      {Task.Supervisor, name: ctx.task_sup},
      {Programs,
       table: ctx.programs_table,
       metrics: ctx.metrics,
       dir: opts[:programs_dir],
       specs: opts[:programs],
       interval: opts[:reload_interval_ms]},
      HTTP.child_spec(ctx)
    ]

    Supervisor.init(children, strategy: :rest_for_one, max_restarts: 5, max_seconds: 10)
  end

  defp context(opts) do
    name = opts[:name]

    keys =
      case opts[:api_keys] do
        nil ->
          nil

        list ->
          Keys.entries(list,
            rate: opts[:rate],
            burst: opts[:burst],
            max_concurrency: opts[:max_concurrency_per_key]
          )
      end

    models =
      case opts[:models] do
        :registry -> :registry
        m -> Map.new(m, fn {k, v} -> {to_string(k), v} end)
      end

    %{
      name: name,
      port: opts[:port],
      bind: opts[:bind],
      lm: opts[:lm],
      models: models,
      keys: keys,
      public: opts[:public],
      request_timeout_ms: opts[:request_timeout_ms],
      batch_max_items: opts[:batch_max_items],
      batch_concurrency: opts[:batch_concurrency],
      max_connections: opts[:max_connections],
      header_timeout_s: opts[:header_timeout_s],
      min_bytes_per_second: opts[:min_bytes_per_second],
      max_header_bytes: opts[:max_header_bytes],
      max_uri_bytes: opts[:max_uri_bytes],
      max_body_bytes: opts[:max_body_bytes],
      keys_table: table(name, :keys),
      metrics: table(name, :metrics),
      programs_table: table(name, :programs),
      task_sup: table(name, :tasks)
    }
  end

  # Names of a server's tables and processes: one server name, a handful of atoms.
  defp table(name, kind), do: :"#{inspect(name)}.#{kind}"

  @doc false
  # The running server's context (options, table and process names).
  def ctx(name), do: :persistent_term.get({__MODULE__, name})

  @doc """
  The TCP port the server listens on (the one picked for `port: 0`).
  """
  @spec port(atom) :: :inet.port_number()
  def port(name \\ __MODULE__) do
    {_, pid, _, _} = name |> Supervisor.which_children() |> List.keyfind(:httpd, 0)
    HTTP.port(pid)
  end

  @doc """
  The URL of `path` on the server, e.g. `DSPex.Server.url(MyServer, "/v1/programs/qa")`
  (`DSPex.Server.url("/health")` for the server named `DSPex.Server`).
  """
  @spec url(atom | binary, binary) :: binary
  def url(name \\ __MODULE__, path \\ "")

  def url(path, "") when is_binary(path), do: url(__MODULE__, path)

  def url(name, path) when is_atom(name) do
    host =
      case ctx(name).bind do
        "0.0.0.0" -> "127.0.0.1"
        "::" -> "[::1]"
        b -> if String.contains?(b, ":"), do: "[#{b}]", else: b
      end

    "http://#{host}:#{port(name)}#{path}"
  end

  @doc """
  Rescans the programs directory now (the poll does it every `reload_interval_ms`).
  """
  @spec reload(atom) :: :ok
  def reload(name \\ __MODULE__) do
    {_, pid, _, _} = name |> Supervisor.which_children() |> List.keyfind(Programs, 0)
    Programs.reload(pid)
  end
end
