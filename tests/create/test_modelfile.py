"""Tests of the Modelfile parser and formatter against Ollama's grammar, quirks and texts."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from corral.create.modelfile import (
    Command,
    Modelfile,
    format_modelfile,
    format_parameters,
    parse_modelfile,
)
from corral.errors import ModelfileError

INVALID_COMMAND = (
    'command must be one of "from", "license", "template", "system", "adapter", "draft", '
    '"renderer", "parser", "parameter", "message", or "requires"'
)
INVALID_ROLE = 'message role must be one of "system", "user", or "assistant"'

Pairs = list[tuple[str, str]]


def pairs(text: str | bytes, *, check: bool = False) -> Pairs:
    return [(c.name, c.args) for c in parse_modelfile(text, check=check).commands]


def error_of(text: str | bytes, *, check: bool = False) -> str:
    with pytest.raises(ModelfileError) as info:
        parse_modelfile(text, check=check)
    assert info.value.status == 400
    return str(info.value)


# --------------------------------------------------------------------------------------------
# instructions and values


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("FROM llama3", [("model", "llama3")]),
        ("from llama3", [("model", "llama3")]),
        ("FrOm llama3:7b-instruct-q4_K_M", [("model", "llama3:7b-instruct-q4_K_M")]),
        ("FROM /path/to/model/fp16.bin", [("model", "/path/to/model/fp16.bin")]),
        ("FROM     FOOO BAR    ", [("model", "FOOO BAR")]),
        ("FROM /what/is/the path ", [("model", "/what/is/the path")]),
        ('FROM "FOO  BAR  "', [("model", "FOO  BAR  ")]),
        ('FROM "     model 1"', [("model", "     model 1")]),
        ("FROM\tfoo", [("model", "foo")]),
        ("FROM x\nADAPTER ./lora.gguf", [("model", "x"), ("adapter", "./lora.gguf")]),
        ("FROM x\nadapter a\nADAPTER b", [("model", "x"), ("adapter", "a"), ("adapter", "b")]),
        ("FROM x\nTEMPLATE {{ .Prompt }}", [("model", "x"), ("template", "{{ .Prompt }}")]),
        ("FROM x\nSYSTEM You are a bot.", [("model", "x"), ("system", "You are a bot.")]),
        (
            "FROM x\nLICENSE MIT\nLICENSE Apache",
            [("model", "x"), ("license", "MIT"), ("license", "Apache")],
        ),
        ("FROM x\nDRAFT ./assistant", [("model", "x"), ("draft", "./assistant")]),
        ("FROM x\nRENDERER qwen3", [("model", "x"), ("renderer", "qwen3")]),
        ("FROM x\nPARSER qwen3", [("model", "x"), ("parser", "qwen3")]),
        ("FROM x\nREQUIRES 0.14.0", [("model", "x"), ("requires", "0.14.0")]),
        ("FROM x\nPARAMETER temperature 0.7", [("model", "x"), ("temperature", "0.7")]),
        ("FROM x\nparameter num_ctx 4096", [("model", "x"), ("num_ctx", "4096")]),
        ("FROM x\nPARAMETER   num_ctx 1", [("model", "x"), ("", "num_ctx 1")]),
        ("FROM x\nPARAMETER Top_K 1", [("model", "x"), ("Top_K", "1")]),
        ("FROM x\nMESSAGE user Hey there!", [("model", "x"), ("message", "user: Hey there!")]),
        ("FROM x\nmessage assistant Hi", [("model", "x"), ("message", "assistant: Hi")]),
        ("FROM x\nMESSAGE system Be brief.", [("model", "x"), ("message", "system: Be brief.")]),
        ("FROM a\nFROM b", [("model", "a"), ("model", "b")]),
        ("PARAMETER param1 value1\nFROM foo", [("param1", "value1"), ("model", "foo")]),
        ("PARAMETER what the \nFROM lemons ", [("what", "the"), ("model", "lemons")]),
        # PARAMETER model / system are instructions in disguise, as in Ollama
        ("PARAMETER model foo", [("model", "foo")]),
        ("FROM x\nPARAMETER system hi", [("model", "x"), ("system", "hi")]),
    ],
)
def test_instructions(text: str, expected: Pairs) -> None:
    assert pairs(text) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("value", "value"),
        ("  padded  ", "padded"),
        ("\tpadded\t", "padded"),
        ('""', ""),
        ('"\'"', "'"),
        ('"### User: "', "### User: "),
        ('"a # not a comment"', "a # not a comment"),
        ("a # not a comment", "a # not a comment"),
        ('"""### User:"""', "### User:"),
        ('""""""', ""),
        ('"""\nmulti\nline\n"""', "\nmulti\nline\n"),
        ('"""\nmultiline system."""', "\nmultiline system."),
        ('"""This is a\nmultiline system."""', "This is a\nmultiline system."),
        ('"""x with "quotes"."""', 'x with "quotes".'),
        ('"""\nwith "quotes".\n"""', '\nwith "quotes".\n'),
        ('"""' + "''\"'\"\"'\"\"'\"'''''\"\"'\"\"'" + '"""', "''\"'\"\"'\"\"'\"'''''\"\"'\"\"'"),
        ('"""   keep inner space   """    ', "   keep inner space   "),
        ('"two\nlines"', "two\nlines"),
        ('"tab\there"', "tab\there"),
        ("你好👋", "你好👋"),
        # the value ends only at a line end where the whole value is a closed string
        ('"a" b\nc"', 'a" b\nc'),
        ('"a"   ', "a"),
        # characters Go does not count as printable are dropped
        ("a\x00b\x07c", "abc"),
        ("nbsp\u00a0here", "nbsphere"),
        ("zwj\u200dhere", "zwjhere"),
        ('"""keep\ttabs and\r\ncarriage returns"""', "keep\ttabs and\r\ncarriage returns"),
    ],
)
def test_values(value: str, expected: str) -> None:
    assert pairs(f"FROM foo\nSYSTEM {value}\n") == [("model", "foo"), ("system", expected)]


