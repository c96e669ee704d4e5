"""Images for vision models: checked and decoded in the server, before a runner sees them.

Images arrive base64-encoded (``images`` on generate and chat messages, ``data:`` URIs on
``/v1``). They are decoded here with Pillow (PNG, JPEG, WebP, BMP, and the first frame of a GIF)
into 8-bit RGB, in a worker thread, so a malformed or hostile file is a 400 naming where it came
from and never reaches llama.cpp's own decoder. The runner gets the pixels.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import io
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image

from corral.errors import BadRequest

MAX_IMAGE_BYTES = 32 * 1024 * 1024  # one encoded image
MAX_PIXELS = 24_000_000  # width × height of one decoded image
FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP")


@dataclass(frozen=True)
class Pixels:
    """One decoded image: 8-bit RGB rows, and a hash of the pixels (the prompt cache's key)."""

    width: int
    height: int
    rgb: bytes
    digest: str

    def wire(self) -> dict[str, object]:
        rgb = base64.b64encode(self.rgb).decode()
        return {"w": self.width, "h": self.height, "rgb": rgb, "digest": self.digest}


def decode_one(data: str | bytes, where: str) -> Pixels:
    """Decode one base64 image; ``where`` names it in errors (``message 2, image 1``)."""
    try:
        raw = base64.b64decode(data, validate=True) if isinstance(data, str) else data
    except (binascii.Error, ValueError):
        raise BadRequest(f"{where}: invalid image data: not base64") from None
    if not raw:
        raise BadRequest(f"{where}: invalid image data: empty")
    if len(raw) > MAX_IMAGE_BYTES:
        raise BadRequest(f"{where}: image is larger than {MAX_IMAGE_BYTES >> 20} MB")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(raw), formats=FORMATS) as img:
                if img.width * img.height > MAX_PIXELS:
                    raise BadRequest(
                        f"{where}: image is too large ({img.width}x{img.height} pixels, "
                        f"at most {MAX_PIXELS} in all)"
                    )
                img.seek(0)  # a GIF's first frame
                rgb = img.convert("RGB")
                pixels = rgb.tobytes()
                width, height = rgb.width, rgb.height
    except BadRequest:
        raise
    except Exception as e:
        raise BadRequest(f"{where}: invalid image data: {e}") from None
    return Pixels(width, height, pixels, hashlib.sha256(pixels).hexdigest())


async def pixels_of(groups: Sequence[tuple[str, Sequence[str]]]) -> dict[str, Pixels]:
    """Decode, in a worker thread, every image of ``(where, images)`` groups (a chat's
    messages, or a generate request); the result maps each base64 text to its pixels."""
    todo: dict[str, str] = {}
    for where, images in groups:
        for j, data in enumerate(images):
            todo.setdefault(data, f"{where}, image {j}" if len(images) > 1 else where)
    if not todo:
        return {}
    return await asyncio.to_thread(lambda: {d: decode_one(d, w) for d, w in todo.items()})
