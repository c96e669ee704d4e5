"""Vision end to end at the engine level: a real (designed) LLaVA-style projector over SmolLM2.

The projector from :mod:`tests.visionfixture` turns a solid red, green or blue image into
SmolLM2's own embedding of " red", " green" or " blue" at each of its 16 positions. Text chunks
are evaluated here with ``llama_decode`` as the engine does, the image chunk with
:meth:`Vision.eval_image`, then the answer is decoded greedily.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from corral.engine.native import (
    Batch,
    ContextConfig,
    L,
    Vocab,
    init_backend,
    load_model,
    new_context,
)
from corral.engine.types import EngineLoadError
from corral.engine.vision import ImageChunk, ImageError, Prompt, TextChunk, Vision, image_token_ids
from tests.visionfixture import (
    COLOURS,
    N_PATCHES,
    build_projector,
    solid_image,
    undecodable_image,
    write_projector,
)

pytestmark = pytest.mark.slow

RGB = {"red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255)}
QUESTION = "What color is this image? Answer with one word."
N_BATCH = 64


@pytest.fixture(scope="module")
def projector(tmp_path_factory: pytest.TempPathFactory, smollm2_gguf: Path) -> Path:
    return build_projector(tmp_path_factory.mktemp("vision") / "mmproj.gguf", smollm2_gguf)


@pytest.fixture(scope="module")
def model(smollm2_gguf: Path) -> Iterator[Any]:
    init_backend()
    ptr = load_model(str(smollm2_gguf), n_gpu_layers=0, main_gpu=0, use_mmap=True, use_mlock=False)
    yield ptr
    L.llama_model_free(ptr)


@pytest.fixture(scope="module")
def ctx(model: Any) -> Iterator[Any]:
    ptr = new_context(model, ContextConfig(n_ctx=1024, n_batch=N_BATCH, n_seq_max=2, n_threads=2))
    yield ptr
    L.llama_free(ptr)


@pytest.fixture(scope="module")
def vision(model: Any, projector: Path) -> Iterator[Vision]:
    v = Vision(model, str(projector), 2)
    yield v
    v.close()


def chat(marker: str) -> str:
    return f"<|im_start|>user\n{marker}\n{QUESTION}<|im_end|>\n<|im_start|>assistant\n"


def evaluate(vision: Vision, ctx: Any, prompt: Prompt, seq_id: int, n_batch: int = N_BATCH) -> int:
    """Evaluate a whole prompt into ``seq_id`` (cleared first); the last text token gets
    logits at batch index 0 of the last decode. Returns the next position."""
    L.llama_memory_seq_rm(L.llama_get_memory(ctx), seq_id, -1, -1)
    batch = Batch(n_batch)
    try:
        n_past = 0
        for i, chunk in enumerate(prompt.chunks):
            assert chunk.start == n_past
            if isinstance(chunk, ImageChunk):
                n_past = vision.eval_image(ctx, prompt, i, seq_id, n_past, n_batch)
                continue
            tokens = list(chunk.tokens)
            for a in range(0, len(tokens), n_batch):
                part = tokens[a : a + n_batch]
                batch.clear()
                last = i == len(prompt.chunks) - 1 and a + n_batch >= len(tokens)
                batch.add(part, n_past, seq_id, logits_last=last)
                assert L.llama_decode(ctx, batch.raw) == 0
                n_past += len(part)
        return n_past
    finally:
        batch.free()


def greedy(
    ctx: Any, vocab: Vocab, seqs: dict[int, int], out_index: dict[int, int]
) -> dict[int, str]:
    """Greedy decoding of up to 8 tokens for every sequence at once (one batch per step);
    ``seqs`` maps seq_id to its next position, ``out_index`` to its logits row."""
    texts: dict[int, list[int]] = {s: [] for s in seqs}
    live = dict(seqs)
    batch = Batch(len(seqs))
    try:
        for _ in range(8):
            batch.clear()
            index = {}
            for seq, pos in list(live.items()):
                row = L.llama_get_logits_ith(ctx, out_index[seq])
                token = int(np.ctypeslib.as_array(row, (vocab.n_vocab,)).argmax())
                if vocab.is_eog(token):
                    del live[seq]
                    continue
                texts[seq].append(token)
                index[seq] = batch.add([token], pos, seq, logits_last=True)
                live[seq] = pos + 1
            if not live:
                break
            assert L.llama_decode(ctx, batch.raw) == 0
            out_index = index
    finally:
        batch.free()
    return {s: vocab.detokenize(t) for s, t in texts.items()}


def ask(vision: Vision, ctx: Any, model: Any, image: bytes, n_batch: int = N_BATCH) -> str:
    prompt = vision.tokenize(chat(vision.marker), [image])
    try:
        n_past = evaluate(vision, ctx, prompt, 0, n_batch)
    finally:
        prompt.free()
    return greedy(ctx, Vocab(model), {0: n_past}, {0: -1})[0]


def names_only(answer: str, colour: str) -> bool:
    low = answer.lower()
    return colour in low and not any(c in low for c in COLOURS if c != colour)


# ------------------------------------------------------------------- answers


@pytest.mark.parametrize("colour", COLOURS)
def test_the_model_names_the_colour(vision: Vision, ctx: Any, model: Any, colour: str) -> None:
    image = solid_image(RGB[colour])
    answer = ask(vision, ctx, model, image)
    assert names_only(answer, colour), answer
    assert ask(vision, ctx, model, image) == answer  # deterministic


@pytest.mark.parametrize(("colour", "fmt"), [("green", "gif"), ("blue", "jpeg"), ("red", "jpeg")])
def test_other_formats_and_shades(
    vision: Vision, ctx: Any, model: Any, colour: str, fmt: str
) -> None:
    shade = {"red": (200, 40, 30), "green": (0, 255, 0), "blue": (0, 0, 255)}[colour]
    answer = ask(vision, ctx, model, solid_image(shade, size=48, fmt=fmt))
    assert names_only(answer, colour), answer


def test_an_image_split_over_small_batches(vision: Vision, ctx: Any, model: Any) -> None:
    """n_batch 5 < 16 image tokens: mtmd decodes the image in 4 calls, same answer."""
    assert names_only(ask(vision, ctx, model, solid_image(RGB["red"]), n_batch=5), "red")


def test_two_sequences_share_the_decode_batches(vision: Vision, ctx: Any, model: Any) -> None:
    """Each image goes into its own sequence; then both answers are decoded together."""
    prompts = {0: vision.tokenize(chat(vision.marker), [solid_image(RGB["blue"])])}
    prompts[1] = vision.tokenize(chat(vision.marker), [solid_image(RGB["green"])])
    try:
        # evaluate all but the last text token of each, then both last tokens in one batch
        n_past = {}
        for seq, prompt in prompts.items():
            tail = prompt.chunks[-1]
            assert isinstance(tail, TextChunk)
            n_past[seq] = evaluate(vision, ctx, prompt, seq) - 1
            L.llama_memory_seq_rm(L.llama_get_memory(ctx), seq, n_past[seq], -1)
        batch = Batch(2)
        out = {}
        for seq, prompt in prompts.items():
            last = prompt.chunks[-1]
            assert isinstance(last, TextChunk)
            out[seq] = batch.add([last.tokens[-1]], n_past[seq], seq, logits_last=True)
        assert L.llama_decode(ctx, batch.raw) == 0
        batch.free()
        answers = greedy(ctx, Vocab(model), {s: p + 1 for s, p in n_past.items()}, out)
    finally:
        for prompt in prompts.values():
            prompt.free()
    assert names_only(answers[0], "blue"), answers
    assert names_only(answers[1], "green"), answers


# ------------------------------------------------------------------- prompt structure


def test_chunks_positions_and_placeholders(vision: Vision, ctx: Any) -> None:
    image = solid_image(RGB["green"])
    prompt = vision.tokenize(chat(vision.marker), [image])
    try:
        kinds = [type(c) for c in prompt.chunks]
        assert kinds == [TextChunk, ImageChunk, TextChunk]
        img = prompt.chunks[1]
        assert isinstance(img, ImageChunk)
        assert img.n_tokens == img.n_pos == N_PATCHES  # (32 / 8) ** 2 patches, one each
        assert img.image_index == 0 and img.start == prompt.chunks[0].n_pos
        assert img.digest == hashlib.sha256(image).hexdigest()
        ids = prompt.token_ids()
        assert len(ids) == prompt.n_pos == sum(c.n_pos for c in prompt.chunks)
        span = ids[img.start : img.start + img.n_pos]
        assert span == image_token_ids(img.digest, N_PATCHES)
        assert all(-(2**31) < t < 0 for t in span)
        assert all(t >= 0 for c in prompt.chunks if isinstance(c, TextChunk) for t in c.tokens)
        n_past = evaluate(vision, ctx, prompt, 0)
        assert n_past == prompt.n_pos
        assert L.llama_memory_seq_pos_max(L.llama_get_memory(ctx), 0) == n_past - 1
        with pytest.raises(ValueError, match="not an image"):
            vision.eval_image(ctx, prompt, 0, 0, 0, N_BATCH)
    finally:
        prompt.free()
        prompt.free()  # idempotent
    with pytest.raises(ValueError, match="freed"):
        vision.eval_image(ctx, prompt, 1, 0, 0, N_BATCH)


def test_same_image_same_hash_and_ids(vision: Vision) -> None:
    red, red_again, blue = (solid_image(RGB[c]) for c in ("red", "red", "blue"))
    text = f"{vision.marker} and {vision.marker} and {vision.marker}"
    prompt = vision.tokenize(text, [red, red_again, blue])
    try:
        images = [c for c in prompt.chunks if isinstance(c, ImageChunk)]
        assert [c.image_index for c in images] == [0, 1, 2]
        a, b, c = images
        assert a.digest == b.digest != c.digest
        assert a.token_ids() == b.token_ids()
        assert not set(a.token_ids()) & set(c.token_ids())
    finally:
        prompt.free()
    ids = image_token_ids(a.digest, 40)
    assert ids[:N_PATCHES] == image_token_ids(a.digest, N_PATCHES)
    assert len(set(ids)) == 40
    # a different encoding of the same colour is a different file, so a different image
    assert (
        image_token_ids(hashlib.sha256(solid_image(RGB["red"], fmt="gif")).hexdigest(), 4)
        != (ids[:4])
    )


# ------------------------------------------------------------------- errors


def test_undecodable_images_name_their_index(vision: Vision, ctx: Any, model: Any) -> None:
    good = solid_image(RGB["red"])
    text = f"{vision.marker}{vision.marker}"
    with pytest.raises(ImageError, match="image 1") as err:
        vision.tokenize(text, [good, undecodable_image()])
    assert err.value.index == 1 and isinstance(err.value, ValueError)
    truncated = good[: len(good) // 2]  # a PNG signature, then not enough data
    with pytest.raises(ValueError, match="image 0: the image could not be decoded"):
        vision.tokenize(text, [truncated, good])
    # a known signature with a broken body: refused without any ffmpeg run (WebP may try one)
    for broken in (b"BM" + bytes(50), b"RIFF\x10\0\0\0WEBPVP8 " + bytes(32)):
        with pytest.raises(ValueError, match="image 0: the image could not be decoded"):
            vision.tokenize(vision.marker, [broken])
    with pytest.raises(ValueError, match="image 0: not a PNG"):
        vision.tokenize(vision.marker, [b""])
    # the process, the projector and the context are all still fine
    assert names_only(ask(vision, ctx, model, good), "red")


def test_markers_must_match_the_images(vision: Vision) -> None:
    image = solid_image(RGB["red"])
    with pytest.raises(ValueError, match="1 image markers for 2 images"):
        vision.tokenize(chat(vision.marker), [image, image])
    with pytest.raises(ValueError, match="0 image markers for 1 images"):
        vision.tokenize("no marker here", [image])
    prompt = vision.tokenize("just text", [])
    assert [type(c) for c in prompt.chunks] == [TextChunk]
    assert all(t >= 0 for t in prompt.token_ids())
    prompt.free()


def test_projectors_that_do_not_fit_are_refused(model: Any, tmp_path: Path) -> None:
    with pytest.raises(EngineLoadError, match="not found"):
        Vision(model, str(tmp_path / "missing.gguf"), 2)
    wrong = write_projector(tmp_path / "narrow.gguf", np.ones((3, 64), np.float32))
    with pytest.raises(EngineLoadError, match=r"failed to load projector narrow\.gguf"):
        Vision(model, str(wrong), 2)  # projects to 64 dims, SmolLM2 embeds in 576


def test_close_is_idempotent(model: Any, projector: Path) -> None:
    v = Vision(model, str(projector), 1)
    assert v.marker == "<__media__>"
    v.close()
    v.close()
    with pytest.raises(ValueError, match="closed"):
        v.tokenize(v.marker, [solid_image(RGB["red"])])


def test_the_projector_file_is_deterministic(projector: Path, tmp_path: Path) -> None:
    again = build_projector(tmp_path / "again.gguf")
    assert again.read_bytes() == projector.read_bytes()
