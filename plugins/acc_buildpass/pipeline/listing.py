"""A project's ACC photos in a window, listed in time slices at once when the window is big.

ACC's pages are serial (each holds the cursor to the next) and hold 50 records: 20,000 photos
are 400 requests one after another. So the first page of the whole window is read as always,
and when ACC says there is more and the first page's photos (oldest first) span so little of the
window that it holds :data:`PAGES_A_SLICE` pages or more a slice, the window is listed again as
sub-windows of equal length, each paged by its own thread, their records merged as they arrive:

- a window of one page costs one request, as before; a few pages are read one after another as
  before; a sliced window costs at most a page more per slice, and the first page's second;
- each sub-window is half-open and applied exactly on our side (``iter_photos``), so a photo is
  in one slice whatever ACC does with range ends; the first page's records are left out by id;
- correctness depends on no reply order (an unsorted reply only makes the guess of the window's
  size wrong), and the merged order is arrival order: nothing downstream needs createdAt order.
"""

from __future__ import annotations

import queue
import threading
from collections import Counter
from collections.abc import Generator, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

from acc_buildpass.clients.acc import AccClient
from acc_buildpass.errors import InvalidPhoto
from acc_buildpass.models import AccPhoto

Item = AccPhoto | InvalidPhoto
PAGES_A_SLICE = 4  # a window is sliced only into slices of about this many pages or more
_BUFFERED = 2_000  # records merged but not yet taken: bounds memory whatever the window holds
_END = object()


class _Failed:
    """A listing's error, handed from its thread to the reader."""

    def __init__(self, error: Exception) -> None:
        self.error = error


def photos(acc: AccClient, project_id: str, start: datetime, end: datetime, slices: int) -> Iterator[Item]:
    """Every record ACC lists for ``project_id`` created in [start, end), each once.

    :param slices: at most this many listings at once, once the first page shows the window
        holds :data:`PAGES_A_SLICE` pages for each (the time its photos span, from the window's start)
    :raises NotFound: ACC does not know the project
    :raises ApiError: a page could not be read
    """
    pages = 0

    def counted(_: int) -> None:
        nonlocal pages
        pages += 1

    first = _FirstPage(start)
    listing = acc.iter_photos(project_id, start, end, on_page=counted)
    for item in listing:
        if pages > 1 and first.open:
            first.open = False
            worth = min(slices, int(first.pages_in(end) // PAGES_A_SLICE))
            if worth > 1:
                if isinstance(listing, Generator):
                    listing.close()
                yield from _sliced(acc, project_id, _bounds(start, end, worth), first)
                return
        if first.open:
            first.add(item)
        yield item


class _FirstPage:
    """What the first page held: to leave out of the slices, and to guess the window's size."""

    def __init__(self, start: datetime) -> None:
        self.open = True
        self.start = start
        self.latest = start
        self.yielded: set[Any] = set()  # ids; unreadable records' too (two slices may list those)
        self.anonymous: Counter[str] = Counter()  # unreadable records with no id, by reason

    def add(self, item: Item) -> None:
        if isinstance(item, InvalidPhoto) and item.photo_id is None:
            self.anonymous[item.reason] += 1
            return
        self.yielded.add(_key(item))
        if isinstance(item, AccPhoto):
            self.latest = max(self.latest, item.created_at)

    def pages_in(self, end: datetime) -> float:
        """The window's pages, were its photos as dense as the first page's (oldest first)."""
        covered = self.latest - self.start
        return float("inf") if covered <= timedelta(0) else (end - self.start) / covered


def _sliced(
    acc: AccClient, project_id: str, bounds: list[tuple[datetime, datetime]], first: _FirstPage
) -> Iterator[Item]:
    for item in merged([acc.iter_photos(project_id, a, b) for a, b in bounds]):
        if isinstance(item, InvalidPhoto) and item.photo_id is None:
            if first.anonymous[item.reason] > 0:
                first.anonymous[item.reason] -= 1  # yielded with the first page
                continue
        elif (key := _key(item)) in first.yielded:
            continue
        elif isinstance(item, InvalidPhoto):
            first.yielded.add(key)  # a photo is in one slice only; an unreadable record may be in two
        yield item


def _key(item: Item) -> Any:
    """What makes a record the same one on two listings (unreadable records without an id are
    told apart by their reason only)."""
    return ("invalid", item.photo_id) if isinstance(item, InvalidPhoto) else item.id


def _bounds(start: datetime, end: datetime, slices: int) -> list[tuple[datetime, datetime]]:
    """``slices`` sub-windows of [start, end) of equal length, in whole seconds where it can."""
    step = max(timedelta(seconds=1), (end - start) / slices)
    cuts = [start + step * n for n in range(slices) if start + step * n < end]
    cuts = [cuts[0]] + [c.replace(microsecond=0) for c in cuts[1:]]
    return list(zip(cuts, [*cuts[1:], end], strict=True))


def merged(listings: list[Iterator[Item]]) -> Iterator[Item]:
    """The records of every listing, each drained by a thread of its own, in arrival order.

    The first listing to fail raises here, once the others have stopped; closing the iterator
    stops every thread at its next record.
    """
    out: queue.Queue[Any] = queue.Queue(maxsize=_BUFFERED)
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                out.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def drain(listing: Iterator[Item]) -> None:
        try:
            for item in listing:
                if not put(item):
                    return
        except Exception as exc:  # the reader raises it
            put(_Failed(exc))
        finally:
            put(_END)

    pool = ThreadPoolExecutor(max(1, len(listings)), thread_name_prefix="listing-slice")
    try:
        for listing in listings:
            pool.submit(drain, listing)
        ended = 0
        while ended < len(listings):
            item = out.get()
            if item is _END:
                ended += 1
            elif isinstance(item, _Failed):
                raise item.error
            else:
                yield item
    finally:
        stop.set()
        pool.shutdown(wait=True)
