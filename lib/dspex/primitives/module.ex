defmodule DSPex.Module do
  @moduledoc """
  Composed programs, like subclasses of `dspy.Module`.

  A program is a plain struct whose fields hold predictors (`DSPex.Predict`,
  `DSPex.ChainOfThought`, ...), sub-programs, lists or maps of them, and plain data.
  `use DSPex.Module` declares the struct and its constructor; you write `forward/2`:

      defmodule RAG do
        use DSPex.Module

        predictor :answer, DSPex.ChainOfThought, "context: list[str], question -> answer"
        field :k, 3

        @impl DSPex.Module
        def forward(program, %{question: q}) do
          DSPex.call(program.answer, context: MyApp.Search.top(q, program.k), question: q)
        end
      end

      {:ok, pred} = DSPex.call(RAG.new(), question: "...")

  Declarations (in order; the order is the order of `named_predictors/1` and of saved
  state):

    * `predictor name, signature` — a `DSPex.Predict`;
    * `predictor name, signature, opts` — same, with `DSPex.Predict.new/2` options;
    * `predictor name, Ctor, signature, opts \\\\ []` — `Ctor.new(signature, opts)`
      (`DSPex.ChainOfThought`, `DSPex.MultiChainComparison`, your own);
    * `submodule name, Module, opts \\\\ []` — `Module.new(opts)` (another program);
    * `field name, default` — plain data.

  `new(overrides \\\\ [])` builds every component (arguments are evaluated at call
  time) and then names every predictor by its path, DSPy style: `"answer.predict"` for
  the ChainOfThought above, `"programs[0].predict"` inside lists,
  `"tools['search']"` inside maps. `DSPex.call/3` runs `forward/2` inside a
  `[:dspex, :module, :call]` telemetry span.

  `forward/2` returns a `%DSPex.Prediction{}` (or any value), `{:ok, value}` or
  `{:error, %DSPex.Error{}}`. A `DSPex.Error` raised inside (e.g. by `DSPex.call!/3`)
  becomes `{:error, error}`.
  """

  alias DSPex.Predict

  @doc "Runs the program on a map of inputs (atom keys, as given)."
  @callback forward(program :: struct, inputs :: map) :: term

  @doc """
  Runs the program with the per-call options of `DSPex.call/3` (`lm:`, `adapter:`,
  `config:`, `demos:`, ...). Optional: `DSPex.call/3` calls it when a module defines
  it (the built-in modules do, to hand the options to their predictors), and otherwise
  calls `forward/2` with `lm:` and `adapter:` applied as settings overrides.
  """
  @callback forward(program :: struct, inputs :: map, opts :: keyword) :: term

  @optional_callbacks forward: 3

  @doc false
  defmacro __using__(_opts) do
    quote do
      @behaviour DSPex.Module
      import DSPex.Module,
        only: [predictor: 2, predictor: 3, predictor: 4, submodule: 2, submodule: 3, field: 2]

      Module.register_attribute(__MODULE__, :dspex_components, accumulate: true)
      @before_compile DSPex.Module

      @doc "Builds the program; `overrides` replace built fields."
      @spec new(keyword) :: struct
      def new(overrides \\ []) do
        built =
          for n <- __dspex_fields__(), do: {n, apply(__MODULE__, :"__dspex_build_#{n}__", [])}

        __MODULE__
        |> struct!(built)
        |> struct!(overrides)
        |> DSPex.Module.assign_names()
      end

      defoverridable new: 1
    end
  end

  @doc "Declares a predictor field (see the module doc)."
  defmacro predictor(name, signature) do
    build(name, quote(do: DSPex.Predict.new(unquote(signature), [])))
  end

  @doc "Declares a predictor field (see the module doc)."
  defmacro predictor(name, a, b) do
    code =
      if Keyword.keyword?(b) do
        quote do
          DSPex.Module.__ctor__(unquote(a), unquote(b))
        end
      else
        quote(do: unquote(a).new(unquote(b), []))
      end

    build(name, code)
  end

  @doc "Declares a predictor field (see the module doc)."
  defmacro predictor(name, ctor, signature, opts) do
    build(name, quote(do: unquote(ctor).new(unquote(signature), unquote(opts))))
  end

  @doc "Declares a sub-program field built with `Module.new(opts)`."
  defmacro submodule(name, module, opts \\ []) do
    build(name, quote(do: unquote(module).new(unquote(opts))))
  end

  @doc "Declares a plain data field with a default value."
  defmacro field(name, default), do: build(name, default)

  defp build(name, code) do
    fun = :"__dspex_build_#{name}__"

    quote do
      @dspex_components unquote(name)
      @doc false
      def unquote(fun)(), do: unquote(code)
    end
  end

  @doc false
  # `predictor :name, signature, opts` where signature may be a signature module or
  # string: a Predict with options.
  def __ctor__(signature, opts), do: Predict.new(signature, opts)

  @doc false
  defmacro __before_compile__(env) do
    names = env.module |> Module.get_attribute(:dspex_components) |> Enum.reverse()

    quote do
      defstruct unquote(Enum.map(names, &{&1, nil}))

      @doc false
      def __dspex_fields__, do: unquote(names)
    end
  end

  # ---------------------------------------------------------------------------------
  # Walking programs

  @doc """
  Every predictor with its DSPy-style path, in declaration order. A bare predictor is
  `"self"`.

  ## Examples

      iex> cot = DSPex.ChainOfThought.new("question -> answer")
      iex> for {name, _} <- DSPex.Module.named_predictors(cot), do: name
      ["predict"]
      iex> best = DSPex.BestOfN.new(cot, n: 2, reward_fn: fn _, _ -> 1.0 end)
      iex> for {name, _} <- DSPex.Module.named_predictors(best), do: name
      ["module.predict"]
  """
  @spec named_predictors(term) :: [{binary, Predict.t()}]
  def named_predictors(%Predict{} = p), do: [{"self", p}]
  def named_predictors(program), do: walk(program, nil)

  @doc """
  The predictors, in `named_predictors/1` order.
  """
  @spec predictors(term) :: [Predict.t()]
  def predictors(program), do: Enum.map(named_predictors(program), &elem(&1, 1))

  defp walk(value, path) do
    case value do
      %Predict{} = p ->
        [{path || "self", p}]

      %_{} = s ->
        if program?(s) do
          Enum.flat_map(fields_of(s), fn f ->
            walk(Map.get(s, f), child_path(s, f, path))
          end)
        else
          []
        end

      list when is_list(list) and path != nil ->
        list
        |> Enum.with_index()
        |> Enum.flat_map(fn {v, i} -> walk(v, "#{path}[#{i}]") end)

      map when is_map(map) and path != nil ->
        map
        |> Enum.sort_by(fn {k, _} -> k end)
        |> Enum.flat_map(fn {k, v} -> walk(v, "#{path}['#{k}']") end)

      _ ->
        []
    end
  end

  defp join(nil, f), do: f
  defp join(p, f), do: p <> "." <> f

  # A program that wraps another one in place (it exports `__dspex_wraps__/0`, the
  # field's name: e.g. a KNNFewShot-compiled program, whose predictors DSPy names as the
  # wrapped student's) gives that field its own path instead of `path.field`.
  defp child_path(%mod{}, f, path) do
    if function_exported?(mod, :__dspex_wraps__, 0) and mod.__dspex_wraps__() == f,
      do: path,
      else: join(path, Atom.to_string(f))
  end

  @doc false
  def program?(%mod{}) do
    Code.ensure_loaded?(mod) and
      (function_exported?(mod, :__dspex_fields__, 0) or function_exported?(mod, :forward, 2) or
         function_exported?(mod, :forward, 3))
  end

  def program?(_), do: false

  @doc false
  def fields_of(%mod{} = s) do
    if function_exported?(mod, :__dspex_fields__, 0) do
      mod.__dspex_fields__()
    else
      s |> Map.keys() |> List.delete(:__struct__) |> Enum.sort()
    end
  end

  @doc """
  Replaces every predictor with `fun.(predictor)` (or `fun.(name, predictor)` for a
  2-arity function), keeping the program's shape.

  ## Examples

      iex> cot = DSPex.ChainOfThought.new("question -> answer")
      iex> cot = DSPex.Module.map_predictors(cot, &%{&1 | config: %{n: 2}})
      iex> cot.predict.config
      %{n: 2}
  """
  @spec map_predictors(term, (Predict.t() -> Predict.t()) | (binary, Predict.t() -> Predict.t())) ::
          term
  def map_predictors(program, fun) when is_function(fun, 1),
    do: map_predictors(program, fn _, p -> fun.(p) end)

  def map_predictors(%Predict{} = p, fun) when is_function(fun, 2), do: fun.("self", p)
  def map_predictors(program, fun) when is_function(fun, 2), do: map_walk(program, nil, fun)

  defp map_walk(value, path, fun) do
    case value do
      %Predict{} = p ->
        fun.(path || "self", p)

      %_{} = s ->
        if program?(s) do
          Enum.reduce(fields_of(s), s, fn f, acc ->
            Map.put(acc, f, map_walk(Map.get(acc, f), child_path(s, f, path), fun))
          end)
        else
          s
        end

      list when is_list(list) and path != nil ->
        list |> Enum.with_index() |> Enum.map(fn {v, i} -> map_walk(v, "#{path}[#{i}]", fun) end)

      map when is_map(map) and path != nil ->
        Map.new(map, fn {k, v} -> {k, map_walk(v, "#{path}['#{k}']", fun)} end)

      other ->
        other
    end
  end

  @doc """
  Sets every predictor's `name` to its path. `new/1` of a `use DSPex.Module` program
  calls it; call it yourself after replacing predictors by hand.
  """
  @spec assign_names(term) :: term
  def assign_names(%Predict{} = p), do: p
  def assign_names(program), do: map_predictors(program, fn name, p -> %{p | name: name} end)

  @doc """
  Clears demos, traces, train and LM of every predictor (DSPy's `reset_copy`).
  """
  @spec reset(term) :: term
  def reset(program) do
    map_predictors(program, fn p -> %{p | demos: [], traces: [], train: [], lm: nil} end)
  end

  @doc """
  Sets the LM of every predictor (DSPy's `set_lm`).
  """
  @spec set_lm(term, struct | nil) :: term
  def set_lm(program, lm), do: map_predictors(program, &%{&1 | lm: lm})

  @doc """
  The LM shared by every predictor, `nil` when none is set; raises `ArgumentError`
  when predictors use different LMs (DSPy's `get_lm`).
  """
  @spec get_lm(term) :: struct | nil
  def get_lm(program) do
    case program |> predictors() |> Enum.map(& &1.lm) |> Enum.uniq() do
      [] -> nil
      [lm] -> lm
      _ -> raise ArgumentError, "predictors of this program use different LMs"
    end
  end

  @doc """
  Looks a predictor up by its name.
  """
  @spec get_predictor(term, binary) :: Predict.t() | nil
  def get_predictor(program, name) do
    Enum.find_value(named_predictors(program), fn {n, p} -> if n == name, do: p end)
  end

  @doc """
  Replaces the predictor named `name` with `fun.(predictor)`.
  """
  @spec update_predictor(term, binary, (Predict.t() -> Predict.t())) :: term
  def update_predictor(program, name, fun) do
    map_predictors(program, fn n, p -> if n == name, do: fun.(p), else: p end)
  end

  # ---------------------------------------------------------------------------------
  # Calling

  @doc false
  # Runs a program struct: the optional callback forward/3 when the module defines it,
  # otherwise forward/2 with `lm:`/`adapter:` applied as settings overrides.
  def run(%mod{} = program, inputs, opts) do
    Code.ensure_loaded(mod)

    DSPex.Telemetry.span([:dspex, :module, :call], %{module: mod}, fn ->
      result =
        try do
          cond do
            function_exported?(mod, :forward, 3) ->
              mod.forward(program, inputs, opts)

            function_exported?(mod, :forward, 2) ->
              overrides = Keyword.take(opts, [:lm, :adapter])

              if overrides == [],
                do: mod.forward(program, inputs),
                else:
                  DSPex.Settings.with_settings(overrides, fn -> mod.forward(program, inputs) end)

            true ->
              raise ArgumentError, "#{inspect(mod)} is not a DSPex program: it has no forward/2"
          end
          |> normalize_result()
        rescue
          e in DSPex.Error -> {:error, e}
        end

      status = if match?({:ok, _}, result), do: :ok, else: :error
      {result, %{module: mod, status: status}}
    end)
  end

  defp normalize_result({:ok, _} = ok), do: ok
  defp normalize_result({:error, %DSPex.Error{}} = err), do: err

  defp normalize_result({:error, other}),
    do:
      {:error,
       DSPex.Error.new(
         :module,
         "forward/2 returned an error: #{DSPex.Error.describe(other)}",
         %{reason: other}
       )}

  defp normalize_result(value), do: {:ok, value}
end
