defmodule DSPex.Optimize.EngineTest do
  # The optimizer engine through the real port program: DSPy's MIPROv2 trial sequence
  # over the wire, kill -9 of the port with a trial in flight, another job's journal,
  # torn tails, a full disk (RLIMIT_FSIZE on the port), and one reply per command.
  use ExUnit.Case, async: true

  alias DSPex.Optimize.Engine

  @moduletag :tmp_dir

  @fixture "test/fixtures/mipro/traces.json"

  setup_all do
    %{"runs" => runs} = @fixture |> File.read!() |> DSPex.JSON.decode!()
    {:ok, runs: runs}
  end

  defp config(run) do
    rng = for w <- run["rng_state"], into: <<>>, do: <<w::little-32>>

    %{
      mode: :tpe,
      params: for(p <- run["params"], do: {p["name"], p["choices"]}),
      seed: run["seed"],
      num_trials: run["num_trials"],
      valset_size: run["valset_size"],
      minibatch: run["minibatch"],
      minibatch_size: run["minibatch_size"],
      full_eval_steps: run["minibatch_full_eval_steps"],
      rng_state: rng,
      usage: %{lm_calls: 3, prompt_tokens: 0, completion_tokens: 0, cost: 0.0}
    }
  end

  @usage %{lm_calls: 1, prompt_tokens: 10, completion_tokens: 2, cost: 0.5}

  defp expect_trial(trial, want) do
    examples = if want["examples"] == nil, do: :all, else: want["examples"]

    assert {trial.number, Atom.to_string(trial.kind), trial.params, trial.examples} ==
             {want["number"], want["kind"], want["params"], examples}
  end

  defp drive(engine, trials) do
    for want <- trials do
      assert {:ok, {:trial, t}} = Engine.ask(engine)
      expect_trial(t, want)
      assert {:ok, _} = Engine.tell(engine, t.number, want["score"], @usage, %{scores: [1, 0]})
    end
  end

  test "the port reproduces DSPy's MIPROv2 trials for every golden run", %{
    runs: runs,
    tmp_dir: dir
  } do
    for {run, i} <- Enum.with_index(runs) do
      {:ok, e, %{created: true, events: []}} =
        Engine.open(Path.join(dir, "#{i}.journal"), ~s({"run":#{i}}), %{i: i})

      assert :ok = Engine.setup(e, config(run), %{instructions: ["a", "b"]})
      drive(e, run["trials"])
      assert {:ok, :done} = Engine.ask(e)
      {:ok, s} = Engine.status(e)

      assert s.finished and s.best_score == run["best_score"] and
               s.best_number == run["best_trial"]

      n = length(run["trials"])
      assert s.usage.lm_calls == n + 3 and s.usage.cost == n * 0.5
      Engine.close(e)
    end
  end

  test "kill -9 of the port with a trial in flight: the reopened journal hands it out again",
       %{runs: [run | _], tmp_dir: dir} do
    path = Path.join(dir, "j")
    {:ok, e, _} = Engine.open(path, "spec", :first)
    :ok = Engine.setup(e, config(run), %{demo_sets: 6})
    {done, rest} = Enum.split(run["trials"], 5)
    drive(e, done)
    {:ok, {:trial, in_flight}} = Engine.ask(e)
    System.cmd("kill", ["-9", Integer.to_string(e.os_pid)])

    assert {:error, %DSPex.Error{type: :engine_lost}} =
             Engine.tell(e, in_flight.number, 1.0, @usage)

    {:ok, e2, replay} = Engine.open(path, "spec", :second)
    refute replay.created

    assert [{:run, :first}, {:setup, cfg, %{demo_sets: 6}} | trials] = replay.events
    assert cfg.mode == :tpe and cfg.valset_size == run["valset_size"]
    assert length(for {:told, _, _, _, %{scores: [1, 0]}} <- trials, do: 1) == 5
    assert List.last(trials) == {:asked, in_flight}

    {:ok, s} = Engine.status(e2)
    assert s.told == 5 and s.outstanding == in_flight.number and s.usage.lm_calls == 5 + 3
    drive(e2, rest)
    assert {:ok, :done} = Engine.ask(e2)
    {:ok, s} = Engine.status(e2)
    assert s.best_score == run["best_score"]
    Engine.close(e2)
  end

  test "another job's journal is refused and the error names what differs", %{tmp_dir: dir} do
    path = Path.join(dir, "j")
    spec = DSPex.JSON.encode!(%{"optimizer" => "mipro_v2", "seed" => 9, "trainset" => "abc"})
    {:ok, e, _} = Engine.open(path, spec, nil)
    Engine.close(e)
    other = DSPex.JSON.encode!(%{"optimizer" => "mipro_v2", "seed" => 10, "trainset" => "abd"})
    assert {:error, %DSPex.Error{type: :spec_mismatch} = err} = Engine.open(path, other, nil)
    assert err.message =~ "belongs to a different job"
    assert err.message =~ "seed, trainset"
    assert err.details.differ == ["seed", "trainset"]
  end

  test "a torn last record is ignored and cut; garbage is not a journal", %{
    runs: [run | _],
    tmp_dir: dir
  } do
    path = Path.join(dir, "j")
    {:ok, e, _} = Engine.open(path, "spec", nil)
    :ok = Engine.setup(e, config(run), nil)
    drive(e, Enum.take(run["trials"], 3))
    Engine.close(e)
    File.write!(path, "DXJR" <> <<200::little-32>> <> "half a record", [:append])
    {:ok, e, replay} = Engine.open(path, "spec", nil)
    assert replay.torn_bytes == 21
    drive(e, Enum.slice(run["trials"], 3, 2))
    Engine.close(e)

    junk = Path.join(dir, "junk")
    File.write!(junk, "not a journal at all")
    assert {:error, %DSPex.Error{type: :not_a_journal}} = Engine.open(junk, "spec", nil)
  end

  test "a journal held by a running job is busy", %{tmp_dir: dir} do
    path = Path.join(dir, "j")
    {:ok, e, _} = Engine.open(path, "spec", nil)
    assert {:error, %DSPex.Error{type: :busy}} = Engine.open(path, "spec", nil)
    Engine.close(e)
  end

  test "a full disk ends in :disk_full and the journal stays readable", %{
    runs: [run | _],
    tmp_dir: dir
  } do
    # The port runs under a 64 KiB file-size limit (EFBIG, reported like ENOSPC);
    # SIGXFSZ is ignored, as a real full disk sends no signal.
    wrapper = Path.join(dir, "limited_port")

    File.write!(wrapper, """
    #!/bin/sh
    ulimit -f 128
    trap '' XFSZ
    exec #{Engine.default_port_path()}
    """)

    File.chmod!(wrapper, 0o755)
    path = Path.join(dir, "j")
    {:ok, e, _} = Engine.open(path, "spec", nil, port_path: wrapper)
    :ok = Engine.setup(e, config(run), nil)
    big = :crypto.strong_rand_bytes(12_000)

    {told, err} =
      Enum.reduce_while(run["trials"], {0, nil}, fn want, {n, _} ->
        {:ok, {:trial, t}} = Engine.ask(e)
        expect_trial(t, want)

        case Engine.tell(e, t.number, want["score"], @usage, big) do
          {:ok, _} -> {:cont, {n + 1, nil}}
          {:error, err} -> {:halt, {n, err}}
        end
      end)

    assert %DSPex.Error{type: :disk_full, message: msg} = err
    assert msg =~ "File too large"
    assert told in 1..9
    Engine.close(e)

    {:ok, e, replay} = Engine.open(path, "spec", nil)
    assert length(for {:told, _, _, _, _} <- replay.events, do: 1) == told
    {:ok, s} = Engine.status(e)
    assert s.told == told
    drive(e, Enum.drop(run["trials"], told))
    assert {:ok, :done} = Engine.ask(e)
    Engine.close(e)
  end

  test "bad commands get one error reply each", %{tmp_dir: dir} do
    {:ok, e, _} = Engine.open(Path.join(dir, "j"), "spec", nil)
    assert {:error, %DSPex.Error{type: :state}} = Engine.ask(e)
    assert {:error, %DSPex.Error{type: :bad_request}} = Engine.setup(e, %{mode: :sideways}, nil)

    assert {:error, %DSPex.Error{type: :bad_request, message: m}} =
             Engine.setup(e, %{mode: :tpe, params: [{"x", 2}], rng_state: "short"}, nil)

    assert m =~ "2500 bytes"
    assert :ok = Engine.setup(e, %{mode: :queue, usage: %{lm_calls: 2}}, nil)
    assert {:ok, :need} = Engine.ask(e)
    assert {:ok, 0} = Engine.add_batch(e, 2, [3, 1, 2], %{c: 1})

    assert {:ok, {:trial, %{number: 1, kind: :candidate, params: [0, 0], examples: [3, 1, 2]}}} =
             Engine.ask(e)

    assert {:error, %DSPex.Error{type: :state}} = Engine.tell(e, 7, 1.0, @usage)
    assert {:error, %DSPex.Error{type: :bad_request}} = Engine.tell(e, 1, "high", @usage)

    assert {:ok, %{told: 1, best_number: 1, asked: 2}, {:trial, %{number: 2, params: [0, 1]}}} =
             Engine.tell_ask(e, 1, 100, @usage)

    assert {:ok, %{told: 2}, :need} = Engine.tell_ask(e, 2, 50.5, @usage)
    assert :ok = Engine.note(e, :best, %{program: "{}"})
    ghost = %{e | job: 9}

    assert {:error, %DSPex.Error{type: :bad_request, message: "no such optimizer job" <> _}} =
             Engine.ask(ghost)

    Engine.close(e)
  end
end
