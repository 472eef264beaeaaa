defmodule DSPex.Tool.Introspect do
  @moduledoc """
  What `DSPex.Tool.new/2` reads from a named function (`&MyApp.Search.top/2`,
  `{MyApp.Search, :top}`) when no `args:` are given — the Elixir counterpart of DSPy
  inferring a tool from a Python function's signature, type hints and docstring:

    * parameter names and literal defaults from the function's documented signature
      (`top(query, k \\\\ 3)`, in the module's docs chunk);
    * parameter types from its `@spec` (`String.t()` → `str`, `integer()` → `int`,
      `[t]` → `list[t]`, `t | nil` → `Optional[t]`, `:a | :b` → `Literal['a', 'b']`,
      `%{optional(String.t()) => t}` → `dict[str, t]`, anything else → `Any`);
    * the description from its `@doc`.

  Both come from the module's `.beam` file, so the module must be compiled to disk with
  docs (the default for Mix projects). `params/3` returns `{:error, reason}` when the
  names cannot be found; then give `args:` explicitly.

  ## Examples

      iex> {:error, msg} = DSPex.Tool.Introspect.params(String, :no_such_fun, 2)
      iex> msg =~ "no documented signature"
      true
  """

  alias DSPex.Tool.Param

  @doc """
  The `{params, desc}` of `module.fun/arity`, or `{:error, message}`.

  ## Examples

      iex> {:ok, {params, desc}} = DSPex.Tool.Introspect.params(String, :duplicate, 2)
      iex> {Enum.map(params, & &1.name), desc =~ "Returns a string"}
      {[:subject, :n], true}
  """
  @spec params(module, atom, non_neg_integer) ::
          {:ok, {[Param.t()], binary | nil}} | {:error, binary}
  def params(module, fun, arity) when is_atom(module) and is_atom(fun) and is_integer(arity) do
    with {:ok, names, defaults, desc} <- docs(module, fun, arity) do
      types = spec_types(module, fun, arity)

      params =
        names
        |> Enum.zip(defaults)
        |> Enum.with_index()
        |> Enum.map(fn {{name, default}, i} ->
          opts = if default == :none, do: [], else: [default: elem(default, 1)]
          Param.new(name, Enum.at(types, i, :any), opts)
        end)

      {:ok, {params, desc}}
    end
  end

  # Names, literal defaults and the doc text from the docs chunk.
  defp docs(module, fun, arity) do
    with {:docs_v1, _, _, _, _, _, entries} <- Code.fetch_docs(module),
         {_, _, [signature | _], doc, _meta} <-
           Enum.find(entries, fn e -> elem(e, 0) == {:function, fun, arity} end),
         {:ok, {_, _, args}} when is_list(args) and length(args) == arity <-
           Code.string_to_quoted(signature) do
      {names, defaults} = args |> Enum.map(&arg/1) |> Enum.unzip()

      if Enum.all?(names, &is_atom/1) do
        {:ok, names, defaults, doc_text(doc)}
      else
        no_signature(module, fun, arity)
      end
    else
      _ -> no_signature(module, fun, arity)
    end
  end

  defp no_signature(module, fun, arity) do
    {:error,
     "no documented signature for #{inspect(module)}.#{fun}/#{arity} (the module must be " <>
       "compiled to disk with docs, and the function public); give the parameters as " <>
       "args: [name: type, ...]"}
  end

  defp arg({:\\, _, [{name, _, ctx}, default]}) when is_atom(name) and is_atom(ctx) do
    if Macro.quoted_literal?(default) do
      {value, _} = Code.eval_quoted(default)
      {name, {:value, value}}
    else
      # A computed default (`k \\\\ @k`): its value is unknown here, so the LM is asked
      # for the argument (a call always passes every parameter).
      {name, :none}
    end
  end

  defp arg({name, _, ctx}) when is_atom(name) and is_atom(ctx), do: {name, :none}
  defp arg(_other), do: {nil, :none}

  defp doc_text(%{"en" => text}) when is_binary(text), do: String.trim(text)
  defp doc_text(_), do: nil

  # The argument types of the function's first @spec clause, [] when it has none.
  defp spec_types(module, fun, arity) do
    with {:ok, specs} <- Code.Typespec.fetch_specs(module),
         {_, [spec | _]} <- Enum.find(specs, fn {fa, _} -> fa == {fun, arity} end),
         {:"::", _, [{^fun, _, args}, _return]} when is_list(args) <-
           Code.Typespec.spec_to_quoted(fun, spec) do
      Enum.map(args, &type_of/1)
    else
      _ -> []
    end
  end

  @doc """
  The type term for a quoted typespec (see the module doc for the mapping).

  ## Examples

      iex> DSPex.Tool.Introspect.type_of(quote(do: [String.t()] | nil))
      {:optional, {:list, :str}}
      iex> DSPex.Tool.Introspect.type_of(quote(do: :celsius | :fahrenheit))
      {:literal, ["celsius", "fahrenheit"]}
      iex> DSPex.Tool.Introspect.type_of(quote(do: pid()))
      :any
  """
  @spec type_of(Macro.t()) :: term
  def type_of({:"::", _, [_name, type]}), do: type_of(type)

  def type_of({:|, _, _} = union) do
    members = flatten_union(union)

    cond do
      Enum.all?(members, &(is_atom(&1) and not is_boolean(&1) and &1 != nil)) ->
        {:literal, Enum.map(members, &Atom.to_string/1)}

      true ->
        {rest, nils} = Enum.split_with(members, &(&1 != nil))
        types = rest |> Enum.map(&type_of/1) |> Enum.uniq()

        base =
          cond do
            :any in types -> :any
            length(types) == 1 -> hd(types)
            true -> {:union, types}
          end

        if nils != [] and base != :any, do: {:optional, base}, else: base
    end
  end

  def type_of({{:., _, [String, :t]}, _, []}), do: :str
  def type_of({{:., _, [{:__aliases__, _, [:String]}, :t]}, _, []}), do: :str

  def type_of({name, _, args}) when is_atom(name) and args in [[], nil],
    do: simple(name)

  def type_of({:list, _, [t]}), do: {:list, type_of(t)}
  def type_of({:nonempty_list, _, [t]}), do: {:list, type_of(t)}
  def type_of([t]), do: {:list, type_of(t)}
  def type_of([{:..., _, _}]), do: :list
  def type_of([]), do: :list

  def type_of({:%{}, _, [{{kind, _, [k]}, v}]}) when kind in [:optional, :required],
    do: {:dict, type_of(k), type_of(v)}

  def type_of({:%{}, _, []}), do: :dict
  def type_of(b) when is_boolean(b), do: :bool
  def type_of(_), do: :any

  defp flatten_union({:|, _, [a, b]}), do: flatten_union(a) ++ flatten_union(b)
  defp flatten_union(other), do: [other]

  @strings [:binary, :bitstring, :nonempty_binary, :nonempty_bitstring]
  @ints [:integer, :non_neg_integer, :pos_integer, :neg_integer, :byte, :char, :arity]

  defp simple(name) when name in @strings, do: :str
  defp simple(name) when name in @ints, do: :int
  defp simple(name) when name in [:float, :number], do: :float
  defp simple(name) when name in [:boolean], do: :bool
  defp simple(name) when name in [:list, :nonempty_list, :keyword], do: :list
  defp simple(name) when name in [:map], do: :dict
  defp simple(_), do: :any
end
