# The demo's MIPROv2 step (called from examples/demo.exs): an instruction-optimizer job
# with a journal, a `kill -9` of its engine in the middle, a budget, a resume, and the
# chart it writes.
#
# The LM is NOT a language model. Both models are in-process scripted stand-ins
# (DSPex.LM.Scripted), the world the MIPROv2 golden tests run in: the "task model" answers
# "What is a plus b?" correctly or says "wrong", decided by a hash of the exact prompt
# (so different instructions and demos really do score differently), and the "prompt
# model" returns canned observations and instruction proposals. Real DSPy 3.3.1 runs in
# this same world produce the same trials and the same best program (see
# test/fixtures/mipro/traces.json).

Code.require_file("../../test/support/optimize_support.ex", __DIR__)

defmodule Demo.MIPRO do
  @moduledoc false
  require Logger

  alias DSPex.Optimizers.MIPROv2
  alias DSPex.Test.OptimizeSupport, as: World

  def run(section) do
    section.("Optimizing instructions: MIPROv2 as a resumable job")

    IO.puts("""
    LM: not a language model. In-process scripted stand-ins: the task model's answers are
    decided by a hash of the exact prompt, the prompt model returns canned proposals.
    """)

    dir = Path.join(System.tmp_dir!(), "dspex_demo_#{System.os_time()}")
    File.mkdir_p!(dir)
    journal = Path.join(dir, "qa.journal")
    # ChainOfThought on 130 arithmetic questions, seed 42: the golden run
    # "light_cot_seed42" of test/fixtures/mipro/traces.json, so DSPy's result is known
    trainset = World.dataset(130, 2)
    program = DSPex.ChainOfThought.new("question -> answer")

    opts = fn extra ->
      Keyword.merge(
        [
          metric: &World.metric/2,
          prompt_model: World.prompt_lm(),
          task_model: World.task_lm(),
          auto: :light,
          seed: 42,
          journal: journal,
          progress: :stdio
        ],
        extra
      )
    end

    # 1. A budget: the job stops cleanly at 400 LM calls with the best program so far.
    #    (DSPex.Evaluate logs a warning per example the budget refused in the trial it
    #    cut short; the demo keeps those out of its output.)
    Logger.configure(level: :error)
    {:ok, first} = MIPROv2.compile(program, trainset, opts.(max_lm_calls: 400))
    Logger.configure(level: :warning)

    IO.puts(
      "\nfirst run: #{first.status} #{inspect(first.reason)} after #{length(first.trial_logs)} trials, " <>
        "best #{first.score}"
    )

    # 2. Resume with no budget; at the task model's 150th call (mid-trial) kill -9 the
    #    engine's port: the job reopens its journal and carries on by itself.
    calls = :counters.new(1, [])

    task =
      DSPex.LM.Scripted.new(
        fn messages, params, call ->
          :counters.add(calls, 1, 1)
          if :counters.get(calls, 1) == 150, do: kill_engine()
          World.task_reply(messages, params, call)
        end,
        model: "scripted/task"
      )

    {:ok, job} = DSPex.Optimize.resume(journal, program, trainset, opts.(task_model: task))
    :persistent_term.put({__MODULE__, :job}, job)
    {:ok, result} = DSPex.Optimize.await(job)

    IO.puts("""

    resumed run: #{result.status}, #{length(result.trial_logs)} trials in all, engine restarts: #{DSPex.Optimize.status(job).restarts}
    best score #{result.score} (full valset; the default program scored #{hd(result.trial_logs).score});
    DSPy 3.3.1 + optuna reach the same trials and best program on this data
    best instruction: #{inspect(result.program.predict.signature.instructions)}
    LM calls #{result.usage.lm_calls}, journal #{result.journal}
    chart: #{result.chart}
    """)
  end

  defp kill_engine do
    os_pid = DSPex.Optimize.status(:persistent_term.get({__MODULE__, :job})).engine_os_pid
    System.cmd("kill", ["-9", Integer.to_string(os_pid)])
    IO.puts("  -- kill -9 of the engine's port (os pid #{os_pid}) in the middle of a trial --")
  end
end
