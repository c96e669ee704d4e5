"""Images for the engine: llama.cpp's ``mtmd`` (multimodal projector) through ctypes.

:class:`Vision` loads a projector (mmproj GGUF) for a loaded text model, tokenizes a prompt with
media markers plus raw image files into a :class:`Prompt` (text chunks as token ids, image chunks
as position counts with a content hash), and evaluates one image chunk into a llama context at a
sequence and position: it encodes the image and then makes its own ``llama_decode`` calls of
image embeddings (at most ``n_batch`` each, this sequence only, no logits). Text chunks are left
to the engine's batches. Only causal, consecutive-position (LLaVA style) projectors are accepted.
Nothing here is thread-safe: use it from the thread that owns the llama context.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

os.environ.setdefault("GGML_NO_BACKTRACE", "1")

import llama_cpp.mtmd_cpp as M

from corral.engine.native import _LOG_CALLBACK, L
from corral.engine.types import EngineLoadError

__all__ = [
    "ImageChunk",
    "ImageError",
    "Prompt",
    "RawImage",
    "TextChunk",
    "Vision",
    "image_token_ids",
]

# Still-image signatures. Anything else is refused before mtmd sees it: bytes stb_image cannot
# decode go on to mtmd's audio and then video decoders, the latter an ffprobe/ffmpeg subprocess.
# WebP, which stb_image lacks, needs that path (ffmpeg on PATH); for the other formats it is cut
# off by pointing mtmd at an ffmpeg directory that cannot exist.
_SIGNATURES = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"BM")
_NO_FFMPEG = b"/dev/null/no-ffmpeg"
_MASK64 = (1 << 64) - 1
_ID_RANGE = (1 << 31) - 1  # placeholder ids lie in [-(2**31 - 1), -1]: int32, never a token


@dataclass(frozen=True)
class RawImage:
    """Decoded pixels (8-bit RGB rows, as the server decodes every image); ``digest`` is the
    hash the prompt cache keys the image by."""

    width: int
    height: int
    rgb: bytes
    digest: str


Image = bytes | RawImage  # an encoded file, or pixels


class ImageError(ValueError):
    """An image that cannot be used; ``index`` is its position in the request's list."""

    def __init__(self, index: int, reason: str) -> None:
        super().__init__(f"image {index}: {reason}")
        self.index = index


def _is_webp(data: bytes) -> bool:
    return data[:4] == b"RIFF" and data[8:12] == b"WEBP"


def image_token_ids(digest: str, n: int) -> list[int]:
    """``n`` placeholder token ids for an image's positions: negative, deterministic in the hash,
    different for different images (a cached prefix then only matches the same image)."""
    seed = int.from_bytes(hashlib.sha256(digest.encode()).digest()[:8], "little")
    out = []
    for i in range(n):  # splitmix64 of (seed + i)
        z = (seed + (i + 1) * 0x9E3779B97F4A7C15) & _MASK64
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
        out.append(-1 - ((z ^ (z >> 31)) % _ID_RANGE))
    return out


@dataclass(frozen=True)
class TextChunk:
    """Text tokens for the engine to evaluate; ``start`` is the position offset in the prompt."""

    start: int
    tokens: tuple[int, ...]

    @property
    def n_pos(self) -> int:
        return len(self.tokens)

    def token_ids(self) -> list[int]:
        return list(self.tokens)


@dataclass(frozen=True)
class ImageChunk:
    """One image: ``n_tokens`` embeddings taking ``n_pos`` positions from ``start`` on."""

    start: int
    image_index: int
    n_tokens: int
    n_pos: int
    digest: str  # sha256 of the image file's bytes, hex

    def token_ids(self) -> list[int]:
        return image_token_ids(self.digest, self.n_pos)


Chunk = TextChunk | ImageChunk


