"""Vision requests in the batch engine: a prompt's images as spans of placeholder positions.

The server renders a prompt with ``[img-N]`` where image N goes and sends the images' pixels;
:func:`prepare` turns the markers into the projector's media marker, tokenizes text and images
together (:class:`~.vision.Vision`), and returns a :class:`MediaPrompt`: one token id per
position, an image's positions holding placeholder ids derived from its pixels' hash (so a cached
prefix only matches the same image), and where each image starts. The engine evaluates text in
its batches and each image, whole, with :meth:`~.vision.Vision.eval_image` between them.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from corral.engine.vision import ImageChunk, Prompt, RawImage, Vision

_TAG = re.compile(r"\[img-(\d+)\]")


def raw_image(wire: Mapping[str, Any], index: int) -> RawImage:
    """Pixels as the server sends them (``{"w", "h", "rgb", "digest"}``, RGB base64; the
    server has hashed the pixels already, the hash is made here only when it is missing)."""
    try:
        width, height = int(wire["w"]), int(wire["h"])
        rgb = base64.b64decode(str(wire["rgb"]), validate=True)
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"image {index}: malformed pixels ({e})") from None
    digest = str(wire.get("digest") or hashlib.sha256(rgb).hexdigest())
    return RawImage(width, height, rgb, digest)


def with_markers(text: str, n_images: int, marker: str) -> tuple[str, list[int]]:
    """``text`` with each ``[img-N]`` (N < ``n_images``) replaced by ``marker``, and the image
    index of each marker in order. Other text that looks like a marker stays text."""
    order: list[int] = []

    def swap(m: re.Match[str]) -> str:
        n = int(m.group(1))
        if n >= n_images:
            return m.group(0)
        order.append(n)
        return marker

    return _TAG.sub(swap, text), order


@dataclass
class MediaPrompt:
    """A tokenized vision prompt: ids per position, and image spans by start position."""

    prompt: Prompt
    tokens: list[int]
    images: dict[int, tuple[int, int]]  # start position -> (chunk index, positions)

    def image_at(self, pos: int) -> tuple[int, int] | None:
        """The image (chunk index, positions) that starts at prompt position ``pos``."""
        return self.images.get(pos)

    def text_until_image(self, pos: int) -> int:
        """How many positions from ``pos`` on are text, before the next image (or the end)."""
        after = [start for start in self.images if start >= pos]
        return (min(after) if after else len(self.tokens)) - pos

    def whole_images(self, reuse: int) -> int:
        """``reuse`` moved back to an image's start if it falls inside the image: an image is
        evaluated whole or not at all."""
        for start, (_, n_pos) in self.images.items():
            if start < reuse < start + n_pos:
                return start
        return reuse

    def free(self) -> None:
        self.prompt.free()


def prepare(vision: Vision, text: str, images: Sequence[Mapping[str, Any]]) -> MediaPrompt:
    """Tokenize a rendered prompt with its images; ``ValueError`` names a bad image."""
    pixels = [raw_image(w, i) for i, w in enumerate(images)]
    marked, order = with_markers(text, len(pixels), vision.marker)
    prompt = vision.tokenize(marked, [pixels[n] for n in order], add_special=True)
    try:
        starts: dict[int, tuple[int, int]] = {}
        for index, chunk in enumerate(prompt.chunks):
            if isinstance(chunk, ImageChunk):
                starts[chunk.start] = (index, chunk.n_pos)
        tokens = prompt.token_ids()
        if not tokens or isinstance(prompt.chunks[-1], ImageChunk):
            raise ValueError("the prompt must not end with an image")
    except BaseException:
        prompt.free()
        raise
    return MediaPrompt(prompt, tokens, starts)


def image_positions(vision: Vision) -> int:
    """Positions one image takes (measured with a small image; LLaVA-style projectors resize
    every image to one size): the server counts it when fitting a conversation."""
    tiny = RawImage(8, 8, bytes(8 * 8 * 3), "0" * 64)
    prompt = vision.tokenize(vision.marker, [tiny])
    try:
        return sum(c.n_pos for c in prompt.chunks if isinstance(c, ImageChunk))
    finally:
        prompt.free()
