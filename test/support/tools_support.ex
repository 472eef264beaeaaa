defmodule DSPex.Test.ToolsSupport do
  @moduledoc false
  # Functions and tool modules for the tools tests. They live in test/support so they
  # are compiled to disk with docs and specs, which DSPex.Tool.Introspect reads.

  @doc """
  Searches the corpus for `query`.

  Returns the top `k` passages.
  """
  @spec search(String.t(), pos_integer) :: [String.t()]
  def search(query, k \\ 2), do: for(i <- 1..k, do: "#{query} #{i}")

  @doc "Converts a temperature."
  @spec convert(celsius :: float, unit :: :kelvin | :fahrenheit, note :: String.t() | nil) ::
          float
  def convert(celsius, unit, _note) do
    case unit do
      "kelvin" -> celsius + 273.15
      "fahrenheit" -> celsius * 9 / 5 + 32
    end
  end

  def undocumented(a), do: a
end

defmodule DSPex.Test.WeatherTool do
  @moduledoc """
  The current weather in a city.
  """
  use DSPex.Tool

  param :city, :string, desc: "City name"
  param :unit, {:literal, ["C", "F"]}, default: "C"

  @impl DSPex.Tool
  def run(%{city: "Atlantis"}), do: {:error, "no such city"}
  def run(%{city: city, unit: unit}), do: "#{city}: 21 degrees #{unit}"
end

defmodule DSPex.Test.NamedTool do
  @moduledoc false
  use DSPex.Tool, name: "lookup", desc: "Looks things up.", timeout: 1_000

  param :keys, {:list, :str}

  @impl DSPex.Tool
  def run(%{keys: keys}), do: {:ok, Map.new(keys, &{&1, String.length(&1)})}
end

defmodule DSPex.Test.LineItem do
  @moduledoc "One line of an invoice."
  use DSPex.Schema

  field :description, :string, desc: "What was sold"
  field :quantity, :integer, ge: 1
  field :unit_price, :float, gt: 0
end

defmodule DSPex.Test.Invoice do
  @moduledoc false
  use DSPex.Schema, title: "Invoice"

  field :number, :string
  field :items, {:list, DSPex.Test.LineItem}
  field :status, {:literal, ["open", "paid"]}, default: "open"
  field :due, {:optional, :date}, default: nil
end

defmodule DSPex.Test.Loop do
  @moduledoc false
  use DSPex.Schema

  field :next, {:optional, DSPex.Test.Loop}, default: nil
end
