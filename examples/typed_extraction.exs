# Typed extraction into nested structs: DSPex.Schema declares what DSPy users write as
# pydantic models; the prompt shows pydantic's JSON schema, the reply is validated into
# the structs, and an invalid reply is re-asked with where it failed.
#
#   mix run examples/typed_extraction.exs
#
# Offline with DSPex.LM.Scripted; a real model with DSPEX_EXAMPLE_LM=openai/gpt-4o-mini.

defmodule Example.LineItem do
  @moduledoc "One line of an invoice."
  use DSPex.Schema

  field :description, :string, desc: "What was sold"
  field :quantity, :integer, ge: 1
  field :unit_price, :float, gt: 0
end

defmodule Example.Invoice do
  @moduledoc "An invoice."
  use DSPex.Schema

  field :number, :string
  field :issued, :date
  field :items, {:list, Example.LineItem}, min_length: 1
  field :currency, {:literal, ["EUR", "USD"]}, default: "EUR"
  field :paid, :boolean, default: false
end

defmodule Example.Extract do
  @moduledoc "Extract the invoice from the text."
  use DSPex.Signature

  input(:text)
  output :invoice, Example.Invoice
end

lm =
  case System.get_env("DSPEX_EXAMPLE_LM") do
    nil ->
      DSPex.LM.Scripted.new([
        # first reply: a price the schema refuses (must be a number)
        ~s([[ ## invoice ## ]]\n{"number": "2024-17", "issued": "2024-03-05", "items": [{"description": "Keyboard", "quantity": 2, "unit_price": 49.5}, {"description": "Cable", "quantity": "3", "unit_price": "cheap"}]}\n\n[[ ## completed ## ]]),
        # the re-ask's reply
        ~s([[ ## invoice ## ]]\n{"number": "2024-17", "issued": "2024-03-05", "items": [{"description": "Keyboard", "quantity": 2, "unit_price": 49.5}, {"description": "Cable", "quantity": "3", "unit_price": 4.0}], "paid": "yes"}\n\n[[ ## completed ## ]])
      ])

    model ->
      DSPex.LM.new(model)
  end

extract = DSPex.Predict.new(Example.Extract, lm: lm)

text = """
Invoice 2024-17, 5 March 2024. 2 keyboards at 49.50 EUR each, 3 cables at 4 EUR.
Paid by card.
"""

{:ok, pred} = DSPex.call(extract, text: text)
invoice = pred.invoice
IO.inspect(invoice, label: "invoice")

total = Enum.reduce(invoice.items, 0.0, fn i, acc -> acc + i.quantity * i.unit_price end)
IO.puts("total: #{total} #{invoice.currency}, paid: #{invoice.paid}")

if is_struct(lm, DSPex.LM.Scripted) do
  [_first, second] = DSPex.LM.Scripted.requests(lm)
  IO.puts("\nThe re-ask after the first reply:\n" <> List.last(second.messages).content)
end

# The output's JSON schema, as pydantic writes it for the equivalent models:
IO.puts("\n" <> DSPex.Signature.Field.json_schema(Example.Invoice))
