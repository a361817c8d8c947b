"""The Store over an in-memory S3: the key layout, the ledger, manifests, staged objects, the probe."""

from __future__ import annotations

import io
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from acc_buildpass.errors import ConfigError, StorageError
from acc_buildpass.models import AccPhoto, LedgerState, PhotoStatus, Window
from acc_buildpass.storage import MANIFEST_COLUMNS, Layout, Store
from botocore.exceptions import ClientError

from tests.fakes import MemoryS3

START = datetime(2026, 3, 2, tzinfo=UTC)
WINDOW = Window(START, START + timedelta(days=1))
MiB = 1024 * 1024
ROOT = Path(__file__).resolve().parents[2]


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


def test_a_photo_put_lately_is_read_back_once_from_memory_within_a_byte_limit(tmp_path: Path) -> None:
    s3 = MemoryS3()
    s = Store(s3, Layout("staging", "acc-photos"), recent_bytes=10)
    meta = {"sha256": "ab", "size": "6", "acc-photo-id": "p1"}
    s.put_staged("k/a", io.BytesIO(b"aaaaaa"), 6, "image/jpeg", meta)
    assert s.open_object("k/a").read() == b"aaaaaa" and s3.calls["GetObject"] == 0
    assert s.open_object("k/a").read() == b"aaaaaa" and s3.calls["GetObject"] == 1  # read once from memory

    s.put_staged("k/b", io.BytesIO(b"bbbbbb"), 6, "image/jpeg", meta)
    s.put_staged("k/c", io.BytesIO(b"cccccc"), 6, "image/jpeg", meta)  # over 10 bytes: b, the oldest, goes
    assert s.open_object("k/c").read() == b"cccccc" and s3.calls["GetObject"] == 1
    assert s.open_object("k/b").read() == b"bbbbbb" and s3.calls["GetObject"] == 2

    on_disk = tmp_path / "photo"
    on_disk.write_bytes(b"dddddd")
    with on_disk.open("rb") as stream:  # held in a file, not in memory: not kept
        s.put_staged("k/d", stream, 6, "image/jpeg", meta, path=str(on_disk))
    s.put_staged("k/e", io.BytesIO(b"eeeeee"), 6, "image/jpeg", meta)
    s.delete("k/e")  # gone from S3, gone from memory
    assert s.open_object("k/d").read() == b"dddddd" and s3.calls["GetObject"] == 3
    with pytest.raises(ClientError):
        s.open_object("k/e").read()


def test_a_small_photo_is_one_put_and_a_large_one_a_bounded_multipart_upload(tmp_path: Path) -> None:
    s3 = MemoryS3()
    s = store(s3)
    meta = {"sha256": "ab", "size": "3", "acc-photo-id": "p1"}
    s.put_staged("k/small", io.BytesIO(b"abc"), 3, "image/jpeg", meta)
    assert (s3.calls["PutObject"], s3.calls["UploadFileobj"]) == (1, 0)
    assert s3.objects["staging/k/small"].metadata == meta and s3.objects["staging/k/small"].content_type == "image/jpeg"
    assert s.open_object("k/small").read() == b"abc"

    big = b"\xff" * (16 * MiB)  # the threshold itself goes multipart
    s.put_staged("k/big", io.BytesIO(big), len(big), "image/png", {"sha256": "cd", "size": str(len(big))})
    assert (s3.calls["PutObject"], s3.calls["UploadFileobj"], s3.calls["UploadFile"]) == (1, 1, 0)
    on_disk = tmp_path / "photo"
    on_disk.write_bytes(big)
    with on_disk.open("rb") as stream:  # from a file: the parts are read from disk as they are sent
        s.put_staged("k/big2", stream, len(big), "image/png", {"sha256": "cd", "size": "1"}, path=str(on_disk))
    assert (s3.calls["PutObject"], s3.calls["UploadFileobj"], s3.calls["UploadFile"]) == (1, 1, 1)
    assert s.open_object("k/big2").read() == big
    config = s3.transfer_configs[0]
    assert s3.transfer_configs == [config, config]
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


def test_a_manifest_written_by_pandas_before_still_reads_and_ours_reads_with_pandas() -> None:
    import pandas as pd

    s = store()
    photo = AccPhoto("p1", "proj-1", "Slab", "", 7, "NORMAL", START + timedelta(microseconds=5), None, None)
    frame = pd.DataFrame([{**{c: getattr(photo, c) for c in MANIFEST_COLUMNS}}], columns=MANIFEST_COLUMNS)
    frame["size"] = frame["size"].astype("Int64")
    for column in ("created_at", "taken_at"):
        frame[column] = pd.to_datetime(frame[column], utc=True)  # nanoseconds, as pandas wrote them
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    s.s3.put_object(Bucket="staging", Key="old.parquet", Body=buffer.getvalue())
    assert s.read_manifest("old.parquet") == [photo]

    s.write_manifest("new.parquet", [photo])
    read = pd.read_parquet(io.BytesIO(s.s3.objects["staging/new.parquet"].body))
    assert list(read.columns) == MANIFEST_COLUMNS and read["created_at"][0] == pd.Timestamp(photo.created_at)


def test_an_empty_manifest_is_written_and_reads_as_no_photo() -> None:
    s = store()
    s.write_manifest("empty.parquet", [])
    assert s.read_manifest("empty.parquet") == []


def test_writing_and_reading_a_manifest_never_imports_pandas() -> None:
    code = (
        "import sys\n"
        "from datetime import datetime, UTC\n"
        "from tests.unit.test_storage import store\n"
        "from acc_buildpass.models import AccPhoto\n"
        "s = store()\n"
        "p = AccPhoto('p1', 'proj-1', 't', 'd', 1, 'NORMAL', datetime.now(UTC), datetime.now(UTC), None)\n"
        "s.write_manifest('m.parquet', [p])\n"
        "assert s.read_manifest('m.parquet') == [p]\n"
        "print('pandas' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert done.stdout.strip() == "False"
