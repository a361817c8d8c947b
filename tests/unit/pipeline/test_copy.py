"""A batch copied in one process: staged from the ACC emulator into an in-memory S3 and published
to the BuildPass emulator while it stages, and a retry after a crash at any point."""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import sandbox
from acc_buildpass.clients.acc import AccClient
from acc_buildpass.clients.buildpass import BuildPassClient
from acc_buildpass.models import PhotoStatus
from acc_buildpass.pipeline.copy import PUBLISH_CHUNK, copy_batch
from acc_buildpass.storage import Layout, Store

from tests.fakes import MemoryS3
from tests.unit.pipeline.emulated import (
    FAST_RETRY,
    PROJECT,
    admin,
    buildpass_client,
    pipeline_config,
    route_counts,
    seeded_batch,
    signed_in,
)

COUNT = PUBLISH_CHUNK + 50


class Crash(BaseException):
    """The process dies here (not an error any step handles)."""


class _Acc(AccClient):
    """Downloads after the ``hold_after``-th wait until BuildPass has been sent an upload; the
    ``crash_at``-th download crashes."""

    uploading = threading.Event()
    hold_after = COUNT
    crash_at = 0

    def download(self, signed_url: str, sink: Any) -> int:
        with _lock:
            _downloads.append(signed_url)
            n = len(_downloads)
        if n == self.crash_at:
            raise Crash
        if n > self.hold_after and not self.uploading.wait(30):
            raise AssertionError("nothing was uploaded while photos were still downloading")
        return super().download(signed_url, sink)


class _BuildPass(BuildPassClient):
    """Tells the ACC side when an upload starts; the ``crash_at``-th upsert crashes."""

    crash_at = 0

    def upload_attachments(self, builder_id: str, parts: list[Any]) -> Any:
        _Acc.uploading.set()
        return super().upload_attachments(builder_id, parts)

    def bulk_upsert(self, *args: Any, **kwargs: Any) -> Any:
        with _lock:
            _upserts.append(1)
            n = len(_upserts)
        if n == self.crash_at:
            raise Crash
        return super().bulk_upsert(*args, **kwargs)


_lock = threading.Lock()
_downloads: list[str] = []
_upserts: list[int] = []


@pytest.fixture(autouse=True)
def fresh_counts() -> None:
    _downloads.clear()
    _upserts.clear()
    _Acc.uploading = threading.Event()
    _Acc.hold_after, _Acc.crash_at, _BuildPass.crash_at = COUNT, 0, 0


def bp(box: sandbox.Sandbox) -> _BuildPass:
    return _BuildPass(box.buildpass_url, "bp-demo-client", "bp-demo-secret", policy=FAST_RETRY)


def created(box: sandbox.Sandbox) -> Counter[str]:
    return Counter(p["externalSourceId"] for p in admin(box.buildpass_url, "/photos?builder_id=buil_demo")["photos"])


def test_photos_are_uploaded_while_the_rest_still_download(box: sandbox.Sandbox, tmp_path: Path) -> None:
    acc, store, config = signed_in(_Acc, box, tmp_path), Store(MemoryS3(), Layout("staging", "t")), pipeline_config()
    batch, photos, _ = seeded_batch(box, acc, store, config, COUNT)
    _Acc.hold_after = (
        PUBLISH_CHUNK  # the rest wait for the first upload: copied one step after the other, they never would
    )

    reads = store.s3.calls["GetObject"]  # type: ignore[attr-defined]
    outcomes = copy_batch(acc, bp(box), store, config, batch)
    assert sorted(o.photo_id for o in outcomes if o.status == PhotoStatus.CREATED) == sorted(p.id for p in photos)
    assert created(box) == Counter({p.id: 1 for p in photos})
    assert store.s3.calls["GetObject"] - reads == 1  # the manifest: what is uploaded was staged by this process
    counts = route_counts(box.buildpass_url)
    assert (counts["bulk-upload"], counts["bulk-upsert"]) == (6, 2)  # 25 files an upload, a chunk an upsert
    for step in ("stage", "publish"):
        assert len(store.get_json(store.layout.batch_outcome(batch.window, batch.index, step))) == COUNT


@pytest.mark.parametrize("crash", ["while staging", "while publishing"])
def test_a_retried_batch_downloads_no_intact_staged_photo_again_and_creates_nothing_twice(
    box: sandbox.Sandbox, tmp_path: Path, crash: str
) -> None:
    acc, s3, config = signed_in(_Acc, box, tmp_path), MemoryS3(), pipeline_config()
    store = Store(s3, Layout("staging", "t"))
    batch, photos, _ = seeded_batch(box, acc, store, config, COUNT)
    if crash == "while staging":
        _Acc.crash_at = PUBLISH_CHUNK + 20  # the first chunk is being published meanwhile
    else:
        _BuildPass.crash_at = 2  # the second chunk's upsert: the first chunk is in BuildPass
    with pytest.raises(Crash):
        copy_batch(acc, bp(box), store, config, batch)
    staged = {k for k in s3.objects if "/objects/" in k}
    assert len(staged) > 0 and 0 < sum(created(box).values()) < COUNT
    downloads = len(_downloads)

    outcomes = copy_batch(acc, buildpass_client(box), store, config, batch)
    assert len(_downloads) - downloads == COUNT - len(staged)  # only what was not staged intact
    assert created(box) == Counter({p.id: 1 for p in photos})  # each photo once
    stage = store.get_json(store.layout.batch_outcome(batch.window, batch.index, "stage"))
    present = {o["photo_id"] for o in stage if o["status"] == "present"}  # in the ledger: not sent again
    assert {o.photo_id for o in outcomes if o.status == PhotoStatus.CREATED} == {p.id for p in photos} - present
    assert len(present) == sum(created(box).values()) - len(outcomes) and batch.acc_project_id == PROJECT
