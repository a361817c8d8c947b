"""``acc-buildpass follow-edits`` and the DAG ``acc_buildpass_follow_edits`` over the real stack.

The copy DAG runs a window first; then photos are edited and deleted in ACC through the
emulator's admin API, and follow-edits must patch exactly the edited BuildPass photos with the
mapped values, patch nothing the second time, and report the deleted photo without removing it.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from acc_buildpass.mapping import content_type_of, edited_fields
from acc_buildpass.models import AccPhoto, parse_time
from sandbox.stack import Stack

CLI = Path(sys.executable).parent / "acc-buildpass"
COPIED = ("NORMAL", "INFRARED", "PHOTOSPHERE")
QUICK_RETRY = {"attempts": 3, "initial_wait": 0.05, "max_wait": 0.2}


def cli(*args: str, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    assert CLI.exists(), f"{CLI} is missing: run .venv/bin/pip install -e . --no-deps"
    return subprocess.run([str(CLI), *args], env=env, capture_output=True, text=True, timeout=timeout, check=False)


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S")


def requests_by_route(stack: Stack, server: str) -> Counter[str]:
    return Counter({k: int(v) for k, v in stack.admin(server, "GET", "/_admin/stats")["requests"].items()})


def buildpass_photos(stack: Stack, acc_ids: set[str]) -> dict[str, dict[str, Any]]:
    """The BuildPass photo of each ACC id (ground truth; each exactly once)."""
    photos = [
        p
        for p in stack.admin("buildpass", "GET", "/_admin/photos?builder_id=buil_demo")["photos"]
        if p["externalSourceId"] in acc_ids
    ]
    assert Counter(p["externalSourceId"] for p in photos) == Counter(acc_ids)
    return {p["externalSourceId"]: p for p in photos}


def acc_photo(stack: Stack, project: str, photo_id: str) -> AccPhoto:
    [raw] = [
        p for p in stack.admin("acc", "GET", f"/_admin/photos?project_id={project}")["photos"] if p["id"] == photo_id
    ]
    return AccPhoto.from_api(raw, project)


def assert_shows(stack: Stack, project: str, shown: dict[str, Any], photo_id: str) -> None:
    """BuildPass shows what the mapping makes of the ACC record as it is now."""
    wanted = edited_fields(acc_photo(stack, project, photo_id), content_type_of(shown["fileName"]) or "image/jpeg")
    assert shown["fileName"] == wanted["fileName"]
    assert (shown["description"] or None) == wanted["description"]
    assert parse_time(shown["capturedAt"]) == parse_time(wanted["capturedAt"])


def test_follow_edits_help(tmp_path: Path) -> None:
    proc = cli("follow-edits", "--help", env={"PATH": "/usr/bin:/bin", "AIRFLOW_HOME": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: acc-buildpass follow-edits")
    for option in ("--days", "--delete-policy", "--dry-run", "--json", "--until"):
        assert option in proc.stdout
    listed = cli("--help", env={"PATH": "/usr/bin:/bin", "AIRFLOW_HOME": str(tmp_path)})
    assert "follow-edits" in listed.stdout
    for bad in (["--days", "0"], ["--days", "x"], ["--delete-policy", "purge"], ["--until", "yesterday"]):
        proc = cli("follow-edits", *bad, env={"PATH": "/usr/bin:/bin", "AIRFLOW_HOME": str(tmp_path)})
        assert proc.returncode == 2, (bad, proc.stdout, proc.stderr)
        assert proc.stdout == ""


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["bulk", "single"])
def test_edits_are_patched_once_and_deletions_reported_not_deleted(stack: Stack, mode: str) -> None:
    project = str(uuid.uuid4())
    now = datetime.now(UTC).replace(microsecond=0)
    start, end = now - timedelta(hours=3), now - timedelta(hours=1)
    stack.seed_acc(project, count=8, start=iso(start), end=iso(end), seed=41)
    photos = stack.admin("acc", "GET", f"/_admin/photos?project_id={project}")["photos"]
    eligible = sorted(p["id"] for p in photos if not p.get("deletedAt") and p["mediaType"] in COPIED)
    assert len(eligible) >= 5
    config = stack.config([project], prefix=f"follow-{mode}-{project[:8]}", publish_mode=mode, retry=QUICK_RETRY)
    env = stack.env(config)
    rc, output = stack.run_dag(start.isoformat(), end.isoformat(), config)
    assert rc == 0, output[-3000:]
    copied = buildpass_photos(stack, set(eligible))

    # Nothing edited yet: every copied photo looked at, nothing to patch.
    before = requests_by_route(stack, "buildpass")
    first = cli("follow-edits", "--days", "1", "--json", env=env)
    assert first.returncode == 0, first.stdout + first.stderr
    totals = json.loads(first.stdout)["totals"]
    assert (totals["looked_at"], totals["unchanged"], totals["patched"], totals["failed"]) == (
        len(eligible),
        len(eligible),
        0,
        0,
    )
    assert requests_by_route(stack, "buildpass")["photo"] == before["photo"]  # no PATCH, no GET per photo
    # The links it found are kept for the next run (no ledger read per photo then).
    links_key = f"{config['staging_prefix']}/follow/buil_demo/proj_demo/{project}.json"
    links = json.loads(stack.s3().get_object(Bucket=stack.bucket, Key=links_key)["Body"].read())["links"]
    assert {i: link["buildpass_photo_id"] for i, link in links.items()} == {i: copied[i]["id"] for i in eligible}

    retitled, described, deleted = eligible[0], eligible[1], eligible[2]
    stack.admin(
        "acc",
        "PATCH",
        f"/_admin/photos/{retitled}",
        {"title": "Level 4 formwork / east", "description": "", "takenAt": "2026-03-02T07:45:10"},
    )
    stack.admin("acc", "PATCH", f"/_admin/photos/{described}", {"description": "Rebar inspected, 2 issues"})
    stack.admin("acc", "POST", f"/_admin/photos/{deleted}/delete")

    acc_before, bp_before = requests_by_route(stack, "acc"), requests_by_route(stack, "buildpass")
    proc = cli("follow-edits", "--days", "1", "--json", env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(proc.stdout)
    by_photo = {p["photo_id"]: p for p in result["photos"]}
    assert by_photo[retitled]["status"] == "patched"
    assert by_photo[retitled]["changes"] == ["capturedAt", "description", "fileName"]
    assert by_photo[described]["status"] == "patched" and by_photo[described]["changes"] == ["description"]
    assert (
        by_photo[deleted]["status"] == "deleted_in_acc"
        and "left (delete policy: report)" in by_photo[deleted]["reason"]
    )
    assert by_photo[deleted]["buildpass_photo_id"] == copied[deleted]["id"]
    assert set(by_photo) == {retitled, described, deleted}
    totals = result["totals"]
    assert (totals["patched"], totals["deleted_in_acc"], totals["failed"]) == (2, 1, 0)
    assert totals["unchanged"] == len(eligible) - 3 and totals["looked_at"] == len(eligible)
    # Requests: a page of ACC per 50 photos, one BuildPass listing, one PATCH per edited photo.
    acc_after, bp_after = requests_by_route(stack, "acc"), requests_by_route(stack, "buildpass")
    assert acc_after["photos:filter"] - acc_before["photos:filter"] == math.ceil(totals["listed"] / 50)
    assert acc_after["photo"] == acc_before["photo"]
    assert bp_after["photos-list"] - bp_before["photos-list"] == 1
    assert bp_after["photo"] - bp_before["photo"] == 2

    now_shown = buildpass_photos(stack, set(eligible))
    assert now_shown[retitled]["fileName"] == "Level 4 formwork _ east.jpg"
    assert now_shown[retitled]["description"] == "Level 4 formwork / east"  # the title stands in
    assert parse_time(now_shown[retitled]["capturedAt"]) == datetime(2026, 3, 2, 7, 45, 10, tzinfo=UTC)
    assert now_shown[described]["description"] == "Rebar inspected, 2 issues"
    for photo_id in eligible:
        if photo_id != deleted:
            assert_shows(stack, project, now_shown[photo_id], photo_id)
        assert now_shown[photo_id]["id"] == copied[photo_id]["id"]  # patched in place, nothing new
    assert now_shown[deleted]["archivedAt"] is None and now_shown[deleted] == copied[deleted]

    # Again: nothing patched; the deletion is reported again; the text summary says so.
    bp_before = requests_by_route(stack, "buildpass")
    again = cli("follow-edits", "--days", "1", env=env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"{len(eligible)} copied photos looked at" in again.stdout and "0 patched" in again.stdout
    assert "1 deleted in ACC (reported)" in again.stdout and "0 failed" in again.stdout
    assert requests_by_route(stack, "buildpass")["photo"] == bp_before["photo"]

    # A dry run sees a new edit and changes nothing.
    stack.admin("acc", "PATCH", f"/_admin/photos/{eligible[3]}", {"title": "Dry run only"})
    dry = cli("follow-edits", "--days", "1", "--dry-run", "--json", env=env)
    assert dry.returncode == 0, dry.stdout + dry.stderr
    dry_result = json.loads(dry.stdout)
    assert dry_result["totals"]["would_patch"] == 1 and dry_result["totals"]["patched"] == 0
    assert buildpass_photos(stack, {eligible[3]})[eligible[3]]["fileName"] == now_shown[eligible[3]]["fileName"]

    # The delete policy cannot be honoured (no per-photo DELETE in BuildPass): failed, photo kept.
    policy = cli("follow-edits", "--days", "1", "--delete-policy", "delete", "--json", env=env)
    assert policy.returncode == 1, policy.stdout + policy.stderr
    by_photo = {p["photo_id"]: p for p in json.loads(policy.stdout)["photos"]}
    assert by_photo[deleted]["status"] == "failed"
    assert "documents no DELETE of one photo" in by_photo[deleted]["reason"]
    assert copied[deleted]["id"] in by_photo[deleted]["reason"]
    assert by_photo[eligible[3]]["status"] == "patched"  # the rest of the run still did its work
    assert buildpass_photos(stack, {deleted})[deleted]["archivedAt"] is None

    # Where ACC hides deleted photos from listings: one linked by an earlier run that is no longer
    # listed is asked for (410 here) and reported, by the link the earlier run kept.
    hidden = eligible[4]
    stack.admin("acc", "PATCH", f"/_admin/photos/{hidden}", {"createdAt": iso(now - timedelta(days=3))})
    stack.admin("acc", "POST", f"/_admin/photos/{hidden}/delete")
    acc_before = requests_by_route(stack, "acc")
    proc = cli("follow-edits", "--days", "1", "--json", env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    by_photo = {p["photo_id"]: p for p in json.loads(proc.stdout)["photos"]}
    assert by_photo[hidden]["status"] == "deleted_in_acc"
    assert by_photo[hidden]["buildpass_photo_id"] == copied[hidden]["id"]
    assert requests_by_route(stack, "acc")["photo"] - acc_before["photo"] == 1
    assert buildpass_photos(stack, {hidden})[hidden]["archivedAt"] is None


@pytest.mark.slow
def test_the_dag_follows_edits_and_logs_its_summary(stack: Stack) -> None:
    project = str(uuid.uuid4())
    now = datetime.now(UTC).replace(microsecond=0)
    start, end = now - timedelta(hours=5), now - timedelta(hours=4)
    stack.seed_acc(project, count=3, start=iso(start), end=iso(end), seed=43)
    config = stack.config([project], prefix=f"follow-dag-{project[:8]}", retry=QUICK_RETRY)
    rc, output = stack.run_dag(start.isoformat(), end.isoformat(), config)
    assert rc == 0, output[-3000:]
    photos = stack.admin("acc", "GET", f"/_admin/photos?project_id={project}")["photos"]
    edited = sorted(p["id"] for p in photos if not p.get("deletedAt") and p["mediaType"] in COPIED)[0]
    stack.admin("acc", "PATCH", f"/_admin/photos/{edited}", {"description": "Edited in ACC after the copy"})

    proc = subprocess.run(
        [stack.bin("airflow"), "dags", "test", "acc_buildpass_follow_edits", "-c", json.dumps({"days": 1})],
        env=stack.env(config),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-3000:]
    assert "1 patched" in output and f"{edited} → " in output
    assert buildpass_photos(stack, {edited})[edited]["description"] == "Edited in ACC after the copy"
    for secret in stack.admin("buildpass", "GET", "/_admin/secrets") + stack.admin("acc", "GET", "/_admin/secrets"):
        assert secret not in output
