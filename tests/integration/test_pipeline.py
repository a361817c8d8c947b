"""The real DAG, run by `airflow dags test`, against the emulators and SeaweedFS.

Each test uses its own ACC project and staging prefix, so tests share one stack (one S3
server and one emulator per session) without depending on each other or on their order.
"""

from __future__ import annotations

import re
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

pytestmark = pytest.mark.slow

DAY = datetime(2026, 3, 2, tzinfo=UTC)


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S")


def new_project() -> str:
    return str(uuid.uuid4())


def config_for(stack: Any, project: str, **extra: Any) -> dict[str, Any]:
    return {
        "staging_bucket": stack.bucket,
        "staging_prefix": f"t-{project[:8]}",
        "projects": [
            {
                "acc_project_id": project,
                "builder_id": "buil_demo",
                "buildpass_project_id": "proj_demo",
                "buildpass_folder_id": None,
            }
        ],
        "retry": {"attempts": 6, "initial_wait": 0.2, "max_wait": 2, "max_retry_after": 5},
        **extra,
    }


def acc_photos(stack: Any, project: str) -> dict[str, dict[str, Any]]:
    return {p["id"]: p for p in stack.admin("acc", "GET", f"/_admin/photos?project_id={project}")["photos"]}


def bp_photos(stack: Any, ids: set[str]) -> list[dict[str, Any]]:
    photos = stack.admin("buildpass", "GET", "/_admin/photos?builder_id=buil_demo")["photos"]
    return [p for p in photos if p.get("externalSourceId") in ids]


def eligible(photos: dict[str, dict[str, Any]], window_start: datetime, window_end: datetime) -> set[str]:
    from acc_buildpass.models import parse_time

    return {
        pid
        for pid, p in photos.items()
        if not p.get("deletedAt")
        and p.get("mediaType") in ("NORMAL", "INFRARED", "PHOTOSPHERE")
        and window_start <= parse_time(p["createdAt"]) < window_end
    }


def assert_exactly_once(stack: Any, project: str, expected: set[str]) -> list[dict[str, Any]]:
    source = acc_photos(stack, project)
    created = bp_photos(stack, set(source))
    counts = Counter(p["externalSourceId"] for p in created)
    duplicates = {k: n for k, n in counts.items() if n > 1}
    assert duplicates == {}, f"created twice: {duplicates}"
    assert set(counts) == expected, f"missing {expected - set(counts)}, extra {set(counts) - expected}"
    for photo in created:
        assert photo["sha256"] == source[photo["externalSourceId"]]["sha256"], "bytes differ"
    return created


def test_window_is_copied_exactly_once_and_a_rerun_creates_nothing(stack: Any, run_dag: Any) -> None:
    project = new_project()
    start, end = DAY, DAY + timedelta(days=1)
    stack.seed_acc(project, count=130, start=iso(start), end=iso(end), seed=11, deleted=6, videos=4)
    # Edges: exactly at the start belongs here, exactly at the end to the next window.
    stack.admin(
        "acc",
        "POST",
        "/_admin/photos",
        {
            "project_id": project,
            "photos": [
                {
                    "id": "edge-start-0001",
                    "projectId": project,
                    "title": "At start",
                    "mediaType": "NORMAL",
                    "createdAt": iso(start),
                    "takenAt": iso(start),
                    "size": 2048,
                },
                {
                    "id": "edge-end-0001",
                    "projectId": project,
                    "title": "At end",
                    "mediaType": "NORMAL",
                    "createdAt": iso(end) + "Z",
                    "takenAt": iso(end),
                    "size": 2048,
                },
            ],
        },
    )
    config = config_for(stack, project)
    expected = eligible(acc_photos(stack, project), start, end)
    assert "edge-start-0001" in expected and "edge-end-0001" not in expected

    rc, output, report = run_dag(start, end, config)
    assert rc == 0, output[-3000:]
    # Progress lines in the task logs: downloads while staging, uploads while publishing.
    assert re.search(r"\d+ of \d+ photos downloaded, [\d.]+ MB, [\d.]+ MB/s", output)
    assert re.search(r"\d+ of \d+ photos uploaded, [\d.]+ MB, [\d.]+ MB/s", output)
    created = assert_exactly_once(stack, project, expected)
    by_id = {p["externalSourceId"]: p for p in created}
    assert by_id["edge-start-0001"]["fileName"] == "At start.jpg"
    assert by_id["edge-start-0001"]["capturedAt"].startswith(iso(start))
    totals = report["totals"]
    assert totals["created"] == len(expected) and totals["failed"] == 0
    assert totals["skipped"] == 10  # 6 deleted + 4 videos, each with its reason
    reasons = report["projects"][0]["skipped"]
    assert reasons == {"deleted in ACC": 6, "mediaType VIDEO not copied": 4}

    before = Counter(stack.admin("acc", "GET", "/_admin/stats")["requests"])
    rc, output, report = run_dag(start, end, config)
    assert rc == 0, output[-3000:]
    after = Counter(stack.admin("acc", "GET", "/_admin/stats")["requests"])
    assert_exactly_once(stack, project, expected)
    assert report["totals"]["created"] == 0
    assert report["totals"]["present"] == len(expected)
    assert after.get("oss", 0) == before.get("oss", 0), "a re-run downloaded photos again"

    # The next window picks up the photo created exactly at this window's end.
    rc, output, report = run_dag(end, end + timedelta(hours=1), config)
    assert rc == 0, output[-3000:]
    assert report["totals"]["created"] == 1
    assert_exactly_once(stack, project, expected | {"edge-end-0001"})


