defmodule DSPex.Image do
  @moduledoc """
  An image input for multimodal LMs, like `dspy.Image`: a URL the provider fetches, or
  the image's bytes as a `data:` URL.

      photo = DSPex.Image.from_path("receipt.png")          # data:image/png;base64,...
      photo = DSPex.Image.new("https://example.com/cat.jpg")
      photo = DSPex.Image.from_binary(png_bytes)             # type read from the bytes

      describe = DSPex.Predict.new("photo: Image, question -> answer")
      DSPex.call(describe, photo: photo, question: "What is on the receipt?")

  A field typed `:image` (or `DSPex.Image`, `"Image"`, `list[Image]`) shows the image to
  the LM as DSPy does: the user turn becomes a list of content parts, the text around
  the image and an OpenAI-style `%{"type" => "image_url", "image_url" => %{"url" => url}}`
  part where the image goes. Each provider sends that part in its own form: OpenAI as is,
  Anthropic as a `base64` or `url` image block, Gemini as `inlineData` or `fileData`
  (`DSPex.LM.Provider.convert_parts/3`).

  Only inputs can be images. `DSPex.Image` never fetches anything itself: a remote URL
  goes to the provider as written.

  ## Examples

      iex> img = DSPex.Image.new("https://example.com/cat.png")
      iex> DSPex.Image.format(img)
      [%{"type" => "image_url", "image_url" => %{"url" => "https://example.com/cat.png"}}]
      iex> DSPex.Image.from_binary(<<0x89, "PNG", "\\r\\n", 0x1A, "\\n", 0, 0>>).url
      "data:image/png;base64,iVBORw0KGgoAAA=="
  """

  @type t :: %__MODULE__{url: binary}
  defstruct url: nil

  # DSPy's custom-type markers (dspy/adapters/types/base_type.py): a value rendered into
  # the prompt text as START <json content parts> END, then split into content parts.
  @start "<<CUSTOM-TYPE-START-IDENTIFIER>>"
  @stop "<<CUSTOM-TYPE-END-IDENTIFIER>>"
  @marker ~r/<<CUSTOM-TYPE-START-IDENTIFIER>>(.*?)<<CUSTOM-TYPE-END-IDENTIFIER>>/s

  @doc """
  An image from a URL: `http(s)://` or `gs://` (sent to the provider as is) or a
  `data:` URL. Raises `ArgumentError` on anything else (DSPy: "Unrecognized image
  string"); read files with `from_path/1`.

  ## Examples

      iex> DSPex.Image.new("data:image/gif;base64,R0lGOD").url
      "data:image/gif;base64,R0lGOD"
      iex> DSPex.Image.new("cat.png")
      ** (ArgumentError) Unrecognized image string: "cat.png". Local files must be loaded with DSPex.Image.from_path/1.
  """
  @spec new(binary | t) :: t
  def new(%__MODULE__{} = img), do: img

  def new(url) when is_binary(url) do
    url = String.trim(url)

    if String.starts_with?(url, "data:") or remote?(url) do
      %__MODULE__{url: url}
    else
      raise ArgumentError,
            "Unrecognized image string: #{inspect(String.slice(url, 0, 100))}. Local files must " <>
              "be loaded with DSPex.Image.from_path/1."
    end
  end

  defp remote?(url) do
    case URI.parse(url) do
      %URI{scheme: s, host: h} when s in ["http", "https", "gs"] and is_binary(h) and h != "" ->
        true

      _ ->
        false
    end
  end

  @doc """
  An image from its bytes, as a base64 `data:` URL. The media type is `mime`, or read
  from the bytes (PNG, JPEG, GIF, WebP, BMP, TIFF); unknown bytes raise `ArgumentError`.

  ## Examples

      iex> DSPex.Image.from_binary("GIF89a...").url
      "data:image/gif;base64,R0lGODlhLi4u"
      iex> DSPex.Image.from_binary("not an image", "image/svg+xml").url
      "data:image/svg+xml;base64,bm90IGFuIGltYWdl"
  """
  @spec from_binary(binary, binary | nil) :: t
  def from_binary(bytes, mime \\ nil) when is_binary(bytes) do
    mime = mime || sniff(bytes)

    unless mime do
      raise ArgumentError,
            "bytes could not be identified as an image (PNG, JPEG, GIF, WebP, BMP, TIFF); " <>
              "give the media type: DSPex.Image.from_binary(bytes, \"image/...\")"
    end

    %__MODULE__{url: "data:#{mime};base64," <> Base.encode64(bytes)}
  end

  defp sniff(<<0x89, "PNG", _::binary>>), do: "image/png"
  defp sniff(<<0xFF, 0xD8, 0xFF, _::binary>>), do: "image/jpeg"
  defp sniff(<<"GIF8", _::binary>>), do: "image/gif"
  defp sniff(<<"RIFF", _::binary-size(4), "WEBP", _::binary>>), do: "image/webp"
  defp sniff(<<"BM", _::binary>>), do: "image/bmp"
  defp sniff(<<"II*", 0, _::binary>>), do: "image/tiff"
  defp sniff(<<"MM", 0, "*", _::binary>>), do: "image/tiff"
  defp sniff(_), do: nil

  @extensions %{
    ".png" => "image/png",
    ".jpg" => "image/jpeg",
    ".jpeg" => "image/jpeg",
    ".gif" => "image/gif",
    ".webp" => "image/webp",
    ".bmp" => "image/bmp",
    ".tif" => "image/tiff",
    ".tiff" => "image/tiff",
    ".svg" => "image/svg+xml",
    ".heic" => "image/heic",
    ".avif" => "image/avif"
  }

  @doc """
  An image read from a file, as a `data:` URL whose media type comes from the file's
  extension (as Python's `mimetypes` guesses it for DSPy's `Image.from_path`).
  Returns `{:ok, image}` or `{:error, %DSPex.Error{}}`.

  ## Examples

      iex> path = Path.join(System.tmp_dir!(), "dspex_doc_image.gif")
      iex> File.write!(path, "GIF89a")
      iex> {:ok, img} = DSPex.Image.from_path(path)
      iex> img.url
      "data:image/gif;base64,R0lGODlh"
      iex> {:error, err} = DSPex.Image.from_path("missing.png")
      iex> err.type
      :file
  """
  @spec from_path(Path.t()) :: {:ok, t} | {:error, DSPex.Error.t()}
  def from_path(path) do
    ext = path |> Path.extname() |> String.downcase()

    with {:mime, mime} when is_binary(mime) <- {:mime, Map.get(@extensions, ext)},
         {:ok, bytes} <- File.read(path) do
      {:ok, from_binary(bytes, mime)}
    else
      {:mime, nil} ->
        {:error,
         DSPex.Error.new(
           :file,
           "could not determine the image type of #{inspect(path)} from its extension",
           %{
             path: path
           }
         )}

      {:error, reason} ->
        {:error,
         DSPex.Error.new(
           :file,
           "could not read #{inspect(path)}: #{:file.format_error(reason)}",
           %{
             path: path,
             reason: reason
           }
         )}
    end
  end

  @doc """
  Like `from_path/1` but raises the `%DSPex.Error{}`.
  """
  @spec from_path!(Path.t()) :: t
  def from_path!(path) do
    case from_path(path) do
      {:ok, img} -> img
      {:error, e} -> raise e
    end
  end

  @doc """
  The image as content parts, DSPy's `Image.format()`.

  ## Examples

      iex> DSPex.Image.format(DSPex.Image.new("gs://b/x.png")) |> hd() |> Map.get("type")
      "image_url"
  """
  @spec format(t) :: [map]
  def format(%__MODULE__{url: url}),
    do: [%{"type" => "image_url", "image_url" => %{"url" => url}}]

  @doc false
  # The image inside prompt text: DSPy's marker around its content parts.
  @spec marker(t) :: binary
  def marker(%__MODULE__{} = img), do: @start <> DSPex.JSON.encode!(format(img)) <> @stop

  @doc """
  Splits the user messages whose text holds image markers into content parts (DSPy's
  `_expand_legacy_custom_type_markers_in_chat_message`): the text around each image as
  `%{"type" => "text"}` parts, the image's own parts in between. Other messages are
  returned as they are. The adapters call this on every message list they render.

  ## Examples

      iex> img = DSPex.Image.new("https://x.org/a.png")
      iex> [msg] = DSPex.Image.expand_messages([%{role: "user", content: "Look: " <> DSPex.Image.marker(img) <> " ok?"}])
      iex> Enum.map(msg.content, & &1["type"])
      ["text", "image_url", "text"]
  """
  @spec expand_messages([map]) :: [map]
  def expand_messages(messages), do: Enum.map(messages, &expand_message/1)

  defp expand_message(%{role: "user", content: text} = m) when is_binary(text) do
    if :binary.match(text, @start) == :nomatch, do: m, else: %{m | content: split(text)}
  end

  defp expand_message(m), do: m

  defp split(text) do
    {parts, last} =
      @marker
      |> Regex.scan(text, return: :index)
      |> Enum.reduce({[], 0}, fn [{start, len}, {ps, pl}], {acc, at} ->
        before = if start > at, do: [text_part(binary_part(text, at, start - at))], else: []
        payload = text |> binary_part(ps, pl) |> String.trim()
        {acc ++ before ++ payload_parts(payload), start + len}
      end)

    tail =
      if last < byte_size(text),
        do: [text_part(binary_part(text, last, byte_size(text) - last))],
        else: []

    parts ++ tail
  end

  defp text_part(t), do: %{"type" => "text", "text" => t}

  # json.loads, then the doubly quoted form (a marker inside a JSON list of images)
  defp payload_parts(payload) do
    decoded =
      case DSPex.JSON.decode(payload) do
        {:ok, v} ->
          v

        {:error, _} ->
          with {:ok, inner} when is_binary(inner) <- DSPex.JSON.decode(~s("#{payload}")),
               {:ok, v} <- DSPex.JSON.decode(inner) do
            v
          else
            _ -> nil
          end
      end

    case decoded do
      list when is_list(list) ->
        Enum.map(list, fn
          %{} = block -> block
          other -> text_part(to_string(other))
        end)

      _ ->
        [text_part(payload)]
    end
  end
end