@pytest.mark.parametrize(
    ("line", "name", "value"),
    [
        ("stop ### User:", "stop", "### User:"),
        ("stop ### User: ", "stop", "### User:"),
        ('stop "### User:"', "stop", "### User:"),
        ('stop "### User: "', "stop", "### User: "),
        ('stop """### User:"""', "stop", "### User:"),
        ('stop """### User:\n"""', "stop", "### User:\n"),
        ("stop <|endoftext|>", "stop", "<|endoftext|>"),
        ("stop </s>", "stop", "</s>"),
        ("num_ctx 1", "num_ctx", "1"),
        ("top_p 1.0", "top_p", "1.0"),
        ("use_mmap true", "use_mmap", "true"),
        ("draft_num_predict 8", "draft_num_predict", "8"),
    ],
)
def test_parameter_lines(line: str, name: str, value: str) -> None:
    assert pairs(f"FROM foo\nPARAMETER {line}\n", check=True) == [("model", "foo"), (name, value)]


def test_ollama_reference_file() -> None:
    text = (
        "\nFROM model1\nADAPTER adapter1\nLICENSE MIT\nPARAMETER param1 value1\n"
        "PARAMETER param2 value2\n"
        'TEMPLATE """{{ if .System }}<|start_header_id|>system<|end_header_id|>\n\n'
        "{{ .System }}<|eot_id|>{{ end }}<|start_header_id|>assistant<|end_header_id|>\n\n"
        '{{ .Response }}<|eot_id|>"""    \n'
    )
    assert pairs(text) == [
        ("model", "model1"),
        ("adapter", "adapter1"),
        ("license", "MIT"),
        ("param1", "value1"),
        ("param2", "value2"),
        (
            "template",
            "{{ if .System }}<|start_header_id|>system<|end_header_id|>\n\n"
            "{{ .System }}<|eot_id|>{{ end }}<|start_header_id|>assistant<|end_header_id|>\n\n"
            "{{ .Response }}<|eot_id|>",
        ),
    ]


@pytest.mark.parametrize(
    "text",
    [
        "# comment\nFROM foo\n\t",
        "   # indented comment\nFROM foo",
        "\n\n\nFROM foo\n\n# trailing comment",
        "FROM foo\n# comment without line end",
        "\r\nFROM foo\r\n",
        "\ufeffFROM foo",
        "#FROM bar\nFROM foo\n#SYSTEM x",
        "\t  FROM foo",
    ],
)
def test_comments_and_blank_lines(text: str) -> None:
    assert pairs(text) == [("model", "foo")]


