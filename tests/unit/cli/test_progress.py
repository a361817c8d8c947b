"""The progress helper: a bar redrawn in place on a terminal, plain periodic lines anywhere else."""

from __future__ import annotations

import io
import os
import sys

import pytest
from acc_buildpass.cli.progress import Progress


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
    draws = screen.getvalue().split("\r")[1:]
    assert len(draws) == 2  # every update is drawn on a terminal, whatever `every` says
    assert draws[0] == "replay [######..................]  25% 1/4 photos  batch 1/4\x1b[K"
    assert draws[1].startswith("replay [############............]  50% 2/4 photos  batch 2/4")
    progress.finish("done")
    assert screen.getvalue().endswith("replay [########################] 100% 4/4 photos  done\x1b[K\n")


def test_a_bar_cut_short_by_an_error_leaves_the_next_line_clean(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TERM", "xterm")
    screen = Terminal()
    with pytest.raises(RuntimeError), Progress("plan", total=3, stream=screen) as progress:
        progress.update(1, "project a")
        raise RuntimeError("S3 down")
    assert screen.getvalue().endswith("\x1b[K\n")


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
    try:
        with open(terminal, "w", closefd=False) as stream:
            progress = Progress("replay", total=2, unit="photos", stream=stream)
            assert progress.bar
            progress.update(1, "batch 1/2")
        seen = os.read(controller, 4096).decode()
    finally:
        os.close(controller)
        os.close(terminal)
    assert seen.startswith("\rreplay [############............]  50% 1/2 photos  batch 1/2")
