"""``acc-buildpass plan`` (acc_buildpass.pipeline.dry_run) with a stub ACC client and an in-memory S3.

The real command, against the emulators and SeaweedFS, is tested in tests/integration/test_cli.py.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from acc_buildpass.cli import render
from acc_buildpass.config import PipelineConfig
from acc_buildpass.errors import ConfigError, InvalidPhoto
from acc_buildpass.models import AccPhoto, Window
from acc_buildpass.pipeline import dry_run
from acc_buildpass.storage import Layout, Store

from tests.fakes import MemoryS3, StubAcc

PROJECT = "36c0838c-0360-4cfa-b2c6-85e0056ec7e8"
START = datetime(2026, 3, 2, tzinfo=UTC)
WINDOW = Window(START, START + timedelta(days=1))


def photo(n: int, **changes: Any) -> AccPhoto:
    base = AccPhoto(
        id=f"photo-{n:04d}",
        project_id=PROJECT,
        title=f"Slab {n}",
        description="",
        size=1000 + n,
        media_type="NORMAL",
        created_at=START + timedelta(minutes=n),
        taken_at=None,
        deleted_at=None,
    )
    return replace(base, **changes)


def config(**extra: Any) -> PipelineConfig:
    return PipelineConfig.from_variable(
        {
            "staging_bucket": "staging",
            "staging_prefix": "t",
            "projects": [{"acc_project_id": PROJECT, "builder_id": "buil_demo", "buildpass_project_id": "proj_demo"}],
            **extra,
        }
    )


def test_plan_counts_like_extraction_and_trusts_only_created_ledger_entries() -> None:
    cfg = config()
    store = Store(MemoryS3(page=2), Layout("staging", "t"))
    for n, state in ((1, "created"), (2, "created"), (3, "intent")):
        store.put_json(store.layout.ledger("buil_demo", "proj_demo", f"photo-{n:04d}"), {"state": state})
    store.put_json(store.layout.ledger("buil_demo", "proj_other", "photo-0004"), {"state": "created"})
    writes = store.s3.writes
    listing: list[AccPhoto | InvalidPhoto] = [
        photo(1),
        photo(2),
        photo(3),  # only an intent in the ledger: still to copy
        photo(4),  # in the ledger of another BuildPass project: still to copy here
        photo(5, size=None),
        photo(6, deleted_at=START),
        photo(7, media_type="VIDEO"),
        photo(8, media_type="HOLOGRAM"),  # a mediaType ACC does not list today: skipped, never failed
        photo(2),  # listed twice
        InvalidPhoto(None, "invalid id None (missing)"),
    ]
    seen: list[tuple[int, int]] = []
    acc = StubAcc(listing, page=3)
    plans = dry_run.plan(acc, store, cfg, WINDOW, lambda m, pages, records: seen.append((pages, records)))  # type: ignore[arg-type]
    assert acc.listings == [(PROJECT, WINDOW.start, WINDOW.end)]
    [result] = plans
    assert (result.found, result.eligible, result.already, result.to_copy) == (9, 5, 2, 3)
    assert result.to_copy_bytes == 1003 + 1004 and result.unknown_size == 1
    assert result.skipped == {
        "deleted in ACC": 1,
        "mediaType VIDEO not copied": 1,
        "mediaType HOLOGRAM not copied": 1,
    }
    assert result.will_fail == {"unreadable ACC record: invalid id None (missing)": 1}
    assert seen == [(1, 3), (2, 6), (3, 9), (4, 10)]
    assert store.s3.writes == writes  # a dry run writes nothing

    data = dry_run.plan_json(WINDOW, plans)
    assert data["window"] == {
        "start": "2026-03-02T00:00:00Z",
        "end": "2026-03-03T00:00:00Z",
        "id": "20260302T000000Z--20260303T000000Z",
    }
    assert data["totals"]["to_copy"] == 3 and data["totals"]["skipped"] == 3 and data["totals"]["will_fail"] == 1
    table = render.render_plan(WINDOW, plans)
    assert "(+1 of unknown size)" in table and f"  {PROJECT}: 1 will fail: unreadable ACC record" in table


def test_plan_refuses_an_acc_project_that_is_not_visible_naming_the_key() -> None:
    missing = StubAcc([], missing={PROJECT})
    with pytest.raises(ConfigError, match=r"projects\[0\]\.acc_project_id"):
        dry_run.plan(missing, Store(MemoryS3(page=2), Layout("staging", "t")), config(), WINDOW)  # type: ignore[arg-type]