def test_line_numbers() -> None:
    text = 'FROM a\n\n# c\nSYSTEM """x\ny"""\n  PARAMETER seed 1\nMESSAGE user hi'
    lines = [c.line for c in parse_modelfile(text).commands]
    assert lines == [1, 4, 6, 7]


def test_line_is_not_part_of_equality() -> None:
    assert Command("model", "x", 3) == Command("model", "x", 9)


# --------------------------------------------------------------------------------------------
# encodings


@pytest.mark.parametrize(
    "encoded",
    [
        "FROM bob\nSYSTEM 你好👋\n".encode(),
        b"\xef\xbb\xbf" + "FROM bob\nSYSTEM 你好👋\n".encode(),
        b"\xff\xfe" + "FROM bob\nSYSTEM 你好👋\n".encode("utf-16-le"),
        b"\xfe\xff" + "FROM bob\nSYSTEM 你好👋\n".encode("utf-16-be"),
    ],
)
def test_encodings(encoded: bytes) -> None:
    assert pairs(encoded) == [("model", "bob"), ("system", "你好👋")]


def test_invalid_utf8_is_replaced() -> None:
    assert pairs(b"FROM bob\nSYSTEM a\xffb\n") == [("model", "bob"), ("system", "a\ufffdb")]


# --------------------------------------------------------------------------------------------
# syntax errors


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no FROM line"),
        ("# only a comment\n", "no FROM line"),
        ("PARAMETER param1 value1", "no FROM line"),
        ("SYSTEM hi\nLICENSE MIT\n", "no FROM line"),
        ("\nFROM foo\nBADCOMMAND param1 value1\n", f"(line 3): {INVALID_COMMAND}"),
        ("FROM foo\nFROM2 x", f"(line 2): {INVALID_COMMAND}"),
        ("FROM foo\nSYSTEM_PROMPT x", f"(line 2): {INVALID_COMMAND}"),
        ('FROM foo\n"SYSTEM" x', f"(line 2): {INVALID_COMMAND}"),
        # a keyword without a value fails at its line end, so the line number is the next one
        ("FROM x\nFROM\n", f"(line 3): {INVALID_COMMAND}"),
        ("FROM x\r\nBAD x", f"(line 3): {INVALID_COMMAND}"),  # \r and \n each count
        ("FROM foo\nMESSAGE badguy I'm a bad guy!\n", f"(line 2): {INVALID_ROLE}"),
        ("FROM foo\nMESSAGE User hi\n", f"(line 2): {INVALID_ROLE}"),
        ("FROM foo\nMESSAGE tool hi\n", f"(line 2): {INVALID_ROLE}"),
        ("FROM foo\nPARAMETER param1\n", "unexpected EOF: param1"),
        ("FROM foo\nPARAMETER top-k 1\n", "unexpected EOF: top"),
        ("FROM foo\nPARAMETER \n", "unexpected EOF: "),
        ("FROM foo\nMESSAGE system\n", "unexpected EOF: system"),
        ("FROM foo\nMESSAGE user: hi\n", "unexpected EOF: user"),
        ("FROM foo\nMESSAGE system", "unexpected EOF"),
        ("FROM foo\nPARAMETER seed", "unexpected EOF"),
        ("FROM", "unexpected EOF"),
        ("FROM foo\nSYSTEM", "unexpected EOF"),
        ('FROM foo\nSYSTEM """This is a multiline system.""\n', "unexpected EOF"),
        ('FROM foo\nSYSTEM "\n', "unexpected EOF"),
        ('FROM foo\nSYSTEM """\nnever closed\n', "unexpected EOF"),
        ('FROM foo\nSYSTEM """"""\nTEMPLATE """', "unexpected EOF"),
        ('FROM "foo', "unexpected EOF"),
    ],
)
def test_syntax_errors(text: str, message: str) -> None:
    assert error_of(text) == message


def test_syntax_errors_come_before_missing_from_and_parameter_checks() -> None:
    assert error_of("PARAMETER bogus 1\nBAD x", check=True) == f"(line 2): {INVALID_COMMAND}"
    assert error_of("PARAMETER bogus 1", check=True) == "no FROM line"


