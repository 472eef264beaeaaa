defmodule DSPex.LM.APIKeyTest do
  # A hosted provider on its default endpoint with no key fails before any request,
  # with an :auth error naming the variable to set; keys come from the variables
  # DSPy/LiteLLM read.
  use ExUnit.Case, async: false

  @vars ~w(OPENAI_API_KEY ANTHROPIC_API_KEY GEMINI_API_KEY GOOGLE_API_KEY PALM_API_KEY OPENAI_BASE_URL OPENAI_API_BASE)

  setup do
    saved = for v <- @vars, do: {v, System.get_env(v)}
    Enum.each(@vars, &System.delete_env/1)

    on_exit(fn ->
      for {v, val} <- saved, do: if(val, do: System.put_env(v, val), else: System.delete_env(v))
    end)

    :ok
  end

  defp msgs, do: [%{role: "user", content: "hi"}]

  test "no key: :auth before any request, for each hosted provider" do
    requests = DSPex.Pool.stats().requests

    for {model, var} <- [
          {"openai/gpt-4o-mini", "OPENAI_API_KEY"},
          {"anthropic/claude-sonnet-4-5", "ANTHROPIC_API_KEY"},
          {"gemini/gemini-2.5-flash", "GEMINI_API_KEY"},
          {"groq/llama-3.1-8b-instant", "GROQ_API_KEY"}
        ] do
      lm = DSPex.LM.new(model, cache: false)
      assert {:error, %DSPex.Error{type: :auth, message: msg}} = DSPex.LM.request(lm, msgs())
      provider = hd(String.split(model, "/"))
      assert msg =~ "no API key for #{provider}: set #{var}"
      assert msg =~ "or pass api_key:"
    end

    assert DSPex.Pool.stats().requests == requests
  end

  test "the gemini message names every variable LiteLLM reads" do
    {:error, e} = DSPex.LM.require_key(DSPex.LM.new("gemini/gemini-2.5-flash"))

    assert e.message ==
             "no API key for gemini: set GEMINI_API_KEY (or GOOGLE_API_KEY, PALM_API_KEY) or pass api_key:"
  end

  test "keys are read from the environment at request time, GOOGLE_API_KEY first for gemini" do
    lm = DSPex.LM.new("gemini/gemini-2.5-flash")
    System.put_env("GEMINI_API_KEY", "g-1")
    assert DSPex.LM.require_key(lm) == :ok
    assert DSPex.LM.resolve_key(lm).api_key == "g-1"
    System.put_env("GOOGLE_API_KEY", "g-2")
    assert DSPex.LM.resolve_key(lm).api_key == "g-2"
    # An empty variable counts as unset.
    System.put_env("GOOGLE_API_KEY", "")
    assert DSPex.LM.resolve_key(lm).api_key == "g-1"
  end

  test "other endpoints may go without a key" do
    assert :ok = DSPex.LM.require_key(DSPex.LM.new("openai/x", api_base: "http://127.0.0.1:9/v1"))
    assert :ok = DSPex.LM.require_key(DSPex.LM.new("ollama/llama3"))
    assert :ok = DSPex.LM.require_key(DSPex.LM.new("llamacpp/qwen"))
    System.put_env("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    assert :ok = DSPex.LM.require_key(DSPex.LM.new("openai/x"))
  end

  test "the error never carries a key, and the history has no entry" do
    before = DSPex.LM.History.size()
    {:error, e} = DSPex.LM.request(DSPex.LM.new("anthropic/claude-x", cache: false), msgs())
    refute inspect(e) =~ "sk-"
    assert DSPex.LM.History.size() == before
  end
end
