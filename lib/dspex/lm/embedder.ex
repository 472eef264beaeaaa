defmodule DSPex.Embedder do
  @moduledoc """
  Text embeddings, like `dspy.Embedder`: a hosted model over the OpenAI-compatible
  `POST {api_base}/embeddings` endpoint (OpenAI, vLLM, llama.cpp server, Ollama, ...),
  or any function from a list of texts to a list of vectors.

      emb = DSPex.Embedder.new("openai/text-embedding-3-small", dimensions: 256)
      {:ok, [v1, v2]} = DSPex.Embedder.embed(emb, ["first text", "second text"])

      local = DSPex.Embedder.new(fn texts -> Enum.map(texts, &[String.length(&1) * 1.0]) end)

      smol = DSPex.Embedder.new("local/smollm2")   # a GGUF model in process (DSPex.Local.embed/3)

  Texts are sent in batches of `:batch_size` (default 200), in order; results keep the
  input order. Batches go through the port transport with the same options as
  `DSPex.LM.new/2` (`api_key`, `api_base`, `timeout`, `num_retries`, ...) and through the
  LM response cache (`caching: false` to skip). Usage is recorded for
  `DSPex.track_usage/1` under the model id.
  """

  alias DSPex.Error
  alias DSPex.LM.{Cache, Provider}

  defstruct model: nil, fun: nil, lm: nil, batch_size: 200, caching: true, params: %{}

  @type t :: %__MODULE__{}

  @own_options DSPex.Options.schema!(
                 batch_size: [type: :pos_integer, default: 200, doc: "Texts per request."],
                 caching: [
                   type: :boolean,
                   default: true,
                   doc: "Use the response cache (hosted models only)."
                 ],
                 dimensions: [type: :pos_integer, doc: "Vector size (models that allow it)."],
                 encoding_format: [type: :string, doc: "OpenAI `encoding_format`."],
                 user: [type: :string, doc: "OpenAI `user`."]
               )

  @lm_keys ~w(api_key api_base base_url provider num_retries max_retries timeout headers
              connect_timeout_ms first_byte_timeout_ms idle_timeout_ms retry_base_ms
              retry_max_ms circuit_breaker pool session cache)a

  @options @own_options ++ DSPex.Options.take(DSPex.LM.options_schema(), @lm_keys)

  @local_options DSPex.Options.take(@own_options, [:batch_size]) ++
                   DSPex.Options.schema!(
                     pooling: [
                       type: {:in, [:mean, :last, nil]},
                       doc:
                         "Local models: `:mean` or `:last` (default: the file's pooling, else mean)."
                     ],
                     normalize: [
                       type: :boolean,
                       default: true,
                       doc: "Local models: L2-normalize the vectors."
                     ],
                     threads: [type: :pos_integer, doc: "Local models: matmul threads."],
                     n_ctx: [type: :pos_integer, doc: "Local models: the longest text in tokens."]
                   )

  @doc """
  Builds an embedder from `"provider/model"` (OpenAI-compatible providers), from
  `"local/<alias or path>"` (a GGUF model run in process: `DSPex.Local.embed/3`, options
  `:batch_size`, `:pooling`, `:normalize`, `:threads`, `:n_ctx`), or from a function
  `([binary] -> [[number]])` (which takes only `:batch_size`).

  ## Options

  #{DSPex.Options.docs(@options)}

  ## Examples

      iex> emb = DSPex.Embedder.new("openai/text-embedding-3-small", api_key: "sk-x", dimensions: 8)
      iex> {emb.model, emb.params}
      {"openai/text-embedding-3-small", %{"dimensions" => 8}}
      iex> inspect(emb) =~ "sk-x"
      false
  """
  @spec new(binary | ([binary] -> [[number]]), keyword) :: t
  def new(model_or_fun, opts \\ [])

  def new(fun, opts) when is_function(fun, 1) do
    opts =
      DSPex.Options.validate!(
        opts,
        DSPex.Options.take(@own_options, [:batch_size]),
        "DSPex.Embedder.new/2"
      )

    %__MODULE__{model: "callable", fun: fun, batch_size: opts[:batch_size], caching: false}
  end

  def new("local/" <> name = model, opts) do
    opts = DSPex.Options.validate!(opts, @local_options, "DSPex.Embedder.new/2")

    path =
      case DSPex.Local.Models.resolve(name) do
        {:ok, p} -> p
        {:error, e} -> raise e
      end

    local = DSPex.Local.load!(path, Keyword.take(opts, [:threads, :n_ctx]))
    embed_opts = Keyword.take(opts, [:pooling, :normalize])

    fun = fn texts ->
      case DSPex.Local.embed_counted(local, texts, embed_opts) do
        {:ok, vecs, tokens} ->
          DSPex.Usage.record(model, %{
            prompt_tokens: tokens,
            completion_tokens: 0,
            total_tokens: tokens
          })

          vecs

        {:error, e} ->
          raise e
      end
    end

    %__MODULE__{model: model, fun: fun, batch_size: opts[:batch_size], caching: false}
  end

  def new(model, opts) when is_binary(model) do
    opts = DSPex.Options.validate!(opts, @options, "DSPex.Embedder.new/2")
    lm = DSPex.LM.new(model, Keyword.take(opts, @lm_keys))

    unless lm.provider_module == DSPex.LM.Providers.OpenAI do
      raise ArgumentError,
            "embeddings need an OpenAI-compatible provider, got #{inspect(lm.provider)}"
    end

    params =
      opts
      |> Keyword.take([:dimensions, :encoding_format, :user])
      |> Map.new(fn {k, v} -> {Atom.to_string(k), v} end)

    %__MODULE__{
      model: lm.model,
      lm: lm,
      batch_size: opts[:batch_size],
      caching: opts[:caching],
      params: params
    }
  end

  @doc """
  Embeds a list of texts (→ `{:ok, [vector]}`) or one text (→ `{:ok, vector}`).

  ## Examples

      iex> emb = DSPex.Embedder.new(fn texts -> Enum.map(texts, &[byte_size(&1) * 1.0]) end, batch_size: 2)
      iex> DSPex.Embedder.embed(emb, ["a", "bb", "ccc"])
      {:ok, [[1.0], [2.0], [3.0]]}
      iex> DSPex.Embedder.embed(emb, "abcd")
      {:ok, [4.0]}
  """
  @spec embed(t, binary | [binary]) :: {:ok, [[float]] | [float]} | {:error, Error.t()}
  def embed(%__MODULE__{} = emb, text) when is_binary(text) do
    with {:ok, [v]} <- embed(emb, [text]), do: {:ok, v}
  end

  def embed(%__MODULE__{} = emb, texts) when is_list(texts) do
    texts
    |> Enum.chunk_every(max(emb.batch_size, 1))
    |> Enum.reduce_while({:ok, []}, fn batch, {:ok, acc} ->
      case embed_batch(emb, batch) do
        {:ok, vecs} when length(vecs) == length(batch) ->
          {:cont, {:ok, [vecs | acc]}}

        {:ok, vecs} ->
          {:halt,
           {:error,
            Error.new(
              :server,
              "embedder returned #{length(vecs)} vectors for #{length(batch)} texts"
            )}}

        {:error, _} = err ->
          {:halt, err}
      end
    end)
    |> case do
      {:ok, parts} -> {:ok, parts |> Enum.reverse() |> Enum.concat()}
      err -> err
    end
  end

  @doc "Like `embed/2` but raises `%DSPex.Error{}`."
  @spec embed!(t, binary | [binary]) :: [[float]] | [float]
  def embed!(emb, texts) do
    case embed(emb, texts) do
      {:ok, v} -> v
      {:error, e} -> raise e
    end
  end

  defp embed_batch(%{fun: fun}, batch) when is_function(fun, 1) do
    try do
      {:ok, Enum.map(fun.(batch), fn v -> Enum.map(v, &(&1 * 1.0)) end)}
    rescue
      e -> {:error, Error.new(:embedder, "embedding function failed: " <> Exception.message(e))}
    end
  end

  defp embed_batch(emb, batch) do
    body = Map.merge(emb.params, %{"model" => emb.lm.model_name, "input" => batch})

    key = if emb.caching and emb.lm.cache != false, do: cache_key(emb, body), else: nil

    case Cache.get(key) do
      {:ok, %{vectors: vecs}} ->
        {:ok, vecs}

      _ ->
        with {:ok, vecs} <- post(emb, body) do
          Cache.put(key, %{vectors: vecs})
          {:ok, vecs}
        end
    end
  end

  @doc false
  # As the LM's (DSPex.LM.Pipeline.cache_key/4): the endpoint joins the key only for a
  # server other than the provider's default, so older keys stay valid.
  def cache_key(%__MODULE__{} = emb, body) do
    request = Map.merge(body, %{"model" => emb.model, "_fn_identifier" => "dspex.embedder"})

    case DSPex.LM.Pipeline.custom_endpoint(emb.lm) do
      nil -> Cache.key(request)
      endpoint -> Cache.key(Map.put(request, "api_base", endpoint))
    end
  end

  defp post(emb, body) do
    lm = DSPex.LM.resolve_key(emb.lm)
    base = Provider.base_url(lm, "https://api.openai.com/v1")
    headers = Provider.headers(lm, {"authorization", "Bearer "})

    meta = %{
      provider: lm.provider,
      model: emb.model,
      request_id: System.unique_integer([:positive]),
      operation: :embed
    }

    DSPex.Telemetry.span([:dspex, :embedder, :request], meta, fn ->
      result =
        with {:ok, json} <- DSPex.JSON.encode(body),
             {:ok, resp} <-
               DSPex.LM.Pipeline.pool_call(fn ->
                 DSPex.Pool.request(
                   %{
                     url: base <> "/embeddings",
                     method: "POST",
                     headers: headers,
                     body: json,
                     max_retries: lm.num_retries
                   },
                   pool: lm.pool,
                   timeout: lm.timeout,
                   retry_on_port_exit: true
                 )
               end) do
          handle(emb, lm, resp)
        end

      {result, Map.put(meta, :ok, match?({:ok, _}, result))}
    end)
  end

  defp handle(emb, lm, %{status: status, body: body}) when status in 200..299 do
    with {:ok, %{"data" => data} = decoded} when is_list(data) <- Provider.decode_json(body) do
      vecs = data |> Enum.sort_by(&(&1["index"] || 0)) |> Enum.map(& &1["embedding"])

      case decoded["usage"] do
        %{} = u ->
          DSPex.Usage.record(
            emb.model,
            Provider.usage(u["prompt_tokens"], 0, u["total_tokens"], nil, nil)
          )

        _ ->
          :ok
      end

      {:ok, vecs}
    else
      {:ok, _} -> {:error, Error.new(:server, "#{lm.provider} embeddings reply has no data")}
      err -> err
    end
  end

  defp handle(_emb, lm, %{status: status, body: body}) do
    {:error,
     Provider.http_error(DSPex.LM.Providers.OpenAI, lm.provider, status, body, %{}, lm.api_key)}
  end
end

defimpl Inspect, for: DSPex.Embedder do
  import Inspect.Algebra

  def inspect(emb, opts) do
    concat([
      "#DSPex.Embedder<",
      to_doc([model: emb.model, batch_size: emb.batch_size, params: emb.params], opts),
      ">"
    ])
  end
end
