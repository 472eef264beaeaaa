defmodule DSPex.Local.Check do
  @moduledoc """
  Compares the engine with llama.cpp's reference outputs (the JSON files written by
  `ref_llamacpp.mjs` from the GGUF test data; see `docs/guide/engine.md`), with the
  tolerances the test-data README measured:

    * tokenization: exact (ids with and without special-token parsing, and the
      detokenized text);
    * log-probs (the top 10 and the next token, at every position): F32 within 1e-4,
      F16 within 2e-2, quantized within 1e-4 at position 0 and 0.5 everywhere (a value
      that lands within float rounding of a quantization boundary "flips", and the flip
      stays in the KV cache);
    * argmax equal wherever llama.cpp's top1-top2 margin is >= 0.1;
    * the greedy continuation equal up to the first step whose margin is < 0.1.

  Used by `make infer-check` (`tools/infer_check.exs`) and the ExUnit tests.

  ## Examples

      iex> model = DSPex.Local.load!("test/dspex/local/fixtures/qwen2-qwen2-q4_0-mha-tied.gguf")
      iex> {:ok, ref} = DSPex.Local.Check.read_ref("test/dspex/local/fixtures/qwen2-qwen2-q4_0-mha-tied.ref.json")
      iex> r = DSPex.Local.Check.compare(model, ref, "q4_0")
      iex> {r.pass, r.tokenize_ok == r.tokenize_total, r.greedy_same}
      {true, true, true}
  """

  @margin 0.1

  @doc """
  Reads a reference JSON file.

  ## Examples

      iex> {:ok, ref} = DSPex.Local.Check.read_ref("test/dspex/local/fixtures/qwen2-qwen2-q4_0-mha-tied.ref.json")
      iex> ref["llama_cpp"] =~ "llama.cpp"
      true
  """
  @spec read_ref(Path.t()) :: {:ok, map} | {:error, DSPex.Error.t()}
  def read_ref(path) do
    with {:ok, bin} <- File.read(path) |> file_error(path) do
      DSPex.JSON.decode(bin)
    end
  end

  defp file_error({:ok, _} = ok, _), do: ok

  defp file_error({:error, r}, path),
    do: {:error, DSPex.Error.new(:file, "#{path}: #{:file.format_error(r)}")}

  @doc """
  The log-prob tolerance for a weight type (`"f32"`, `"f16"`, or any quantized type).

  ## Examples

      iex> {DSPex.Local.Check.tolerance("f32"), DSPex.Local.Check.tolerance("q4_k")}
      {1.0e-4, 0.5}
  """
  @spec tolerance(binary) :: float
  def tolerance("f32"), do: 1.0e-4
  def tolerance("f16"), do: 2.0e-2
  def tolerance(_), do: 0.5

  @doc """
  Runs every comparison for one model against its reference. `type` is the model's
  weight type as the manifest names it (it selects the tolerance). Options:
  `greedy: false` skips the continuation (for quick checks).

  Returns a map: `max_delta`, `pos0_delta`, `argmax_ok`/`argmax_n` (positions with
  margin >= 0.1), `greedy_same`, `greedy_steps` (steps compared), `tokenize_ok`/
  `tokenize_total`, `tolerance`, `pass`.
  """
  @spec compare(DSPex.Local.Model.t(), map, binary, keyword) :: map
  def compare(model, ref, type, opts \\ []) do
    tok = compare_tokenize(model, ref["tokenize"] || [])
    lp = compare_logprobs(model, ref["logprobs"])

    greedy =
      if Keyword.get(opts, :greedy, true),
        do: compare_greedy(model, ref["greedy"]),
        else: %{greedy_same: true, greedy_steps: 0}

    tol = tolerance(type)
    quantized = type not in ["f32", "f16"]

    pass =
      tok.tokenize_ok == tok.tokenize_total and lp.max_delta <= tol and
        lp.argmax_ok == lp.argmax_n and
        greedy.greedy_same and (not quantized or lp.pos0_delta <= 1.0e-4)

    tok |> Map.merge(lp) |> Map.merge(greedy) |> Map.merge(%{tolerance: tol, pass: pass})
  end

  @doc false
  def compare_tokenize(model, cases) do
    results =
      Enum.flat_map(cases, fn c ->
        text = c["text"]

        [
          DSPex.Local.tokenize(model, text) == c["tokens"],
          DSPex.Local.tokenize(model, text, parse_special: true) == c["tokens_special"],
          DSPex.Local.detokenize(model, c["tokens"]) == c["detok"]
        ]
      end)

    %{tokenize_ok: Enum.count(results, & &1), tokenize_total: length(results)}
  end

  @doc false
  def compare_logprobs(model, %{"tokens" => ids, "positions" => positions}) do
    {:ok, rows} = DSPex.Local.eval_logprobs(model, ids, top: 64)
    by_pos = Map.new(rows, &{&1.pos, &1})

    Enum.reduce(
      positions,
      %{max_delta: 0.0, pos0_delta: 0.0, argmax_ok: 0, argmax_n: 0, worst_pos: nil},
      fn p, acc ->
        row = by_pos[p["pos"]]
        ours = Map.new(row.top)
        # the reference's top 10 are within our top 64 unless something is badly off; a
        # missing one counts as a delta of 1e9 (an obvious failure)
        top_delta =
          p["top"]
          |> Enum.map(fn [id, lp] -> abs(Map.get(ours, id, -1.0e9) - lp) end)
          |> Enum.max(fn -> 0.0 end)

        next_delta =
          if p["next_logprob"] != nil and row.next_logprob != nil,
            do: abs(row.next_logprob - p["next_logprob"]),
            else: 0.0

        delta = max(top_delta, next_delta)
        [[top_id, _] | _] = p["top"]
        [{our_top, _} | _] = row.top
        counted = p["margin"] >= @margin

        %{
          acc
          | max_delta: max(acc.max_delta, delta),
            pos0_delta: if(p["pos"] == 0, do: delta, else: acc.pos0_delta),
            argmax_n: acc.argmax_n + if(counted, do: 1, else: 0),
            argmax_ok: acc.argmax_ok + if(counted and our_top == top_id, do: 1, else: 0),
            worst_pos: if(delta > acc.max_delta, do: p["pos"], else: acc.worst_pos)
        }
      end
    )
  end

  @doc false
  def compare_greedy(model, %{"prompt" => prompt, "steps" => steps}) do
    want = Enum.map(steps, & &1["token"])
    # compare the steps before the first one whose margin is below 0.1 (a near-tie may
    # legitimately go either way, and everything after it follows from it)
    n = Enum.find_index(steps, &(&1["margin"] < @margin)) || length(steps)

    if n == 0 do
      %{greedy_same: true, greedy_steps: 0, greedy_tokens: []}
    else
      {:ok, r} =
        DSPex.Local.generate(model, prompt,
          max_tokens: n,
          temperature: 0.0,
          ignore_eos: true,
          repeat_penalty: 1.0
        )

      %{greedy_same: r.tokens == Enum.take(want, n), greedy_steps: n, greedy_tokens: r.tokens}
    end
  end
end
