defmodule DSPex.Server.Programs do
  @moduledoc """
  The programs a `DSPex.Server` serves, and their hot reload.

  ## Where a program comes from

  A program has a name (`[A-Za-z0-9_-]`, at most 64 characters: it is a URL segment)
  and is built from a **spec**, then — when the programs directory holds `NAME.json` —
  the saved state in that file is applied with `DSPex.Program.load/3` (DSPy's save
  format: optimized instructions, demos, per-predictor LMs).

  The spec comes from the server's `programs:` option:

      programs: %{
        "jtbd" => JTBD.Analyzer,                                  # a `use DSPex.Module` module (built with new/0)
        "qa" => {DSPex.ChainOfThought, "question -> answer"},     # a predictor and its signature
        "triage" => {DSPex.Predict, "ticket -> queue", temperature: 0.0},
        "rag" => fn -> MyApp.RAG.new(k: 5) end,                   # any builder
        "fixed" => DSPex.Predict.new("q -> a")                    # a built program
      }

  or, for a program that only exists in the directory, from a sidecar file
  `NAME.program.json` next to `NAME.json`:

      {"module": "JTBD.Analyzer"}
      {"predictor": "ChainOfThought", "signature": "question -> answer"}

  A sidecar names an **existing** module that `use`s `DSPex.Module` (looked up without
  creating atoms; anything else is refused) or one of the predictors `Predict` and
  `ChainOfThought`. A spec in `programs:` wins over a sidecar.

  ## Hot reload

  Every `reload_interval_ms` (default 1000; `0` turns polling off) the directory is
  listed and each program's files are compared by size, modification time and inode.
  A changed, new or removed file rebuilds that program; requests in flight keep the
  version they started with. A version that fails to load (bad JSON, a state that does
  not fit the spec) leaves the previous version serving and is reported by
  `GET /health` and the `dspex_server_program_reloads_total{outcome="error"}` metric.
  Write a new version atomically (write a temporary file, then rename it over the old
  one), as `DSPex.Program.save/2` followed by `File.rename/2` does.

  ## Inputs

  The JSON keys of a request are untrusted: they are matched against the input field
  names of the program's predictors (for a module: the union over its predictors),
  never turned into atoms. `inputs/1` returns that map.
  """
  use GenServer
  require Logger

  alias DSPex.Error

  @name_re ~r/\A[A-Za-z0-9_-]{1,64}\z/
  @sidecar ".program.json"
  @predictors %{"Predict" => DSPex.Predict, "ChainOfThought" => DSPex.ChainOfThought}

  @typedoc "A loaded program."
  @type entry :: %{
          name: binary,
          program: struct,
          inputs: %{binary => atom},
          version: binary,
          source: :config | :directory,
          loaded_at: DateTime.t()
        }

  @doc false
  def start_link(opts), do: GenServer.start_link(__MODULE__, opts)

  @doc false
  def child_spec(opts), do: %{id: __MODULE__, start: {__MODULE__, :start_link, [opts]}}

  @doc "The loaded program called `name` (a binary from a URL), or `nil`."
  @spec lookup(atom, binary) :: entry | nil
  def lookup(table, name) when is_binary(name) do
    case :ets.lookup(table, {:program, name}) do
      [{_, entry}] -> entry
      [] -> nil
    end
  end

  @doc "Every loaded program, by name."
  @spec list(atom) :: [entry]
  def list(table) do
    for {{:program, _}, entry} <- :ets.tab2list(table), do: entry
  end

  @doc "Programs that failed to (re)load: `%{name => %{type:, message:}}`."
  @spec failures(atom) :: %{binary => map}
  def failures(table) do
    for {{:failure, name}, f} <- :ets.tab2list(table), into: %{}, do: {name, f}
  end

  @doc "Rescans the directory now (what the poll does); returns when done."
  @spec reload(pid) :: :ok
  def reload(pid), do: GenServer.call(pid, :scan, 60_000)

  @doc """
  The input names a program accepts: `%{"question" => :question}` — the input fields of
  its predictors.

  ## Examples

      iex> DSPex.Server.Programs.inputs(DSPex.ChainOfThought.new("context, question -> answer"))
      %{"context" => :context, "question" => :question}
  """
  @spec inputs(struct) :: %{binary => atom}
  def inputs(program) do
    for {_, p} <- DSPex.Module.named_predictors(program),
        f <- p.signature.inputs,
        into: %{},
        do: {Atom.to_string(f.name), f.name}
  end

  @doc """
  Builds a program from a spec (see the module doc). Returns `{:ok, program}` or
  `{:error, %DSPex.Error{type: :program_spec}}`.

  ## Examples

      iex> {:ok, p} = DSPex.Server.Programs.build({DSPex.Predict, "question -> answer"})
      iex> p.__struct__
      DSPex.Predict
      iex> {:error, e} = DSPex.Server.Programs.build(%{"module" => "No.Such.Module.Anywhere"})
      iex> e.type
      :program_spec
  """
  @spec build(term) :: {:ok, struct} | {:error, Error.t()}
  def build(spec) do
    {:ok, build!(spec)}
  rescue
    e in Error -> {:error, e}
    e -> {:error, spec_error("cannot build the program: " <> Error.describe(e))}
  end

  defp build!(%_{} = program), do: program
  defp build!(fun) when is_function(fun, 0), do: check_program!(fun.())
  defp build!({ctor, sig}) when is_atom(ctor), do: build!({ctor, sig, []})

  defp build!({ctor, sig, opts}) when is_atom(ctor) and is_list(opts) do
    unless Code.ensure_loaded?(ctor) and function_exported?(ctor, :new, 2),
      do: raise(spec_error("#{inspect(ctor)} has no new/2"))

    check_program!(ctor.new(sig, opts))
  end

  defp build!(mod) when is_atom(mod) do
    unless dspex_module?(mod),
      do: raise(spec_error("#{inspect(mod)} is not a module that uses DSPex.Module"))

    mod.new([])
  end

  # A sidecar's JSON: names only modules that exist and are programs.
  defp build!(%{"module" => name}) when is_binary(name) do
    mod =
      try do
        String.to_existing_atom("Elixir." <> String.trim_leading(name, "Elixir."))
      rescue
        ArgumentError -> raise spec_error("unknown module #{inspect(name)}")
      end

    build!(mod)
  end

  defp build!(%{"predictor" => kind, "signature" => sig}) when is_binary(sig) do
    case Map.fetch(@predictors, kind) do
      {:ok, ctor} ->
        ctor.new(sig, [])

      :error ->
        raise spec_error(
                "unknown predictor #{inspect(kind)}; one of #{inspect(Map.keys(@predictors))}"
              )
    end
  end

  defp build!(other) when is_map(other),
    do:
      raise(
        spec_error(
          "a program spec file holds {\"module\": ...} or {\"predictor\": ..., \"signature\": ...}"
        )
      )

  defp build!(other), do: raise(spec_error("not a program spec: " <> Error.describe(other)))

  defp dspex_module?(mod),
    do: Code.ensure_loaded?(mod) and function_exported?(mod, :__dspex_fields__, 0)

  defp check_program!(%_{} = p), do: p

  defp check_program!(other),
    do: raise(spec_error("the builder returned " <> Error.describe(other)))

  defp spec_error(msg), do: Error.new(:program_spec, msg, %{})

  # --- the process ----------------------------------------------------------------

  @impl true
  def init(opts) do
    s = %{
      table: Keyword.fetch!(opts, :table),
      metrics: Keyword.fetch!(opts, :metrics),
      dir: opts[:dir] && Path.expand(opts[:dir]),
      specs: Map.new(opts[:specs] || %{}, fn {k, v} -> {to_string(k), v} end),
      interval: Keyword.get(opts, :interval, 1_000),
      stamps: %{}
    }

    Enum.each(Map.keys(s.specs), fn name ->
      unless Regex.match?(@name_re, name) do
        raise ArgumentError,
              "program name #{inspect(name)}: use letters, digits, _ and - (at most 64)"
      end
    end)

    s = scan(s)
    schedule(s)
    {:ok, s}
  end

  @impl true
  def handle_call(:scan, _from, s), do: {:reply, :ok, scan(s)}

  @impl true
  def handle_info(:poll, s) do
    s = scan(s)
    schedule(s)
    {:noreply, s}
  end

  def handle_info(_, s), do: {:noreply, s}

  defp schedule(%{interval: i, dir: dir}) when is_integer(i) and i > 0 and is_binary(dir),
    do: Process.send_after(self(), :poll, i)

  defp schedule(_), do: :ok

  # Loads every program whose files changed since the last scan (all of them at first).
  defp scan(s) do
    names = s.specs |> Map.keys() |> Kernel.++(dir_names(s.dir)) |> Enum.uniq()
    gone = Map.keys(s.stamps) -- names

    for name <- gone do
      :ets.delete(s.table, {:program, name})
      :ets.delete(s.table, {:failure, name})
    end

    stamps =
      Enum.reduce(names, Map.drop(s.stamps, gone), fn name, acc ->
        stamp = stamp(s.dir, name)

        if Map.fetch(acc, name) == {:ok, stamp} do
          acc
        else
          load(s, name)
          Map.put(acc, name, stamp)
        end
      end)

    %{s | stamps: stamps}
  end

  defp dir_names(nil), do: []

  defp dir_names(dir) do
    case File.ls(dir) do
      {:ok, files} ->
        files
        |> Enum.flat_map(fn f ->
          cond do
            String.ends_with?(f, @sidecar) -> [String.replace_suffix(f, @sidecar, "")]
            String.ends_with?(f, ".json") -> [String.replace_suffix(f, ".json", "")]
            true -> []
          end
        end)
        |> Enum.filter(&Regex.match?(@name_re, &1))

      {:error, _} ->
        []
    end
  end

  defp stamp(nil, _name), do: nil
  defp stamp(dir, name), do: {stat(state_path(dir, name)), stat(sidecar_path(dir, name))}

  defp stat(path) do
    case File.stat(path, time: :posix) do
      {:ok, st} -> {st.size, st.mtime, st.inode}
      {:error, _} -> nil
    end
  end

  defp state_path(dir, name), do: Path.join(dir, name <> ".json")
  defp sidecar_path(dir, name), do: Path.join(dir, name <> @sidecar)

  defp load(s, name) do
    result =
      with {:ok, spec, spec_bin} <- spec_of(s, name),
           {:ok, program} <- build(spec),
           {:ok, program, state_bin} <- apply_state(s.dir, name, program) do
        {:ok,
         %{
           name: name,
           program: program,
           inputs: inputs(program),
           version: version(spec_bin, state_bin),
           source: if(Map.has_key?(s.specs, name), do: :config, else: :directory),
           loaded_at: DateTime.utc_now()
         }}
      end

    case result do
      {:ok, entry} ->
        :ets.insert(s.table, {{:program, name}, entry})
        :ets.delete(s.table, {:failure, name})
        DSPex.Server.Metrics.inc(s.metrics, {:reloads, name, "ok"})

      {:error, %Error{} = e} ->
        # The previous version, if any, keeps serving.
        :ets.insert(s.table, {{:failure, name}, %{type: e.type, message: e.message}})
        DSPex.Server.Metrics.inc(s.metrics, {:reloads, name, "error"})
        Logger.warning("DSPex.Server: program #{name} not (re)loaded: #{e.type}: #{e.message}")
    end
  end

  defp spec_of(s, name) do
    case Map.fetch(s.specs, name) do
      {:ok, spec} ->
        # The version of a spec given in code: a digest of the spec term.
        {:ok, spec, :erlang.term_to_binary(spec)}

      :error ->
        path = sidecar_path(s.dir, name)

        with {:ok, bin} <- read(path),
             {:ok, spec} <- DSPex.JSON.decode(bin) do
          {:ok, spec, bin}
        else
          {:error, %Error{type: :io}} ->
            {:error,
             spec_error(
               "no spec for program #{name}: add it to the server's programs: option or write #{name}#{@sidecar}"
             )}

          {:error, %Error{} = e} ->
            {:error, spec_error("#{name}#{@sidecar}: " <> e.message)}
        end
    end
  end

  defp apply_state(nil, _name, program), do: {:ok, program, ""}

  defp apply_state(dir, name, program) do
    path = state_path(dir, name)

    case read(path) do
      {:error, %Error{type: :io, details: %{reason: :enoent}}} ->
        {:ok, program, ""}

      {:error, e} ->
        {:error, e}

      {:ok, bin} ->
        with {:ok, state} <- DSPex.JSON.decode(bin),
             {:ok, program} <- DSPex.Program.load_state(program, state) do
          {:ok, program, bin}
        end
    end
  end

  defp read(path) do
    case File.read(path) do
      {:ok, bin} -> {:ok, bin}
      {:error, reason} -> {:error, Error.new(:io, "cannot read #{path}", %{reason: reason})}
    end
  end

  defp version(spec_bin, state_bin) do
    :crypto.hash(:sha256, [spec_bin, 0, state_bin])
    |> binary_part(0, 6)
    |> Base.encode16(case: :lower)
  end
end
