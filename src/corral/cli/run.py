"""``corral run``'s engine room: session options, streamed answers, word wrap and timings.

:class:`RunOptions` is the state of a run (and of a REPL session). :func:`generate` answers a
one-shot prompt through ``/api/generate``; :func:`chat` answers a REPL turn through ``/api/chat``.
Both draw a spinner on stderr until the first token, print the answer as it streams (wrapping
words at the terminal's edge), show a model's thinking in grey, stop cleanly on Ctrl-C (closing
the HTTP stream, which cancels the request on the server) and print Ollama's timing summary when
``verbose`` is set.
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, TextIO

from rich.cells import cell_len

from corral.api.client import Client
from corral.cli.attach import extract_images
from corral.cli.format import go_duration
from corral.cli.progress import StatusSpinner

__all__ = ["ResponseWriter", "RunOptions", "chat", "generate", "load_model", "summary"]

Json = dict[str, Any]

GREY = "\033[38;5;245m"
BOLD = "\033[1m"
RESET = "\033[0m"


@dataclass
class RunOptions:
    """What ``corral run`` sends with every request, and the REPL's session state."""

    model: str
    parent_model: str = ""
    loaded_messages: list[Json] = field(default_factory=list)
    messages: list[Json] = field(default_factory=list)
    word_wrap: bool = True
    format: str = ""
    system: str = ""
    options: dict[str, Any] = field(default_factory=dict)
    keep_alive: str | None = None
    think: bool | str | None = None
    hide_thinking: bool = False
    verbose: bool = False
    prompt: str = ""
    multimodal: bool = False  # the model takes images: files named in prompts are attached

    def common(self) -> Json:
        """The fields shared by generate and chat requests."""
        req: Json = {"model": self.model}
        if self.format:
            req["format"] = self.format
        if self.options:
            req["options"] = dict(self.options)
        if self.keep_alive is not None:
            req["keep_alive"] = self.keep_alive
        if self.think is not None:
            req["think"] = self.think
        return req


class ResponseWriter:
    """Prints streamed text, wrapping words before the terminal's right edge."""

    def __init__(self, out: TextIO, word_wrap: bool) -> None:
        self.out = out
        self.width = shutil.get_terminal_size((80, 24)).columns
        self.wrap = word_wrap and out.isatty() and self.width >= 10
        self.line = 0
        self.word = ""

    def reset(self) -> None:
        self.line = 0
        self.word = ""

    def write(self, text: str) -> None:
        if not self.wrap:
            self.out.write(text)
            self.out.flush()
            return
        limit = self.width - 5
        parts: list[str] = []
        for ch in text:
            w = cell_len(ch)
            if ch in "\n\r":
                parts.append(ch)
                self.reset()
                continue
            if self.line + w > limit:
                if ch in " \t":
                    parts.append("\n")
                    self.reset()
                    continue
                carried = cell_len(self.word)
                if 0 < carried <= self.width - 10:
                    # Move the partial word to the next line: back up over it, clear, re-print.
                    parts.append(f"\033[{carried}D\033[K\n{self.word}")
                    self.line = carried
                else:
                    parts.append("\n")
                    self.reset()
            parts.append(ch)
            self.line += w
            if ch in " \t" or w >= 2:
                self.word = ""
            else:
                self.word += ch
        self.out.write("".join(parts))
        self.out.flush()


def summary(resp: Json, err: TextIO | None = None) -> None:
    """Ollama's ``--verbose`` timings (durations in nanoseconds), on stderr."""
    err = err or sys.stderr

    def num(key: str) -> int:
        v = resp.get(key)
        return int(v) if isinstance(v, int | float) and not isinstance(v, bool) else 0

    total, load = num("total_duration"), num("load_duration")
    p_count, p_dur = num("prompt_eval_count"), num("prompt_eval_duration")
    e_count, e_dur = num("eval_count"), num("eval_duration")
    lines = []
    if total > 0:
        lines.append(f"total duration:       {go_duration(total)}")
    if load > 0:
        lines.append(f"load duration:        {go_duration(load)}")
    if p_count > 0:
        lines.append(f"prompt eval count:    {p_count} token(s)")
    if p_dur > 0:
        lines.append(f"prompt eval duration: {go_duration(p_dur)}")
        lines.append(f"prompt eval rate:     {p_count / (p_dur / 1e9):.2f} tokens/s")
    if e_count > 0:
        lines.append(f"eval count:           {e_count} token(s)")
    if e_dur > 0:
        lines.append(f"eval duration:        {go_duration(e_dur)}")
        lines.append(f"eval rate:            {e_count / (e_dur / 1e9):.2f} tokens/s")
    for line in lines:
        err.write(line + "\n")
    err.flush()


