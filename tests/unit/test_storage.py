"""The Store over an in-memory S3: the key layout, the ledger, manifests, staged objects, the probe."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import pytest
from acc_buildpass.errors import ConfigError, StorageError
from acc_buildpass.models import AccPhoto, LedgerState, PhotoStatus, Window
from acc_buildpass.storage import Layout, Store

from tests.fakes import MemoryS3

START = datetime(2026, 3, 2, tzinfo=UTC)
WINDOW = Window(START, START + timedelta(days=1))
MiB = 1024 * 1024


def store(s3: MemoryS3 | None = None) -> Store:
    return Store(s3 or MemoryS3(page=2), Layout("staging", "acc-photos"))


def test_every_key_sits_under_the_prefix_in_the_documented_layout() -> None:
    layout = Layout("staging", "acc-photos")
    w = "20260302T000000Z--20260303T000000Z"
    assert layout.object_key("proj-1", "photo-1") == "acc-photos/objects/proj-1/photo-1"
    assert layout.manifest_part(WINDOW, "proj-1", 3) == f"acc-photos/windows/{w}/proj-1/manifest/part-00003.parquet"
    assert layout.extract_summary(WINDOW, "proj-1") == f"acc-photos/windows/{w}/proj-1/extract.json"
    assert layout.batch_outcome(WINDOW, 7, "stage") == f"acc-photos/windows/{w}/batches/00007/stage.json"
    assert layout.report(WINDOW, "md") == f"acc-photos/windows/{w}/report.md"
    assert layout.replay_part(WINDOW, "proj-1", 0) == f"acc-photos/windows/{w}/proj-1/replay/part-00000.parquet"
    assert layout.replay_report(WINDOW, "json") == f"acc-photos/windows/{w}/report-replay.json"
    assert layout.plan_report(WINDOW) == f"acc-photos/windows/{w}/plan.json"
    assert layout.ledger("buil_1", "proj_1", "photo-1") == "acc-photos/ledger/buil_1/proj_1/photo-1.json"
    assert layout.ledger_prefix("buil_1", "proj_1") == "acc-photos/ledger/buil_1/proj_1/"
    assert layout.follow_links("buil_1", "proj_1", "proj-1") == "acc-photos/follow/buil_1/proj_1/proj-1.json"
    assert layout.probe("abc123") == "acc-photos/check/probe-abc123"


@pytest.mark.parametrize("bad", ["../x", "", "a/b", "x..y"])
def test_a_part_that_could_walk_a_path_is_refused(bad: str) -> None:
    layout = Layout("staging", "acc-photos")
    with pytest.raises(ValueError, match="not a valid id"):
        layout.ledger("buil_1", "proj_1", bad)
    with pytest.raises(ValueError, match="not a valid id"):
        layout.follow_links(bad, "proj_1", "proj-1")
    with pytest.raises(ValueError, match="not a valid id"):
        layout.object_key(bad, "photo-1")


def test_the_ledger_trusts_only_created_entries_and_lists_ids_in_pages() -> None:
    s = store()
    for photo_id, state in (("p1", LedgerState.CREATED), ("p2", "created"), ("p3", LedgerState.INTENT)):
        s.put_json(s.layout.ledger("buil_1", "proj_1", photo_id), {"state": state})
    s.put_json(s.layout.ledger("buil_1", "proj_2", "p4"), {"state": "created"})
    s.put_json(s.layout.ledger_prefix("buil_1", "proj_1") + "nested/p5.json", {"state": "created"})
    assert s.ledger_ids("buil_1", "proj_1") == {"p1", "p2", "p3"}  # any state; not another project's
    assert [s.published("buil_1", "proj_1", p) for p in ("p1", "p2", "p3", "p9")] == [True, True, False, False]
    assert s.s3.calls["ListObjectsV2"] == 1  # one listing, in pages of two keys
    raw = s.s3.objects["staging/" + s.layout.ledger("buil_1", "proj_1", "p1")].body
    assert b'"state": "created"' in raw  # the enum is stored as its plain value


def test_json_round_trips_and_a_missing_object_reads_as_none() -> None:
    s = store()
    key = s.layout.batch_outcome(WINDOW, 0, "stage")
    assert s.get_json(key) is None and s.head(key) is None
    s.put_json(key, [{"photo_id": "p1", "status": PhotoStatus.STAGED, "at": START}])
    assert s.get_json(key) == [{"photo_id": "p1", "status": "staged", "at": "2026-03-02T00:00:00+00:00"}]
    assert s.first_attempt(s.layout.batch_outcome(WINDOW, 0, "publish-attempt")) is True
    assert s.first_attempt(s.layout.batch_outcome(WINDOW, 0, "publish-attempt")) is False


def test_a_manifest_round_trips_every_field() -> None:
    s = store()
    photos = [
        AccPhoto("p1", "proj-1", "Slab", "poured", 2048, "NORMAL", START, START - timedelta(hours=1), None),
        AccPhoto("p2", "proj-1", "", "", None, "INFRARED", START + timedelta(seconds=1.5), None, None, "https://x"),
    ]
    key = s.layout.manifest_part(WINDOW, "proj-1", 0)
    s.write_manifest(key, photos)
    read = s.read_manifest(key)
    assert read[0] == photos[0]
    assert read[1] == AccPhoto("p2", "proj-1", "", "", None, "INFRARED", photos[1].created_at, None, None)
    assert s.s3.objects[f"staging/{key}"].content_type == "application/vnd.apache.parquet"


def test_a_small_photo_is_one_put_and_a_large_one_a_bounded_multipart_upload() -> None:
    s3 = MemoryS3()
    s = store(s3)
    meta = {"sha256": "ab", "size": "3", "acc-photo-id": "p1"}
    s.put_staged("k/small", io.BytesIO(b"abc"), 3, "image/jpeg", meta)
    assert (s3.calls["PutObject"], s3.calls["UploadFileobj"]) == (1, 0)
    assert s3.objects["staging/k/small"].metadata == meta and s3.objects["staging/k/small"].content_type == "image/jpeg"
    assert s.open_object("k/small").read() == b"abc"

    big = b"\xff" * (16 * MiB)  # the threshold itself goes multipart
    s.put_staged("k/big", io.BytesIO(big), len(big), "image/png", {"sha256": "cd", "size": str(len(big))})
    assert (s3.calls["PutObject"], s3.calls["UploadFileobj"]) == (1, 1)
    [config] = s3.transfer_configs
    assert config.multipart_threshold == 16 * MiB and config.multipart_chunksize == 8 * MiB
    assert config.max_concurrency == 2 and config.max_in_memory_upload_chunks == 2
    assert s.head("k/big") == {
        "ContentLength": len(big),
        "ContentType": "image/png",
        "Metadata": {"sha256": "cd", "size": str(len(big))},
    }


def test_the_probe_writes_and_deletes_and_says_what_failed() -> None:
    s3 = MemoryS3()
    s = store(s3)
    s.probe(s.layout.probe("t1"))
    assert s3.objects == {} and s3.calls["PutObject"] == s3.calls["DeleteObject"] == 1

    s3.refuse = {"HeadBucket": "403"}
    with pytest.raises(ConfigError, match=r"staging bucket 'staging' is not usable \(403\)"):
        s.probe(s.layout.probe("t2"))

    s3.refuse = {"PutObject": "AccessDenied"}
    with pytest.raises(StorageError) as refused:
        s.probe(s.layout.probe("t3"))
    assert (refused.value.operation, refused.value.code, refused.value.unreachable) == (
        "PutObject",
        "AccessDenied",
        False,
    )

    s3.refuse, s3.unreachable = {}, {"HeadBucket"}
    with pytest.raises(StorageError) as down:
        s.probe(s.layout.probe("t4"))
    assert (down.value.operation, down.value.code, down.value.unreachable) == ("HeadBucket", "", True)
    assert str(down.value) == 'Could not connect to the endpoint URL: "http://127.0.0.1:1/s3"'
