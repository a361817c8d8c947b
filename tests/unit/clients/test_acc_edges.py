"""The ACC client at the edges the docs leave open, against the ACC emulator's worst answers."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sandbox
from acc_buildpass.errors import ApiError
from acc_buildpass.models import AccPhoto, parse_time

from tests.unit.pipeline.emulated import acc_client, admin

PROJECT = "5b0e9f7c-7d1e-4c2a-9a49-1f0c2e3d4a5b"
START, END = datetime(2024, 3, 1, tzinfo=UTC), datetime(2024, 3, 1, 0, 1, 30, tzinfo=UTC)


def test_a_cursor_refused_mid_listing_resumes_from_the_last_created_at(box: sandbox.Sandbox, tmp_path: Path) -> None:
    # 230 photos over 90 whole seconds: every second holds two or three, so ties straddle pages.
    body = {"project_id": PROJECT, "count": 230, "start": "2024-03-01T00:00:00", "end": "2024-03-01T00:01:30"}
    admin(box.acc_url, "/seed", body)
    admin(box.acc_url, "/answers", {"cursor": "breaks"})
    truth = admin(box.acc_url, f"/photos?project_id={PROJECT}")["photos"]
    expected = sorted(p["id"] for p in truth if START <= parse_time(p["createdAt"]) < END)

    listed = list(acc_client(box, tmp_path).iter_photos(PROJECT, START, END))
    photos = [p for p in listed if isinstance(p, AccPhoto)]
    ids = [p.id for p in photos]
    assert len(listed) == len(ids)
    assert [i for i, n in Counter(ids).items() if n > 1] == []  # none twice
    assert sorted(ids) == expected  # none skipped
    assert [p.created_at for p in photos] == sorted(p.created_at for p in photos)  # oldest first, still
    assert admin(box.acc_url, "/stats")["events"]["cursor_refused"] >= 2


def test_a_cursor_that_keeps_being_refused_without_progress_fails_the_listing(
    box: sandbox.Sandbox, tmp_path: Path
) -> None:
    # 120 photos in one second: each resume lists the same second again and never gets past it.
    body = {"project_id": PROJECT, "count": 120, "start": "2024-03-01T00:00:10", "end": "2024-03-01T00:00:11"}
    admin(box.acc_url, "/seed", body)
    admin(box.acc_url, "/answers", {"cursor": "breaks"})

    with pytest.raises(ApiError, match="cursor"):
        list(acc_client(box, tmp_path).iter_photos(PROJECT, START, END))
