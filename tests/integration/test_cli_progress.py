"""``acc-buildpass plan`` with stderr on a terminal: a progress bar there, stdout exactly as without one."""

from __future__ import annotations

import fcntl
import json
import os
import re
import struct
import subprocess
import sys
import termios
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sandbox.stack import Stack

CLI = Path(sys.executable).parent / "acc-buildpass"
DAY = datetime(2026, 4, 21, tzinfo=UTC)


def read_all(fd: int) -> bytes:
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the terminal's other end is closed and drained
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def frames(screen: str) -> list[str]:
    """The bar's successive drawings as a person sees them: escape sequences (colours, the cursor,
    erasing) taken out, one drawing per carriage return."""
    return [frame.strip("\n") for frame in re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen).split("\r")]


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a pseudo-terminal as on Linux")
def test_plan_draws_a_bar_on_a_terminal_and_keeps_stdout_parseable(stack: Stack) -> None:
    project = str(uuid.uuid4())
    start, end = DAY, DAY + timedelta(days=1)
    stack.seed_acc(project, count=120, start=start.strftime("%Y-%m-%dT%H:%M:%S"), end=end.strftime("%Y-%m-%dT%H:%M:%S"))
    env = {**stack.env(stack.config([project], prefix=f"tty-{project[:8]}")), "TERM": "xterm"}
    window = ["plan", "--start", start.isoformat(), "--end", end.isoformat(), "--json"]

    piped = subprocess.run([str(CLI), *window], env=env, capture_output=True, text=True, timeout=300, check=False)
    assert piped.returncode == 0, piped.stderr
    assert "\r" not in piped.stderr and "plan: 120 photo(s) listed in 3 page(s) [1/1 projects]" in piped.stderr

    controller, terminal = os.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 200, 0, 0))  # 200 columns: no line cut
    try:
        proc = subprocess.Popen([str(CLI), *window], env=env, stdout=subprocess.PIPE, stderr=terminal)
        os.close(terminal)
        on_terminal = read_all(controller).decode()
        stdout, _ = proc.communicate(timeout=300)
    finally:
        os.close(controller)
    assert proc.returncode == 0, on_terminal
    drawn = frames(on_terminal)
    assert "\r\x1b[2K" in on_terminal  # redrawn in place
    listed = re.escape(f"{project}: 1 pages, 50 records listed")
    assert any(re.fullmatch(rf"plan .{{24}}   0% 0/1 projects {listed}", frame) for frame in drawn), drawn
    finished = r"plan (?:━{24}|-{24}) 100% 1/1 projects 120 photo\(s\) listed in 3 page\(s\)"  # - when not UTF-8
    assert any(re.fullmatch(finished, frame) for frame in drawn), drawn
    # stdout is the same JSON document whether stderr is a terminal or not
    assert json.loads(stdout) == json.loads(piped.stdout)
    assert json.loads(stdout)["projects"][0]["found"] == 120
