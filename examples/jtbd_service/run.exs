# `mix run examples/jtbd_service/run.exs`: the JTBD service end to end, offline.
#
# A fake OpenAI server on 127.0.0.1 stands in for the model (examples/support); the
# service itself is what you would deploy: DSPex.Server with an API key, the program's
# typed outputs, the batch endpoint, and the LM cache answering a repeated request.

Code.require_file("../support/fake_openai.exs", __DIR__)
Code.require_file("jtbd.ex", __DIR__)

alias DSPex.Examples.FakeOpenAI

System.put_env(
  "DSPEX_CACHE_DIR",
  Path.join(System.tmp_dir!(), "jtbd-#{System.unique_integer([:positive])}")
)

fake =
  FakeOpenAI.start(
    answers: %{
      "reasoning" =>
        "The customer exports reports every Monday and the export breaks their formatting.",
      "job" =>
        "When I prepare the weekly report, I want to export clean tables, so I can send them without rework",
      "situation" => "preparing the weekly report",
      "motivation" => "export clean tables",
      "outcome" => "send the report without rework",
      "job_type" => "functional",
      "pains" => ["formatting lost on export", "manual clean-up every week"],
      "confidence" => 0.82
    }
  )

key = DSPex.Server.Keys.generate()
lm = DSPex.LM.new("openai/gpt-4o-mini", api_base: fake.url, api_key: "sk-fake", temperature: 0.0)

{:ok, sup} =
  Supervisor.start_link(
    [JTBD.Service.child_spec(lm: lm, port: 0, api_keys: [[id: "demo", key: key]])],
    strategy: :one_for_one
  )

url = DSPex.Server.url()
auth = [{~c"authorization", String.to_charlist("Bearer " <> key)}]

post = fn path, body, headers ->
  {:ok, {{_, status, _}, _, resp}} =
    :httpc.request(
      :post,
      {String.to_charlist(url <> path), headers, ~c"application/json", DSPex.JSON.encode!(body)},
      [],
      body_format: :binary
    )

  {status, DSPex.JSON.decode!(resp)}
end

feedback = %{
  feedback: "Every Monday I export the dashboard to Excel and spend an hour fixing the columns.",
  product: "Acme Analytics"
}

IO.puts("== POST #{url}/v1/programs/jtbd without a key")
{status, body} = post.("/v1/programs/jtbd", feedback, [])
IO.puts("#{status} #{inspect(body["error"])}")

IO.puts("\n== with the key")
{200, body} = post.("/v1/programs/jtbd", feedback, auth)
for {k, v} <- body["prediction"], do: IO.puts("  #{k}: #{inspect(v)}")
IO.puts("  usage: #{inspect(body["usage"])}   (model requests so far: #{FakeOpenAI.count(fake)})")

IO.puts("\n== the same feedback again: answered from the LM cache")
{200, body} = post.("/v1/programs/jtbd", feedback, auth)

IO.puts(
  "  job_type #{body["prediction"]["job_type"]}, usage #{inspect(body["usage"])}, model requests so far: #{FakeOpenAI.count(fake)}"
)

IO.puts("\n== batch: three items, one with a typo in its input name")

items = [
  %{feedback: "I keep forgetting which report I already sent.", product: "Acme Analytics"},
  %{feedbak: "typo", product: "Acme Analytics"},
  %{feedback: "My manager wants the numbers before 9am.", product: "Acme Analytics"}
]

{200, body} = post.("/v1/programs/jtbd/batch", %{inputs: items}, auth)

for {r, i} <- Enum.with_index(body["results"]) do
  IO.puts(
    "  [#{i}] " <>
      if(r["error"],
        do: "error #{r["error"]["type"]}: #{r["error"]["message"]}",
        else: r["prediction"]["job"]
      )
  )
end

{:ok, {{_, 200, _}, _, metrics}} = :httpc.request(String.to_charlist(url <> "/metrics"))
IO.puts("\n== /metrics (LM lines)")

metrics
|> to_string()
|> String.split("\n")
|> Enum.filter(&String.starts_with?(&1, "dspex_lm_"))
|> Enum.each(&IO.puts("  " <> &1))
