"""The ``corral run`` chat REPL (prompt_toolkit), with Ollama's commands and texts.

``>>> `` reads a message (``... `` while a ``\"\"\"`` block is open); each message is answered
through ``/api/chat`` with the whole session. Commands: ``/set``, ``/unset``, ``/show``, ``/load``,
``/save``, ``/clear``, ``/list``, ``/bye`` (``/exit``), ``/?`` (``/help``). Ctrl-C stops an answer
(or clears the line); Ctrl-D on an empty line leaves. History is kept, in Ollama's format, in
``~/.ollama/history`` unless ``OLLAMA_NOHISTORY`` is set or ``/set nohistory`` is used.
"""

from __future__ import annotations

import enum
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from prompt_toolkit import PromptSession
from prompt_toolkit.formatted_text import FormattedText
from prompt_toolkit.history import History
from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent

from corral.api.client import Client, ClientError
from corral.cli import help_text
from corral.cli.attach import AttachError, extract_images
from corral.cli.format import go_quote, go_value
from corral.cli.listing import list_table
from corral.cli.run import RunOptions, chat, load_model
from corral.cli.show import format_show_info
from corral.errors import ModelfileError
from corral.names import is_valid_name
from corral.options import parse_parameter

__all__ = ["OllamaHistory", "Repl", "history_path", "print_loaded_messages", "save_request"]

HISTORY_LIMIT = 100
MULTILINE = '"""'


def history_path() -> Path:
    return Path.home() / ".ollama" / "history"


