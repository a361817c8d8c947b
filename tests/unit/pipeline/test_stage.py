"""The stage step against the ACC emulator (real signed URLs, real bad files) and an in-memory S3."""

from __future__ import annotations

import hashlib
import tempfile
import threading
from pathlib import Path

import pytest
import sandbox
from acc_buildpass.clients.acc import AccClient
from acc_buildpass.models import AccPhoto, Outcome, PhotoStatus
from acc_buildpass.pipeline.stage import SPOOL_IN_MEMORY, ByteBudget, Spool, in_memory, stage_batch
from acc_buildpass.storage import Layout, Store

from tests.fakes import MemoryS3
from tests.unit.pipeline.emulated import (
    PROJECT,
    WINDOW,
    acc_client,
    acc_truth,
    admin,
    pipeline_config,
    route_counts,
    seeded_batch,
    signed_in,
)


def staging() -> Store:
    return Store(MemoryS3(), Layout("staging", "t"))


def staged_object(store: Store, photo: AccPhoto) -> bytes:
    return store.s3.objects[f"staging/{store.layout.object_key(PROJECT, photo.id)}"].body  # type: ignore[no-any-return]


def test_photos_are_staged_intact_once_and_one_in_the_ledger_is_present(box: sandbox.Sandbox, tmp_path: Path) -> None:
    acc, store, config = acc_client(box, tmp_path), staging(), pipeline_config()
    batch, photos, _ = seeded_batch(box, acc, store, config, 3)
    truth = acc_truth(box)

    first = stage_batch(acc, store, config, batch)
    assert [o.photo_id for o in first] == [p.id for p in photos]  # the manifest's order
    assert [(o.status, o.reused, o.sha256, o.size) for o in first] == [
        (PhotoStatus.STAGED, False, truth[p.id]["sha256"], p.size) for p in photos
    ]
    for photo in photos:
        body = staged_object(store, photo)
        assert hashlib.sha256(body).hexdigest() == truth[photo.id]["sha256"] and len(body) == photo.size
        stored = store.s3.objects[f"staging/{store.layout.object_key(PROJECT, photo.id)}"]
        assert stored.content_type == "image/jpeg"
        assert stored.metadata == {
            "sha256": truth[photo.id]["sha256"],
            "size": str(photo.size),
            "acc-photo-id": photo.id,
        }
    assert route_counts(box.acc_url)["oss"] == 3

    store.put_json(store.layout.ledger("buil_demo", "proj_demo", photos[0].id), {"state": "created"})
    again = stage_batch(acc, store, config, batch)
    assert again[0] == Outcome(photos[0].id, PhotoStatus.PRESENT)
    assert [(o.status, o.reused, o.sha256) for o in again[1:]] == [
        (PhotoStatus.STAGED, True, truth[p.id]["sha256"]) for p in photos[1:]
    ]
    counts = route_counts(box.acc_url)
    assert counts["oss"] == 3  # nothing downloaded again
    assert counts["photos:filter"] == 2  # the listing and the first stage's signed URLs; none asked again


def test_a_bad_file_fails_naming_the_photo_and_is_not_downloaded_again(box: sandbox.Sandbox, tmp_path: Path) -> None:
    acc, store, config = acc_client(box, tmp_path), staging(), pipeline_config()
    batch, photos, ids = seeded_batch(
        box, acc, store, config, 4, behaviour={0: "empty", 1: "notimage"}, patch={2: {"size": 7}}
    )
    outcomes = {o.photo_id: o for o in stage_batch(acc, store, config, batch)}
    assert outcomes[ids[0]] == Outcome(ids[0], PhotoStatus.FAILED, reason="ACC served an empty file (0 bytes)")
    assert outcomes[ids[1]].status == PhotoStatus.FAILED
    assert outcomes[ids[1]].reason.startswith("file is not an image (first bytes ")
    lying = next(p for p in photos if p.id == ids[2])
    assert lying.size == 7
    assert outcomes[ids[2]].status == PhotoStatus.FAILED
    assert outcomes[ids[2]].reason.startswith("file is ") and outcomes[ids[2]].reason.endswith(
        " bytes, ACC's record says 7"
    )
    assert outcomes[ids[3]].status == PhotoStatus.STAGED
    assert route_counts(box.acc_url)["oss"] == 4  # a bad file is final: one download each
    staged = {k.rsplit("/", 1)[1] for k in store.s3.objects if "/objects/" in k}
    assert staged == {ids[3]}  # nothing of a bad file is kept


class ExpiringUrls(AccClient):
    """Our ACC client, but the emulator's clock jumps past every signed URL just after the first
    set is fetched: the first download gets the real 403 of an expired URL."""

    box: sandbox.Sandbox
    asked: list[list[str]]

    def photos_by_id(self, project_id: str, photo_ids: object) -> dict[str, AccPhoto]:
        ids = list(photo_ids)  # type: ignore[call-overload]
        self.asked.append(ids)
        found = super().photos_by_id(project_id, ids)
        if len(self.asked) == 1:
            admin(self.box.acc_url, "/clock", {"advance_seconds": 120})  # signed URLs live 60 s
        return found


