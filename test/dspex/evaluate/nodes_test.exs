defmodule DSPex.Evaluate.NodesTest do
  # Evaluate across Erlang nodes: peers started with :peer on this host, each running
  # its own DSPex application (port pool, LM cache) against one loopback LM server.
  use ExUnit.Case, async: false

  import ExUnit.CaptureLog

  alias DSPex.Evaluate
  alias DSPex.Test.{Cluster, EvaluateSupport, OpenAILoopback}
  alias DSPex.Test.EvaluateSupport.Notify

  doctest DSPex.Evaluate.Nodes

  @moduletag timeout: 180_000

  setup_all do
    Cluster.ensure_distributed!()
    {peer_a, node_a} = Cluster.start_peer!()
    {peer_b, node_b} = Cluster.start_peer!()

    on_exit(fn ->
      Cluster.stop_peer(peer_a)
      Cluster.stop_peer(peer_b)
    end)

    {:ok, peers: %{a: {peer_a, node_a}, b: {peer_b, node_b}}}
  end

  setup do
    {:ok, srv} =
      OpenAILoopback.start_link(answer: &EvaluateSupport.loopback_answer/1, delay_ms: 40)

    lm = DSPex.LM.new("openai/loopback", api_base: OpenAILoopback.api_base(srv), cache: false)
    ref = make_ref()
    parent = self()

    :ok =
      DSPex.Telemetry.attach_many(
        ref,
        [[:dspex, :evaluate, :example], [:dspex, :evaluate, :retry]],
        fn event, m, meta, _ -> send(parent, {ref, event, m, meta}) end,
        nil
      )

    on_exit(fn -> DSPex.Telemetry.detach(ref) end)
    {:ok, srv: srv, lm: lm, ref: ref}
  end

  defp program(lm, notify \\ nil),
    do: %Notify{qa: DSPex.Predict.new("question -> answer", lm: lm), notify: notify}

  defp summary(result),
    do: Enum.map(result.results, fn {ex, p, s} -> {ex[:question], p.answer, s} end)

  defp example_events(ref) do
    receive do
      {^ref, [:dspex, :evaluate, :example], _m, meta} -> [meta | example_events(ref)]
    after
      0 -> []
    end
  end

  test "examples spread over the nodes and the results equal a one-node run", ctx do
    %{a: {_, node_a}, b: {_, node_b}} = ctx.peers
    devset = EvaluateSupport.devset(30)
    metric = &EvaluateSupport.answer_match/2

    {:ok, local} = Evaluate.run(program(ctx.lm), devset, metric: metric, max_concurrency: 4)
    _ = example_events(ctx.ref)

    {:ok, spread} =
      Evaluate.run(program(ctx.lm), devset,
        metric: metric,
        max_concurrency: 4,
        nodes: [node(), node_a, node_b]
      )

    assert summary(spread) == summary(local)
    # q4, q8, ..., q28 are answered wrong by the LM: 7 of 30.
    assert spread.score == 76.67

    by_node = ctx.ref |> example_events() |> Enum.frequencies_by(& &1.node)
    assert Map.keys(by_node) |> Enum.sort() == Enum.sort([node(), node_a, node_b])
    assert by_node |> Map.values() |> Enum.sum() == 30
    assert OpenAILoopback.count(ctx.srv) == 60
  end

  test "a compiled anonymous metric runs on peers; a test-file one is refused up front", ctx do
    %{a: {_, node_a}} = ctx.peers
    devset = EvaluateSupport.devset(8)

    {:ok, r} =
      Evaluate.run(program(ctx.lm), devset,
        metric: EvaluateSupport.answer_match_fun(),
        nodes: [node(), node_a]
      )

    assert r.score == 75.0

    assert {:error, %DSPex.Error{type: :node_unavailable} = e} =
             Evaluate.run(program(ctx.lm), devset,
               metric: fn ex, pred -> ex[:answer] == pred.answer end,
               nodes: [node(), node_a]
             )

    assert e.message =~ "#{node_a}: module #{inspect(__MODULE__)} is not available"
  end

  test "killing a node mid-run re-runs its examples elsewhere and loses nothing", ctx do
    %{a: {_, node_a}} = ctx.peers
    {peer_c, node_c} = Cluster.start_peer!()
    on_exit(fn -> Cluster.stop_peer(peer_c) end)

    devset = EvaluateSupport.devset(40)
    metric = &EvaluateSupport.answer_match/2
    parent = self()

    task =
      Task.async(fn ->
        capture_log(fn ->
          send(
            parent,
            {:result,
             Evaluate.run(program(ctx.lm, parent), devset,
               metric: metric,
               max_concurrency: 3,
               nodes: [node(), node_a, node_c]
             )}
          )
        end)
      end)

    # Wait until node C is running examples, then take it down hard.
    assert_receive {:started, ^node_c, _}, 30_000
    :erpc.cast(node_c, :erlang, :halt, [])
    assert_receive {:result, {:ok, r}}, 60_000
    log = Task.await(task)
    assert log =~ "node #{node_c} is unavailable"

    {:ok, local} = Evaluate.run(program(ctx.lm), devset, metric: metric, max_concurrency: 8)
    assert summary(r) == summary(local)
    assert r.errors == []
    assert length(r.results) == 40

    retried =
      for {ref, [:dspex, :evaluate, :retry], _, %{reason: :nodedown, node: ^node_c} = m} <-
            drain(ctx.ref),
          ref == ctx.ref,
          do: m.index

    assert retried != []
  end

  defp drain(ref) do
    receive do
      {^ref, _, _, _} = msg -> [msg | drain(ref)]
    after
      0 -> []
    end
  end

  test "a node that is not connected is reported before anything runs", ctx do
    assert {:error,
            %DSPex.Error{
              type: :node_unavailable,
              details: %{problems: [{:"nobody@127.0.0.1", _}]}
            }} =
             Evaluate.run(program(ctx.lm), EvaluateSupport.devset(2),
               metric: &EvaluateSupport.answer_match/2,
               nodes: [node(), :"nobody@127.0.0.1"]
             )
  end
end