# --------------------------------------------------------------------------------------------
# parameter and REQUIRES checks (what Ollama's client checks before creating)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("FROM x\nPARAMETER param1 value1", "unknown parameter 'param1'"),
        ("FROM x\nPARAMETER Temperature 1", "unknown parameter 'Temperature'"),
        ("FROM x\nPARAMETER numa true", "unknown parameter 'numa'"),
        ("FROM x\nPARAMETER num_gqa 1", "unknown parameter 'num_gqa'"),
        ("FROM x\nPARAMETER   num_ctx 1", "unknown parameter ''"),
        ("FROM x\nPARAMETER from y", "unknown parameter 'from'"),
        ("FROM x\nPARAMETER num_ctx 4k", "invalid int value [4k]"),
        ("FROM x\nPARAMETER seed 1.5", "invalid int value [1.5]"),
        ("FROM x\nPARAMETER temperature warm", "invalid float value [warm]"),
        ("FROM x\nPARAMETER use_mmap yes", "invalid bool value [yes]"),
        ("FROM x\nPARAMETER top_k 1\nPARAMETER top_p x", "invalid float value [x]"),
        ("FROM x\nREQUIRES latest", "requires must be a valid semver (e.g. 0.14.0)"),
        ("FROM x\nREQUIRES 1.2.3.4", "requires must be a valid semver (e.g. 0.14.0)"),
        ("FROM x\nREQUIRES 01.2", "requires must be a valid semver (e.g. 0.14.0)"),
        ("FROM x\nREQUIRES 1.2-rc1", "requires must be a valid semver (e.g. 0.14.0)"),
    ],
)
def test_checks(text: str, message: str) -> None:
    assert error_of(text, check=True) == message
    parse_modelfile(text, check=False)  # the syntax itself is fine


@pytest.mark.parametrize(
    "version", ["0.14.0", "v0.14.0", "1", "1.2", "1.2.3-rc.1+build.5", "0.0.0"]
)
def test_requires_accepted(version: str) -> None:
    assert pairs(f"FROM x\nREQUIRES {version}", check=True)[1] == ("requires", version)


def test_parameters_typed_and_merged() -> None:
    text = (
        "FROM x\nPARAMETER temperature 0.5\nPARAMETER stop <|im_start|>\nPARAMETER top_k 1\n"
        'PARAMETER stop "<|im_end|>"\nPARAMETER temperature 0.25\nPARAMETER use_mmap false\n'
    )
    params = parse_modelfile(text).parameters()
    assert params == {
        "temperature": 0.25,
        "stop": ["<|im_start|>", "<|im_end|>"],
        "top_k": 1,
        "use_mmap": False,
    }
    assert isinstance(params["top_k"], int)


def test_deprecated_parameters_are_skipped(caplog: pytest.LogCaptureFixture) -> None:
    text = "FROM x\nPARAMETER low_vram 2\nPARAMETER penalize_newline nonsense\nPARAMETER seed 3"
    with caplog.at_level(logging.WARNING, logger="corral.create.modelfile"):
        modelfile = parse_modelfile(text)
    assert "low_vram is deprecated" in caplog.text
    assert "penalize_newline is deprecated" in caplog.text
    caplog.clear()
    assert modelfile.parameters() == {"seed": 3}
    assert caplog.text == ""  # warned once, at parse time
    assert [c.name for c in modelfile.commands] == ["model", "low_vram", "penalize_newline", "seed"]


def test_accessors() -> None:
    modelfile = parse_modelfile(
        "FROM x\nLICENSE a\nLICENSE b\nMESSAGE user Hello there!\n"
        'MESSAGE assistant """Hi!\nHow are you?"""\nSYSTEM s'
    )
    assert modelfile.values("license") == ["a", "b"]
    assert modelfile.values("system") == ["s"]
    assert modelfile.messages() == [("user", "Hello there!"), ("assistant", "Hi!\nHow are you?")]
    assert [c.is_parameter for c in modelfile.commands] == [False] * 6


def test_message_without_role_separator() -> None:
    # PARAMETER message x gives a message command without "role: ", as in Ollama
    assert Command("message", "foo").message == ("foo", "")


# --------------------------------------------------------------------------------------------
# formatting


