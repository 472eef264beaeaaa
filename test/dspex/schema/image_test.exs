defmodule DSPex.ImageTest do
  # Image inputs reach each provider in its own wire format (loopback servers, real
  # port transport): OpenAI image_url parts, Anthropic image blocks, Gemini inlineData /
  # fileData.
  use ExUnit.Case, async: true

  alias DSPex.Image
  alias DSPex.Test.ProviderLoopback

  doctest DSPex.Image

  @png <<0x89, "PNG", "\r\n", 0x1A, "\n", 1, 2, 3>>

  defp ask(format, image) do
    {:ok, lb} =
      ProviderLoopback.start_link(format, [
        %{text: "[[ ## answer ## ]]\nA cat.\n\n[[ ## completed ## ]]"}
      ])

    p = DSPex.Predict.new("photo: Image, question -> answer", lm: ProviderLoopback.lm(lb))
    {:ok, pred} = DSPex.call(p, photo: image, question: "What is it?")
    assert pred.answer == "A cat."
    [body] = ProviderLoopback.bodies(lb)
    body
  end

  test "OpenAI: image_url content parts between the text" do
    body = ask(:openai, Image.from_binary(@png))
    [_system, %{"role" => "user", "content" => parts}] = body["messages"]

    assert [
             %{"type" => "text", "text" => "[[ ## photo ## ]]\n"},
             %{"type" => "image_url", "image_url" => %{"url" => "data:image/png;base64," <> b64}},
             %{"type" => "text", "text" => "\n\n[[ ## question ## ]]\nWhat is it?" <> _}
           ] = parts

    assert Base.decode64!(b64) == @png
  end

  test "Anthropic: base64 and url image blocks" do
    body = ask(:anthropic, Image.from_binary(@png))
    [%{"role" => "user", "content" => blocks}] = body["messages"]

    assert %{
             "type" => "image",
             "source" => %{"type" => "base64", "media_type" => "image/png", "data" => _}
           } = Enum.at(blocks, 1)

    body = ask(:anthropic, Image.new("https://example.com/cat.png"))
    [%{"content" => blocks}] = body["messages"]

    assert %{
             "type" => "image",
             "source" => %{"type" => "url", "url" => "https://example.com/cat.png"}
           } = Enum.at(blocks, 1)
  end

  test "Gemini: inlineData and fileData parts" do
    body = ask(:gemini, Image.from_binary(@png))
    [%{"role" => "user", "parts" => parts}] = body["contents"]
    assert %{"inlineData" => %{"mimeType" => "image/png", "data" => _}} = Enum.at(parts, 1)

    body = ask(:gemini, Image.new("gs://bucket/cat.png"))
    [%{"parts" => parts}] = body["contents"]
    assert %{"fileData" => %{"fileUri" => "gs://bucket/cat.png"}} = Enum.at(parts, 1)
  end

  test "a list of images" do
    sig = DSPex.Signature.parse!("photos: list[Image] -> caption")
    imgs = [Image.new("https://a.org/1.png"), Image.new("https://a.org/2.png")]
    [_, user] = DSPex.Adapter.Chat.format(sig, [], %{photos: imgs}, [])

    assert Enum.map(user.content, & &1["type"]) == [
             "text",
             "image_url",
             "text",
             "image_url",
             "text"
           ]
  end
end
