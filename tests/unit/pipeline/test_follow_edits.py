"""follow-edits' comparison and linking with stand-in clients and an in-memory S3.

The real thing, after a real copy, against the emulators and SeaweedFS: tests/integration/test_cli_follow_edits.py.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from acc_buildpass.clients.buildpass import BuildPassPhoto
from acc_buildpass.config import PipelineConfig
from acc_buildpass.models import AccPhoto
from acc_buildpass.pipeline import follow_edits as follow
from acc_buildpass.storage import Layout, Store

from tests.fakes import MemoryS3, StubAcc

PROJECT = "36c0838c-0360-4cfa-b2c6-85e0056ec7e8"
UNTIL = datetime(2026, 3, 8, tzinfo=UTC)
UTC_DAY = UNTIL - timedelta(days=2)


def acc_photo(n: int, **kw: Any) -> AccPhoto:
    base: dict[str, Any] = dict(
        id=f"photo-{n:04d}",
        project_id=PROJECT,
        title=f"Slab {n}",
        description="",
        size=1000,
        media_type="NORMAL",
        created_at=UTC_DAY + timedelta(hours=n),
        taken_at=UTC_DAY,
        deleted_at=None,
    )
    base.update(kw)
    return AccPhoto(**base)


def bp_photo(n: int, **kw: Any) -> BuildPassPhoto:
    base: dict[str, Any] = dict(
        id=f"phot_{n}",
        project_id="proj_demo",
        folder_id="fold_1",
        file_name=f"Slab {n}.jpg",
        key=f"att_{n}",
        external_source_id=None,
        description=f"Slab {n}",
        captured_at=UTC_DAY.strftime("%Y-%m-%dT%H:%M:%S.000Z"),  # BuildPass's own format
        content_type="image/jpeg",
    )
    base.update(kw)
    return BuildPassPhoto(**base)


class StubBuildPass:
    def __init__(self, photos: list[BuildPassPhoto]) -> None:
        self.photos = {p.id: p for p in photos}
        self.patches: list[tuple[str, dict[str, Any]]] = []

    def list_photos(self, builder_id: str, project_id: str, folder_id: str | None = None) -> list[BuildPassPhoto]:
        return list(self.photos.values())

    def update_photo(self, builder_id: str, photo_id: str, changes: dict[str, Any]) -> BuildPassPhoto:
        self.patches.append((photo_id, changes))
        current = self.photos[photo_id]
        self.photos[photo_id] = replace(
            current,
            file_name=changes.get("fileName", current.file_name),
            description=changes.get("description", current.description),
            captured_at=changes.get("capturedAt", current.captured_at),
        )
        return self.photos[photo_id]


def test_buildpass_formats_and_an_empty_description_are_no_change() -> None:
    assert follow.changes_for(acc_photo(1), bp_photo(1)) == {}
    assert follow.changes_for(acc_photo(1, title="", description=""), bp_photo(1, description=None)) == {
        "fileName": "photo-photo-00.jpg"
    }
    edited = acc_photo(1, title="Slab 1 poured", taken_at=UTC_DAY + timedelta(minutes=5))
    assert follow.changes_for(edited, bp_photo(1)) == {
        "fileName": "Slab 1 poured.jpg",
        "description": "Slab 1 poured",
        "capturedAt": (UTC_DAY + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    # The extension follows the type BuildPass has, as at copy time.
    assert follow.changes_for(acc_photo(1), bp_photo(1, file_name="Slab 1.png", content_type="image/png")) == {}


def test_links_come_from_the_ledger_then_the_cache_and_intents_are_not_followed() -> None:
    config = PipelineConfig.from_variable(
        {
            "staging_bucket": "staging",
            "staging_prefix": "t",
            "projects": [{"acc_project_id": PROJECT, "builder_id": "buil_demo", "buildpass_project_id": "proj_demo"}],
        }
    )
    s3 = MemoryS3()
    store = Store(s3, Layout("staging", "t"))
    ledger = {
        1: {"state": "created", "via": "bulk-upsert", "attachment_key": "att_1"},
        2: {"state": "created", "via": "photos", "buildpass_photo_id": "phot_2"},
        3: {"state": "intent", "attachment_keys": ["att_3"]},  # never finished: not copied
        4: {"state": "created", "via": "bulk-upsert"},  # copied before keys were recorded
        5: {"state": "created", "via": "bulk-upsert", "attachment_key": "att_5"},
    }
    for n, entry in ledger.items():
        store.put_json(store.layout.ledger("buil_demo", "proj_demo", f"photo-{n:04d}"), entry)
    acc = StubAcc(
        [  # type: ignore[arg-type]
            acc_photo(1, description="edited in ACC"),
            acc_photo(2),
            acc_photo(3),
            acc_photo(4),
            acc_photo(5, deleted_at=UNTIL - timedelta(hours=1)),
            acc_photo(6),  # not in the ledger: never copied
        ]
    )
    bp = StubBuildPass([bp_photo(n) for n in (1, 2, 4, 5)])
    mapping = config.projects[0]
    since, until = follow.period(7, UNTIL)

    first = follow.follow_project(acc, bp, store, config, mapping, since, until)  # type: ignore[arg-type]
    outcomes = {o.photo_id: o for o in first.outcomes}
    assert {i: (o.status, o.buildpass_photo_id) for i, o in outcomes.items()} == {
        "photo-0001": ("patched", "phot_1"),
        "photo-0002": ("unchanged", "phot_2"),
        "photo-0004": ("failed", None),
        "photo-0005": ("deleted_in_acc", "phot_5"),
    }
    assert bp.patches == [("phot_1", {"description": "edited in ACC"})]
    assert first.counts()["listed"] == 6 and first.counts()["looked_at"] == 4

    # Again: the links kept spare the ledger reads of linked photos; nothing is patched.
    gets = s3.gets
    second = follow.follow_project(acc, bp, store, config, mapping, since, until)  # type: ignore[arg-type]
    assert [o.status.value for o in second.outcomes].count("patched") == 0 and len(bp.patches) == 1
    assert s3.gets - gets == 1 + 2  # the link cache, then the intent and the unlinkable photo

    # The delete policy cannot be honoured: failed, naming the BuildPass photo; dry run patches nothing.
    acc.items[1] = acc_photo(2, title="Edited again")
    third = follow.follow_project(acc, bp, store, config, mapping, since, until, delete_policy="delete", dry_run=True)  # type: ignore[arg-type]
    outcomes = {o.photo_id: o for o in third.outcomes}
    assert outcomes["photo-0005"].status == "failed" and "phot_5" in outcomes["photo-0005"].reason
    assert outcomes["photo-0002"].status == "would_patch" and len(bp.patches) == 1
