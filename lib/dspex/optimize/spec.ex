defmodule DSPex.Optimize.Spec do
  @moduledoc """
  The job spec: what identifies an optimizer job, written as the journal's first record
  and compared byte for byte when a job resumes (docs/optimizer-engine.md, "The job
  spec").

  It holds everything that decides the sequence of trials and nothing else:

    * `optimizer` — its name (`"mipro_v2"`, `"copro"`);
    * `seed` — the effective seed;
    * `options` — the optimizer options that change trials (its `spec_options`);
    * `program` — SHA-256 of the student program's DSPy state (`DSPex.Program`), LMs
      left out;
    * `trainset`, `valset` — SHA-256 of each example list (fields and input keys, in
      order);
    * `metric` — the metric's name (`"MyApp.Metrics.match/2"`, `"builtin:exact_match"`),
      not its code.

  Budgets, concurrency, `nodes:`, LMs and progress settings are not in it: a resume may
  change them. The encoding is canonical JSON (keys sorted), so equal specs are equal
  bytes.
  """

  @doc """
  The canonical spec binary.

  ## Examples

      iex> DSPex.Optimize.Spec.encode(%{"optimizer" => "copro", "seed" => 0, "options" => %{"depth" => 3}})
      ~s({"format":1,"optimizer":"copro","options":{"depth":3},"seed":0})
  """
  @spec encode(map) :: binary
  def encode(fields) when is_map(fields) do
    fields |> Map.put("format", 1) |> DSPex.JSON.encode!(sort_keys: true)
  end

  @doc """
  SHA-256 (hex) of a program's DSPy state without its LMs and metadata.

  ## Examples

      iex> a = DSPex.Predict.new("question -> answer")
      iex> b = DSPex.Predict.new("question -> answer", lm: DSPex.LM.Scripted.new([]))
      iex> DSPex.Optimize.Spec.program_hash(a) == DSPex.Optimize.Spec.program_hash(b)
      true
  """
  @spec program_hash(term) :: binary
  def program_hash(program) do
    program
    |> DSPex.Module.map_predictors(&%{&1 | lm: nil})
    |> DSPex.Program.dump_state()
    |> strip_metadata()
    |> DSPex.JSON.encode!()
    |> sha256()
  end

  defp strip_metadata({:ordered, pairs}),
    do: {:ordered, Enum.reject(pairs, fn {k, _} -> k == "metadata" end)}

  @doc """
  SHA-256 (hex) of an example list: every example's fields (keys sorted) and input
  keys, in list order; `nil` for `nil`.

  ## Examples

      iex> ex = DSPex.Example.new(q: "1", a: "2") |> DSPex.Example.with_inputs([:q])
      iex> DSPex.Optimize.Spec.examples_hash([ex]) == DSPex.Optimize.Spec.examples_hash([ex, ex])
      false
  """
  @spec examples_hash([DSPex.Example.t()] | nil) :: binary | nil
  def examples_hash(nil), do: nil

  def examples_hash(examples) when is_list(examples) do
    examples
    |> Enum.map(fn %DSPex.Example{fields: f, input_keys: keys} ->
      %{"fields" => DSPex.Program.jsonable(f), "inputs" => Enum.map(keys || [], &to_string/1)}
    end)
    |> DSPex.JSON.encode!(sort_keys: true)
    |> sha256()
  end

  @doc """
  A stable name for a metric.

  ## Examples

      iex> DSPex.Optimize.Spec.metric_name(&DSPex.Metrics.answer_exact_match/3)
      "DSPex.Metrics.answer_exact_match/3"
      iex> DSPex.Optimize.Spec.metric_name({:builtin, :exact_match, field: :answer})
      "builtin:exact_match:answer"
  """
  @spec metric_name(term) :: binary
  def metric_name({:builtin, kind, opts}),
    do: "builtin:#{kind}:#{Keyword.get(opts, :field, :answer)}"

  def metric_name(fun) when is_function(fun) do
    info = Function.info(fun)

    case info[:type] do
      :external -> "#{inspect(info[:module])}.#{info[:name]}/#{info[:arity]}"
      _ -> "anonymous/#{info[:arity]} in #{inspect(info[:module])}"
    end
  end

  def metric_name(other), do: inspect(other)

  defp sha256(bin), do: Base.encode16(:crypto.hash(:sha256, bin), case: :lower)
end
