defmodule DSPex.Pool.Handle do
  @moduledoc """
  A streamed request started with `DSPex.Pool.stream/2`.

  `ref` tags every message the receiving process gets:
  `{:dspex_http, ref, event}`. Pass the handle to `DSPex.Pool.cancel/1` to abort.
  The other fields are internal (the worker and the port's request id).
  """
  @enforce_keys [:ref, :worker, :id]
  defstruct [:ref, :worker, :id, :to, :deadline]

  @type t :: %__MODULE__{
          ref: reference,
          worker: GenServer.server(),
          id: non_neg_integer,
          to: pid,
          deadline: integer
        }
end
