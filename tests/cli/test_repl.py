"""The ``corral run`` REPL driven in a real pseudo-terminal (pexpect).

Most tests use the fake-engine server (every answer is the fake reply, cut by ``num_predict``);
Ctrl-C during an answer uses a scripted endless stream; the slow test chats with SmolLM2.
"""

from __future__ import annotations

import re
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import ollama
import pexpect
import pytest

from corral.cli.help_text import PLACEHOLDER
from tests.cli.conftest import CliFn, cli_env
from tests.cli.fakeapi import FakeApi
from tests.serverproc import ServerProcess

FAKE_REPLY = "The quick brown fox jumps over the lazy dog."


def _interruptible() -> None:
    """Ctrl-C in the pty must reach the CLI as SIGINT. A test run started in the background by
    a non-interactive shell inherits SIGINT ignored, and Python then never installs its
    KeyboardInterrupt handler in the child, so restore the default before it starts."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Session:
    """One ``corral run`` in a pty."""

    def __init__(self, url: str, home: Path, *args: str, env: dict[str, str] | None = None):
        full_env = cli_env(url, home, {"TERM": "xterm-256color", **(env or {})})
        full_env.pop("NO_COLOR", None)
        full_env.pop("COLUMNS", None)
        self.child = pexpect.spawn(
            sys.executable,
            ["-m", "corral.cli.main", "run", *args],
            env=full_env,
            encoding="utf-8",
            dimensions=(40, 120),
            timeout=60,
            preexec_fn=_interruptible,
        )

    def prompt(self) -> None:
        self.child.expect_exact(">>> ")

    def ready(self) -> None:
        """Wait for an empty prompt that is reading keys.

        The placeholder is drawn only for an empty buffer, after the terminal is in raw mode;
        a control key sent earlier, while the terminal is still cooked between two prompts,
        would be eaten by the line discipline (Ctrl-D) or become a signal (Ctrl-C).
        """
        self.child.expect_exact(">>> ")
        self.child.expect_exact(PLACEHOLDER)

    def say(self, line: str) -> None:
        self.child.send(line + "\r")

    def expect(self, pattern: str) -> re.Match[str]:
        self.child.expect(pattern)
        match = self.child.match
        assert isinstance(match, re.Match)
        return match

    def bye(self) -> None:
        self.say("/bye")
        self.child.expect(pexpect.EOF)
        self.child.close()
        assert self.child.exitstatus == 0


@pytest.fixture
def repl(fake_server: ServerProcess, home: Path, base_model: str) -> Iterator[Session]:
    session = Session(fake_server.url, home, "smol", "--verbose")
    yield session
    if session.child.isalive():
        session.child.terminate(force=True)


def test_two_turns_keep_the_conversation(repl: Session, home: Path, invoke: CliFn) -> None:
    repl.prompt()
    repl.say("hello")
    repl.child.expect_exact(FAKE_REPLY)
    repl.expect(r"prompt eval count: +\d+ token\(s\)")
    repl.expect(r"eval rate: +\d+\.\d\d tokens/s")
    repl.prompt()
    repl.say("and again")
    repl.child.expect_exact(FAKE_REPLY)
    repl.expect(r"eval rate: +\d+\.\d\d tokens/s")
    repl.prompt()
    # The session (both exchanges) is what /save stores.
    repl.say("/save two-turns")
    repl.child.expect_exact("Created new model 'two-turns'")
    repl.prompt()
    repl.bye()
    modelfile = invoke("show", "two-turns", "--modelfile").stdout
    messages = re.findall(r"^MESSAGE (\w+) (.*)$", modelfile, re.M)
    assert messages == [
        ("user", "hello"),
        ("assistant", FAKE_REPLY),
        ("user", "and again"),
        ("assistant", FAKE_REPLY),
    ]
    invoke("rm", "two-turns")
    history = (home / ".ollama" / "history").read_text().splitlines()
    assert history[-4:] == ["hello", "and again", "/save two-turns", "/bye"]


def test_multiline_input_and_save(repl: Session, invoke: CliFn) -> None:
    repl.prompt()
    repl.say('"""first line')
    repl.child.expect_exact("... ")
    repl.say("second line")
    repl.child.expect_exact("... ")
    repl.say('last line"""')
    repl.child.expect_exact(FAKE_REPLY)
    repl.prompt()
    repl.say("/set system Talk like a pirate.")
    repl.child.expect_exact("Set system message.")
    repl.prompt()
    repl.say("/save pirate-session")
    repl.child.expect_exact("Created new model 'pirate-session'")
    repl.prompt()
    repl.say("/save Not A Name")
    repl.child.expect_exact("Usage:")
    repl.say("/save Bad!Name")
    repl.child.expect_exact("error: The model name 'Bad!Name' is invalid")
    repl.bye()
    modelfile = invoke("show", "pirate-session", "--modelfile").stdout
    assert 'MESSAGE user "first line\nsecond line\nlast line"' in modelfile
    assert f"MESSAGE assistant {FAKE_REPLY}" in modelfile
    assert invoke("show", "pirate-session", "--system").stdout == "Talk like a pirate."
    invoke("rm", "pirate-session")