class OllamaHistory(History):
    """Ollama's history file: one entry per line, the last 100 kept, rewritten atomically."""

    def __init__(self, path: Path, *, enabled: bool = True) -> None:
        super().__init__()
        self.path = path
        self.enabled = enabled
        self._lines: list[str] = []

    def load_history_strings(self) -> Iterable[str]:
        try:
            text = self.path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            text = ""
        self._lines = [line.strip() for line in text.splitlines() if line.strip()]
        self._lines = self._lines[-HISTORY_LIMIT:]
        return list(reversed(self._lines))

    def store_string(self, string: str) -> None:
        self._lines += [line.strip() for line in string.splitlines() if line.strip()]
        self._lines = self._lines[-HISTORY_LIMIT:]
        if self.enabled:
            self.save()

    def save(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(self.path.name + ".tmp")
            tmp.write_text("".join(line + "\n" for line in self._lines), encoding="utf-8")
            os.chmod(tmp, 0o600)
            tmp.replace(self.path)
        except OSError:
            pass  # history is a convenience; never let it break the session


class _Multiline(enum.Enum):
    NONE = 0
    PROMPT = 1
    SYSTEM = 2


def _err(text: str) -> None:
    sys.stderr.write(text)
    sys.stderr.flush()


class Repl:
    """One interactive session with a model."""

    def __init__(self, client: Client, opts: RunOptions, *, nohistory: bool = False) -> None:
        self.client = client
        self.opts = opts
        self.history = OllamaHistory(history_path(), enabled=not nohistory)
        self.think_explicit = opts.think is not None
        self._interrupted_text = ""
        bindings = KeyBindings()

        @bindings.add("c-c")
        def _interrupt(event: KeyPressEvent) -> None:
            self._interrupted_text = event.current_buffer.text
            event.app.exit(exception=KeyboardInterrupt(), style="class:aborting")

        self.session: PromptSession[str] = PromptSession(
            history=self.history, key_bindings=bindings, enable_open_in_editor=True
        )
        self.buf: list[str] = []
        self.multiline = _Multiline.NONE
        self.alt = False

    # ----------------------------------------------------------------- input

    def _read(self) -> str:
        prompt, hint = (">>> ", help_text.PLACEHOLDER)
        if self.alt:
            prompt, hint = ("... ", help_text.ALT_PLACEHOLDER)
        self._interrupted_text = ""
        return self.session.prompt(
            prompt, placeholder=FormattedText([("fg:ansibrightblack", hint)])
        )

    def run(self) -> None:
        """Read and answer until ``/bye`` or Ctrl-D."""
        while True:
            try:
                line = self._read()
            except EOFError:
                return
            except KeyboardInterrupt:
                if not self._interrupted_text:
                    print("Use Ctrl + d or /bye to exit.")
                self.alt = False
                self.multiline = _Multiline.NONE
                self.buf.clear()
                continue
            if not self._line(line):
                return
            text = "".join(self.buf)
            if text and self.multiline is _Multiline.NONE:
                self._send(text)
                self.buf.clear()

    def _line(self, line: str) -> bool:
        """Take one input line; False ends the session."""
        if self.multiline is not _Multiline.NONE:
            ended = line.endswith(MULTILINE)
            self.buf.append(line[: -len(MULTILINE)] if ended else line)
            if not ended:
                self.buf.append("\n")
                self.alt = True
                return True
            if self.multiline is _Multiline.SYSTEM:
                self._set_system("".join(self.buf))
                self.buf.clear()
            self.multiline = _Multiline.NONE
            self.alt = False
            return True
        if line.startswith(MULTILINE):
            rest = line[len(MULTILINE) :]
            ended = rest.endswith(MULTILINE)
            self.buf.append(rest[: -len(MULTILINE)] if ended else rest)
            if not ended:
                self.buf.append("\n")
                self.multiline = _Multiline.PROMPT
                self.alt = True
            return True
        if line.startswith("/"):
            return self._command(line)
        self.buf.append(line)
        return True

    # ----------------------------------------------------------------- commands

    def _command(self, line: str) -> bool:
        args = line.split()
        cmd = args[0] if args else "/"
        if cmd in ("/bye", "/exit"):
            return False
        handlers = {
            "/set": self._cmd_set,
            "/unset": self._cmd_unset,
            "/show": self._cmd_show,
            "/load": self._cmd_load,
            "/save": self._cmd_save,
            "/clear": self._cmd_clear,
            "/list": self._cmd_list,
            "/?": self._cmd_help,
            "/help": self._cmd_help,
        }
        handler = handlers.get(cmd)
        if handler is None:
            print(f"Unknown command '{cmd}'. Type /? for help")
            return True
        try:
            handler(args, line)
        except ClientError as e:
            _err(f"Error: {e.message}\n")
        return True

    def _cmd_help(self, args: list[str], _line: str) -> None:
        topic = args[1] if len(args) > 1 else ""
        if not topic:
            _err(help_text.USAGE)
        elif topic in ("set", "/set"):
            _err(help_text.USAGE_SET)
        elif topic in ("show", "/show"):
            _err(help_text.USAGE_SHOW)
        elif topic in ("shortcut", "shortcuts"):
            _err(help_text.USAGE_SHORTCUTS)

    def _cmd_clear(self, _args: list[str], _line: str) -> None:
        self.opts.messages = []
        if self.opts.system:
            self.opts.messages.append({"role": "system", "content": self.opts.system})
        print("Cleared session context")

    def _cmd_list(self, args: list[str], _line: str) -> None:
        sys.stdout.write(list_table(self.client.list_models(), args[1] if len(args) > 1 else ""))

    def _set_system(self, text: str) -> None:
        self.opts.system = text
        msg = {"role": "system", "content": text}
        if self.opts.messages and self.opts.messages[-1].get("role") == "system":
            self.opts.messages[-1] = msg
        else:
            self.opts.messages.append(msg)
        print("Set system message.")

    def _cmd_set(self, args: list[str], _line: str) -> None:
        opts = self.opts
        if len(args) < 2:
            _err(help_text.USAGE_SET)
            return
        what = args[1]
        simple = {
            "wordwrap": ("word_wrap", True, "Set 'wordwrap' mode."),
            "nowordwrap": ("word_wrap", False, "Set 'nowordwrap' mode."),
            "verbose": ("verbose", True, "Set 'verbose' mode."),
            "quiet": ("verbose", False, "Set 'quiet' mode."),
        }
        if what in simple:
            attr, value, message = simple[what]
            setattr(opts, attr, value)
            print(message)
        elif what in ("history", "nohistory"):
            self.history.enabled = what == "history"
        elif what in ("think", "nothink"):
            level = args[2] if what == "think" and len(args) > 2 else ""
            opts.think = level or (what == "think")
            self.think_explicit = True
            self._warn_thinking()
            if level:
                print(f"Set 'think' mode to '{level}'.")
            else:
                print(f"Set '{what}' mode.")
        elif what == "format":
            if len(args) < 3 or args[2] != "json":
                print("Invalid or missing format. For 'json' mode use '/set format json'")
            else:
                opts.format = "json"
                print("Set format to 'json' mode.")
        elif what == "noformat":
            opts.format = ""
            print("Disabled format.")
        elif what == "parameter":
            self._set_parameter(args)
        elif what == "system":
            self._start_system(args)
        else:
            print(f"Unknown command '/set {what}'. Type /? for help")

    def _set_parameter(self, args: list[str]) -> None:
        if len(args) < 4:
            _err(help_text.USAGE_PARAMETERS)
            return
        name, values = args[2], args[3:]
        try:
            value = parse_parameter(name, values)
        except ModelfileError as e:
            print(f"Couldn't set parameter: {go_quote(str(e))}")
            return
        print(f"Set parameter '{name}' to '{', '.join(values)}'")
        self.opts.options[name] = value

    def _start_system(self, args: list[str]) -> None:
        if len(args) < 3:
            _err(help_text.USAGE_SET)
            return
        text = " ".join(args[2:])
        if text.startswith(MULTILINE):
            text = text[len(MULTILINE) :]
            if text.endswith(MULTILINE):
                text = text[: -len(MULTILINE)]
            else:
                self.multiline = _Multiline.SYSTEM
                self.alt = True
                self.buf.append(text + "\n")
                return
        self._set_system(text)

    def _cmd_unset(self, args: list[str], _line: str) -> None:
        what = args[1] if len(args) > 1 else ""
        if what == "format":
            self.opts.format = ""
            print("Disabled format.")
        elif what == "system":
            self.opts.system = ""
            self.opts.messages = [m for m in self.opts.messages if m.get("role") != "system"]
            print("Unset system message.")
        elif what == "parameter" and len(args) > 2:
            for name in args[2:]:
                self.opts.options.pop(name, None)
                print(f"Unset parameter '{name}'")
        else:
            print(f"Unknown command '/unset {what}'. Type /? for help")

    def _warn_thinking(self) -> None:
        try:
            caps = self.client.show(self.opts.model).get("capabilities") or []
        except ClientError:
            return
        if "thinking" not in caps:
            _err(f"warning: model {go_quote(self.opts.model)} does not support thinking output\n")

    def _cmd_show(self, args: list[str], _line: str) -> None:
        if len(args) < 2:
            _err(help_text.USAGE_SHOW)
            return
        opts = self.opts
        resp = self.client.show(opts.model)
        what = args[1]
        if what == "info":
            _err(format_show_info(resp))
        elif what == "license":
            print(resp.get("license") or "No license was specified for this model.")
        elif what == "modelfile":
            print(resp.get("modelfile", ""))
        elif what == "parameters":
            print("Model defined parameters:")
            params = str(resp.get("parameters") or "")
            if not params:
                print("  No additional parameters were specified for this model.")
            for line in params.splitlines():
                print(f"  {line}")
            print()
            if opts.options:
                print("User defined parameters:")
                for k, v in opts.options.items():
                    print(f"  {k:<30} {go_value(v)}")
                print()
        elif what == "system":
            text = opts.system or str(resp.get("system") or "")
            print(text + "\n" if text else "No system message was specified for this model.")
        elif what == "template":
            print(resp.get("template") or "No prompt template was specified for this model.")
        else:
            print(f"Unknown command '/show {what}'. Type /? for help")

    def _cmd_load(self, args: list[str], _line: str) -> None:
        if len(args) != 2:
            print("Usage:\n  /load <modelname>")
            return
        opts = self.opts
        saved = (opts.model, opts.messages, opts.loaded_messages, opts.parent_model, opts.think)
        opts.model, opts.messages, opts.loaded_messages = args[1], [], []
        print(f"Loading model '{opts.model}'")
        try:
            info = self.client.show(opts.model)
            opts.parent_model = str((info.get("details") or {}).get("parent_model") or "")
            opts.loaded_messages = list(info.get("messages") or [])
            opts.multimodal = "vision" in (info.get("capabilities") or [])
            if not self.think_explicit:
                opts.think = True if "thinking" in (info.get("capabilities") or []) else None
            load_model(self.client, opts)
        except ClientError as e:
            (opts.model, opts.messages, opts.loaded_messages, opts.parent_model, opts.think) = saved
            if "not found" in e.message:
                print(f"Couldn't find model '{args[1]}'")
            else:
                print(f"error: {e.message}")

    def _cmd_save(self, args: list[str], _line: str) -> None:
        if len(args) != 2:
            print("Usage:\n  /save <modelname>")
            return
        name = args[1]
        if not is_valid_name(name):
            print(f"error: The model name '{name}' is invalid")
            return
        for _ in self.client.create(save_request(name, self.opts)):
            pass
        print(f"Created new model '{name}'")

    # ----------------------------------------------------------------- chat

    def _send(self, text: str) -> None:
        opts = self.opts
        message: dict[str, Any] = {"role": "user", "content": text}
        if opts.multimodal:
            try:
                message["content"], images = extract_images(text)
            except AttachError as e:
                _err(f"Couldn't process file: {e}\n")
                return
            if images:
                message["images"] = images
        opts.messages.append(message)
        try:
            answer = chat(self.client, opts)
        except ClientError as e:
            opts.messages.pop()
            if "does not support thinking" in e.message or "invalid think value" in e.message:
                print(f"error: {e.message}")
            else:
                _err(f"Error: {e.message}\n")
            return
        if answer is not None:
            opts.messages.append(answer)


def save_request(name: str, opts: RunOptions) -> dict[str, Any]:
    """``/save``'s create request: the session's model, system, parameters and messages."""
    parent = opts.parent_model if is_valid_name(opts.parent_model or "") else ""
    req: dict[str, Any] = {"model": name, "from": parent or opts.model}
    if opts.system:
        req["system"] = opts.system
    if opts.options:
        req["parameters"] = dict(opts.options)
    messages = [*opts.loaded_messages, *opts.messages]
    if messages:
        req["messages"] = messages
    return req


def print_loaded_messages(messages: list[dict[str, Any]]) -> None:
    """Show a model's stored conversation before the first prompt, as Ollama does."""
    for m in messages:
        if m.get("role") == "user":
            print(f">>> {m.get('content', '')}")
        elif m.get("role") == "assistant":
            print(f"{m.get('content', '')}\n")
