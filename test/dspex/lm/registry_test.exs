defmodule DSPex.LM.RegistryTest do
  # Named LMs from the application environment and run-time registrations, used by
  # name wherever an LM is taken.
  use ExUnit.Case, async: false

  alias DSPex.LM.Registry

  doctest DSPex.LM.Registry

  setup do
    old = Application.get_env(:dspex, :lms)

    on_exit(fn ->
      if old,
        do: Application.put_env(:dspex, :lms, old),
        else: Application.delete_env(:dspex, :lms)
    end)

    :ok
  end

  test "config :dspex, lms: model ids, {model, opts} and fallback chains" do
    Application.put_env(:dspex, :lms,
      fast: "openai/gpt-4o-mini",
      smart: {"anthropic/claude-x", max_tokens: 4096},
      robust: {["anthropic/claude-x", "openai/gpt-4o"], fallback_on: [:rate_limit]}
    )

    assert DSPex.LM.new(:fast).model == "openai/gpt-4o-mini"
    assert DSPex.LM.new(:smart).kwargs == %{max_tokens: 4096}
    assert %DSPex.LM.Fallback{fallback_on: [:rate_limit], lms: [_, _]} = DSPex.LM.new(:robust)
    assert DSPex.LM.new(:fast, temperature: 0.3).kwargs == %{temperature: 0.3}
    assert [:fast, :robust, :smart] -- Registry.names() == []
    # Built once per config value: the same struct comes back.
    assert DSPex.LM.new(:smart) == DSPex.LM.new(:smart)
  end

  test "an unknown name, or a bad spec, is a clear error" do
    assert_raise ArgumentError, ~r/no LM named :nope_nope/, fn -> DSPex.LM.new(:nope_nope) end
    Application.put_env(:dspex, :lms, broken: "nosuchprovider/x")

    assert {:error, %DSPex.Error{type: :invalid_lm, message: msg}} = Registry.lookup(:broken)
    assert msg =~ "unknown LM provider"
    assert_raise ArgumentError, fn -> Registry.register(:bad, "nosuchprovider/x") end
  end

  test "a name works in settings, in a predictor and in a call" do
    Registry.register(
      :registry_test_scripted,
      DSPex.LM.Scripted.new([%{answer: "A"}], cycle: true)
    )

    on_exit(fn -> Registry.unregister(:registry_test_scripted) end)

    qa = DSPex.Predict.new("question -> answer", lm: :registry_test_scripted)
    assert {:ok, %{answer: "A"}} = DSPex.call(qa, question: "?")

    plain = DSPex.Predict.new("question -> answer")
    assert {:ok, %{answer: "A"}} = DSPex.call(plain, [question: "?"], lm: :registry_test_scripted)

    assert {:ok, %{answer: "A"}} =
             DSPex.with_settings([lm: :registry_test_scripted], fn ->
               DSPex.call(plain, question: "?")
             end)

    assert {:error, %DSPex.Error{type: :unknown_lm}} =
             DSPex.call(plain, [question: "?"], lm: :registry_test_missing)
  end

  test "find/1 maps untrusted text onto names without making atoms" do
    Registry.register(:registry_test_find, "openai/gpt-4o-mini")
    on_exit(fn -> Registry.unregister(:registry_test_find) end)
    assert Registry.find("registry_test_find") == :registry_test_find

    text = "registry_test_never_#{System.unique_integer([:positive])}"
    assert Registry.find(text) == nil
    assert_raise ArgumentError, fn -> String.to_existing_atom(text) end
  end
end
