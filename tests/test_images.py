"""Images for vision models are decoded in the server: every format Ollama's clients send, and a
clear 400 naming where a bad one came from."""

from __future__ import annotations

import asyncio
import base64
import io

import pytest
from PIL import Image

from corral.errors import BadRequest
from corral.service.images import MAX_PIXELS, decode_one, pixels_of


def encoded(fmt: str, colour: tuple[int, int, int] = (200, 10, 20), size: int = 8) -> str:
    out = io.BytesIO()
    img = Image.new("RGB", (size, size), colour)
    if fmt == "GIF":  # two frames: only the first is used
        second = Image.new("RGB", (size, size), (0, 0, 255))
        img.save(out, format="GIF", save_all=True, append_images=[second])
    else:
        img.save(out, format=fmt)
    return base64.b64encode(out.getvalue()).decode()


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "GIF", "BMP"])
def test_every_format_decodes_to_rgb(fmt: str) -> None:
    px = decode_one(encoded(fmt), "image")
    assert (px.width, px.height) == (8, 8) and len(px.rgb) == 8 * 8 * 3
    r, g, b = px.rgb[0], px.rgb[1], px.rgb[2]
    assert r > 150 and g < 60 and b < 60  # the first frame's red (JPEG is lossy)


def test_same_pixels_same_digest() -> None:
    a = decode_one(encoded("PNG"), "image")
    b = decode_one(encoded("BMP"), "image")
    c = decode_one(encoded("PNG", (0, 200, 0)), "image")
    assert a.digest == b.digest != c.digest


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ("not base64!!", "message 2: invalid image data: not base64"),
        ("", "message 2: invalid image data: empty"),
        (base64.b64encode(b"plain text, not an image").decode(), "message 2: invalid image data"),
        (encoded("PNG")[:40], "message 2: invalid image data"),  # truncated
    ],
)
def test_bad_images_name_their_message(data: str, error: str) -> None:
    with pytest.raises(BadRequest, match=error):
        decode_one(data, "message 2")


def test_a_decompression_bomb_is_refused() -> None:
    side = int(MAX_PIXELS**0.5) + 100
    out = io.BytesIO()
    Image.new("1", (side, side)).save(out, format="PNG")  # tiny file, huge image
    with pytest.raises(BadRequest, match="too large"):
        decode_one(base64.b64encode(out.getvalue()).decode(), "image")


def test_pixels_of_labels_images_by_message_and_index() -> None:
    good = encoded("PNG")
    got = asyncio.run(pixels_of([("message 0", [good]), ("message 1", [])]))
    assert list(got) == [good]
    with pytest.raises(BadRequest, match="message 1, image 1: invalid image data"):
        asyncio.run(pixels_of([("message 0", [good]), ("message 1", [good, "AAAA"])]))
