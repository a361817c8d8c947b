from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from acc_buildpass.errors import InvalidPhoto
from acc_buildpass.models import AccPhoto, Window, parse_time


@pytest.mark.parametrize(
    "text",
    ["2021-03-14T10:20:33", "2021-03-14T10:20:33Z", "2021-03-14T12:20:33+02:00", "2021-03-14T10:20:33.000Z"],
)
def test_timestamps_with_and_without_zone_are_utc(text: str) -> None:
    assert parse_time(text) == datetime(2021, 3, 14, 10, 20, 33, tzinfo=UTC)


def test_window_is_half_open() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    window = Window(start, start + timedelta(hours=1))
    assert start in window
    assert start + timedelta(hours=1) not in window
    assert window.id == "20260101T000000Z--20260101T010000Z"
    with pytest.raises(ValueError, match="not after"):
        Window(start, start)


def test_record_with_offset_is_converted() -> None:
    raw = {"id": "abc-1", "createdAt": "2021-03-14T10:20:33-05:00", "mediaType": "NORMAL", "size": 3}
    photo = AccPhoto.from_api(raw, "proj")
    assert photo.created_at == datetime(2021, 3, 14, 15, 20, 33, tzinfo=UTC)
    assert photo.created_at.tzinfo is not None
    assert photo.title == "" and photo.taken_at is None


@pytest.mark.parametrize(("size", "read"), [(0, 0), (None, None), ("big", None), (-3, None), (True, None), (2.0, 2)])
def test_a_size_that_is_not_a_byte_count_is_unknown_not_a_failure(size: object, read: int | None) -> None:
    raw = {"id": "a1", "createdAt": "2021-03-14T10:20:33", "mediaType": "NORMAL", "size": size}
    assert AccPhoto.from_api(raw, "proj").size == read


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ({"createdAt": "2021-03-14T10:20:33"}, "invalid id"),
        ({"id": "../x", "createdAt": "2021-03-14T10:20:33"}, "invalid id"),
        ({"id": "a1"}, "createdAt"),
        ({"id": "a1", "createdAt": "yesterday"}, "createdAt"),
        ("not an object", "not an object"),
    ],
)
def test_bad_records_name_the_photo_and_the_reason(raw: object, reason: str) -> None:
    with pytest.raises(InvalidPhoto, match=reason):
        AccPhoto.from_api(raw, "proj")


def test_other_offsets_round_trip() -> None:
    moment = datetime(2026, 5, 1, 9, 0, tzinfo=timezone(timedelta(hours=10)))
    assert parse_time(moment.isoformat()) == moment
