defmodule DSPex.BaseLMTest do
  # Global history and usage: not async.
  use ExUnit.Case, async: false

  alias DSPex.{BaseLM, LM.History, LM.Scripted}

  doctest DSPex.BaseLM

  defmodule WholeLM do
    @moduledoc false
    # The smallest LM: answers whole, supports nothing.
    @behaviour DSPex.BaseLM
    defstruct model: "whole/1"

    @impl true
    def forward(_lm, messages, _params, %{sink: nil}) do
      text = "echo: " <> List.last(messages).content

      {:ok,
       %{
         choices: [%{text: text}],
         usage: %{prompt_tokens: 2, completion_tokens: 3, total_tokens: 5},
         model: "whole/1"
       }}
    end

    @impl true
    def supports?(_lm, _feature), do: false
  end

  test "every LM's calls are recorded in the history and counted in usage scopes" do
    History.clear()
    msgs = [%{role: "user", content: "hello"}]

    {{:ok, c}, usage} =
      DSPex.track_usage(fn ->
        BaseLM.request(%WholeLM{}, msgs, %{temperature: 0.0}, call: %{predictor: "p", attempt: 2})
      end)

    assert hd(c.choices).text == "echo: hello"
    assert usage == %{"whole/1" => %{prompt_tokens: 2, completion_tokens: 3, total_tokens: 5}}

    assert [
             %{
               model: "whole/1",
               predictor: "p",
               attempt: 2,
               outputs: ["echo: hello"],
               params: %{temperature: 0.0}
             }
           ] = History.last(1)

    # a direct call has no predictor
    {:ok, _} = DSPex.LM.request(%WholeLM{}, msgs)
    assert [%{predictor: nil, attempt: nil}] = History.last(1)
    assert History.usage_totals()["whole/1"].requests == 2
  end

  test "an LM that does not stream sends its whole reply as one delta" do
    me = self()
    {:ok, _} = BaseLM.stream(%WholeLM{}, [%{role: "user", content: "x"}], %{}, &send(me, &1))
    assert_received {:delta, "echo: x"}
    refute_received {:delta, _}
  end

  test "the behaviour is what any LM implements; dump_state is optional" do
    assert {:forward, 4} in BaseLM.behaviour_info(:callbacks)
    assert {:supports?, 2} in BaseLM.behaviour_info(:callbacks)
    assert BaseLM.behaviour_info(:optional_callbacks) == [dump_state: 1]
    assert BaseLM.dump_state(%WholeLM{}) == nil
    refute BaseLM.supports?(%WholeLM{}, :stream)
    assert BaseLM.supports?(Scripted.new([]), :stream)
  end
end