def test_expiring_signed_urls_and_rotating_tokens(stack: Any, run_dag: Any) -> None:
    project = new_project()
    start, end = DAY, DAY + timedelta(hours=6)
    stack.seed_acc(project, count=40, start=iso(start), end=iso(end), seed=12, min_size=20000, max_size=30000)
    config = config_for(stack, project, download_threads=2)
    expected = eligible(acc_photos(stack, project), start, end)
    stack.admin(
        "acc", "POST", "/_admin/faults", {"signed_url_ttl": 1, "download_bandwidth": 60000, "access_token_ttl": 1}
    )
    # Over an hour on: access tokens stored by earlier runs have expired on the server side (the
    # session's clock only ever moves forward, so this holds whatever ran before).
    stack.admin("acc", "POST", "/_admin/clock", {"advance_seconds": 3700})
    try:
        before = Counter(stack.admin("acc", "GET", "/_admin/stats")["requests"])
        rc, output, _report = run_dag(start, end, config)
        after = Counter(stack.admin("acc", "GET", "/_admin/stats")["requests"])
    finally:
        stack.admin("acc", "POST", "/_admin/faults", {})
    assert rc == 0, output[-3000:]
    assert_exactly_once(stack, project, expected)
    # One photos:filter page for the listing, one for the first signed URLs, then refreshes.
    assert after["photos:filter"] - before["photos:filter"] > 3
    # Tokens were refreshed many times during the run (1 s lifetime) and the chain still works:
    assert after["token"] - before["token"] > 2
    rc, output, _ = run_dag(end, end + timedelta(hours=1), config)
    assert rc == 0, output[-3000:]


def test_a_permanent_failure_fails_the_run_and_the_rest_is_copied(stack: Any, run_dag: Any) -> None:
    project = new_project()
    start, end = DAY, DAY + timedelta(hours=3)
    ids = stack.seed_acc(project, count=30, start=iso(start), end=iso(end), seed=13)["ids"]
    broken, not_image = ids[3], ids[17]
    stack.admin("acc", "POST", f"/_admin/photos/{broken}/behaviour", {"download": "error500"})
    stack.admin("acc", "POST", f"/_admin/photos/{not_image}/behaviour", {"download": "notimage"})
    config = config_for(stack, project, retry={"attempts": 3, "initial_wait": 0.05, "max_wait": 0.1})
    expected = eligible(acc_photos(stack, project), start, end)

    rc, output, report = run_dag(start, end, config)
    assert rc != 0
    assert broken in output and not_image in output
    failed = {f["photo_id"]: f["reason"] for f in report["projects"][0]["failed"]}
    assert set(failed) == {broken, not_image}
    assert "not an image" in failed[not_image]
    assert_exactly_once(stack, project, expected - {broken, not_image})


def test_single_create_mode_survives_lost_responses_without_duplicates(stack: Any, run_dag: Any) -> None:
    project = new_project()
    start, end = DAY, DAY + timedelta(hours=2)
    stack.seed_acc(project, count=12, start=iso(start), end=iso(end), seed=14)
    config = config_for(stack, project, publish_mode="single")
    expected = eligible(acc_photos(stack, project), start, end)
    stack.admin(
        "buildpass",
        "POST",
        "/_admin/faults",
        {
            "script": [
                {"route": "photos-create", "fault": "lost_response", "times": 2},
                {"route": "photos-create", "fault": "error5xx", "times": 1},
            ]
        },
    )
    try:
        rc, output, report = run_dag(start, end, config)
    finally:
        stack.admin("buildpass", "POST", "/_admin/faults", {})
    assert rc == 0, output[-3000:]
    assert_exactly_once(stack, project, expected)
    assert report["totals"]["created"] + report["totals"]["present"] == len(expected)


