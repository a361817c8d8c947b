"""Bad input: a clear error naming the photo, and the rest of the run goes on.

The real DAG (``airflow dags test``) against the emulators and SeaweedFS. Malformed ACC records
and files, photos BuildPass refuses, and a wrong configuration: each failed photo is named in
the output and in report.json with a reason an operator can act on, every other eligible photo
lands in BuildPass exactly once with the same bytes, and file names are safe.
"""

from __future__ import annotations

import base64
import re
import unicodedata
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sandbox import images
from sandbox.stack import BUILDER, Stack

pytestmark = pytest.mark.slow

DAY = datetime(2026, 3, 2, tzinfo=UTC)
END = DAY + timedelta(days=1)
MEDIA = ("NORMAL", "INFRARED", "PHOTOSPHERE")
RETRY = {"attempts": 3, "initial_wait": 0.05, "max_wait": 0.1}


@pytest.fixture(autouse=True)
def listed_media_types(stack: Stack, worst_answers: None) -> None:
    """These tests craft each record's mediaType themselves, so ACC serves them as given: media
    types ACC does not list have tests of their own (tests/unit/pipeline/test_extract.py and the
    chaos runs). Every other worst answer stays on."""
    stack.admin("acc", "POST", "/_admin/answers", {"media_type": "listed"})


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S")


def new_project() -> str:
    return str(uuid.uuid4())


def config_for(stack: Stack, project: str, **extra: Any) -> dict[str, Any]:
    return stack.config([project], prefix=f"bad-{project[:8]}", retry=RETRY, **extra)


def acc_truth(stack: Stack, project: str) -> list[dict[str, Any]]:
    return stack.admin("acc", "GET", f"/_admin/photos?project_id={project}")["photos"]  # type: ignore[no-any-return]


def eligible(records: list[dict[str, Any]], start: datetime, end: datetime) -> set[str]:
    """Ids that should reach BuildPass: a usable id, not deleted, a media type copied, created in [start, end)."""
    from acc_buildpass.models import parse_time

    return {
        r["id"]
        for r in records
        if "_key" not in r
        and not r.get("deletedAt")
        and r.get("mediaType") in MEDIA
        and start <= parse_time(r["createdAt"]) < end
    }


def assert_exactly_once(stack: Stack, project: str, expected: set[str]) -> dict[str, dict[str, Any]]:
    """Each expected photo in BuildPass once, with ACC's bytes; no other photo of the project."""
    source = {r["id"]: r for r in acc_truth(stack, project) if "_key" not in r}
    created = [
        p
        for p in stack.admin("buildpass", "GET", f"/_admin/photos?builder_id={BUILDER}")["photos"]
        if p.get("externalSourceId") in source
    ]
    counts = Counter(p["externalSourceId"] for p in created)
    assert {k: n for k, n in counts.items() if n > 1} == {}, "created twice"
    assert set(counts) == expected, f"missing {expected - set(counts)}, extra {set(counts) - expected}"
    for photo in created:
        assert photo["sha256"] == source[photo["externalSourceId"]]["sha256"], photo["externalSourceId"]
    return {p["externalSourceId"]: p for p in created}


def letters(text: str) -> str:
    """Letters, marks and digits: what a safe file name must keep of a title."""
    return "".join(c for c in unicodedata.normalize("NFC", text) if unicodedata.category(c)[0] in "LMN")


def assert_safe_file_name(name: str) -> str:
    """:returns: the stem"""
    stem, dot, ext = name.rpartition(".")
    assert dot and ext in ("jpg", "png", "gif", "tif", "webp", "heic", "heif"), name
    assert "/" not in name and "\\" not in name, name
    assert ".." not in name and not name.startswith("."), name
    assert not any(unicodedata.category(c) in ("Cc", "Cf", "Cs", "Co", "Cn") for c in name), repr(name)
    assert name == name.strip() and stem, repr(name)
    assert len(stem) <= 120, (len(stem), name)
    return stem


def failures(report: dict[str, Any]) -> dict[str, str]:
    return {f["photo_id"]: f["reason"] for r in report["projects"] for f in r["failed"]}


# -- malformed ACC records and files -----------------------------------------------------------

TITLES = {
    "slash": "Level 3/Grid C/slab.jpg",
    "dotdot": "../../etc/passwd",
    "dots": "..",
    "control": "Pour\x00\x07\n\tday\x1b[31m\u202egpj.exe",
    "long": ("Slab pour, east wing, level 3 " * 20)[:500],
    "ja": "3階スラブ打設・配筋検査",
    "ar": "صب الخرسانة الطابق الثالث",
    "ar-marks": "خَرَسَانَة مُسَلَّحَة",
    "hi": "स्लैब ढलाई निरीक्षण",
}