class Prompt:
    """A tokenized multimodal prompt; owns the native chunks until :meth:`free`."""

    def __init__(self, owner: Vision, native: Any, chunks: tuple[Chunk, ...]) -> None:
        self._owner = owner
        self._native = native
        self.chunks = chunks

    @property
    def n_pos(self) -> int:
        return sum(c.n_pos for c in self.chunks)

    def token_ids(self) -> list[int]:
        """One id per position: text tokens, and placeholder ids for the images."""
        return [t for c in self.chunks for t in c.token_ids()]

    def native_chunk(self, index: int) -> Any:
        if not self._native:
            raise ValueError("the prompt has been freed")
        return M.mtmd_input_chunks_get(self._native, index)

    def free(self) -> None:
        native, self._native = self._native, None
        if native:
            M.mtmd_input_chunks_free(native)

    def __del__(self) -> None:
        self.free()


class Vision:
    """A multimodal projector bound to one loaded text model."""

    def __init__(self, model_ptr: Any, projector_path: str, n_threads: int) -> None:
        self._ctx: Any = None
        if not os.path.isfile(projector_path):
            raise EngineLoadError(f"projector file not found: {projector_path}")
        M.mtmd_helper_log_set(_LOG_CALLBACK, ctypes.c_void_p(0))  # mtmd and clip logs too
        params = M.mtmd_context_params_default()
        params.use_gpu = bool(L.llama_supports_gpu_offload())
        params.print_timings = False
        params.n_threads = max(1, n_threads)
        params.media_marker = M.mtmd_default_marker()
        ctx = M.mtmd_init_from_file(projector_path.encode(), model_ptr, params)
        if not ctx:
            raise EngineLoadError(
                f"failed to load projector {os.path.basename(projector_path)}: not an mmproj "
                "GGUF for this model (its projection size must equal the model's embedding size)"
            )
        self._ctx = ctx
        for problem, found in (
            ("has no vision encoder", not M.mtmd_support_vision(ctx)),
            ("needs M-RoPE positions (unsupported)", M.mtmd_decode_use_mrope(ctx)),
            ("needs non-causal attention (unsupported)", M.mtmd_decode_use_non_causal(ctx, None)),
        ):
            if found:
                self.close()
                raise EngineLoadError(f"the projector {problem}")
        self._marker: str = (M.mtmd_get_marker(ctx) or M.mtmd_default_marker()).decode()

    @property
    def marker(self) -> str:
        """The text that stands for an image in a prompt."""
        return self._marker

    def _live(self) -> Any:
        if not self._ctx:
            raise ValueError("the vision projector is closed")
        return self._ctx

    def _bitmap(self, index: int, data: Image) -> Any:
        if isinstance(data, RawImage):
            if data.width <= 0 or data.height <= 0 or len(data.rgb) != data.width * data.height * 3:
                raise ImageError(index, "the pixels do not match the image's size")
            pixels = (ctypes.c_uint8 * len(data.rgb)).from_buffer_copy(data.rgb)
            bitmap = M.mtmd_bitmap_init(data.width, data.height, pixels)
            if not bitmap:
                raise ImageError(index, "the image could not be used")
            return bitmap
        webp = _is_webp(data)
        if not (webp or data.startswith(_SIGNATURES)):
            raise ImageError(index, "not a PNG, JPEG, GIF, BMP or WebP image")
        opt = M.mtmd_helper_init_opt_default()
        if not webp:
            opt.video_params.ffmpeg_bin_dir = _NO_FFMPEG
        buf = (ctypes.c_uint8 * len(data)).from_buffer_copy(data)
        bitmap = M.mtmd_helper_bitmap_init_from_buf(self._live(), buf, len(data), False, opt)
        if not bitmap:
            raise ImageError(index, "the image could not be decoded")
        return bitmap

    def tokenize(self, text: str, images: Sequence[Image], *, add_special: bool = False) -> Prompt:
        """Split ``text`` at the markers, one per image in order (special tokens are parsed).
        ``ImageError`` (a ``ValueError``) names an image that is not one or cannot be decoded."""
        ctx = self._live()
        n_markers = text.count(self._marker)
        if n_markers != len(images):
            raise ValueError(f"the prompt has {n_markers} image markers for {len(images)} images")
        digests = [
            d.digest if isinstance(d, RawImage) else hashlib.sha256(d).hexdigest() for d in images
        ]
        bitmaps: list[Any] = []
        native = None
        try:
            for i, data in enumerate(images):
                bitmaps.append(self._bitmap(i, data))
            raw = text.encode("utf-8")
            inp = M.mtmd_input_text(raw, len(raw), add_special, True)
            arr = (M.mtmd_bitmap_p_ctypes * max(1, len(bitmaps)))(*bitmaps)
            native = M.mtmd_input_chunks_init()
            rc = M.mtmd_tokenize(ctx, native, ctypes.byref(inp), arr, len(bitmaps))
            if rc != 0:
                raise ValueError(f"the prompt could not be tokenized with its images ({rc})")
            prompt = Prompt(self, native, self._describe(native, digests))
            native = None  # the prompt owns it now
            return prompt
        finally:
            if native:
                M.mtmd_input_chunks_free(native)
            for bitmap in bitmaps:
                M.mtmd_bitmap_free(bitmap)

    def _describe(self, native: Any, digests: list[str]) -> tuple[Chunk, ...]:
        chunks: list[Chunk] = []
        start = n_images = 0
        n_tok = ctypes.c_size_t()
        for i in range(M.mtmd_input_chunks_size(native)):
            chunk = M.mtmd_input_chunks_get(native, i)
            kind = M.mtmd_input_chunk_get_type(chunk)
            if kind == M.MTMD_INPUT_CHUNK_TYPE_TEXT:
                ptr = M.mtmd_input_chunk_get_tokens_text(chunk, ctypes.byref(n_tok))
                text_chunk = TextChunk(start, tuple(ptr[: n_tok.value]))
                chunks.append(text_chunk)
                start += text_chunk.n_pos
            elif kind == M.MTMD_INPUT_CHUNK_TYPE_IMAGE:
                n_tokens = int(M.mtmd_input_chunk_get_n_tokens(chunk))
                n_pos = int(M.mtmd_input_chunk_get_n_pos(chunk))
                if n_pos != n_tokens:  # guarded at load; a projector may still slice an image
                    raise ValueError(f"image {n_images} takes {n_pos} positions for {n_tokens}")
                chunks.append(ImageChunk(start, n_images, n_tokens, n_pos, digests[n_images]))
                start += n_pos
                n_images += 1
            else:
                raise ValueError("the prompt produced a non-image media chunk")
        if n_images != len(digests):  # e.g. a projector that splits an image into slices
            raise ValueError(f"{len(digests)} images became {n_images} image chunks")
        return tuple(chunks)

    def eval_image(
        self, ctx: Any, prompt: Prompt, chunk_index: int, seq_id: int, n_past: int, n_batch: int
    ) -> int:
        """Encode image chunk ``chunk_index`` and decode its embeddings into ``ctx`` for
        ``seq_id`` at positions ``n_past`` on; returns the position after the image. No logits
        are produced: a text token must follow before sampling."""
        mctx = self._live()
        if prompt._owner is not self:
            raise ValueError("the prompt was tokenized by another projector")
        if not 0 <= chunk_index < len(prompt.chunks):
            raise IndexError(f"chunk {chunk_index} out of range")
        if not isinstance(prompt.chunks[chunk_index], ImageChunk):
            raise ValueError(f"chunk {chunk_index} is not an image")
        n_batch = min(max(1, n_batch), int(L.llama_n_batch(ctx)))  # more aborts llama.cpp
        new_n_past = L.llama_pos(0)
        chunk = prompt.native_chunk(chunk_index)
        args = (mctx, ctx, chunk, n_past, seq_id, n_batch, False, ctypes.byref(new_n_past))
        if (rc := M.mtmd_helper_eval_chunk_single(*args)) != 0:
            raise RuntimeError(f"evaluating image chunk {chunk_index} failed ({rc})")
        return int(new_n_past.value)

    def close(self) -> None:
        ctx, self._ctx = self._ctx, None
        if ctx:
            M.mtmd_free(ctx)
