"""Extract keeps a photo once when ACC lists it twice (on two pages, or twice on one).

The emulator's keyset cursor never repeats a photo, so a stub ACC client stands in; the Store
is the real one over an in-memory S3 stand-in, so the manifest parts are real Parquet.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sandbox
from acc_buildpass.config import PipelineConfig
from acc_buildpass.errors import ConfigError, InvalidPhoto, NotFound
from acc_buildpass.models import MEDIA_TYPES, AccPhoto, ProjectMapping, Window
from acc_buildpass.pipeline.extract import extract, extract_project
from acc_buildpass.pipeline.folders import resolve_folder
from acc_buildpass.storage import Layout, Store

from tests.fakes import MemoryS3, StubAcc
from tests.unit.pipeline.emulated import admin, buildpass_client

PROJECT = "36c0838c-0360-4cfa-b2c6-85e0056ec7e8"
START = datetime(2026, 3, 2, tzinfo=UTC)
WINDOW = Window(START, START + timedelta(days=1))


def photo(n: int, **changes: Any) -> AccPhoto:
    base = AccPhoto(
        id=f"photo-{n:04d}",
        project_id=PROJECT,
        title=f"Slab {n}",
        description="",
        size=2048,
        media_type="NORMAL",
        created_at=START + timedelta(minutes=n),
        taken_at=None,
        deleted_at=None,
        file_url=f"https://acc.example/oss/{n}?X-Amz-Signature=secret",
    )
    return replace(base, **changes)


def config(batch_size: int) -> PipelineConfig:
    return PipelineConfig.from_variable(
        {
            "staging_bucket": "staging",
            "staging_prefix": "t",
            "batch_size": batch_size,
            "projects": [{"acc_project_id": PROJECT, "builder_id": "buil_demo", "buildpass_project_id": "proj_demo"}],
        }
    )


@pytest.mark.parametrize("batch_size", [2, 50])  # the repeat after its first copy's part was written, or not
def test_a_photo_listed_twice_is_kept_once(batch_size: int, caplog: pytest.LogCaptureFixture) -> None:
    first = photo(1)
    listing: list[AccPhoto | InvalidPhoto] = [
        first,
        photo(2),
        photo(3),
        photo(4, media_type="VIDEO"),
        replace(first, title="Slab 1 (edited since page 1)"),  # the same photo on a later page
        photo(3),
        photo(5),
        InvalidPhoto(None, "invalid id None (missing)"),
    ]
    store = Store(MemoryS3(), Layout("staging", "t"))
    cfg = config(batch_size)

    acc = StubAcc(listing)
    with caplog.at_level(logging.WARNING, logger="acc_buildpass.pipeline.extract"):
        parts, summary = extract_project(acc, store, cfg, cfg.projects[0], WINDOW)  # type: ignore[arg-type]

    assert acc.listings == [(PROJECT, WINDOW.start, WINDOW.end)]
    manifest = [p for key, _ in parts for p in store.read_manifest(key)]
    ids = [p.id for p in manifest]
    assert ids == ["photo-0001", "photo-0002", "photo-0003", "photo-0005"]
    assert manifest[0].title == "Slab 1"  # the first listing wins
    assert all(p.file_url is None for p in manifest)  # signed URLs are never written down
    assert sum(count for _, count in parts) == len(manifest) == summary["eligible"] == 4
    assert all(count <= batch_size for _, count in parts)
    assert summary["found"] == 6  # 5 distinct photos and the unreadable record; repeats not counted
    assert summary["skipped"] == [{"photo_id": "photo-0004", "reason": "mediaType VIDEO not copied"}]
    assert summary["failed"] == [{"photo_id": "<no id>", "reason": "unreadable ACC record: invalid id None (missing)"}]
    assert store.get_json(store.layout.extract_summary(WINDOW, PROJECT)) == summary
    warned = [r.getMessage() for r in caplog.records]
    assert warned == [
        "ACC listed photo photo-0001 twice; keeping one",
        "ACC listed photo photo-0003 twice; keeping one",
    ]


@pytest.mark.parametrize("opted_in", [False, True])
def test_a_media_type_acc_does_not_list_is_skipped_with_its_reason_or_copied_when_opted_in(
    box: sandbox.Sandbox, tmp_path: Path, opted_in: bool
) -> None:
    from tests.unit.pipeline.emulated import PROJECT as ACC_PROJECT
    from tests.unit.pipeline.emulated import WINDOW as ACC_WINDOW
    from tests.unit.pipeline.emulated import acc_client, acc_truth, admin, pipeline_config

    admin(box.acc_url, "/seed", {"project_id": ACC_PROJECT, "count": 24, "videos": 2})
    admin(box.acc_url, "/answers", {"media_type": "novel"})
    truth = acc_truth(box)
    novel = sorted(i for i, p in truth.items() if p["mediaType"] not in MEDIA_TYPES)
    assert novel  # some photos carry a type ACC does not list today
    media = ["NORMAL", "PANORAMA", "DRONE_ORTHO"] if opted_in else ["NORMAL"]
    store = Store(MemoryS3(), Layout("staging", "t"))
    config = pipeline_config(media_types=media)

    _, summary = extract_project(acc_client(box, tmp_path), store, config, config.projects[0], ACC_WINDOW)
    assert summary["failed"] == []  # never a failure
    skipped = {s["photo_id"]: s["reason"] for s in summary["skipped"]}
    videos = {i for i, p in truth.items() if p["mediaType"] == "VIDEO"}
    if opted_in:
        assert set(skipped) == videos and summary["eligible"] == 24 - len(videos)
    else:
        assert set(skipped) == videos | set(novel) and summary["eligible"] == 24 - len(videos) - len(novel)
        assert all(skipped[i] == f"mediaType {truth[i]['mediaType']} not copied" for i in novel)


def test_a_lost_answer_to_a_folder_create_is_looked_up_before_creating_again(box: sandbox.Sandbox) -> None:
    # The first folders request (the listing) passes; the create is made, and its answer lost.
    script = [{"route": "folders", "fault": "lost_response", "skip": 1, "times": 1}]
    admin(box.buildpass_url, "/faults", {"script": script})
    mapping = ProjectMapping(PROJECT, "buil_demo", "proj_demo")
    folder_id = resolve_folder(buildpass_client(box), mapping, "ACC photos")
    folders = [
        f for f in admin(box.buildpass_url, "/folders?builder_id=buil_demo")["folders"] if f["name"] == "ACC photos"
    ]
    assert [f["id"] for f in folders] == [folder_id]  # exactly one, made by the lost create
    assert admin(box.buildpass_url, "/faults")["script"][0]["times"] == 0  # the fault did fire


class _ListingsMeet(StubAcc):
    """Each listing waits until ``parties`` listings have begun: listed one after another, the
    first would wait alone and break the barrier."""

    def __init__(self, parties: int, missing: set[str]) -> None:
        super().__init__([], missing=missing)
        self.barrier = threading.Barrier(parties, timeout=30)

    def iter_photos(self, project_id: str, *args: Any, **kwargs: Any) -> Any:
        self.barrier.wait()
        if project_id in self.missing:
            raise NotFound("no such project", status=404)
        yield from super().iter_photos(project_id, *args, **kwargs)


def three_projects() -> PipelineConfig:
    projects = [
        {"acc_project_id": f"acc-{n}", "builder_id": "buil_demo", "buildpass_project_id": "proj_demo"} for n in range(3)
    ]
    return PipelineConfig.from_variable({"staging_bucket": "staging", "staging_prefix": "t", "projects": projects})


def test_projects_are_listed_at_once_and_the_first_wrong_one_in_the_variable_is_named() -> None:
    store = Store(MemoryS3(), Layout("staging", "t"))
    acc = _ListingsMeet(3, missing=set())
    assert extract(acc, None, store, three_projects(), WINDOW) == []  # type: ignore[arg-type]
    assert sorted(p for p, _, _ in acc.listings) == ["acc-0", "acc-1", "acc-2"]

    with pytest.raises(ConfigError, match=r"projects\[1\]\.acc_project_id 'acc-1'"):
        extract(_ListingsMeet(3, missing={"acc-1", "acc-2"}), None, store, three_projects(), WINDOW)  # type: ignore[arg-type]
