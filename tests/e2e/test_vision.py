"""Vision end to end: SmolLM2 with a real (designed) LLaVA-style projector, through the official
``ollama`` client, the ``openai`` SDK and the CLI.

The projector from :mod:`tests.visionfixture` turns a solid red, green or blue image into
SmolLM2's own embedding of " red", " green" or " blue", so with greedy decoding the model names
the colour: the answer is checked for the right colour word and the absence of the other two.
"""

from __future__ import annotations

import base64
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import ollama
import openai
import pytest

from tests.cli.conftest import cli_env, run_cli
from tests.serverproc import ServerProcess
from tests.visionfixture import build_projector, solid_image, undecodable_image

pytestmark = pytest.mark.slow

RGB = {"red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255)}
QUESTION = "What color is this image? Answer with one word."
GREEDY: dict[str, Any] = {"temperature": 0, "num_predict": 12}
# SmolLM2's own default system prompt (its chat template's), which its answers are tuned to
SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"


def names_only(answer: str, colour: str) -> None:
    text = answer.lower()
    assert colour in text, answer
    assert not [c for c in RGB if c != colour and c in text], answer


@pytest.fixture(scope="module")
def projector(tmp_path_factory: pytest.TempPathFactory, smollm2_gguf: Path) -> Path:
    return build_projector(tmp_path_factory.mktemp("vision") / "colours.gguf", smollm2_gguf)


@pytest.fixture(scope="module")
def vis(client: ollama.Client, smollm2_digest: str, projector: Path) -> str:
    """Created from the API's ``files``: the projector first, under a name that says nothing;
    it is recognised by its metadata."""
    files = {"a.gguf": client.create_blob(projector), "b.gguf": smollm2_digest}
    params = {"temperature": 0, "num_predict": 16}  # the CLI sends no options
    client.create(model="vis", files=files, system=SYSTEM, parameters=params)
    return "vis"


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("images")
    out = {}
    for colour, rgb in RGB.items():
        out[colour] = folder / f"{colour}.png"
        out[colour].write_bytes(solid_image(rgb))
    return out


def b64(colour: str, fmt: str = "png") -> str:
    return base64.b64encode(solid_image(RGB[colour], fmt=fmt)).decode()


def show(server: ServerProcess, name: str) -> dict[str, Any]:
    """``/api/show`` as JSON (the Python client's model has no ``projector_info``)."""
    r = httpx.post(f"{server.url}/api/show", json={"model": name}, timeout=60)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def test_show_reports_the_projector(server: ServerProcess, vis: str) -> None:
    info = show(server, vis)
    assert "vision" in info["capabilities"]
    projector = info["projector_info"]
    assert projector["general.architecture"] == "clip"
    assert projector["clip.vision.projection_dim"] == 576
    assert projector["general.parameter_count"] > 0
    assert info["modelfile"].count("\nFROM ") == 2


@pytest.mark.parametrize("colour", list(RGB))
def test_chat_names_the_colour(client: ollama.Client, vis: str, colour: str) -> None:
    msg = {"role": "user", "content": QUESTION, "images": [b64(colour)]}
    answer = client.chat(model=vis, messages=[msg], options=GREEDY)
    names_only(answer.message.content or "", colour)
    assert answer.done_reason in ("stop", "length")
    streamed = "".join(
        c.message.content or ""
        for c in client.chat(model=vis, messages=[msg], options=GREEDY, stream=True)
    )
    assert streamed == answer.message.content


def test_generate_with_an_image_counts_its_positions(client: ollama.Client, vis: str) -> None:
    text_only = client.generate(model=vis, prompt=QUESTION, options={**GREEDY, "num_predict": 1})
    with_image = client.generate(model=vis, prompt=QUESTION, images=[b64("blue")], options=GREEDY)
    names_only(with_image.response, "blue")
    # the image's 16 positions count in prompt_eval_count (and against num_ctx)
    assert (with_image.prompt_eval_count or 0) >= (text_only.prompt_eval_count or 0) + 16
    parts = [
        c.response
        for c in client.generate(
            model=vis, prompt=QUESTION, images=[b64("green", "gif")], options=GREEDY, stream=True
        )
    ]
    names_only("".join(parts), "green")


def test_a_follow_up_turn_about_the_same_image(client: ollama.Client, vis: str) -> None:
    first = {"role": "user", "content": QUESTION, "images": [b64("red", "jpeg")]}
    answer = client.chat(model=vis, messages=[first], options=GREEDY)
    names_only(answer.message.content or "", "red")
    turn = [first, {"role": "assistant", "content": answer.message.content or ""}]
    again = client.chat(
        model=vis, messages=[*turn, {"role": "user", "content": "Say it again."}], options=GREEDY
    )
    assert again.done and (again.prompt_eval_count or 0) > (answer.prompt_eval_count or 0)


def test_openai_image_url(server: ServerProcess, vis: str) -> None:
    oai = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused")
    url = f"data:image/png;base64,{b64('green')}"
    reply = oai.chat.completions.create(
        model=vis,
        temperature=0,
        max_tokens=12,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": url}},
                    {"type": "text", "text": QUESTION},
                ],
            }
        ],
    )
    names_only(reply.choices[0].message.content or "", "green")


