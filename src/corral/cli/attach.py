"""Image files named in a prompt, attached as Ollama's CLI attaches them to a vision model.

A path in the prompt (starting with ``/``, ``./``, ``\\`` or a drive letter, ending in .jpg,
.jpeg, .png or .webp; escaped spaces allowed) that names an existing file is read, checked to be
an image by its first bytes, removed from the prompt and sent base64-encoded in ``images``. A
path that does not exist stays in the prompt as text.
"""

from __future__ import annotations

import base64
import re
import sys
from pathlib import Path

_PATH = re.compile(r"(?:[a-zA-Z]:)?(?:\./|/|\\)[\S\\ ]+?\.(?i:jpg|jpeg|png|webp)\b")
_UNESCAPE = re.compile(r"\\([ ()\[\]{}$&;'\\*?~])")
MAX_FILE = 100 * 1024 * 1024  # Ollama's limit


class AttachError(Exception):
    """A named file exists but cannot be attached."""


def sniff(head: bytes) -> str:
    """The content type of a file from its first bytes (the image types Ollama accepts)."""
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return "application/octet-stream"
    return "text/plain; charset=utf-8"


def _read_image(path: Path) -> bytes:
    with path.open("rb") as f:
        kind = sniff(f.read(512))
        if kind not in ("image/jpeg", "image/png", "image/webp"):
            raise AttachError(f"invalid file type: {kind}")
        if path.stat().st_size > MAX_FILE:
            raise AttachError("file size exceeds maximum limit (100MB)")
        f.seek(0)
        return f.read()


def extract_images(prompt: str) -> tuple[str, list[str]]:
    """The prompt without the image paths it names, and those images base64-encoded."""
    images: list[str] = []
    for raw in _PATH.findall(prompt):
        path = _UNESCAPE.sub(r"\1", raw)
        try:
            data = _read_image(Path(path))
        except FileNotFoundError:
            continue
        except OSError as e:
            raise AttachError(str(e)) from e
        print(f"Added image '{path}'", file=sys.stderr)
        for text in (f"'{path}'", f"'{raw}'", raw):
            prompt = prompt.replace(text, "")
        images.append(base64.b64encode(data).decode())
    return prompt.strip(), images
