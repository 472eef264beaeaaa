defmodule DSPex.Adapter.JSON do
  @moduledoc """
  DSPy 3.3.1's `JSONAdapter`, byte for byte: inputs use `[[ ## name ## ]]` markers, the
  LM answers with one JSON object (indent 2 in demos), and parsing repairs the object
  (the first balanced `{...}` when the whole text is not one) and keeps the output keys.

  Structured-output `response_format` negotiation is the LM layer's business; this
  module renders and parses text only.

  ## Examples

      iex> sig = DSPex.Signature.parse!("question -> answer, confidence: float")
      iex> [_, user] = DSPex.Adapter.JSON.format(sig, [], %{question: "Why?"}, [])
      iex> user.content =~ "Respond with a JSON object in the following order of fields: `answer`, then `confidence` (must be formatted as a valid Python float)."
      true
      iex> DSPex.Adapter.JSON.parse(sig, ~s|Sure: {"answer": "because", "confidence": "0.5"}|)
      {:ok, %{answer: "because", confidence: 0.5}}
  """

  @behaviour DSPex.Adapter

  alias DSPex.Adapter.Native

  @doc """
  Renders the messages for one call (see `DSPex.Adapter.Chat.format/4`); the output
  structure is a JSON object and demos' assistant turns are JSON.

  ## Examples

      iex> sig = DSPex.Signature.parse!("q -> a")
      iex> [system, user] = DSPex.Adapter.JSON.format(sig, [], %{q: "x"})
      iex> {system.role, user.role}
      {"system", "user"}
      iex> user.content =~ "Respond with a JSON object in the following order of fields: `a`."
      true
  """
  @impl true
  @spec format(term, [map], map, keyword) :: [DSPex.Adapter.message()]
  def format(signature, demos, inputs, opts \\ []) when is_list(opts),
    do: Native.format(__MODULE__, :json, signature, demos, inputs)

  @doc """
  Parses a JSON (or JSON-ish) completion into `{:ok, %{field => value}}` or
  `{:error, %DSPex.Error{type: :adapter_parse}}`.

  ## Examples

      iex> sig = DSPex.Signature.parse!("q -> a, n: int")
      iex> DSPex.Adapter.JSON.parse(sig, ~s|{"a": "x", "n": 3, "extra": 1}|)
      {:ok, %{a: "x", n: 3}}
  """
  @impl true
  @spec parse(term, binary) :: {:ok, %{atom => term}} | {:error, DSPex.Error.t()}
  def parse(signature, completion), do: Native.parse(__MODULE__, :json, signature, completion)

  @doc """
  `parse/2` with options: `ordered_dicts: true` returns dict values as
  `{:ordered, [{key, value}]}` in the order the LM wrote their keys (what
  `DSPex.ReAct` renders back into its trajectory).

  ## Examples

      iex> sig = DSPex.Signature.parse!("q -> args: dict")
      iex> DSPex.Adapter.JSON.parse(sig, ~s({"args": {"b": 1, "a": 2}}), ordered_dicts: true)
      {:ok, %{args: {:ordered, [{"b", 1}, {"a", 2}]}}}
  """
  @impl true
  @spec parse(term, binary, keyword) :: {:ok, %{atom => term}} | {:error, DSPex.Error.t()}
  def parse(signature, completion, opts),
    do: Native.parse(__MODULE__, :json, signature, completion, opts)

  @doc """
  Whether predictors use the LM's native function calling with this adapter unless told
  otherwise (`use_native_function_calling:`): `true`, DSPy's `JSONAdapter` default. See
  `DSPex.Adapter.plan/6`.

  ## Examples

      iex> DSPex.Adapter.JSON.native_function_calling?()
      true
  """
  @impl true
  @spec native_function_calling?() :: boolean
  def native_function_calling?, do: true

  @doc """
  DSPy's `format_user_message_content`: the `[[ ## name ## ]]` blocks of the inputs
  present in `inputs`, without the output reminder.

  ## Examples

      iex> sig = DSPex.Signature.parse!("a, b -> c")
      iex> DSPex.Adapter.JSON.format_user_message_content(sig, %{a: "x", b: "y"})
      "[[ ## a ## ]]\\nx\\n\\n[[ ## b ## ]]\\ny"
  """
  @impl true
  @spec format_user_message_content(term, map) :: binary
  def format_user_message_content(signature, inputs),
    do: Native.format_user(:json, signature, inputs)

  @doc """
  Like `parse/2` but raises the `DSPex.Error`.

  ## Examples

      iex> DSPex.Adapter.JSON.parse!(DSPex.Signature.parse!("q -> a"), ~s|{"a": "x"}|)
      %{a: "x"}
  """
  @spec parse!(term, binary) :: %{atom => term}
  def parse!(signature, completion),
    do: Native.parse!(__MODULE__, :json, signature, completion)

  @doc """
  Renders output values as the assistant's JSON object (`json.dumps(indent=2)`); a
  missing field is `null` unless `missing` gives a text.

  ## Examples

      iex> DSPex.Adapter.JSON.format_assistant_message(DSPex.Signature.parse!("q -> a"), %{a: "x"})
      ~s|{\\n  "a": "x"\\n}|
  """
  @impl true
  @spec format_assistant_message(term, map, binary | nil) :: binary
  def format_assistant_message(signature, outputs, missing \\ nil),
    do: Native.format_assistant(:json, signature, outputs, missing)
end
