defmodule DSPex.Optimizers.KNNFewShotTest do
  use ExUnit.Case, async: true

  alias DSPex.Optimizers.{BootstrapFewShot, KNNFewShot}
  alias DSPex.Test.OptimizerWorld, as: World

  doctest DSPex.KNN
  doctest KNNFewShot

  @cases World.fixture!("knn.json")["cases"]

  # The generator's vectorizer: the vector of the world entry whose question the text holds.
  defp embedder(world) do
    DSPex.Embedder.new(fn texts ->
      for t <- texts do
        case Enum.find(world, &String.contains?(t, &1["q"])) do
          nil -> [0, 0, 0, 0]
          e -> e["vec"]
        end
      end
    end)
  end

  test "picks the neighbours, demos and answers DSPy 3.3.1 picks (#{length(@cases)} golden cases)" do
    world = World.world()
    by_id = World.by_id(world)
    n_queries = @cases |> Enum.map(&length(&1["results"])) |> Enum.sum()
    assert n_queries > 40

    for c <- @cases do
      trainset = World.examples(world, c["trainset"])

      {:ok, compiled} =
        KNNFewShot.compile(World.program(c["shape"]), trainset,
          k: c["k"],
          embedder: embedder(world),
          metric: World.metric(c["metric"], world),
          max_bootstrapped_demos: c["max_bootstrapped_demos"],
          max_labeled_demos: c["max_labeled_demos"]
        )

      for q <- c["results"] do
        label = "case #{c["shape"]} k=#{c["k"]}, query #{q["query"]}"
        question = by_id[q["query"]]["q"]
        {:ok, near} = DSPex.KNN.neighbors(compiled.knn, question: question)
        assert near == Enum.map(q["neighbours"], &Enum.at(trainset, &1)), label <> ": neighbours"

        {result, _log} =
          ExUnit.CaptureLog.with_log(fn ->
            DSPex.with_settings([lm: World.lm(world)], fn ->
              {:ok, r} = BootstrapFewShot.run_checked(compiled.original, near, compiled.bootstrap)
              assert World.demos_of(r.program) == World.demos(q["demos"]), label <> ": demos"
              DSPex.call(compiled, question: question)
            end)
          end)

        case q["raised"] do
          nil ->
            assert {:ok, pred} = result, label
            assert pred.answer == q["answer"], label

          _ ->
            assert {:error, %DSPex.Error{}} = result, label
        end
      end
    end
  end

  test "the compiled program saves as DSPy saves the reset program" do
    world = World.world()
    trainset = World.examples(world, ["Q01", "Q02", "Q03"])
    cot = World.program("cot")
    {:ok, compiled} = KNNFewShot.compile(cot, trainset, k: 2, embedder: embedder(world))

    assert Enum.map(DSPex.Module.named_predictors(compiled), &elem(&1, 0)) == ["predict"]

    assert DSPex.Program.dump_state(compiled) ==
             DSPex.Program.dump_state(DSPex.Module.reset(cot))
  end

  test "an embedder failure or ragged vectors are errors" do
    world = World.world()
    trainset = World.examples(world, ["Q01", "Q02"])
    qa = World.program("predict")
    bad = DSPex.Embedder.new(fn _ -> raise "no embeddings today" end)

    assert {:error, %DSPex.Error{type: :embedder}} =
             KNNFewShot.compile(qa, trainset, k: 1, embedder: bad)

    ragged =
      DSPex.Embedder.new(fn texts ->
        Enum.with_index(texts, fn _, i -> List.duplicate(1.0, i + 1) end)
      end)

    assert {:error, %DSPex.Error{type: :embedder, message: msg}} =
             KNNFewShot.compile(qa, trainset, k: 1, embedder: ragged)

    assert msg =~ "different sizes"

    assert_raise ArgumentError, ~r/required option :k/, fn ->
      KNNFewShot.compile(qa, trainset, embedder: bad)
    end
  end

  test "the NIF checks its arguments" do
    rows = DSPex.KNN.pack([[1.0, 2.0]])

    assert_raise ArgumentError, ~r/multiple of dim/, fn ->
      DSPex.KNN.search(rows <> <<1>>, 2, [[1.0, 1.0]], 1)
    end

    assert_raise ArgumentError, ~r/k must be a positive integer/, fn ->
      DSPex.NIF.guard(fn -> DSPex.NIF.knn_search(rows, 2, rows, 0) end)
    end

    assert_raise ArgumentError, ~r/dimension/, fn ->
      DSPex.NIF.guard(fn -> DSPex.NIF.knn_search(rows, 0, rows, 1) end)
    end

    # an unaligned sub-binary is copied, not misread
    <<_::8, unaligned::binary>> = <<0>> <> rows
    assert DSPex.KNN.search(unaligned, 2, [[1.0, 0.0]], 1) == [[{0, 1.0}]]
  end

  test "a large matrix is searched on a dirty scheduler with the same result" do
    rows = for i <- 0..4999, do: [rem(i, 7) * 1.0, rem(i, 3) * 1.0] ++ List.duplicate(0.5, 126)
    packed = DSPex.KNN.pack(rows)
    [best] = DSPex.KNN.search(packed, 128, [List.duplicate(1.0, 128)], 3)
    assert length(best) == 3
    scores = for {i, _} <- best, do: Enum.sum(Enum.at(rows, i))
    assert scores == Enum.sort(scores, :desc)
    assert hd(scores) == 6.0 + 2.0 + 63.0
  end
end