def test_set_parameter_reaches_the_model(repl: Session) -> None:
    repl.prompt()
    repl.say("/set parameter num_predict 9")
    repl.child.expect_exact("Set parameter 'num_predict' to '9'")
    repl.prompt()
    repl.say("/set parameter nonsense 1")
    repl.child.expect_exact("Couldn't set parameter: \"unknown parameter 'nonsense'\"")
    repl.prompt()
    repl.say("/set parameter num_predict lots")
    repl.child.expect_exact('Couldn\'t set parameter: "invalid int value [lots]"')
    repl.prompt()
    repl.say("hi")
    repl.expect(r"The quick\s*\r?\n")
    repl.expect(r"eval count: +9 token\(s\)")
    repl.prompt()
    repl.say("/show parameters")
    repl.child.expect_exact("Model defined parameters:")
    repl.expect(r"temperature +0\.5")
    repl.child.expect_exact("User defined parameters:")
    repl.expect(r"num_predict +9")
    repl.prompt()
    repl.bye()


def test_show_set_and_other_commands(repl: Session) -> None:
    repl.prompt()
    steps = [
        ("/show system", "You are terse."),
        ("/show license", "third line"),
        ("/show template", "<|im_start|>"),
        ("/show modelfile", "# Modelfile generated by"),
        ("/show info", "quantization"),
        ("/show nonsense", "Unknown command '/show nonsense'. Type /? for help"),
        ("/set system Be brief.", "Set system message."),
        ("/show system", "Be brief."),
        ("/set format json", "Set format to 'json' mode."),
        ("/unset format", "Disabled format."),
        ("/set noformat", "Disabled format."),
        ("/set nowordwrap", "Set 'nowordwrap' mode."),
        ("/set wordwrap", "Set 'wordwrap' mode."),
        ("/set quiet", "Set 'quiet' mode."),
        ("/set bogus", "Unknown command '/set bogus'. Type /? for help"),
        ("/clear", "Cleared session context"),
        ("/load no-such-model", "Couldn't find model 'no-such-model'"),
        ("/load smol", "Loading model 'smol'"),
        ("/?", "Available Commands:"),
        ("/? shortcuts", "Ctrl + d            Exit corral (/bye)"),
        ("/help set", "/set parameter ...     Set a parameter"),
        ("/nope", "Unknown command '/nope'. Type /? for help"),
    ]
    for line, answer in steps:
        repl.say(line)
        repl.child.expect_exact(answer)
        repl.prompt()
    repl.bye()


def test_ctrl_c_at_the_prompt_and_ctrl_d(repl: Session) -> None:
    repl.ready()
    repl.child.sendcontrol("c")
    repl.child.expect_exact("Use Ctrl + d or /bye to exit.")
    repl.ready()
    repl.child.send("half a line")
    repl.child.expect_exact("half a line")
    repl.child.sendcontrol("c")
    repl.ready()
    repl.child.sendcontrol("d")
    repl.child.expect(pexpect.EOF)
    repl.child.close()
    assert repl.child.exitstatus == 0


def test_ctrl_c_stops_the_answer_and_the_server_side_stream(home: Path) -> None:
    api = FakeApi().start()
    try:
        session = Session(api.url, home, "endless")
        session.prompt()
        session.say("talk forever")
        session.child.expect_exact("word5 ")
        session.child.sendcontrol("c")
        assert api.chat_cancelled.wait(10), "the HTTP stream was not closed"
        session.prompt()
        # The session goes on: the next message is sent with the conversation so far.
        session.say("again")
        session.child.expect_exact("word3 ")
        session.child.sendcontrol("c")
        session.prompt()
        session.bye()
        chats = [body for kind, body in api.requests if kind == "chat"]
        assert [m["content"] for m in chats[1]["messages"]] == ["talk forever", "again"]
    finally:
        api.stop()


def test_nohistory(fake_server: ServerProcess, home: Path, base_model: str) -> None:
    session = Session(fake_server.url, home, "smol", env={"OLLAMA_NOHISTORY": "1"})
    session.prompt()
    session.say("/set quiet")
    session.child.expect_exact("Set 'quiet' mode.")
    session.prompt()
    session.bye()
    assert not (home / ".ollama" / "history").exists()


def test_history_is_recalled_across_sessions(
    fake_server: ServerProcess, home: Path, base_model: str
) -> None:
    (home / ".ollama").mkdir()
    (home / ".ollama" / "history").write_text("/show license\n")
    session = Session(fake_server.url, home, "smol")
    session.prompt()
    session.child.send("\x1b[A")  # up arrow: the last line of the previous session
    session.child.send("\r")
    session.child.expect_exact("third line")
    session.prompt()
    session.bye()


@pytest.mark.slow
def test_chat_with_a_real_model(tmp_path: Path, home: Path, smollm2_gguf: Path) -> None:
    server = ServerProcess(tmp_path / "models").start()
    try:
        client = ollama.Client(host=server.url)
        client.create(model="smollm2:135m", files={"m.gguf": client.create_blob(smollm2_gguf)})
        session = Session(server.url, home, "smollm2:135m")
        session.prompt()
        session.say("/set parameter temperature 0")
        session.child.expect_exact("Set parameter 'temperature' to '0'")
        session.prompt()
        session.say("/set parameter num_predict 24")
        session.prompt()
        session.say("What is the capital of France? Answer in one word.")
        session.child.expect_exact("Paris", timeout=120)
        session.prompt()
        session.say("/set parameter num_predict 4000")
        session.prompt()
        session.say("Write a very long story about a dragon.")
        session.child.expect_exact("⠋")  # the spinner: the message is sent
        session.expect(r"\w+ \w+ \w+ \w+ \w+")  # the answer is streaming
        session.child.sendcontrol("c")
        session.prompt()
        session.bye()
    finally:
        server.stop()