@pytest.mark.parametrize(
    ("command", "text"),
    [
        (Command("model", "/blobs/sha256-1"), "FROM /blobs/sha256-1"),
        (Command("model", " spaced"), 'FROM " spaced"'),
        (Command("adapter", "/blobs/sha256-2"), "ADAPTER /blobs/sha256-2"),
        (Command("draft", "d"), "DRAFT d"),
        (Command("renderer", "r"), "RENDERER r"),
        (Command("parser", "p"), "PARSER p"),
        (Command("requires", "0.14.0"), "REQUIRES 0.14.0"),
        (Command("template", "{{ .Prompt }}"), "TEMPLATE {{ .Prompt }}"),
        (Command("template", "a\nb"), 'TEMPLATE "a\nb"'),
        (Command("template", 'say "hi"\n'), 'TEMPLATE """say "hi"\n"""'),
        (Command("system", 'say "hi"'), 'SYSTEM say "hi"'),
        (Command("system", " lead"), 'SYSTEM " lead"'),
        (Command("system", "trail "), 'SYSTEM "trail "'),
        (Command("system", ""), "SYSTEM "),
        (Command("license", "MIT"), "LICENSE MIT"),
        (Command("stop", "<|im_end|>"), "PARAMETER stop <|im_end|>"),
        (Command("stop", "\n\n"), 'PARAMETER stop "\n\n"'),
        (Command("message", "user: Hey there!"), "MESSAGE user Hey there!"),
        (Command("message", 'system: Say "Hello!".\n'), 'MESSAGE system """Say "Hello!".\n"""'),
        # where a bare value would not parse back, corral quotes it
        (Command("system", "\tlead"), 'SYSTEM "\tlead"'),
        (Command("system", '"quoted"'), 'SYSTEM """"quoted""""'),
        (Command("system", "a\rb"), 'SYSTEM "a\rb"'),
    ],
)
def test_command_text(command: Command, text: str) -> None:
    assert command.to_text() == text


ROUND_TRIP = [
    "\nFROM foo\nADAPTER adapter1\nLICENSE MIT\nPARAMETER param1 value1\n"
    "PARAMETER param2 value2\nTEMPLATE template1\n"
    "MESSAGE system You are a file parser. Always parse things.\n"
    "MESSAGE user Hey there!\nMESSAGE assistant Hello, I want to parse all the things!\n",
    '\nFROM foo\nMESSAGE system """\nYou are a store greeter. Always respond with "Hello!".\n"""\n'
    "MESSAGE user Hey there!\n",
    '\nFROM foo\nLICENSE """\nVery long and boring legal text.\nBlah blah blah.\n'
    '"Oh look, a quote!"\n"""\n\nPARAMETER param1 value1\n',
    '\nFROM foo\nSYSTEM ""\n',
    'FROM "  padded model"\nSYSTEM """\tTabbed"""\nSYSTEM """"leading quote"""\n',
    'FROM x\nTEMPLATE """{{ if .System }}{{ .System }}\n{{ end }}{{ .Prompt }} """\n',
    'FROM x\nDRAFT d\nRENDERER r\nPARSER p\nREQUIRES 0.1.0\nPARAMETER stop "a\rb"\n',
]


@pytest.mark.parametrize("text", ROUND_TRIP)
def test_round_trip(text: str) -> None:
    first = parse_modelfile(text, check=False)
    second = parse_modelfile(first.to_text(), check=False)
    assert second == first


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0.7, "0.7"),
        (1.0, "1"),
        (-0.5, "-0.5"),
        (0.0001, "0.0001"),
        (0.00001, "1e-05"),
        (123456.5, "123456.5"),
        (1e6, "1e+06"),
        (1.048576e6, "1.048576e+06"),
        (1e21, "1e+21"),
        (0.12345679, "0.12345679"),
        (4096, "4096"),
        (1048576, "1048576"),
        (-1, "-1"),
        (True, "true"),
        (False, "false"),
        ("<|im_start|>", '"<|im_start|>"'),
        ('say "hi"\\', '"say \\"hi\\"\\\\"'),
        ("\n\t\r\x07\x08\x0b\x0c", '"\\n\\t\\r\\a\\b\\v\\f"'),
        ("\x00\x1f\x7f", '"\\x00\\x1f\\x7f"'),
        ("\u00a0\u200d\U000e0001", '"\\u00a0\\u200d\\U000e0001"'),
        ("你好👋 é", '"你好👋 é"'),
    ],
)
def test_parameter_value_formats(value: Any, expected: str) -> None:
    assert format_parameters({"x": value}) == f"{'x':<30} {expected}"


