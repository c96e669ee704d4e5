"""Every non-interactive ``corral`` command against a live server (fake engine) on 127.0.0.1."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import httpx

from corral.cli.create import plan_create, request_file_names
from corral.create.modelfile import parse_modelfile
from tests.cli.conftest import CliFn, cli_env, run_cli
from tests.serverproc import ServerProcess, free_port

FAKE_REPLY = "The quick brown fox jumps over the lazy dog."


def _rows(text: str) -> list[list[str]]:
    return [re.split(r"\s{4,}", line.strip()) for line in text.strip().splitlines()]


def _digest(server: ServerProcess, name: str) -> str:
    models = httpx.get(f"{server.url}/api/tags").json()["models"]
    return str(next(m["digest"] for m in models if m["name"] == name))


def test_list_and_ls(invoke: CliFn, fake_server: ServerProcess, base_model: str) -> None:
    res = invoke("list")
    assert res.code == 0, res.stderr
    rows = _rows(res.stdout)
    assert rows[0] == ["NAME", "ID", "SIZE", "MODIFIED"]
    row = next(r for r in rows if r[0] == base_model)
    assert row[1] == _digest(fake_server, base_model)[:12]
    assert re.fullmatch(r"\d+ MB", row[2])
    assert row[3].endswith("ago")
    assert invoke("ls").stdout == res.stdout
    # A prefix filters by name, case-insensitively.
    assert [r[0] for r in _rows(invoke("ls", "SMO").stdout)[1:]] == [base_model]
    assert _rows(invoke("ls", "nothing-like-it").stdout) == [["NAME", "ID", "SIZE", "MODIFIED"]]


def test_show_default_output(invoke: CliFn, base_model: str) -> None:
    res = invoke("show", "smol")
    assert res.code == 0, res.stderr
    out = res.stdout
    assert out.startswith("  Model\n")
    assert re.search(r"^    architecture\s{4,}llama$", out, re.M)
    assert re.search(r"^    parameters\s{4,}134\.52M$", out, re.M)
    assert re.search(r"^    context length\s{4,}8192$", out, re.M)
    assert re.search(r"^    embedding length\s{4,}576$", out, re.M)
    assert re.search(r"^    quantization\s{4,}Q4_1$", out, re.M)
    assert "  Capabilities\n    completion\n" in out
    assert re.search(r"^    temperature\s{4,}0\.5$", out, re.M)
    assert "  System\n    You are terse.\n" in out
    # The license is cut after two lines, as Ollama prints it.
    assert "  License\n    MIT\n    second line\n    ...\n" in out
    assert "Metadata" not in out


def test_show_verbose_and_single_fields(invoke: CliFn, base_model: str) -> None:
    verbose = invoke("show", "smol", "-v").stdout
    assert "  Metadata\n" in verbose
    assert re.search(r"^    general\.architecture\s{4,}llama$", verbose, re.M)
    assert re.search(r"^    llama\.context_length\s{4,}8192$", verbose, re.M)
    assert invoke("show", "smol", "--system").stdout == "You are terse."
    assert invoke("show", "smol", "--license").stdout == "MIT\nsecond line\nthird line\n"
    assert "temperature" in invoke("show", "smol", "--parameters").stdout
    assert "<|im_start|>" in invoke("show", "smol", "--template").stdout
    modelfile = invoke("show", "smol", "--modelfile").stdout
    assert "FROM " in modelfile and "SYSTEM You are terse." in modelfile
    both = invoke("show", "smol", "--system", "--license")
    assert both.code == 1
    assert both.stderr == (
        "Error: only one of '--license', '--modelfile', '--parameters', '--system', or "
        "'--template' can be specified\n"
    )


def test_cp_and_rm(invoke: CliFn, fake_server: ServerProcess, base_model: str) -> None:
    res = invoke("cp", "smol", "smol-copy:v1")
    assert (res.code, res.stdout) == (0, "copied 'smol' to 'smol-copy:v1'\n")
    assert _digest(fake_server, "smol-copy:v1") == _digest(fake_server, base_model)
    invoke("cp", "smol", "smol-copy:v2")
    res = invoke("rm", "smol-copy:v1", "smol-copy:v2")
    assert res.code == 0, res.stderr
    assert res.stdout == "deleted 'smol-copy:v1'\ndeleted 'smol-copy:v2'\n"
    names = [r[0] for r in _rows(invoke("list").stdout)]
    assert "smol-copy:v1" not in names and base_model in names
    missing = invoke("rm", "no-such-model")
    assert (missing.code, missing.stderr) == (1, "Error: model 'no-such-model' not found\n")


def test_run_stop_and_ps(cli: CliFn, invoke: CliFn, base_model: str) -> None:
    res = cli("run", "smol", "hello", "there")
    assert res.code == 0, res.stderr
    assert res.stdout == FAKE_REPLY + "\n\n"
    rows = _rows(invoke("ps").stdout)
    assert rows[0] == ["NAME", "ID", "SIZE", "PROCESSOR", "CONTEXT", "UNTIL"]
    row = next(r for r in rows if r[0] == base_model)
    assert row[3] == "100% CPU"
    assert row[4].isdigit()
    assert row[5].endswith("from now")
    res = invoke("stop", "smol")
    assert (res.code, res.stdout, res.stderr) == (0, "", "")
    assert [r[0] for r in _rows(invoke("ps").stdout)[1:]] == []
    res = invoke("stop", "nope")
    assert (res.code, res.stderr) == (1, 'Error: couldn\'t find model "nope" to stop\n')


def test_run_reads_piped_stdin_and_prints_timings(cli: CliFn, base_model: str) -> None:
    res = cli("run", "smol", "--verbose", "--keepalive", "1m", input="what is this?\n")
    assert res.code == 0, res.stderr
    assert res.stdout == FAKE_REPLY + "\n\n"
    for label in (
        "total duration:",
        "load duration:",
        "prompt eval count:",
        "prompt eval duration:",
        "prompt eval rate:",
        "eval count:",
        "eval duration:",
        "eval rate:",
    ):
        assert re.search(rf"^{label}\s+\S", res.stderr, re.M), res.stderr
    assert re.search(r"^eval count:\s+45 token\(s\)$", res.stderr, re.M)
    assert re.search(r"^eval rate:\s+\d+\.\d\d tokens/s$", res.stderr, re.M)


def test_run_flags_are_checked(cli: CliFn, invoke: CliFn, base_model: str) -> None:
    res = invoke("run", "smol", "--keepalive", "soon", "hi")
    assert (res.code, res.stderr) == (1, 'Error: time: invalid duration "soon"\n')
    res = invoke("run", "smol", "--think=maybe", "hi")
    assert res.code == 1
    assert res.stderr.startswith('Error: invalid value for --think: "maybe"')
    # A bare --think means true (so "hi" is the prompt); smol cannot think: the server says so.
    res = invoke("run", "smol", "--think", "hi")
    assert (res.code, res.stderr) == (1, 'Error: "smol" does not support thinking\n')
    res = cli("run", "smol", "--format", "json", "hi")
    assert res.code == 0, res.stderr


def test_errors_are_one_line_without_traceback(cli: CliFn, home: Path) -> None:
    res = cli("show", "no-such-model")
    assert (res.code, res.stdout) == (1, "")
    assert re.fullmatch(r"Error: model 'no-such-model(:latest)?' not found\n", res.stderr)
    res = cli("cp", "no-such-model", "x")
    assert res.code == 1 and res.stderr.startswith("Error: ") and "Traceback" not in res.stderr
    port = free_port()
    for args in (["list"], ["ps"], ["show", "m"], ["run", "m", "hi"], ["pull", "m"], ["rm", "m"]):
        res = run_cli(args, cli_env(f"127.0.0.1:{port}", home))
        assert res.code == 1, args
        assert res.stderr == (
            f"Error: could not connect to corral server at http://127.0.0.1:{port}; "
            "is it running? (start it with `corral serve`)\n"
        ), args


def _modelfile(gguf: Path) -> str:
    return (
        f"FROM {gguf}\n"
        "PARAMETER temperature 0.25\n"
        "PARAMETER stop <|im_end|>\n"
        'SYSTEM """Answer in French."""\n'
        "LICENSE Apache-2.0\n"
        "MESSAGE user bonjour\n"
        "MESSAGE assistant salut\n"
    )


def test_create_uploads_a_local_file(
    cli: CliFn, invoke: CliFn, tmp_path: Path, smollm2_gguf: Path, base_model: str
) -> None:
    (tmp_path / "weights").mkdir()
    local = tmp_path / "weights" / "smol.gguf"
    local.symlink_to(smollm2_gguf)
    (tmp_path / "Modelfile").write_text(_modelfile(Path("weights/smol.gguf")))
    # The default Modelfile is ./Modelfile; relative paths start at its directory.
    res = cli("create", "french", cwd=tmp_path)
    assert res.code == 0, res.stderr
    assert "gathering model components" in res.stderr
    assert re.search(r"copying file [0-9a-f]{12} +100%", res.stderr)
    assert res.stderr.rstrip().splitlines()[-1].strip() == "success"
    out = invoke("show", "french").stdout
    assert "  System\n    Answer in French.\n" in out
    assert re.search(r"^    temperature\s{4,}0\.25$", out, re.M)
    assert invoke("show", "french", "--license").stdout == "Apache-2.0\n"
    assert "MESSAGE user bonjour" in invoke("show", "french", "--modelfile").stdout
    # -f names the Modelfile; FROM a model name creates from that model.
    other = tmp_path / "other.modelfile"
    other.write_text("FROM french\nPARAMETER top_k 7\n")
    res = cli("create", "french2", "-f", str(other))
    assert res.code == 0, res.stderr
    assert re.search(r"^    top_k\s{4,}7$", invoke("show", "french2").stdout, re.M)
    invoke("rm", "french", "french2")


def test_create_errors(cli: CliFn, tmp_path: Path, base_model: str) -> None:
    res = cli("create", "x", "-f", str(tmp_path / "missing"))
    assert (res.code, res.stderr) == (1, "Error: specified Modelfile wasn't found\n")
    bad = tmp_path / "bad"
    bad.write_text("FROM smol\nPARAMETER nonsense 1\n")
    res = cli("create", "x", "-f", str(bad))
    assert (res.code, res.stderr) == (1, "Error: unknown parameter 'nonsense'\n")
    (tmp_path / "nofrom").write_text("SYSTEM hi\n")
    res = cli("create", "x", "-f", str(tmp_path / "nofrom"))
    assert (res.code, res.stderr) == (1, "Error: no FROM line\n")
    (tmp_path / "missingfile").write_text("FROM ./nowhere.gguf\n")
    res = cli("create", "x", "-f", str(tmp_path / "missingfile"))
    assert res.code == 1
    last = res.stderr.splitlines()[-1]
    assert last.startswith("Error: stat ") and last.endswith("no such file or directory")
    # No ./Modelfile: "FROM ." finds no model files in the directory.
    empty = tmp_path / "empty"
    empty.mkdir()
    res = cli("create", "x", cwd=empty)
    assert (res.code, res.stderr.splitlines()[-1]) == (
        1,
        "Error: no Modelfile or safetensors files found",
    )
    res = cli("create", "Bad Name!", "-f", str(bad))
    assert (res.code, res.stderr) == (1, "Error: invalid model name: Bad Name!\n")
    # The server's answer to a safetensors import is shown as it is.
    st = tmp_path / "st"
    st.mkdir()
    (st / "model.safetensors").write_bytes(b"\0" * 16)
    (st / "config.json").write_text("{}")
    (tmp_path / "stmf").write_text("FROM ./st\n")
    res = cli("create", "x", "-f", str(tmp_path / "stmf"))
    assert res.code == 1
    assert res.stderr.splitlines()[-1].startswith("Error: ")
    assert "Traceback" not in res.stderr


def test_plan_create_request_fields(tmp_path: Path) -> None:
    (tmp_path / "m.gguf").write_bytes(b"GGUF")
    mf = parse_modelfile(
        "FROM ./m.gguf\nTEMPLATE {{ .Prompt }}\nSYSTEM s1\nSYSTEM s2\n"
        "PARAMETER stop a\nPARAMETER stop b\nPARAMETER num_ctx 128\n"
        "LICENSE l1\nLICENSE l2\nMESSAGE user u\n"
    )
    plan = plan_create("n", mf, tmp_path, "q4_K_M")
    assert plan.request == {
        "model": "n",
        "template": "{{ .Prompt }}",
        "system": "s2",
        "license": ["l1", "l2"],
        "messages": [{"role": "user", "content": "u"}],
        "parameters": {"stop": ["a", "b"], "num_ctx": 128},
        "quantize": "q4_K_M",
    }
    assert plan.files == {(tmp_path / "m.gguf"): "sha256:" + hashlib.sha256(b"GGUF").hexdigest()}
    plan = plan_create("n", parse_modelfile("FROM llama3:8b\n"), tmp_path)
    assert plan.request == {"model": "n", "from": "llama3:8b"} and not plan.files


def test_request_file_names_keep_directory_structure(tmp_path: Path) -> None:
    files = {
        tmp_path / "model.safetensors": "sha256:1",
        tmp_path / "config.json": "sha256:2",
        tmp_path / "sub" / "config.json": "sha256:3",
    }
    assert sorted(request_file_names(files).values()) == [
        "config.json",
        "model.safetensors",
        "sub/config.json",
    ]
    assert request_file_names({tmp_path / "a" / "x.gguf": "d"}) == {
        tmp_path / "a" / "x.gguf": "x.gguf"
    }


def test_run_without_a_prompt_on_a_pipe_only_loads(cli: CliFn, base_model: str) -> None:
    res = cli("run", "smol")
    assert (res.code, res.stdout, res.stderr) == (0, "", "")


def test_push_of_a_missing_model(invoke: CliFn) -> None:
    res = invoke("push", "127.0.0.1:1/library/nothing:latest", "--insecure")
    assert res.code == 1
    assert res.stderr.splitlines()[-1].startswith("Error: ")
    assert "Traceback" not in res.stderr
