defmodule Mix.Tasks.Compile.DspexNative do
  @moduledoc """
  Builds DSPex's native artifacts (`priv/dspex_nif.so`, `priv/dspex_port`) with `make`.

  Exports elixir_make's environment contract (`MIX_APP_PATH`, `ERTS_INCLUDE_DIR`,
  `ERL_EI_INCLUDE_DIR`, `ERL_EI_LIBDIR`, ...) so the Makefile works the same under
  Mix, rebar3 and by hand. Returns `{:noop, []}` when `make -q` says nothing changed.
  """
  use Mix.Task.Compiler

  @impl true
  def run(_args) do
    env = env()

    case System.cmd("make", ["-q", "native"], env: env, stderr_to_stdout: true) do
      {_, 0} ->
        {:noop, []}

      _ ->
        case System.cmd("make", ["native"], env: env, into: IO.stream(:stdio, :line)) do
          {_, 0} ->
            {:ok, []}

          {_, status} ->
            diag = %Mix.Task.Compiler.Diagnostic{
              compiler_name: "dspex_native",
              file: Path.expand("Makefile"),
              message: "make native exited with status #{status}",
              position: nil,
              severity: :error
            }

            Mix.shell().error(diag.message)
            {:error, [diag]}
        end
    end
  end

  @impl true
  def clean do
    System.cmd("make", ["clean"], env: env(), stderr_to_stdout: true)
    :ok
  end

  defp env do
    root = to_string(:code.root_dir())
    erts = Path.join(root, "erts-#{:erlang.system_info(:version)}")

    [
      {"MIX_TARGET", to_string(Mix.target())},
      {"MIX_ENV", to_string(Mix.env())},
      {"MIX_BUILD_PATH", Mix.Project.build_path()},
      {"MIX_APP_PATH", Mix.Project.app_path()},
      {"MIX_COMPILE_PATH", Mix.Project.compile_path()},
      {"ERTS_INCLUDE_DIR", Path.join(erts, "include")},
      {"ERL_EI_INCLUDE_DIR", Path.join(root, "usr/include")},
      {"ERL_EI_LIBDIR", Path.join(root, "usr/lib")},
      {"ERL_INTERFACE_INCLUDE_DIR", Path.join(root, "usr/include")},
      {"ERL_INTERFACE_LIB_DIR", Path.join(root, "usr/lib")},
      {"BINDIR", nil},
      {"ROOTDIR", nil},
      {"PROGNAME", nil},
      {"EMU", nil}
    ]
  end
end

defmodule DSPex.MixProject do
  use Mix.Project

  @version "0.1.0"

  def project do
    [
      app: :dspex,
      version: @version,
      elixir: "~> 1.14",
      compilers: [:dspex_native] ++ Mix.compilers(),
      start_permanent: Mix.env() == :prod,
      elixirc_paths: elixirc_paths(Mix.env()),
      deps: [],
      docs: [main: "readme", extras: ["README.md"]]
    ]
  end

  def application do
    [
      extra_applications: [:logger, :crypto, :inets],
      mod: {DSPex.Application, []}
    ]
  end

  defp elixirc_paths(:test), do: ["lib", "test/support"]
  defp elixirc_paths(_), do: ["lib"]
end
