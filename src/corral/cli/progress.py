"""Progress display for pull, push and create (Rich), laid out as Ollama's CLI shows it.

Each status the server sends without a digest becomes a spinner line (the previous spinner stops
and keeps its text); each blob digest gets one bar with its percentage, size, speed and time
left. Output goes to stderr. On a terminal the lines are redrawn in place; otherwise the final
state is printed once when the display stops.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from types import TracebackType
from typing import Any, Self

from rich.console import Console, RenderableType
from rich.live import Live
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TaskID
from rich.spinner import Spinner
from rich.table import Column, Table
from rich.text import Text

from corral.cli.format import human_bytes

__all__ = ["ProgressView", "StatusSpinner", "eta_text", "stderr_console"]


def stderr_console() -> Console:
    """A console on the current ``sys.stderr`` (made at call time, so test runners see it)."""
    return Console(file=sys.stderr, highlight=False, soft_wrap=False)


def eta_text(seconds: float) -> str:
    """Time left as Ollama's bars show it: ``59m59s`` at most two units, ``99h+`` beyond."""
    s = round(seconds)
    if s >= 100 * 3600:
        return "99h+"
    if s >= 3600:
        return f"{s // 3600}h{(s % 3600) // 60}m"
    if s >= 60:
        return f"{s // 60}m{s % 60}s"
    return f"{s}s"


class _Line(ProgressColumn):
    """One whole line per task: a spinner line, or a bar line laid out on its own."""

    def __init__(self) -> None:
        super().__init__(table_column=Column(ratio=1))
        self._spinner = Spinner("dots")
        self._bar = BarColumn(bar_width=None)

    def render(self, task: Task) -> RenderableType:
        if not task.fields.get("bar"):
            text = task.description
            if not task.fields.get("stopped"):
                frames = self._spinner.frames
                step = int(task.get_time() * 1000 / self._spinner.interval)
                text += " " + frames[step % len(frames)]
            # Long lines are cropped, so that a redraw on a terminal stays in place.
            return Text(text, no_wrap=True, overflow="ellipsis")
        total = human_bytes(task.total or 0)
        running = not task.finished
        size = f"{human_bytes(task.completed)}/{total}" if running else total
        speed = task.speed if running else None
        rate = f"{human_bytes(speed)}/s" if speed else ""
        left = max((task.total or 0) - task.completed, 0) / speed if speed else None
        grid = Table.grid(padding=(0, 1), expand=True)
        grid.add_column(no_wrap=True)
        grid.add_column(no_wrap=True, justify="right", width=4)
        grid.add_column(ratio=1, no_wrap=True)
        grid.add_column(no_wrap=True, justify="right", min_width=13)
        grid.add_column(no_wrap=True, justify="right", min_width=10)
        grid.add_column(no_wrap=True, justify="right", min_width=6)
        grid.add_row(
            task.description,
            f"{task.percentage:3.0f}%",
            self._bar.render(task),
            size,
            rate,
            eta_text(left) if left is not None else "",
        )
        return grid


class _Shown:
    """A display that is started on entering a ``with`` block and stopped on leaving it."""

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class ProgressView(_Shown):
    """Spinner lines for statuses and one bar per key (a blob digest), drawn on stderr."""

    def __init__(self, console: Console | None = None, *, transient: bool = False) -> None:
        self.console = console or stderr_console()
        self._progress = Progress(
            _Line(),
            console=self.console,
            transient=transient,
            expand=True,
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self._bars: dict[str, TaskID] = {}
        self._spinner: TaskID | None = None
        self._status: str | None = None
        self._started = False

    def start(self) -> None:
        """Nothing is drawn until the first line is added."""

    def _add(self, label: str, **fields: Any) -> TaskID:
        if not self._started:
            self._started = True
            self._progress.start()
        return self._progress.add_task(label, **fields)

    def stop(self) -> None:
        """Stop the spinner and draw the final state once."""
        if self._started:
            self.stop_spinner()
            self._started = False
            self._progress.stop()

    def stop_spinner(self) -> None:
        if self._spinner is not None:
            self._progress.update(self._spinner, stopped=True)
            self._spinner = None

    def status(self, text: str) -> None:
        """Show ``text`` on a new spinner line, unless it is the current status already."""
        if text == self._status and self._spinner is not None:
            return
        self.stop_spinner()
        self._status = text
        self._spinner = self._add(text, total=None, bar=False)

    def bar(self, key: str, label: str, total: int, completed: int) -> None:
        """Create the bar ``key`` or move it to ``completed`` of ``total`` bytes."""
        task = self._bars.get(key)
        if task is None:
            self.stop_spinner()
            self._status = None
            task = self._add(label, total=max(total, 1), completed=0, bar=True)
            self._bars[key] = task
        self._progress.update(task, total=max(total, 1), completed=min(completed, total))

    def handle(
        self,
        resp: dict[str, Any],
        label: Callable[[str, str], str],
        *,
        skip_unstarted: bool = False,
    ) -> None:
        """Show one progress object of a pull, push or create stream.

        ``label(digest, status)`` names a new bar. With ``skip_unstarted`` a digest's first
        ``completed: 0`` announcement is not drawn (Ollama's pull does the same).
        """
        status = str(resp.get("status") or "")
        digest = str(resp.get("digest") or "")
        total = int(resp.get("total") or 0)
        completed = int(resp.get("completed") or 0)
        if digest:
            if skip_unstarted and completed == 0 and digest not in self._bars:
                return
            self.bar(digest, label(digest, status), total, completed)
        elif total and status:
            self.bar("status:" + status, status, total, completed)
        elif status:
            self.status(status)


class StatusSpinner(_Shown):
    """A bare spinner on stderr while waiting for a model (drawn only on a terminal)."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or stderr_console()
        self._status: Live | None = None

    def start(self) -> None:
        if self._status is None and self.console.is_terminal:
            self._status = Live(
                Spinner("dots"),
                console=self.console,
                transient=True,
                redirect_stdout=False,
                redirect_stderr=False,
                refresh_per_second=10,
            )
            self._status.start()

    def stop(self) -> None:
        """Stop and erase the spinner (safe to call more than once)."""
        if self._status is not None:
            self._status.stop()
            self._status = None
