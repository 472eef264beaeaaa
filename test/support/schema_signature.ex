defmodule DSPex.Test.ExtractInvoice do
  @moduledoc "Extract the invoice."
  # A signature naming a schema declared in another file (tools_support.ex, compiled
  # later in alphabetical order): its compile-time field check waits for that module.
  use DSPex.Signature

  input(:text)
  output :invoice, DSPex.Test.Invoice, desc: "The invoice"
end