def crafted(project: str) -> tuple[list[dict[str, Any]], dict[str, str], dict[str, str]]:
    """(records, bodies, download behaviours), ids ``<case>-<project>``."""

    def pid(case: str) -> str:
        return f"{case}-{project}"

    def record(case: str, created: str, **fields: Any) -> dict[str, Any]:
        base = {"id": pid(case), "projectId": project, "mediaType": "NORMAL", "createdAt": created}
        return {**base, **fields}

    records = [
        # optional fields absent, or null: the file name, capture time and size come from elsewhere
        record("bare", "2026-03-02T01:00:00"),
        record("nulls", "2026-03-02T01:30:00Z", title=None, description=None, takenAt=None, size=None),
        # timestamps: Z with milliseconds, offsets (compared in UTC, not by their digits), no zone
        record("zulu", "2026-03-02T02:00:00.250Z", takenAt="2026-03-01T23:59:59Z", title="Zulu", size=2600),
        # 22:00 UTC on 2 March although it reads 3 March
        record("east-in", "2026-03-03T08:00:00+10:00", takenAt="2026-03-03T07:30:00+10:00", title="East in"),
        # 19:00 UTC on 1 March although it reads 2 March: not in the window
        record("east-out", "2026-03-02T05:00:00+10:00", title="East out"),
        record("west-in", "2026-03-01T20:00:00-05:00", title="West in"),
        record("nozone", "2026-03-02T03:00:00", takenAt="2026-03-02T02:00:00", title="No zone"),
        # titles that are not file names
        *(
            record(case, f"2026-03-02T{4 + i:02d}:00:00Z", title=title, description="", size=3000 + i)
            for i, (case, title) in enumerate(TITLES.items())
        ),
        # not copyable: each must be reported by id with its reason
        record("holo", "2026-03-02T14:00:00", mediaType="HOLOGRAM", title="Hologram"),
        {"projectId": project, "title": f"No id {project[:8]}", "mediaType": "NORMAL",
         "createdAt": "2026-03-02T15:00:00"},
        record("empty", "2026-03-02T16:00:00", title="Empty", size=2048),
        record("notimage", "2026-03-02T17:00:00", title="Not an image", size=2048),
        record("short", "2026-03-02T18:00:00", title="Short", size=4096),
        record("sizelie", "2026-03-02T19:00:00", title="Size lie", size=6000),
    ]  # fmt: skip
    bodies = {pid("sizelie"): base64.b64encode(images.jpeg_bytes("sizelie", 1500)).decode()}
    behaviours = {pid("empty"): "empty", pid("notimage"): "notimage", pid("short"): "short"}
    return records, bodies, behaviours


def test_malformed_acc_records_and_files_are_named_and_the_rest_lands_once(stack: Stack, run_dag: Any) -> None:
    project = new_project()

    def pid(case: str) -> str:
        return f"{case}-{project}"

    stack.seed_acc(project, count=6, start=iso(DAY), end=iso(END), seed=41, deleted=1, videos=1)
    records, bodies, behaviours = crafted(project)
    keys = stack.admin("acc", "POST", "/_admin/photos", {"project_id": project, "photos": records, "bodies": bodies})
    assert sum(1 for k in keys["ids"] if k.startswith("_record-")) == 1  # the record without an id
    for photo_id, behaviour in behaviours.items():
        stack.admin("acc", "POST", f"/_admin/photos/{photo_id}/behaviour", {"download": behaviour})
    truth = acc_truth(stack, project)
    bad_downloads = {pid("empty"), pid("notimage"), pid("short"), pid("sizelie")}
    expected = eligible(truth, DAY, END) - bad_downloads
    # the test's own premises: offsets are read in UTC
    assert {pid("east-in"), pid("west-in"), pid("nozone"), pid("bare")} <= expected
    assert pid("east-out") not in expected and pid("holo") not in expected

    rc, output, report = run_dag(DAY, END, config_for(stack, project))

    assert rc != 0, output[-3000:]
    assert report is not None, output[-3000:]
    failed = failures(report)
    assert set(failed) == {"<no id>", *bad_downloads}, failed  # a mediaType ACC does not list is skipped
    readable = {
        "<no id>": rf"invalid id None \(missing\).*title 'No id {project[:8]}'.*createdAt '2026-03-02T15:00:00'",
        pid("empty"): r"empty file \(0 bytes\)",
        pid("notimage"): r"file is not an image \(first bytes 3c68746d",  # "<htm"
        pid("short"): r"download failed after retries: download (interrupted after|stopped at) \d+ of 4096 bytes",
        pid("sizelie"): r"file is 1500 bytes, ACC's record says 6000",
    }
    for photo_id, pattern in readable.items():
        assert re.search(pattern, failed[photo_id]), (photo_id, failed[photo_id])
        # the task log names the photo with the same reason, on one line
        assert f"{photo_id}: {failed[photo_id]}" in output, photo_id
    assert re.search(rf"CopyFailed: {len(failed)} photo\(s\) could not be copied", output)

    row = report["projects"][0]
    listed = eligible([{**r, "mediaType": "NORMAL"} for r in truth if r.get("mediaType") != "VIDEO"], DAY, END)
    novel = Counter(
        f"mediaType {r['mediaType']} not copied"
        for r in truth
        if r.get("id") in listed and r.get("mediaType") not in MEDIA
    )
    assert novel["mediaType HOLOGRAM not copied"] == 1  # the crafted one
    assert row["skipped"] == {"deleted in ACC": 1, "mediaType VIDEO not copied": 1, **novel}
    assert report["totals"]["created"] == len(expected)
    assert row["eligible"] == len(expected) + len(bad_downloads)  # the files failed, not the records

    created = assert_exactly_once(stack, project, expected)
    for photo in created.values():
        assert_safe_file_name(photo["fileName"])
    names = {case: created[pid(case)]["fileName"] for case in ("bare", "nulls", *TITLES)}
    assert names["bare"] == f"photo-{pid('bare')[:8]}.jpg" and names["nulls"] == f"photo-{pid('nulls')[:8]}.jpg"
    assert names["dots"] == f"photo-{pid('dots')[:8]}.jpg"
    for case in ("slash", "dotdot", "control", "ja", "ar", "ar-marks", "hi"):
        stem = assert_safe_file_name(names[case])
        assert letters(stem) == letters(TITLES[case].removesuffix(".jpg")), (case, names[case])
    long_stem = assert_safe_file_name(names["long"])
    assert len(long_stem) >= 100 and letters(TITLES["long"]).startswith(letters(long_stem))
    assert names["ja"] == "3階スラブ打設_配筋検査.jpg"
    # capture time: camera time in UTC, the upload time when the camera gave none
    assert created[pid("bare")]["capturedAt"].startswith("2026-03-02T01:00:00")
    assert created[pid("bare")]["description"] is None
    assert created[pid("east-in")]["capturedAt"].startswith("2026-03-02T21:30:00")
    assert created[pid("nozone")]["capturedAt"].startswith("2026-03-02T02:00:00")
    assert created[pid("zulu")]["capturedAt"].startswith("2026-03-01T23:59:59")
    assert created[pid("ja")]["description"] == TITLES["ja"]


