"""Progress of long work (listing a window, replaying batches), for a person or for a log.

On a terminal, one bar redrawn in place; anywhere else (a pipe, a file, a task log), a plain
line every few steps, so logs stay readable and nothing is redrawn into them. Progress never
goes to stdout: the commands' output (a table, ``--json``) stays parseable.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from typing import TextIO

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
        self._drawn = False

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
            self._emit("\n")
            self._drawn = False
        else:
            self._line(done, text)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._drawn:  # the work stopped half way (an error): what follows starts on its own line
            self._emit("\n")
            self._drawn = False

    def _count(self, done: int) -> str:
        unit = f" {self.unit}" if self.unit else ""
        return f"{done}/{self.total}{unit}" if self.total is not None else f"{done}{unit}"

    def _line(self, done: int, text: str) -> None:
        line = f"{self.prefix}: {text} [{self._count(done)}]" if text else f"{self.prefix}: {self._count(done)}"
        if self._write_line is not None:
            self._write_line(line)
        else:
            self._emit(line + "\n")

    def _draw(self, done: int, text: str) -> None:
        if self.total:
            filled = min(BAR_WIDTH, BAR_WIDTH * max(done, 0) // self.total)
            bar = f" [{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {100 * done // self.total:3d}%"
        else:
            bar = ""
        line = f"{self.prefix}{bar} {self._count(done)}" + (f"  {text}" if text else "")
        width = _columns(self._stream)
        # \r back to the line's start, \x1b[K clears what a longer previous line left
        self._emit("\r" + line[: max(width - 1, 10)] + "\x1b[K")
        self._drawn = True

    def _emit(self, text: str) -> None:
        if self._stream is None:
            return
        try:
            self._stream.write(text)
            self._stream.flush()
        except (OSError, ValueError):  # a closed or broken stderr must not fail the work
            pass


def _columns(stream: TextIO | None) -> int:
    """The width of the terminal the bar is drawn on (stdout may be a pipe while stderr is not)."""
    try:
        columns = os.get_terminal_size(stream.fileno()).columns if stream is not None else 0
    except (AttributeError, OSError, ValueError):  # not a real file (a test's stream)
        columns = 0
    return columns or shutil.get_terminal_size((100, 24)).columns


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty() and os.environ.get("TERM") != "dumb"
    except (AttributeError, ValueError):
        return False
