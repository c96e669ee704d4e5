"""The framed protocol between the server and a runner process.

Each frame is a 4-byte big-endian length followed by that many bytes of UTF-8 JSON. The server
sends operations (``op``); the runner answers with events (``ev``). Token pieces are bytes that
may split a UTF-8 character, so in JSON they travel as latin-1 strings (one char per byte).

Token events, one per generated token and by far the most frequent frame, have a binary body of
their own instead of JSON (:data:`TOKEN_TAG`, request id, token id, then the piece's raw bytes):
the server reads them on the path of every streamed token, and a CPU spent there is taken from
the runner's compute threads on a small machine. A JSON body always starts with ``{``. A token
that carries log probabilities (only requests that ask for them) travels as JSON.
"""

from __future__ import annotations

import json
import struct
from typing import Any, BinaryIO

from corral.engine.types import DoneEvent, EngineEvent, Logprob, TokenEvent

HEADER = struct.Struct(">I")
TOKEN_TAG = 1
TOKEN = struct.Struct(">BQi")  # tag, request id, token id; the piece follows
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


def parse_body(body: bytes) -> dict[str, Any] | TokenEvent:
    """A frame's body: a binary token event, or any other message as its JSON object."""
    if body and body[0] == TOKEN_TAG:
        if len(body) < TOKEN.size:
            raise ProtocolError("truncated token frame")
        _, rid, token = TOKEN.unpack_from(body)
        return TokenEvent(rid, token, body[TOKEN.size :])
    return decode_body(body)


def encode_event(ev: EngineEvent) -> bytes:
    """One engine event as a whole frame (header included)."""
    if isinstance(ev, TokenEvent) and ev.logprob is None:
        body = TOKEN.pack(TOKEN_TAG, ev.request_id, ev.token) + ev.piece
        return HEADER.pack(len(body)) + body
    return encode(event_to_wire(ev))


def read_frame(stream: BinaryIO) -> dict[str, Any] | None:
    """Blocking read of one frame as a JSON object (a token event as
    :func:`event_to_wire` gives it); None at a clean end of stream."""
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
    msg = parse_body(body)
    return event_to_wire(msg) if isinstance(msg, TokenEvent) else msg


def write_all(stream: BinaryIO, data: bytes) -> None:
    """Write every byte (an unbuffered file may take part of a large write) and flush."""
    view = memoryview(data)
    while view:
        view = view[stream.write(view) or 0 :]
    stream.flush()


def write_frame(stream: BinaryIO, msg: dict[str, Any]) -> None:
    write_all(stream, encode(msg))


def piece_to_wire(piece: bytes) -> str:
    return piece.decode("latin-1")


def piece_from_wire(text: str) -> bytes:
    return text.encode("latin-1")


def event_to_wire(ev: EngineEvent) -> dict[str, Any]:
    """An engine event as the runner sends it."""
    if isinstance(ev, TokenEvent):
        msg: dict[str, Any] = {
            "ev": "token",
            "id": ev.request_id,
            "token": ev.token,
            "piece": piece_to_wire(ev.piece),
        }
        if ev.logprob is not None:
            msg["logprob"] = ev.logprob.logprob
            msg["top"] = [[t, piece_to_wire(p), lp] for t, p, lp in ev.logprob.top]
        return msg
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
            logprob = None
            if msg.get("logprob") is not None:
                top = tuple(
                    (int(t), piece_from_wire(str(p)), float(lp)) for t, p, lp in msg.get("top", ())
                )
                logprob = Logprob(float(msg["logprob"]), top)
            piece = piece_from_wire(str(msg["piece"]))
            return TokenEvent(rid, int(msg["token"]), piece, logprob)
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