class _Streamer:
    """Draws one streamed answer: spinner, thinking block, content, tool calls."""

    def __init__(self, opts: RunOptions) -> None:
        self.opts = opts
        self.out = sys.stdout
        self.plain = not self.out.isatty()
        self.writer = ResponseWriter(self.out, opts.word_wrap)
        self.spinner = StatusSpinner()
        self.thinking: list[str] = []
        self.content: list[str] = []
        self.in_thinking = False
        self.last: Json = {}

    def _open_thinking(self) -> None:
        text = "Thinking...\n"
        self.out.write(text if self.plain else f"{GREY}{BOLD}{text}{RESET}{GREY}")

    def _close_thinking(self) -> None:
        if not "".join(self.thinking).endswith("\n"):
            self.out.write("\n")
        text = "...done thinking.\n\n"
        self.out.write(text if self.plain else f"{GREY}{BOLD}{text}{RESET}")
        self.writer.reset()

    def feed(self, thinking: str, content: str, tool_calls: list[Any]) -> None:
        if content or not self.opts.hide_thinking:
            self.spinner.stop()
        if thinking and not self.opts.hide_thinking:
            if not self.in_thinking and not self.thinking:
                self._open_thinking()
                self.in_thinking = True
            self.thinking.append(thinking)
            self.writer.write(thinking)
        if self.in_thinking and (content or tool_calls):
            self._close_thinking()
            self.in_thinking = False
        self.content.append(content)
        self.writer.write(content)
        for i, call in enumerate(tool_calls):
            fn = call.get("function", {}) if isinstance(call, dict) else {}
            args = json.dumps(fn.get("arguments", {}), separators=(",", ":"))
            sep = "\n" if i else ""
            self.out.write(
                f"{sep}  Model called a non-existent function '{fn.get('name', '')}()' "
                f"with arguments: {args}"
            )
        self.out.flush()

    def run(self, chunks: Iterator[Json], *, chat_mode: bool) -> bool:
        """Show every chunk; False when the user pressed Ctrl-C (the stream is then closed)."""
        try:
            self.spinner.start()
            for chunk in chunks:
                self.last = chunk
                if chat_mode:
                    msg = chunk.get("message") or {}
                    self.feed(
                        str(msg.get("thinking") or ""),
                        str(msg.get("content") or ""),
                        list(msg.get("tool_calls") or []),
                    )
                else:
                    self.feed(
                        str(chunk.get("thinking") or ""),
                        str(chunk.get("response") or ""),
                        list(chunk.get("tool_calls") or []),
                    )
        except KeyboardInterrupt:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()
            self.spinner.stop()
            if not self.plain and self.in_thinking:
                self.out.write(RESET)
            self.out.write("\n")
            self.out.flush()
            return False
        finally:
            self.spinner.stop()
        return True


def load_model(client: Client, opts: RunOptions) -> None:
    """Load (or, with ``keep_alive`` 0, unload) the model: a generate with no prompt."""
    req: Json = {"model": opts.model}
    if opts.keep_alive is not None:
        req["keep_alive"] = opts.keep_alive
    if opts.think is not None:
        req["think"] = opts.think
    with StatusSpinner():
        for _ in client.generate(req):
            pass


def generate(client: Client, opts: RunOptions) -> None:
    """Answer ``opts.prompt`` once through ``/api/generate``."""
    req = opts.common()
    req["prompt"] = opts.prompt
    if opts.multimodal:
        req["prompt"], images = extract_images(opts.prompt)
        if images:
            req["images"] = images
    if opts.system:
        req["system"] = opts.system
    streamer = _Streamer(opts)
    if not streamer.run(client.generate(req), chat_mode=False):
        return
    if opts.prompt:
        sys.stdout.write("\n\n")
        sys.stdout.flush()
    if streamer.last.get("done") and opts.verbose:
        summary(streamer.last)


def chat(client: Client, opts: RunOptions) -> Json | None:
    """One REPL turn through ``/api/chat``; the assistant's message, or None after Ctrl-C."""
    req = opts.common()
    req["messages"] = list(opts.messages)
    streamer = _Streamer(opts)
    if not streamer.run(client.chat(req), chat_mode=True):
        return None
    if opts.messages:
        sys.stdout.write("\n\n")
        sys.stdout.flush()
    if opts.verbose:
        summary(streamer.last)
    role = str((streamer.last.get("message") or {}).get("role") or "assistant")
    msg: Json = {"role": role, "content": "".join(streamer.content)}
    thinking = "".join(streamer.thinking)
    if thinking:
        msg["thinking"] = thinking
    return msg
