defmodule Mix.Tasks.Dspex.Serve do
  @shortdoc "Serves DSPex programs and LMs over HTTP (DSPex.Server)"

  @moduledoc """
  Starts a `DSPex.Server` and runs until stopped.

      mix dspex.serve --programs-dir priv/programs --lm openai/gpt-4o-mini
      mix dspex.serve --port 8080 --bind 0.0.0.0 --api-key team-a:sha256:9f86d0...
      mix dspex.serve --gen-key          # prints a new key and the hash to configure
      echo -n "$KEY" | mix dspex.serve --hash-key

  The options of `config :dspex, :server, [...]` (any `DSPex.Server` option, e.g.
  `programs:`) are the base; the command line overrides them:

    * `--port N` (default 4000), `--bind ADDR` (default 127.0.0.1)
    * `--programs-dir DIR` — `NAME.json` saved states with `NAME.program.json` specs
      (see `DSPex.Server.Programs`), reloaded when they change (`--reload-ms N`,
      default 1000; 0 turns it off)
    * `--lm MODEL` — the programs' default LM: a model id (`openai/gpt-4o-mini`) or
      the name of an LM in `config :dspex, lms: [...]`
    * `--api-key ID:sha256:HEX` (repeatable) — a key by its hash (`--hash-key`
      prints it). Plain keys can come from the environment instead:
      `DSPEX_API_KEYS="team-a=KEY1,ci=KEY2"` (hashed at start, never printed). Without
      any key the server takes no authentication, which it allows only on loopback
      addresses unless `--insecure` is given.
    * `--timeout-ms N` — per-request deadline (default 60000)
  """

  use Mix.Task

  @switches [
    port: :integer,
    bind: :string,
    programs_dir: :string,
    reload_ms: :integer,
    lm: :string,
    api_key: :keep,
    timeout_ms: :integer,
    insecure: :boolean,
    hash_key: :boolean,
    gen_key: :boolean,
    no_wait: :boolean
  ]

  @impl Mix.Task
  def run(argv) do
    {opts, rest, invalid} = OptionParser.parse(argv, strict: @switches)

    cond do
      invalid != [] or rest != [] ->
        Mix.raise(
          "mix dspex.serve: unknown arguments #{inspect(rest ++ Enum.map(invalid, &elem(&1, 0)))}; see mix help dspex.serve"
        )

      opts[:gen_key] ->
        key = DSPex.Server.Keys.generate()
        Mix.shell().info("key:  #{key}\nhash: #{DSPex.Server.Keys.hash(key)}")

      opts[:hash_key] ->
        key = IO.read(:stdio, :eof) |> to_string() |> String.trim()
        if key == "", do: Mix.raise("--hash-key reads the key from standard input")
        Mix.shell().info(DSPex.Server.Keys.hash(key))

      true ->
        serve(opts)
    end
  end

  defp serve(opts) do
    Mix.Task.run("app.start")
    server_opts = server_options(opts, System.get_env("DSPEX_API_KEYS"))
    {:ok, pid} = DSPex.Server.start_link(server_opts)
    name = Keyword.get(server_opts, :name, DSPex.Server)

    Mix.shell().info(
      "DSPex.Server listening on #{DSPex.Server.url(name)} " <>
        "(#{if server_opts[:api_keys], do: "#{length(server_opts[:api_keys])} API key(s)", else: "no authentication"})"
    )

    if opts[:no_wait], do: {:ok, pid}, else: Process.sleep(:infinity)
  end

  @doc false
  # The DSPex.Server options for parsed command-line options and DSPEX_API_KEYS.
  def server_options(opts, env_keys) do
    base = Application.get_env(:dspex, :server, [])

    keys =
      Enum.map(Keyword.get_values(opts, :api_key), &parse_hashed/1) ++ parse_env_keys(env_keys)

    cli =
      [
        port: opts[:port],
        bind: opts[:bind],
        programs_dir: opts[:programs_dir],
        reload_interval_ms: opts[:reload_ms],
        request_timeout_ms: opts[:timeout_ms],
        lm: opts[:lm] && lm(opts[:lm]),
        api_keys: if(keys == [], do: nil, else: keys)
      ]
      |> Enum.reject(fn {_, v} -> is_nil(v) end)

    merged = Keyword.merge(base, cli)
    bind = Keyword.get(merged, :bind, "127.0.0.1")

    if merged[:api_keys] == nil and bind not in ["127.0.0.1", "::1", "localhost"] and
         opts[:insecure] != true do
      Mix.raise(
        "mix dspex.serve: binding #{bind} without API keys would let anyone run your programs; " <>
          "add --api-key or DSPEX_API_KEYS, or pass --insecure"
      )
    end

    merged
  end

  defp parse_hashed(arg) do
    case String.split(arg, ":", parts: 2) do
      [id, "sha256:" <> _ = hash] when id != "" -> [id: id, hash: hash]
      _ -> Mix.raise("--api-key takes ID:sha256:HEX (print a hash with --hash-key)")
    end
  end

  defp parse_env_keys(nil), do: []
  defp parse_env_keys(""), do: []

  defp parse_env_keys(text) do
    text
    |> String.split(",", trim: true)
    |> Enum.map(fn pair ->
      case String.split(String.trim(pair), "=", parts: 2) do
        [id, key] when id != "" and key != "" -> [id: id, key: key]
        _ -> Mix.raise("DSPEX_API_KEYS is ID=KEY pairs separated by commas")
      end
    end)
  end

  # A model id, or the name of a configured LM (matched as text: no atom is made).
  defp lm(spec) do
    if String.contains?(spec, "/") do
      DSPex.LM.new(spec)
    else
      case DSPex.LM.Registry.find(spec) do
        nil ->
          Mix.raise(
            "--lm #{spec}: not a model id (provider/model) nor a configured LM name; named LMs: #{inspect(DSPex.LM.Registry.names())}"
          )

        name ->
          name
      end
    end
  end
end
