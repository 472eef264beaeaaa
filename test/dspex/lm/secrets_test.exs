defmodule DSPex.LM.SecretsTest do
  # Issue 8 #4: an API key never reaches inspect output, a crash report, an error
  # message or the history. Every scenario below runs with ALL log output captured —
  # Elixir's Logger and a raw Erlang :logger handler (logger_formatter prints terms with
  # ~p, bypassing the Inspect protocol) — and the captures are grepped for the key.
  use ExUnit.Case, async: false

  import ExUnit.CaptureLog

  alias DSPex.{Error, LM, Predict}
  alias DSPex.LM.Scripted

  @moduletag :capture_log

  setup do
    key = "sk-LEAK-CANARY-#{System.unique_integer([:positive])}"
    {:ok, key: key}
  end

  # Runs `fun` with both log paths captured; returns {fun's result, all log text}.
  defp capture_all_logs(fun) do
    path = Path.join(System.tmp_dir!(), "dspex_raw_log_#{System.unique_integer([:positive])}")
    id = :"dspex_raw_#{System.unique_integer([:positive])}"

    :ok =
      :logger.add_handler(id, :logger_std_h, %{
        config: %{file: String.to_charlist(path)},
        formatter:
          {:logger_formatter, %{single_line: false, depth: :unlimited, chars_limit: :unlimited}}
      })

    try do
      ref = make_ref()
      elixir = capture_log(fn -> send(self(), {ref, fun.()}) end)
      # crash reports are written asynchronously
      Process.sleep(200)
      :ok = :logger_std_h.filesync(id)
      result = receive do: ({^ref, r} -> r)
      {result, elixir <> File.read!(path)}
    after
      :logger.remove_handler(id)
      File.rm(path)
    end
  end

  defmodule Holder do
    @moduledoc false
    use GenServer
    def init(state), do: {:ok, state}
    def handle_call(:crash, _from, _state), do: raise("holder crashed")
  end

  test "a crashing process that holds a predictor with a keyed LM", %{key: key} do
    lm = LM.new("openai/gpt-4o-mini", api_key: key, api_base: "http://127.0.0.1:1/v1")
    program = DSPex.ChainOfThought.new("question -> answer", lm: lm)

    {_, logs} =
      capture_all_logs(fn ->
        {:ok, pid} = GenServer.start(Holder, %{program: program, lm: lm})
        catch_exit(GenServer.call(pid, :crash))
      end)

    # the crash report is there, with the state — and the LM in it ...
    assert logs =~ "holder crashed"
    assert logs =~ "gpt-4o-mini"
    # ... but not its key
    refute logs =~ key
    refute inspect(program, limit: :infinity, printable_limit: :infinity) =~ key
  end

  test "the scripted LM's process redacts the prompts it recorded", %{key: key} do
    lm = Scripted.new(["a reply"])
    {:ok, _} = DSPex.LM.request(lm, [%{role: "user", content: "prompt with #{key}"}])

    status = :sys.get_status(lm.pid)
    refute inspect(status, limit: :infinity, printable_limit: :infinity) =~ key
    assert inspect(status) =~ "<1 recorded requests>"

    # a stray call is answered, not a crash whose stack frame would carry the state
    assert GenServer.call(lm.pid, {:take, 1, %{messages: [%{content: key}]}, :bad}) ==
             {:error, :unknown_call}

    {_, logs} =
      capture_all_logs(fn ->
        Process.unlink(lm.pid)
        :ok = GenServer.stop(lm.pid, :crash)
      end)

    # the crash report is there, with the state — redacted
    assert logs =~ "terminating"
    assert logs =~ "<1 recorded requests>"
    refute logs =~ key
  end

  test "an exit that carries request headers becomes an error without them", %{key: key} do
    headers = [{"authorization", "Bearer " <> key}]
    reason = {:timeout, {GenServer, :call, [self(), {:request, %{headers: headers}}, 5_000]}}

    # the transport boundary of the remote LM
    assert {:error, %Error{type: :port_exited, message: msg}} =
             LM.Pipeline.pool_call(fn -> exit(reason) end)

    assert msg == "the transport call exited: {:timeout, {GenServer, :call, <3 args>}}"

    # the same exit inside a predictor run by Parallel, by DSPex.stream and by a program
    lm = Scripted.new(fn _msgs, _params -> exit(reason) end)
    qa = Predict.new("question -> answer", lm: lm)

    {results, logs} =
      capture_all_logs(fn ->
        {:ok, [parallel]} = DSPex.Parallel.batch(qa, [[question: "q"]])
        [streamed] = DSPex.stream(qa, [question: "q"], on_error: :yield) |> Enum.to_list()
        raised = DSPex.stream(qa, question: "q") |> Enum.to_list() |> catch_error()
        {parallel, streamed, raised}
      end)

    {{:error, %Error{} = e1}, {:error, %Error{} = e2}, %Error{} = e3} = results

    for e <- [e1, e2, e3] do
      refute Exception.message(e) =~ key
      refute inspect(e, limit: :infinity, printable_limit: :infinity) =~ key
      assert Exception.message(e) =~ "GenServer, :call, <3 args>"
    end

    refute logs =~ key
  end

  test "an exception quoting a request term is named, not quoted", %{key: key} do
    lm =
      Scripted.new(fn _msgs, _params ->
        raise MatchError, term: %{headers: [{"authorization", key}]}
      end)

    qa = Predict.new("question -> answer", lm: lm)

    {results, logs} =
      capture_all_logs(fn ->
        {DSPex.Parallel.batch(qa, [[question: "q"]]),
         DSPex.stream(qa, [question: "q"], on_error: :yield) |> Enum.to_list()}
      end)

    {{:ok, [{:error, e1}]}, [{:error, e2}]} = results
    assert e1.message == "MatchError"
    assert e2.message == "streamed call raised MatchError"
    refute logs =~ key
  end

  test "a real call: errors, telemetry, history and logs stay clean", %{key: key} do
    {:ok, srv} =
      DSPex.Test.LoopbackServer.start_link(
        routes: %{
          "/v1/chat/completions" => %{
            status: 401,
            headers: [{"content-type", "application/json"}],
            body: ~s({"error":{"message":"Incorrect API key provided: #{key}"}})
          }
        }
      )

    lm =
      LM.new("openai/x",
        api_key: key,
        api_base: DSPex.Test.LoopbackServer.url(srv, "/v1"),
        cache: false,
        num_retries: 0
      )

    qa = Predict.new("question -> answer", lm: lm)

    {result, logs} = capture_all_logs(fn -> DSPex.call(qa, question: "q") end)
    assert {:error, %Error{type: :auth} = e} = result
    assert e.message =~ "[REDACTED]"
    refute inspect(e, limit: :infinity, printable_limit: :infinity) =~ key
    refute inspect(DSPex.LM.History.last(10), limit: :infinity, printable_limit: :infinity) =~ key
    refute logs =~ key
    # the key did go out, in the request header
    [req] = DSPex.Test.LoopbackServer.requests(srv, "/v1/chat/completions")
    assert {"authorization", "Bearer " <> key} in req.headers
  end
end
