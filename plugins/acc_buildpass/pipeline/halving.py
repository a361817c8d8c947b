"""Multi-photo requests under limits nobody documented: split a refused request in halves.

BuildPass documents no limit on files per ``attachments/bulk-upload``, photos per
``photo-gallery/bulk-upsert`` or bytes per request. A request refused as a whole (400/413) is
split in halves until each part passes or one photo is left, which then fails with BuildPass's
message. When both halves are refused with the same message, one photo is tried alone: refused
with that message too, the request itself is wrong (not its size) and splitting stops. Later
requests of the task start at the size that passed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from acc_buildpass.errors import ApiError, BadRequest

log = logging.getLogger(__name__)

Item = TypeVar("Item")
Result = TypeVar("Result")


class RequestSize:
    """How many photos one kind of request carries, shared by the task's threads: the configured
    size until a request is refused as a whole, then the largest part that passed."""

    def __init__(self, start: int) -> None:
        self._size = max(1, start)
        self._lock = threading.Lock()

    @property
    def size(self) -> int:
        with self._lock:
            return self._size

    def passed(self, count: int) -> None:
        with self._lock:
            if count < self._size:
                log.info("requests of %d photos were refused; %d at a time from now on", self._size, count)
                self._size = count


@dataclass
class Piece(Generic[Item, Result]):
    """Photos sent in one request: its result, or why they were not sent through.

    :param refused: BuildPass refused the request as a whole (``error`` is its BadRequest)
    """

    items: list[Item]
    result: Result | None = None
    error: ApiError | None = None
    refused: bool = False


def _same(a: ApiError | None, b: ApiError | None) -> bool:
    return a is not None and b is not None and (a.status, a.body) == (b.status, b.body)


class _Halving(Generic[Item, Result]):
    def __init__(self, send: Callable[[list[Item]], Result], keep: tuple[type[ApiError], ...], what: str) -> None:
        self.send = send
        self.keep = keep
        self.what = what
        self.passed: list[int] = []  # sizes of the parts that passed
        self.split_any = False

    def attempt(self, items: list[Item]) -> Piece[Item, Result]:
        try:
            return Piece(items, result=self.send(items))
        except BadRequest as exc:
            return Piece(items, error=exc, refused=True)
        except self.keep as exc:
            return Piece(items, error=exc)

    def settle(self, piece: Piece[Item, Result]) -> list[Piece[Item, Result]]:
        """``piece`` once attempted: kept when it passed, failed or is one photo, else split."""
        if not piece.refused or len(piece.items) == 1:
            if piece.result is not None:
                self.passed.append(len(piece.items))
            return [piece]
        return self.split(piece)

    def split(self, whole: Piece[Item, Result]) -> list[Piece[Item, Result]]:
        items = whole.items
        half = len(items) // 2
        self.split_any = True
        log.warning("%s of %d photos refused (%s); trying halves", self.what, len(items), whole.error)
        first, second = self.attempt(items[:half]), self.attempt(items[half:])
        if first.refused and second.refused and _same(first.error, second.error):
            # The same refusal for both halves: the request itself, or a limit both still exceed.
            probe = first if half == 1 else self.attempt(items[:1])
            if probe.refused and _same(probe.error, first.error):
                log.warning("%s refused for one photo alone too: not a matter of size", self.what)
                return [Piece(items, error=probe.error, refused=True)]
            rest = self.settle(self.attempt(items[1:half])) if half > 1 else []
            return [*self.settle(probe), *rest, *self.settle(second)]
        return [*self.settle(first), *self.settle(second)]


def send_in_halves(
    items: list[Item],
    send: Callable[[list[Item]], Result],
    size: RequestSize,
    *,
    keep: tuple[type[ApiError], ...] = (),
    what: str = "request",
) -> list[Piece[Item, Result]]:
    """Send ``items`` in requests of at most ``size.size``, halving any refused as a whole.

    :param send: one request for the photos given; raises BadRequest when refused as a whole
    :param keep: other errors that fail a request's photos instead of the whole call
    :returns: every photo in exactly one piece, in order
    """
    pieces: list[Piece[Item, Result]] = []
    rest = items
    while rest:
        count = size.size
        chunk, rest = rest[:count], rest[count:]
        halving = _Halving(send, keep, what)
        pieces += halving.settle(halving.attempt(chunk))
        if halving.split_any and halving.passed:
            size.passed(max(halving.passed))
    return pieces
