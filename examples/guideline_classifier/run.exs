# `mix run examples/guideline_classifier/run.exs [options]`: the guideline classifier,
# evaluated, optimized with COPRO, evaluated again, saved as DSPy JSON and loaded back.
#
#   (no --model)                   a SIMULATED LM (simulated_lm.ex), offline, deterministic
#   --model openai/gpt-4o-mini     a hosted model; the key from OPENAI_API_KEY (or the
#                                  provider's variable), --api-base for a compatible server
#   --model local/smollm2          SmolLM2-135M in process (`mix dspex.model.get smollm2`)
#                                  (DSPEX_EXAMPLE_LM=<model> works as --model, as for the
#                                  other examples)
#   --prompt-model M               the model that proposes instructions (default: --model)
#   --breadth 4 --depth 2          COPRO's search (proposals per round, rounds)
#   --train N --dev N              use the first N examples of each split
#   --out DIR                      where the program, journal and chart go
#   --no-cache                     no LM response cache (real models)

Code.require_file("runner.ex", __DIR__)

GuidelineClassifier.Run.main(System.argv())
