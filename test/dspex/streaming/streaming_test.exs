defmodule DSPex.StreamingTest do
  use ExUnit.Case, async: true

  alias DSPex.{StreamChunk, StreamListener}

  doctest DSPex.StreamListener
  doctest DSPex.StreamChunk
  doctest DSPex.Streaming

  # Feeds `text` split into `pieces`, returns %{field => text} and the chunk list.
  defp run(pieces, opts \\ []) do
    {chunks, l} =
      Enum.reduce(pieces, {[], StreamListener.new(opts)}, fn p, {acc, l} ->
        {c, l} = StreamListener.feed(l, p)
        {acc ++ c, l}
      end)

    {tail, _} = StreamListener.finish(l)
    chunks = chunks ++ tail

    texts = Enum.reduce(chunks, %{}, fn {f, t, _}, acc -> Map.update(acc, f, t, &(&1 <> t)) end)

    {texts, chunks}
  end

  defp bytes(s), do: for(<<b::binary-size(1) <- s>>, do: b)

  @chat "[[ ## reasoning ## ]]\nThe sky [is] blue because of\nRayleigh scattering.\n\n[[ ## answer ## ]]\nRayleigh   \n\n[[ ## completed ## ]]\nignored"

  test "ChatAdapter markers, any split gives the same fields" do
    expected = %{
      "reasoning" => "The sky [is] blue because of\nRayleigh scattering.",
      "answer" => "Rayleigh"
    }

    for pieces <- [[@chat], bytes(@chat), Regex.split(~r/(?<= )/, @chat)] do
      {texts, chunks} = run(pieces)
      assert texts == expected
      # exactly one last chunk per field, and it is the field's final chunk
      for f <- Map.keys(expected) do
        mine = Enum.filter(chunks, fn {g, _, _} -> g == f end)
        assert [{^f, _, true}] = Enum.filter(mine, fn {_, _, l} -> l end)
        assert {^f, _, true} = List.last(mine)
      end
    end
  end

  test "no marker text leaks into a field when split inside a marker" do
    {texts, chunks} = run(["[[ ## answer ## ]]\nPar", "is [[", " ## comp", "leted ## ]]"])
    assert texts == %{"answer" => "Paris"}
    refute Enum.any?(chunks, fn {_, t, _} -> String.contains?(t, "[") end)
  end

  test "text before the first marker is dropped; unterminated field flushed by finish" do
    {texts, chunks} = run(["Sure! ", "[[ ## answer", " ## ]]\n", "42\n"])
    assert texts == %{"answer" => "42"}
    assert List.last(chunks) == {"answer", "", true}
  end

  test "fields: restricts what is emitted" do
    {texts, _} = run(bytes(@chat), fields: [:answer])
    assert texts == %{"answer" => "Rayleigh"}
  end

  @json ~s({\n  "reasoning": "Light \\"scatters\\"\\nmore \\u00e9\\ud83d\\ude00",\n  "answer": [1, {"a": "}"}],\n  "score": 0.5 \n})

  test "JSONAdapter keys, escapes and raw values under any split" do
    expected = %{
      "reasoning" => "Light \"scatters\"\nmore é😀",
      "answer" => ~s([1, {"a": "}"}]),
      "score" => "0.5"
    }

    for pieces <- [[@json], bytes(@json)] do
      {texts, chunks} = run(pieces)
      assert texts == expected
      assert Enum.count(chunks, fn {_, _, l} -> l end) == 3
    end
  end

  # --- DSPex.stream/3 over a predictor --------------------------------------------

  defmodule DripLM do
    @moduledoc false
    # A test LM that streams a fixed completion in the given pieces.
    @behaviour DSPex.BaseLM
    defstruct pieces: [], test_pid: nil

    @impl true
    def forward(%__MODULE__{pieces: p} = lm, _msgs, _params, %{sink: sink}) do
      if sink do
        if lm.test_pid, do: send(lm.test_pid, {:streaming, self()})
        Enum.each(p, &sink.({:delta, &1}))
      end

      {:ok, %{choices: [%{text: Enum.join(p), finish_reason: "stop"}], usage: %{}, model: "drip"}}
    end

    @impl true
    def supports?(_lm, feature), do: feature == :stream
  end

  defmodule BlockLM do
    @moduledoc false
    @behaviour DSPex.BaseLM
    defstruct test_pid: nil

    @impl true
    def forward(lm, _msgs, _params, %{sink: sink}) do
      sink.({:delta, "[[ ## answer ## ]]\nfirst words"})
      send(lm.test_pid, {:blocked, self()})
      Process.sleep(:infinity)
    end

    @impl true
    def supports?(_lm, feature), do: feature == :stream
  end

  test "DSPex.stream yields field chunks then the prediction" do
    text = "[[ ## answer ## ]]\nParis is the capital.\n\n[[ ## completed ## ]]"
    lm = %DripLM{pieces: bytes(text)}
    qa = DSPex.Predict.new("question -> answer", lm: lm)
    out = DSPex.Streaming.stream(qa, question: "Capital of France?") |> Enum.to_list()

    {chunks, [pred]} = Enum.split(out, -1)
    assert %DSPex.Prediction{} = pred
    assert pred.answer == "Paris is the capital."
    assert Enum.all?(chunks, &match?(%StreamChunk{predictor: "self", field: :answer}, &1))
    assert Enum.map_join(chunks, & &1.text) == "Paris is the capital."
    assert List.last(chunks).last?
    assert length(chunks) > 3
  end

  defmodule WholeLM do
    @moduledoc false
    # A test LM that answers whole: it does not support streaming.
    @behaviour DSPex.BaseLM
    defstruct text: ""

    @impl true
    def forward(%__MODULE__{text: t}, _msgs, _params, %{sink: nil}) do
      {:ok, %{choices: [%{text: t, finish_reason: "stop"}], usage: %{}, model: "whole"}}
    end

    @impl true
    def supports?(_lm, _feature), do: false
  end

  test "an LM without streaming support still streams its reply (as one delta) through Predict" do
    lm = %WholeLM{text: "[[ ## answer ## ]]\nParis\n\n[[ ## completed ## ]]"}
    qa = DSPex.Predict.new("question -> answer", lm: lm)
    out = DSPex.Streaming.stream(qa, question: "Capital of France?") |> Enum.to_list()

    {chunks, [pred]} = Enum.split(out, -1)
    assert pred.answer == "Paris"
    assert chunks != []
    assert Enum.all?(chunks, &match?(%StreamChunk{predictor: "self", field: :answer}, &1))
    assert Enum.map_join(chunks, & &1.text) == "Paris"
    assert List.last(chunks).last?
  end

  test "a consumer trapping exits gets no stray messages" do
    Process.flag(:trap_exit, true)
    lm = %DripLM{pieces: ["[[ ## answer ## ]]\nok\n[[ ## completed ## ]]"]}
    qa = DSPex.Predict.new("question -> answer", lm: lm)
    assert List.last(DSPex.Streaming.stream(qa, question: "q") |> Enum.to_list()).answer == "ok"
    assert [_] = DSPex.Streaming.stream(qa, question: "q") |> Enum.take(1)
    refute_received {:EXIT, _, _}
    refute_received {:dspex_stream, _, _, _}
  end

  test "halting early kills the running call" do
    lm = %BlockLM{test_pid: self()}
    qa = DSPex.Predict.new("question -> answer", lm: lm)
    [first] = DSPex.Streaming.stream(qa, question: "q") |> Enum.take(1)
    assert %StreamChunk{field: :answer, text: "first words"} = first
    assert_receive {:blocked, pid}
    ref = Process.monitor(pid)
    assert_receive {:DOWN, ^ref, :process, ^pid, _}
  end

  test "errors raise inside the stream, or are yielded with on_error: :yield" do
    qa = DSPex.Predict.new("question -> answer", lm: %DripLM{pieces: ["no markers at all"]})

    assert_raise DSPex.Error, fn ->
      DSPex.Streaming.stream(qa, question: "q") |> Enum.to_list()
    end

    assert [{:error, %DSPex.Error{}}] =
             DSPex.Streaming.stream(qa, [question: "q"], on_error: :yield) |> Enum.to_list()
  end
end
