defmodule DSPex.Optimizers.GroundedProposer do
  @moduledoc """
  DSPy's `GroundedProposer` (`dspy/propose/grounded_proposer.py`): proposes instruction
  candidates for each predictor of a program, grounded in

    * a **dataset summary** — `DatasetDescriptor` over the first
      `view_data_batch_size` training examples, `DatasetDescriptorWithPriorObservations`
      over later batches (at most 9, stopping after 5 replies that start with
      `COMPLETE`), then `ObservationSummarizer`;
    * a **program summary** — `DescribeProgram` from the program's code and
      `DescribeModule` for the predictor (`"Predict(question) -> answer"`);
    * **task demos** — up to 3 bootstrapped (`augmented`) demos from the demo set the
      proposal is for, then the later sets, then the earlier ones (none for set 0);
    * a **tip** drawn per proposal from DSPy's six (`rng.choice`);
    * optionally an **instruction history** (past instructions with their average
      scores; MIPROv2 leaves it off, as DSPy does).

  The proposer signatures, their instructions and field descriptions, the call order,
  the random draws (a tip `choice` and a rollout `randint(0, 10**9)` per proposal, on
  the caller's `DSPex.Random`), the temperatures and `strip_prefix` are DSPy 3.3.1's —
  golden-checked, prompt for prompt, against real DSPy runs
  (`tools/gen_mipro_traces.py`), with two exceptions stated here:

    * **program code**: DSPy shows the LM `inspect.getsource` of the Python program.
      DSPex shows the Elixir module's own source when it can find it (the
      `defmodule` block of its source file), plus, per predictor, its name, module,
      signature and instructions;
    * **example reprs** in the dataset summary are Python `repr`s of `dspy.Example`s
      (`Example({'question': '...', 'answer': '...'}) (input_keys={'question'})`). An
      Elixir map has no insertion order, so the fields come input keys first (in
      `with_inputs` order), then the others sorted by name — the same text as DSPy when
      the example was built that way, the usual case. Non-ASCII characters that Python
      escapes in a `repr` (non-printable ones) are escaped for the common cases
      (controls, format characters, line/paragraph separators, unusual spaces,
      private use), not for every unassigned code point.

  Errors follow DSPy: a dataset summary that fails disables the data-aware part; a
  program description that fails leaves "Not available" / "Not provided" for that
  proposal; an instruction call that fails makes the proposal an empty string.
  """

  alias DSPex.{Module, Predict, Random, Signature}

  @tips [
    none: "",
    creative: "Don't be afraid to be creative when creating the new instruction!",
    simple: "Keep the instruction clear and concise.",
    description: "Make sure your instruction is very informative and descriptive.",
    high_stakes:
      "The instruction should include a high stakes scenario in which the LM must solve the task!",
    persona:
      "Include a persona that is relevant to the task in the instruction (ie. \"You are a ...\")"
  ]

  @doc "DSPy's tips, in DSPy's order (the `rng.choice` draws over this list)."
  @spec tips() :: keyword
  def tips, do: @tips

  @doc """
  Proposes instructions for every predictor of `program`: returns
  `{%{predictor_index => [instruction, ...]}, rng}` with `min(n, number of demo sets)`
  proposals per predictor (index 0 is a proposal too; MIPROv2 replaces it with the
  predictor's own instruction, as DSPy does).

  `opts`:

    * `prompt_model` (required) — the LM that writes (already metered by the job);
    * `trainset`, `demo_candidates` (`%{i => [demo_list]}` or `nil`), `n`, `rng`;
    * `program_aware` (true), `use_dataset_summary` (true), `use_task_demos` (true),
      `use_tip` / `set_tip_randomly` (true), `use_instruct_history` (false),
      `set_history_randomly` (false), `history` (`[%{program:, score:}]`),
      `view_data_batch_size` (10), `num_demos_in_context` (3), `init_temperature` (1.0),
      `skip_set0` (false: make the set-0 proposal DSPy makes and MIPROv2 discards).
  """
  @spec propose(term, keyword) :: {%{non_neg_integer => [binary]}, Random.t()}
  def propose(program, opts) do
    opts =
      Keyword.merge(
        [
          program_aware: true,
          use_dataset_summary: true,
          use_task_demos: true,
          use_tip: true,
          set_tip_randomly: true,
          use_instruct_history: false,
          set_history_randomly: false,
          history: [],
          view_data_batch_size: 10,
          num_demos_in_context: 3,
          init_temperature: 1.0
        ],
        opts
      )

    lm = Keyword.fetch!(opts, :prompt_model)
    code = if opts[:program_aware], do: program_code(program)

    summary =
      if opts[:use_dataset_summary],
        do: dataset_summary(opts[:trainset], opts[:view_data_batch_size], lm)

    rng = Keyword.fetch!(opts, :rng)

    {use_history, rng} =
      if opts[:set_history_randomly] do
        {x, rng} = Random.random(rng)
        {x < 0.5, rng}
      else
        {opts[:use_instruct_history], rng}
      end

    demo_candidates = opts[:demo_candidates]
    use_task_demos = opts[:use_task_demos] and demo_candidates not in [nil, %{}]
    n = opts[:n]

    num_demos =
      if demo_candidates in [nil, %{}],
        do: n,
        else: max(length(Map.fetch!(demo_candidates, 0)), 1)

    preds = Module.predictors(program)

    ctx = %{
      lm: lm,
      code: code,
      summary: summary,
      program: program,
      demo_candidates: demo_candidates,
      use_task_demos: use_task_demos,
      use_history: use_history,
      opts: opts
    }

    {proposals, rng} =
      preds
      |> Enum.with_index()
      |> Enum.map_reduce(rng, fn {pred, i}, rng ->
        Enum.map_reduce(Enum.take(0..(num_demos - 1)//1, min(n, num_demos)), rng, fn set_i, rng ->
          {tip, rng} =
            if opts[:set_tip_randomly] do
              {key, rng} = Random.choice(rng, Keyword.keys(@tips))
              {Keyword.fetch!(@tips, key), rng}
            else
              {nil, rng}
            end

          {rollout, rng} = Random.randint(rng, 0, 1_000_000_000)

          if opts[:skip_set0] and set_i == 0,
            do: {"", rng},
            else: {propose_one(ctx, pred, i, set_i, tip, rollout), rng}
        end)
      end)

    {proposals |> Enum.with_index() |> Map.new(fn {list, i} -> {i, list} end), rng}
  end

  # propose_instruction_for_predictor + GenerateModuleInstruction.forward
  defp propose_one(ctx, pred, i, set_i, tip, rollout) do
    opts = ctx.opts
    params = [temperature: opts[:init_temperature], rollout_id: rollout]
    sig = pred.signature
    history = if ctx.use_history, do: history_string(opts[:history], i, 5), else: ""
    use_history = ctx.use_history and history != ""
    use_tip = tip not in [nil, ""]

    task_demos =
      if ctx.use_task_demos do
        sets = Map.fetch!(ctx.demo_candidates, i)
        ordered = [Enum.at(sets, set_i)] ++ Enum.drop(sets, set_i + 1) ++ Enum.take(sets, set_i)

        strings =
          ordered
          |> Stream.concat()
          |> Stream.filter(&augmented?/1)
          |> Enum.take(opts[:num_demos_in_context])
          |> Enum.map(&example_string(sig, &1))

        Enum.join(strings, "\n\n") <> "\n\n"
      else
        ""
      end

    task_demos =
      if String.trim(task_demos) == "" or set_i == 0,
        do: "No task demos provided.",
        else: task_demos

    {program_description, module_code, module_description} =
      if ctx.code do
        with {:ok, out} <-
               ask(describe_program(), ctx.lm, params,
                 program_code: ctx.code,
                 program_example: task_demos
               ) do
          description = strip_prefix(to_string(out[:program_description]))

          module =
            "#{module_class(pred)}(#{Enum.join(Signature.input_names(sig), ", ")}) -> #{Enum.join(Signature.output_names(sig), ", ")}"

          case ask(describe_module(), ctx.lm, params,
                 program_code: ctx.code,
                 program_description: description,
                 program_example: task_demos,
                 module: module
               ) do
            {:ok, out} -> {description, module, to_string(out[:module_description])}
            {:error, _} -> {description, module, "Not provided"}
          end
        else
          _ -> {"Not available", "Not provided", "Not provided"}
        end
      else
        {"Not available", "Not provided", "Not provided"}
      end

    gen =
      generate_instruction(
        use_dataset_summary: ctx.summary != nil,
        program_aware: ctx.code != nil,
        use_instruct_history: use_history,
        use_tip: use_tip
      )

    inputs = [
      dataset_description: ctx.summary,
      program_code: ctx.code,
      module: module_code,
      program_description: program_description,
      module_description: module_description,
      task_demos: task_demos,
      tip: tip,
      basic_instruction: sig.instructions,
      previous_instructions: history
    ]

    inputs = Enum.filter(inputs, fn {k, _} -> Signature.field(gen, k) != nil end)

    case ask(gen, ctx.lm, params, inputs) do
      {:ok, out} -> out[:proposed_instruction] |> to_string() |> strip_prefix() |> strip_prefix()
      {:error, _} -> ""
    end
  end

  defp ask(sig, lm, params, inputs) do
    DSPex.call(Predict.new(sig, [lm: lm] ++ params), inputs)
  end

  defp module_class(%Predict{}), do: "Predict"

  defp augmented?(demo) when is_map(demo),
    do: Map.has_key?(demo, :augmented) or Map.has_key?(demo, "augmented")

  defp augmented?(_), do: false

  @doc """
  DSPy's `create_example_string`: one `"{prefix} {value}"` line per field of the
  signature (inputs, then outputs), a missing field as `None`.

  ## Examples

      iex> sig = DSPex.Signature.parse!("question -> answer")
      iex> DSPex.Optimizers.GroundedProposer.example_string(sig, %{question: "1+1?", augmented: true})
      "Question: 1+1?\\nAnswer: None"
  """
  @spec example_string(Signature.t(), map) :: binary
  def example_string(sig, demo) do
    Enum.map_join(Signature.fields(sig), "\n", fn f ->
      value = Map.get(demo, f.name, Map.get(demo, Atom.to_string(f.name)))
      "#{f.prefix} #{py_str(value)}"
    end)
  end

  @doc """
  DSPy's `strip_prefix`: removes a leading `up to five words:` label (after optional
  `*` and spaces), then `"` at both ends.

  ## Examples

      iex> DSPex.Optimizers.GroundedProposer.strip_prefix("Proposed Instruction: Add them.")
      "Add them."
      iex> DSPex.Optimizers.GroundedProposer.strip_prefix(~s(**Instruction:** "Do X"))
      ~s(** "Do X)
  """
  @spec strip_prefix(binary) :: binary
  def strip_prefix(text) do
    ~r/^[\*\s]*(([\w\'\-]+\s+){0,4}[\w\'\-]+):\s*/u
    |> Regex.replace(text, "")
    |> String.trim("\"")
  end

  # ------------------------------------------------------------------ dataset summary

  @doc """
  DSPy's `create_dataset_summary`: observations over batches of `batch` examples, then
  a 2–3 sentence summary (`strip_prefix`ed). `nil` when it fails (DSPy then runs without
  the data-aware part).
  """
  @spec dataset_summary([DSPex.Example.t()], pos_integer, struct) :: binary | nil
  def dataset_summary(trainset, batch, lm) do
    params = [n: 1, temperature: 1.0]

    with {:ok, out} <-
           ask(dataset_descriptor(), lm, params,
             examples: examples_repr(Enum.take(trainset, batch))
           ) do
      observations = observe(trainset, batch, lm, params, to_string(out[:observations]))

      case ask(observation_summarizer(), lm, params, observations: observations) do
        {:ok, out} -> strip_prefix(to_string(out[:summary]))
        {:error, _} -> nil
      end
    else
      _ -> nil
    end
  end

  # batches b = batch, 2*batch, ... < len(trainset); at most 9 (the 10th call stops);
  # 5 "COMPLETE" replies stop; any error ends the loop with what was observed
  defp observe(trainset, batch, lm, params, observations) do
    n = length(trainset)
    starts = if batch < n, do: Enum.take(Enum.to_list(batch..(n - 1)//batch), 9), else: []

    Enum.reduce_while(starts, {observations, 0}, fn b, {obs, skips} ->
      slice = Enum.slice(trainset, b, batch)

      case ask(descriptor_with_prior(), lm, params,
             prior_observations: obs,
             examples: examples_repr(slice)
           ) do
        {:ok, out} ->
          text = to_string(out[:observations])

          if String.length(text) >= 8 and String.upcase(String.slice(text, 0, 8)) == "COMPLETE" do
            if skips + 1 >= 5, do: {:halt, {obs, skips + 1}}, else: {:cont, {obs, skips + 1}}
          else
            {:cont, {obs <> text, skips}}
          end

        {:error, _} ->
          {:halt, {obs, skips}}
      end
    end)
    |> elem(0)
  end

  @doc """
  Python's `repr` of a list of `dspy.Example`s with the input keys sorted (DSPy's
  `order_input_keys_in_string`).

  ## Examples

      iex> ex = DSPex.Example.new(question: "It's 2?", answer: "2") |> DSPex.Example.with_inputs([:question])
      iex> DSPex.Optimizers.GroundedProposer.examples_repr([ex])
      ~s|[Example({'question': "It's 2?", 'answer': '2'}) (input_keys={'question'})]|
  """
  @spec examples_repr([DSPex.Example.t()]) :: binary
  def examples_repr(examples), do: "[" <> Enum.map_join(examples, ", ", &example_repr/1) <> "]"

  defp example_repr(%DSPex.Example{fields: fields, input_keys: keys}) do
    keys = keys || []
    visible = fields |> Map.keys() |> Enum.reject(&String.starts_with?(to_string(&1), "dspy_"))
    ordered = Enum.filter(keys, &(&1 in visible)) ++ Enum.sort_by(visible -- keys, &to_string/1)

    dict =
      Enum.map_join(ordered, ", ", fn k ->
        py_repr(to_string(k)) <> ": " <> py_repr(Map.fetch!(fields, k))
      end)

    input_keys = keys |> Enum.map(&py_repr(to_string(&1))) |> Enum.sort() |> Enum.join(", ")
    input_keys = if input_keys == "", do: "set()", else: "{" <> input_keys <> "}"
    "Example({" <> dict <> "}) (input_keys=" <> input_keys <> ")"
  end

  @doc """
  Python's `str()` of a value (strings as they are, `None`, `True`, lists as `repr`).

  ## Examples

      iex> DSPex.Optimizers.GroundedProposer.py_str(["a", 1, nil, true])
      "['a', 1, None, True]"
  """
  @spec py_str(term) :: binary
  def py_str(s) when is_binary(s), do: s
  def py_str(v), do: py_repr(v)

  @doc """
  Python's `repr()` of a value: strings quoted and escaped as CPython does, `None`,
  `True`/`False`, ints, floats (shortest round-trip), lists, tuples, dicts.

  ## Examples

      iex> DSPex.Optimizers.GroundedProposer.py_repr(%{"k" => ["x\\ny", 1.0]})
      ~s({'k': ['x\\\\ny', 1.0]})
  """
  @spec py_repr(term) :: binary
  def py_repr(nil), do: "None"
  def py_repr(true), do: "True"
  def py_repr(false), do: "False"
  def py_repr(i) when is_integer(i), do: Integer.to_string(i)
  def py_repr(f) when is_float(f), do: DSPex.Evaluate.Score.py_str(f)
  def py_repr(a) when is_atom(a), do: py_repr(Atom.to_string(a))
  def py_repr(s) when is_binary(s), do: str_repr(s)
  def py_repr(l) when is_list(l), do: "[" <> Enum.map_join(l, ", ", &py_repr/1) <> "]"

  def py_repr(t) when is_tuple(t) do
    case Tuple.to_list(t) do
      [one] -> "(" <> py_repr(one) <> ",)"
      items -> "(" <> Enum.map_join(items, ", ", &py_repr/1) <> ")"
    end
  end

  def py_repr(%DSPex.Example{} = ex), do: example_repr(ex)
  def py_repr(%_{} = s), do: py_repr(Map.from_struct(s))

  def py_repr(m) when is_map(m),
    do: "{" <> Enum.map_join(m, ", ", fn {k, v} -> py_repr(k) <> ": " <> py_repr(v) end) <> "}"

  def py_repr(other), do: str_repr(inspect(other))

  defp str_repr(s) do
    quote = if String.contains?(s, "'") and not String.contains?(s, "\""), do: "\"", else: "'"
    body = for <<c::utf8 <- s>>, into: "", do: escape(c, quote)
    quote <> body <> quote
  end

  defp escape(?\\, _q), do: "\\\\"
  defp escape(?\t, _q), do: "\\t"
  defp escape(?\n, _q), do: "\\n"
  defp escape(?\r, _q), do: "\\r"
  defp escape(?', "'"), do: "\\'"
  defp escape(c, _q) when c < 0x20 or c == 0x7F, do: hex(c)
  defp escape(c, _q) when c < 0x7F, do: <<c::utf8>>

  defp escape(c, _q) do
    if printable?(c), do: <<c::utf8>>, else: hex(c)
  end

  defp hex(c) when c < 0x100, do: "\\x" <> pad(c, 2)
  defp hex(c) when c < 0x10000, do: "\\u" <> pad(c, 4)
  defp hex(c), do: "\\U" <> pad(c, 8)

  defp pad(c, n),
    do: c |> Integer.to_string(16) |> String.downcase() |> String.pad_leading(n, "0")

  # str.isprintable for the code points that matter in practice: C1 controls, NBSP and
  # the other non-ASCII spaces (Zs), line/paragraph separators, format characters (Cf),
  # private use (Co).
  defp printable?(c) do
    not (c in 0x80..0xA0 or c == 0xAD or c == 0x061C or c == 0x06DD or c == 0x070F or c == 0x1680 or
           c == 0x180E or c in 0x2000..0x200F or c in 0x2028..0x202F or c in 0x205F..0x2064 or
           c in 0x2066..0x206F or c == 0x3000 or c == 0xFEFF or c in 0xFFF9..0xFFFB or
           c in 0xE000..0xF8FF or c in 0xF0000..0x10FFFF or c in 0xE0001..0xE007F)
  end

  # ------------------------------------------------------------------ program code

  @doc """
  The program description the program-aware proposer shows (see the module doc):
  the source of the program's module when found, and every predictor with its module,
  signature and instructions.
  """
  @spec program_code(term) :: binary
  def program_code(program) do
    preds =
      for {name, p} <- Module.named_predictors(program) do
        "# #{name}: #{inspect(p.__struct__)}(\"#{Signature.signature_string(p.signature)}\")\n" <>
          "#   instructions: #{p.signature.instructions}"
      end

    source =
      case program do
        %Predict{} -> ""
        %DSPex.ChainOfThought{} -> ""
        %mod{} -> module_source(mod)
      end

    Enum.join(preds, "\n") <> "\n\n" <> source
  end

  defp module_source(mod) do
    with path when is_list(path) <- mod.module_info(:compile)[:source],
         {:ok, text} <- File.read(List.to_string(path)) do
      extract_module(text, mod)
    else
      _ -> ""
    end
  rescue
    _ -> ""
  end

  # The `defmodule <Name> do ... end` block (its last alias segment), by indentation.
  defp extract_module(text, mod) do
    short = mod |> Atom.to_string() |> String.split(".") |> List.last()
    lines = String.split(text, "\n")

    case Enum.find_index(lines, &Regex.match?(~r/^\s*defmodule\s+([\w.]+\.)?#{short}\s+do\b/, &1)) do
      nil ->
        ""

      i ->
        indent =
          lines |> Enum.at(i) |> then(&(byte_size(&1) - byte_size(String.trim_leading(&1))))

        rest = Enum.drop(lines, i)

        {block, _} =
          Enum.split_while(Enum.with_index(rest), fn {l, j} ->
            not (j > 0 and String.trim(l) == "end" and
                   byte_size(l) - byte_size(String.trim_leading(l)) == indent)
          end)

        body = Enum.map(block, &elem(&1, 0)) ++ [String.duplicate(" ", indent) <> "end"]

        body
        |> Enum.map(&String.replace_prefix(&1, String.duplicate(" ", indent), ""))
        |> Enum.join("\n")
    end
  end

  # ------------------------------------------------------------------ instruction history

  @doc """
  DSPy's `create_predictor_level_history_string`: predictor `i`'s instructions in
  `history` (`[%{program:, score:}]`), averaged per instruction, the best `top_n`
  listed worst first as `"<instruction> | Score: <average>\\n\\n"`.
  """
  @spec history_string([map], non_neg_integer, pos_integer) :: binary
  def history_string(history, i, top_n) do
    {order, agg} =
      Enum.reduce(history || [], {[], %{}}, fn %{program: p, score: s}, {order, agg} ->
        ins = Enum.at(Module.predictors(p), i).signature.instructions

        case agg do
          %{^ins => {t, c}} -> {order, Map.put(agg, ins, {t + s, c + 1})}
          _ -> {order ++ [ins], Map.put(agg, ins, {s, 1})}
        end
      end)

    order
    |> Enum.map(fn ins ->
      {t, c} = agg[ins]
      {ins, t / c}
    end)
    |> Enum.with_index()
    |> Enum.sort_by(fn {{_, avg}, j} -> {-avg, j} end)
    |> Enum.take(top_n)
    |> Enum.reverse()
    |> Enum.map_join("", fn {{ins, avg}, _} ->
      "#{ins} | Score: #{DSPex.Evaluate.Score.py_str(avg)}\n\n"
    end)
  end

  # ------------------------------------------------------------------ signatures (DSPy's, exact)

  defp sig(spec, instructions, descs) do
    Enum.reduce(descs, Signature.parse!(spec, instructions: instructions), fn {f, d}, s ->
      Signature.update_field(s, f, desc: d)
    end)
  end

  @doc false
  def dataset_descriptor do
    sig(
      "examples -> observations",
      "Given several examples from a dataset please write observations about trends that hold for most or all of the samples. Some areas you may consider in your observations: topics, content, syntax, conciseness, etc. It will be useful to make an educated guess as to the nature of the task this dataset will enable. Don't be afraid to be creative",
      examples: "Sample data points from the dataset",
      observations: "Somethings that holds true for most or all of the data you observed"
    )
  end

  @doc false
  def descriptor_with_prior do
    sig(
      "examples, prior_observations -> observations",
      "Given several examples from a dataset please write observations about trends that hold for most or all of the samples. I will also provide you with a few observations I have already made.  Please add your own observations or if you feel the observations are comprehensive say 'COMPLETE' Some areas you may consider in your observations: topics, content, syntax, conciceness, etc. It will be useful to make an educated guess as to the nature of the task this dataset will enable. Don't be afraid to be creative",
      examples: "Sample data points from the dataset",
      prior_observations: "Some prior observations I made about the data",
      observations:
        "Somethings that holds true for most or all of the data you observed or COMPLETE if you have nothing to add"
    )
  end

  @doc false
  def observation_summarizer do
    sig(
      "observations -> summary",
      "Given a series of observations I have made about my dataset, please summarize them into a brief 2-3 sentence summary which highlights only the most important details.",
      observations: "Observations I have made about my dataset",
      summary:
        "Two to Three sentence summary of only the most significant highlights of my observations"
    )
  end

  @doc false
  def describe_program do
    sig(
      "program_code, program_example -> program_description",
      "Below is some pseudo-code for a pipeline that solves tasks with calls to language models. Please describe what type of task this program appears to be designed to solve, and how it appears to work.",
      program_code:
        "Pseudocode for a language model program designed to solve a particular task.",
      program_example: "An example of the program in use.",
      program_description:
        "Describe what task the program is designed to solve, and how it goes about solving this task."
    )
  end

  @doc false
  def describe_module do
    sig(
      "program_code, program_example, program_description, module -> module_description",
      "Below is some pseudo-code for a pipeline that solves tasks with calls to language models. Please describe the purpose of one of the specified module in this pipeline.",
      program_code:
        "Pseudocode for a language model program designed to solve a particular task.",
      program_example: "An example of the program in use.",
      program_description:
        "Summary of the task the program is designed to solve, and how it goes about solving it.",
      module: "The module in the program that we want to describe.",
      module_description: "Description of the module's role in the broader program."
    )
  end

  @doc false
  # generate_instruction_class: the fields present depend on the proposal's settings.
  def generate_instruction(flags) do
    inputs =
      if(flags[:use_dataset_summary],
        do: [dataset_description: "A description of the dataset that we are using."],
        else: []
      ) ++
        if(flags[:program_aware],
          do: [
            program_code: "Language model program designed to solve a particular task.",
            program_description:
              "Summary of the task the program is designed to solve, and how it goes about solving it.",
            module: "The module to create an instruction for.",
            module_description: "Description of the module to create an instruction for."
          ],
          else: []
        ) ++
        [task_demos: "Example inputs/outputs of our module."] ++
        if(flags[:use_instruct_history],
          do: [
            previous_instructions:
              "Previous instructions we've attempted, along with their associated scores."
          ],
          else: []
        ) ++
        [basic_instruction: "Basic instruction."] ++
        if(flags[:use_tip],
          do: [tip: "A suggestion for how to go about generating the new instruction."],
          else: []
        )

    spec =
      Enum.map_join(inputs, ", ", fn {k, _} -> Atom.to_string(k) end) <>
        " -> proposed_instruction"

    sig(
      spec,
      "Use the information below to learn about a task that we are trying to solve using calls to an LM, then generate a new instruction that will be used to prompt a Language Model to better solve the task.",
      inputs ++
        [
          proposed_instruction:
            "Propose an instruction that will be used to prompt a Language Model to perform this task."
        ]
    )
  end
end
