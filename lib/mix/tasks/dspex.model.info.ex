defmodule Mix.Tasks.Dspex.Model.Info do
  @shortdoc "Describes a GGUF model file and whether DSPex.Local can run it"

  @moduledoc """
  Prints what is inside a GGUF file: architecture and shapes, tensor types, tokenizer
  and vocabulary, chat template (and the family DSPex detects), file size, and whether
  the in-process engine (`DSPex.Local`) supports it — and if not, why.

      mix dspex.model.info path/to/model.gguf
      mix dspex.model.info smollm2            # a cached alias (see mix dspex.model.get)
      mix dspex.model.info model.gguf --tensors   # also list every tensor
      mix dspex.model.info model.gguf --metadata  # also list every metadata key

  Exits with status 1 when the file cannot be parsed or is not supported.
  """

  use Mix.Task

  @impl true
  def run(args) do
    {opts, paths, _} = OptionParser.parse(args, strict: [tensors: :boolean, metadata: :boolean])

    path =
      case paths do
        [p] -> resolve(p)
        _ -> Mix.raise("usage: mix dspex.model.info PATH.gguf [--tensors] [--metadata]")
      end

    Mix.Task.run("app.config")
    Application.ensure_all_started(:dspex)

    case DSPex.Local.inspect_file(path) do
      {:ok, r} ->
        print(path, r, opts)
        unless r.supported, do: exit({:shutdown, 1})

      {:error, e} ->
        Mix.shell().error("#{path}: #{e.message}")
        exit({:shutdown, 1})
    end
  end

  defp resolve(p) do
    case DSPex.Local.Models.resolve(p) do
      {:ok, path} -> path
      {:error, e} -> Mix.raise(e.message)
    end
  end

  defp print(path, r, opts) do
    meta = Map.new(r.metadata)
    out = &Mix.shell().info/1
    out.("file:          #{path}")

    out.(
      "size:          #{mb(r.file_size)} (GGUF v#{r.gguf_version}, #{length(r.tensors)} tensors, #{length(r.metadata)} keys)"
    )

    out.("name:          #{meta["general.name"] || "-"}")
    arch = meta["general.architecture"]
    out.("architecture:  #{arch || "-"}")

    if arch do
      keys =
        ~w(context_length embedding_length block_count feed_forward_length attention.head_count
                attention.head_count_kv rope.freq_base attention.layer_norm_rms_epsilon)

      shape = for k <- keys, v = meta["#{arch}.#{k}"], v != nil, do: "#{k} #{fmt(v)}"
      out.("shape:         " <> Enum.join(shape, ", "))
    end

    types =
      r.tensors
      |> Enum.frequencies_by(& &1.type)
      |> Enum.sort_by(fn {_, n} -> -n end)
      |> Enum.map_join(", ", fn {t, n} -> "#{t} x#{n}" end)

    out.("tensor types:  #{types}")

    case meta["tokenizer.ggml.tokens"] do
      {:array, _, n} ->
        out.(
          "vocabulary:    #{n} tokens, #{meta["tokenizer.ggml.model"]} (pre: #{meta["tokenizer.ggml.pre"] || "default"})"
        )

      _ ->
        out.("vocabulary:    -")
    end

    family = if r.supported, do: r.info.chat_family, else: nil

    case meta["tokenizer.chat_template"] do
      nil -> out.("chat template: none (pass chat_template: to DSPex.Local)")
      t -> out.("chat template: #{byte_size(t)} bytes, family #{family || "not recognised"}")
    end

    if r.supported do
      out.("supported:     yes (kernels: #{r.info.kernels})")
    else
      out.("supported:     NO — #{r.reason}")
    end

    if opts[:tensors] do
      out.("\ntensors:")

      for t <- r.tensors,
          do:
            out.(
              "  #{String.pad_trailing(t.name, 40)} #{String.pad_trailing(t.type, 6)} #{inspect(t.shape)}"
            )
    end

    if opts[:metadata] do
      out.("\nmetadata:")
      for {k, v} <- r.metadata, do: out.("  #{k} = #{fmt(v)}")
    end
  end

  defp mb(bytes), do: "#{Float.round(bytes / 1_000_000, 1)} MB"

  defp fmt({:array, type, n}), do: "[#{n} x #{type}]"
  defp fmt(v) when is_binary(v) and byte_size(v) > 80, do: inspect(binary_part(v, 0, 80) <> "...")
  defp fmt(v) when is_binary(v), do: inspect(v)
  defp fmt(v), do: to_string(v)
end
