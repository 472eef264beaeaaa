defmodule DSPex.Adapter.Chat do
  @moduledoc """
  DSPy 3.3.1's `ChatAdapter`, byte for byte: fields are delimited by
  `[[ ## name ## ]]` markers and the completion ends with `[[ ## completed ## ]]`.

  Rendering and parsing run in C (`c_src/core/adapter/render.c`, `c_src/core/adapter/parse.c`); this
  module is a thin wrapper that emits `[:dspex, :adapter, :format]` and
  `[:dspex, :adapter, :parse]` telemetry spans (metadata `%{adapter:, signature:}`).

  ## Examples

      iex> sig = DSPex.Signature.parse!("question -> answer")
      iex> [system, user] = DSPex.Adapter.Chat.format(sig, [], %{question: "2+2?"}, [])
      iex> system.role
      "system"
      iex> user.content
      "[[ ## question ## ]]\\n2+2?\\n\\nRespond with the corresponding output fields, starting with the field `[[ ## answer ## ]]`, and then ending with the marker for `[[ ## completed ## ]]`."
      iex> DSPex.Adapter.Chat.parse(sig, "[[ ## answer ## ]]\\n4\\n\\n[[ ## completed ## ]]")
      {:ok, %{answer: "4"}}
  """

  @behaviour DSPex.Adapter

  alias DSPex.Adapter.Native

  @doc """
  Renders the messages for one call: system message, demos (incomplete ones first),
  `DSPex.History` turns, then the current user turn with the output reminder.

  `signature` is a `%DSPex.Signature{}` (or anything `DSPex.Signature.resolve!/1`
  accepts); demos and inputs are maps with atom keys (`DSPex.Example` structs work too).
  Raises `ArgumentError` on values it cannot render.

  ## Examples

      iex> sig = DSPex.Signature.parse!("question -> answer: int")
      iex> [_, user] = DSPex.Adapter.Chat.format(sig, [], %{question: "1+1?"}, [])
      iex> user.content =~ "(must be formatted as a valid Python int)"
      true
  """
  @impl true
  @spec format(term, [map], map, keyword) :: [DSPex.Adapter.message()]
  def format(signature, demos, inputs, opts \\ []) when is_list(opts),
    do: Native.format(__MODULE__, :chat, signature, demos, inputs)

  @doc """
  Parses a completion into `{:ok, %{field => value}}`, values typed by the output fields
  (JSON / Python literals are accepted for non-string types). Missing required fields
  give `{:error, %DSPex.Error{type: :adapter_parse}}` with DSPy's message.

  ## Examples

      iex> sig = DSPex.Signature.parse!("q -> n: int, tags: list[str]")
      iex> DSPex.Adapter.Chat.parse(sig, "[[ ## n ## ]]\\n42\\n[[ ## tags ## ]]\\n['a', 'b']")
      {:ok, %{n: 42, tags: ["a", "b"]}}
      iex> {:error, err} = DSPex.Adapter.Chat.parse(sig, "no markers")
      iex> err.type
      :adapter_parse
  """
  @impl true
  @spec parse(term, binary) :: {:ok, %{atom => term}} | {:error, DSPex.Error.t()}
  def parse(signature, completion), do: Native.parse(__MODULE__, :chat, signature, completion)

  @doc """
  `parse/2` with options: `ordered_dicts: true` returns dict values as
  `{:ordered, [{key, value}]}` in the order the LM wrote their keys (what
  `DSPex.ReAct` renders back into its trajectory).

  ## Examples

      iex> sig = DSPex.Signature.parse!("q -> args: dict")
      iex> DSPex.Adapter.Chat.parse(sig, ~s([[ ## args ## ]]\\n{"b": 1, "a": 2}), ordered_dicts: true)
      {:ok, %{args: {:ordered, [{"b", 1}, {"a", 2}]}}}
  """
  @impl true
  @spec parse(term, binary, keyword) :: {:ok, %{atom => term}} | {:error, DSPex.Error.t()}
  def parse(signature, completion, opts),
    do: Native.parse(__MODULE__, :chat, signature, completion, opts)

  @doc """
  Whether predictors use the LM's native function calling with this adapter unless told
  otherwise (`use_native_function_calling:`): `false`, DSPy's `ChatAdapter` default. See
  `DSPex.Adapter.plan/6`.

  ## Examples

      iex> DSPex.Adapter.Chat.native_function_calling?()
      false
  """
  @impl true
  @spec native_function_calling?() :: boolean
  def native_function_calling?, do: false

  @doc """
  DSPy's `format_user_message_content`: the `[[ ## name ## ]]` blocks of the inputs
  present in `inputs`, without the output reminder.

  ## Examples

      iex> sig = DSPex.Signature.parse!("a, b -> c")
      iex> DSPex.Adapter.Chat.format_user_message_content(sig, %{a: "x", b: "y"})
      "[[ ## a ## ]]\\nx\\n\\n[[ ## b ## ]]\\ny"
  """
  @impl true
  @spec format_user_message_content(term, map) :: binary
  def format_user_message_content(signature, inputs),
    do: Native.format_user(:chat, signature, inputs)

  @doc """
  Like `parse/2` but raises the `DSPex.Error`.

  ## Examples

      iex> sig = DSPex.Signature.parse!("q -> a")
      iex> DSPex.Adapter.Chat.parse!(sig, "[[ ## a ## ]] yes")
      %{a: "yes"}
  """
  @spec parse!(term, binary) :: %{atom => term}
  def parse!(signature, completion),
    do: Native.parse!(__MODULE__, :chat, signature, completion)

  @doc """
  Renders output values as an assistant message, as DSPy does for demos: each output as
  `[[ ## name ## ]]\\nvalue`, then `[[ ## completed ## ]]`. A missing field renders as
  `None` unless `missing` (third argument) gives a text.

  ## Examples

      iex> sig = DSPex.Signature.parse!("q -> a")
      iex> DSPex.Adapter.Chat.format_assistant_message(sig, %{a: "yes"})
      "[[ ## a ## ]]\\nyes\\n\\n[[ ## completed ## ]]\\n"
  """
  @impl true
  @spec format_assistant_message(term, map, binary | nil) :: binary
  def format_assistant_message(signature, outputs, missing \\ nil),
    do: Native.format_assistant(:chat, signature, outputs, missing)
end
