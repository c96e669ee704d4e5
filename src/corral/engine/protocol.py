"""The framed protocol between the server and a runner process.

Each frame is a 4-byte big-endian length followed by that many bytes of UTF-8 JSON. The server
sends operations (``op``); the runner answers with events (``ev``). Token pieces are bytes that
may split a UTF-8 character, so they travel as latin-1 strings (one char per byte).
"""

from __future__ import annotations

import json
import struct
from typing import Any, BinaryIO

from corral.engine.types import DoneEvent, EngineEvent, TokenEvent

HEADER = struct.Struct(">I")
MAX_FRAME = 256 * 1024 * 1024


class ProtocolError(Exception):
    """The other side sent something that is not a frame, or went away."""


def encode(msg: dict[str, Any]) -> bytes:
    body = json.dumps(msg, separators=(",", ":"), ensure_ascii=False).encode()
    return HEADER.pack(len(body)) + body


def decode_body(body: bytes) -> dict[str, Any]:
    try:
        msg = json.loads(body)
    except ValueError as e:
        raise ProtocolError(f"bad frame: {e}") from e
    if not isinstance(msg, dict):
        raise ProtocolError("bad frame: not an object")
    return msg


def read_frame(stream: BinaryIO) -> dict[str, Any] | None:
    """Blocking read of one frame; None at a clean end of stream."""
    head = stream.read(HEADER.size)
    if not head:
        return None
    if len(head) < HEADER.size:
        raise ProtocolError("truncated frame header")
    (size,) = HEADER.unpack(head)
    if size > MAX_FRAME:
        raise ProtocolError(f"frame too large: {size}")
    body = stream.read(size)
    if len(body) < size:
        raise ProtocolError("truncated frame")
    return decode_body(body)


def write_frame(stream: BinaryIO, msg: dict[str, Any]) -> None:
    stream.write(encode(msg))
    stream.flush()


def piece_to_wire(piece: bytes) -> str:
    return piece.decode("latin-1")


def piece_from_wire(text: str) -> bytes:
    return text.encode("latin-1")


def event_to_wire(ev: EngineEvent) -> dict[str, Any]:
    """An engine event as the runner sends it."""
    if isinstance(ev, TokenEvent):
        return {
            "ev": "token",
            "id": ev.request_id,
            "token": ev.token,
            "piece": piece_to_wire(ev.piece),
        }
    return {
        "ev": "done",
        "id": ev.request_id,
        "reason": ev.reason,
        "prompt_eval_count": ev.prompt_eval_count,
        "prompt_eval_duration": ev.prompt_eval_duration_ns,
        "eval_count": ev.eval_count,
        "eval_duration": ev.eval_duration_ns,
        "cached_tokens": ev.cached_tokens,
        "error": ev.error,
    }


def event_from_wire(msg: dict[str, Any]) -> EngineEvent:
    """A ``token`` or ``done`` frame as the typed event the engine produced."""
    try:
        rid = int(msg["id"])
        if msg["ev"] == "token":
            return TokenEvent(rid, int(msg["token"]), piece_from_wire(str(msg["piece"])))
        error = msg.get("error")
        return DoneEvent(
            request_id=rid,
            reason=str(msg["reason"]),
            prompt_eval_count=int(msg.get("prompt_eval_count") or 0),
            prompt_eval_duration_ns=int(msg.get("prompt_eval_duration") or 0),
            eval_count=int(msg.get("eval_count") or 0),
            eval_duration_ns=int(msg.get("eval_duration") or 0),
            cached_tokens=int(msg.get("cached_tokens") or 0),
            error=None if error is None else str(error),
        )
    except (KeyError, TypeError, ValueError) as e:
        raise ProtocolError(f"bad event frame: {e}") from e
