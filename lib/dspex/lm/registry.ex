defmodule DSPex.LM.Registry do
  @moduledoc """
  Named LMs: declare them once in config, use them by name everywhere.

      # config/config.exs (or runtime.exs)
      config :dspex, lms: [
        fast: "openai/gpt-4o-mini",
        smart: {"anthropic/claude-sonnet-4-5", max_tokens: 4096},
        robust: {["anthropic/claude-sonnet-4-5", "openai/gpt-4o"], fallback_on: [:rate_limit, :server]},
        local: {"openai/qwen2.5", api_base: "http://127.0.0.1:8080/v1"}
      ]

      DSPex.LM.new(:fast)                    # the %DSPex.LM{} declared as :fast
      DSPex.configure(lm: :smart)            # resolved at every call
      DSPex.Predict.new("q -> a", lm: :fast)

  A value is what `DSPex.LM.new/2` takes — a model id, a list of them (a fallback chain,
  `DSPex.LM.Fallback`), or either in a `{model, opts}` pair — or an LM struct
  registered at run time with `register/2` (e.g. a `DSPex.LM.Scripted` or a local model).
  Registrations made with `register/2` take precedence over the application
  environment.

  Built LMs are kept (in `:persistent_term`, rebuilt when the config value changes), so
  resolving a name costs a map lookup. `find/1` maps an untrusted string (an HTTP
  request's `model` field) onto a registered name without creating atoms.
  """

  alias DSPex.Error

  @runtime_key {__MODULE__, :runtime}
  @built_key {__MODULE__, :built}

  @typedoc "What a name stands for (see the module doc)."
  @type spec :: binary | [term] | {binary | [term], keyword} | struct

  @doc """
  The LM registered as `name`.

  ## Examples

      iex> DSPex.LM.Registry.register(:doc_fast, "openai/gpt-4o-mini")
      iex> {:ok, lm} = DSPex.LM.Registry.lookup(:doc_fast)
      iex> lm.model
      "openai/gpt-4o-mini"
      iex> {:error, e} = DSPex.LM.Registry.lookup(:no_such_lm)
      iex> e.type
      :unknown_lm
  """
  @spec lookup(atom) :: {:ok, struct} | {:error, Error.t()}
  def lookup(name) when is_atom(name) do
    case spec(name) do
      nil ->
        {:error,
         Error.new(
           :unknown_lm,
           "no LM named #{inspect(name)}; named LMs: #{inspect(names())} " <>
             "(declare them with `config :dspex, lms: [...]` or DSPex.LM.Registry.register/2)",
           %{name: name}
         )}

      spec ->
        build(name, spec)
    end
  end

  @doc """
  Like `lookup/1`, but returns the LM or raises `ArgumentError`.

  ## Examples

      iex> DSPex.LM.Registry.register(:doc_bang, "openai/gpt-4o-mini")
      iex> DSPex.LM.Registry.lookup!(:doc_bang).model
      "openai/gpt-4o-mini"
  """
  @spec lookup!(atom) :: struct
  def lookup!(name) do
    case lookup(name) do
      {:ok, lm} -> lm
      {:error, e} -> raise ArgumentError, e.message
    end
  end

  @doc """
  Registers `spec` (see `t:spec/0`) under `name` for this node, overriding the
  application environment. Raises `ArgumentError` when the spec cannot be built.

  ## Examples

      iex> DSPex.LM.Registry.register(:doc_reg, {"openai/gpt-4o-mini", temperature: 0.0})
      :ok
      iex> DSPex.LM.new(:doc_reg).kwargs
      %{temperature: 0.0}
  """
  @spec register(atom, spec) :: :ok
  def register(name, spec) when is_atom(name) do
    # Build now, so a bad spec fails here and not at the first request.
    _ = build!(name, spec)
    :persistent_term.put(@runtime_key, Map.put(runtime(), name, spec))
    :ok
  end

  @doc """
  Removes a run-time registration (the application environment's entry, if any, is
  visible again).

  ## Examples

      iex> DSPex.LM.Registry.register(:doc_gone, "openai/gpt-4o-mini")
      iex> DSPex.LM.Registry.unregister(:doc_gone)
      :ok
      iex> :doc_gone in DSPex.LM.Registry.names()
      false
  """
  @spec unregister(atom) :: :ok
  def unregister(name) when is_atom(name) do
    :persistent_term.put(@runtime_key, Map.delete(runtime(), name))
    :ok
  end

  @doc """
  Every registered name, sorted.

  ## Examples

      iex> DSPex.LM.Registry.register(:doc_names, "openai/gpt-4o-mini")
      iex> :doc_names in DSPex.LM.Registry.names()
      true
  """
  @spec names() :: [atom]
  def names do
    configured() |> Keyword.keys() |> Kernel.++(Map.keys(runtime())) |> Enum.uniq() |> Enum.sort()
  end

  @doc """
  The registered name whose text is `text` (an untrusted string, e.g. the `model` of an
  HTTP request), or `nil`. Never creates an atom.

  ## Examples

      iex> DSPex.LM.Registry.register(:doc_find, "openai/gpt-4o-mini")
      iex> DSPex.LM.Registry.find("doc_find")
      :doc_find
      iex> DSPex.LM.Registry.find("surely-not-registered")
      nil
  """
  @spec find(binary) :: atom | nil
  def find(text) when is_binary(text), do: Enum.find(names(), &(Atom.to_string(&1) == text))

  defp spec(name) do
    case Map.fetch(runtime(), name) do
      {:ok, spec} -> spec
      :error -> Keyword.get(configured(), name)
    end
  end

  defp runtime, do: :persistent_term.get(@runtime_key, %{})

  defp configured do
    case Application.get_env(:dspex, :lms, []) do
      list when is_list(list) -> Enum.filter(list, &match?({k, _} when is_atom(k), &1))
      map when is_map(map) -> Enum.to_list(map)
      _ -> []
    end
  end

  defp build(name, spec) do
    {:ok, build!(name, spec)}
  rescue
    e in ArgumentError ->
      {:error,
       Error.new(:invalid_lm, "the LM named #{inspect(name)} cannot be built: " <> e.message, %{
         name: name
       })}
  end

  # One built LM per (name, spec): a DSPex.LM holds no process, so rebuilding on a spec
  # change (config reloaded, register/2 again) is all the invalidation there is.
  defp build!(_name, %_{} = lm), do: lm

  defp build!(name, spec) when is_atom(spec),
    do:
      raise(
        ArgumentError,
        "#{inspect(name)}: a named LM cannot point at another name (#{inspect(spec)})"
      )

  defp build!(name, spec) do
    built = :persistent_term.get(@built_key, %{})

    case Map.fetch(built, name) do
      {:ok, {^spec, lm}} ->
        lm

      _ ->
        lm =
          case spec do
            {model, opts} when is_list(opts) -> DSPex.LM.new(model, opts)
            model -> DSPex.LM.new(model, [])
          end

        :persistent_term.put(@built_key, Map.put(built, name, {spec, lm}))
        lm
    end
  end
end
