"""Image files named in a `corral run` prompt, as Ollama's CLI finds and attaches them."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from corral.cli.attach import AttachError, extract_images, sniff

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 32
WEBP = b"RIFF\x10\x00\x00\x00WEBPVP8 " + b"\x00" * 32


def test_named_images_are_attached_and_removed_from_the_prompt(tmp_path: Path) -> None:
    photo = tmp_path / "my photo.png"
    photo.write_bytes(PNG)
    snap = tmp_path / "snap.JPG"
    snap.write_bytes(JPEG)
    escaped = str(photo).replace(" ", "\\ ")
    text, images = extract_images(f"describe {escaped} and '{snap}' please")
    assert text == "describe  and  please"
    assert [base64.b64decode(i) for i in images] == [PNG, JPEG]


def test_a_path_that_does_not_exist_stays_text(tmp_path: Path) -> None:
    missing = tmp_path / "nothing.png"
    text, images = extract_images(f"what is {missing}?")
    assert images == [] and text == f"what is {missing}?"


def test_a_file_that_is_not_an_image_is_refused(tmp_path: Path) -> None:
    fake = tmp_path / "notes.png"
    fake.write_text("just text")
    with pytest.raises(AttachError, match="invalid file type: text/plain"):
        extract_images(f"look at {fake}")


@pytest.mark.parametrize(
    ("head", "kind"),
    [(PNG, "image/png"), (JPEG, "image/jpeg"), (WEBP, "image/webp"), (b"GIF89a..", "image/gif")],
)
def test_sniff(head: bytes, kind: str) -> None:
    assert sniff(head) == kind
