defmodule DSPex.Local.Test.GGUFWriter do
  @moduledoc false
  # A tiny GGUF v3 writer for the ExUnit tests: valid files to start from, and the raw
  # pieces to build hostile ones (truncated, huge counts, bad offsets, wrong types,
  # duplicate keys, nested arrays).

  import Bitwise

  def str(s), do: <<byte_size(s)::little-64, s::binary>>

  def kv(key, :u32, v), do: str(key) <> <<4::little-32, v::little-32>>
  def kv(key, :f32, v), do: str(key) <> <<6::little-32, v::little-float-32>>
  def kv(key, :bool, v), do: str(key) <> <<7::little-32, if(v, do: 1, else: 0)>>
  def kv(key, :string, v), do: str(key) <> <<8::little-32>> <> str(v)
  def kv(key, :u64, v), do: str(key) <> <<10::little-32, v::little-64>>

  def kv(key, {:array, :string}, vs),
    do:
      str(key) <>
        <<9::little-32, 8::little-32, length(vs)::little-64>> <> Enum.map_join(vs, &str/1)

  def kv(key, {:array, :i32}, vs),
    do:
      str(key) <>
        <<9::little-32, 5::little-32, length(vs)::little-64>> <>
        for(v <- vs, into: <<>>, do: <<v::little-signed-32>>)

  def kv(key, {:array, :f32}, vs),
    do:
      str(key) <>
        <<9::little-32, 6::little-32, length(vs)::little-64>> <>
        for(v <- vs, into: <<>>, do: <<v::little-float-32>>)

  def tensor_info(name, dims, type, offset),
    do:
      str(name) <>
        <<length(dims)::little-32>> <>
        for(d <- dims, into: <<>>, do: <<d::little-64>>) <> <<type::little-32, offset::little-64>>

  def header(n_tensors, n_kv), do: <<"GGUF", 3::little-32, n_tensors::little-64, n_kv::little-64>>

  def pad(bin, align \\ 32) do
    r = rem(byte_size(bin), align)
    if r == 0, do: bin, else: bin <> :binary.copy(<<0>>, align - r)
  end

  @doc false
  # A valid random-weight F32 llama model with a byte-level BPE vocabulary of 256+1
  # tokens (the last is <|endoftext|>). Returns the file bytes.
  def tiny_llama(opts \\ []) do
    n = Keyword.get(opts, :n_embd, 32)
    ff = Keyword.get(opts, :n_ff, 64)
    layers = Keyword.get(opts, :n_layer, 1)
    extra_kv = Keyword.get(opts, :extra_kv, [])
    drop = Keyword.get(opts, :drop, [])
    tokens = for(b <- 0..255, do: byte_token(b)) ++ ["<|endoftext|>"]
    vocab = length(tokens)

    kvs =
      [
        kv("general.architecture", :string, "llama"),
        kv("llama.context_length", :u32, 64),
        kv("llama.embedding_length", :u32, n),
        kv("llama.block_count", :u32, layers),
        kv("llama.feed_forward_length", :u32, ff),
        kv("llama.attention.head_count", :u32, 2),
        kv("llama.attention.layer_norm_rms_epsilon", :f32, 1.0e-5),
        kv("tokenizer.ggml.model", :string, "gpt2"),
        kv("tokenizer.ggml.pre", :string, "gpt-2"),
        kv("tokenizer.ggml.tokens", {:array, :string}, tokens),
        kv("tokenizer.ggml.token_type", {:array, :i32}, List.duplicate(1, vocab - 1) ++ [3]),
        kv("tokenizer.ggml.merges", {:array, :string}, ["h e"]),
        kv("tokenizer.ggml.eos_token_id", :u32, vocab - 1)
      ]
      |> Enum.reject(fn bin -> Enum.any?(drop, &String.contains?(bin, &1)) end)
      |> Kernel.++(extra_kv)

    seed = :rand.seed_s(:exsss, {1, 2, 3})

    {tensors, _} =
      ([{"token_embd.weight", [n, vocab]}, {"output_norm.weight", [n]}] ++
         Enum.flat_map(0..(layers - 1), fn l ->
           [
             {"blk.#{l}.attn_norm.weight", [n]},
             {"blk.#{l}.attn_q.weight", [n, n]},
             {"blk.#{l}.attn_k.weight", [n, n]},
             {"blk.#{l}.attn_v.weight", [n, n]},
             {"blk.#{l}.attn_output.weight", [n, n]},
             {"blk.#{l}.ffn_norm.weight", [n]},
             {"blk.#{l}.ffn_gate.weight", [n, ff]},
             {"blk.#{l}.ffn_up.weight", [n, ff]},
             {"blk.#{l}.ffn_down.weight", [ff, n]}
           ]
         end))
      |> Enum.reject(fn {name, _} -> name in drop end)
      |> Enum.map_reduce(seed, fn {name, dims}, s ->
        count = Enum.reduce(dims, 1, &(&1 * &2))

        {data, s} =
          if length(dims) == 1 do
            {for(_ <- 1..count, into: <<>>, do: <<1.0::little-float-32>>), s}
          else
            Enum.reduce(1..count, {<<>>, s}, fn _, {acc, s} ->
              {x, s} = :rand.uniform_s(s)
              {<<acc::binary, (x - 0.5) * 0.5::little-float-32>>, s}
            end)
          end

        {{name, dims, data}, s}
      end)

    assemble(kvs, tensors)
  end

  def assemble(kvs, tensors) do
    {infos, data, _} =
      Enum.reduce(tensors, {<<>>, <<>>, 0}, fn {name, dims, bytes}, {infos, data, off} ->
        padded = pad(bytes)
        {infos <> tensor_info(name, dims, 0, off), data <> padded, off + byte_size(padded)}
      end)

    pad(header(length(tensors), length(kvs)) <> Enum.join(kvs) <> infos) <> data
  end

  defp byte_token(b) do
    cp =
      cond do
        b <= 0x20 -> 0x100 + b
        b >= 0x7F and b <= 0xA0 -> 0x121 + (b - 0x7F)
        b == 0xAD -> 0x143
        true -> b
      end

    <<cp::utf8>>
  end

  def u64_max, do: (1 <<< 64) - 1
end
