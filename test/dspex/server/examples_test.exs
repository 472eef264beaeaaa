defmodule DSPex.Server.ExamplesTest do
  # The README's first session (README.md, "Your first session") and the JTBD service example,
  # run as written: real HTTP, the fake OpenAI server of the demo, the port transport.
  use ExUnit.Case, async: false

  import ExUnit.CaptureIO

  @vars ~w(OPENAI_API_KEY OPENAI_BASE_URL OPENAI_API_BASE DSPEX_CACHE_DIR)

  setup do
    saved = for v <- @vars, do: {v, System.get_env(v)}
    Enum.each(~w(OPENAI_API_KEY OPENAI_BASE_URL OPENAI_API_BASE), &System.delete_env/1)

    on_exit(fn ->
      for {v, val} <- saved, do: if(val, do: System.put_env(v, val), else: System.delete_env(v))
      DSPex.configure(lm: nil)
    end)

    :ok
  end

  defp first_session_blocks do
    text = File.read!("README.md")
    [_, section] = String.split(text, "<!-- first-session -->")
    [section | _] = String.split(section, "<!-- /first-session -->")
    for [_, code] <- Regex.scan(~r/```elixir\n(.*?)```/s, section), do: code
  end

  test "the README's first session runs as written" do
    blocks = first_session_blocks()
    assert length(blocks) >= 4

    {binding, _out} =
      with_io(fn ->
        Enum.reduce(blocks, [], fn code, binding ->
          {_, binding} = Code.eval_string(code, binding, file: "README.md")
          binding
        end)
      end)

    assert binding[:error].type == :auth
    assert binding[:error].message == "no API key for openai: set OPENAI_API_KEY or pass api_key:"
    assert binding[:pred].answer == "Paris"

    assert DSPex.JSON.decode!(binding[:body])["prediction"] == %{
             "answer" => "Paris",
             "reasoning" => "The capital of France is Paris."
           }

    Supervisor.stop(DSPex.Server)
  end

  test "examples/jtbd_service/run.exs runs: key required, typed outputs, cache, batch" do
    {binding, out} =
      with_io(fn ->
        {_, binding} = Code.eval_file("examples/jtbd_service/run.exs")
        binding
      end)

    Supervisor.stop(binding[:sup])

    assert out =~ "401 %{\"message\" => \"a valid API key is required"
    assert out =~ ~s(job_type: "functional")
    assert out =~ ~s(pains: ["formatting lost on export", "manual clean-up every week"])
    assert out =~ "confidence: 0.82"
    # The repeated request is a cache hit: no new model request, no usage.
    assert out =~ "job_type functional, usage %{}, model requests so far: 1"
    assert out =~ ~s{[1] error invalid_input: unknown input field(s) "feedbak"}
    assert out =~ ~r/dspex_lm_cache_hits_total\{model="openai\/gpt-4o-mini"\} [1-9]/
  end
end
