defmodule DSPex.History do
  @moduledoc """
  Conversation history as an input value, like `dspy.History`.

  A signature input of type `:history` takes `%DSPex.History{messages: [map]}`; each
  message is a map of that signature's fields (atom keys), rendered by the adapters as a
  user turn (its input fields) and an assistant turn (its output fields).

  ## Examples

      iex> h = DSPex.History.new([%{question: "2+2?", answer: "4"}])
      iex> length(h.messages)
      1
  """

  @type t :: %__MODULE__{messages: [map]}
  defstruct messages: []

  @doc """
  Builds a history from a list of message maps.

  ## Examples

      iex> DSPex.History.new([]).messages
      []
  """
  @spec new([map]) :: t
  def new(messages) when is_list(messages), do: %__MODULE__{messages: messages}
end
