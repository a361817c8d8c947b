"""Progress of long work (listing a window, replaying batches), for a person or for a log.

On a terminal, one bar redrawn in place (drawn by rich); anywhere else (a pipe, a file, a task
log), a plain line every few steps, so logs stay readable and nothing is redrawn into them.
Progress never goes to stdout: the commands' output (a table, ``--json``) stays parseable.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable
from typing import TextIO

from rich.console import Console, RenderableType
from rich.progress import BarColumn, ProgressColumn, Task, TaskID, TaskProgressColumn, TextColumn
from rich.progress import Progress as RichProgress
from rich.table import Column
from rich.text import Text

BAR_WIDTH = 24


class Progress:
    """Progress of one piece of work, ``done`` of ``total`` ``unit`` (total may be unknown).

    :param prefix: names the work: ``plan``, ``replay``
    :param stream: where to draw; a bar when it is a terminal, else plain lines
    :param write_line: where plain lines go instead of ``stream`` (a logger's ``info``); never a bar
    :param every: a plain line on every ``every``-th update (the last one is always shown)
    """

    def __init__(
        self,
        prefix: str,
        *,
        total: int | None = None,
        unit: str = "",
        stream: TextIO | None = None,
        write_line: Callable[[str], None] | None = None,
        every: int = 1,
    ) -> None:
        self.prefix = prefix
        self.total = total
        self.unit = unit
        self.every = max(every, 1)
        self._stream = stream
        self._write_line = write_line
        self.bar = write_line is None and stream is not None and _is_terminal(stream)
        self._updates = 0
        self._shown: RichProgress | None = None  # the bar while it is on screen
        self._task = TaskID(0)  # the one task of the bar shown

    def update(self, done: int, text: str = "") -> None:
        """Where the work is: ``done`` units finished; ``text`` says what is under way."""
        self._updates += 1
        if self.bar:
            self._draw(done, text)
        elif self._updates % self.every == 0:
            self._line(done, text)

    def finish(self, text: str = "") -> None:
        """The work is over: a full bar and a new line, or one last plain line."""
        done = self.total if self.total is not None else 0
        if self.bar:
            self._draw(done, text)
            self._close()
        else:
            self._line(done, text)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self._close()  # the work stopped half way (an error): what follows starts on its own line

    def _count(self, done: int) -> str:
        unit = f" {self.unit}" if self.unit else ""
        return f"{done}/{self.total}{unit}" if self.total is not None else f"{done}{unit}"

    def _line(self, done: int, text: str) -> None:
        line = f"{self.prefix}: {text} [{self._count(done)}]" if text else f"{self.prefix}: {self._count(done)}"
        if self._write_line is not None:
            self._write_line(line)
        elif self._stream is not None:
            try:
                self._stream.write(line + "\n")
                self._stream.flush()
            except (OSError, ValueError):  # a closed or broken stderr must not fail the work
                pass

    def _draw(self, done: int, text: str) -> None:
        assert self._stream is not None  # a bar is drawn only on a terminal stream
        total, count, done = self.total or None, self._count(done), max(done, 0)
        try:
            if self._shown is None:  # the first draw starts rich's live display, which draws once
                self._shown = _bar(self._stream)
                self._task = self._shown.add_task(self.prefix, total=total, completed=done, count=count, text=text)
                self._shown.start()
                return
            self._shown.console.width = _columns(self._stream)  # the terminal may have been resized
            self._shown.update(self._task, total=total, completed=done, count=count, text=text, refresh=True)
        except (OSError, ValueError):  # a closed or broken stderr must not fail the work
            pass

    def _close(self) -> None:
        """Leave the bar as last drawn, end its line and show the cursor again."""
        shown, self._shown = self._shown, None
        if shown is not None:
            with contextlib.suppress(OSError, ValueError):
                shown.stop()


class _Bar(ProgressColumn):
    """Rich's bar, left out while the total is unknown (rich would pulse, and nothing here animates)."""

    def __init__(self) -> None:
        super().__init__(table_column=_kept())
        self._bar = BarColumn(bar_width=BAR_WIDTH)

    def render(self, task: Task) -> RenderableType:
        return self._bar.render(task) if task.total else Text()


class _Doing(ProgressColumn):
    """What is under way: the column that gives way, cut short, when the terminal is narrow."""

    def render(self, task: Task) -> Text:
        return Text(task.fields["text"], no_wrap=True, overflow="ellipsis")


def _bar(stream: TextIO) -> RichProgress:
    """One line: prefix, bar, percentage, count (as the plain lines have it), what is under way.

    Refreshed by :meth:`Progress.update` only, so each update is one redraw and no thread runs;
    stdout and stderr are left alone (the commands' output and Airflow's logs go there).
    """
    console = Console(file=stream, width=_columns(stream), force_terminal=True, force_jupyter=False, highlight=False)
    return RichProgress(
        TextColumn("{task.description}", markup=False, table_column=_kept()),
        _Bar(),
        TaskProgressColumn(table_column=_kept()),
        TextColumn("{task.fields[count]}", markup=False, table_column=_kept()),
        _Doing(),
        console=console,
        auto_refresh=False,
        redirect_stdout=False,
        redirect_stderr=False,
    )


def _kept() -> Column:
    """A column that keeps its width: only what is under way is cut on a narrow terminal."""
    return Column(no_wrap=True)


def _columns(stream: TextIO) -> int:
    """The width of the terminal the bar is drawn on (stdout may be a pipe while stderr is not)."""
    try:
        columns = os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, OSError, ValueError):  # not a real file (a test's stream)
        columns = 0
    return columns or shutil.get_terminal_size((100, 24)).columns


def _is_terminal(stream: TextIO) -> bool:
    """A terminal that can redraw a line: rich, too, draws nothing in place on these two."""
    try:
        return stream.isatty() and os.environ.get("TERM", "").lower() not in ("dumb", "unknown")
    except (AttributeError, ValueError):
        return False
