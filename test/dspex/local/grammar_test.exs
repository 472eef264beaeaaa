defmodule DSPex.Local.GrammarTest do
  # Grammar-constrained decoding through the NIF and DSPex.LM.Local: a random-weight model
  # (which writes garbage otherwise) always produces outputs the adapters parse, for
  # Predict and ChainOfThought, both adapters, many seeds, temperature > 0.
  use ExUnit.Case, async: false

  alias DSPex.Local.Grammar

  doctest DSPex.Local.Grammar

  @qwen Path.expand("fixtures/qwen2-qwen2-q4_0-mha-tied.gguf", __DIR__)
  @gpt2 Path.expand("fixtures/llama-gpt2-q4_0-mha-untied.gguf", __DIR__)

  @signatures [
    "question -> answer",
    "question -> answer: int",
    "question -> score: float, ok: bool",
    "question -> label: Literal['positive', 'negative', 'neutral']",
    "question -> items: list[str], table: dict[str, int]",
    "question -> maybe: Optional[int], tags: list[Literal['a', 'b']], nested: dict[str, list[float]]",
    "question, context: list[str] -> answer: str, confidence: float"
  ]

  setup_all do
    model = DSPex.Local.load!(@qwen, threads: 1)
    %{model: model}
  end

  defp attach_counter do
    parent = self()
    id = "grammar-test-#{System.unique_integer([:positive])}"

    :ok =
      DSPex.Telemetry.attach(
        id,
        [:dspex, :lm, :request, :stop],
        fn _, _, meta, _ ->
          send(parent, {:lm_call, meta})
        end,
        nil
      )

    on_exit(fn -> DSPex.Telemetry.detach(id) end)
  end

  defp inputs(sig) do
    for f <- DSPex.Signature.resolve!(sig).inputs, into: %{} do
      {f.name, if(f.type == :str, do: "What is 2 + 2?", else: ["two", "plus two"])}
    end
  end

  defp drain_calls(acc) do
    receive do
      {:lm_call, meta} -> drain_calls([meta | acc])
    after
      0 -> Enum.reverse(acc)
    end
  end

  describe "a random-weight model always parses" do
    test "Predict and ChainOfThought, ChatAdapter and JSONAdapter, 6 seeds each" do
      lm = DSPex.LM.Local.new(@qwen, max_tokens: 160, temperature: 1.0, cache: false, threads: 1)
      attach_counter()

      results =
        for sig <- @signatures,
            module <- [DSPex.Predict, DSPex.ChainOfThought],
            adapter <- [DSPex.Adapter.Chat, DSPex.Adapter.JSON],
            seed <- 1..6 do
          prog = module.new(sig, max_parse_retries: 0, adapter: adapter)
          result = DSPex.call(prog, inputs(sig), lm: lm, config: %{seed: seed})

          assert {:ok, pred} = result,
                 "#{inspect(module)} #{inspect(adapter)} #{sig} seed #{seed}: #{inspect(result)}"

          fields = DSPex.Prediction.fields(pred)
          for f <- DSPex.Signature.resolve!(sig).outputs, do: assert(Map.has_key?(fields, f.name))
          assert [%{grammar: kind}] = drain_calls([])
          assert kind == if(adapter == DSPex.Adapter.Chat, do: :chat, else: :json)
          {sig, module, adapter, seed}
        end

      assert length(results) == length(@signatures) * 2 * 2 * 6
    end
  end

  test "typed values come back typed", %{model: _} do
    lm = DSPex.LM.Local.new(@qwen, max_tokens: 200, temperature: 1.0, cache: false, threads: 1)

    sig =
      "question -> n: int, x: float, ok: bool, label: Literal['yes', 'no'], items: list[int], table: dict[str, str]"

    for seed <- 1..4, adapter <- [DSPex.Adapter.Chat, DSPex.Adapter.JSON] do
      {:ok, p} =
        DSPex.call(
          DSPex.Predict.new(sig, max_parse_retries: 0, adapter: adapter),
          [question: "?"],
          lm: lm,
          config: %{seed: seed}
        )

      assert is_integer(p.n) and is_float(p.x) and is_boolean(p.ok)
      assert p.label in ["yes", "no"]
      assert is_list(p.items) and Enum.all?(p.items, &is_integer/1)

      assert is_map(p.table) and
               Enum.all?(p.table, fn {k, v} -> is_binary(k) and is_binary(v) end)
    end
  end

  defmodule LineItem do
    @moduledoc "One line of an invoice."
    use DSPex.Schema
    field :description, :string
    field :quantity, :integer, ge: 1, le: 99
    field :unit_price, :float, gt: 0, le: 1000
  end

  defmodule Invoice do
    @moduledoc "An invoice."
    use DSPex.Schema
    field :number, :string
    field :items, {:list, DSPex.Local.GrammarTest.LineItem}
    field :status, {:literal, ["open", "paid"]}
    field :note, {:optional, :string}, default: nil
  end

  defmodule Extract do
    use DSPex.Signature.DSL
    input :text, :str
    output :invoice, DSPex.Local.GrammarTest.Invoice
    output :stars, :int, ge: 1, le: 5
    output :score, :float, ge: 0.0, le: 1.0
    output :due, :date
  end

  test "nested typed structs, field constraints and dates parse, both adapters" do
    lm = DSPex.LM.Local.new(@qwen, max_tokens: 400, temperature: 1.0, cache: false, threads: 1)

    for seed <- 1..4, adapter <- [DSPex.Adapter.Chat, DSPex.Adapter.JSON] do
      assert {:ok, p} =
               DSPex.call(
                 DSPex.Predict.new(Extract, max_parse_retries: 0, adapter: adapter),
                 [text: "?"],
                 lm: lm,
                 config: %{seed: seed}
               )

      assert %Invoice{status: status, items: items} = p.invoice
      assert status in ["open", "paid"]

      for %LineItem{quantity: q, unit_price: u} <- items,
          do: assert(q in 1..99 and u > 0 and u <= 1000)

      assert p.stars in 1..5 and p.score >= 0 and p.score <= 1
      assert %Date{} = p.due
    end
  end

  test "the grammar holds even when max_tokens cuts the output short" do
    lm = DSPex.LM.Local.new(@qwen, max_tokens: 40, temperature: 1.0, cache: false, threads: 1)

    for seed <- 1..5 do
      assert {:ok, p} =
               DSPex.call(
                 DSPex.ChainOfThought.new("question -> answer", max_parse_retries: 0),
                 [question: "?"],
                 lm: lm,
                 config: %{seed: seed}
               )

      assert is_binary(p.reasoning) and is_binary(p.answer)
    end
  end

  test "response_format json_schema and json_object are honoured, also with constrained: false" do
    lm =
      DSPex.LM.Local.new(@qwen,
        max_tokens: 120,
        temperature: 1.0,
        cache: false,
        constrained: false
      )

    msgs = [%{role: "user", content: "Give me a person as JSON."}]

    schema = %{
      "type" => "object",
      "properties" => %{
        "name" => %{"type" => "string", "maxLength" => 12},
        "age" => %{"type" => "integer", "minimum" => 0, "maximum" => 120}
      },
      "required" => ["name", "age"],
      "additionalProperties" => false
    }

    rf = %{type: "json_schema", json_schema: %{name: "person", schema: schema, strict: true}}

    for seed <- 1..5 do
      {:ok, c} = DSPex.LM.request(lm, msgs, %{response_format: rf, seed: seed})
      assert {:ok, %{"name" => name, "age" => age}} = DSPex.JSON.decode(hd(c.choices).text)
      assert is_binary(name) and String.length(name) <= 12 and age in 0..120

      {:ok, c} =
        DSPex.LM.request(lm, msgs, %{"response_format" => %{"type" => "json_object"}, seed: seed})

      assert {:ok, %{}} = DSPex.JSON.decode(hd(c.choices).text)
    end

    assert {:error, %DSPex.Error{type: :bad_request, message: msg}} =
             DSPex.LM.request(lm, msgs, %{response_format: %{type: "yaml"}})

    assert msg =~ "unknown type"

    assert {:error, %DSPex.Error{type: :grammar, message: gm}} =
             DSPex.LM.request(lm, msgs, %{
               response_format: %{type: "json_schema", json_schema: %{schema: %{"$ref" => "#/x"}}}
             })

    assert gm =~ "does not resolve"
  end

  test "constrained: false leaves predictor calls unconstrained (and the tiny model fails to parse)" do
    lm =
      DSPex.LM.Local.new(@qwen, max_tokens: 24, temperature: 1.0, cache: false, constrained: false)

    attach_counter()

    result =
      DSPex.call(
        DSPex.Predict.new("question -> answer: int", max_parse_retries: 0),
        [question: "?"],
        lm: lm,
        config: %{seed: 1}
      )

    assert {:error, %DSPex.Error{type: :adapter_parse}} = result
    assert [%{grammar: nil}] = drain_calls([])
  end

  test "streaming a constrained call: the deltas add up to a parseable text", %{model: model} do
    g = Grammar.compile!(model, {:chat, "question -> reasoning, answer: bool"})

    chunks =
      DSPex.Local.stream_text(model, "Q?", grammar: g, max_tokens: 80, seed: 9, temperature: 1.0)
      |> Enum.to_list()

    text = Enum.join(chunks)
    assert Grammar.match(g, text) == :complete

    assert {:ok, %{answer: a}} =
             DSPex.Adapter.Chat.parse("question -> reasoning, answer: bool", text)

    assert is_boolean(a)
  end

  test "an SPM and a GPT-2 vocabulary work too (byte tokens, no chat template needed)" do
    for path <- [@gpt2] do
      m = DSPex.Local.load!(path, threads: 1)

      g =
        Grammar.compile!(
          m,
          {:json_schema, %{"type" => "array", "items" => %{"enum" => ["x", "yy"]}}}
        )

      for seed <- 1..4 do
        {:ok, r} = DSPex.Local.generate(m, "List:", grammar: g, max_tokens: 30, seed: seed)
        assert Grammar.match(g, r.text) == :complete
        assert {:ok, list} = DSPex.JSON.decode(r.text)
        assert Enum.all?(list, &(&1 in ["x", "yy"]))
      end
    end
  end

  test "bad specs and options are clear errors", %{model: model} do
    assert {:error, %DSPex.Error{type: :grammar, message: m}} =
             Grammar.compile(model, {:chat, "q -> n: Literal[1, 2]"})

    assert m =~ "no value of its Literal"

    assert {:error, %DSPex.Error{type: :grammar, message: m}} =
             Grammar.compile(model, {:json_schema, ~s|{"type": "string", "pattern": "(?=x)"}|})

    assert m =~ "lookaround"

    assert_raise ArgumentError, ~r/unknown option :depth/, fn ->
      Grammar.compile(model, :json_object, depth: 3)
    end

    assert_raise ArgumentError, ~r/grammar spec/, fn -> Grammar.compile(model, {:xml, "x"}) end

    assert_raise ArgumentError, ~r/ignore_eos/, fn ->
      DSPex.Local.generate(model, "x", grammar: :json_object, ignore_eos: true)
    end

    assert_raise ArgumentError, ~r/json_depth/, fn ->
      Grammar.compile(model, :json_object, json_depth: 99)
    end
  end

  test "DSPex.LM.Local.new validates its options" do
    assert_raise ArgumentError, ~r/unknown option :constraind .*did you mean :constrained/, fn ->
      DSPex.LM.Local.new(@qwen, constraind: false)
    end

    assert_raise ArgumentError, ~r/unknown option :depth/, fn ->
      DSPex.LM.Local.new(@qwen, grammar: [depth: 1])
    end

    assert_raise ArgumentError, ~r/temperature/, fn ->
      DSPex.LM.Local.new(@qwen, temperature: "hot")
    end

    assert DSPex.BaseLM.supports?(DSPex.LM.Local.new(@qwen), :response_schema)
  end
end
