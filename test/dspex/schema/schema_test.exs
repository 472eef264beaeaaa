defmodule DSPex.SchemaTest do
  use ExUnit.Case, async: true

  alias DSPex.Signature.Field
  alias DSPex.Test.{Invoice, LineItem, Loop}

  doctest DSPex.Schema

  @reply ~s([[ ## invoice ## ]]\n{"number": "A-1", "items": [{"description": "pen", "quantity": "2", "unit_price": 1.5}], "due": "2024-03-01"}\n\n[[ ## completed ## ]])

  test "a predictor extracts a nested struct" do
    lm = DSPex.LM.Scripted.new([@reply])

    p =
      DSPex.Predict.new(
        DSPex.Signature.new([
          Field.new(:text, :input),
          Field.new(:invoice, :output, type: Invoice)
        ]),
        lm: lm
      )

    {:ok, pred} = DSPex.call(p, text: "Invoice A-1: 2 pens at 1.50, due March 1st")

    assert pred.invoice == %Invoice{
             number: "A-1",
             items: [%LineItem{description: "pen", quantity: 2, unit_price: 1.5}],
             status: "open",
             due: ~D[2024-03-01]
           }
  end

  test "a signature module names a schema type" do
    sig = DSPex.Signature.resolve!(DSPex.Test.ExtractInvoice)
    assert [%{name: :invoice, type: Invoice}] = sig.outputs
    lm = DSPex.LM.Scripted.new([@reply])
    {:ok, pred} = DSPex.call(DSPex.Predict.new(DSPex.Test.ExtractInvoice, lm: lm), text: "...")
    assert %Invoice{number: "A-1"} = pred.invoice
  end

  test "a value that does not validate is re-asked with where it failed" do
    bad =
      ~s([[ ## invoice ## ]]\n{"number": "A-1", "items": [{"description": "a", "quantity": 1, "unit_price": 1}, {"description": "b", "quantity": 1, "unit_price": 2}, {"description": "c", "quantity": 1, "unit_price": "cheap"}]}\n\n[[ ## completed ## ]])

    lm = DSPex.LM.Scripted.new([bad, @reply])

    p =
      DSPex.Predict.new(
        DSPex.Signature.new([
          Field.new(:text, :input),
          Field.new(:invoice, :output, type: Invoice)
        ]),
        lm: lm
      )

    {:ok, pred} = DSPex.call(p, text: "...")
    assert pred.invoice.number == "A-1"

    [_, second] = DSPex.LM.Scripted.requests(lm)
    followup = List.last(second.messages).content

    assert followup =~
             "`invoice`: items[2].unit_price: Input should be a valid number, unable to parse string as a number"
  end

  test "schemas are types for tool parameters: the tool receives the struct" do
    tool = DSPex.Tool.new(fn item -> item end, name: "add_line", args: [item: LineItem])

    assert DSPex.Tool.call(tool, %{
             "item" => %{"description" => "x", "quantity" => 3, "unit_price" => 2}
           }) ==
             {:ok, %LineItem{description: "x", quantity: 3, unit_price: 2.0}}

    assert {:error,
            %DSPex.Error{
              message: "Arg item is invalid: quantity: Input should be greater than or equal to 1"
            }} =
             DSPex.Tool.call(tool, %{
               "item" => %{"description" => "x", "quantity" => 0, "unit_price" => 2}
             })

    assert DSPex.Tool.format(tool) =~
             "{'item': {'description': 'One line of an invoice.', 'properties': {'description': {'description': 'What was sold', 'title': 'Description', 'type': 'string'}"
  end

  test "struct inputs render as JSON in field order" do
    sig =
      DSPex.Signature.new([
        Field.new(:invoice, :input, type: Invoice),
        Field.new(:total, :output, type: :float)
      ])

    inv = %Invoice{
      number: "B",
      items: [%LineItem{description: "z", quantity: 1, unit_price: 2.0}]
    }

    [_, user] = DSPex.Adapter.Chat.format(sig, [], %{invoice: inv}, [])

    assert user.content =~
             ~s({"number": "B", "items": [{"description": "z", "quantity": 1, "unit_price": 2.0}], "status": "open", "due": null})
  end

  test "declaration errors" do
    assert_raise ArgumentError, ~r/recursive schemas are not supported/, fn ->
      DSPex.Signature.Field.json_schema(Loop)
    end

    assert_raise ArgumentError, ~r/unknown field option\(s\) \[:minimum\]/, fn ->
      defmodule Bad do
        use DSPex.Schema
        field :x, :integer, minimum: 1
      end
    end
  end
end