def test_bulk_mode_survives_lost_upsert_responses(stack: Any, run_dag: Any) -> None:
    project = new_project()
    start, end = DAY, DAY + timedelta(hours=2)
    stack.seed_acc(project, count=60, start=iso(start), end=iso(end), seed=15)
    config = config_for(stack, project)
    expected = eligible(acc_photos(stack, project), start, end)
    stack.admin(
        "buildpass",
        "POST",
        "/_admin/faults",
        {
            "script": [
                {"route": "bulk-upsert", "fault": "lost_response", "times": 1},
                {"route": "bulk-upload", "fault": "reset", "times": 1},
            ]
        },
    )
    try:
        rc, output, _ = run_dag(start, end, config)
    finally:
        stack.admin("buildpass", "POST", "/_admin/faults", {})
    assert rc == 0, output[-3000:]
    assert_exactly_once(stack, project, expected)


def test_wrong_project_mapping_fails_fast_naming_the_key(stack: Any, run_dag: Any) -> None:
    project = new_project()
    stack.seed_acc(project, count=3, start=iso(DAY), end=iso(DAY + timedelta(hours=1)), seed=16)
    config = config_for(stack, project)
    config["projects"][0]["buildpass_project_id"] = "proj_nope"
    before = Counter(stack.admin("acc", "GET", "/_admin/stats")["requests"])
    rc, output, _report = run_dag(DAY, DAY + timedelta(hours=1), config)
    after = Counter(stack.admin("acc", "GET", "/_admin/stats")["requests"])
    assert rc != 0
    assert "projects[0].buildpass_project_id 'proj_nope'" in output
    assert after.get("oss", 0) == before.get("oss", 0)


def task_states(stack: Any) -> dict[str, str]:
    """Each task of the last DAG run in the stack's metadata DB: its state."""
    import sqlite3
    from pathlib import Path

    db = sqlite3.connect(Path(stack.env()["AIRFLOW_HOME"]) / "airflow.db")
    try:
        (run_id,) = db.execute(
            "SELECT run_id FROM dag_run WHERE dag_id = 'acc_to_buildpass_photos' ORDER BY id DESC LIMIT 1"
        ).fetchone()
        rows = db.execute(
            "SELECT task_id, state FROM task_instance WHERE dag_id = 'acc_to_buildpass_photos' AND run_id = ?",
            (run_id,),
        ).fetchall()
    finally:
        db.close()
    return dict(rows)


def requests_during(stack: Any, run: Any) -> tuple[Counter[str], Counter[str]]:
    """(ACC, BuildPass) requests by route while ``run()`` ran."""
    before = [Counter(stack.admin(api, "GET", "/_admin/stats")["requests"]) for api in ("acc", "buildpass")]
    run()
    after = [Counter(stack.admin(api, "GET", "/_admin/stats")["requests"]) for api in ("acc", "buildpass")]
    return after[0] - before[0], after[1] - before[1]


def test_hourly_windows_are_one_task_each_and_an_empty_one_asks_buildpass_nothing(stack: Any, run_dag: Any) -> None:
    project = new_project()
    hour = DAY + timedelta(days=3)
    stack.seed_acc(project, count=4, start=iso(hour), end=iso(hour + timedelta(hours=1)), seed=21)
    stack.seed_acc(project, count=3, start=iso(hour + timedelta(hours=1)), end=iso(hour + timedelta(hours=2)), seed=22)
    config = config_for(stack, project)
    results: list[Any] = []

    def window(n: int) -> Any:
        return lambda: results.append(run_dag(hour + timedelta(hours=n), hour + timedelta(hours=n + 1), config))

    requests_during(stack, window(0))  # the first window with photos finds the folder (then remembered)
    assert results[-1][0] == 0, results[-1][1][-3000:]
    assert task_states(stack) == {
        "extract": "success",
        "copy_batch": "skipped",
        "report": "skipped",
    }
    assert results[-1][2]["totals"]["created"] == 4

    acc, buildpass = requests_during(stack, window(1))
    assert results[-1][0] == 0, results[-1][1][-3000:]
    assert results[-1][2]["totals"]["created"] == 3
    assert_exactly_once(stack, project, set(acc_photos(stack, project)))
    assert acc["photos:filter"] == 2  # the listing, then fresh signed URLs right before the downloads
    assert buildpass["bulk-upload"] + buildpass["upload"] == 1 and buildpass["bulk-upsert"] == 1
    # Nothing else: the token is the one the first run's process stored, the folder is remembered.
    assert sum(buildpass.values()) == 2, buildpass

    acc, buildpass = requests_during(stack, window(2))  # no photo in this hour
    assert results[-1][0] == 0, results[-1][1][-3000:]
    assert results[-1][2]["totals"] == {**results[-1][2]["totals"], "found": 0, "created": 0, "failed": 0}
    assert task_states(stack)["extract"] == "success" and task_states(stack)["report"] == "skipped"
    assert sum(buildpass.values()) == 0, buildpass
    assert acc["photos:filter"] == 1 and acc["oss"] == 0
