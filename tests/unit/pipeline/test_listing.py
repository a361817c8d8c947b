"""A big window is listed in time slices at once, each photo once, against the ACC emulator
(whose range ends are inclusive, the worst answer: a photo on a slice's edge is listed by both
slices), and a small one costs its one page as before."""

from __future__ import annotations

import itertools
import threading
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sandbox
from acc_buildpass.errors import ApiError, InvalidPhoto
from acc_buildpass.pipeline import listing
from acc_buildpass.pipeline.listing import _bounds

from tests.fakes import StubAcc
from tests.unit.pipeline.emulated import PROJECT, WINDOW, acc_client, acc_truth, admin, route_counts
from tests.unit.pipeline.test_extract import WINDOW as DAY
from tests.unit.pipeline.test_extract import photo

SLICES = 4


def _on_the_edges() -> list[dict[str, Any]]:
    """A photo at each slice's first second, and one a second before it."""
    records = []
    for n, (start, _) in enumerate(_bounds(WINDOW.start, WINDOW.end, SLICES)):
        for m, at in enumerate((start, start - timedelta(seconds=1))):
            if WINDOW.start <= at:
                stamp = at.strftime("%Y-%m-%dT%H:%M:%S")
                records.append(
                    {
                        "id": f"edge-{n}-{m}",
                        "projectId": PROJECT,
                        "mediaType": "NORMAL",
                        "size": 10,
                        "title": "edge",
                        "createdAt": stamp,
                        "takenAt": stamp,
                    }
                )
    return records


@pytest.mark.parametrize("answers", ["default", "worst"])  # worst: every second cursor refused, among others
def test_a_big_window_is_listed_in_slices_each_photo_once(box: sandbox.Sandbox, tmp_path: Path, answers: str) -> None:
    admin(box.acc_url, "/answers", {"preset": answers})
    admin(box.acc_url, "/seed", {"project_id": PROJECT, "count": 400})
    admin(box.acc_url, "/photos", {"project_id": PROJECT, "photos": _on_the_edges()})
    truth = set(acc_truth(box))

    listed = Counter(p.id for p in listing.photos(acc_client(box, tmp_path), PROJECT, WINDOW.start, WINDOW.end, SLICES))

    assert set(listed) == truth and len(truth) == 407
    assert max(listed.values()) == 1
    if answers == "default":  # 9 pages one after another; at most the probe's 2nd page and a page a slice more
        assert 9 < route_counts(box.acc_url)["photos:filter"] <= 9 + 1 + SLICES


@pytest.mark.parametrize(("count", "requests"), [(50, 1), (120, 3)])
def test_a_window_of_a_few_pages_costs_its_pages(
    box: sandbox.Sandbox, tmp_path: Path, count: int, requests: int
) -> None:
    # 120 photos spread over the month: the first page spans about 40% of it, too few pages to slice
    admin(box.acc_url, "/seed", {"project_id": PROJECT, "count": count})
    listed = list(listing.photos(acc_client(box, tmp_path), PROJECT, WINDOW.start, WINDOW.end, SLICES))
    assert len({p.id for p in listed}) == len(listed) == count
    assert route_counts(box.acc_url)["photos:filter"] == requests


class _SlicesMeet(StubAcc):
    """The listings after the first wait until all the slices have begun: listed one after
    another, the first slice would wait alone and break the barrier. ``fail`` slice raises."""

    def __init__(self, items: list[Any], fail: int | None = None) -> None:
        super().__init__(items, page=10)
        self.barrier = threading.Barrier(SLICES, timeout=30)
        self.fail = fail
        self.begun = 0
        self.lock = threading.Lock()

    def iter_photos(self, *args: Any, **kwargs: Any) -> Any:
        with self.lock:
            n, self.begun = self.begun, self.begun + 1
        if n:
            self.barrier.wait()
            if n == self.fail:
                raise ApiError("photos:filter answered 500", status=500)
        yield from super().iter_photos(*args, **kwargs)


def test_slices_are_listed_at_once_and_a_failing_one_fails_the_listing() -> None:
    photos = [photo(n * 4) for n in range(300)]  # 20 hours of the day
    acc = _SlicesMeet(photos)
    listed = [p.id for p in listing.photos(acc, "p", DAY.start, DAY.end, SLICES)]  # type: ignore[arg-type]
    assert sorted(listed) == sorted(p.id for p in photos)
    assert len(acc.listings) == 1 + SLICES

    with pytest.raises(ApiError, match="answered 500"):
        list(listing.photos(_SlicesMeet(photos, fail=2), "p", DAY.start, DAY.end, SLICES))  # type: ignore[arg-type]
    assert not [t for t in threading.enumerate() if t.name.startswith("listing-slice")]


def test_an_unreadable_record_two_listings_return_is_yielded_once() -> None:
    # The stub returns unreadable records to every listing, as ACC may to two neighbouring slices.
    items: list[Any] = [InvalidPhoto("bad-1", "no mediaType"), *(photo(n * 4) for n in range(120))]
    items.insert(80, InvalidPhoto("bad-2", "no mediaType"))  # not on the first page
    listed = list(listing.photos(_SlicesMeet(items), "p", DAY.start, DAY.end, SLICES))  # type: ignore[arg-type]
    unreadable = [i.photo_id for i in listed if isinstance(i, InvalidPhoto)]
    assert sorted(unreadable) == ["bad-1", "bad-2"]
    assert len(listed) == 122


def test_slices_cut_the_window_in_whole_seconds_and_cover_it() -> None:
    start = WINDOW.start + timedelta(microseconds=250)
    bounds = _bounds(start, WINDOW.end, 3)
    assert bounds[0][0] == start and bounds[-1][1] == WINDOW.end
    assert all(a < b and b == c for (a, b), (c, _) in itertools.pairwise(bounds))
    assert all(b.microsecond == 0 for _, b in bounds)
    assert len(_bounds(start, start + timedelta(seconds=2), 8)) == 2  # never under a second
