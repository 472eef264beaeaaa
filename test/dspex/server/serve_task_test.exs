defmodule DSPex.Server.ServeTaskTest do
  # `mix dspex.serve`: options from the command line and DSPEX_API_KEYS, a real server.
  use ExUnit.Case, async: false

  import ExUnit.CaptureIO
  alias DSPex.Test.HTTP
  alias Mix.Tasks.Dspex.Serve

  setup do
    Mix.shell(Mix.Shell.Process)
    on_exit(fn -> Mix.shell(Mix.Shell.IO) end)
  end

  test "serves a programs directory with a hashed key and an env key" do
    dir = Path.join(System.tmp_dir!(), "dspex_serve_task_#{System.unique_integer([:positive])}")
    File.mkdir_p!(dir)
    on_exit(fn -> File.rm_rf!(dir) end)

    File.write!(
      Path.join(dir, "qa.program.json"),
      ~s({"predictor": "Predict", "signature": "question -> answer"})
    )

    DSPex.LM.Registry.register(
      :serve_task_lm,
      DSPex.LM.Scripted.new([%{answer: "42"}], cycle: true)
    )

    on_exit(fn -> DSPex.LM.Registry.unregister(:serve_task_lm) end)

    System.put_env("DSPEX_API_KEYS", "env-key=dsx_from_env")
    on_exit(fn -> System.delete_env("DSPEX_API_KEYS") end)

    {:ok, pid} =
      Serve.run([
        "--port",
        "0",
        "--programs-dir",
        dir,
        "--lm",
        "serve_task_lm",
        "--api-key",
        "cli:" <> DSPex.Server.Keys.hash("dsx_from_cli"),
        "--no-wait"
      ])

    assert_received {:mix_shell, :info, [line]}
    assert line =~ ~r"listening on http://127.0.0.1:\d+ \(2 API key\(s\)\)"
    refute line =~ "dsx_from"
    url = DSPex.Server.url()

    for key <- ["dsx_from_env", "dsx_from_cli"] do
      assert {200, %{"prediction" => %{"answer" => "42"}}} =
               HTTP.post_json(url <> "/v1/programs/qa", %{question: "?"},
                 headers: [{"authorization", "Bearer " <> key}]
               )
    end

    Supervisor.stop(pid)
  end

  test "refuses a public bind without keys, bad flags and unknown LM names" do
    assert_raise Mix.Error, ~r/without API keys/, fn ->
      Serve.server_options([bind: "0.0.0.0"], nil)
    end

    assert Serve.server_options([bind: "0.0.0.0", insecure: true], nil)[:bind] == "0.0.0.0"
    assert_raise Mix.Error, ~r/unknown arguments/, fn -> Serve.run(["--prot", "1"]) end

    assert_raise Mix.Error, ~r/--api-key takes/, fn ->
      Serve.server_options([api_key: "x"], nil)
    end

    assert_raise Mix.Error, ~r/not a model id/, fn -> Serve.server_options([lm: "nope"], nil) end
  end

  test "--gen-key and --hash-key" do
    Serve.run(["--gen-key"])
    assert_received {:mix_shell, :info, [text]}
    [_, key] = Regex.run(~r/key:  (\S+)/, text)
    assert text =~ "hash: " <> DSPex.Server.Keys.hash(key)

    capture_io("secret-key\n", fn -> Serve.run(["--hash-key"]) end)
    assert_received {:mix_shell, :info, [hash]}
    assert hash == DSPex.Server.Keys.hash("secret-key")
  end
end