def test_debug_render_only_counts_images(server: ServerProcess, vis: str) -> None:
    body = {
        "model": vis,
        "messages": [{"role": "user", "content": QUESTION, "images": [b64("red"), b64("blue")]}],
        "_debug_render_only": True,
        "stream": False,
    }
    r = httpx.post(f"{server.url}/api/chat", json=body, timeout=60)
    assert r.status_code == 200
    info = r.json()["_debug_info"]
    assert info["image_count"] == 2 and "[img-0][img-1]" in info["rendered_template"]


def test_bad_images_are_400s_naming_the_message(
    client: ollama.Client, server: ServerProcess, vis: str
) -> None:
    bad = base64.b64encode(undecodable_image()).decode()
    msgs = [
        {"role": "user", "content": "hi", "images": [b64("red")]},
        {"role": "assistant", "content": "hello"},
        {"role": "user", "content": QUESTION, "images": [bad]},
    ]
    with pytest.raises(ollama.ResponseError) as e:
        client.chat(model=vis, messages=msgs)
    assert e.value.status_code == 400 and "message 2" in e.value.error
    r = httpx.post(
        f"{server.url}/api/generate",
        json={"model": vis, "prompt": QUESTION, "images": ["not base64!"]},
        timeout=60,
    )
    assert r.status_code == 400 and "image" in r.json()["error"]
    # the runner is unharmed: the next request is answered
    ok = client.generate(model=vis, prompt=QUESTION, images=[b64("red")], options=GREEDY)
    names_only(ok.response, "red")


def test_images_to_a_text_model_are_refused(client: ollama.Client, smollm2_digest: str) -> None:
    client.create(model="textonly", files={"m.gguf": smollm2_digest})
    with pytest.raises(ollama.ResponseError) as e:
        client.generate(model="textonly", prompt=QUESTION, images=[b64("red")])
    assert e.value.status_code == 400 and "does not support vision" in e.value.error


@pytest.fixture(scope="module")
def cli(server: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    env = cli_env(server.url, tmp_path_factory.mktemp("home"))
    yield lambda *args, **kw: run_cli(args, env, **kw)


def test_create_with_two_from_lines_a_directory_and_from_a_vision_model(
    cli: Any,
    client: ollama.Client,
    server: ServerProcess,
    vis: str,
    projector: Path,
    smollm2_gguf: Path,
    tmp_path: Path,
) -> None:
    modelfile = tmp_path / "Modelfile"
    modelfile.write_text(f"FROM {smollm2_gguf}\nFROM {projector}\nSYSTEM {SYSTEM}\n")
    done = cli("create", "vis-two", "-f", str(modelfile), timeout=300)
    assert done.code == 0, done.stderr
    folder = tmp_path / "both"
    folder.mkdir()
    shutil.copy(smollm2_gguf, folder / "weights.gguf")
    shutil.copy(projector, folder / "extra.gguf")
    (folder / "Modelfile").write_text(f"FROM .\nSYSTEM {SYSTEM}\n")
    done = cli("create", "vis-dir", "-f", str(folder / "Modelfile"), timeout=300)
    assert done.code == 0, done.stderr
    client.create(model="vis-child", from_=vis, parameters={"temperature": 0})
    for name in ("vis-two", "vis-dir", "vis-child"):
        info = show(server, name)
        assert "vision" in info["capabilities"], name
        assert info["projector_info"]["general.architecture"] == "clip", name
    answer = client.chat(
        model="vis-two",
        messages=[{"role": "user", "content": QUESTION, "images": [b64("blue")]}],
        options=GREEDY,
    )
    names_only(answer.message.content or "", "blue")


def test_cli_attaches_an_image_named_in_the_prompt(
    cli: Any, vis: str, images: dict[str, Path]
) -> None:
    done = cli("run", vis, f"{QUESTION} {images['red']}", timeout=300)
    assert done.code == 0, done.stderr
    assert f"Added image '{images['red']}'" in done.stderr
    names_only(done.stdout, "red")
    shown = cli("show", vis)
    assert "Projector" in shown.stdout and "clip" in shown.stdout


def test_copy_and_delete_carry_the_projector(
    server: ServerProcess, client: ollama.Client, vis: str
) -> None:
    client.copy(vis, "vis-copy")
    copied = show(server, "vis-copy")
    assert copied["projector_info"] == show(server, vis)["projector_info"]
    client.delete("vis-copy")
    with pytest.raises(ollama.ResponseError):
        client.show("vis-copy")
    # the original keeps its projector blob (shared with the deleted copy)
    answer = client.chat(
        model=vis,
        messages=[{"role": "user", "content": QUESTION, "images": [b64("green")]}],
        options=GREEDY,
    )
    names_only(answer.message.content or "", "green")