def test_an_expired_signed_url_refreshes_every_pending_url_once(box: sandbox.Sandbox, tmp_path: Path) -> None:
    acc = signed_in(ExpiringUrls, box, tmp_path)
    acc.box, acc.asked = box, []
    store, config = staging(), pipeline_config()
    batch, photos, _ = seeded_batch(box, acc, store, config, 3)

    outcomes = stage_batch(acc, store, config, batch)
    assert [o.status for o in outcomes] == [PhotoStatus.STAGED] * 3
    # Loaded, then refreshed once for all three (in id order): not once a photo.
    assert acc.asked == [[p.id for p in photos], sorted(p.id for p in photos)]
    assert route_counts(box.acc_url)["oss"] == 4  # the refused download, then one a photo


@pytest.mark.parametrize("answer", ["zero", "absent", "mixed"])
def test_a_record_whose_size_is_zero_or_absent_is_staged_from_the_transfer(
    box: sandbox.Sandbox, tmp_path: Path, answer: str
) -> None:
    admin(box.acc_url, "/answers", {"size": answer})
    acc, store, config = acc_client(box, tmp_path), staging(), pipeline_config()
    batch, photos, _ = seeded_batch(box, acc, store, config, 6)
    truth = acc_truth(box)
    assert any(not p.size for p in photos)  # the records lie

    outcomes = stage_batch(acc, store, config, batch)
    assert [(o.status, o.sha256, o.size) for o in outcomes] == [
        (PhotoStatus.STAGED, truth[p.id]["sha256"], truth[p.id]["size"]) for p in photos
    ]
    again = stage_batch(acc, store, config, batch)  # what is staged is trusted again, not downloaded
    assert [(o.status, o.reused) for o in again] == [(PhotoStatus.STAGED, True)] * len(photos)
    assert route_counts(box.acc_url)["oss"] == len(photos)


def test_a_retry_wait_longer_than_a_signed_urls_life_never_sends_an_expired_url(
    box: sandbox.Sandbox, tmp_path: Path
) -> None:
    # URLs live 2 s; the first download gets a 500, and the retry waits 2.1 to 4.2 s.
    admin(box.acc_url, "/faults", {"signed_url_ttl": 2, "script": [{"route": "oss", "fault": "error5xx"}]})
    acc, store = acc_client(box, tmp_path), staging()
    config = pipeline_config(retry={"attempts": 3, "initial_wait": 4.2, "max_wait": 4.2})
    batch, _, _ = seeded_batch(box, acc, store, config, 1)

    outcomes = stage_batch(acc, store, config, batch)
    assert [o.status for o in outcomes] == [PhotoStatus.STAGED], outcomes
    assert admin(box.acc_url, "/stats")["events"].get("expired_url_refused", 0) == 0
    assert route_counts(box.acc_url)["oss"] == 2  # the 500, then one download with a fresh URL


def test_photos_larger_than_the_memory_spool_are_staged_intact_from_disk_and_the_files_removed(
    box: sandbox.Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    acc, store, config = acc_client(box, tmp_path), staging(), pipeline_config()
    big = 16 * 1024 * 1024  # multipart from the threshold on
    batch, photos, _ = seeded_batch(box, acc, store, config, 2, min_size=big, max_size=big + 4096)
    truth = acc_truth(box)
    spool_dir = tmp_path / "spool"
    spool_dir.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spool_dir))

    outcomes = stage_batch(acc, store, config, batch)
    assert [(o.status, o.sha256) for o in outcomes] == [(PhotoStatus.STAGED, truth[p.id]["sha256"]) for p in photos]
    for photo in photos:
        assert hashlib.sha256(staged_object(store, photo)).hexdigest() == truth[photo.id]["sha256"]
    assert (store.s3.calls["UploadFile"], store.s3.calls["UploadFileobj"]) == (2, 0)  # read from disk
    assert list(spool_dir.iterdir()) == []


def test_a_spool_keeps_small_bytes_in_memory_and_larger_ones_in_a_file_it_deletes() -> None:
    with Spool(8) as small:
        small.write(b"12345678")
        assert small.path is None and small.reader().read() == b"12345678"
    with Spool(8) as large:
        large.write(b"12345")
        large.write(b"6789")
        assert large.reader().read() == b"123456789"
        path = large.path
        assert path is not None and Path(path).read_bytes() == b"123456789"  # what a multipart upload reads
    assert not Path(path).exists()


def test_the_memory_a_download_reserves_is_acc_s_size_capped_or_the_cap_when_unknown() -> None:
    def sized(size: int | None) -> AccPhoto:
        return AccPhoto("p", PROJECT, "", "", size, "NORMAL", WINDOW.start, None, None)

    assert [in_memory(sized(s)) for s in (2048, 0, None, 10**9)] == [2048] + [SPOOL_IN_MEMORY] * 3


def test_a_byte_budget_lets_small_holds_share_it_and_makes_a_large_one_wait() -> None:
    budget = ByteBudget(10)
    waited = threading.Event()

    def large() -> None:
        with budget.hold(100):  # more than the budget: waits for all of it
            waited.set()

    with budget.hold(3), budget.hold(3):  # two small ones at once
        waiter = threading.Thread(target=large)
        waiter.start()
        assert not waited.wait(0.5)
    waiter.join(timeout=30)
    assert waited.is_set()
