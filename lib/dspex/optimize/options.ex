defmodule DSPex.Optimize.Options do
  @moduledoc false
  # The job options every optimizer takes (DSPex.Optimize's module doc lists them).

  @schema DSPex.Options.schema!(
            metric: [
              type: :any,
              required: true,
              doc:
                "the metric: `(example, prediction)` or `(example, prediction, trace)`, or a built-in " <>
                  "(`{:builtin, :exact_match, field: :answer}`, see `DSPex.Evaluate.Metric`)."
            ],
            journal: [
              type: {:or, [:string, nil]},
              doc:
                "the journal's path; an existing journal of the same job is resumed. Default: a new " <>
                  "file under `System.tmp_dir!()/dspex_optimize/` (the result and status give its path)."
            ],
            max_lm_calls: [
              type: {:or, [:pos_integer, nil]},
              doc: "most LM calls (cache hits are free)."
            ],
            max_cost: [
              type: {:or, [:number, nil]},
              doc: "most dollars, priced with `prices:`."
            ],
            max_wall: [
              type: {:or, [:pos_integer, nil]},
              doc: "most milliseconds for this run (from start or resume)."
            ],
            stop_at_score: [
              type: {:or, [:number, nil]},
              doc: "stop once the best score reaches this."
            ],
            prices: [
              type: :map,
              default: %{},
              doc:
                "the price table, `%{model => %{prompt: $/1M tokens, completion: $/1M tokens}}` " <>
                  "(`DSPex.Usage.cost/2`); default `Application.get_env(:dspex, :prices, %{})`."
            ],
            progress: [
              type: {:or, [:boolean, :atom, :pid]},
              default: false,
              doc: "one live line per trial on the terminal: `true` (stderr) or a device."
            ],
            nodes: [
              type: {:or, [{:list, :atom}, nil]},
              doc: "run the trials' evaluations on these nodes."
            ],
            max_concurrency: [
              type: {:or, [:pos_integer, nil]},
              doc: "examples evaluated at once per node (DSPy's `num_threads`; default 8)."
            ],
            num_threads: [alias: :max_concurrency, doc: "DSPy's name for `max_concurrency`."],
            max_errors: [
              type: {:or, [:non_neg_integer, {:in, [:infinity]}, nil]},
              doc: "failed examples that end one evaluation (DSPy's; default 10)."
            ],
            provide_traceback: [type: :boolean, default: false, doc: "keep failures' tracebacks."],
            chart: [
              type: :boolean,
              default: true,
              doc: "write `<journal>.svg` when the job ends."
            ],
            keep_ms: [
              type: :pos_integer,
              default: 300_000,
              doc: "how long a finished job keeps its result."
            ],
            cancel_grace_ms: [
              type: :pos_integer,
              default: 5_000,
              doc: "how long `cancel/1` waits for the trial in flight to stop before ending it."
            ],
            port_path: [type: {:or, [:string, nil]}, doc: "the `dspex_port` executable (tests)."]
          )

  def schema, do: @schema
  def keys, do: DSPex.Options.keys(@schema)

  def validate!(opts, context) do
    opts = DSPex.Options.validate!(opts, @schema, context)

    prices =
      if opts[:prices] == %{}, do: Application.get_env(:dspex, :prices, %{}), else: opts[:prices]

    if opts[:max_cost] != nil and prices == %{} do
      raise ArgumentError,
            "max_cost: needs a price table: pass prices: %{\"provider/model\" => %{prompt: usd_per_1m, " <>
              "completion: usd_per_1m}} (or config :dspex, :prices)"
    end

    Keyword.put(opts, :prices, prices)
  end
end