def test_format_parameters() -> None:
    params = {
        "temperature": 0.7,
        "stop": ["<|im_start|>", "<|im_end|>"],
        "num_ctx": 4096,
        "a_parameter_name_longer_than_thirty": True,
        "skipped": None,
    }
    assert format_parameters(params) == (
        "a_parameter_name_longer_than_thirty true\n"
        "num_ctx                        4096\n"
        'stop                           "<|im_start|>"\n'
        'stop                           "<|im_end|>"\n'
        "temperature                    0.7"
    )
    assert format_parameters({}) == ""


def test_format_modelfile() -> None:
    text = format_modelfile(
        model_name="smollm2:latest",
        from_="/models/blobs/sha256-aaa",
        adapters=["/models/blobs/sha256-bbb"],
        draft="/models/blobs/sha256-ddd",
        projectors=["/models/blobs/sha256-ccc"],
        template="{{ if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}",
        system="You are a helpful AI assistant named SmolLM.",
        renderer="r",
        parser="p",
        parameters={"temperature": 0.2, "stop": ["<|im_start|>", "<|im_end|>"], "num_ctx": 8192},
        licenses=["Apache 2.0", 'Line one\n"quoted"\n'],
        messages=[("user", "Hi"), ("assistant", " Hello!")],
    )
    assert text == (
        '# Modelfile generated by "ollama show"\n'
        "# To build a new Modelfile based on this, replace FROM with:\n"
        "# FROM smollm2:latest\n"
        "\n"
        "FROM /models/blobs/sha256-aaa\n"
        "ADAPTER /models/blobs/sha256-bbb\n"
        "DRAFT /models/blobs/sha256-ddd\n"
        "FROM /models/blobs/sha256-ccc\n"
        'TEMPLATE "{{ if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}"\n'
        "SYSTEM You are a helpful AI assistant named SmolLM.\n"
        "RENDERER r\n"
        "PARSER p\n"
        "PARAMETER num_ctx 8192\n"
        "PARAMETER stop <|im_start|>\n"
        "PARAMETER stop <|im_end|>\n"
        "PARAMETER temperature 0.2\n"
        "LICENSE Apache 2.0\n"
        'LICENSE """Line one\n"quoted"\n"""\n'
        "MESSAGE user Hi\n"
        'MESSAGE assistant " Hello!"\n'
    )


def test_format_modelfile_minimal() -> None:
    text = format_modelfile(model_name="m:latest", from_="/b/sha256-1", template="{{ .Prompt }}")
    assert text.endswith("\n\nFROM /b/sha256-1\nTEMPLATE {{ .Prompt }}\n")
    no_template = format_modelfile(model_name="m:latest", from_="/b/sha256-1", system="")
    assert no_template.endswith("\n\nFROM /b/sha256-1\n")


def test_format_then_parse_reproduces_the_model() -> None:
    parameters = {
        "temperature": 0.2,
        "top_p": 1e-05,
        "seed": 1234567,
        "use_mmap": False,
        "stop": ["<|im_end|>", " ", "\n", '"', "a\tb"],
    }
    text = format_modelfile(
        model_name="m:latest",
        from_="/b/sha256-1",
        template='{{ .System }} "x"\n{{ .Prompt }}',
        system="\tindented",
        parameters=parameters,
        licenses=["MIT", ' "padded" '],
        messages=[("system", "s"), ("user", '"quoted"'), ("assistant", "multi\nline")],
        adapters=["/b/sha256-2"],
    )
    modelfile = parse_modelfile(text)
    assert modelfile.parameters() == parameters
    assert modelfile.values("model") == ["/b/sha256-1"]
    assert modelfile.values("adapter") == ["/b/sha256-2"]
    assert modelfile.values("template") == ['{{ .System }} "x"\n{{ .Prompt }}']
    assert modelfile.values("system") == ["\tindented"]
    assert modelfile.values("license") == ["MIT", ' "padded" ']
    assert modelfile.messages() == [
        ("system", "s"),
        ("user", '"quoted"'),
        ("assistant", "multi\nline"),
    ]


def test_modelfile_is_frozen() -> None:
    modelfile = Modelfile((Command("model", "x"),))
    with pytest.raises(AttributeError):
        modelfile.commands = ()  # type: ignore[misc]
