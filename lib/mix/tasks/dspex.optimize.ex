defmodule Mix.Tasks.Dspex.Optimize do
  @shortdoc "Optimizes a DSPex program's instructions (MIPROv2, COPRO, SIMBA, GEPA) as a resumable job"

  @moduledoc """
  Runs an instruction optimizer on a program and a training file, with budgets, a
  journal to resume from, live progress and an SVG chart; saves the best program in
  DSPy's JSON format.

      mix dspex.optimize --optimizer mipro_v2 --auto light --program MyApp.RAG \\
        --train train.jsonl --metric exact_match --out rag.json
      mix dspex.optimize --optimizer mipro_v2 --auto light --program MyApp.RAG \\
        --train train.jsonl --metric exact_match --out rag.json --resume /tmp/dspex_optimize/mipro_v2-....journal
      mix dspex.optimize --optimizer copro --breadth 6 --depth 2 --program "question -> answer" \\
        --train train.jsonl --metric MyApp.Metrics.match --lm openai/gpt-4o-mini --max-cost 2.50 \\
        --prices prices.json --out qa.json
      mix dspex.optimize --optimizer simba --bsize 8 --max-steps 4 --program "question -> answer" \\
        --train train.jsonl --metric exact_match --out qa.json
      mix dspex.optimize --optimizer gepa --auto light --prompt-lm openai/gpt-4o \\
        --program "question -> answer" --train train.jsonl --metric exact_match --out qa.json

  Options:

    * `--optimizer` (required) — `mipro_v2`, `copro`, `simba` or `gepa`;
    * `--program`, `--train`, `--metric`, `--inputs`, `--field`, `--fields` — as for
      `mix dspex.eval` (`--train` is a `.jsonl` or `.csv` file);
    * `--out PATH` — the best program, DSPy JSON (`DSPex.Optimize.Result.save/2`; the
      candidates go next to it, `<out>.candidates.json`);
    * `--journal PATH` — where to journal the job (default: a new file under
      `System.tmp_dir!()/dspex_optimize/`, printed); `--resume PATH` — continue the job
      journaled there (same program, data and optimizer options);
    * budgets: `--max-lm-calls N`, `--max-cost DOLLARS` (with `--prices FILE`, a JSON
      object `{"model": {"prompt": usd_per_1m, "completion": usd_per_1m}}`),
      `--max-wall DURATION` (`90s`, `30m`, `2h`, or milliseconds), `--stop-at-score S`;
    * MIPROv2: `--auto light|medium|heavy|none`, `--num-candidates N`, `--num-trials N`,
      `--seed N`, `--max-bootstrapped-demos N`, `--max-labeled-demos N`,
      `--minibatch-size N`, `--no-minibatch`, `--minibatch-full-eval-steps N`;
      COPRO: `--breadth N`, `--depth N`, `--init-temperature T`;
      SIMBA: `--bsize N`, `--num-candidates N`, `--max-steps N`, `--max-demos N`, `--seed N`;
      GEPA: one of `--auto light|medium|heavy` (the default), `--max-metric-calls N`,
      `--max-full-evals N`; `--reflection-minibatch-size N`, `--no-use-merge`, `--seed N`
      (the reflection LM is `--prompt-lm`);
    * LMs: `--lm MODEL` (the task model; else the configured LM), `--prompt-lm MODEL`
      (the proposer; default the task model), `--api-base URL`, `--no-cache`;
    * `--max-concurrency N`, `--max-errors N`, `--no-progress`.

  It prints one line per trial (on stderr), then the result: status, best score,
  trials, LM calls, cost, the journal and chart paths. A job stopped by a budget exits 0
  with its best program saved; a failed job exits non-zero (its best program is still
  saved when there is one).
  """

  use Mix.Task

  alias Mix.Tasks.Dspex.Eval

  @switches [
    optimizer: :string,
    program: :string,
    train: :string,
    metric: :string,
    inputs: :keep,
    field: :string,
    fields: :string,
    out: :string,
    journal: :string,
    resume: :string,
    max_lm_calls: :integer,
    max_cost: :float,
    prices: :string,
    max_wall: :string,
    stop_at_score: :float,
    auto: :string,
    num_candidates: :integer,
    num_trials: :integer,
    seed: :integer,
    max_bootstrapped_demos: :integer,
    max_labeled_demos: :integer,
    minibatch_size: :integer,
    minibatch: :boolean,
    minibatch_full_eval_steps: :integer,
    breadth: :integer,
    depth: :integer,
    init_temperature: :float,
    lm: :string,
    prompt_lm: :string,
    api_base: :string,
    cache: :boolean,
    max_concurrency: :integer,
    max_errors: :integer,
    progress: :boolean,
    bsize: :integer,
    max_steps: :integer,
    max_demos: :integer,
    max_metric_calls: :integer,
    max_full_evals: :integer,
    reflection_minibatch_size: :integer,
    use_merge: :boolean
  ]

  @optimizers %{
    "mipro_v2" => DSPex.Optimizers.MIPROv2,
    "copro" => DSPex.Optimizers.COPRO,
    "simba" => DSPex.Optimizers.SIMBA,
    "gepa" => DSPex.Optimizers.GEPA
  }

  @impl Mix.Task
  def run(args) do
    {opts, rest, invalid} = OptionParser.parse(args, strict: @switches)

    cond do
      invalid != [] -> Mix.raise("unknown or invalid options: #{Eval.format_invalid(invalid)}")
      rest != [] -> Mix.raise("unexpected arguments: #{Enum.join(rest, " ")}")
      true -> :ok
    end

    for key <- [:optimizer, :program, :train, :metric], opts[key] == nil do
      Mix.raise("mix dspex.optimize needs --#{key} (see `mix help dspex.optimize`)")
    end

    optimizer =
      Map.get(@optimizers, opts[:optimizer]) ||
        Mix.raise("--optimizer: expected one of #{Enum.join(Map.keys(@optimizers), ", ")}")

    Mix.Task.run("app.start")

    program = Eval.program!(opts[:program])
    field = String.to_atom(opts[:field] || "answer")
    metric = Eval.metric!(opts[:metric], field)
    inputs = Eval.inputs!(opts, program)
    labels = if opts[:fields], do: Eval.atoms(opts[:fields]), else: [field]
    trainset = Eval.load!(opts[:train], inputs, labels -- inputs)
    job_opts = job_opts(opts, optimizer, metric)

    started =
      try do
        case opts[:resume] do
          nil ->
            DSPex.Optimize.start(optimizer, program, trainset, job_opts)

          path ->
            DSPex.Optimize.resume(
              path,
              program,
              trainset,
              Keyword.put(job_opts, :optimizer, optimizer)
            )
        end
      rescue
        e in ArgumentError -> Mix.raise(Exception.message(e))
      end

    case started do
      {:ok, job} ->
        Mix.shell().info("Journal: #{DSPex.Optimize.status(job).journal}")
        report(DSPex.Optimize.await(job), opts)

      {:error, %DSPex.Error{} = e} ->
        Mix.raise("cannot start the job (#{e.type}): #{e.message}")
    end
  end

  defp job_opts(opts, optimizer, metric) do
    task = Eval.lm(opts)

    prompt =
      if opts[:prompt_lm], do: Eval.lm(Keyword.put(opts, :lm, opts[:prompt_lm])), else: task

    common = [
      metric: metric,
      task_model: task,
      prompt_model: prompt,
      journal: opts[:journal],
      max_lm_calls: opts[:max_lm_calls],
      max_cost: opts[:max_cost],
      prices: prices(opts[:prices]),
      max_wall: wall(opts[:max_wall]),
      stop_at_score: opts[:stop_at_score],
      max_concurrency: opts[:max_concurrency],
      max_errors: opts[:max_errors],
      progress: Keyword.get(opts, :progress, true)
    ]

    own =
      case optimizer do
        DSPex.Optimizers.MIPROv2 ->
          auto = auto(opts[:auto])

          counts =
            if auto == nil,
              do: [num_candidates: opts[:num_candidates], num_trials: opts[:num_trials]],
              else: []

          [auto: auto, seed: opts[:seed], minibatch: opts[:minibatch]] ++
            counts ++
            Keyword.take(opts, [
              :max_bootstrapped_demos,
              :max_labeled_demos,
              :minibatch_size,
              :minibatch_full_eval_steps
            ])

        DSPex.Optimizers.COPRO ->
          Keyword.take(opts, [:breadth, :depth, :init_temperature])

        DSPex.Optimizers.SIMBA ->
          Keyword.take(opts, [:bsize, :num_candidates, :max_steps, :max_demos, :seed])

        DSPex.Optimizers.GEPA ->
          budget =
            cond do
              opts[:max_metric_calls] -> [max_metric_calls: opts[:max_metric_calls]]
              opts[:max_full_evals] -> [max_full_evals: opts[:max_full_evals]]
              true -> [auto: auto(opts[:auto]) || :light]
            end

          [reflection_lm: prompt] ++
            budget ++ Keyword.take(opts, [:reflection_minibatch_size, :use_merge, :seed])
      end

    # GEPA's proposer is its reflection LM
    common =
      if optimizer == DSPex.Optimizers.GEPA,
        do: Keyword.delete(common, :prompt_model),
        else: common

    Enum.reject(common ++ own, fn {k, v} -> v == nil and k not in [:auto] end)
  end

  defp auto(nil), do: :light
  defp auto("none"), do: nil
  defp auto(a) when a in ~w(light medium heavy), do: String.to_atom(a)
  defp auto(other), do: Mix.raise("--auto: expected light, medium, heavy or none, got #{other}")

  defp prices(nil), do: %{}

  defp prices(path) do
    with {:ok, text} <- File.read(path),
         {:ok, %{} = table} <- DSPex.JSON.decode(text) do
      Map.new(table, fn {model, p} ->
        {model,
         %{prompt: p["prompt"] || 0, completion: p["completion"] || 0, cached: p["cached"]}}
      end)
      |> Map.new(fn {m, p} -> {m, Map.reject(p, fn {_, v} -> v == nil end)} end)
    else
      _ ->
        Mix.raise(
          "--prices: #{path} must be a JSON object {\"model\": {\"prompt\": ..., \"completion\": ...}}"
        )
    end
  end

  @doc false
  # "90s", "30m", "2h", "1500" (ms) -> milliseconds
  def wall(nil), do: nil

  def wall(text) do
    case Integer.parse(text) do
      {n, ""} when n > 0 ->
        n

      {n, "s"} when n > 0 ->
        n * 1000

      {n, "m"} when n > 0 ->
        n * 60_000

      {n, "h"} when n > 0 ->
        n * 3_600_000

      _ ->
        Mix.raise(
          "--max-wall: expected a duration like 90s, 30m, 2h or milliseconds, got #{text}"
        )
    end
  end

  defp report({:ok, result}, opts) do
    summary(result)
    save(result, opts[:out])
    result
  end

  defp report({:error, %DSPex.Error{} = e}, opts) do
    case e.details[:result] do
      %DSPex.Optimize.Result{} = result ->
        summary(result)
        save(result, opts[:out])

      _ ->
        :ok
    end

    Mix.raise("the optimizer job failed (#{e.type}): #{e.message}")
  end

  defp summary(r) do
    score = if is_number(r.score), do: DSPex.Evaluate.Score.py_str(r.score), else: "-"

    Mix.shell().info(
      "Status: #{r.status}#{if r.reason, do: " (#{DSPex.Optimize.Progress.describe(r.reason)})", else: ""}\n" <>
        "Best score: #{score}\n" <>
        "Trials: #{length(r.trial_logs)}\n" <>
        "LM calls: #{Map.get(r.usage, :lm_calls, 0)}  cost: $#{:erlang.float_to_binary(Map.get(r.usage, :cost, 0.0) * 1.0, decimals: 4)}\n" <>
        "Journal: #{r.journal}" <> if(r.chart, do: "\nChart: #{r.chart}", else: "")
    )
  end

  defp save(_r, nil), do: :ok

  defp save(r, path) do
    case DSPex.Optimize.Result.save(r, path) do
      :ok -> Mix.shell().info("Saved: #{path}")
      {:error, e} -> Mix.raise("--out: #{e.message}")
    end
  end
end