# -- BuildPass refuses one photo of a batch ----------------------------------------------------


@pytest.mark.parametrize("mode", ["bulk", "single"])
def test_a_photo_buildpass_rejects_is_named_and_its_batch_still_lands(stack: Stack, run_dag: Any, mode: str) -> None:
    project = new_project()
    start, end = DAY, DAY + timedelta(hours=2)
    ids = stack.seed_acc(project, count=8, start=iso(start), end=iso(end), seed=42)["ids"]
    expected = eligible(acc_truth(stack, project), start, end)
    assert len(expected) == 8
    rejected = ids[3]
    message = f"Image does not meet the gallery requirements ({mode} test)"
    stack.admin("buildpass", "POST", "/_admin/reject", {"externalSourceId": rejected, "message": message})
    try:
        rc, output, report = run_dag(start, end, config_for(stack, project, publish_mode=mode))
    finally:
        stack.admin("buildpass", "POST", "/_admin/reject", {"externalSourceId": rejected, "clear": True})

    assert rc != 0, output[-3000:]
    assert report is not None and report["batches"] == 1 and report["publish_mode"] == mode
    failed = failures(report)
    assert set(failed) == {rejected}, failed
    assert failed[rejected].startswith("BuildPass rejected the photo: ") and message in failed[rejected]
    assert f"{rejected}: {failed[rejected]}" in output
    assert report["totals"]["created"] == len(expected) - 1
    assert_exactly_once(stack, project, expected - {rejected})


# -- bad configuration -------------------------------------------------------------------------


def config_error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if "Configuration error: " in line]


def assert_failed_without_retry(output: str) -> None:
    """A configuration error fails its task at once: retrying cannot fix it."""
    assert "new_state=failed" in output, output[-3000:]
    assert "up_for_retry" not in output.lower(), output[-3000:]


def test_a_staging_bucket_that_does_not_exist_fails_with_what_to_fix(stack: Stack, run_dag: Any) -> None:
    project = new_project()
    stack.seed_acc(project, count=3, start=iso(DAY), end=iso(DAY + timedelta(hours=1)), seed=43)
    bucket = f"no-such-bucket-{project[:8]}"
    config = {**config_for(stack, project), "staging_bucket": bucket}
    before = stack.admin("acc", "GET", "/_admin/stats")["requests"]
    rc, output, report = run_dag(DAY, DAY + timedelta(hours=1), config)
    after = stack.admin("acc", "GET", "/_admin/stats")["requests"]

    assert rc != 0 and report is None
    lines = config_error_lines(output)
    fix = f"staging bucket '{bucket}' is not usable"
    assert any(fix in line and "create it or fix 'staging_bucket'" in line for line in lines), lines or output[-3000:]
    assert_failed_without_retry(output)
    assert after.get("photos:filter", 0) == before.get("photos:filter", 0), "listed ACC without a bucket"
    assert after.get("oss", 0) == before.get("oss", 0)


def test_a_variable_without_projects_fails_with_what_to_fix(stack: Stack, run_dag: Any) -> None:
    config = {k: v for k, v in config_for(stack, new_project()).items() if k != "projects"}
    rc, output, _report = run_dag(DAY, DAY + timedelta(hours=1), config)

    assert rc != 0
    lines = config_error_lines(output)
    fix = "Variable acc_buildpass_config: 'projects' must be a non-empty list of project mappings"
    assert any(fix in line for line in lines), lines or output[-3000:]
    assert_failed_without_retry(output)
