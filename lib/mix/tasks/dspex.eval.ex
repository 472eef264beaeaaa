defmodule Mix.Tasks.Dspex.Eval do
  @shortdoc "Evaluates a DSPex program on a JSONL or CSV devset"

  @moduledoc """
  Evaluates a program on a dataset file and prints the results table and the score.

      mix dspex.eval --program MyApp.RAG --data dev.jsonl --metric exact_match --inputs question
      mix dspex.eval --program "question -> answer" --data dev.csv --metric MyApp.Metrics.match \\
        --lm openai/gpt-4o-mini --max-concurrency 32 --table 10

  Options:

    * `--program` (required) — a program module (built with its `new/0`, e.g. a
      `use DSPex.Module`) or a signature string such as `"question -> answer"` (a
      `DSPex.Predict`);
    * `--data` (required) — a `.jsonl` or `.csv` file (see `DSPex.Dataset`);
    * `--metric` (required) — `exact_match` (alias `em`), `f1` or `hotpot_f1` (built-in,
      scored in batches on `--field`), or a function `Module.fun` of arity 2 or 3;
    * `--inputs` — input fields, comma separated (repeatable); default: the inputs of a
      signature-string program;
    * `--field` — the field a built-in metric compares (default `answer`);
    * `--fields` — label fields to load besides the inputs (default: `--field`); the
      other columns are not loaded;
    * `--max-concurrency N`, `--max-errors N`, `--timeout MS`;
    * `--table N` — rows of the results table to print (default 5, 0 for none);
    * `--save-csv PATH`, `--save-json PATH`;
    * `--lm MODEL` (e.g. `openai/gpt-4o-mini`), `--api-base URL`, `--no-cache` — the LM
      for predictors without one (otherwise the configured `DSPex.configure(lm: ...)`).
      API keys come from the provider's environment variable (`OPENAI_API_KEY`, ...);
    * `--no-progress` — no progress display on stderr.

  The run starts the application (`app.start`), so `config/runtime.exs` applies. The
  task prints DSPy's summary line (`Average Metric: 7 / 10 (70.0%)`), the score, and
  one line per failed example; it fails (non-zero exit) when the evaluation returns an
  error.
  """

  use Mix.Task

  alias DSPex.Evaluate.Score

  @switches [
    program: :string,
    data: :string,
    metric: :string,
    inputs: :keep,
    field: :string,
    fields: :string,
    max_concurrency: :integer,
    max_errors: :integer,
    timeout: :integer,
    table: :integer,
    save_csv: :string,
    save_json: :string,
    lm: :string,
    api_base: :string,
    cache: :boolean,
    progress: :boolean
  ]

  @builtins %{
    "exact_match" => :exact_match,
    "em" => :em,
    "f1" => :f1,
    "hotpot_f1" => :hotpot_f1
  }

  @impl Mix.Task
  def run(args) do
    {opts, rest, invalid} = OptionParser.parse(args, strict: @switches)

    cond do
      invalid != [] -> Mix.raise("unknown or invalid options: #{format_invalid(invalid)}")
      rest != [] -> Mix.raise("unexpected arguments: #{Enum.join(rest, " ")}")
      true -> :ok
    end

    for key <- [:program, :data, :metric], opts[key] == nil do
      Mix.raise("mix dspex.eval needs --#{key} (see `mix help dspex.eval`)")
    end

    Mix.Task.run("app.start")

    program = program!(opts[:program])
    field = String.to_atom(opts[:field] || "answer")
    metric = metric!(opts[:metric], field)
    inputs = inputs!(opts, program)
    labels = if opts[:fields], do: atoms(opts[:fields]), else: [field]
    devset = load!(opts[:data], inputs, labels -- inputs)

    eval_opts =
      [
        metric: metric,
        display_table: table_rows(opts),
        display_progress: Keyword.get(opts, :progress, true),
        max_concurrency: opts[:max_concurrency],
        max_errors: opts[:max_errors],
        timeout: opts[:timeout],
        save_as_csv: opts[:save_csv],
        save_as_json: opts[:save_json],
        lm: lm(opts)
      ]
      |> Enum.reject(fn {_, v} -> is_nil(v) end)

    case evaluate(program, devset, eval_opts) do
      {:ok, result} ->
        pct = Score.py_str(Score.percent(result.sum, result.total, 1))

        Mix.shell().info(
          "Average Metric: #{Score.py_str(result.sum)} / #{result.total} (#{pct}%)"
        )

        Mix.shell().info("Score: #{Score.py_str(result.score)}")

        for %{index: i, error: e} <- result.errors do
          Mix.shell().error("example #{i} failed: #{e.type}: #{e.message}")
        end

        result

      {:error, %DSPex.Error{} = e} ->
        Mix.raise("evaluation failed (#{e.type}): #{e.message}")
    end
  end

  defp evaluate(program, devset, opts) do
    DSPex.Evaluate.run(program, devset, opts)
  rescue
    e in ArgumentError -> Mix.raise(Exception.message(e))
  end

  @doc false
  # shared with mix dspex.optimize
  def format_invalid(invalid) do
    Enum.map_join(invalid, ", ", fn {k, v} -> if v, do: "#{k} #{v}", else: k end)
  end

  defp table_rows(opts) do
    case Keyword.get(opts, :table, 5) do
      0 -> false
      n when n > 0 -> n
      n -> Mix.raise("--table must be 0 or more, got: #{n}")
    end
  end

  @doc false
  # shared with mix dspex.optimize
  def program!(spec) do
    if String.contains?(spec, "->") do
      DSPex.Predict.new(spec)
    else
      mod = Module.concat([spec])

      cond do
        not Code.ensure_loaded?(mod) ->
          Mix.raise("--program: no module #{spec} (is it compiled in this project?)")

        function_exported?(mod, :new, 0) ->
          mod.new()

        function_exported?(mod, :new, 1) ->
          mod.new([])

        function_exported?(mod, :__struct__, 0) ->
          struct(mod)

        true ->
          Mix.raise("--program: #{spec} is neither a program module (new/0) nor a struct")
      end
    end
  end

  @doc false
  # shared with mix dspex.optimize
  def metric!(name, field) do
    case Map.fetch(@builtins, name) do
      {:ok, kind} ->
        {:builtin, kind, field: field}

      :error ->
        {mod, fun} =
          case String.split(name, ".") do
            [_single] -> Mix.raise(metric_help(name))
            parts -> {Module.concat(Enum.drop(parts, -1)), String.to_atom(List.last(parts))}
          end

        cond do
          not Code.ensure_loaded?(mod) -> Mix.raise(metric_help(name))
          function_exported?(mod, fun, 2) -> Function.capture(mod, fun, 2)
          function_exported?(mod, fun, 3) -> Function.capture(mod, fun, 3)
          true -> Mix.raise(metric_help(name))
        end
    end
  end

  defp metric_help(name) do
    "--metric #{name}: expected one of #{Enum.join(Map.keys(@builtins), ", ")} " <>
      "or Module.fun (arity 2 or 3)"
  end

  @doc false
  # shared with mix dspex.optimize
  def inputs!(opts, program) do
    case Keyword.get_values(opts, :inputs) do
      [] ->
        case program do
          %DSPex.Predict{signature: sig} ->
            Enum.map(sig.inputs, & &1.name)

          _ ->
            Mix.raise("--inputs is needed for a program module (e.g. --inputs question)")
        end

      values ->
        values |> Enum.flat_map(&atoms/1) |> Enum.uniq()
    end
  end

  # Field names given on the command line (trusted, bounded) become atoms.
  @doc false
  # shared with mix dspex.optimize
  def atoms(list),
    do: list |> String.split(",", trim: true) |> Enum.map(&String.to_atom(String.trim(&1)))

  @doc false
  # shared with mix dspex.optimize
  def load!(path, inputs, labels) do
    opts = [inputs: inputs, fields: labels]

    result =
      case Path.extname(path) do
        ".jsonl" -> DSPex.Dataset.from_jsonl(path, opts)
        ".csv" -> DSPex.Dataset.from_csv(path, opts)
        other -> Mix.raise("--data: expected a .jsonl or .csv file, got #{inspect(other)}")
      end

    case result do
      {:ok, []} -> Mix.raise("--data: #{path} has no examples")
      {:ok, devset} -> devset
      {:error, e} -> Mix.raise("--data: #{e.message}")
    end
  end

  @doc false
  # shared with mix dspex.optimize
  def lm(opts) do
    if model = opts[:lm] do
      lm_opts =
        [api_base: opts[:api_base], cache: Keyword.get(opts, :cache, true)]
        |> Enum.reject(fn {_, v} -> is_nil(v) end)

      DSPex.LM.new(model, lm_opts)
    end
  end
end
