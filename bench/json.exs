# JSON codec throughput: DSPex.JSON vs :jiffy (Debian erlang-jiffy) on LM-shaped documents.
#
#   MIX_ENV=prod mix run bench/json.exs
#
# Prints MB/s (of JSON text, per CPU second) for decode and encode and the ratio
# DSPex/jiffy (> 1 means DSPex is faster). Each case runs for a fixed time budget; the whole run stays < 60 s.
# "decode~" is decode with invalid_unicode: :replace (the lenient mode for provider
# replies), on the same clean text: it should cost the same as decode.

jiffy_ebin = Path.wildcard("/usr/lib/erlang/lib/jiffy-*/ebin") |> List.first()

jiffy? =
  if jiffy_ebin do
    Code.prepend_path(jiffy_ebin)
    Code.ensure_loaded?(:jiffy)
  else
    false
  end

unless jiffy?,
  do: IO.puts("(jiffy not found under /usr/lib/erlang/lib: printing DSPex numbers only)")

defmodule JSONBench do
  # The machine may be shared and noisy: the two sides are timed in alternating windows
  # (5 rounds of ~150 ms each) and each side keeps its best window. A window is measured
  # in CPU time (the VM's runtime, all threads, dirty schedulers included), which load
  # does not inflate the way it inflates wall time; idle schedulers' busy-waiting adds a
  # little to both sides (ELIXIR_ERL_OPTIONS="+sbwt none +sbwtdcpu none +sbwtdio none"
  # turns it off).
  @window_us 150_000
  @rounds 5

  # Returns {seconds per call for a, seconds per call for b}.
  def compare(a, b) do
    na = calibrate(a)
    nb = if b, do: calibrate(b), else: 0

    {ta, tb} =
      Enum.reduce(1..@rounds, {:infinity, :infinity}, fn _, {ta, tb} ->
        ta = min(ta, window(a, na))
        tb = if b, do: min(tb, window(b, nb)), else: tb
        {ta, tb}
      end)

    {ta / 1_000_000, if(b, do: tb / 1_000_000, else: nil)}
  end

  # CPU microseconds per call (runtime has millisecond resolution: ~150 ms windows)
  defp window(fun, n) do
    :erlang.statistics(:runtime)
    repeat(fun, n)
    {_, ms} = :erlang.statistics(:runtime)
    max(ms, 1) * 1000 / n
  end

  defp calibrate(fun) do
    fun.()
    {us, _} = :timer.tc(fun)
    max(1, div(@window_us, max(us, 1)))
  end

  defp repeat(_fun, 0), do: :ok

  defp repeat(fun, n) do
    fun.()
    repeat(fun, n - 1)
  end

  def mbps(bytes, secs), do: bytes / secs / 1_000_000
end

:rand.seed(:exsss, {7, 8, 9})

words =
  ~w(the model answer question context reasoning because therefore step final output signature field)

unicode = ["日本語のテキスト", "Ελληνικά", "emoji 😀🎉", "naïve café", "Привет мир", "中文字符串测试"]

rand_text = fn n, pool -> Enum.map_join(1..n, " ", fn _ -> Enum.random(pool) end) end

small_objects =
  for i <- 1..2000 do
    %{
      "id" => i,
      "role" => Enum.random(["user", "assistant", "system"]),
      "content" => rand_text.(12, words),
      "score" => :rand.uniform() * 100,
      "ok" => rem(i, 3) == 0,
      "tags" => [Enum.random(words), Enum.random(words)],
      "meta" => nil
    }
  end

long_unicode =
  for _ <- 1..40 do
    %{"text" => rand_text.(400, unicode ++ words), "lang" => "mixed"}
  end

nested_lists =
  for _ <- 1..300 do
    for _ <- 1..5,
        do:
          for(_ <- 1..6, do: [:rand.uniform(1000), :rand.uniform() * 10, "x#{:rand.uniform(99)}"])
  end

one_mb = %{
  "model" => "openai/gpt-4o-mini",
  "choices" =>
    for i <- 1..1200 do
      %{
        "index" => i,
        "message" => %{"role" => "assistant", "content" => rand_text.(60, words ++ unicode)},
        "logprobs" => for(_ <- 1..8, do: :rand.uniform() * -5),
        "finish_reason" => "stop"
      }
    end,
  "usage" => %{"prompt_tokens" => 1234, "completion_tokens" => 5678}
}

docs = [
  {"many small objects", small_objects},
  {"long unicode strings", long_unicode},
  {"nested lists", nested_lists},
  {"~1 MB response", one_mb}
]

IO.puts(
  String.pad_trailing("document", 22) <>
    String.pad_leading("bytes", 9) <>
    "  " <>
    String.pad_trailing("op", 7) <>
    String.pad_leading("DSPex MB/s", 11) <>
    String.pad_leading("jiffy MB/s", 11) <> String.pad_leading("DSPex/jiffy", 12)
)

fmt = fn x -> :erlang.float_to_binary(x, decimals: 1) end

for {name, term} <- docs do
  json = DSPex.JSON.encode!(term)
  size = byte_size(json)

  ^term =
    DSPex.JSON.decode!(json)
    |> then(fn t -> if t == term, do: term, else: raise("round trip mismatch in #{name}") end)

  for {op, ours, theirs} <- [
        {"decode", fn -> DSPex.JSON.decode!(json) end,
         fn -> :jiffy.decode(json, [:return_maps]) end},
        {"decode~", fn -> DSPex.JSON.decode!(json, invalid_unicode: :replace) end,
         fn -> :jiffy.decode(json, [:return_maps]) end},
        {"encode", fn -> DSPex.JSON.encode!(term) end, fn -> :jiffy.encode(term) end}
      ] do
    {t_ours, t_theirs} = JSONBench.compare(ours, if(jiffy?, do: theirs))
    d = JSONBench.mbps(size, t_ours)

    {j, ratio} =
      if jiffy? do
        j = JSONBench.mbps(size, t_theirs)
        {fmt.(j), :erlang.float_to_binary(d / j, decimals: 2)}
      else
        {"-", "-"}
      end

    IO.puts(
      String.pad_trailing(name, 22) <>
        String.pad_leading(Integer.to_string(size), 9) <>
        "  " <>
        String.pad_trailing(op, 7) <>
        String.pad_leading(fmt.(d), 11) <>
        String.pad_leading(j, 11) <> String.pad_leading(ratio, 12)
    )
  end
end
