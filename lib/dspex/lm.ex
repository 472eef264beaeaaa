defmodule DSPex.LM do
  @moduledoc """
  The language-model boundary.

  An LM value is any struct whose module implements this behaviour. Predict modules call
  `DSPex.LM.request/3`, which dispatches on the struct.

  A completion is `%{choices: [choice], usage: usage, model: binary}` where each choice is
  `%{text: binary | nil, finish_reason: binary | nil, tool_calls: list | nil,
  logprobs: term, reasoning_content: binary | nil}` and `usage` is
  `%{prompt_tokens:, completion_tokens:, total_tokens:}` (plus optional
  `cached_tokens`, `reasoning_tokens`). A cache hit sets `cache_hit: true` and zero usage.

  `params` is a map of request parameters (`temperature`, `max_tokens`, `n`, `stop`,
  `seed`, `response_format`, `tools`, `tool_choice`, `rollout_id`, `cache`, ...).
  """

  @type message :: %{required(:role) => binary, required(:content) => binary | list}
  @type choice :: %{
          required(:text) => binary | nil,
          optional(:finish_reason) => binary | nil,
          optional(:tool_calls) => list | nil,
          optional(:logprobs) => term,
          optional(:reasoning_content) => binary | nil
        }
  @type completion :: %{
          required(:choices) => [choice],
          required(:usage) => map,
          optional(:model) => binary,
          optional(:cache_hit) => boolean
        }

  @callback request(lm :: struct, messages :: [message], params :: map) ::
              {:ok, completion} | {:error, DSPex.Error.t()}

  @doc """
  Sends `messages` to `lm` (any struct implementing `DSPex.LM`).
  """
  @spec request(struct, [message], map) :: {:ok, completion} | {:error, DSPex.Error.t()}
  def request(%mod{} = lm, messages, params \\ %{}) when is_list(messages) and is_map(params) do
    mod.request(lm, messages, params)
  end
end
