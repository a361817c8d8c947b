"""The progress helper: a bar redrawn in place on a terminal, plain periodic lines anywhere else."""

from __future__ import annotations

import fcntl
import io
import os
import re
import select
import struct
import sys
import termios

import pytest
from acc_buildpass.cli.progress import Progress


def frames(screen: str) -> list[str]:
    """The bar's successive drawings, as a person sees them: rich's escape sequences (colours,
    cursor hidden and shown, line erased) taken out, one drawing per carriage return."""
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen).split("\r")


def bar(filled: int) -> str:
    """A pattern for rich's bar of 24 cells, ``filled`` of them done: the rest is dim, or blank
    without colours (NO_COLOR)."""
    return rf"━{{{filled}}}(?:╺━{{{23 - filled}}}| {{{24 - filled}}})"


def read_until(controller: int, end: str) -> str:
    """What the terminal shows, up to ``end``: rich writes a drawing in more than one piece."""
    seen = ""
    while end not in seen and select.select([controller], [], [], 10)[0]:
        seen += os.read(controller, 4096).decode()
    return seen


class Terminal(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def test_on_a_terminal_one_bar_is_redrawn_in_place_and_ends_with_a_new_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TERM", "xterm")
    screen = Terminal()
    progress = Progress("replay", total=4, unit="photos", stream=screen, every=100)
    assert progress.bar
    progress.update(1, "batch 1/4")
    progress.update(2, "batch 2/4")
    assert "\n" not in screen.getvalue()  # redrawn, never scrolled
    draws = frames(screen.getvalue())
    assert len(draws) == 2  # every update is drawn on a terminal, whatever `every` says
    assert re.fullmatch(rf"replay {bar(6)}  25% 1/4 photos batch 1/4", draws[0])  # a quarter done
    assert re.fullmatch(rf"replay {bar(12)}  50% 2/4 photos batch 2/4", draws[1])
    assert "\r\x1b[2K" in screen.getvalue()  # each redraw erases what a longer previous line left
    progress.finish("done")
    assert frames(screen.getvalue())[-1] == "replay " + "━" * 24 + " 100% 4/4 photos done\n"


def test_on_a_narrow_terminal_what_is_under_way_is_cut_short(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TERM", "xterm")
    monkeypatch.setenv("COLUMNS", "60")  # the width when the stream is no real terminal
    screen = Terminal()
    with Progress("plan", total=4, unit="projects", stream=screen) as progress:
        progress.update(1, "a project with a very long name: 12 pages, 600 records listed")
    (drawn,) = frames(screen.getvalue())[:1]
    assert len(drawn) == 60 and drawn.endswith("…")
    assert re.match(rf"plan {bar(6)}  25% 1/4 projects a project w", drawn)


def test_a_bar_cut_short_by_an_error_leaves_the_next_line_clean(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TERM", "xterm")
    screen = Terminal()
    with pytest.raises(RuntimeError), Progress("plan", total=3, stream=screen) as progress:
        progress.update(1, "project a")
        raise RuntimeError("S3 down")
    assert frames(screen.getvalue())[-1].startswith("plan ")  # the bar as the error left it
    assert frames(screen.getvalue())[-1].endswith(" 1/3 project a\n")
    assert screen.getvalue().endswith("\x1b[?25h")  # and the cursor rich hid is shown again


def test_elsewhere_a_plain_line_every_n_updates_and_always_the_last() -> None:
    log = io.StringIO()
    progress = Progress("plan", total=2, unit="projects", stream=log, every=2)
    assert not progress.bar
    for page in range(1, 6):
        progress.update(0, f"p1: {page} pages")
    progress.finish("5 photo(s) listed")
    assert log.getvalue().splitlines() == [
        "plan: p1: 2 pages [0/2 projects]",
        "plan: p1: 4 pages [0/2 projects]",
        "plan: 5 photo(s) listed [2/2 projects]",
    ]
    assert "\r" not in log.getvalue() and "\x1b" not in log.getvalue()


def test_lines_to_a_logger_are_never_a_bar_even_beside_a_terminal() -> None:
    lines: list[str] = []
    progress = Progress("replay", stream=Terminal(), write_line=lines.append)
    assert not progress.bar
    progress.update(3, "batch 2/2")
    progress.finish()
    assert lines == ["replay: batch 2/2 [3]", "replay: 0"]


def test_a_dumb_terminal_gets_plain_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TERM", "dumb")
    screen = Terminal()
    Progress("plan", total=1, stream=screen).update(0, "listing")
    assert screen.getvalue() == "plan: listing [0/1]\n"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a pseudo-terminal as on Linux")
def test_a_real_pseudo_terminal_is_detected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TERM", "xterm")
    controller, terminal = os.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))  # 80 columns: no line cut
    try:
        with open(terminal, "w", closefd=False) as stream:
            progress = Progress("replay", total=2, unit="photos", stream=stream)
            assert progress.bar
            progress.update(1, "batch 1/2")
        seen = read_until(controller, "batch 1/2")
    finally:
        os.close(controller)
        os.close(terminal)
    assert re.fullmatch(rf"replay {bar(12)}  50% 1/2 photos batch 1/2", frames(seen)[0].rstrip("\r\n"))
